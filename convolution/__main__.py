"""The command line: ``python -m convolution COMMAND ...``, also installed as ``convolution``.

Commands: ``filter`` (filter an image file), ``animate`` (an animation of the
kernel sliding), ``explore`` (the explorer, in a window) and ``figures``
(regenerate the README's figures). Each is a
function ``<name>_command(args)`` and one ``add_parser`` block in
`build_parser`. Errors the user can fix are raised as `CommandError` and
reported by `main` as one line on stderr with exit status 2, without a
traceback; argparse's own usage errors follow the same rule. Files are
written through ``files.py``: to a temporary file beside the target, renamed
into place only once complete, so no error, Ctrl-C or SIGTERM leaves a
half-written file.
"""
import argparse
import functools
import math
import os
import re
import signal
import sys
import warnings

import numpy as np

from . import __version__, driver
from .checks import as_kernel
from .files import (CommandError, Stopped, check_format, check_output_path, check_overwrite,
                    check_paths, read_image, stop_signals_raise, write_image)
# The animate and figures commands call this by the name it had here.
from .files import write_atomically as _write_atomically
from .image import apply_filter_to_image, check_arguments
from .kernels import KERNELS, get_kernel, kernel_parameters
from .padding import PADDING_MODES, check_padding_mode
from .shapes import PADDING_STRINGS

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


# --- The filter command ---

def _kernel_list():
    """One line a library kernel, with its parameters, for --help."""
    lines = []
    for name in KERNELS:
        params = kernel_parameters(name)
        shown = ", ".join(f"--{key} (default {'from the size' if value is None else value})"
                          for key, value in params.items())
        lines.append(f"  {name:<12} {shown or '3 x 3, no parameters'}")
    return "\n".join(lines)


FILTER_EPILOG = f"""\
kernels (--kernel NAME):
{_kernel_list()}
  or the path of a file: a .npy array, or text with one row of numbers a
  line, separated by spaces or commas, e.g. a 3 x 3 kernel in three lines
  of three ('#' starts a comment). A name wins over a file of the same
  name; write ./box to mean the file.

examples:
  {PROG} filter photo.jpg blurred.jpg                      # gaussian 5 x 5
  {PROG} filter photo.jpg blurred.jpg --kernel gaussian --size 9 --sigma 3
  {PROG} filter photo.png edges.png --kernel outline
  {PROG} filter photo.png streak.png --kernel motion_blur --size 1x15
  {PROG} filter photo.png half.png --kernel box --size 2 --stride 2
  {PROG} filter scan.tif out.tif --kernel my_kernel.txt --padding-mode replicate

what it does:
  Every channel is filtered with the same kernel (cross-correlation: the
  kernel is not flipped). In grey+alpha and RGBA images colour is weighted
  by alpha, so transparent pixels, whatever colour they hold, do not bleed
  into visible ones; alpha itself is kept, not filtered, unless
  --filter-alpha. The result keeps the image's dtype: integers are rounded
  and clipped to their range (a sharpened white pixel stays white), floats
  are not clipped. 1-bit images are filtered as 8-bit greyscale (0 and 255)
  and written as 8-bit. With the defaults the output has the input's size;
  --stride 2 halves it.

  Files are read and written by imageio, in the format OUTPUT's extension
  names. 16-bit colour PNGs, which imageio reads as 8-bit, are read and
  written with OpenCV when it is installed; without it they are refused.
  Every file written is read back: a format that cannot hold the image's
  dtype, channels or (unless it is lossy, as JPEG, WebP and GIF are) its
  values is an error, never a silent conversion. .tif holds every image.

  The result is written to a temporary file beside OUTPUT and renamed into
  place, so an interrupted run (Ctrl-C, SIGTERM) leaves no file behind.
  INPUT is never changed, and OUTPUT may not be INPUT. Every option is
  checked before OUTPUT is refused for existing. On a terminal, a progress
  bar (tqdm) counts the strips of the image filtered.

exit status: 0 on success, 2 for bad input (one line on stderr), 130 when
interrupted by Ctrl-C, 143 when stopped by SIGTERM."""


def _kernel_text(path):
    """The numbers in a text file, one row of the kernel a line, as a 2-D float64 array.

    Numbers are separated by spaces, commas or both; blank lines and
    everything after a '#' are skipped.
    """
    try:
        with open(path, encoding="utf-8") as file:
            lines = file.read().splitlines()
    except UnicodeDecodeError:
        raise CommandError(f"kernel file {path!r} is not text: give a text file of numbers "
                           f"or a .npy file") from None
    rows = []   # (line number, its numbers)
    for line_number, line in enumerate(lines, 1):
        words = line.split("#", 1)[0].replace(",", " ").split()
        if words:
            rows.append((line_number, [_kernel_number(word, path, line_number)
                                       for word in words]))
    if not rows:
        raise CommandError(f"kernel file {path!r} holds no numbers")
    first_line, first = rows[0]
    for line_number, row in rows:
        if len(row) != len(first):
            raise CommandError(f"kernel file {path!r} must have as many numbers on every "
                               f"line: line {first_line} has {len(first)}, line {line_number} "
                               f"has {len(row)}")
    return np.array([row for _, row in rows])


def _kernel_number(word, path, line_number):
    """``float(word)``, or the line that says where the kernel file holds a non-number."""
    try:
        return float(word)
    except ValueError:
        raise CommandError(f"kernel file {path!r}, line {line_number}: {word!r} is not a "
                           f"number") from None


def _load_kernel_file(path):
    """The kernel in a .npy file, or in a text file of numbers (see `_kernel_text`)."""
    try:
        if path.lower().endswith(".npy"):
            with open(path, "rb") as file:
                magic = file.read(6)
            # np.load would take anything else for a pickle, and say so confusingly.
            if magic != b"\x93NUMPY":
                raise CommandError(f"kernel file {path!r} is not a NumPy .npy file")
            kernel = np.load(path, allow_pickle=False)
        else:
            kernel = _kernel_text(path)
    except (OSError, ValueError, EOFError) as error:   # EOFError: a truncated .npy
        raise CommandError(f"cannot read kernel file {path!r}: {error}") from None
    try:
        return as_kernel(kernel, f"kernel file {path!r}", kinds="biuf", finite=True)
    except (TypeError, ValueError) as error:
        raise CommandError(error) from None


def _kernel(args):
    """The kernel --kernel, --size and --sigma ask for."""
    params = {key: value for key, value in (("size", args.size), ("sigma", args.sigma))
              if value is not None}
    if args.kernel in KERNELS:
        try:
            return get_kernel(args.kernel, **params)
        except (TypeError, ValueError) as error:
            raise option_error(error) from None
    if os.path.isfile(args.kernel):
        if params:
            raise CommandError(f"--{next(iter(params))} applies to library kernels, "
                               f"not to the kernel file {args.kernel!r}")
        return _load_kernel_file(args.kernel)
    raise CommandError(f"unknown kernel {args.kernel!r}: not a kernel name "
                       f"({', '.join(KERNELS)}) nor a file")


def progress_bar(**options):
    """A `ProgressBar` on stderr when it is a terminal and tqdm is installed, else None."""
    if not sys.stderr.isatty():
        return None
    try:
        from tqdm import tqdm
    except ImportError:      # progress is a nicety: run without it
        return None
    return ProgressBar(tqdm, **options)


class ProgressBar:
    """Calls ``progress(done, total)`` drawn as one tqdm bar on stderr, cleared when closed.

    A call with ``done`` 0 starts a new run of ``total`` steps, which adds to
    the bar: each convolution of a filter reports its strips (a picture with
    alpha takes a few), an animation its frames. The bar is drawn when the
    first call comes, then as tqdm sees fit (a few times a second), and
    always once a run is complete, with ``when_done`` beside it (an
    animation is then saved).
    """

    def __init__(self, tqdm, when_done=None, **options):
        self.tqdm, self.options, self.when_done = tqdm, options, when_done
        self.bar, self.before = None, 0

    def __call__(self, done, total):
        if self.bar is None:
            self.bar = self.tqdm(total=total, file=sys.stderr, leave=False, **self.options)
        if done == 0:
            self.before = self.bar.n
        self.bar.total = self.before + total
        self.bar.update(self.before + done - self.bar.n)
        if done == total:
            if self.when_done:
                self.bar.set_postfix_str(self.when_done, refresh=False)
            self.bar.refresh()

    def close(self):
        if self.bar is not None:
            self.bar.close()


def filter_command(args):
    """``convolution filter INPUT OUTPUT``: filter an image file into another.

    Every option is checked before OUTPUT is refused for existing, so that
    the error to fix comes first, with or without --force.
    """
    check_paths(args.input, args.output)
    kernel = _kernel(args)
    check_format(args.output)
    params = dict(stride=args.stride, dilation=args.dilation, padding=args.padding,
                  padding_mode=args.padding_mode, fill_value=args.fill_value,
                  filter_alpha=args.filter_alpha)
    try:
        check_padding_mode(args.padding_mode, args.fill_value)   # before reading the image
        image, kernel = check_arguments(read_image(args.input), kernel, **params)
    except (TypeError, ValueError) as error:
        raise option_error(error) from None
    check_overwrite(args.output, args.force)
    progress = progress_bar(desc="filtering", unit="strip")
    try:
        with driver.report_progress(progress):
            result = apply_filter_to_image(image, kernel, **params)
    except (TypeError, ValueError) as error:
        raise option_error(error) from None
    finally:
        if progress is not None:
            progress.close()
    write_image(args.output, result)
    shape = " x ".join(map(str, result.shape[:2]))
    channels = result.shape[2] if result.ndim == 3 else 1
    print(f"wrote {args.output} ({shape}, {channels} channel{'s' * (channels > 1)}, "
          f"{result.dtype})")
    return 0


# --- The animate and figures commands ---

#: Animations with more frames than this get a hint about --max-frames.
MANY_FRAMES = 100


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


def _shape_or_values(given, option):
    """``given`` as the animate functions take it: a shape, or the values read from a file."""
    if not isinstance(given, str):
        return given, given
    try:
        values = _load_kernel_file(given)
    except CommandError as error:   # the reader names kernel files; this one is --input's too
        raise CommandError(f"{option}: " + str(error).replace("kernel file", "file")) from None
    return values, values.shape


def animate_command(args):
    """``convolution animate OUTPUT --input HxW|FILE --kernel HxW|FILE``: the kernel sliding."""
    from .pictures.animation import (ANIMATION_FORMATS, animate_conv2d,
                                     animate_conv_transpose2d, frame_steps)
    from .pictures.grid import require_matplotlib
    from .shapes import conv_output_shape, conv_transpose_geometry

    check_output_path(args.output, ANIMATION_FORMATS)     # whether it exists: once checked
    inputs, input_shape = _shape_or_values(args.input, "--input")
    kernel, kernel_shape = _shape_or_values(args.kernel, "--kernel")
    try:
        if args.transposed:
            if args.padding_mode not in (None, "zeros"):
                raise CommandError(f"--padding-mode {args.padding_mode} does not apply with "
                                   f"--transposed: the transposed convolution crops its padding "
                                   f"off the result instead of filling it")
            params = dict(output_padding=0 if args.output_padding is None
                          else args.output_padding)
            conv_transpose_geometry(input_shape, kernel_shape, args.stride, args.dilation,
                                    args.padding, params["output_padding"])
            animate, cells, what = animate_conv_transpose2d, math.prod(input_shape), "input"
        else:
            if args.output_padding is not None:
                raise CommandError("--output-padding applies only with --transposed")
            params = dict(padding_mode=args.padding_mode or "zeros")
            shape = conv_output_shape(input_shape, kernel_shape, args.stride, args.dilation,
                                      args.padding)
            animate, cells, what = animate_conv2d, math.prod(shape), "output"
        require_matplotlib()
    except (TypeError, ValueError, ImportError) as error:
        raise option_error(error) from None
    check_overwrite(args.output, args.force)
    frames = len(frame_steps(cells, args.max_frames))
    plan = (f"{frames} frames, one per {what} cell" if frames == cells
            else f"{frames} frames, for {frames} of the {cells} {what} cells")
    if frames > MANY_FRAMES and args.max_frames is None:
        plan += " (--max-frames N draws fewer)"
    progress = progress_bar(desc="drawing", unit="frame", when_done="saving")

    def write(temporary):
        print(f"writing {args.output}: {plan}", flush=True)
        try:
            animate(inputs, kernel, args.stride, args.dilation, args.padding, path=temporary,
                    fps=args.fps, dpi=args.dpi, max_frames=args.max_frames, progress=progress,
                    **params)
        except (TypeError, ValueError, ImportError, OSError) as error:
            raise CommandError(str(error).replace(temporary, args.output)) from None
        finally:
            if progress is not None:
                progress.close()

    _write_atomically(args.output, write)
    print(f"wrote {args.output}")
    return 0


def figures_command(args):
    """``convolution figures [FOLDER]``: regenerate the README's figures (see `figures.FIGURES`)."""
    from .pictures.figures import FIGURES, write_figure
    from .pictures.grid import require_matplotlib

    try:
        require_matplotlib()   # before the folder is made: a failure leaves nothing behind
    except ImportError as error:
        raise CommandError(error) from None
    try:
        os.makedirs(args.folder, exist_ok=True)
    except OSError as error:
        raise CommandError(f"cannot make FOLDER {args.folder!r}: {error.strerror}") from None
    for name in FIGURES:
        output = os.path.join(args.folder, name)
        _write_atomically(output, functools.partial(write_figure, name))
        print(f"wrote {output}")
    return 0


def explore_command(args):
    """``convolution explore``: the explorer in a matplotlib window (see `pictures.window`)."""
    import re

    from .pictures.window import explore_window

    settings = {}
    for option, names in (("input", ("height", "width")), ("kernel", ("kernel_height",
                                                                      "kernel_width")),
                          ("stride", ("stride_height", "stride_width")),
                          ("dilation", ("dilation_height", "dilation_width"))):
        value = getattr(args, option)
        if value is not None:
            pair = value if isinstance(value, tuple) else (value, value)
            settings.update(zip(names, pair))
    try:
        explore_window(**settings)
    except (TypeError, ValueError, ImportError, RuntimeError) as error:
        message = str(error)
        for option, names in (("--input", ("height", "width")),
                              ("--kernel", ("kernel_height", "kernel_width")),
                              ("--stride", ("stride_height", "stride_width")),
                              ("--dilation", ("dilation_height", "dilation_width"))):
            for name in names:   # the explorer names its settings; the user typed options
                message = re.sub(rf"\b{name} must", f"{option} must", message)
        raise CommandError(message) from None
    return 0


# --- The parser and main ---

MAIN_EPILOG = f"""\
examples:
  {PROG} filter photo.jpg blurred.jpg --kernel gaussian --size 9
  {PROG} filter photo.jpg edges.png --kernel outline
  {PROG} animate dilation.gif --input 7x7 --kernel 3x3 --dilation 2
  {PROG} explore                # drag sliders in a window: stride, padding, ...
  {PROG} figures                # the README's figures, into files/
  {PROG} filter --help          # every option of the filter command

Run as 'python -m convolution' or, once the package is installed, 'convolution'."""


def build_parser():
    """The argument parser: one sub-parser a command."""
    parser = Parser(
        prog=PROG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Generalized 2-D convolution in Python and NumPy, from the command line.\n"
                    "COMMAND --help shows a command's options.",
        epilog=MAIN_EPILOG)
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND",
                                     required=True)

    filter_parser = commands.add_parser(
        "filter", formatter_class=argparse.RawDescriptionHelpFormatter,
        help="filter an image file with a kernel (blur, sharpen, edges, ...)",
        description="Filter the image INPUT with a kernel and write the result to OUTPUT,\n"
                    "in any format imageio reads and writes (PNG, JPEG, TIFF, BMP, GIF,\n"
                    "WebP, ...), keeping the image's dtype.",
        epilog=FILTER_EPILOG)
    filter_parser.add_argument("input", metavar="INPUT", help="the image to filter")
    filter_parser.add_argument("output", metavar="OUTPUT",
                               help="where to write the result; its extension sets the format")
    filter_parser.add_argument("--kernel", default="gaussian", metavar="NAME|FILE",
                               help="a kernel name from the list below, or a kernel file "
                                    "(default: gaussian)")
    filter_parser.add_argument("--size", type=_ints, metavar="N|HxW",
                               help="kernel size, for the kernels that take one")
    filter_parser.add_argument("--sigma", type=_floats, metavar="S|SHxSW",
                               help="standard deviation of the gaussian kernel, in pixels "
                                    "(default: from the size, as OpenCV does)")
    filter_parser.add_argument("--stride", type=_ints, default=1, metavar="S|SHxSW",
                               help="step between output pixels; 2 halves the size (default: 1)")
    filter_parser.add_argument("--dilation", type=_ints, default=1, metavar="D|DHxDW",
                               help="spacing of the kernel's taps (default: 1, dense)")
    filter_parser.add_argument("--padding", type=_padding, default="same",
                               metavar=f"{'|'.join(PADDING_STRINGS)}|N|HxW|TxBxLxR",
                               help="border added before filtering: a name, N on every side, "
                                    "H above and below and W left and right, or each side "
                                    "(default: same, which keeps the size)")
    filter_parser.add_argument("--padding-mode", default="reflect", choices=list(PADDING_MODES),
                               metavar="MODE",
                               help=f"what the border holds: {', '.join(PADDING_MODES)} "
                                    f"(default: reflect, a mirror image, as OpenCV's "
                                    f"BORDER_REFLECT_101)")
    filter_parser.add_argument("--fill-value", type=_number, default=0, metavar="V",
                               help="the border's value with --padding-mode constant, in the "
                                    "image's units (255 is white in 8-bit images)")
    filter_parser.add_argument("--filter-alpha", action="store_true",
                               help="filter the alpha channel too, instead of keeping it")
    filter_parser.add_argument("--force", action="store_true",
                               help="overwrite OUTPUT if it exists")
    filter_parser.set_defaults(run=filter_command)

    animate_parser = commands.add_parser(
        "animate", formatter_class=argparse.RawDescriptionHelpFormatter,
        help="write an animation of the kernel sliding over the input",
        description="Write a GIF (or an MP4, with ffmpeg) with one frame per output cell,\n"
                    "showing the input cells it reads, for any stride, dilation and padding;\n"
                    "with --transposed, one frame per input cell of the transposed\n"
                    "convolution, showing the output cells it adds into.",
        epilog=f"""examples:
  {PROG} animate stride.gif --input 5x5 --kernel 3x3 --stride 2
  {PROG} animate same.gif --input 5x5 --kernel 4x4 --stride 2 --padding same
  {PROG} animate border.gif --input 4x4 --kernel 3x3 --padding 2 --padding-mode reflect
  {PROG} animate up.gif --input 3x3 --kernel 3x3 --stride 2 --padding 1 --transposed \\
      --output-padding 1           # 3 x 3 -> 6 x 6, as a decoder upsamples
  {PROG} animate sums.gif --input values.txt --kernel kernel.txt   # the values and sums

keeping animations small:
  Every frame is one cell: a 30 x 30 input with --padding same makes 900
  frames, minutes of drawing and megabytes of GIF. The arithmetic shows as
  well on a small input (5 x 5 to 8 x 8). Otherwise --max-frames 60 draws 60
  cells spread evenly from the first to the last, and a smaller --dpi makes
  smaller frames. The frame count is printed before drawing starts; on a
  terminal, a progress line follows.

exit status: 0 on success, 2 for bad input (one line on stderr), 130 when
interrupted; OUTPUT is written only once complete.""")
    animate_parser.add_argument("output", metavar="OUTPUT", help="a .gif or .mp4 file to write")
    animate_parser.add_argument("--input", required=True, type=_shape_or_file,
                                metavar="HxW|FILE",
                                help="input size, e.g. 5x7, or a file of values to draw "
                                     "(.npy, or text: one row a line)")
    animate_parser.add_argument("--kernel", required=True, type=_shape_or_file,
                                metavar="HxW|FILE",
                                help="kernel size, e.g. 3x3, or a kernel file (as filter's); "
                                     "with values for both, each output cell shows its sum")
    animate_parser.add_argument("--stride", type=_ints, default=1, metavar="S|SHxSW",
                                help="step between windows (default: 1)")
    animate_parser.add_argument("--dilation", type=_ints, default=1, metavar="D|DHxDW",
                                help="spacing of the kernel's taps (default: 1)")
    animate_parser.add_argument("--padding", type=_padding, default=0,
                                metavar="P|PHxPW|TxBxLxR|same|valid|full",
                                help="border added around the input (default: 0); with "
                                     "--transposed, cropped off the output (numbers only)")
    animate_parser.add_argument("--padding-mode", choices=list(PADDING_MODES), metavar="MODE",
                                help=f"{', '.join(PADDING_MODES)} (default: zeros)")
    animate_parser.add_argument("--transposed", action="store_true",
                                help="draw the transposed convolution (conv_transpose2d): "
                                     "--input is its input, each frame one input cell adding "
                                     "value x kernel into the output")
    animate_parser.add_argument("--output-padding", type=_ints, metavar="P|PHxPW",
                                help="with --transposed: rows and columns added at the bottom "
                                     "and right of the output, fewer than the stride or the "
                                     "dilation (default: 0)")
    animate_parser.add_argument("--max-frames", type=_max_frames, metavar="N",
                                help="draw at most N cells, spread evenly from the first to "
                                     "the last (default: every cell)")
    animate_parser.add_argument("--fps", type=_positive, default=2.0,
                                help="frames per second (default: 2)")
    animate_parser.add_argument("--dpi", type=_positive, default=72,
                                help="pixels per inch; a cell is at most 0.45 inch "
                                     "(default: 72)")
    animate_parser.add_argument("--force", action="store_true",
                                help="overwrite OUTPUT if it exists")
    animate_parser.set_defaults(run=animate_command)

    explore_parser = commands.add_parser(
        "explore", help="open the explorer: sliders and menus, the picture redrawn",
        description="Open the explorer in a window (matplotlib's widgets): sliders and menus\n"
                    "for the input and kernel sizes, stride, dilation, padding per axis\n"
                    "(numbers, valid, same, full), border mode, flip, the transposed\n"
                    "convolution, channels and groups, and a step through the cells. It\n"
                    "redraws the picture and shows the output-shape formula with its numbers,\n"
                    "the matching conv2d(...) call and the PyTorch code. Needs a display; in\n"
                    "Jupyter, call convolution.explore() instead.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    explore_parser.add_argument("--input", type=_ints, metavar="N|HxW",
                                help="input size to start with, 1 to 32 (default: 5x5)")
    explore_parser.add_argument("--kernel", type=_ints, metavar="N|HxW",
                                help="kernel size to start with, 1 to 7 (default: 3x3)")
    explore_parser.add_argument("--stride", type=_ints, metavar="S|SHxSW",
                                help="stride to start with, 1 to 4 (default: 1)")
    explore_parser.add_argument("--dilation", type=_ints, metavar="D|DHxDW",
                                help="dilation to start with, 1 to 4 (default: 1)")
    explore_parser.set_defaults(run=explore_command)

    figures_parser = commands.add_parser(
        "figures", help="regenerate the README's figures",
        description="Write every figure the README shows into FOLDER (default: files).")
    figures_parser.add_argument("folder", metavar="FOLDER", nargs="?", default="files",
                                help="default: files")
    figures_parser.set_defaults(run=figures_command)

    return parser


def main(argv=None):
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit status.

    Ctrl-C gives status 130 and SIGTERM 143 (128 + the signal's number), each
    with one line on stderr, once every temporary file has been removed. Run
    as a program (``argv`` None), an interrupted run then ends the process at
    once: worker threads may still be filtering strips that nobody will use,
    and waiting for them at exit would keep a stopped process alive (or
    hang, if the interruption landed while the main thread held a lock they
    wait for).
    """
    args = build_parser().parse_args(argv)
    # Warnings wait for the end of the run: an interruption can make a library warn
    # about what it then failed to do (matplotlib: "Unable to import Axes3D"), which
    # would only bury the one line that says the run was interrupted.
    with stop_signals_raise() as signals, warnings.catch_warnings(record=True) as caught:
        try:
            return args.run(args)
        except BaseException as error:
            # Once a signal has come, the run was interrupted, whatever the exception on
            # the way out: a library may have wrapped the KeyboardInterrupt in its own.
            if isinstance(error, (KeyboardInterrupt, Stopped)) and not signals.received:
                signals.received.append(getattr(error, "signum", signal.SIGINT))
            if not signals.received:
                if isinstance(error, CommandError):
                    return report(error)
                if isinstance(error, MemoryError):   # too large an image or parameters
                    return report(f"out of memory: {error or 'the result does not fit'}")
                raise
        finally:
            if not signals.received:
                for warning in caught:
                    warnings.showwarning(warning.message, warning.category, warning.filename,
                                         warning.lineno)
    signum = signals.received[0]
    print(f"{PROG}: interrupted" if signum == signal.SIGINT
          else f"{PROG}: stopped by {signal.Signals(signum).name}", file=sys.stderr)
    status = 128 + signum
    if argv is None:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    return status


if __name__ == "__main__":
    sys.exit(main())
