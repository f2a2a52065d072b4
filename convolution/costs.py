"""The cost model: what a fast path's work is estimated to take, and how many threads pay.

'auto' asks every path that applies for its plan (``engine.plan``): how it
cuts the output into strips, how many threads share them, and what that is
estimated to take. The estimates come from here. They count what a path
does: cells copied or multiplied once per pass over memory, multiply-adds
inside a matrix product, FFTs, and NumPy calls, each at a constant price in
nanoseconds. They only need to rank the paths, not to predict times.

Threads follow from the length of the calls, not from a per-path constant.
A NumPy call holds the GIL while Python sets it up (`CALL_NS`), then
releases it for its loop. With several threads, every call must also win
the GIL back from the others: when they contend for it, one thread has to
wake another (`HANDOFF_NS`). So ``n`` threads that make ``calls`` calls
between them take at least ``calls * (CALL_NS + HANDOFF_NS)``, whatever
``n`` is: threads pay only when each call's loop is long against that
(`wall_ns`). A path made of hundreds of short calls (the tap loops, on small
strips) stays on one thread; one made of few long calls that release the
GIL (a matrix product, a large FFT) shares the cores.

The constants were measured with ``python benchmarks/run.py --calibrate``
(medians of several runs, rounded) on a 2-core Intel Xeon (Sapphire Rapids,
AVX-512) virtual machine with NumPy 2.4 and OpenBLAS 0.3.31, on one thread,
for float64; other dtypes scale by `cell_scale` and `mac_scale`. On another
machine they shift together, which keeps the ranking; the thread counts
then follow from the calls' estimated length, which shrinks on a faster
machine and gives fewer threads, the safe direction.
"""
import math

import numpy as np

__all__ = ["CALL_NS", "HANDOFF_NS", "THREAD_NS", "constants", "cell_scale", "mac_scale",
           "wall_ns", "direct", "polyphase", "separable", "products", "separable_products",
           "banded", "fft", "fft_tile"]

#: Python's cost of one NumPy call inside a path, holding the GIL (dispatch,
#: views, bookkeeping).
CALL_NS = 1500.0
#: What a call costs on top when threads contend for the GIL: the wake-up of
#: the thread that gets it next. Measured as the time two threads lose per
#: call against one thread making the same calls.
HANDOFF_NS = 8000.0
#: The least work worth a thread of its own: a thread that starts on a
#: strip finds its caches cold, and the memory a path streams is shared by
#: all cores. Measured here: jobs of 1 to 3 ms ran 20 to 35% slower on two
#: threads than on one, jobs of 4 ms and more 20 to 40% faster.
THREAD_NS = 2e6
#: One pass over one cell: a multiply-add over a flat contiguous run
#: (polyphase, separable) ...
FLAT_NS = 0.5
#: ... over a strided slice (direct) ...
STRIDED_NS = 0.85
#: ... a copy of the padded input into a strip's buffers ...
FETCH_NS = 1.15
#: ... and a copy of a strip into the band's shifted rows (in cache).
COPY_NS = 0.7
#: One multiply-add inside a matrix product (BLAS, one thread), while the
#: rows a product multiplies stay in cache ...
MAC_NS = 0.045
#: ... which they leave as they grow past this many bytes: the products of
#: neighbouring row groups share most of their rows, and find them in cache
#: only while those fit. Measured: the cost per multiply-add doubles by 1 MiB,
#: and stops growing at four times (memory's bandwidth).
CACHE_BYTES = 2 ** 20
#: An FFT, per cell and per log2(cells) ...
FFT_NS = 0.75
#: ... and the fixed cost of one numpy.fft call, whatever its size.
FFT_CALL_NS = 55000.0


def constants():
    """The constants above, as they are now (plans are cached on them)."""
    return (CALL_NS, HANDOFF_NS, THREAD_NS, FLAT_NS, STRIDED_NS, FETCH_NS, COPY_NS, MAC_NS,
            CACHE_BYTES, FFT_NS, FFT_CALL_NS)


def cell_scale(dtype):
    """The cost of a pass over a cell of ``dtype``, against float64's: by size, integers dearer."""
    dtype = np.dtype(dtype)
    return dtype.itemsize / 8 + (0.5 if dtype.kind in "iub" else 0.0)


def mac_scale(dtype):
    """The cost of one multiply-add of ``dtype`` in BLAS, relative to float64.

    Single precision runs twice as many lanes; a complex product is four real ones.
    """
    dtype = np.dtype(dtype)
    return dtype.itemsize / 8 * (2.0 if dtype.kind == "c" else 1.0)


def wall_ns(work_ns, calls, threads):
    """Estimated time of ``work_ns`` of loops made by ``calls`` NumPy calls on ``threads`` threads.

    One thread: the loops plus Python's share of each call. Several: each
    call also waits for the GIL (`HANDOFF_NS`), and the GIL serves one call
    at a time, so the time is at least the calls' serial part however many
    threads share them.
    """
    if threads <= 1:
        return work_ns + calls * CALL_NS
    serial = calls * (CALL_NS + HANDOFF_NS)
    return max((work_ns + serial) / threads, serial)


def direct(width, padded_width, taps, stride, dtype):
    """ns per output row of the 'direct' path: per tap a strided multiply and an add."""
    return cell_scale(dtype) * (width * taps * STRIDED_NS + stride * padded_width * FETCH_NS)


def polyphase(row_width, taps, phases, dtype):
    """ns per output row of 'polyphase': per tap a flat multiply-add, per phase a fetch."""
    return cell_scale(dtype) * row_width * (taps * FLAT_NS + phases * FETCH_NS)


def separable(padded_width, row_width, kernel_shape, terms, stride, dtype):
    """ns per output row of 'separable': per term a column pass and a row pass."""
    (kh, kw), (sh, sw) = kernel_shape, stride
    per_term = padded_width * kh * sh + row_width * kw + (row_width * sw if sw > 1 else 0)
    return cell_scale(dtype) * (terms * per_term * FLAT_NS + sh * padded_width * FETCH_NS)


def products(macs, operand_bytes, dtype):
    """ns of ``macs`` multiply-adds in products whose second operand has ``operand_bytes``."""
    return macs * mac_scale(dtype) * MAC_NS * (1 + min(operand_bytes / CACHE_BYTES, 3))


def separable_products(columns, width, phases, band_width, band_rows, depth, terms, dtype):
    """ns per output row of 'separable' on floats: two matrix products per term.

    Per output row: a row of each of ``phases`` row phases fetched
    (``columns`` cells), per term a column pass (a band of ``band_width``
    columns, one product per ``band_rows`` rows) and a row pass (``depth``
    multiply-adds per output cell).
    """
    itemsize = np.dtype(dtype).itemsize
    return (cell_scale(dtype) * phases * columns * FETCH_NS
            + terms * (products(columns * band_width, band_width * columns * itemsize, dtype)
                       + products(width * depth, depth * band_rows * itemsize, dtype)))


def banded(width, fetched, shifted, band_width, dtype):
    """ns per output row of 'banded'.

    Per output row: ``fetched`` cells of the padded input fetched,
    ``shifted`` cells laid out shifted, and a band of ``band_width`` columns
    times as many shifted rows: that many multiply-adds per output cell.
    """
    itemsize = np.dtype(dtype).itemsize
    return (cell_scale(dtype) * (fetched * FETCH_NS + shifted * COPY_NS)
            + products(width * band_width, band_width * width * itemsize, dtype))


def fft(lengths, transforms):
    """ns of ``transforms`` real FFTs (forward or inverse) of shape ``lengths``, in float64."""
    cells = math.prod(lengths)
    return transforms * (cells * math.log2(max(cells, 2)) * FFT_NS / 2 + FFT_CALL_NS)


def fft_tile(lengths, phases):
    """ns of one overlap-save tile: per phase a fetch, an FFT, a product; one FFT back."""
    cells = math.prod(lengths)
    return (fft(lengths, phases + 1)
            + cell_scale(np.float64) * cells * (phases * (FETCH_NS + FLAT_NS) + FETCH_NS))
