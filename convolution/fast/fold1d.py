"""A long 1-D signal folded into rows: its sums as Toeplitz matrix products (BLAS).

The idea
--------
A 1-D correlation ``out[i] = sum over a < k of kernel[a] * x[i * s + a * d]``
is, for a block of ``W`` consecutive outputs, one row vector times a matrix:
the ``W * s + span`` cells the block reads (``span = d * (k - 1)``) times the
Toeplitz matrix ``T`` whose column ``j`` holds the kernel from row ``j * s``
on, ``d`` rows apart (``T[j * s + a * d, j] = kernel[a]``). Cut the signal
into rows of ``P = W * s`` cells, ``x.reshape(-1, P)`` (a view, no copy):
output row ``r`` reads its own row and the start of the next ones, so with
``T`` cut into blocks of ``P`` rows, ``T_0, T_1, ...``,

.. code-block:: text

    out_rows = X[0:] @ T_0  +  X[1:, :w_1] @ T_1

each term a matrix product over the whole folded signal (in chunks of
``Settings.fold_rows`` rows that stay in cache), when the kernel spans at
most one row. NumPy hands each to BLAS, which does the multiply-adds of
many rows in one call, with the GIL released. ``X[1:, :w_1]`` is a view with the row stride ``P``,
which BLAS takes as it is: nothing is copied. A longer kernel would take
one term per row it spans; instead, a chunk of overlapping rows, each the
cells its block reads, is copied (in cache) and multiplied by the whole of
``T`` at once.

The folded rows are cut into strips (``driver.plan``), which the driver's
threads share where the work is worth it (long signals, long kernels, many
signals); BLAS runs on the calling thread of each strip.

Cost per output
---------------
``W + span / s`` multiply-adds instead of ``k`` (the zeros of ``T``), at
BLAS speed, with ``W = 8`` for a short kernel, 32 for a middling one and 16
for a long one; plus one addition for the second product, or
``(W + span) / W`` copied cells.
Measured on one core (``benchmarks/nd.py``): 1.2 to 1.4 times
np.correlate's time at k = 7 (its loop is hard to beat there: the products
alone take about its time, the NaN gate and the call the rest), a quarter
of it at k = 31, a third to a half at k = 101.
Memory: the Toeplitz matrix (``(W * s + span) * W`` cells) and one chunk of
output rows (and of copied rows) per thread; the signal is read in place
(a strip converts its own part of it, where it is not contiguous float).

Limits
------
Real float32 and float64 only (BLAS; integers go through the exact tap
loops). A product sums the zeros of ``T`` times every cell of the row too,
so a NaN or an infinity in a row's input would reach all of its outputs.
Every output of a row multiplies every cell the row reads, so one column
of a chunk's outputs tells whether any of them met a NaN or an infinity (a
sum of a few thousand cells, not of the whole chunk); where it did, the
rows whose outputs are not all finite are done again window by window (each
window's taps times the kernel, nothing else), so that NaN and infinity
reach exactly the outputs whose window holds them. The borders (the outputs
whose window reaches into the padding) are computed the same way on the few
padded cells they read, found through the border's source map
(``padding.source_cells``); the signal is never padded whole.
"""
import numpy as np

from .. import driver, settings as _settings
from ..padding import source_cells
from .cache import kernel_cache
from .costs import cell_scale, products

__all__ = ["DTYPES", "pays", "convolve"]

#: The dtypes BLAS multiplies.
DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def pays(length, kernel_size, stride, s=None):
    """Whether 'auto' folds: long signals at stride 1 (a stride multiplies the zeros of ``T``).

    Long means ``Settings.fold_min_length`` samples or more.
    """
    s = s or _settings.current()
    return stride == 1 and kernel_size > 1 and length >= s.fold_min_length


def _layout(span, stride, s):
    """Outputs per folded row, and folded rows per product, for a kernel spanning ``span`` cells.

    Measured on one core against each other (float64, 10**6 samples): 8 outputs a row and
    ``fold_rows`` rows a product for a span up to 8 strides (k = 7); 32 and an eighth of
    those rows up to 32 strides (k = 31: 1.2 times faster than 16 outputs on copied rows); beyond,
    16 outputs a row on copied rows (``fold_copy_rows`` a product).
    """
    if span <= 8 * stride:
        return 8, s.fold_rows
    if span <= 32 * stride:
        return 32, max(1, s.fold_rows // 8)
    return 16, s.fold_copy_rows


@kernel_cache()
def _toeplitz(kernel, stride, dilation, width):
    """``T[j * stride + a * dilation, j] = kernel[a]``, and ``T`` cut into its two blocks.

    Returns ``(T, first, second)``: ``T`` is ((width - 1) * s + span + 1) x
    width; ``first`` its first ``width * stride`` rows (zeros below where T
    is shorter), ``second`` the rest (a kernel that reaches into the next
    folded row), or None where ``T`` reaches more than one row further (the
    rows are then copied).
    """
    span = dilation * (len(kernel) - 1)
    matrix = np.zeros(((width - 1) * stride + span + 1, width), kernel.dtype)
    columns = np.arange(width)
    matrix[columns * stride + np.arange(len(kernel))[:, np.newaxis] * dilation,
           columns] = kernel[:, np.newaxis]
    period = width * stride
    first = second = None
    if len(matrix) <= 2 * period:
        first = np.zeros((period, width), kernel.dtype)
        first[:min(len(matrix), period)] = matrix[:period]
        second = matrix[period:]
        first.flags.writeable = second.flags.writeable = False
    matrix.flags.writeable = False
    return matrix, first, second


def _taps(cells, kernel, stride, dilation, count, out):
    """``out[i] = sum of kernel[a] * cells[i * s + a * d]``: each window times the kernel.

    For the few outputs the products leave (the ends, rows holding NaN or
    infinity): the windows as a strided view, one matrix-vector product
    over the taps only, so NaN and infinity reach exactly their windows.
    """
    span = dilation * (len(kernel) - 1)
    assert (count - 1) * stride + span < len(cells)
    cells = np.ascontiguousarray(cells)
    windows = np.ndarray((count, len(kernel)), cells.dtype, cells, 0,
                         (stride * cells.itemsize, dilation * cells.itemsize))
    np.matmul(windows, kernel, out=out)
    return out


class _Fold:
    """What every strip of one call shares: the kernel's matrices and the folded layout."""

    def __init__(self, kernel, stride, dilation, s):
        self.kernel, self.stride, self.dilation = kernel, stride, dilation
        self.width, self.step = _layout(dilation * (len(kernel) - 1), stride, s)
        self.toeplitz, self.first, self.second = _toeplitz(kernel, stride, dilation, self.width)
        self.period = self.width * stride
        self.reach = len(self.toeplitz)       # the cells one folded row of outputs reads
        self.copies = self.first is None

    def rows(self, length, count):
        """Folded rows of ``count`` outputs that fit whole in ``length`` cells."""
        if self.copies:
            fit = (length - self.reach) // self.period + 1
        else:
            fit = length // self.period - (1 if len(self.second) else 0)
        return max(0, min(count // self.width, fit))

    def cells(self, rows):
        """The cells ``rows`` folded rows read (from the first row's first cell)."""
        if self.copies:
            return (rows - 1) * self.period + self.reach
        return (rows + (1 if len(self.second) else 0)) * self.period

    def products(self, x, target, arena):
        """``target`` (rows, width) = the folded rows of ``x`` (1-D, contiguous) times ``T``.

        In chunks of ``step`` rows; a chunk whose outputs are not all finite
        has those rows done again window by window.
        """
        rows, width, period, step = len(target), self.width, self.period, self.step
        if self.copies:
            folded = np.lib.stride_tricks.as_strided(
                x, (rows, self.reach), (period * x.itemsize, x.itemsize), writeable=False)
            buffer = arena.take((min(step, rows), self.reach), target.dtype)
        else:
            folded = x[:self.cells(rows)].reshape(-1, period)
            lines = len(self.second)
            scratch = arena.take((min(step, rows), width), target.dtype)
        for top in range(0, rows, step):
            here = min(step, rows - top)
            chunk = target[top:top + here]
            if self.copies:
                buffer[:here] = folded[top:top + here]
                np.matmul(buffer[:here], self.toeplitz, out=chunk)
            else:
                np.matmul(folded[top:top + here], self.first, out=chunk)
                if lines:
                    np.matmul(folded[top + 1:top + 1 + here, :lines], self.second,
                              out=scratch[:here])
                    chunk += scratch[:here]
            # Column 0 multiplies every cell its row reads (by T's zeros beyond the
            # kernel), so a NaN or an infinity in them makes it NaN or infinite.
            if not np.isfinite(np.add.reduce(chunk[:, 0])):
                for row in np.flatnonzero(~np.isfinite(chunk).all(axis=1)):
                    begin = (top + row) * period
                    _taps(x[begin:begin + self.reach], self.kernel, self.stride,
                          self.dilation, width, chunk[row])

    def work(self, dtype, in_place, s):
        """The driver's `Work` of a strip of folded rows."""
        itemsize = dtype.itemsize
        macs = (self.reach if self.copies else self.period + len(self.second)) * self.width
        moved = self.reach if self.copies else self.width      # copied cells, or the sum
        row_ns = (products(macs, self.toeplitz.nbytes, dtype, s)
                  + cell_scale(dtype) * (moved * s.copy_ns + self.width * s.flat_ns / 8
                                         + (0 if in_place else self.period * s.fetch_ns)))
        # A strip's buffers: its chunk's scratch, whatever its rows (so strips are as long as
        # the threads allow), and a copy of its input cells where the signal is not in place.
        return driver.Work(
            row_bytes=max(1, 0 if in_place else self.period * itemsize),
            extra_rows=-(-self.reach // self.period), row_ns=row_ns, calls=3,
            row_calls=(2 if self.copies else 4) / self.step, fixed_ns=4 * s.call_ns)


def convolve(matrix, kernel, geometry, padding_mode, fill_value, dtype):
    """conv1d's filter: ``matrix`` (..., L) with ``kernel`` (k,) in ``dtype``, every border mode.

    Outputs whose windows lie inside the signal are folded on the signal as
    it is (each strip's part of it converted to ``dtype`` and made
    contiguous if it is not already), strip by strip on the driver's
    threads; the few at each end read padded cells, gathered through the
    border's source map into a small array and summed window by window.
    """
    s = _settings.current()
    dtype = np.dtype(dtype)
    length = matrix.shape[-1]
    signals = matrix.reshape(-1, length)
    (before, after), = geometry.padding
    (stride,), (dilation,), (count,) = geometry.stride, geometry.dilation, geometry.output_shape
    span = dilation * (len(kernel) - 1)
    out = np.empty((signals.shape[0], count), dtype)
    # Output i reads padded cells i*s .. i*s + span, input cells i*s - before ..: inside
    # the signal for first <= i < stop.
    first = min(-(-before // stride), count)
    stop = max(first, min(count, (length - 1 - span + before) // stride + 1))
    offset = first * stride - before        # the input cell the first folded row starts at
    fold = _Fold(kernel, stride, dilation, s)
    rows = fold.rows(length - offset, stop - first) if stop > first else 0
    in_place = signals.dtype == dtype and signals.strides[-1] == dtype.itemsize
    if rows:
        body = out[:, first:first + rows * fold.width].reshape(len(signals), rows, fold.width)
        plan = driver.plan(len(signals), rows, body.nbytes, fold.work(dtype, in_place, s), s)

        def strip(arena, batch, part):
            for n in range(*batch.indices(len(signals))):
                begin = offset + part.start * fold.period
                cells = signals[n, begin:begin + fold.cells(part.stop - part.start)]
                if not in_place:        # this strip's cells, converted
                    buffer = arena.take(cells.shape, dtype)
                    buffer[...] = cells
                    cells = buffer
                # On the thread that runs the strip (errstate is per thread): T's zeros
                # times an infinity.
                with np.errstate(invalid="ignore", over="ignore"):
                    fold.products(cells, body[n, part], arena)

        with driver.single_threaded_blas(s.limit_blas):
            driver.run(strip, plan)
    rest = first + rows * fold.width
    for n, signal in enumerate(signals):
        if rest < stop:         # the body's last outputs, too few for a folded row
            cells = np.asarray(signal[rest * stride - before:], dtype)
            _taps(cells, kernel, stride, dilation, stop - rest, out[n, rest:stop])
        for lo, hi in ((0, first), (stop, count)):
            if lo < hi:
                reads = source_cells(np.arange(lo * stride, (hi - 1) * stride + span + 1), length,
                                     before, after, padding_mode)
                cells = np.where(reads >= 0, signal[np.maximum(reads, 0)].astype(dtype),
                                 np.asarray(fill_value, dtype)) if (reads < 0).any() else (
                    signal[reads].astype(dtype))
                _taps(cells, kernel, stride, dilation, hi - lo, out[n, lo:hi])
    return out.reshape(matrix.shape[:-1] + (count,))
