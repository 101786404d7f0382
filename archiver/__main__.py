"""``python -m archiver``."""

from archiver.cli import main

# Guarded: the scanner's worker processes (spawn) import the main module again.
if __name__ == "__main__":
    main()
