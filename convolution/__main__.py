"""``python -m convolution COMMAND ...``: runs the command line, ``cli/``.

Installed, the same command line is the ``convolution`` console script.
"""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
