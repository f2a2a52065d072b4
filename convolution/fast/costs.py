"""The cost model's prices: what a pass over memory, a multiply-add and an FFT cost.

'auto' asks every path that can compute a call for its plan (``fast.plan``):
how it cuts the output into strips, how many threads share them, and what
that is estimated to take. Each path writes its own estimate beside its plan,
in its own file, from the prices here: cells copied or multiplied once per
pass over memory, multiply-adds inside a matrix product, FFTs, and NumPy calls
(``driver.strips.wall_ns``), each at a constant price in nanoseconds. They
only need to rank the paths, not to predict times.

The prices are fields of ``settings.Settings`` (``flat_ns``, ``fetch_ns``, ...),
measured with ``python benchmarks/run.py --calibrate`` (medians of several
runs, rounded) on a 2-core Intel Xeon (Sapphire Rapids, AVX-512) virtual
machine with NumPy 2.4 and OpenBLAS 0.3.31, on one thread, for float64; other
dtypes scale by `cell_scale` and `mac_scale`. On another machine they shift
together, which keeps the ranking; the thread counts then follow from the
calls' estimated length, which shrinks on a faster machine and gives fewer
threads, the safe direction.

``flat_ns``: one pass over one cell, a multiply-add over a flat contiguous run
(polyphase, separable); ``strided_ns``: the same over a strided slice
(direct); ``fetch_ns``: a copy of the padded input into a strip's buffers;
``copy_ns``: a copy of a strip into shifted rows, in cache; ``mac_ns``: one
multiply-add inside a matrix product (BLAS, one thread) while the rows it
multiplies stay in cache, which they leave past ``cache_bytes`` (measured: the
cost per multiply-add doubles by 1 MiB, and stops growing at four times, the
memory's bandwidth); ``fft_ns``: an FFT, per cell and per log2(cells), plus
``fft_call_ns`` per numpy.fft call.
"""
import math

import numpy as np

__all__ = ["FETCH_CALLS", "cell_scale", "mac_scale", "products", "transforms"]

#: NumPy calls one fetch of a region of the padded input makes (a few slice
#: copies for the borders, the zeroing of margins).
FETCH_CALLS = 4


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


def products(macs, operand_bytes, dtype, s):
    """ns of ``macs`` multiply-adds in products whose second operand has ``operand_bytes``."""
    return macs * mac_scale(dtype) * s.mac_ns * (1 + min(operand_bytes / s.cache_bytes, 3))


def transforms(lengths, count, s):
    """ns of ``count`` real FFTs (forward or inverse) of shape ``lengths``, in float64."""
    cells = math.prod(lengths)
    return count * (cells * math.log2(max(cells, 2)) * s.fft_ns / 2 + s.fft_call_ns)
