"""``python -m convolution COMMAND ...``: the command line (``cli/``), also installed as ``convolution``."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
