"""The commands: ``filter``, ``animate``, ``figures`` and ``explore``, one function each.

Each ``<name>_command(args)`` takes the parsed arguments, checks every
option before it touches a file, and raises `CommandError` for what the user
can fix. The pictures' commands import matplotlib only when they run.
"""
import functools
import math
import os

from .. import driver
from ..images.filter import apply_filter_to_image, check_arguments
from ..images.kernels import KERNELS, get_kernel
from ..padding import check_padding_mode
from .files import (CommandError, check_format, check_output_path, check_overwrite,
                    check_paths, read_image, read_kernel_file, write_atomically, write_image)
from .options import option_error
from .progress import progress_bar


# --- The filter command ---

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
        return read_kernel_file(args.kernel)
    raise CommandError(f"unknown kernel {args.kernel!r}: not a kernel name "
                       f"({', '.join(KERNELS)}) nor a file")


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


def _shape_or_values(given, option):
    """``given`` as the animate functions take it: a shape, or the values read from a file."""
    if not isinstance(given, str):
        return given, given
    try:
        values = read_kernel_file(given)
    except CommandError as error:   # the reader names kernel files; this one is --input's too
        raise CommandError(f"{option}: " + str(error).replace("kernel file", "file")) from None
    return values, values.shape


def animate_command(args):
    """``convolution animate OUTPUT --input HxW|FILE --kernel HxW|FILE``: the kernel sliding."""
    from ..pictures.animation import (ANIMATION_FORMATS, animate_conv2d,
                                     animate_conv_transpose2d, frame_steps)
    from ..pictures.grid import require_matplotlib
    from ..geometry import conv_output_shape, conv_transpose_geometry

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

    write_atomically(args.output, write)
    print(f"wrote {args.output}")
    return 0


def figures_command(args):
    """``convolution figures [FOLDER]``: regenerate the README's figures (see `figures.FIGURES`)."""
    from ..pictures.figures import FIGURES, write_figure
    from ..pictures.grid import require_matplotlib

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
        write_atomically(output, functools.partial(write_figure, name))
        print(f"wrote {output}")
    return 0


def explore_command(args):
    """``convolution explore``: the explorer in a matplotlib window (see `pictures.window`)."""
    import re

    from ..pictures.window import explore_window

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
