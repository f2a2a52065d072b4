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
rows that stay in cache), when the kernel spans at most one row. NumPy
hands each to BLAS, which does the multiply-adds of many rows in one call,
with the GIL released. ``X[1:, :w_1]`` is a view with the row stride ``P``,
which BLAS takes as it is: nothing is copied. A longer kernel would take
one term per row it spans; instead, a chunk of overlapping rows, each the
cells its block reads, is copied (in cache) and multiplied by the whole of
``T`` at once.

Cost per output
---------------
``W + span / s`` multiply-adds instead of ``k`` (the zeros of ``T``), at
BLAS speed, with ``W = 8`` for a short kernel, 32 for a middling one and 16
for a long one; plus one addition for the second product, or
``(W + span) / W`` copied cells.
Measured on one core: about np.correlate's time at k = 7 (its loop is
hard to beat there), a quarter of it at k = 31, a third at k = 101.
Memory: the Toeplitz matrix (``(W * s + span) * W`` cells) and one chunk of
output rows; the signal is read in place.

Limits
------
Real float32 and float64 only (BLAS; integers go through the exact tap
loops). A product sums the zeros of ``T`` times every cell of the row too,
so a NaN or an infinity in a row's input would reach all of its outputs:
rows whose outputs are not all finite are done again window by window (each
window's taps times the kernel, nothing else), so that NaN and infinity
reach exactly the outputs whose window holds them. The borders (the outputs
whose window reaches into the padding) are computed the same way on the few
padded cells they read, found through the border's source map; the signal
is never padded whole.
"""
import numpy as np

from ..padding import _source_map

__all__ = ["DTYPES", "pays", "correlate", "sources", "convolve"]

#: The dtypes BLAS multiplies.
DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
#: Folded rows per product: a chunk of output that stays in cache (measured on
#: one core: 8192 rows of 8, 512 KiB of float64, beat 2048 by 1.2 times).
CHUNK_ROWS = 8192
#: Folded rows per product when the rows are copied (each as wide as its reach).
COPY_ROWS = 512
#: Signals shorter than this go through conv2d's paths (as one row), whose
#: batches of short signals cost fewer calls.
MIN_LENGTH = 4096


def pays(length, kernel_size, stride):
    """Whether 'auto' folds: long signals at stride 1 (a stride multiplies the zeros of ``T``)."""
    return stride == 1 and kernel_size > 1 and length >= MIN_LENGTH


def _toeplitz(kernel, stride, dilation, width):
    """``T[j * stride + a * dilation, j] = kernel[a]``: ((width - 1) * s + span + 1) x width."""
    span = dilation * (len(kernel) - 1)
    matrix = np.zeros(((width - 1) * stride + span + 1, width), kernel.dtype)
    columns = np.arange(width)
    matrix[columns * stride + np.arange(len(kernel))[:, np.newaxis] * dilation,
           columns] = kernel[:, np.newaxis]
    return matrix


def _taps(cells, kernel, stride, dilation, count, out):
    """``out[i] = sum of kernel[a] * cells[i * s + a * d]``: each window times the kernel.

    For the few outputs the products leave (the ends, rows holding NaN or
    infinity): the windows as a strided view, one matrix-vector product
    over the taps only, so NaN and infinity reach exactly their windows.
    """
    span = dilation * (len(kernel) - 1)
    windows = np.lib.stride_tricks.as_strided(
        cells, (count, len(kernel)), (stride * cells.strides[0], dilation * cells.strides[0]),
        writeable=False)
    assert (count - 1) * stride + span < len(cells)
    np.matmul(windows, kernel, out=out)
    return out


def _layout(span, stride):
    """Outputs per folded row, and folded rows per product, for a kernel spanning ``span`` cells.

    Measured on one core against each other (float64, 10**6 samples): 8 outputs a row and
    8192 rows a product for a span up to 8 strides (k = 7); 32 and 512 up to 32 strides
    (k = 31: 1.2 times faster than 16 outputs on copied rows); beyond, 16 outputs a row on
    copied rows (`COPY_ROWS` a product).
    """
    if span <= 8 * stride:
        return 8, CHUNK_ROWS
    if span <= 32 * stride:
        return 32, CHUNK_ROWS // 16
    return 16, COPY_ROWS


def correlate(x, kernel, stride, dilation, out, width=None, rows_per_product=None):
    """``out[i] = sum over a of kernel[a] * x[i * stride + a * dilation]``, ``x`` contiguous 1-D.

    Every window lies inside ``x`` (a 'valid' correlation); ``out`` (1-D,
    of the kernel's dtype) says how many outputs. The body is folded into
    rows of ``width`` outputs (see the module's docstring); what is left at
    the end, window by window (`_taps`).

    A kernel that spans at most one more row (``reach <= 2 * width * s``)
    is two products on views of the signal, nothing copied. A longer one
    would take one product per row of ``T`` it spans, each adding its
    result to the output; a chunk of overlapping rows (each the ``reach``
    cells its outputs read) is copied instead, in cache, and multiplied by
    the whole of ``T`` in one product (measured: 1.3 times faster at
    k = 101 than the sum of eight products).
    """
    count, span = len(out), dilation * (len(kernel) - 1)
    layout = _layout(span, stride)
    width = width or layout[0]
    step = rows_per_product or (layout[1] if width == layout[0] else CHUNK_ROWS)
    period = width * stride
    toeplitz = _toeplitz(kernel, stride, dilation, width)
    reach = len(toeplitz)               # the cells one folded row of outputs reads
    if reach > 2 * period:
        rows = max(0, min(count // width, (len(x) - reach) // period + 1))
        folded = np.lib.stride_tricks.as_strided(x, (rows, reach), (period * x.itemsize,
                                                                    x.itemsize), writeable=False)
        buffer = np.empty((min(step, rows), reach), out.dtype)

        def product(top, here, chunk):
            buffer[:here] = folded[top:top + here]
            np.matmul(buffer[:here], toeplitz, out=chunk)
    else:
        # T's rows in two blocks of a folded row: the first one whole (zeros below).
        first = np.zeros((period, width), toeplitz.dtype)
        first[:min(reach, period)] = toeplitz[:period]
        second = toeplitz[period:]
        whole = len(x) // period
        rows = max(0, min(count // width, whole - (2 if len(second) else 1) + 1))
        folded = x[:whole * period].reshape(whole, period)
        scratch = np.empty((min(step, rows), width), out.dtype)

        def product(top, here, chunk):
            np.matmul(folded[top:top + here], first, out=chunk)
            if len(second):
                np.matmul(folded[top + 1:top + 1 + here, :len(second)], second,
                          out=scratch[:here])
                chunk += scratch[:here]
    target = out[:rows * width].reshape(rows, width)
    with np.errstate(invalid="ignore", over="ignore"):   # T's zeros times an infinity
        for top in range(0, rows, step):
            here = min(step, rows - top)
            chunk = target[top:top + here]
            product(top, here, chunk)
            if not np.isfinite(np.add.reduce(chunk, axis=None)):
                # NaN or infinity: those rows again, window by window, exactly
                for row in np.flatnonzero(~np.isfinite(chunk).all(axis=1)):
                    begin = (top + row) * period
                    _taps(x[begin:begin + reach], kernel, stride, dilation, width, chunk[row])
    rest = rows * width
    if rest < count:
        _taps(x[rest * stride:], kernel, stride, dilation, count - rest, out[rest:])
    return out


def sources(cells, length, before, after, padding_mode):
    """The input cell each of the padded ``cells`` copies (-1: the fill), without the whole map.

    ``padding._source_map`` pads ``arange(length)`` with ``np.pad``: for a
    signal of millions of samples, a map as large as the signal (and kept
    in its cache) for the few cells at its ends. When the padding is
    narrower than the signal, these are the same indices in closed form (a
    reflection mirrors about the end cell, a symmetric border about the
    end's edge, a circular one takes the other end). Wider padding repeats
    the pattern, which NumPy's versions do differently (2.0 made 'wrap'
    strictly periodic): the map of ``np.pad`` itself then, no larger than
    the padding. The tests check both against ``_source_map``.
    """
    if max(before, after) >= length:
        return _source_map(length, before, after, padding_mode)[cells]
    q = np.asarray(cells) - before
    if padding_mode in ("zeros", "constant"):
        return np.where((q >= 0) & (q < length), q, -1)
    if padding_mode == "replicate":
        return np.clip(q, 0, length - 1)
    if padding_mode == "circular":
        return q % length
    if padding_mode == "reflect":
        if length == 1:
            return np.zeros_like(q)
        m = q % (2 * length - 2)
        return np.where(m < length, m, 2 * length - 2 - m)
    m = q % (2 * length)                    # symmetric
    return np.where(m < length, m, 2 * length - 1 - m)


def convolve(matrix, kernel, geometry, padding_mode, fill_value, dtype):
    """conv1d's filter: ``matrix`` (..., L) with ``kernel`` (k,) in ``dtype``, every border mode.

    Outputs whose windows lie inside the signal are folded (`correlate`) on
    the signal as it is (converted to ``dtype`` and made contiguous if it is
    not already); the few at each end read padded cells, gathered through
    the border's source map into a small array and summed window by window.
    """
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
    for n, signal in enumerate(signals):
        if stop > first:
            cells = np.ascontiguousarray(signal[first * stride - before:], dtype)
            correlate(cells, kernel, stride, dilation, out[n, first:stop])
        for lo, hi in ((0, first), (stop, count)):
            if lo < hi:
                reads = sources(np.arange(lo * stride, (hi - 1) * stride + span + 1), length,
                                before, after, padding_mode)
                cells = np.where(reads >= 0, signal[np.maximum(reads, 0)].astype(dtype),
                                 np.asarray(fill_value, dtype)) if (reads < 0).any() else (
                    signal[reads].astype(dtype))
                _taps(cells, kernel, stride, dilation, hi - lo, out[n, lo:hi])
    return out.reshape(matrix.shape[:-1] + (count,))
