import time

_began = time.perf_counter()  # before the imports: a program's start-up time counts from here

from bench import files  # noqa: E402
from bench.cli import main  # noqa: E402

files.PROGRAM_STARTED = _began

if __name__ == "__main__":  # guard: datagen's worker processes re-import this module
    main()
