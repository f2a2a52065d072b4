"""The argument parser: one sub-parser a command, with the help each shows."""
import argparse

from .. import __version__
from ..images.kernels import KERNELS, kernel_parameters
from ..padding import PADDING_MODES
from ..shapes import PADDING_STRINGS
from .commands import animate_command, explore_command, figures_command, filter_command
from .options import (PROG, Parser, _floats, _ints, _max_frames, _number, _padding, _positive,
                      _shape_or_file)


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
