"""The picture of the transposed convolution: which output cells one input cell adds into.

The transposed convolution runs the forward one's arithmetic backwards: the
cells an input cell adds into are ``geometry.spread``'s and the output shape is
``conv_transpose_geometry``'s; the running sums in the output cells are
computed by `conv_transpose2d`. The output is drawn inside the whole
uncropped result, so that the padding the transposed convolution crops off
shows as cells of its own.
"""
import math

import numpy as np

from ..conv import conv_transpose2d
from ..geometry import conv_transpose_geometry, conv_transpose_output_shape, spread
from .grid import (BORDER_COLOR, CURRENT, DONE, DROPPED, EXTRA_COLOR, GAP, INPUT, PADDING, READ,
                   TODO, WINDOW_COLOR, Grid, TwoGrids, check_ax, check_step, check_values, fit,
                   format_all, format_value, pairs_text, require_matplotlib, shape_or_values,
                   side_by_side)

__all__ = ["plot_conv_transpose2d", "conv_transpose2d_picture", "ConvTranspose2dPicture"]


def _taps(geometry, offset, i, j):
    """The canvas cells input cell ``(i, j)`` adds into, as slices: `spread` moved by the crop."""
    g = geometry
    return tuple(slice(span.start + shift, span.stop + shift, span.step) for span, shift
                 in zip(spread(i, j, g.kernel_shape, g.stride, g.dilation, g.padding), offset))


def _canvas(geometry):
    """Where a transposed convolution's output sits in the result before the crop.

    Returns ``(offset, is_padding, first)``: output cell ``(r, c)`` is canvas
    cell ``(r + top, c + left)``; ``is_padding``, of the canvas's shape, marks
    the cells the padding crops off; ``first`` holds, for each canvas cell, the
    number of the first input cell that adds into it (``H * W`` where none
    does). The canvas is the uncropped result, and more where output_padding
    reaches beyond it.
    """
    g = geometry
    (h, w), (ho, wo), ((top, _), (left, _)) = g.input_shape, g.output_shape, g.padding
    full = conv_transpose_output_shape(g.input_shape, g.kernel_shape, g.stride, g.dilation)
    is_padding = np.ones((max(full[0], top + ho), max(full[1], left + wo)), bool)
    is_padding[top:top + ho, left:left + wo] = False
    first = np.full(is_padding.shape, h * w)
    for n, (i, j) in reversed(list(enumerate(np.ndindex(h, w)))):
        first[_taps(g, (top, left), i, j)] = n
    return (top, left), is_padding, first


class ConvTranspose2dPicture(TwoGrids):
    """The transposed convolution in one Axes: input on the left, output on the right.

    The output is drawn inside the whole result the input spreads over: the
    cells ``padding`` crops off are grey, around the output framed in black.
    One frame per input cell: it adds its value times the kernel into the
    cells under the kernel's taps, anchored at ``(i * sh, j * sw)`` of the
    uncropped result. `show` repaints it for any input cell.
    """

    def __init__(self, ax, geometry, matrix, kernel):
        self.ax, self.geometry = ax, geometry
        g = geometry
        (h, w), (ho, wo) = g.input_shape, g.output_shape
        self.offset, self.is_padding, self.first = _canvas(g)
        (top, left), canvas = self.offset, self.is_padding.shape
        self.order = np.arange(h * w).reshape(h, w)
        cell = self._layout((h, w), canvas)

        labels = None if matrix is None else format_all(matrix)
        self.input = Grid(ax, (0, 0), np.full((h, w), INPUT), fit(labels, cell), labels)
        self.matrix, self.kernel, self.sums = matrix, kernel, None
        sum_labels = None
        if matrix is not None and kernel is not None:
            self.sums = conv_transpose2d(matrix, kernel, g.stride, g.dilation, g.padding,
                                         g.output_padding)
            # Labels sized for the longest running sum: at most sum(|value| * |weight|).
            bound = conv_transpose2d(np.abs(matrix), np.abs(kernel), g.stride, g.dilation,
                                     g.padding, g.output_padding)
            widest = [*format_all(self.sums).ravel(),
                      *("-" + text for text in format_all(bound).ravel())]
            sum_labels = np.full(canvas, None, dtype=object)
            sum_labels[top:top + ho, left:left + wo] = format_all(self.sums)
        self.output = Grid(ax, (w + GAP, 0), np.where(self.is_padding, PADDING, TODO),
                           fit(None if sum_labels is None else widest, cell), sum_labels)
        self.output.outline(slice(top, top + ho), slice(left, left + wo), BORDER_COLOR, 1.6)
        for axis, extra in enumerate(g.output_padding):
            if extra:   # the last `extra` rows (axis 0) or columns (axis 1) of the output
                spans = [slice(top, top + ho), slice(left, left + wo)]
                spans[axis] = slice(self.offset[axis] + g.output_shape[axis] - extra,
                                    self.offset[axis] + g.output_shape[axis])
                self.output.outline(*spans, EXTRA_COLOR, 1.6, "--")
        self.window = self.output.outline(slice(0, 1), slice(0, 1), WINDOW_COLOR, 2.4)
        self.weights = self._weights(kernel, cell)

        self._captions(cell, "input", "output, inside the cropped padding"
                       if self.is_padding.any() else "output")
        self._legend(self.legend_entries(g))
        self.header = (f"input {h}×{w} · kernel {g.kernel_shape[0]}×{g.kernel_shape[1]} · "
                       f"stride {g.stride} · dilation {g.dilation}\npadding (cropped) "
                       f"{pairs_text(g.padding)} · output_padding {g.output_padding}")

    @staticmethod
    def legend_entries(geometry):
        """What each colour means: the roles this picture can show."""
        _, is_padding, first = _canvas(geometry)
        entries = [(CURRENT, "input cell being spread"),
                   (DONE, "spread before; cells they reached"),
                   (READ, "gets value × weight (frame: the span)")]
        if is_padding.any():
            entries.append((PADDING, "padding, cropped off the result"))
        if (is_padding & (first < math.prod(geometry.input_shape))).any():
            entries.append((DROPPED, "lands in the padding: dropped"))
        entries.append((INPUT, "still to come; not reached (0)"))
        if any(geometry.output_padding):
            entries.append((dict(fill=False, edgecolor=EXTRA_COLOR, linestyle="--"),
                            "added by output_padding"))
        return entries

    @classmethod
    def extent(cls, geometry):
        """``(width, height, legend_rows)`` of the picture, in cells, for `new_figure`."""
        canvas = _canvas(geometry)[1].shape
        rows = math.ceil(len(cls.legend_entries(geometry)) / 2)
        return side_by_side(geometry.input_shape, canvas) + (rows,)

    @property
    def frames(self):
        """The number of frames: one per input cell."""
        return self.order.size

    def show(self, step):
        """Repaint for input cell number ``step``, counted row by row."""
        g = self.geometry
        i, j = divmod(step, g.input_shape[1])
        self.input.paint(np.select([self.order < step, self.order == step], [DONE, CURRENT],
                                   INPUT))
        rows, cols = _taps(g, self.offset, i, j)
        written = np.zeros(self.is_padding.shape, bool)
        written[rows, cols] = True
        roles = np.where(self.is_padding, PADDING, np.where(self.first < step, DONE, TODO))
        roles[written] = np.where(self.is_padding[written], DROPPED, READ)
        self.output.paint(roles)
        self.output.move_outline(self.window, rows, cols)
        self._move_weights(self.output, rows, cols)

        result = ""
        if self.sums is not None:
            # The running sums: the transposed convolution of the cells spread so far.
            so_far = np.where(self.order <= step, self.matrix, np.zeros_like(self.matrix))
            running = conv_transpose2d(so_far, self.kernel, g.stride, g.dilation, g.padding,
                                       g.output_padding)
            texts = np.full(self.is_padding.shape, None, dtype=object)
            (top, left), (ho, wo) = self.offset, g.output_shape
            texts[top:top + ho, left:left + wo] = format_all(running)
            self.output.show_labels(self.first <= step, texts)
            value = format_value(self.matrix[i, j])
            result = f" = {value}: adds {value} × weight to the blue cells"
        self.ax.set_title(f"{self.header}\ninput cell ({i}, {j}) of "
                          f"{g.input_shape[0]}×{g.input_shape[1]}{result}", fontsize=9)


def conv_transpose2d_picture(input_shape, kernel_shape, stride, dilation, padding,
                             output_padding, matrix, kernel, ax, step=0):
    """Check every argument, then build a `ConvTranspose2dPicture` showing input cell ``step``.

    The arguments are `plot_conv_transpose2d`'s; every error is raised here,
    before anything is drawn or written. `animate_conv_transpose2d` builds on it.
    """
    require_matplotlib()
    input_shape, matrix = shape_or_values(input_shape, matrix, "input_shape", "matrix")
    kernel_shape, kernel = shape_or_values(kernel_shape, kernel, "kernel_shape", "kernel")
    geometry = conv_transpose_geometry(input_shape, kernel_shape, stride, dilation, padding,
                                       output_padding)
    step = check_step(step, math.prod(geometry.input_shape), "input", geometry.input_shape)
    if matrix is not None:
        matrix = check_values(matrix, "matrix", geometry.input_shape)
    if kernel is not None:
        kernel = check_values(kernel, "kernel", geometry.kernel_shape)
    ax = check_ax(ax, ConvTranspose2dPicture.extent(geometry))
    picture = ConvTranspose2dPicture(ax, geometry, matrix, kernel)
    picture.show(step)
    return picture


def plot_conv_transpose2d(input_shape, kernel_shape, stride=1, dilation=1, padding=0,
                          output_padding=0, *, step=0, matrix=None, kernel=None, ax=None):
    """Draw which output cells one input cell of the transposed convolution adds into.

    Parameters
    ----------
    input_shape : tuple of int, (H, W), or array_like, shape (H, W)
        The input of the transposed convolution (the small side, in a
        decoder): its shape (leading batch entries are allowed and ignored),
        or its values, as ``matrix=`` gives them.
    kernel_shape : tuple of int, (kh, kw), or array_like, shape (kh, kw)
        The kernel's shape, or the kernel itself, as ``kernel=``.
    stride, dilation, padding, output_padding
        As for PyTorch's ``conv_transpose2d``: ``padding`` (an int, a pair or
        ``((top, bottom), (left, right))``) is cropped off the result;
        ``output_padding`` adds rows at the bottom and columns at the right,
        and must be smaller than the stride or the dilation on its axis.
    step : int, default 0
        The input cell to draw, numbered row by row from 0 to ``H * W - 1``:
        cell ``(step // W, step % W)``.
    matrix : array_like, shape (H, W), optional
        Values to write in the input cells.
    kernel : array_like, shape (kh, kw), optional
        Weights to write beside the taps. With ``matrix`` too, the output
        cells show their running sums: what the input cells up to ``step``
        have added into them, the transposed convolution of ``matrix`` with
        the later cells set to 0 (at the last step, the whole result).
    ax : matplotlib Axes, optional
        The Axes to draw in; by default a new figure is made. Both grids go
        into this one Axes in data coordinates, one unit per cell, y down:
        the input's top-left corner at (0, 0); the uncropped result's at
        (W + `GAP`, 0), so that output cell ``(r, c)`` spans
        ``(W + GAP + left + c, top + r)`` to one cell further.

    Returns
    -------
    matplotlib.figure.Figure
        As for `plot_conv2d`.

    Raises
    ------
    ImportError
        matplotlib is not installed.
    TypeError
        A parameter of the wrong type (a padding string, a float stride);
        ``step`` not an int; ``ax`` not an Axes.
    ValueError
        As for `conv_transpose_geometry` (``output_padding`` not smaller than
        the stride or the dilation, padding that crops everything); ``step``
        out of range; ``matrix`` or ``kernel`` not of the shape given for it.

    See Also
    --------
    plot_conv2d : the forward convolution.

    Notes
    -----
    The transposed convolution runs the forward one's arithmetic backwards
    (`geometry.spread`): input cell ``(i, j)`` times kernel tap ``(a, b)``
    is added to output cell ``(i * sh + a * dh - top, j * sw + b * dw - left)``,
    and what lands outside the output (in the cropped padding) is dropped.
    So the output is drawn inside the whole uncropped result, the cropped
    cells in grey, the output framed in black, the rows and columns
    ``output_padding`` adds framed in dashed vermillion. Blue: the cells the
    input cell drawn (orange) adds into, framed by the kernel's span;
    grey-blue where a tap lands in the cropped padding. Light orange: the
    input cells spread before, and the output cells they reached. The
    output size is ``(H - 1) * sh - top - bottom + dh * (kh - 1) + output_padding + 1``
    (see `conv_transpose_geometry`).

    Every argument is checked before anything is drawn. Cost: one
    transposed convolution of the input per frame when the sums are shown.

    Examples
    --------
    >>> fig = plot_conv_transpose2d((3, 3), (3, 3), stride=2, padding=1, output_padding=1,
    ...                             step=4)
    >>> print(fig.axes[0].get_title())
    input 3×3 · kernel 3×3 · stride (2, 2) · dilation (1, 1)
    padding (cropped) top 1, bottom 1, left 1, right 1 · output_padding (1, 1)
    input cell (1, 1) of 3×3
    >>> plot_conv_transpose2d((3, 3), (3, 3), stride=2, step=9)
    Traceback (most recent call last):
        ...
    ValueError: step must be an input cell number from 0 to 8 (input shape (3, 3)), got 9
    """
    picture = conv_transpose2d_picture(input_shape, kernel_shape, stride, dilation, padding,
                                       output_padding, matrix, kernel, ax, step)
    return picture.ax.figure
