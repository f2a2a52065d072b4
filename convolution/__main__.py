"""The command line: ``python -m convolution COMMAND ...``; ``--help`` lists the commands.

Each command is one function taking the parsed arguments. Bad input of any
kind (a malformed option, an impossible convolution, an unwritable path)
ends with one line on stderr and exit status 2, and leaves no file behind:
outputs are written to a temporary file beside the target and moved into
place only once complete.
"""
import argparse
import contextlib
import functools
import os
import sys
import tempfile

# Errors that mean "the user asked for something that cannot be done": printed
# as one line. Anything else is a bug and keeps its traceback.
USER_ERRORS = (ValueError, TypeError, OSError, ImportError)

# The README's 9 x 14 example (README.md, "Usage"), drawn with its values.
README_MATRIX = [[1, 4, 4, 2, 1, 0, 0, 1, 0, 0, 3, 3, 3, 4],
                 [0, 2, 0, 2, 0, 3, 4, 4, 2, 1, 1, 3, 0, 4],
                 [1, 1, 0, 0, 3, 4, 2, 4, 4, 2, 3, 0, 0, 4],
                 [4, 0, 1, 2, 0, 2, 0, 3, 3, 3, 0, 4, 1, 0],
                 [3, 0, 0, 3, 3, 3, 2, 0, 2, 1, 1, 0, 4, 2],
                 [2, 4, 3, 1, 1, 0, 2, 1, 3, 4, 4, 0, 2, 3],
                 [2, 4, 3, 3, 2, 1, 4, 0, 3, 4, 1, 2, 0, 0],
                 [2, 1, 0, 1, 1, 2, 2, 3, 0, 0, 1, 2, 4, 2],
                 [3, 3, 1, 1, 1, 1, 4, 4, 2, 3, 2, 2, 2, 3]]
README_KERNEL = [[0, 1, 3, 3, 2], [0, 1, 3, 1, 3], [1, 1, 2, 0, 2], [2, 2, 3, 2, 0],
                 [1, 3, 1, 2, 0]]

#: The README's figures: file name -> arguments of animate_conv2d (.gif) or plot_conv2d (.png).
FIGURES = {
    "stride.gif": dict(input_shape=(5, 5), kernel_shape=(3, 3), stride=2),
    "padding.gif": dict(input_shape=(4, 4), kernel_shape=(3, 3), padding=1),
    "dilation.gif": dict(input_shape=(7, 7), kernel_shape=(3, 3), dilation=2),
    "same-stride-2-even-kernel.gif": dict(input_shape=(5, 5), kernel_shape=(4, 4), stride=2,
                                          padding="same"),
    "asymmetric-padding.gif": dict(input_shape=(4, 4), kernel_shape=(3, 3),
                                   padding=((0, 1), (2, 0))),
    "reflect.gif": dict(input_shape=(4, 4), kernel_shape=(3, 3), stride=2, padding=2,
                        padding_mode="reflect"),
    "readme-example.png": dict(input_shape=(9, 14), kernel_shape=(5, 5), stride=(2, 1),
                               dilation=(1, 2), matrix=README_MATRIX, kernel=README_KERNEL,
                               step=8),
}


class _Parser(argparse.ArgumentParser):
    """argparse, with its usage errors on one line, like every other error here."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _ints(text, option, form, counts, words=()):
    """Integers separated by 'x' ('3', '3x2', ...) as an int or pairs; ``words`` pass through.

    ``counts`` are the numbers of integers accepted; four make padding's
    ``((top, bottom), (left, right))``. ``form`` describes them in the error.
    """
    if text in words:
        return text
    try:
        values = tuple(int(part) for part in text.lower().split("x"))
    except ValueError:
        values = ()
    if len(values) not in counts:
        raise ValueError(f"{option} must be {form}, got {text!r}")
    if len(values) == 1:
        return values[0]
    if len(values) == 4:
        return values[:2], values[2:]
    return values


def _write_atomically(output, force, write):
    """Run ``write(temporary_path)``, then move the file to ``output``.

    Nothing is left behind when ``write`` fails, and an existing ``output``
    is replaced only with ``force``.
    """
    if os.path.isdir(output):
        raise IsADirectoryError(f"{output} is a folder; give a file name")
    if os.path.exists(output) and not force:
        raise FileExistsError(f"{output} exists; pass --force to replace it")
    folder = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"folder {folder} does not exist")
    # Same folder, so that os.replace is a rename; same suffix, which picks the format.
    handle, temporary = tempfile.mkstemp(suffix=os.path.splitext(output)[1],
                                         prefix=".convolution-", dir=folder)
    os.close(handle)
    try:
        write(temporary)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)   # mkstemp's 0600 is not what a figure wants
        os.replace(temporary, output)
    except BaseException:              # Ctrl-C too: never leave a partial file
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def animate(args):
    """``animate OUTPUT --input HxW --kernel HxW ...``: write the sliding-kernel animation."""
    from .animation import ANIMATION_FORMATS, animate_conv2d

    # Checked here too, so that the message names OUTPUT, not the temporary file.
    if os.path.splitext(args.output)[1].lower() not in ANIMATION_FORMATS:
        raise ValueError(f"OUTPUT must end in {' or '.join(ANIMATION_FORMATS)}, "
                         f"got {args.output!r}")

    def write(path):
        animate_conv2d(
            _ints(args.input, "--input", "HxW, two integers", (2,)),
            _ints(args.kernel, "--kernel", "HxW, two integers", (2,)),
            _ints(args.stride, "--stride", "S or SHxSW, integers", (1, 2)),
            _ints(args.dilation, "--dilation", "D or DHxDW, integers", (1, 2)),
            _ints(args.padding, "--padding", "P, PHxPW or TOPxBOTTOMxLEFTxRIGHT, integers, "
                  "or one of same, valid, full", (1, 2, 4), ("same", "valid", "full")),
            path=path, padding_mode=args.padding_mode, fps=args.fps)

    _write_atomically(args.output, args.force, write)
    print(f"wrote {args.output}")


def figures(args):
    """``figures [FOLDER]``: regenerate the README's figures (see `FIGURES`)."""
    from .animation import animate_conv2d
    from .plot import plot_conv2d

    def write(name, path):
        if name.endswith(".png"):
            plot_conv2d(**FIGURES[name]).savefig(path, dpi=90)
        else:
            animate_conv2d(**FIGURES[name], path=path, dpi=80)

    os.makedirs(args.folder, exist_ok=True)
    for name in FIGURES:
        output = os.path.join(args.folder, name)
        _write_atomically(output, True, functools.partial(write, name))
        print(f"wrote {output}")


def _parser():
    """The parser of every command; each subparser names its function as ``run``."""
    parser = _Parser(prog="python -m convolution",
                     description="Pictures of the convolution, from the command line. "
                                 "COMMAND --help shows a command's options.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub = commands.add_parser("animate", help="write an animation of the kernel sliding",
                              description="Write a GIF (or an MP4, with ffmpeg) with one frame "
                                          "per output cell, showing the input cells it reads.")
    sub.add_argument("output", metavar="OUTPUT", help="a .gif or .mp4 file to write")
    sub.add_argument("--input", required=True, metavar="HxW", help="input size, e.g. 5x7")
    sub.add_argument("--kernel", required=True, metavar="HxW", help="kernel size, e.g. 3x3")
    sub.add_argument("--stride", default="1", metavar="S|SHxSW", help="default 1")
    sub.add_argument("--dilation", default="1", metavar="D|DHxDW", help="default 1")
    sub.add_argument("--padding", default="0", metavar="P|PHxPW|TxBxLxR|same|valid|full",
                     help="default 0")
    sub.add_argument("--padding-mode", default="zeros",
                     help="zeros (default), constant, reflect, symmetric, replicate, circular")
    sub.add_argument("--fps", type=float, default=2.0, help="frames per second, default 2")
    sub.add_argument("--force", action="store_true", help="replace OUTPUT if it exists")
    sub.set_defaults(run=animate)

    sub = commands.add_parser("figures", help="regenerate the README's figures",
                              description="Write every figure the README shows into FOLDER.")
    sub.add_argument("folder", metavar="FOLDER", nargs="?", default="files",
                     help="default: files")
    sub.set_defaults(run=figures)
    return parser


def _run(command, args, prog):
    """Run one command; a user error becomes one line on stderr and status 2."""
    try:
        command(args)
    except USER_ERRORS as error:
        message = " ".join(str(error).split())
        print(f"{prog} {args.command}: error: {message}", file=sys.stderr)
        return 2
    return 0


def main(argv=None):
    """Parse ``argv`` (default: ``sys.argv[1:]``), run the command, return the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    return _run(args.run, args, parser.prog)


if __name__ == "__main__":
    sys.exit(main())
