"""Animations of the convolution: the kernel sliding, one frame per output cell.

Each frame is `plot.Conv2dPicture` repainted for the next output cell: one
figure is built and only its cells' colours, the kernel's frame and the title
change from frame to frame. matplotlib is imported inside the function.
"""
import math
import numbers
import os

import numpy as np

from .plot import conv2d_picture, require_matplotlib

__all__ = ["animate_conv2d", "ANIMATION_FORMATS"]

#: The file name endings `animate_conv2d` writes; '.mp4' needs ffmpeg.
ANIMATION_FORMATS = (".gif", ".mp4")


def animate_conv2d(input_shape, kernel_shape, stride=1, dilation=1, padding=0, *, path,
                   padding_mode="zeros", fill_value=0, fps=2, matrix=None, kernel=None,
                   dpi=72):
    """Write an animation of the kernel sliding: one frame per output cell, row by row.

    Parameters
    ----------
    input_shape, kernel_shape, stride, dilation, padding, padding_mode, fill_value, matrix, kernel
        As for `plot_conv2d`.
    path : str or os.PathLike
        Where to write: a '.gif', or an '.mp4' when ffmpeg is installed.
    fps : number, default 2
        Frames per second.
    dpi : number, default 72
        Pixels per inch; a cell is at most 0.45 inch wide.

    Returns
    -------
    str or os.PathLike
        ``path``.

    Raises
    ------
    ImportError
        matplotlib is not installed.
    TypeError, ValueError
        As for `plot_conv2d`; ``path`` not ending in '.gif' or '.mp4'; ``fps``
        or ``dpi`` not a positive number.
    FileNotFoundError
        An '.mp4' was asked for and ffmpeg is not on the PATH.

    Notes
    -----
    Every argument is checked before anything is written. One figure is
    drawn and repainted for each frame (its cells' colours, the kernel's
    frame, the title), so the cost is one render per output cell, about
    0.02 to 0.05 s each: keep animations to a few dozen cells.

    Examples
    --------
    >>> import os, tempfile
    >>> from PIL import Image
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = animate_conv2d((5, 5), (3, 3), stride=2, path=os.path.join(folder, "a.gif"))
    ...     with Image.open(path) as gif:
    ...         print(gif.n_frames, "frames:", gif.info["duration"], "ms each")
    4 frames: 500 ms each
    """
    matplotlib = require_matplotlib()
    from matplotlib import animation

    suffix = os.path.splitext(os.fspath(path))[1].lower()
    if suffix not in ANIMATION_FORMATS:
        raise ValueError(f"path must end in {' or '.join(map(repr, ANIMATION_FORMATS))}, "
                         f"got {path!r}")
    for name, value in (("fps", fps), ("dpi", dpi)):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
            raise TypeError(f"{name} must be a positive number, got {value!r}")
        if not 0 < value < math.inf:
            raise ValueError(f"{name} must be a positive number, got {value!r}")
    picture = conv2d_picture(input_shape, kernel_shape, stride, dilation, padding,
                             padding_mode, fill_value, matrix, kernel, None)
    if suffix == ".mp4":
        if not animation.writers.is_available("ffmpeg"):
            raise FileNotFoundError(f"writing an '.mp4' needs ffmpeg, which is not on the PATH "
                                    f"(matplotlib's animation.ffmpeg_path is "
                                    f"{matplotlib.rcParams['animation.ffmpeg_path']!r}); "
                                    f"install it or write a '.gif'")
        writer = animation.FFMpegWriter(fps=fps)
    else:
        writer = animation.PillowWriter(fps=fps)
    fig = picture.ax.figure
    # Frame sizes are whole pixels: round the figure so that width * dpi is one.
    fig.set_size_inches(np.round(fig.get_size_inches() * dpi) / dpi)
    with writer.saving(fig, path, dpi):
        for step in range(picture.frames):
            picture.show(step)
            writer.grab_frame()
    return path
