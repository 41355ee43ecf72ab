"""trqam-bench harness: data, training, evaluation and the command line."""

import warnings

# gymnasium warns on every ogbench env construction that float64 bounds are cast to
# float32, and glfw warns that there is no display (state-based tasks need none).
warnings.filterwarnings("ignore", message=".*precision lowered by casting.*")
warnings.filterwarnings("ignore", message=".*DISPLAY environment variable is missing.*")
