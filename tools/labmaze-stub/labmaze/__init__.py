raise ImportError(
    "this is trqam-bench's stand-in for labmaze on Python >= 3.13 (tools/labmaze-stub), installed because "
    "labmaze has no wheel there; dm_control.locomotion needs the real one (Python <= 3.12)"
)
