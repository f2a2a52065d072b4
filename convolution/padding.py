"""Border modes: how the input is extended beyond its edges before convolving.

The names are PyTorch's (``zeros``, ``reflect``, ``replicate``, ``circular``)
plus ``constant`` and ``symmetric``; each maps onto one ``np.pad`` mode, which
also defines what happens when the padding is wider than the input (the
pattern repeats).
"""
import functools
import numbers
from typing import NamedTuple

import numpy as np

from .checks import check_choice

__all__ = ["PADDING_MODES", "PADDING_MODE_DOC", "check_padding_mode", "fill_docstring", "pad",
           "pad_adjoint", "source_map", "source_cells", "Run", "source_runs", "Padded"]

#: Border mode -> np.pad mode (`PADDING_MODE_DOC` gives the table of the
#: same borders in OpenCV and scipy.ndimage).
PADDING_MODES = {
    "zeros": "constant",
    "constant": "constant",
    "reflect": "reflect",
    "symmetric": "symmetric",
    "replicate": "edge",
    "circular": "wrap",
}


#: The border modes as the docstrings of the public functions describe them,
#: filled in by `fill_docstring` where a docstring says ``{padding_mode}``.
PADDING_MODE_DOC = """\
padding_mode : str, default 'zeros'
    What the added cells hold. For the row ``a b c d``:

    ==========  ===============  ===========  ==================  ==============
    mode        left border      np.pad       OpenCV              scipy.ndimage
    ==========  ===============  ===========  ==================  ==============
    zeros       ``0 0 0 | a b``  constant     BORDER_CONSTANT     constant
    constant    ``v v v | a b``  constant     BORDER_CONSTANT     constant
    reflect     ``d c b | a b``  reflect      BORDER_REFLECT_101  mirror
    symmetric   ``c b a | a b``  symmetric    BORDER_REFLECT      reflect
    replicate   ``a a a | a b``  edge         BORDER_REPLICATE    nearest
    circular    ``b c d | a b``  wrap         BORDER_WRAP         grid-wrap
    ==========  ===============  ===========  ==================  ==============

    Padding wider than the input repeats the pattern, as ``np.pad`` does.
fill_value : number, default 0
    The value of the added cells with ``padding_mode='constant'``; any
    other mode refuses a nonzero fill value, as ``np.pad`` does."""


#: The docstring pieces `fill_docstring` puts in: the parameters, or the table alone.
_DOC_PIECES = {
    "{padding_mode}": PADDING_MODE_DOC,
    "{padding_mode_names}": "\n".join(line[4:] for line in PADDING_MODE_DOC.splitlines()[3:13]),
}


def fill_docstring(function):
    """Put `PADDING_MODE_DOC` where ``function``'s docstring has a line ``{padding_mode}``.

    Indented as that line is, so one table serves every public function; a
    line ``{padding_mode_names}`` receives the table alone.
    """
    doc = function.__doc__
    if doc:
        lines = []
        for line in doc.splitlines():
            piece = _DOC_PIECES.get(line.strip())
            if piece is not None:
                indent = line[:len(line) - len(line.lstrip())]
                lines.extend(indent + text if text else "" for text in piece.splitlines())
            else:
                lines.append(line)
        function.__doc__ = "\n".join(lines)
    return function


def check_padding_mode(padding_mode, fill_value=0):
    """Check ``padding_mode`` against the list and ``fill_value`` against the mode.

    Like ``np.pad``, a fill value is refused by every mode but 'constant',
    rather than silently ignored.
    """
    check_choice("padding_mode", padding_mode, tuple(PADDING_MODES))
    if isinstance(fill_value, (bool, np.bool_)) or not isinstance(fill_value, numbers.Number):
        raise TypeError(f"fill_value must be a number, got {fill_value!r}")
    if padding_mode != "constant" and fill_value != 0:
        raise ValueError(f"fill_value is used only with padding_mode='constant', "
                         f"got fill_value={fill_value!r} with padding_mode={padding_mode!r}")


def pad(matrix, padding, padding_mode="zeros", fill_value=0):
    """``matrix`` extended by ``padding = ((top, bottom), (left, right))`` cells.

    Only the last two axes are padded (the last ``len(padding)``: one
    ``(before, after)`` pair per axis, for any number of axes). Returns ``matrix`` itself (not a copy)
    when there is nothing to add, so callers must not write into the result.

    Examples
    --------
    >>> row = np.array([[1, 2, 3, 4]])
    >>> for mode in PADDING_MODES:
    ...     print(f"{mode:>9}", pad(row, ((0, 0), (3, 0)), mode, 9 if mode == "constant" else 0))
        zeros [[0 0 0 1 2 3 4]]
     constant [[9 9 9 1 2 3 4]]
      reflect [[4 3 2 1 2 3 4]]
    symmetric [[3 2 1 1 2 3 4]]
    replicate [[1 1 1 1 2 3 4]]
     circular [[2 3 4 1 2 3 4]]
    """
    if not any(map(any, padding)):
        return matrix
    widths = ((0, 0),) * (matrix.ndim - len(padding)) + tuple(padding)
    np_mode = PADDING_MODES[padding_mode]
    if np_mode == "constant":
        return np.pad(matrix, widths, mode="constant", constant_values=fill_value)
    return np.pad(matrix, widths, mode=np_mode)


def pad_adjoint(grad, padding, padding_mode="zeros", overwrite=False):
    """The adjoint of `pad`: fold a gradient of the padded array back onto the input.

    Every cell of the padded array is a copy of one input cell, or the fill
    value. So the gradient of an input cell is the sum of the gradients of
    every padded cell that copies it: its own cell inside, plus the border
    cells that repeat it (none with 'zeros' and 'constant', whose border is
    the fill value; one or more with the other modes). Only the last two axes
    were padded (the last ``len(padding)``, for any number of axes).

    Parameters
    ----------
    grad : ndarray, shape (..., Hp, Wp)
        The gradient with respect to ``pad(matrix, padding, padding_mode)``.
    padding : ((top, bottom), (left, right))
        The padding `pad` added.
    padding_mode : str
        The border mode `pad` used.
    overwrite : bool, default False
        Fold in place: the result is then a view of ``grad``, whose inside
        cells receive the border's sums (no copy of the whole array is made).

    Returns
    -------
    ndarray, shape (..., Hp - top - bottom, Wp - left - right)
        A new array (a view of ``grad`` with ``overwrite``), the dtype of ``grad``.

    Notes
    -----
    For each padded axis, `source_map` (``np.pad`` of ``arange``, the very
    call `pad` makes) says which input cell each padded cell copies; the fold
    adds each border's gradient onto those cells, one axis after the other.
    A border is a few runs that copy input cells one step apart (`source_runs`:
    a reflection steps by -1, a wrap-around by +1, a replicated edge by 0),
    so the fold is a few slice additions (a sum first for a replicated edge),
    not a cell-by-cell scatter. In formulas, with ``P`` the padding as a 0/1
    matrix along an axis, ``pad(x) = P x`` and this is ``P^T g``, so that
    ``sum(pad(x) * g) == sum(x * pad_adjoint(g))``.

    Examples
    --------
    >>> pad(np.array([["x0", "x1", "x2"]]), ((0, 0), (2, 1)), "reflect")
    array([['x2', 'x1', 'x0', 'x1', 'x2', 'x1']], dtype='<U2')
    >>> g = np.array([[1, 10, 100, 1000, 10000, 100000]])   # the gradient of those six cells
    >>> for mode in ("zeros", "reflect", "symmetric", "replicate", "circular"):
    ...     print(f"{mode:>9}", pad_adjoint(g, ((0, 0), (2, 1)), mode))
        zeros [[  100  1000 10000]]
      reflect [[   100 101010  10001]]
    symmetric [[   110   1001 110000]]
    replicate [[   111   1000 110000]]
     circular [[100100   1001  10010]]
    """
    for axis, (before, after) in zip(range(-len(padding), 0), padding):
        size = grad.shape[axis] - before - after
        tail = (slice(None),) * (-1 - axis)
        folded = grad[(Ellipsis, slice(before, before + size)) + tail]     # the input's own cells
        if not overwrite:
            folded = folded.copy()
        for start, length, first, step in _border_runs(size, before, after, padding_mode):
            if first < 0:       # the fill value: no input cell receives its gradient
                continue
            part = grad[(Ellipsis, slice(start, start + length)) + tail]
            if step == 0:       # a replicated edge: every cell of the run copies one
                folded[(Ellipsis, slice(first, first + 1)) + tail] += np.add.reduce(
                    part, axis=axis, keepdims=True)
            else:
                folded[(Ellipsis, _slice(first, length, step)) + tail] += part
        grad = folded
    return grad


@functools.lru_cache(maxsize=1024)
def _border_runs(size, before, after, padding_mode):
    """The runs (`source_runs`) of a padded axis's two borders, placed in the padded axis."""
    source = source_map(size, before, after, padding_mode)
    return (tuple(source_runs(source[:before]))
            + tuple(run._replace(start=run.start + before + size)
                    for run in source_runs(source[before + size:])))


# ---------------------------------------------------------------------------
# Source maps: which input cell each padded cell copies
# ---------------------------------------------------------------------------

@functools.lru_cache(maxsize=256)
def source_map(size, before, after, padding_mode):
    """For each cell of a padded axis, the index of the input cell it copies; -1 for the fill.

    Made by padding ``arange(size)`` with `pad`'s own ``np.pad`` mode, so the
    two can never disagree about which cell a border copies. A fast path
    reads the padded cells it needs through the map instead of building the
    padded array. The result is cached and read-only.

    Examples
    --------
    >>> source_map(4, 3, 1, "reflect")
    array([3, 2, 1, 0, 1, 2, 3, 2])
    >>> source_map(4, 2, 2, "zeros")
    array([-1, -1,  0,  1,  2,  3, -1, -1])
    """
    indices = np.arange(size)
    np_mode = PADDING_MODES[padding_mode]
    if np_mode == "constant":
        source = np.pad(indices, (before, after), mode="constant", constant_values=-1)
    else:
        source = np.pad(indices, (before, after), mode=np_mode)
    source.flags.writeable = False    # cached: shared by every call with these arguments
    return source


def source_cells(cells, size, before, after, padding_mode):
    """``source_map(size, before, after, padding_mode)[cells]``, without the whole map.

    For an axis of millions of cells (a long signal), the map is as large as
    the axis, for the few cells at its ends that a border reads. When the
    padding is narrower than the axis, these are the same indices in closed
    form: a reflection mirrors about the end cell, a symmetric border about
    the end's edge, a circular one takes the other end. Wider padding
    repeats the pattern, which NumPy's versions do differently (2.0 made
    'wrap' strictly periodic): the map of ``np.pad`` itself then, no larger
    than the padding.

    Examples
    --------
    >>> source_cells([0, 1, 2, 10**6 + 2], 10**6, 2, 1, "symmetric")
    array([     1,      0,      0, 999999])
    """
    if max(before, after) >= size:
        return source_map(size, before, after, padding_mode)[cells]
    q = np.asarray(cells) - before
    if padding_mode in ("zeros", "constant"):
        return np.where((q >= 0) & (q < size), q, -1)
    if padding_mode == "replicate":
        return np.clip(q, 0, size - 1)
    if padding_mode == "circular":
        return q % size
    if padding_mode == "reflect":
        if size == 1:
            return np.zeros_like(q)
        m = q % (2 * size - 2)
        return np.where(m < size, m, 2 * size - 2 - m)
    m = q % (2 * size)                    # symmetric
    return np.where(m < size, m, 2 * size - 1 - m)


class Run(NamedTuple):
    """Cells ``start .. start + length - 1`` of a source map copy input cells
    ``first, first + step, ...`` (``step`` 0: one cell repeated); ``first == -1``: the fill."""
    start: int
    length: int
    first: int
    step: int

    def input_slice(self, first=None):
        """The slice of the input this run copies, from ``first`` (default the run's own).

        A repeated cell (step 0) is a slice of that one cell. ``first`` lets
        a caller whose input is cut into pieces (Dask's chunks) ask for the
        same run from a piece's own origin.

        >>> Run(0, 3, 2, -1).input_slice()
        slice(2, None, -1)
        >>> np.arange(5)[Run(0, 3, 2, -1).input_slice()]
        array([2, 1, 0])
        """
        return _slice(self.first if first is None else first, self.length, self.step)


def _slice(first, length, step):
    """`Run.input_slice`, for the loops that unpack runs as plain tuples."""
    if step == 0:
        return slice(first, first + 1)
    stop = first + step * length
    return slice(first, stop if stop >= 0 else None, step)


def source_runs(source):
    """Split a source map into runs (`Run`) that one slice each can copy.

    A border is a few runs (a reflection is a run with step -1, a replicated
    edge a run with step 0, the fill a run of its own), so a region of the
    padded input is a few slice copies, not a gather.

    Examples
    --------
    >>> [tuple(run) for run in source_runs(source_map(4, 2, 2, "reflect"))]
    [(0, 3, 2, -1), (3, 3, 1, 1), (6, 2, 2, -1)]
    >>> [tuple(run) for run in source_runs(np.array([-1, 0, 0, 0]))]
    [(0, 1, -1, 0), (1, 3, 0, 0)]
    """
    n = len(source)
    fill = source < 0
    steps = np.diff(source)
    start = 0
    while start < n:
        if fill[start]:
            stop = start + int(np.argmin(fill[start:])) if not fill[start:].all() else n
            yield Run(start, stop - start, -1, 0)
        elif start == n - 1 or fill[start + 1]:
            stop = start + 1
            yield Run(start, 1, int(source[start]), 1)
        else:
            step = steps[start]
            # The run goes on while the step stays the same and no fill cell comes.
            breaks = (steps[start + 1:] != step) | fill[start + 2:]
            stop = start + 2 + (int(np.argmax(breaks)) if breaks.any() else len(breaks))
            yield Run(start, stop - start, int(source[start]), int(step))
        start = stop


@functools.lru_cache(maxsize=1024)
def _phase_runs(size, before, after, padding_mode, phase, step):
    """The runs (see `source_runs`) of every ``step``-th cell of a padded axis, from ``phase``."""
    return tuple(source_runs(source_map(size, before, after, padding_mode)[phase::step]))


class Padded:
    """The padded input of one convolution, produced region by region on demand.

    ``Padded(matrix, padding, mode, fill_value).region(batch, rows, cols, dtype)``
    equals ``pad(matrix, padding, mode, fill_value)[batch, rows, cols]`` for
    ``matrix`` of shape (N, H, W), but never builds the whole padded array:
    the fast paths fetch one cache-sized strip or one stride phase at a time,
    so their memory stays proportional to the output, not to the input.

    Examples
    --------
    >>> x = np.arange(12).reshape(1, 3, 4)
    >>> p = Padded(x, ((1, 1), (2, 2)), "reflect")
    >>> p.shape
    (5, 8)
    >>> np.array_equal(p.region(slice(None), range(0, 5), range(0, 8), int),
    ...                pad(x, ((1, 1), (2, 2)), "reflect"))
    True
    >>> p.region(slice(None), range(1, 4), range(0, 8, 3), int)   # the input rows, every 3rd column
    array([[[ 2,  1,  2],
            [ 6,  5,  6],
            [10,  9, 10]]])
    """

    def __init__(self, matrix, padding, padding_mode="zeros", fill_value=0):
        (top, bottom), (left, right) = padding
        height, width = matrix.shape[-2:]
        self.matrix = matrix
        self.fill_value = fill_value
        self.shape = (height + top + bottom, width + left + right)
        self._axes = ((height, top, bottom, padding_mode), (width, left, right, padding_mode))
        self._windows = {}    # the columns every strip asks for, worked out once
        #: Whether every border cell holds ``fill_value`` ('zeros', 'constant').
        self.constant_border = PADDING_MODES[padding_mode] == "constant"

    def _window(self, axis, cells):
        """The runs of ``cells`` (a range along ``axis``), relative to its start.

        The runs of a whole phase of the axis are worked out once and cached:
        strips then only clip them, which is a few integer operations.
        """
        runs = _phase_runs(*self._axes[axis], cells.start % cells.step, cells.step)
        first, last = cells.start // cells.step, cells.start // cells.step + len(cells)
        for start, length, source, step in runs:
            lo, hi = max(start, first), min(start + length, last)
            if lo < hi:
                yield lo - first, hi - lo, source if source < 0 else source + step * (lo - start), step

    def _columns(self, cols):
        """``list(self._window(1, cols))``, kept: the strips of a call ask for the same columns."""
        key = (cols.start, cols.stop, cols.step)
        runs = self._windows.get(key)
        if runs is None:
            runs = self._windows[key] = list(self._window(1, cols))
        return runs

    def shifted(self, rows):
        """This padded input seen ``rows`` rows further down: its region(rows) is ours(rows + rows)."""
        return _Shifted(self, rows)

    def region(self, batch, rows, cols, dtype, out=None):
        """``padded[batch, rows, cols]`` as a C-contiguous array of ``dtype``.

        ``rows`` and ``cols`` are ranges with a positive step; the part of them
        beyond the padded input's edge is filled with zeros, which lets a
        caller ask for a block of a fixed shape at the bottom or right edge.
        The result is written into ``out`` when given, else into a new array.
        """
        if out is None:
            batch_size = len(range(*batch.indices(self.matrix.shape[0])))
            out = np.empty((batch_size, len(rows), len(cols)), dtype=dtype)
        row_runs, col_runs = list(self._window(0, rows)), self._columns(cols)
        inside_rows = sum(length for _, length, _, _ in row_runs)
        inside_cols = sum(length for _, length, _, _ in col_runs)
        if inside_rows < len(rows):
            out[:, inside_rows:, :] = 0
        if inside_cols < len(cols):
            out[:, :, inside_cols:] = 0
        for r0, rn, rfirst, rstep in row_runs:
            if rfirst < 0:      # rows of the fill value: one call for all their columns
                out[:, r0:r0 + rn, :inside_cols] = self.fill_value
                continue
            for c0, cn, cfirst, cstep in col_runs:
                target = out[:, r0:r0 + rn, c0:c0 + cn]
                if cfirst < 0:
                    target[...] = self.fill_value
                else:
                    target[...] = self.matrix[batch, _slice(rfirst, rn, rstep),
                                              _slice(cfirst, cn, cstep)]
        return out


class _Shifted:
    """A `Padded` seen a number of rows further down (`Padded.shifted`)."""

    def __init__(self, padded, offset):
        self.padded, self.offset = padded, offset
        self.matrix, self.fill_value = padded.matrix, padded.fill_value
        self.shape = (padded.shape[0] - offset, padded.shape[1])
        self.constant_border = False     # its rows are not the matrix's: never read in place

    def region(self, batch, rows, cols, dtype, out=None):
        rows = range(rows.start + self.offset, rows.stop + self.offset, rows.step)
        return self.padded.region(batch, rows, cols, dtype, out)
