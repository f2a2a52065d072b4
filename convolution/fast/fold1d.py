"""A long 1-D signal folded into rows: its sums as Toeplitz matrix products (BLAS).

The idea
--------
A 1-D correlation ``out[i] = sum over a < k of kernel[a] * x[i * s + a * d]``
is, for a block of ``W`` consecutive outputs, one row vector times a matrix:
the ``reach = (W - 1) * s + span + 1`` cells the block reads (``span = d *
(k - 1)``) times the Toeplitz matrix ``T`` (reach x W) whose column ``j``
holds the kernel from row ``j * s`` on, ``d`` rows apart (``T[j * s + a * d,
j] = kernel[a]``). Many blocks at once are a matrix of windows times ``T``,
and BLAS takes the windows as they lie in the signal, overlapping, without a
copy: fold the outputs into rows of ``P`` (a multiple of ``W``, with ``P * s
>= reach``), and the windows of block ``b`` of every row are the rows of the
view

.. code-block:: text

    windows[b][r, :] = x[(r * P + b * W) * s : ... + reach]    # row stride P * s >= reach
    out.reshape(-1, P // W, W)[:, b, :] = windows[b] @ T          # for every b: one np.matmul

a matrix whose rows are ``P * s`` cells apart (BLAS's leading dimension:
the rows may not overlap in BLAS's sense, as they would with ``P = W``, but
they may start anywhere, and read into the next row's cells). The output
block is a strided view of the output too, so one ``np.matmul`` call
over the ``P / W`` blocks of ``Settings.fold_outputs`` outputs (a chunk that
stays in cache) writes them in place: no copy of the signal, no partial sums.
NumPy hands each block's product to BLAS, with the GIL released.

The folded rows are cut into strips (``driver.plan``), which the driver's
threads share where the work is worth it (long signals, long kernels, many
signals); BLAS runs on the calling thread of each strip.

Cost per output
---------------
``reach = (W - 1) * s + span + 1`` multiply-adds instead of ``k`` (the zeros
of ``T``), at BLAS speed, with ``W = 16`` outputs a block; and nothing else
but the NaN gate, a sum over one output in ``W``.
Measured on one core (``benchmarks/nd.py``, float64, 10**6 samples): 1.0
to 1.3 times np.correlate's time at k = 7 (the products, short ones, take
about its time), 0.3 of it at k = 31, 0.31 to 0.42 at k = 101.
Memory: the Toeplitz matrix (``reach * W`` cells) and nothing per output:
the signal is read in place and the output written in place (a strip
converts its own part of the signal, where it is not contiguous float).

Limits
------
Real float32 and float64 only (BLAS; integers go through the exact tap
loops). A product sums the zeros of ``T`` times every cell of the window
too, so a NaN or an infinity in a window would reach all of its block's
outputs. The first output of a block multiplies every cell its window
reads, so those outputs of a chunk tell whether any of its outputs met a
NaN or an infinity (a sum of one output in ``W``); where one did, the
folded rows whose outputs are not all finite are done again window by
window (each window's taps times the kernel, nothing else), so that NaN and
infinity reach exactly the outputs whose window holds them. The borders
(the outputs whose window reaches into the padding) are computed the same
way on the few padded cells they read, found through the border's source
map (``padding.source_cells``); the signal is never padded whole.
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
    """Outputs a block (the columns of a product), outputs a folded row, folded rows a product.

    Measured on one core against each other (float64, 10**6 samples): 16 outputs a block
    (k = 7: 1.15 times faster than 8, whose products are more, and shorter, calls; k = 101:
    1.15 times faster than 32); rows of 128 outputs, or of a block's window where that is
    longer (1.0 to 1.15 times faster than 64 to 272); a product of ``Settings.fold_outputs``
    outputs (see there).
    """
    width = 16
    reach = (width - 1) * stride + span + 1
    # A row as long as a block's window at least: the windows of a block are BLAS's rows.
    row = width * max(128 // width, -(-reach // (stride * width)))
    return width, row, max(1, s.fold_outputs // row)


@kernel_cache()
def _toeplitz(kernel, stride, dilation, width):
    """``T[j * stride + a * dilation, j] = kernel[a]``; ((width - 1) * stride + span + 1) rows."""
    span = dilation * (len(kernel) - 1)
    matrix = np.zeros(((width - 1) * stride + span + 1, width), kernel.dtype)
    columns = np.arange(width)
    matrix[columns * stride + np.arange(len(kernel))[:, np.newaxis] * dilation,
           columns] = kernel[:, np.newaxis]
    matrix.flags.writeable = False
    return matrix


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
    """What every strip of one call shares: the kernel's Toeplitz matrix and the folded layout."""

    def __init__(self, kernel, stride, dilation, s):
        self.kernel, self.stride, self.dilation = kernel, stride, dilation
        self.span = dilation * (len(kernel) - 1)
        self.width, self.row, self.step = _layout(self.span, stride, s)
        self.toeplitz = _toeplitz(kernel, stride, dilation, self.width)
        self.reach = len(self.toeplitz)       # the cells a block of outputs reads
        self.period = self.row * stride       # the cells from one folded row to the next

    def rows(self, length, count):
        """Folded rows of ``count`` outputs whose windows fit whole in ``length`` cells."""
        fit = (length - 1 - self.span) // self.stride + 1 if length > self.span else 0
        return min(count, fit) // self.row

    def cells(self, rows):
        """The cells ``rows`` folded rows read (from the first row's first cell)."""
        return (rows * self.row - 1) * self.stride + self.span + 1

    def products(self, x, target, arena):
        """``target`` (rows, P) = the folded rows of ``x`` (1-D, C-contiguous) times ``T``.

        In chunks of ``step`` rows, one ``np.matmul`` each; a chunk whose
        outputs are not all finite has those rows done again window by window.
        """
        rows, width, period, step = len(target), self.width, self.period, self.step
        blocks, item = self.row // width, x.itemsize
        for top in range(0, rows, step):
            here = min(step, rows - top)
            chunk = target[top:top + here]
            # (block b, row r): the window of the outputs r*P + b*W ..., in place
            windows = np.ndarray((blocks, here, self.reach), x.dtype, x, top * period * item,
                                 (width * self.stride * item, period * item, item))
            np.matmul(windows, self.toeplitz,
                      out=chunk.reshape(here, blocks, width).transpose(1, 0, 2))
            # A block's first output multiplies every cell its window reads (by T's zeros
            # beyond the kernel), so a NaN or an infinity in them makes it NaN or infinite.
            if not np.isfinite(np.add.reduce(chunk[:, ::width], axis=None)):
                for row in np.flatnonzero(~np.isfinite(chunk).all(axis=1)):
                    begin = (top + row) * period
                    _taps(x[begin:begin + self.cells(1)], self.kernel, self.stride,
                          self.dilation, self.row, chunk[row])

    def work(self, dtype, in_place, s):
        """The driver's `Work` of a strip of folded rows."""
        itemsize = dtype.itemsize
        row_ns = (products(self.row * self.reach, self.toeplitz.nbytes, dtype, s)
                  + cell_scale(dtype) * (self.row * s.flat_ns / self.width
                                         + (0 if in_place else self.period * s.fetch_ns)))
        # A strip's buffers: a copy of its input cells where the signal is not in place
        # (none otherwise: strips are then as long as the threads allow). Strips of whole
        # products: BLAS may round a product of fewer rows differently, so the products
        # (and the bits) are the same on any number of threads.
        return driver.Work(
            row_bytes=max(1, 0 if in_place else self.period * itemsize),
            extra_rows=-(-(self.cells(1) - self.period) // self.period), row_ns=row_ns,
            calls=3, row_calls=3 / self.step, fixed_ns=4 * s.call_ns,
            rows_multiple=self.step)


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
        body = out[:, first:first + rows * fold.row].reshape(len(signals), rows, fold.row)
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
    rest = first + rows * fold.row
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
