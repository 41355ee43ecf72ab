"""Training: the compiled update step, the pipeline (BC, offline, online), the run store,
evaluation, trackers and sweeps. Imports bench's top-level modules, bench.data and bench.config."""
