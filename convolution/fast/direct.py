"""'direct': tap by tap, the weight times a strided slice of the input, added to the output.

The idea
    ``out[i, j] = sum over taps (a, b) of k[a, b] * padded[i*sh + a*dh, j*sw + b*dw]``.
    Fix the tap, and its term for every output cell of a strip at once is one
    strided slice of the strip's padded input (``geometry.tap``) times one
    number: kh * kw NumPy multiplies and adds per strip, none per cell.

Cost per output
    kh * kw multiply-adds, each over strided memory (``strided_ns`` a cell),
    plus the strip's fetch of ``sh`` padded rows per output row.
    Two NumPy calls per tap and strip.

Limits
    The slowest path for large kernels, and its strided reads waste cache
    lines at stride > 1 ('polyphase' reads the same sums contiguously). It
    takes every dtype and every value: exact for integers (int64), and NaN or
    infinity reach exactly the outputs whose window holds them.
"""
import numpy as np

from .. import driver
from ..geometry import tap
from .costs import FETCH_CALLS, cell_scale
from .phases import padded_width, tap_phases, taps

__all__ = ["cost", "plan", "run"]


def cost(width, padded, taps_, stride, dtype, s):
    """ns per output row: per tap a strided multiply and an add, and the fetch."""
    return cell_scale(dtype) * (width * taps_ * s.strided_ns + stride * padded * s.fetch_ns)


def plan(geometry, kernel, batch, dtype, s):
    """Strips of output rows, each with the padded rows its windows read."""
    (sh, _), (span_h, _) = geometry.stride, geometry.span
    height, width = geometry.output_shape
    padded = padded_width(geometry)
    count = sum(map(len, tap_phases(kernel, geometry).values()))
    work = driver.Work(row_bytes=(padded * sh + 2 * width) * dtype.itemsize,
                       extra_rows=span_h // sh, calls=2 * count + FETCH_CALLS,
                       row_ns=cost(width, padded, count, sh, dtype, s))
    return driver.plan(batch, height, batch * height * width * dtype.itemsize, work, s)


def run(source, kernel, geometry, out, plan):
    """Fill ``out`` (N, H_out, W_out) from ``source`` (a Padded) as planned."""
    (sh, _), (span_h, _) = geometry.stride, geometry.span
    weighted = taps(kernel)

    def strip(arena, batch, rows):
        acc = out[batch, rows]     # accumulate straight into the output
        block_rows = range(rows.start * sh, (rows.stop - 1) * sh + span_h + 1)
        block = source.region(batch, block_rows, range(source.shape[1]), out.dtype,
                              out=arena.take((acc.shape[0], len(block_rows), source.shape[1]),
                                             out.dtype))
        scratch = arena.take(acc.shape, out.dtype)
        for k, ((a, b), weight) in enumerate(weighted):
            r, c = tap(a, b, acc.shape[-2:], geometry.stride, geometry.dilation)
            np.multiply(block[:, r, c], weight, out=acc if k == 0 else scratch)
            if k:
                acc += scratch

    driver.run(strip, plan)
