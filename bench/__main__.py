from bench.cli import main

if __name__ == "__main__":  # guard: datagen's worker processes re-import this module
    main()
