"""The command line's vocabulary: its name, its errors, and the types of its options.

`report` prints the one line an error gets; `option_error` rewrites a
library's error to name the options the user typed (``--fill-value``, not
``fill_value``); `Parser` gives argparse's usage errors the same one line.
The argument types turn text such as ``3x5`` or ``same`` into the values the
library takes.
"""
import argparse
import os
import re
import sys

from ..shapes import PADDING_STRINGS
from .files import CommandError

PROG = "convolution"

#: Exit status for errors in the command line or its input, as argparse uses.
EXIT_USAGE = 2


def report(message):
    """Print ``message`` as one line on stderr; return the exit status for it."""
    print(f"{PROG}: error: {' '.join(str(message).split())}", file=sys.stderr)
    return EXIT_USAGE


#: The library's parameter names and the options that set them.
OPTIONS = {"fill_value": "--fill-value", "padding_mode": "--padding-mode",
           "filter_alpha": "--filter-alpha", "output_padding": "--output-padding",
           "max_frames": "--max-frames", "input_shape": "--input", "kernel_shape": "--kernel",
           "stride": "--stride", "dilation": "--dilation", "padding": "--padding",
           "size": "--size", "sigma": "--sigma", "fps": "--fps", "dpi": "--dpi"}
_NAME = r"(?<![\w-])({})"
#: ``name=value`` and ``name='value'``: '--name value'.
_ASSIGNED = re.compile(_NAME.format("|".join(OPTIONS)) + r"=(?:'([^']*)'|([^\s,;]+))")
#: A name with an underscore, anywhere; a plain word ('stride') where it names the
#: parameter: before 'must', a value or 'of' ("stride (2, 2)", not "a smaller stride").
_NAMED = re.compile(_NAME.format("|".join(name for name in OPTIONS if "_" in name)) + r"\b"
                    + "|" + _NAME.format("|".join(name for name in OPTIONS if "_" not in name))
                    + r"(?= (?:must|of|[(\d'-]))")


def option_error(error):
    """A library's error as a `CommandError` that names options, not Python names.

    Examples
    --------
    >>> print(option_error(ValueError("fill_value is used only with padding_mode='constant', "
    ...                               "got fill_value=3 with padding_mode='reflect'")))
    --fill-value is used only with --padding-mode constant, got --fill-value 3 with --padding-mode reflect
    >>> print(option_error(ValueError("input_shape must not have an empty axis, got (0, 5)")))
    --input must not have an empty axis, got (0, 5)
    >>> print(option_error(ValueError("kernel of shape (3, 3) with dilation (4, 4) spans "
    ...                               "(9, 9) cells; use a smaller kernel or dilation")))
    kernel of shape (3, 3) with --dilation (4, 4) spans (9, 9) cells; use a smaller kernel or dilation
    """
    text = _ASSIGNED.sub(lambda m: f"{OPTIONS[m[1]]} {m[2] if m[2] is not None else m[3]}",
                         str(error))
    return CommandError(_NAMED.sub(lambda m: OPTIONS[m[1] or m[2]], text))


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line, like the commands' own."""

    def error(self, message):
        report(f"{message} (see '{self.prog} --help')")
        sys.exit(EXIT_USAGE)


# --- Argument types: text from the command line to the library's values ---

def _numbers(convert, counts, expected):
    """An argparse type for 'A' or 'AxB...': ``counts`` values made by ``convert``.

    One value comes back as itself (one value means the same for both axes),
    several as a tuple: '5' -> 5, '3x5' -> (3, 5).
    """
    def parse(text):
        try:
            values = tuple(convert(part) for part in text.lower().split("x"))
        except ValueError:
            values = ()
        if len(values) not in counts:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return values[0] if len(values) == 1 else values
    return parse


_ints = _numbers(int, (1, 2), "N or HxW with whole numbers")
_floats = _numbers(float, (1, 2), "S or SHxSW with numbers")
_pair = _numbers(int, (2,), "HxW, two whole numbers")
_padding_numbers = _numbers(int, (1, 2, 4), f"{', '.join(PADDING_STRINGS)}, N, HxW or "
                                            f"TOPxBOTTOMxLEFTxRIGHT")


def _padding(text):
    """A padding string ('valid', 'same', 'full'), or N, HxW or TOPxBOTTOMxLEFTxRIGHT."""
    if text in PADDING_STRINGS:
        return text
    values = _padding_numbers(text)
    return (values[:2], values[2:]) if isinstance(values, tuple) and len(values) == 4 else values


def _positive(text):
    """A positive number, such as frames per second."""
    value = _number(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _number(text):
    """'3' -> 3, '0.5' -> 0.5."""
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def _max_frames(text):
    """A count of frames: a whole number, at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def _shape_or_file(text):
    """'HxW' as a pair, or the path of a file of values (as for filter's --kernel)."""
    try:
        return _pair(text)
    except argparse.ArgumentTypeError:
        if os.path.isfile(text):
            return text
        raise argparse.ArgumentTypeError(f"expected HxW (two whole numbers) or a file of "
                                         f"numbers (.npy or text), got {text!r}") from None
