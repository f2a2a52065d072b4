"""Animations of the convolution: the kernel sliding, one frame per cell.

Each frame is a picture of ``forward.py`` or ``transposed.py`` repainted for
the next cell: one figure is built and only its cells' colours, the kernel's
frame, the labels and the title change from frame to frame.

`Animation` holds such a figure and its frames. In Jupyter it shows itself
as a player (``_repr_html_``: matplotlib's JavaScript player, with play,
pause and a step through the frames), and `Animation.save` writes it as a
GIF or an MP4 with `write_animation`. `animate_conv2d` (one frame per output
cell) and `animate_conv_transpose2d` (one frame per input cell) return one,
or write it when given a ``path``. matplotlib is imported inside the
functions.
"""
import contextlib
import math
import numbers
import operator
import os
import tempfile

import numpy as np

from .forward import conv2d_picture
from .grid import COLORS, require_matplotlib
from .transposed import conv_transpose2d_picture

__all__ = ["Animation", "animate_conv2d", "animate_conv_transpose2d", "write_animation",
           "frame_steps", "ANIMATION_FORMATS"]

#: The file name endings the animations are written in; '.mp4' needs ffmpeg.
ANIMATION_FORMATS = (".gif", ".mp4")


def frame_steps(cells, max_frames=None):
    """The cells an animation of ``cells`` frames draws: all, or ``max_frames`` spread evenly.

    The first and the last cell are always drawn (for ``max_frames`` of 2
    or more); the others are spaced as evenly as whole numbers allow, so an
    animation capped at 60 frames still shows the kernel crossing the whole
    input, in bigger steps.

    Examples
    --------
    >>> frame_steps(4)
    range(0, 4)
    >>> frame_steps(900, max_frames=5)
    [0, 225, 450, 674, 899]
    """
    if max_frames is None or max_frames >= cells:
        return range(cells)
    if max_frames == 1:
        return [0]
    # k * (cells - 1) / (max_frames - 1), rounded: the gaps are >= 1, so no cell twice.
    return [(k * (cells - 1) + (max_frames - 1) // 2) // (max_frames - 1)
            for k in range(max_frames)]


def _check_options(path, fps, dpi, max_frames, progress):
    """Refuse bad writing options; return the format ('.gif' or '.mp4'; None without a path)."""
    suffix = None
    if path is not None:
        suffix = os.path.splitext(os.fspath(path))[1].lower()
        if suffix not in ANIMATION_FORMATS:
            raise ValueError(f"path must end in {' or '.join(map(repr, ANIMATION_FORMATS))}, "
                             f"got {path!r}")
    for name, value in (("fps", fps), ("dpi", dpi)):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
            raise TypeError(f"{name} must be a positive number, got {value!r}")
        if not 0 < value < math.inf:
            raise ValueError(f"{name} must be a positive number, got {value!r}")
    if max_frames is not None:
        if isinstance(max_frames, (bool, np.bool_)) or not hasattr(max_frames, "__index__"):
            raise TypeError(f"max_frames must be a positive int or None, got {max_frames!r}")
        if operator.index(max_frames) < 1:
            raise ValueError(f"max_frames must be a positive int or None, got {max_frames!r}")
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be a function progress(done, total) or None, "
                        f"got {progress!r}")
    return suffix


#: Colours in a GIF's palette. Fewer than 256 leaves Pillow a free index, with which it
#: makes the unchanged pixels of each frame transparent: the 64 frames of an 8 x 8 input
#: took 318 kB with 256 colours, 176 kB with 128, 163 kB with 64.
PALETTE_SIZE = 128


def _rgb_bytes(colour):
    """A matplotlib colour as three bytes."""
    from matplotlib.colors import to_rgb

    return [round(channel * 255) for channel in to_rgb(colour)]


def _codes(frame):
    """An RGB frame, shape (H, W, 3) uint8, as one 24-bit integer a pixel."""
    frame = frame.astype(np.uint32)
    return (frame[..., 0] << 16) | (frame[..., 1] << 8) | frame[..., 2]


class _Palette:
    """One palette for every frame of a GIF: the commonest colours of a few frames.

    Every frame is mapped onto it without dithering, so a pixel that does not
    change keeps its index from frame to frame, and Pillow stores each frame
    as the rectangle that changed. The commonest colours are the flat ones
    (the cells, the background), which so stay exact, as do the colours
    given as ``exact``; the rarest shades of antialiased edges take the
    nearest colour kept. (Pillow's own mapping onto a given palette is
    approximate: white came out as 252.)
    """

    def __init__(self, frames, exact=()):
        colours, counts = np.unique(np.concatenate([_codes(f).ravel() for f in frames]),
                                    return_counts=True)
        # The colours in `exact` first (the roles' colours), then the commonest others.
        exact = _codes(np.array([_rgb_bytes(colour) for colour in exact], np.uint8))
        common = colours[np.argsort(-counts, kind="stable")]
        self.codes = np.concatenate([exact, common[~np.isin(common, exact)]])[:PALETTE_SIZE]
        self.rgb = np.stack([self.codes >> 16, (self.codes >> 8) & 255, self.codes & 255], -1)
        self.index = np.full(1 << 24, -1, np.int16)   # 24-bit colour -> index; 32 MiB
        self.index[self.codes] = np.arange(len(self.codes))

    def image(self, frame):
        """``frame`` as a palette ('P') PIL image."""
        from PIL import Image

        codes = _codes(frame)
        indices = self.index[codes]
        if (indices < 0).any():   # colours not seen yet: the nearest kept one
            new = np.unique(codes[indices < 0])
            rgb = np.stack([new >> 16, (new >> 8) & 255, new & 255], -1).astype(np.int64)
            distance = ((rgb[:, None, :] - self.rgb[None, :, :].astype(np.int64)) ** 2).sum(-1)
            self.index[new] = distance.argmin(1)
            indices = self.index[codes]
        image = Image.fromarray(indices.astype(np.uint8), "P")
        image.putpalette(self.rgb.astype(np.uint8).ravel().tolist())
        return image


def _write_gif(path, figure, show, steps, fps, dpi, progress):
    """Draw every frame, map it onto one palette, save them all as one GIF with Pillow."""
    figure.set_dpi(dpi)

    def frame(step):
        show(step)
        figure.canvas.draw()
        return np.array(figure.canvas.buffer_rgba())[..., :3]   # a copy: the buffer is reused

    # The colours of the first, middle and last frames, and the roles' colours exactly.
    samples = [frame(steps[k]) for k in sorted({0, len(steps) // 2, len(steps) - 1})]
    palette = _Palette(samples, exact=COLORS.values())
    frames = []
    for done, step in enumerate(steps, 1):
        frames.append(palette.image(frame(step)))
        if progress is not None:
            progress(done, len(steps))
    # Nothing is written before this line: an interruption leaves no file behind.
    frames[0].save(path, format="GIF", save_all=True, append_images=frames[1:],
                   duration=int(1000 / fps), loop=0)


def write_animation(path, figure, show, steps, *, fps=2, dpi=72, progress=None):
    """Write ``figure`` as an animation: ``show(step)`` repaints it before each frame.

    Parameters
    ----------
    path : str or os.PathLike
        A '.gif', or an '.mp4' when ffmpeg is installed.
    figure : matplotlib Figure
        The figure to grab, with an Agg canvas, e.g. from `grid.new_figure`.
    show : callable
        ``show(step)`` redraws the figure's artists for ``step``.
    steps : sequence of int
        The steps to show, one frame each, in order; at least one.
    fps, dpi, progress
        As for `animate_conv2d`.

    Returns
    -------
    str or os.PathLike
        ``path``.

    Notes
    -----
    A GIF is written with Pillow once every frame is drawn, so an
    interruption (an exception, Ctrl-C) before that leaves nothing at
    ``path``. Its frames share one palette (see `_Palette`), which makes
    it several times smaller and faster to save than matplotlib's
    PillowWriter, which quantizes each frame on its own palette: 177 kB
    against 768 kB for the 64 frames of an 8 x 8 input, saved in 0.1 s
    against 1.6 s. An interrupted MP4 leaves what ffmpeg wrote so far.
    """
    matplotlib = require_matplotlib()
    from matplotlib import animation

    if path is None:
        raise TypeError("path must be a str or os.PathLike, got None")
    suffix = _check_options(path, fps, dpi, None, progress)
    if len(steps) == 0:
        raise ValueError("steps must hold at least one step, got none")
    _whole_pixels(figure, dpi)   # frame sizes are whole pixels
    if suffix == ".gif":
        _write_gif(path, figure, show, steps, fps, dpi, progress)
        return path
    if not animation.writers.is_available("ffmpeg"):
        raise FileNotFoundError(f"writing an '.mp4' needs ffmpeg, which is not on the PATH "
                                f"(matplotlib's animation.ffmpeg_path is "
                                f"{matplotlib.rcParams['animation.ffmpeg_path']!r}); "
                                f"install it or write a '.gif'")
    writer = animation.FFMpegWriter(fps=fps)
    with matplotlib.rc_context({"savefig.bbox": None}):   # 'tight' would vary the frame size
        writer.setup(figure, path, dpi)
        # Not matplotlib's writer.saving(), whose clean-up on an interruption can
        # raise an error of its own that hides the interruption.
        try:
            for done, step in enumerate(steps, 1):
                show(step)
                writer.grab_frame()
                if progress is not None:
                    progress(done, len(steps))
        except BaseException:
            with contextlib.suppress(Exception):   # close ffmpeg's pipe and wait for it
                writer.finish()
            raise
        writer.finish()
    return path


class Animation:
    """A picture and its frames: ``show(step)`` repaints ``figure`` for each of ``steps``.

    What `animate_conv2d` and `animate_conv_transpose2d` return without a
    ``path``. As the value of a Jupyter cell it shows itself as a player
    (matplotlib's JavaScript player: play, pause, one frame back or on, a
    slider), drawn when it is first shown and then kept; `save` writes it
    as a file. Nothing opens a window.

    Parameters
    ----------
    figure : matplotlib Figure
        The figure to grab, with an Agg canvas (`grid.new_figure`).
    show : callable
        ``show(step)`` repaints the figure for ``step``.
    steps : sequence of int
        The steps to show, one frame each, in order.
    fps, dpi
        Frames per second and pixels per inch, as for `animate_conv2d`.
    description : str
        What the animation shows, for its ``repr``.

    Notes
    -----
    The player holds every frame as a PNG in the page, some 10 to 40 kB a
    frame at 72 dpi; matplotlib drops the frames beyond its
    ``animation.embed_limit`` (20 MB by default), with a warning. For a large
    input, ``max_frames`` keeps the page small.
    """

    def __init__(self, figure, show, steps, *, fps=2, dpi=72, description="animation"):
        if len(steps) == 0:
            raise ValueError("steps must hold at least one step, got none")
        self.figure, self.show, self.steps = figure, show, steps
        self.fps, self.dpi, self.description = fps, dpi, description
        self._html = None

    @property
    def frames(self):
        """The number of frames."""
        return len(self.steps)

    def __repr__(self):
        return f"<Animation of {self.description}: {self.frames} frames at {self.fps:g} fps>"

    def save(self, path, *, progress=None):
        """Write the animation to ``path`` (a '.gif', or an '.mp4' with ffmpeg); return ``path``.

        See `write_animation`; ``progress(done, total)`` is called after each frame.
        """
        return write_animation(path, self.figure, self.show, self.steps, fps=self.fps,
                               dpi=self.dpi, progress=progress)

    def to_jshtml(self):
        """The frames in matplotlib's JavaScript player: an HTML fragment, made once and kept."""
        if self._html is None:
            matplotlib = require_matplotlib()
            from matplotlib.animation import HTMLWriter

            _whole_pixels(self.figure, self.dpi)
            writer = HTMLWriter(fps=self.fps, embed_frames=True, default_mode="loop")
            with tempfile.TemporaryDirectory() as folder, \
                    matplotlib.rc_context({"savefig.bbox": None}):
                path = os.path.join(folder, "animation.html")
                writer.setup(self.figure, path, self.dpi)
                for step in self.steps:
                    self.show(step)
                    writer.grab_frame()
                writer.finish()
                with open(path, encoding="utf-8") as page:
                    self._html = page.read()
        return self._html

    def _repr_html_(self):
        return self.to_jshtml()


def _whole_pixels(figure, dpi):
    """Round the figure's size so that width * dpi and height * dpi are whole pixels."""
    figure.set_size_inches(np.round(figure.get_size_inches() * dpi) / dpi)


def animate_conv2d(input_shape, kernel_shape, stride=1, dilation=1, padding=0, *, path=None,
                   padding_mode="zeros", fill_value=0, fps=2, matrix=None, kernel=None,
                   dpi=72, max_frames=None, progress=None):
    """An animation of the kernel sliding: one frame per output cell, row by row.

    Parameters
    ----------
    input_shape, kernel_shape, stride, dilation, padding, padding_mode, fill_value, matrix, kernel
        As for `plot_conv2d`: shapes, or the input and the kernel themselves.
    path : str or os.PathLike, optional
        Where to write: a '.gif', or an '.mp4' when ffmpeg is installed.
        Without it, nothing is written and an `Animation` is returned, which
        Jupyter shows as a player.
    fps : number, default 2
        Frames per second.
    dpi : number, default 72
        Pixels per inch; a cell is at most 0.45 inch wide.
    max_frames : int, optional
        Draw at most this many output cells, spread evenly from the first to
        the last (see `frame_steps`); by default every one.
    progress : callable, optional
        Called as ``progress(done, total)`` after each frame is written
        (with ``path``).

    Returns
    -------
    Animation, or str or os.PathLike
        The `Animation` without ``path``; ``path`` with it.

    Raises
    ------
    ImportError
        matplotlib is not installed.
    TypeError, ValueError
        As for `plot_conv2d`; ``path`` not ending in '.gif' or '.mp4'; ``fps``
        or ``dpi`` not a positive number; ``max_frames`` not a positive int;
        ``progress`` not callable.
    FileNotFoundError
        An '.mp4' was asked for and ffmpeg is not on the PATH.

    See Also
    --------
    animate_conv_transpose2d : the transposed convolution.

    Notes
    -----
    Every argument is checked before anything is drawn or written. One
    figure is drawn and repainted for each frame (its cells' colours, the
    kernel's frame, the title), so the cost is one render per frame, some
    0.03 to 0.15 s, and the frames are kept, one byte a pixel, until the
    GIF is saved. The 900 output cells of a 30 x 30 input with padding
    'same' took 131 s, 1.6 MB of GIF and 1 GB of memory; ``max_frames=60``,
    4 s and 200 kB. A small input shows the same arithmetic.

    Examples
    --------
    In a notebook, the value of a cell plays:

    >>> animate_conv2d((5, 5), (3, 3), stride=2)
    <Animation of conv2d, input (5, 5), kernel (3, 3): 4 frames at 2 fps>

    With a path, a file:

    >>> import os, tempfile
    >>> from PIL import Image
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = animate_conv2d((5, 5), (3, 3), stride=2, path=os.path.join(folder, "a.gif"))
    ...     with Image.open(path) as gif:
    ...         print(gif.n_frames, "frames:", gif.info["duration"], "ms each")
    4 frames: 500 ms each
    """
    _check_options(path, fps, dpi, max_frames, progress)
    picture = conv2d_picture(input_shape, kernel_shape, stride, dilation, padding,
                             padding_mode, fill_value, matrix, kernel, None)
    g = picture.geometry
    animation = Animation(picture.ax.figure, picture.show,
                          frame_steps(picture.frames, max_frames), fps=fps, dpi=dpi,
                          description=f"conv2d, input {g.input_shape}, kernel {g.kernel_shape}")
    return animation if path is None else animation.save(path, progress=progress)


def animate_conv_transpose2d(input_shape, kernel_shape, stride=1, dilation=1, padding=0,
                             output_padding=0, *, path=None, fps=2, matrix=None, kernel=None,
                             dpi=72, max_frames=None, progress=None):
    """An animation of the transposed convolution: one frame per input cell, row by row.

    Each frame shows one input cell adding its value times the kernel into
    the output cells under the kernel's taps (`plot_conv_transpose2d`).

    Parameters
    ----------
    input_shape, kernel_shape, stride, dilation, padding, output_padding, matrix, kernel
        As for `plot_conv_transpose2d`.
    path, fps, dpi, max_frames, progress
        As for `animate_conv2d`; ``max_frames`` spreads the input cells drawn.

    Returns
    -------
    Animation, or str or os.PathLike
        The `Animation` without ``path``; ``path`` with it.

    Raises
    ------
    ImportError, FileNotFoundError
        As for `animate_conv2d`.
    TypeError, ValueError
        As for `plot_conv_transpose2d` and `animate_conv2d`.

    Examples
    --------
    >>> animate_conv_transpose2d((2, 3), (3, 3), stride=2, padding=1)
    <Animation of conv_transpose2d, input (2, 3), kernel (3, 3): 6 frames at 2 fps>
    >>> import os, tempfile
    >>> from PIL import Image
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = animate_conv_transpose2d((2, 3), (3, 3), stride=2, padding=1,
    ...                                     path=os.path.join(folder, "t.gif"))
    ...     with Image.open(path) as gif:
    ...         print(gif.n_frames, "frames")
    6 frames
    """
    _check_options(path, fps, dpi, max_frames, progress)
    picture = conv_transpose2d_picture(input_shape, kernel_shape, stride, dilation, padding,
                                       output_padding, matrix, kernel, None)
    g = picture.geometry
    animation = Animation(picture.ax.figure, picture.show,
                          frame_steps(picture.frames, max_frames), fps=fps, dpi=dpi,
                          description=f"conv_transpose2d, input {g.input_shape}, "
                                      f"kernel {g.kernel_shape}")
    return animation if path is None else animation.save(path, progress=progress)
