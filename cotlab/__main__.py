"""`python -m cotlab ...` is the `cotlab` command."""

from cotlab.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
