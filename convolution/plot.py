"""Pictures of the convolution and of the transposed convolution, for any parameters.

The pictures are drawn from the library's own arithmetic, so they cannot
disagree with it:

- the cells an output cell of ``conv2d`` reads are ``padded[window(i, j, ...)]``,
  the very slice the reference loops multiply by the kernel (``shapes.window``);
  the cells an input cell of the transposed convolution adds into are
  ``shapes.spread``'s, and the output shape is ``conv_transpose_geometry``'s;
- the padding is ``conv_geometry``'s, and what each padded cell holds comes
  from ``padding.pad`` applied to an array of cell numbers: a padded cell
  shows the number of the input cell it copies;
- the sums shown in the output cells are computed by the library's functions.

How the drawing is organised: a `Grid` is a rectangle of cells that knows
nothing about convolution. Each frame gives it a *role* per cell (input,
padding, read, current, done, ...), an integer array indexed exactly like the
data, and the grid colours its cells from the roles. A picture is then two
grids and a function from the frame number to role arrays: `Conv2dPicture.show`
(one frame per output cell) and `ConvTranspose2dPicture.show` (one frame per
input cell).

matplotlib is imported inside the functions, so ``import convolution`` does
not need it.
"""
import itertools
import math
import numbers
import operator

import numpy as np

from .checks import as_array
from .conv import conv2d, conv_transpose2d
from .padding import PADDING_MODES, check_padding_mode, pad
from .shapes import (conv_geometry, conv_transpose_geometry, conv_transpose_output_shape,
                     spread, window)

__all__ = ["plot_conv2d", "plot_conv_transpose2d", "conv2d_picture",
           "conv_transpose2d_picture", "Conv2dPicture", "ConvTranspose2dPicture", "Grid",
           "new_figure", "COLORS", "GAP"]

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


def _format(value):
    """A cell's value as a short label: integers exactly, floats to 3 digits."""
    if isinstance(value, (numbers.Integral, np.integer, np.bool_)):
        return str(int(value))
    return f"{value:.3g}"


_format_all = np.vectorize(_format, otypes=[object])


def _fit(labels, cell, width=0.85):
    """A font size, in points, at which every label fits in ``width`` of a cell.

    A third of the cell at most; a character is about 0.6 of the font size
    wide. Never below 3 points, where text stops being readable anyway.
    """
    texts = [] if labels is None else [text for text in np.ravel(labels) if text is not None]
    longest = max(map(len, texts), default=1)
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


def _extent(left, right):
    """The width and height, in cells, of grids of shapes ``left`` and ``right`` side by side."""
    return left[1] + GAP + right[1], max(left[0], right[0])


class _Picture:
    """What both pictures share: two grids in one Axes, captions, a legend, a title.

    A subclass builds its grids in ``__init__``, repaints them in ``show``, and
    says its size in cells (``extent``), from which `new_figure` sizes a figure.
    """

    def _layout(self, left, right):
        """Limits and aspect of the Axes for two grids of shapes ``left`` and ``right``.

        Returns the side of a cell in points, from which label sizes follow.
        """
        ax = self.ax
        width, height = _extent(left, right)
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
        weights = [] if kernel is None else [f"×{_format(v)}" for v in kernel.ravel()]
        size = min(_fit(weights, cell, width=0.9), 0.22 * cell)
        return [self.ax.text(0, 0, text, ha="right", va="bottom", color="#1a1a1a",
                             fontsize=size, zorder=4) for text in weights]

    def _move_weights(self, grid, rows, cols):
        """Put the kernel's weights in the bottom-right corner of the cells ``rows x cols``."""
        rows, cols = range(grid.shape[0])[rows], range(grid.shape[1])[cols]
        for label, (r, c) in zip(self.weights, itertools.product(rows, cols)):
            x, y = grid.centre(r, c)
            label.set_position((x + 0.45, y + 0.45))


def _pairs_text(pads):
    """``((top, bottom), (left, right))`` in words, or 'none'."""
    (top, bottom), (left, right) = pads
    return (f"top {top}, bottom {bottom}, left {left}, right {right}"
            if top or bottom or left or right else "none")


class Conv2dPicture(_Picture):
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
            labels = _format_all(pad(matrix, pads, padding_mode, fill_value))
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
        sum_labels = None if self.sums is None else _format_all(self.sums)
        self.output = Grid(ax, (padded_shape[1] + GAP, 0), np.full(out_shape, TODO),
                           _fit(sum_labels, cell), sum_labels)
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
            padding = f"padding ('{padding_mode}'): the value {_format(fill_value)}"
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
        resolved = _pairs_text(g.padding)
        if resolved != "none":
            resolved += f" · border '{padding_mode}'"
        return (f"input {g.input_shape[0]}×{g.input_shape[1]} · kernel "
                f"{g.kernel_shape[0]}×{g.kernel_shape[1]} · stride {g.stride} · "
                f"dilation {g.dilation}\npadding {given}{resolved}")

    @staticmethod
    def extent(geometry):
        """``(width, height, legend_rows)`` of the picture, in cells, for `new_figure`."""
        (h, w), ((top, bottom), (left, right)) = geometry.input_shape, geometry.padding
        return _extent((h + top + bottom, w + left + right), geometry.output_shape) + (3,)

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
                  f" · sum of weight × value over the blue cells = {_format(self.sums[i, j])}")
        self.ax.set_title(f"{self.header}\noutput cell ({i}, {j}) of "
                          f"{g.output_shape[0]}×{g.output_shape[1]}{result}", fontsize=9)


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


class ConvTranspose2dPicture(_Picture):
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

        labels = None if matrix is None else _format_all(matrix)
        self.input = Grid(ax, (0, 0), np.full((h, w), INPUT), _fit(labels, cell), labels)
        self.matrix, self.kernel, self.sums = matrix, kernel, None
        sum_labels = None
        if matrix is not None and kernel is not None:
            self.sums = conv_transpose2d(matrix, kernel, g.stride, g.dilation, g.padding,
                                         g.output_padding)
            # Labels sized for the longest running sum: at most sum(|value| * |weight|).
            bound = conv_transpose2d(np.abs(matrix), np.abs(kernel), g.stride, g.dilation,
                                     g.padding, g.output_padding)
            widest = [*_format_all(self.sums).ravel(),
                      *("-" + text for text in _format_all(bound).ravel())]
            sum_labels = np.full(canvas, None, dtype=object)
            sum_labels[top:top + ho, left:left + wo] = _format_all(self.sums)
        self.output = Grid(ax, (w + GAP, 0), np.where(self.is_padding, PADDING, TODO),
                           _fit(None if sum_labels is None else widest, cell), sum_labels)
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
                       f"{_pairs_text(g.padding)} · output_padding {g.output_padding}")

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
        return _extent(geometry.input_shape, canvas) + (rows,)

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
            texts[top:top + ho, left:left + wo] = _format_all(running)
            self.output.show_labels(self.first <= step, texts)
            value = _format(self.matrix[i, j])
            result = f" = {value}: adds {value} × weight to the blue cells"
        self.ax.set_title(f"{self.header}\ninput cell ({i}, {j}) of "
                          f"{g.input_shape[0]}×{g.input_shape[1]}{result}", fontsize=9)


def new_figure(*extents):
    """A Figure with an Agg canvas and one Axes a picture, left to right.

    ``extents`` are the pictures' ``(width, height, legend_rows)``, from
    `Conv2dPicture.extent` and `ConvTranspose2dPicture.extent`. Every
    picture gets the same cell size. Not registered with pyplot: no window
    opens and nothing needs closing.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # Data units: each grid's cells plus the caption row and a margin.
    sizes = [(width + 0.1, height + 1.05) for width, height, _ in extents]
    total = sum(width for width, _ in sizes)
    cell = min(0.45, 12 / total)               # inches; wide pictures shrink to 12 inches
    top, side, between = 0.62, 0.15, 0.5       # title lines, margin, space between pictures
    bottom = 0.18 + 0.2 * max(rows for *_, rows in extents)   # legend rows
    drawn = total * cell + between * (len(extents) - 1)
    fig_width = max(drawn + 2 * side, 5.6 * len(extents))
    fig_height = max(height for _, height in sizes) * cell + top + bottom
    fig = Figure(figsize=(fig_width, fig_height))
    FigureCanvasAgg(fig)
    x = (fig_width - drawn) / 2
    for width, height in sizes:
        # Pictures of different heights hang from the same line below the titles.
        fig.add_axes([x / fig_width, (fig_height - top - height * cell) / fig_height,
                      width * cell / fig_width, height * cell / fig_height])
        x += width * cell + between
    return fig


def _check_step(step, frames, what, shape):
    """``step`` as an int from 0 to ``frames - 1``: a cell of ``what`` (output or input)."""
    if isinstance(step, (bool, np.bool_)) or not hasattr(step, "__index__"):
        raise TypeError(f"step must be an int, got {step!r}")
    if not 0 <= operator.index(step) < frames:
        raise ValueError(f"step must be an {what} cell number from 0 to {frames - 1} "
                         f"({what} shape {shape}), got {step!r}")
    return operator.index(step)


def _check_ax(ax, extent):
    """``ax``, or the Axes of a new figure sized for a picture of ``extent``."""
    from matplotlib.axes import Axes

    if ax is None:
        return new_figure(extent).axes[0]
    if not isinstance(ax, Axes):
        raise TypeError(f"ax must be a matplotlib Axes or None, got {ax!r}")
    return ax


def conv2d_picture(input_shape, kernel_shape, stride, dilation, padding, padding_mode,
                   fill_value, matrix, kernel, ax, step=0):
    """Check every argument, then build a `Conv2dPicture` showing output cell ``step``.

    The arguments are `plot_conv2d`'s; every error is raised here, before
    anything is drawn (into ``ax`` or a new figure) or written.
    `animate_conv2d` builds on it.
    """
    require_matplotlib()
    geometry = conv_geometry(input_shape, kernel_shape, stride, dilation, padding)
    check_padding_mode(padding_mode, fill_value)
    step = _check_step(step, math.prod(geometry.output_shape), "output", geometry.output_shape)
    if matrix is not None:
        matrix = _values(matrix, "matrix", geometry.input_shape)
    if kernel is not None:
        kernel = _values(kernel, "kernel", geometry.kernel_shape)
    ax = _check_ax(ax, Conv2dPicture.extent(geometry))
    picture = Conv2dPicture(ax, geometry, padding, padding_mode, fill_value, matrix, kernel)
    picture.show(step)
    return picture


def conv_transpose2d_picture(input_shape, kernel_shape, stride, dilation, padding,
                             output_padding, matrix, kernel, ax, step=0):
    """Check every argument, then build a `ConvTranspose2dPicture` showing input cell ``step``.

    The arguments are `plot_conv_transpose2d`'s; every error is raised here,
    before anything is drawn or written. `animate_conv_transpose2d` builds on it.
    """
    require_matplotlib()
    geometry = conv_transpose_geometry(input_shape, kernel_shape, stride, dilation, padding,
                                       output_padding)
    step = _check_step(step, math.prod(geometry.input_shape), "input", geometry.input_shape)
    if matrix is not None:
        matrix = _values(matrix, "matrix", geometry.input_shape)
    if kernel is not None:
        kernel = _values(kernel, "kernel", geometry.kernel_shape)
    ax = _check_ax(ax, ConvTranspose2dPicture.extent(geometry))
    picture = ConvTranspose2dPicture(ax, geometry, matrix, kernel)
    picture.show(step)
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


def plot_conv_transpose2d(input_shape, kernel_shape, stride=1, dilation=1, padding=0,
                          output_padding=0, *, step=0, matrix=None, kernel=None, ax=None):
    """Draw which output cells one input cell of the transposed convolution adds into.

    Parameters
    ----------
    input_shape : tuple of int, (H, W)
        The input of the transposed convolution (the small side, in a
        decoder). Leading (batch) entries are allowed and ignored.
    kernel_shape : tuple of int, (kh, kw)
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
    (`shapes.spread`): input cell ``(i, j)`` times kernel tap ``(a, b)``
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
