"""Pictures of the convolution: which cells each output cell reads, for any parameters.

The pictures are drawn from the library's own arithmetic, so they cannot
disagree with ``conv2d``:

- the cells an output cell reads are ``padded[window(i, j, ...)]``, the very
  slice the reference loops multiply by the kernel (``shapes.window``);
- the padding is ``conv_geometry``'s, and what each padded cell holds comes
  from ``padding.pad`` applied to an array of cell numbers: a padded cell
  shows the number of the input cell it copies;
- the sums shown in the output cells are ``conv2d``'s result.

How the drawing is organised, so that other pictures (the transposed
convolution, where each input cell spreads the kernel over the output) can
reuse it: a `Grid` is a rectangle of cells that knows nothing about
convolution. Each frame gives it a *role* per cell (input, padding, read,
current, done, ...), an integer array indexed exactly like the data, and the
grid colours its cells from the roles. A picture is then a few grids and a
function from the frame number to role arrays; for conv2d that function is
`Conv2dPicture.show`.

matplotlib is imported inside the functions, so ``import convolution`` does
not need it.
"""
import numbers
import operator

import numpy as np

from .checks import as_array
from .conv import conv2d
from .padding import PADDING_MODES, check_padding_mode, pad
from .shapes import conv_geometry, window

__all__ = ["plot_conv2d", "conv2d_picture", "Conv2dPicture", "Grid", "COLORS", "GAP"]

# The role of a cell in one frame; each picture's frames are arrays of these.
INPUT, PADDING, READ, CURRENT, DONE, TODO = range(6)

#: Colour of each role: Okabe and Ito's palette (sky blue, orange), which stays
#: distinguishable with the common colour-vision deficiencies, plus white,
#: grey and a light orange that differ from it in lightness.
COLORS = {
    INPUT: "#ffffff",     # an input cell the kernel does not read in this frame
    PADDING: "#d4d4d4",   # a padded cell the kernel does not read in this frame
    READ: "#56b4e9",      # a cell under one of the kernel's taps
    CURRENT: "#e69f00",   # the output cell being computed
    DONE: "#f2cf7f",      # an output cell already computed
    TODO: "#ffffff",      # an output cell still to come
}
WINDOW_COLOR = "#0072b2"  # the outline of the dilated kernel's span (Okabe-Ito blue)
BORDER_COLOR = "#000000"  # the outline of the input inside its padding

#: Cells of empty space between the input grid and the output grid.
GAP = 2


def require_matplotlib():
    """Import matplotlib, or say how to install it."""
    try:
        import matplotlib
    except ImportError:
        raise ImportError("the pictures need matplotlib: pip install matplotlib") from None
    return matplotlib


def _format(value):
    """A cell's value as a short label: integers exactly, floats to 3 digits."""
    if isinstance(value, (numbers.Integral, np.integer, np.bool_)):
        return str(int(value))
    return f"{value:.3g}"


def _fit(labels, cell, width=0.85):
    """A font size, in points, at which every label fits in ``width`` of a cell.

    A third of the cell at most; a character is about 0.6 of the font size
    wide. Never below 3 points, where text stops being readable anyway.
    """
    longest = 1 if labels is None else max((len(text) for text in np.ravel(labels)), default=1)
    return max(min(cell / 3, width * cell / (0.6 * longest)), 3)


def _values(value, name, shape):
    """``matrix`` or ``kernel`` as an array of the shape the picture is drawn for."""
    array = as_array(value, name)
    if array.shape != tuple(shape):
        raise ValueError(f"{name} must have the shape {tuple(shape)} given for it, "
                         f"got shape {array.shape}")
    return array


class Grid:
    """A rectangle of cells in one Axes, coloured by role, optionally labelled.

    Data coordinates: one unit per cell, rows going down (the caller inverts
    the y axis), cell ``(r, c)`` spanning ``origin + (c, r)`` to
    ``origin + (c + 1, r + 1)``. All cells are one PolyCollection, so a new
    frame is one call to `paint`, not one artist per cell.
    """

    def __init__(self, ax, origin, roles, fontsize, labels=None, muted=None):
        from matplotlib.collections import PolyCollection

        self.ax, self.origin, self.shape = ax, origin, roles.shape
        rows, cols = np.indices(self.shape).reshape(2, -1)
        x, y = cols + origin[0], rows + origin[1]
        corners = np.stack([np.stack([x, y], -1), np.stack([x + 1, y], -1),
                            np.stack([x + 1, y + 1], -1), np.stack([x, y + 1], -1)], 1)
        self.cells = PolyCollection(corners, edgecolors="#8c8c8c", linewidths=0.6)
        ax.add_collection(self.cells)
        self.paint(roles)
        # One Text per labelled cell; `muted` cells (padding) get grey italics.
        self.labels = np.full(self.shape, None, dtype=object)
        if labels is not None:
            for (r, c), text in np.ndenumerate(labels):
                quiet = muted is not None and muted[r, c]
                self.labels[r, c] = ax.text(
                    *self.centre(r, c), text, ha="center", va="center", fontsize=fontsize,
                    color="#595959" if quiet else "black", style="italic" if quiet else "normal")

    def centre(self, row, col):
        """The data coordinates of the centre of cell ``(row, col)``."""
        return self.origin[0] + col + 0.5, self.origin[1] + row + 0.5

    def paint(self, roles):
        """Colour every cell by its role: ``roles`` has the grid's shape."""
        from matplotlib.colors import to_rgba_array

        palette = to_rgba_array([COLORS[role] for role in range(len(COLORS))])
        self.cells.set_facecolor(palette[roles.ravel()])

    def show_labels(self, visible):
        """Show the labels where the boolean array ``visible`` is True."""
        for label, shown in zip(self.labels.ravel(), visible.ravel()):
            if label is not None:
                label.set_visible(bool(shown))

    def outline(self, rows, cols, color, linewidth):
        """A rectangle around the cells ``rows x cols`` (two ranges or slices)."""
        from matplotlib.patches import Rectangle

        patch = Rectangle((0, 0), 0, 0, fill=False, edgecolor=color, linewidth=linewidth,
                          zorder=3)
        self.ax.add_patch(patch)
        self.move_outline(patch, rows, cols)
        return patch

    def move_outline(self, patch, rows, cols):
        """Put ``patch`` around the cells ``rows x cols``: first to last, inclusive."""
        rows, cols = (range(self.shape[0])[rows], range(self.shape[1])[cols])
        patch.set_xy((self.origin[0] + cols[0], self.origin[1] + rows[0]))
        patch.set_width(cols[-1] - cols[0] + 1)
        patch.set_height(rows[-1] - rows[0] + 1)


class Conv2dPicture:
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

        width = padded_shape[1] + GAP + out_shape[1]
        height = max(padded_shape[0], out_shape[0])
        ax.set_xlim(-0.05, width + 0.05)
        ax.set_ylim(height + 0.05, -1.0)       # y down; row -1 holds the captions
        ax.set_aspect("equal")
        ax.set_axis_off()
        cell = self._cell_points(width + 0.1, height + 1.05)

        if matrix is not None:
            matrix = matrix.astype(np.result_type(matrix, fill_value), copy=False)
            labels = np.vectorize(_format, otypes=[object])(
                pad(matrix, pads, padding_mode, fill_value))
        elif copies:
            labels = self.source.astype(str)
        else:
            labels = None                      # zeros or a constant: nothing to name
        self.input = Grid(ax, (0, 0), self.base, _fit(labels, cell), labels, self.is_padding)
        self.input.outline(slice(pads[0][0], pads[0][0] + h), slice(pads[1][0], pads[1][0] + w),
                           BORDER_COLOR, 1.6)
        self.window = self.input.outline(slice(0, 1), slice(0, 1), WINDOW_COLOR, 2.4)

        self.sums = None
        if matrix is not None and kernel is not None:
            self.sums = conv2d(matrix, kernel, geometry.stride, geometry.dilation, pads,
                               padding_mode=padding_mode, fill_value=fill_value)
        sum_labels = (None if self.sums is None
                      else np.vectorize(_format, otypes=[object])(self.sums))
        self.output = Grid(ax, (padded_shape[1] + GAP, 0), np.full(out_shape, TODO),
                           _fit(sum_labels, cell), sum_labels)
        # The kernel's weights ride in the bottom-right corner of the cells under its taps.
        weights = [] if kernel is None else [f"×{_format(v)}" for v in kernel.ravel()]
        size = min(_fit(np.array(weights), cell, width=0.9), 0.22 * cell)
        self.weights = [ax.text(0, 0, text, ha="right", va="bottom", color="#1a1a1a",
                                fontsize=size, zorder=4) for text in weights]

        for grid, caption in ((self.input, "input, padded" if any(map(any, pads)) else "input"),
                              (self.output, "output")):
            ax.text(grid.origin[0], -0.35, caption, ha="left", va="center",
                    fontsize=min(max(cell / 3, 8), 10))
        ax.legend(handles=self._legend(padding_mode, fill_value, copies, matrix is not None),
                  loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=2, frameon=False,
                  fontsize=8, handlelength=1.4)
        self.header = self._header(padding, padding_mode)

    def _cell_points(self, width, height):
        """The side of a cell in points, for an Axes showing ``width x height`` cells."""
        box = self.ax.get_window_extent()
        return min(box.width / width, box.height / height) * 72 / self.ax.figure.dpi

    def _legend(self, padding_mode, fill_value, copies, has_values):
        """What each colour means, for the modes and options of this picture."""
        from matplotlib.patches import Patch

        if copies:
            padding = (f"padding ('{padding_mode}'): copies the cell "
                       + ("whose value it shows" if has_values else "numbered in it"))
        else:
            padding = f"padding ('{padding_mode}'): the value {_format(fill_value)}"
        entries = [(INPUT, "input cell, numbered row by row" if copies and not has_values
                    else "input cell")]
        if self.is_padding.any():
            entries.append((PADDING, padding))
        entries += [(READ, "read by the kernel (blue frame: its span)"),
                    (CURRENT, "output cell being computed"),
                    (DONE, "output cells already computed")]
        return [Patch(facecolor=COLORS[role], edgecolor="#8c8c8c", label=text)
                for role, text in entries]

    def _header(self, padding, padding_mode):
        """The title's first lines: the parameters, as the user gave and as resolved."""
        g = self.geometry
        (top, bottom), (left, right) = g.padding
        given = f"{padding!r} → " if isinstance(padding, str) else ""
        resolved = (f"top {top}, bottom {bottom}, left {left}, right {right} · "
                    f"border '{padding_mode}'" if top or bottom or left or right else "none")
        return (f"input {g.input_shape[0]}×{g.input_shape[1]} · kernel "
                f"{g.kernel_shape[0]}×{g.kernel_shape[1]} · stride {g.stride} · "
                f"dilation {g.dilation}\npadding {given}{resolved}")

    @property
    def frames(self):
        """The number of frames: one per output cell."""
        return int(np.prod(self.geometry.output_shape))

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

        tap_rows = range(self.input.shape[0])[rows]
        tap_cols = range(self.input.shape[1])[cols]
        for label, (r, c) in zip(self.weights, ((r, c) for r in tap_rows for c in tap_cols)):
            x, y = self.input.centre(r, c)
            label.set_position((x + 0.45, y + 0.45))

        result = ("" if self.sums is None else
                  f" · sum of weight × value over the blue cells = {_format(self.sums[i, j])}")
        self.ax.set_title(f"{self.header}\noutput cell ({i}, {j}) of "
                          f"{g.output_shape[0]}×{g.output_shape[1]}{result}", fontsize=9)


def _new_figure(geometry):
    """A Figure with an Agg canvas and one Axes sized for the two grids.

    Not registered with pyplot: no window opens and nothing needs closing.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    (h, w), pads, out = geometry.input_shape, geometry.padding, geometry.output_shape
    width = w + sum(pads[1]) + GAP + out[1] + 0.1
    height = max(h + sum(pads[0]), out[0]) + 1.05
    cell = min(0.45, 12 / width)                # inches; wide pictures shrink to 12 inches
    top, bottom, side = 0.62, 0.78, 0.15          # title lines, legend rows, margin
    fig_width = max(width * cell + 2 * side, 5.6)
    fig_height = height * cell + top + bottom
    fig = Figure(figsize=(fig_width, fig_height))
    FigureCanvasAgg(fig)
    fig.add_axes([(fig_width - width * cell) / 2 / fig_width, bottom / fig_height,
                  width * cell / fig_width, height * cell / fig_height])
    return fig


def conv2d_picture(input_shape, kernel_shape, stride, dilation, padding, padding_mode,
                   fill_value, matrix, kernel, ax, step=0):
    """Check every argument, then build a `Conv2dPicture` showing output cell ``step``.

    The arguments are `plot_conv2d`'s; every error is raised here, before
    anything is drawn (into ``ax`` or a new figure) or written.
    `animate_conv2d` builds on it.
    """
    require_matplotlib()
    from matplotlib.axes import Axes

    geometry = conv_geometry(input_shape, kernel_shape, stride, dilation, padding)
    check_padding_mode(padding_mode, fill_value)
    if isinstance(step, (bool, np.bool_)) or not hasattr(step, "__index__"):
        raise TypeError(f"step must be an int, got {step!r}")
    frames = geometry.output_shape[0] * geometry.output_shape[1]
    if not 0 <= operator.index(step) < frames:
        raise ValueError(f"step must be an output cell number from 0 to {frames - 1} "
                         f"(output shape {geometry.output_shape}), got {step!r}")
    if matrix is not None:
        matrix = _values(matrix, "matrix", geometry.input_shape)
    if kernel is not None:
        kernel = _values(kernel, "kernel", geometry.kernel_shape)
    if ax is None:
        ax = _new_figure(geometry).axes[0]
    elif not isinstance(ax, Axes):
        raise TypeError(f"ax must be a matplotlib Axes or None, got {ax!r}")
    picture = Conv2dPicture(ax, geometry, padding, padding_mode, fill_value, matrix, kernel)
    picture.show(operator.index(step))
    return picture


def plot_conv2d(input_shape, kernel_shape, stride=1, dilation=1, padding=0, *,
                padding_mode="zeros", fill_value=0, step=0, matrix=None, kernel=None, ax=None):
    """Draw which input cells one output cell of ``conv2d`` reads.

    Parameters
    ----------
    input_shape : tuple of int, (H, W)
        Leading (batch) entries are allowed and ignored, as in `conv2d`.
    kernel_shape : tuple of int, (kh, kw)
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
        A new figure has an Agg canvas and is not registered with pyplot:
        save it with ``fig.savefig``; in Jupyter it shows when it is the
        cell's value; for a window, pass ``ax=plt.subplots()[1]``.

    Raises
    ------
    ImportError
        matplotlib is not installed.
    TypeError
        As for `conv2d`; ``step`` not an int; ``ax`` not an Axes.
    ValueError
        As for `conv2d`; ``step`` out of range; ``matrix`` or ``kernel`` not of
        the shape given for it.

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
