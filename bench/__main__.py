"""``python -m bench``: run the suite (see bench/run.py)."""

if __name__ == "__main__":  # not when multiprocessing re-imports the main module as __mp_main__
    from .run import main

    raise SystemExit(main())
