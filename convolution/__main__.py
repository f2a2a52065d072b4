"""The command line: ``python -m convolution COMMAND ...``, also installed as ``convolution``.

Commands: ``filter`` (filter an image file), ``animate`` (an animation of the
kernel sliding) and ``figures`` (regenerate the README's figures). Each is a
function ``<name>_command(args)`` and one ``add_parser`` block in
`build_parser`. Errors the user can fix are raised as `CommandError` and
reported by `main` as one line on stderr with exit status 2, without a
traceback; argparse's own usage errors follow the same rule. Files are
written to a temporary file beside the target and renamed into place only
once complete, so no error or interruption leaves a half-written file.
"""
import argparse
import contextlib
import functools
import math
import os
import stat
import sys
import tempfile
import time
import warnings

import numpy as np

from .image import apply_filter_to_image
from .kernels import KERNELS, get_kernel, kernel_parameters
from .padding import PADDING_MODES

PROG = "convolution"

#: Exit status for errors in the command line or its input, as argparse uses.
EXIT_USAGE = 2


class CommandError(Exception):
    """A problem with the user's input: reported on one line, exit status 2."""


def report(message):
    """Print ``message`` as one line on stderr; return the exit status for it."""
    print(f"{PROG}: error: {' '.join(str(message).split())}", file=sys.stderr)
    return EXIT_USAGE


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line, like the commands' own."""

    def error(self, message):
        report(f"{message} (see '{self.prog} --help')")
        sys.exit(EXIT_USAGE)


# --- Argument types: text from the command line to the library's values ---

def _split(text, convert, counts):
    """'3x5' -> (3, 5) with ``convert``: a tuple of ``counts`` values, or None."""
    try:
        values = tuple(convert(part) for part in text.lower().split("x"))
    except ValueError:
        return None
    return values if len(values) in counts else None


def _one_or_pair(values):
    """(5,) -> 5, (3, 5) -> (3, 5): one value means the same for both axes."""
    return values[0] if len(values) == 1 else values


def _ints(text):
    """'5' -> 5 and '3x5' -> (3, 5): one value for both axes, or height x width."""
    values = _split(text, int, (1, 2))
    if values is None:
        raise argparse.ArgumentTypeError(f"expected N or HxW with whole numbers, got {text!r}")
    return _one_or_pair(values)


def _floats(text):
    """'1.5' -> 1.5 and '1x2.5' -> (1.0, 2.5)."""
    values = _split(text, float, (1, 2))
    if values is None:
        raise argparse.ArgumentTypeError(f"expected S or SHxSW with numbers, got {text!r}")
    return _one_or_pair(values)


def _pair(text):
    """'3x5' -> (3, 5): exactly height x width."""
    values = _split(text, int, (2,))
    if values is None:
        raise argparse.ArgumentTypeError(f"expected HxW, two whole numbers, got {text!r}")
    return values


def _padding(text):
    """'same', 'valid', 'full', or padding as N, HxW or TOPxBOTTOMxLEFTxRIGHT."""
    if text in ("same", "valid", "full"):
        return text
    values = _split(text, int, (1, 2, 4))
    if values is None:
        raise argparse.ArgumentTypeError(
            f"expected same, valid, full, N, HxW or TOPxBOTTOMxLEFTxRIGHT, got {text!r}")
    return (values[:2], values[2:]) if len(values) == 4 else _one_or_pair(values)


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
  line, separated by spaces, e.g. a 3 x 3 kernel in three lines of three.
  A name wins over a file of the same name; write ./box to mean the file.

examples:
  {PROG} filter photo.jpg blurred.jpg                      # gaussian 5 x 5
  {PROG} filter photo.jpg blurred.jpg --kernel gaussian --size 9 --sigma 3
  {PROG} filter photo.png edges.png --kernel outline
  {PROG} filter photo.png streak.png --kernel motion_blur --size 1x15
  {PROG} filter photo.png half.png --kernel box --size 2 --stride 2
  {PROG} filter scan.tif out.tif --kernel my_kernel.txt --padding-mode replicate

what it does:
  Every channel is filtered with the same kernel (cross-correlation: the
  kernel is not flipped). The alpha channel of grey+alpha and RGBA images is
  kept, not filtered, unless --filter-alpha. The result keeps the image's
  dtype: integers are rounded and clipped to their range (a sharpened white
  pixel stays white), floats are not clipped. 1-bit images are filtered as
  8-bit greyscale (0 and 255) and written as 8-bit. With the defaults the
  output has the input's size; --stride 2 halves it.

  The format is chosen from OUTPUT's extension, by imageio. Not every format
  holds every dtype: JPEG and PNG hold 8-bit colour (PNG also 16-bit grey),
  so write 16-bit colour or float images as .tif. Apart from 1-bit images,
  nothing is converted: a format that cannot hold the image is an error.

  The result is written to a temporary file beside OUTPUT and renamed into
  place, so an interrupted run leaves no half-written image. INPUT is never
  changed, and OUTPUT may not be INPUT.

exit status: 0 on success, 2 for bad input (one line on stderr), 130 when
interrupted."""


def _load_kernel_file(path):
    """The kernel in a .npy file, or in a text file of whitespace-separated numbers."""
    is_npy = path.lower().endswith(".npy")
    try:
        if is_npy:
            with open(path, "rb") as file:
                magic = file.read(6)
            # np.load would take anything else for a pickle, and say so confusingly.
            if magic != b"\x93NUMPY":
                raise CommandError(f"kernel file {path!r} is not a NumPy .npy file")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # loadtxt warns on an empty file; we refuse it
            if is_npy:
                kernel = np.load(path, allow_pickle=False)
            else:
                kernel = np.loadtxt(path, ndmin=2, dtype=np.float64)
    except (OSError, ValueError, EOFError) as error:   # EOFError: a truncated .npy
        raise CommandError(f"cannot read kernel file {path!r}: {error}") from None
    if (kernel.ndim != 2 or kernel.size == 0 or kernel.dtype.kind not in "biuf"
            or not np.isfinite(kernel).all()):
        raise CommandError(f"kernel file {path!r} must hold a 2-D array of finite numbers, "
                           f"got shape {kernel.shape} and dtype {kernel.dtype}")
    return kernel


def _kernel(args):
    """The kernel --kernel, --size and --sigma ask for."""
    params = {key: value for key, value in (("size", args.size), ("sigma", args.sigma))
              if value is not None}
    if args.kernel in KERNELS:
        try:
            return get_kernel(args.kernel, **params)
        except (TypeError, ValueError) as error:
            raise CommandError(error) from None
    if os.path.isfile(args.kernel):
        if params:
            raise CommandError(f"--{next(iter(params))} applies to library kernels, "
                               f"not to the kernel file {args.kernel!r}")
        return _load_kernel_file(args.kernel)
    raise CommandError(f"unknown kernel {args.kernel!r}: not a kernel name "
                       f"({', '.join(KERNELS)}) nor a file")


def _check_output(target, force, extensions=None):
    """Refuse, before any work is done, an OUTPUT that must not or cannot be written."""
    folder = os.path.dirname(os.path.abspath(target))
    if not os.path.isdir(folder):
        raise CommandError(f"cannot write OUTPUT {target!r}: folder {folder!r} does not exist")
    if os.path.isdir(target):
        raise CommandError(f"OUTPUT {target!r} is a folder; give a file name, "
                           f"e.g. {os.path.join(target, 'result.png')!r}")
    extension = os.path.splitext(target)[1].lower()
    if not extension:
        raise CommandError(f"OUTPUT {target!r} has no extension, from which the format is "
                           f"chosen; add one, e.g. {target + '.png'!r}")
    if extensions is not None and extension not in extensions:
        raise CommandError(f"OUTPUT must end in {' or '.join(extensions)}, got {target!r}")
    if os.path.lexists(target) and not force:
        raise CommandError(f"OUTPUT {target!r} exists; pass --force to overwrite it")


def _check_paths(source, target, force):
    """Refuse before any work is done: missing INPUT, OUTPUT that must not be written."""
    if not os.path.exists(source):
        raise CommandError(f"INPUT {source!r} does not exist")
    if os.path.isdir(source):
        raise CommandError(f"INPUT {source!r} is a folder, not an image file")
    # samefile compares the files themselves (device and inode), so it sees through
    # symbolic and hard links, '..' and other spellings of the same path.
    if os.path.exists(target) and os.path.samefile(source, target):
        raise CommandError(f"OUTPUT {target!r} is the same file as INPUT {source!r}; "
                           f"write the result to another file")
    _check_output(target, force)


def _new_file_mode(target):
    """Permission bits for OUTPUT: those of the file it replaces, or the umask's default."""
    if os.path.exists(target):
        return stat.S_IMODE(os.stat(target).st_mode)
    umask = os.umask(0)   # reading the umask means setting it; put it straight back
    os.umask(umask)
    return 0o666 & ~umask


def _write_atomically(path, write):
    """Call ``write(temporary)`` on a file beside ``path``, then rename it to ``path``.

    The rename is atomic, so ``path`` is either untouched or the whole new
    file, even if the run is interrupted; the temporary file is removed on
    every way out, KeyboardInterrupt included. ``write`` gets a path with
    ``path``'s extension, from which imageio and matplotlib pick the format.
    """
    folder = os.path.dirname(os.path.abspath(path))
    stem, extension = os.path.splitext(os.path.basename(path))
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{stem}.", suffix=extension, dir=folder)
    except OSError as error:
        raise CommandError(f"cannot write OUTPUT {path!r}: {error.strerror} "
                           f"in folder {folder!r}") from None
    os.close(handle)
    try:
        write(temporary)
        try:
            os.chmod(temporary, _new_file_mode(path))   # mkstemp's is 0600, private
            os.replace(temporary, path)
        except OSError as error:
            raise CommandError(f"cannot write OUTPUT {path!r}: {error.strerror}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):   # gone once renamed
            os.remove(temporary)


def _imageio():
    """imageio's v3 API, imported here so that ``import convolution`` does not need it."""
    try:
        import imageio.v3
    except ImportError:
        raise CommandError("reading and writing images needs imageio: "
                           "pip install imageio") from None
    return imageio.v3


def _read_image(path):
    """The image in ``path``, as imageio reads it; the first axis of a one-frame batch dropped."""
    iio = _imageio()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # a warning would break the one-line rule
            image = iio.imread(path)
    # imageio raises many types (OSError, ValueError, SyntaxError from Pillow, ...)
    # for files that are not images; all of them mean the same to the user.
    except Exception as error:
        raise CommandError(f"cannot read INPUT {path!r} as an image: {error}") from None
    if image.ndim == 4:   # GIF and other animated formats come as (frames, H, W, C)
        if image.shape[0] != 1:
            raise CommandError(f"INPUT {path!r} holds {image.shape[0]} frames; the filter "
                               f"command takes a single image")
        image = image[0]
    if image.dtype == np.bool_:
        # A 1-bit image has no grey levels to hold a blur: filter it as 8-bit.
        image = image.astype(np.uint8) * np.uint8(255)
    return image


def _write_image(path, image):
    """Write ``image`` to ``path`` through a temporary file (see `_write_atomically`)."""
    iio = _imageio()
    extension = os.path.splitext(path)[1]

    def write(temporary):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                iio.imwrite(temporary, image, extension=extension.lower())
        except Exception as error:   # as in _read_image
            channels = image.shape[2] if image.ndim == 3 else 1
            reason = str(error).replace(temporary, path)   # the name the user knows
            raise CommandError(
                f"cannot write OUTPUT {path!r}: imageio could not save a {image.dtype} image "
                f"with {channels} channel{'s' * (channels > 1)} as {extension} ({reason}); "
                f".tif holds every dtype") from None

    _write_atomically(path, write)


def _check_format(path):
    """Refuse an OUTPUT extension that names no image format imageio knows.

    Left to itself, imageio tries every plugin on an unknown extension, and
    with tifffile installed it would write a TIFF named ``out.xyz``.
    """
    _imageio()
    from imageio.config import known_extensions
    extension = os.path.splitext(path)[1].lower()
    if extension not in known_extensions:
        raise CommandError(f"cannot write OUTPUT {path!r}: imageio knows no image format "
                           f"{extension!r}; use e.g. .png, .jpg or .tif")


def filter_command(args):
    """``convolution filter INPUT OUTPUT``: filter an image file into another."""
    _check_paths(args.input, args.output, args.force)
    _check_format(args.output)
    kernel = _kernel(args)
    image = _read_image(args.input)
    try:
        result = apply_filter_to_image(
            image, kernel, stride=args.stride, dilation=args.dilation, padding=args.padding,
            padding_mode=args.padding_mode, fill_value=args.fill_value,
            filter_alpha=args.filter_alpha)
    except (TypeError, ValueError) as error:
        raise CommandError(error) from None
    _write_image(args.output, result)
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


class _Progress:
    """'frame 12 of 900' on one line of stderr, rewritten in place: for a terminal only."""

    def __init__(self, stream):
        self.stream, self.width, self.last = stream, 0, -math.inf

    def __call__(self, done, total):
        now = time.monotonic()
        if done < total and now - self.last < 0.25:    # a few updates a second are enough
            return
        self.last = now
        text = f"frame {done} of {total}" + (", saving" if done == total else "")
        self.stream.write("\r" + text.ljust(self.width))
        self.stream.flush()
        self.width = len(text)

    def clear(self):
        """Blank the line, so that whatever is printed next starts at its beginning."""
        if self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()


def animate_command(args):
    """``convolution animate OUTPUT --input HxW --kernel HxW``: the kernel sliding or spreading."""
    from .animation import (ANIMATION_FORMATS, animate_conv2d, animate_conv_transpose2d,
                            frame_steps)
    from .plot import require_matplotlib
    from .shapes import conv_output_shape, conv_transpose_geometry

    _check_output(args.output, args.force, ANIMATION_FORMATS)
    try:
        if args.transposed:
            if args.padding_mode not in (None, "zeros"):
                raise CommandError(f"--padding-mode {args.padding_mode} does not apply with "
                                   f"--transposed: the transposed convolution crops its padding "
                                   f"off the result instead of filling it")
            params = dict(output_padding=0 if args.output_padding is None
                          else args.output_padding)
            conv_transpose_geometry(args.input, args.kernel, args.stride, args.dilation,
                                    args.padding, params["output_padding"])
            animate, cells, what = animate_conv_transpose2d, math.prod(args.input), "input"
        else:
            if args.output_padding is not None:
                raise CommandError("--output-padding applies only with --transposed")
            params = dict(padding_mode=args.padding_mode or "zeros")
            shape = conv_output_shape(args.input, args.kernel, args.stride, args.dilation,
                                      args.padding)
            animate, cells, what = animate_conv2d, math.prod(shape), "output"
        require_matplotlib()
    except (TypeError, ValueError, ImportError) as error:
        raise CommandError(error) from None
    frames = len(frame_steps(cells, args.max_frames))
    plan = (f"{frames} frames, one per {what} cell" if frames == cells
            else f"{frames} frames, for {frames} of the {cells} {what} cells")
    if frames > MANY_FRAMES and args.max_frames is None:
        plan += " (--max-frames N draws fewer)"
    progress = _Progress(sys.stderr) if sys.stderr.isatty() else None

    def write(temporary):
        print(f"writing {args.output}: {plan}", flush=True)
        try:
            animate(args.input, args.kernel, args.stride, args.dilation, args.padding,
                    path=temporary, fps=args.fps, dpi=args.dpi, max_frames=args.max_frames,
                    progress=progress, **params)
        except (TypeError, ValueError, ImportError, OSError) as error:
            raise CommandError(str(error).replace(temporary, args.output)) from None
        finally:
            if progress is not None:
                progress.clear()

    _write_atomically(args.output, write)
    print(f"wrote {args.output}")
    return 0


def figures_command(args):
    """``convolution figures [FOLDER]``: regenerate the README's figures (see `figures.FIGURES`)."""
    from .figures import FIGURES, write_figure
    from .plot import require_matplotlib

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


# --- The parser and main ---

MAIN_EPILOG = f"""\
examples:
  {PROG} filter photo.jpg blurred.jpg --kernel gaussian --size 9
  {PROG} filter photo.jpg edges.png --kernel outline
  {PROG} animate dilation.gif --input 7x7 --kernel 3x3 --dilation 2
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
                               metavar="same|valid|full|N|HxW",
                               help="border added before filtering (default: same, which "
                                    "keeps the size)")
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
    animate_parser.add_argument("--input", required=True, type=_pair, metavar="HxW",
                                help="input size, e.g. 5x7")
    animate_parser.add_argument("--kernel", required=True, type=_pair, metavar="HxW",
                                help="kernel size, e.g. 3x3")
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

    figures_parser = commands.add_parser(
        "figures", help="regenerate the README's figures",
        description="Write every figure the README shows into FOLDER (default: files).")
    figures_parser.add_argument("folder", metavar="FOLDER", nargs="?", default="files",
                                help="default: files")
    figures_parser.set_defaults(run=figures_command)

    return parser


def main(argv=None):
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except CommandError as error:
        return report(error)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
