"""What every picture is made of: cells coloured by role, in a figure that shows itself.

A `Grid` is a rectangle of cells that knows nothing about convolution. Each
frame gives it a *role* per cell (input, padding, read, current, done, ...),
an integer array indexed exactly like the data, and the grid colours its
cells from the roles. A picture (``forward.py``, ``transposed.py``) is two
grids in one Axes and a function from the frame number to role arrays.

`new_figure` makes the figure the pictures are drawn in: a `PictureFigure`,
a matplotlib Figure with an Agg canvas that is not registered with pyplot
(no window opens, nothing needs closing) and that shows itself as a PNG when
it is the value of a Jupyter cell (``_repr_png_``), with no ``%matplotlib``
magic.

matplotlib is imported inside the functions, so ``import convolution`` does
not need it.
"""
import io
import itertools
import numbers
import operator

import numpy as np

from ..checks import as_array

__all__ = ["Grid", "PictureFigure", "figure_class", "new_figure", "require_matplotlib", "COLORS",
           "GAP", "TwoGrids", "check_values", "check_step", "check_ax", "shape_or_values",
           "format_value", "format_all", "fit", "pairs_text", "side_by_side", "INPUT", "PADDING",
           "READ", "CURRENT", "DONE", "TODO", "DROPPED"]

# The role of a cell in one frame; each picture's frames are arrays of these.
INPUT, PADDING, READ, CURRENT, DONE, TODO, DROPPED = range(7)

#: Colour of each role: Okabe and Ito's palette (sky blue, orange), which stays
#: distinguishable with the common colour-vision deficiencies, plus white,
#: grey and lighter tints that differ from it in lightness.
COLORS = {
    INPUT: "#ffffff",     # an input cell the kernel does not read in this frame
    PADDING: "#d4d4d4",   # a padded cell (cropped cell, transposed) not touched in this frame
    READ: "#56b4e9",      # a cell under one of the kernel's taps
    CURRENT: "#e69f00",   # the output cell being computed (input cell spreading, transposed)
    DONE: "#f2cf7f",      # an output cell already computed (input cell already spread, or
                          # output cell already reached, transposed)
    TODO: "#ffffff",      # an output cell still to come
    DROPPED: "#95c4de",   # transposed: a tap that lands in the cropped padding (blue on grey)
}
WINDOW_COLOR = "#0072b2"  # the outline of the dilated kernel's span (Okabe-Ito blue)
BORDER_COLOR = "#000000"  # the outline of the input inside its padding, or of the output
EXTRA_COLOR = "#d55e00"   # the rows and columns output_padding adds (Okabe-Ito vermillion)

#: Cells of empty space between the input grid and the output grid.
GAP = 2


def require_matplotlib():
    """Import matplotlib, or say how to install it."""
    try:
        import matplotlib
    except ImportError:
        raise ImportError("the pictures need matplotlib: pip install matplotlib") from None
    return matplotlib


def format_value(value):
    """A cell's value as a short label: integers exactly, floats to 3 digits."""
    if isinstance(value, (numbers.Integral, np.integer, np.bool_)):
        return str(int(value))
    return f"{value:.3g}"


format_all = np.vectorize(format_value, otypes=[object])


def fit(labels, cell, width=0.85):
    """A font size, in points, at which every label fits in ``width`` of a cell.

    A third of the cell at most; a character is about 0.6 of the font size
    wide. Never below 3 points, where text stops being readable anyway.
    """
    texts = [] if labels is None else [text for text in np.ravel(labels) if text is not None]
    longest = max(map(len, texts), default=1)
    return max(min(cell / 3, width * cell / (0.6 * longest)), 3)


def check_values(value, name, shape):
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
        # One Text per labelled cell (None: no label); `muted` cells (padding) in grey italics.
        self.labels = np.full(self.shape, None, dtype=object)
        if labels is not None:
            for (r, c), text in np.ndenumerate(labels):
                if text is None:
                    continue
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

    def show_labels(self, visible, texts=None):
        """Show the labels where the boolean array ``visible`` is True, with new ``texts``."""
        for (r, c), label in np.ndenumerate(self.labels):
            if label is not None:
                label.set_visible(bool(visible[r, c]))
                if texts is not None:
                    label.set_text(texts[r, c])

    def outline(self, rows, cols, color, linewidth, linestyle="-"):
        """A rectangle around the cells ``rows x cols`` (two ranges or slices)."""
        from matplotlib.patches import Rectangle

        patch = Rectangle((0, 0), 0, 0, fill=False, edgecolor=color, linewidth=linewidth,
                          linestyle=linestyle, zorder=3)
        self.ax.add_patch(patch)
        self.move_outline(patch, rows, cols)
        return patch

    def move_outline(self, patch, rows, cols):
        """Put ``patch`` around the cells ``rows x cols``: first to last, inclusive."""
        rows, cols = (range(self.shape[0])[rows], range(self.shape[1])[cols])
        patch.set_xy((self.origin[0] + cols[0], self.origin[1] + rows[0]))
        patch.set_width(cols[-1] - cols[0] + 1)
        patch.set_height(rows[-1] - rows[0] + 1)


def side_by_side(left, right):
    """The width and height, in cells, of grids of shapes ``left`` and ``right`` side by side."""
    return left[1] + GAP + right[1], max(left[0], right[0])


class TwoGrids:
    """What both pictures share: two grids in one Axes, captions, a legend, a title.

    A subclass builds its grids in ``__init__``, repaints them in ``show``, and
    says its size in cells (``extent``), from which `new_figure` sizes a figure.
    """

    def _layout(self, left, right):
        """Limits and aspect of the Axes for two grids of shapes ``left`` and ``right``.

        Returns the side of a cell in points, from which label sizes follow.
        """
        ax = self.ax
        width, height = side_by_side(left, right)
        ax.set_xlim(-0.05, width + 0.05)
        ax.set_ylim(height + 0.05, -1.0)       # y down; row -1 holds the captions
        ax.set_aspect("equal")
        ax.set_axis_off()
        box = ax.get_window_extent()
        return min(box.width / (width + 0.1), box.height / (height + 1.05)) * 72 / ax.figure.dpi

    def _captions(self, cell, *captions):
        """A caption above each of the two grids: ``captions`` in the order of the grids."""
        for grid, caption in zip((self.input, self.output), captions):
            self.ax.text(grid.origin[0], -0.35, caption, ha="left", va="center",
                         fontsize=min(max(cell / 3, 8), 10))

    def _legend(self, entries):
        """The legend below the grids: ``entries`` of (role or a Patch's style, text)."""
        from matplotlib.patches import Patch

        handles = [Patch(facecolor=COLORS[role], edgecolor="#8c8c8c", label=text)
                   if isinstance(role, int) else Patch(label=text, **role)
                   for role, text in entries]
        self.ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=2,
                       frameon=False, fontsize=8, handlelength=1.4)

    def _weights(self, kernel, cell):
        """One Text a kernel weight, placed by `_move_weights`."""
        weights = [] if kernel is None else [f"×{format_value(v)}" for v in kernel.ravel()]
        size = min(fit(weights, cell, width=0.9), 0.22 * cell)
        return [self.ax.text(0, 0, text, ha="right", va="bottom", color="#1a1a1a",
                             fontsize=size, zorder=4) for text in weights]

    def _move_weights(self, grid, rows, cols):
        """Put the kernel's weights in the bottom-right corner of the cells ``rows x cols``."""
        rows, cols = range(grid.shape[0])[rows], range(grid.shape[1])[cols]
        for label, (r, c) in zip(self.weights, itertools.product(rows, cols)):
            x, y = grid.centre(r, c)
            label.set_position((x + 0.45, y + 0.45))


def pairs_text(pads):
    """``((top, bottom), (left, right))`` in words, or 'none'."""
    (top, bottom), (left, right) = pads
    return (f"top {top}, bottom {bottom}, left {left}, right {right}"
            if top or bottom or left or right else "none")


def new_figure(*extents):
    """A Figure with an Agg canvas and one Axes a picture, left to right.

    ``extents`` are the pictures' ``(width, height, legend_rows)``, from
    `Conv2dPicture.extent` and `ConvTranspose2dPicture.extent`. Every
    picture gets the same cell size. A `PictureFigure`, not registered with
    pyplot: no window opens, nothing needs closing, and Jupyter shows it.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    # Data units: each grid's cells plus the caption row and a margin.
    sizes = [(width + 0.1, height + 1.05) for width, height, _ in extents]
    total = sum(width for width, _ in sizes)
    cell = min(0.45, 12 / total)               # inches; wide pictures shrink to 12 inches
    top, side, between = 0.62, 0.15, 0.5       # title lines, margin, space between pictures
    bottom = 0.18 + 0.2 * max(rows for *_, rows in extents)   # legend rows
    drawn = total * cell + between * (len(extents) - 1)
    fig_width = max(drawn + 2 * side, 5.6 * len(extents))
    fig_height = max(height for _, height in sizes) * cell + top + bottom
    fig = figure_class()(figsize=(fig_width, fig_height))
    FigureCanvasAgg(fig)
    x = (fig_width - drawn) / 2
    for width, height in sizes:
        # Pictures of different heights hang from the same line below the titles.
        fig.add_axes([x / fig_width, (fig_height - top - height * cell) / fig_height,
                      width * cell / fig_width, height * cell / fig_height])
        x += width * cell + between
    return fig


def figure_class():
    """`PictureFigure`, defined on first use: its base class is matplotlib's Figure."""
    global PictureFigure
    if PictureFigure is None:
        from matplotlib.figure import Figure

        class PictureFigure(Figure):
            """A matplotlib Figure that shows itself in Jupyter as a PNG.

            A figure not registered with pyplot has no rich display of its own
            unless ``%matplotlib inline`` is on; this one renders itself with
            ``savefig`` when IPython asks (``_repr_png_``), at the figure's dpi.
            Everything else is matplotlib's Figure: ``savefig``, ``axes``, ...
            """

            def _repr_png_(self):
                buffer = io.BytesIO()
                self.savefig(buffer, format="png")
                return buffer.getvalue()

        PictureFigure.__qualname__ = "PictureFigure"   # pickle finds it as this module's

    return PictureFigure


#: The class of the figures `new_figure` makes, once matplotlib is imported
#: (see `figure_class`); None before.
PictureFigure = None


def check_step(step, frames, what, shape):
    """``step`` as an int from 0 to ``frames - 1``: a cell of ``what`` (output or input)."""
    if isinstance(step, (bool, np.bool_)) or not hasattr(step, "__index__"):
        raise TypeError(f"step must be an int, got {step!r}")
    if not 0 <= operator.index(step) < frames:
        raise ValueError(f"step must be an {what} cell number from 0 to {frames - 1} "
                         f"({what} shape {shape}), got {step!r}")
    return operator.index(step)


def check_ax(ax, extent):
    """``ax``, or the Axes of a new figure sized for a picture of ``extent``."""
    from matplotlib.axes import Axes

    if ax is None:
        return new_figure(extent).axes[0]
    if not isinstance(ax, Axes):
        raise TypeError(f"ax must be a matplotlib Axes or None, got {ax!r}")
    return ax


def holds_values(given):
    """True when ``given`` is an array of values (two axes or more), not a shape.

    A shape is a flat list, tuple or 1-D array of ints; values are a NumPy
    (or any) array of two dimensions or more, or a nested list.
    """
    ndim = getattr(given, "ndim", None)
    if ndim is not None and not isinstance(given, (list, tuple)):
        return ndim >= 2
    return isinstance(given, (list, tuple)) and any(
        isinstance(entry, (list, tuple)) or getattr(entry, "ndim", 0) >= 1 for entry in given)


def shape_or_values(given, values, shape_name, values_name):
    """``(shape, values)`` from a positional argument that is a shape or the values.

    ``plot_conv2d(matrix, kernel)`` and ``plot_conv2d((5, 5), (3, 3),
    matrix=..., kernel=...)`` mean the same: the values, given in place of
    the shape, bring their shape with them.
    """
    if not holds_values(given):
        return given, values
    if values is not None:
        raise TypeError(f"{values_name} given twice: as values in place of {shape_name}, "
                        f"and as {values_name}=")
    array = as_array(given, values_name)
    if array.ndim != 2:
        raise ValueError(f"{values_name} must have 2 dimensions (H, W) to be drawn, "
                         f"got shape {array.shape}")
    return array.shape, array
