"""The picture of ``conv2d``: which input cells one output cell reads.

Drawn from the library's own arithmetic, so it cannot disagree with it: the
cells an output cell reads are ``padded[window(i, j, ...)]``, the very slice
the reference loops multiply by the kernel (``geometry.window``); the padding
is ``conv_geometry``'s, and what each padded cell holds comes from
``padding.pad`` applied to an array of cell numbers, so a padded cell shows
the number of the input cell it copies; the sums in the output cells are
computed by `conv2d`. `Conv2dPicture.show` repaints it for any output cell,
which is what the animations and the explorer build on.
"""
import math

import numpy as np

from ..conv import conv2d
from ..padding import PADDING_MODES, check_padding_mode, pad
from ..geometry import conv_geometry, window
from .grid import (BORDER_COLOR, CURRENT, DONE, GAP, INPUT, PADDING, READ, TODO, WINDOW_COLOR,
                   Grid, TwoGrids, check_ax, check_step, check_values, fit, format_all,
                   format_value, pairs_text, require_matplotlib, shape_or_values, side_by_side)

__all__ = ["plot_conv2d", "conv2d_picture", "Conv2dPicture"]


class Conv2dPicture(TwoGrids):
    """conv2d drawn in one Axes: padded input on the left, output on the right.

    Built once; `show` repaints it for any output cell, which is what lets
    the animation reuse one figure for every frame.
    """

    def __init__(self, ax, geometry, padding, padding_mode, fill_value, matrix, kernel):
        self.ax, self.geometry = ax, geometry
        (h, w), pads = geometry.input_shape, geometry.padding
        # Which input cell each padded cell copies: the padding of an array of
        # cell numbers, by the function conv2d pads with. -1 marks a constant.
        numbers_ = np.arange(h * w).reshape(h, w)
        copies = PADDING_MODES[padding_mode] != "constant"
        self.source = pad(numbers_, pads, padding_mode if copies else "constant", -1)
        self.is_padding = pad(np.zeros((h, w), bool), pads, "constant", True)
        self.base = np.where(self.is_padding, PADDING, INPUT)
        padded_shape, out_shape = self.source.shape, geometry.output_shape
        cell = self._layout(padded_shape, out_shape)

        if matrix is not None:
            matrix = matrix.astype(np.result_type(matrix, fill_value), copy=False)
            labels = format_all(pad(matrix, pads, padding_mode, fill_value))
        elif copies:
            labels = self.source.astype(str)
        else:
            labels = None                      # zeros or a constant: nothing to name
        self.input = Grid(ax, (0, 0), self.base, fit(labels, cell), labels, self.is_padding)
        self.input.outline(slice(pads[0][0], pads[0][0] + h), slice(pads[1][0], pads[1][0] + w),
                           BORDER_COLOR, 1.6)
        self.window = self.input.outline(slice(0, 1), slice(0, 1), WINDOW_COLOR, 2.4)

        self.sums = None
        if matrix is not None and kernel is not None:
            self.sums = conv2d(matrix, kernel, geometry.stride, geometry.dilation, pads,
                               padding_mode=padding_mode, fill_value=fill_value)
        sum_labels = None if self.sums is None else format_all(self.sums)
        self.output = Grid(ax, (padded_shape[1] + GAP, 0), np.full(out_shape, TODO),
                           fit(sum_labels, cell), sum_labels)
        # The kernel's weights ride in the bottom-right corner of the cells under its taps.
        self.weights = self._weights(kernel, cell)

        self._captions(cell, "input, padded" if any(map(any, pads)) else "input", "output")
        self._legend(self._legend_entries(padding_mode, fill_value, copies, matrix is not None))
        self.header = self._header(padding, padding_mode)

    def _legend_entries(self, padding_mode, fill_value, copies, has_values):
        """What each colour means, for the modes and options of this picture."""
        if copies:
            padding = (f"padding ('{padding_mode}'): copies the cell "
                       + ("whose value it shows" if has_values else "numbered in it"))
        else:
            padding = f"padding ('{padding_mode}'): the value {format_value(fill_value)}"
        entries = [(INPUT, "input cell, numbered row by row" if copies and not has_values
                    else "input cell")]
        if self.is_padding.any():
            entries.append((PADDING, padding))
        return entries + [(READ, "read by the kernel (blue frame: its span)"),
                          (CURRENT, "output cell being computed"),
                          (DONE, "output cells already computed")]

    def _header(self, padding, padding_mode):
        """The title's first lines: the parameters, as the user gave and as resolved."""
        g = self.geometry
        given = f"{padding!r} → " if isinstance(padding, str) else ""
        resolved = pairs_text(g.padding)
        if resolved != "none":
            resolved += f" · border '{padding_mode}'"
        return (f"input {g.input_shape[0]}×{g.input_shape[1]} · kernel "
                f"{g.kernel_shape[0]}×{g.kernel_shape[1]} · stride {g.stride} · "
                f"dilation {g.dilation}\npadding {given}{resolved}")

    @staticmethod
    def extent(geometry):
        """``(width, height, legend_rows)`` of the picture, in cells, for `new_figure`."""
        (h, w), ((top, bottom), (left, right)) = geometry.input_shape, geometry.padding
        return side_by_side((h + top + bottom, w + left + right), geometry.output_shape) + (3,)

    @property
    def frames(self):
        """The number of frames: one per output cell."""
        return math.prod(self.geometry.output_shape)

    def show(self, step):
        """Repaint for output cell number ``step``, counted row by row."""
        g = self.geometry
        i, j = divmod(step, g.output_shape[1])
        rows, cols = window(i, j, g.kernel_shape, g.stride, g.dilation)
        roles = self.base.copy()
        roles[rows, cols] = READ               # the slice the reference loops multiply
        self.input.paint(roles)
        self.input.move_outline(self.window, rows, cols)

        order = np.arange(self.frames).reshape(g.output_shape)
        out_roles = np.select([order < step, order == step], [DONE, CURRENT], TODO)
        self.output.paint(out_roles)
        self.output.show_labels(order <= step)
        self._move_weights(self.input, rows, cols)

        result = ("" if self.sums is None else
                  f" · sum of weight × value over the blue cells = {format_value(self.sums[i, j])}")
        self.ax.set_title(f"{self.header}\noutput cell ({i}, {j}) of "
                          f"{g.output_shape[0]}×{g.output_shape[1]}{result}", fontsize=9)


def conv2d_picture(input_shape, kernel_shape, stride, dilation, padding, padding_mode,
                   fill_value, matrix, kernel, ax, step=0):
    """Check every argument, then build a `Conv2dPicture` showing output cell ``step``.

    The arguments are `plot_conv2d`'s; every error is raised here, before
    anything is drawn (into ``ax`` or a new figure) or written.
    `animate_conv2d` builds on it.
    """
    require_matplotlib()
    input_shape, matrix = shape_or_values(input_shape, matrix, "input_shape", "matrix")
    kernel_shape, kernel = shape_or_values(kernel_shape, kernel, "kernel_shape", "kernel")
    geometry = conv_geometry(input_shape, kernel_shape, stride, dilation, padding)
    check_padding_mode(padding_mode, fill_value)
    step = check_step(step, math.prod(geometry.output_shape), "output", geometry.output_shape)
    if matrix is not None:
        matrix = check_values(matrix, "matrix", geometry.input_shape)
    if kernel is not None:
        kernel = check_values(kernel, "kernel", geometry.kernel_shape)
    ax = check_ax(ax, Conv2dPicture.extent(geometry))
    picture = Conv2dPicture(ax, geometry, padding, padding_mode, fill_value, matrix, kernel)
    picture.show(step)
    return picture


def plot_conv2d(input_shape, kernel_shape, stride=1, dilation=1, padding=0, *,
                padding_mode="zeros", fill_value=0, step=0, matrix=None, kernel=None, ax=None):
    """Draw which input cells one output cell of ``conv2d`` reads.

    Parameters
    ----------
    input_shape : tuple of int, (H, W), or array_like, shape (H, W)
        The input's shape (leading batch entries are allowed and ignored, as
        in `conv2d`), or the input itself: an array of two dimensions is
        drawn with its values, as ``matrix=`` draws them.
    kernel_shape : tuple of int, (kh, kw), or array_like, shape (kh, kw)
        The kernel's shape, or the kernel itself, drawn as ``kernel=``.
    stride, dilation, padding, padding_mode, fill_value
        As for `conv2d`, with the same errors.
    step : int, default 0
        The output cell to draw, numbered row by row from 0 to
        ``H_out * W_out - 1``: cell ``(step // W_out, step % W_out)``.
    matrix : array_like, shape (H, W), optional
        Values to write in the input cells (and the padded cells, as the
        padding mode fills them).
    kernel : array_like, shape (kh, kw), optional
        Weights to write beside the taps. With ``matrix`` too, the output
        cells show their sums, computed by `conv2d`.
    ax : matplotlib Axes, optional
        The Axes to draw in; by default a new figure is made. Both grids go
        into this one Axes, side by side, in data coordinates: one unit per
        cell, the y axis pointing down, the padded input's top-left corner at
        (0, 0) and the output's at (Wp + `GAP`, 0), where Wp is the padded
        width. The Axes' limits, aspect and title are set.

    Returns
    -------
    matplotlib.figure.Figure
        The figure holding the picture (``ax.figure`` when ``ax`` is given).
        A new figure is a `PictureFigure`: it has an Agg canvas and is not
        registered with pyplot, so nothing pops up; in Jupyter it shows as a
        PNG when it is the cell's value (no ``%matplotlib`` needed); save it
        with ``fig.savefig``; for a window, pass ``ax=plt.subplots()[1]``.

    Raises
    ------
    ImportError
        matplotlib is not installed.
    TypeError
        As for `conv2d`; ``step`` not an int; ``ax`` not an Axes; values given
        both in place of a shape and as ``matrix=`` (or ``kernel=``).
    ValueError
        As for `conv2d`; ``step`` out of range; ``matrix`` or ``kernel`` not of
        the shape given for it; values that are not 2-D.

    See Also
    --------
    plot_conv_transpose2d : the transposed convolution.

    Notes
    -----
    Colours (`COLORS`): blue, the cells under the kernel's taps (the blue
    frame marks the span of the dilated kernel); grey, padding; orange, the
    output cell drawn; light orange, the output cells before it. The input
    is framed in black inside its padding. Without ``matrix``, and when the
    border mode copies input cells, the input cells carry their numbers
    (row by row) and each padded cell the number of the cell it copies: that
    is ``pad(np.arange(H * W).reshape(H, W), padding, padding_mode)``.

    Every argument is checked before anything is drawn, so a bad one leaves
    a given ``ax`` untouched. Cost: one Text per labelled cell; a new figure
    is at most about 12 inches wide, so beyond some 25 cells across, labels
    shrink until they are hard to read.

    Examples
    --------
    With the values, each output cell shows its sum:

    >>> fig = plot_conv2d([[1, 2, 0], [0, 1, 3], [2, 2, 1]], [[1, 0], [0, -1]], step=3)
    >>> print(fig.axes[0].get_title().splitlines()[-1])
    output cell (1, 1) of 2×2 · sum of weight × value over the blue cells = 0

    With shapes only, the cells' numbers:

    >>> fig = plot_conv2d((5, 5), (3, 3), stride=2, padding=1, step=4)
    >>> print(fig.axes[0].get_title())
    input 5×5 · kernel 3×3 · stride (2, 2) · dilation (1, 1)
    padding top 1, bottom 1, left 1, right 1 · border 'zeros'
    output cell (1, 1) of 3×3
    >>> plot_conv2d((5, 5), (3, 3), stride=2, step=4)
    Traceback (most recent call last):
        ...
    ValueError: step must be an output cell number from 0 to 3 (output shape (2, 2)), got 4
    """
    picture = conv2d_picture(input_shape, kernel_shape, stride, dilation, padding,
                             padding_mode, fill_value, matrix, kernel, ax, step)
    return picture.ax.figure
