"""Pictures of a 1-D convolution: the padded signal as a strip of cells, the output below it.

`plot_conv1d` draws which cells of the padded signal one output cell reads
(a causal filter's padding sits on the left only, and the picture says so);
`animate_conv1d` writes one such frame per output cell, the kernel sliding
along. The geometry is ``conv_geometry``'s and the border's cells come from
``padding.pad`` of ``arange``, so the pictures cannot disagree with
``conv1d``. matplotlib (and Pillow, for the GIF) are imported inside the
functions.
"""
import math
import numbers
import operator
import os

import numpy as np

from ..conv_nd import conv1d
from ..padding import PADDING_MODES, check_padding_mode, pad
from ..geometry import conv_geometry
from .grid import _figure_class

__all__ = ["plot_conv1d", "animate_conv1d"]

#: Cell colours: input, padding, read by the kernel, the output cell drawn, outputs before it.
COLORS = {"input": "#ffffff", "padding": "#d9d9d9", "read": "#6fa8dc", "output": "#f6b26b",
          "done": "#fce5cd", "empty": "#ffffff"}


def _require_matplotlib():
    try:
        import matplotlib
    except ImportError:
        raise ImportError("plot_conv1d and animate_conv1d need matplotlib: "
                          "pip install matplotlib") from None
    return matplotlib


def _format(value):
    value = complex(value) if np.iscomplexobj(value) else float(value)
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e6:
        return str(int(value))
    return f"{value:.3g}"


def _check_step(step, count):
    if isinstance(step, (bool, np.bool_)):
        raise TypeError(f"step must be an int, got {step!r}")
    try:
        step = operator.index(step)
    except TypeError:
        raise TypeError(f"step must be an int, got {step!r}") from None
    if not 0 <= step < count:
        raise ValueError(f"step must be an output cell number from 0 to {count - 1}, got {step}")
    return step


class _Strip:
    """The picture: one figure, repainted for each output cell."""

    def __init__(self, length, kernel_size, stride, dilation, padding, padding_mode, fill_value,
                 signal, kernel, ax):
        from matplotlib.patches import Rectangle

        check_padding_mode(padding_mode, fill_value)
        if isinstance(length, (bool, np.bool_)) or not isinstance(length, numbers.Integral):
            raise TypeError(f"length must be an int, got {length!r}")
        if isinstance(kernel_size, (bool, np.bool_)) or not isinstance(kernel_size,
                                                                      numbers.Integral):
            raise TypeError(f"kernel_size must be an int, got {kernel_size!r}")
        g = conv_geometry((length,), (kernel_size,), stride, dilation, padding)
        if signal is not None:
            signal = np.asarray(signal)
            if signal.shape != (length,):
                raise ValueError(f"signal must have shape ({length},), got {signal.shape}")
        if kernel is not None:
            kernel = np.asarray(kernel)
            if kernel.shape != (kernel_size,):
                raise ValueError(f"kernel must have shape ({kernel_size},), got {kernel.shape}")
        self.geometry = g
        (before, after), = g.padding
        self.before, self.count = before, g.output_shape[0]
        padded_length = length + before + after
        # Which input cell each padded cell copies (-1: the fill), as pad() makes it.
        source = pad(np.arange(length), ((before, after),), padding_mode,
                     -1 if PADDING_MODES[padding_mode] == "constant" else 0)
        if signal is not None:
            values = pad(signal.astype(float) if signal.dtype.kind != "c" else signal,
                         ((before, after),), padding_mode, fill_value)
            labels = [_format(v) for v in values]
        else:
            labels = [(_format(fill_value) if padding_mode == "constant" else "0") if s < 0
                      else f"x{s}" for s in source]
        out_values = None
        if signal is not None and kernel is not None:
            out_values = conv1d(signal, kernel, stride, dilation, g.padding,
                                padding_mode=padding_mode, fill_value=fill_value)
        if ax is None:
            width = min(12.0, max(7.0, 0.45 * max(padded_length, self.count) + 2.0))
            figure = _figure_class()(figsize=(width, 2.6))    # shows itself in Jupyter
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            FigureCanvasAgg(figure)
            ax = figure.add_subplot()
        self.ax = ax
        # Room on the right for the captions when the strips are short.
        ax.set_xlim(-2.6, max(padded_length, self.count, 16) + 0.2)
        ax.set_ylim(5.6, -1.6)
        ax.set_aspect("equal")
        ax.axis("off")
        inside = range(before, before + length)
        self.inputs = []
        for p in range(padded_length):
            role = "input" if p in inside else "padding"
            cell = Rectangle((p, 0), 1, 1, facecolor=COLORS[role], edgecolor="#666666", lw=0.8)
            ax.add_patch(cell)
            self.inputs.append((cell, role))
            ax.text(p + 0.5, 0.5, labels[p], ha="center", va="center", fontsize=7)
        ax.add_patch(Rectangle((before, 0), length, 1, fill=False, edgecolor="black", lw=1.6))
        ax.text(-0.3, 0.5, "input\n(padded)", ha="right", va="center", fontsize=8)
        ax.text(-0.3, 3.5, "output", ha="right", va="center", fontsize=8)
        self.outputs = []
        offset = 0      # output i under padded cell i: its window starts there at stride 1
        for i in range(self.count):
            cell = Rectangle((offset + i, 3), 1, 1, facecolor=COLORS["empty"],
                             edgecolor="#666666", lw=0.8)
            ax.add_patch(cell)
            self.outputs.append(cell)
            ax.text(offset + i + 0.5, 3.5, _format(out_values[i]) if out_values is not None
                    else f"y{i}", ha="center", va="center", fontsize=7)
        self.offset = offset
        self.span = Rectangle((0, -0.08), 1, 1.16, fill=False, edgecolor=COLORS["read"], lw=2.2)
        ax.add_patch(self.span)
        self.weights = [ax.text(0, 1.45, "", ha="center", va="center", fontsize=7,
                                color="#1c4587") for _ in range(kernel_size)]
        self.kernel = kernel
        self.arrow = ax.annotate("", xy=(0, 2.95), xytext=(0, 1.75),
                                 arrowprops=dict(arrowstyle="->", color="#999999"))
        causal = before == g.dilation[0] * (kernel_size - 1) and after == 0
        ax.set_title(f"signal of {length} · kernel of {kernel_size} · stride {g.stride[0]} · "
                     f"dilation {g.dilation[0]} · padding ({before}, {after}) · "
                     f"border '{padding_mode}'" + (" · causal" if causal else ""), fontsize=8)
        self.causal = causal

    def show(self, step):
        g = self.geometry
        (stride,), (dilation,) = g.stride, g.dilation
        first = step * stride
        reads = [first + a * dilation for a in range(len(self.weights))]
        for p, (cell, role) in enumerate(self.inputs):
            cell.set_facecolor(COLORS["read"] if p in reads else COLORS[role])
        for i, cell in enumerate(self.outputs):
            cell.set_facecolor(COLORS["output"] if i == step else
                               COLORS["done"] if i < step else COLORS["empty"])
        self.span.set_x(first)
        self.span.set_width(reads[-1] - first + 1)
        for a, (text, p) in enumerate(zip(self.weights, reads)):
            text.set_position((p + 0.5, 1.45))
            text.set_text(f"×{_format(self.kernel[a])}" if self.kernel is not None else f"k{a}")
        self.arrow.xy = (self.offset + step + 0.5, 2.95)
        self.arrow.set_position(((first + reads[-1] + 1) / 2, 1.75))
        caption = (f"output cell {step} of {self.count} reads padded cells "
                   f"{', '.join(map(str, reads))}")
        if self.causal:
            caption += f" (inputs up to x{step * stride}: none after it)"
        caption += "\nblue: read by the kernel · grey: padding · black frame: the input"
        if hasattr(self, "_caption"):
            self._caption.set_text(caption)
        else:
            self._caption = self.ax.text(-2.6, 4.3, caption, fontsize=8, va="top")


def plot_conv1d(length, kernel_size, stride=1, dilation=1, padding=0, *, padding_mode="zeros",
                fill_value=0, step=0, signal=None, kernel=None, ax=None):
    """Draw which cells of the padded signal one output cell of ``conv1d`` reads.

    Parameters
    ----------
    length : int
        The signal's length L.
    kernel_size : int
    stride, dilation, padding, padding_mode, fill_value
        As for ``conv1d``. A causal filter is ``padding=(dilation * (kernel_size - 1), 0)``.
    step : int, default 0
        The output cell to draw, from 0 to ``L_out - 1``.
    signal : array_like, shape (L,), optional
        Values to write in the cells (the border's as the mode fills them);
        else the cells read ``x0, x1, ...`` and each border cell the name of
        the cell it copies.
    kernel : array_like, shape (kernel_size,), optional
        Weights to write beside the taps; with ``signal`` too, the output
        cells show their values, computed by ``conv1d``.
    ax : matplotlib Axes, optional
        Where to draw; by default a new figure (Agg canvas, not registered
        with pyplot).

    Returns
    -------
    matplotlib.figure.Figure
        A `grid.PictureFigure` when drawn in a new figure: it shows itself
        in Jupyter; ``fig.savefig(path)`` writes it.

    Raises
    ------
    ImportError
        matplotlib is not installed.
    TypeError, ValueError
        As for ``conv1d``; ``step`` out of range; ``signal`` or ``kernel``
        not of the given shape.

    Notes
    -----
    Top strip: the input (framed in black) inside its padding (grey); blue,
    the cells under the taps of output cell ``step``, framed by the kernel's
    span. Bottom strip: the output; orange the cell drawn, light orange the
    cells before it.

    Examples
    --------
    >>> fig = plot_conv1d(8, 3, padding=(2, 0), step=5)
    >>> print(fig.axes[0].get_title())
    signal of 8 · kernel of 3 · stride 1 · dilation 1 · padding (2, 0) · border 'zeros' · causal
    """
    _require_matplotlib()
    picture = _Strip(length, kernel_size, stride, dilation, padding, padding_mode, fill_value,
                     signal, kernel, ax)
    picture.show(_check_step(step, picture.count))
    return picture.ax.figure


def animate_conv1d(length, kernel_size, stride=1, dilation=1, padding=0, *, path,
                   padding_mode="zeros", fill_value=0, signal=None, kernel=None, fps=2, dpi=72,
                   max_frames=None):
    """Write a GIF of the kernel sliding along the signal: one frame per output cell.

    Parameters
    ----------
    length, kernel_size, stride, dilation, padding, padding_mode, fill_value, signal, kernel
        As for `plot_conv1d`.
    path : str or os.PathLike
        Where to write the '.gif'. It is written whole or not at all.
    fps, dpi : number
        Frames per second and pixels per inch.
    max_frames : int, optional
        At most this many output cells, spread evenly from the first to the last.

    Returns
    -------
    str or os.PathLike
        ``path``.

    Examples
    --------
    >>> import os, tempfile
    >>> from PIL import Image
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = animate_conv1d(6, 3, padding=(2, 0), path=os.path.join(folder, "c.gif"))
    ...     with Image.open(path) as gif:
    ...         print(gif.n_frames, "frames")
    6 frames
    """
    _require_matplotlib()
    from PIL import Image

    if not os.fspath(path).lower().endswith(".gif"):
        raise ValueError(f"path must end in '.gif', got {path!r}")
    for name, value in (("fps", fps), ("dpi", dpi)):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) or not (
                0 < value < math.inf):
            raise ValueError(f"{name} must be a positive number, got {value!r}")
    picture = _Strip(length, kernel_size, stride, dilation, padding, padding_mode, fill_value,
                     signal, kernel, None)
    count = picture.count
    if max_frames is not None:
        max_frames = _check_step(max_frames - 1, 10 ** 9) + 1 if max_frames >= 1 else max_frames
        if max_frames < 1:
            raise ValueError(f"max_frames must be a positive int, got {max_frames!r}")
    steps = (range(count) if max_frames is None or max_frames >= count else
             sorted({round(k * (count - 1) / max(max_frames - 1, 1)) for k in range(max_frames)}))
    frames = []
    figure = picture.ax.figure
    figure.set_dpi(dpi)
    for step in steps:
        picture.show(step)
        figure.canvas.draw()
        frames.append(Image.fromarray(np.asarray(figure.canvas.buffer_rgba())[..., :3]).convert(
            "P", palette=getattr(Image, "Palette", Image).ADAPTIVE, colors=64))
    temporary = os.fspath(path) + ".part"
    try:
        frames[0].save(temporary, format="GIF", save_all=True, append_images=frames[1:],
                       duration=int(round(1000 / fps)), loop=0)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return path
