"""'polyphase': the tap loops on memory read contiguously, split by stride phase.

The idea
    Tap ``(a, b)`` reads padded row ``i*sh + a*dh``: always row phase
    ``q = a*dh % sh`` (rows ``q, q + sh, ...``), at row ``i + a*dh // sh`` of
    it, and likewise for columns (``geometry.stride_phase``). So a strip's input
    is fetched as its ``sh * sw`` phases, each laid out flat, ``row_width``
    cells a row, and every tap is one multiply-add over one contiguous 1-D run
    of its phase, at offset ``(a*dh // sh) * row_width + b*dw // sw``
    (``phases.multiply_add``). With stride > 1 no output that would be thrown
    away is computed. The runs also cover ``row_width - W_out`` cells at the
    end of each row that hold no output: computed and dropped.

Cost per output
    kh * kw flat multiply-adds (``flat_ns`` a cell, on ``row_width / W_out``
    times the cells), plus one fetch per phase. Two NumPy calls per tap and
    strip.

Limits
    As 'direct': every dtype, exact for integers, NaN and infinity kept to
    the windows that hold them; 'banded' and 'separable' fall back to it for
    strips whose input holds them. For large float kernels the matrix
    products ('banded') or the FFT are faster.
"""
from .. import driver
from .costs import FETCH_CALLS, cell_scale
from .phases import multiply_add, offsets, phase_blocks, tap_phases

__all__ = ["cost", "plan", "run", "strip_function", "fallback"]


def _layout(kernel, geometry):
    """The taps by phase, the rows a strip reads below its own, and the phase blocks' width."""
    grouped = tap_phases(kernel, geometry)
    extra_rows = max(a for found in grouped.values() for a, _, _ in found)
    # All phase blocks are `row_width` wide and as tall as the accumulator, so
    # offset a*row_width + b reads the same relative cell in every one of them.
    row_width = geometry.output_shape[1] + max(b for found in grouped.values()
                                               for _, b, _ in found)
    return grouped, extra_rows, row_width


def cost(row_width, taps, phases, dtype, s):
    """ns per output row: per tap a flat multiply-add, per phase a fetch."""
    return cell_scale(dtype) * row_width * (taps * s.flat_ns + phases * s.fetch_ns)


def plan(geometry, kernel, batch, dtype, s):
    """Strips of output rows, each fetched as the phases its taps read."""
    grouped, extra_rows, row_width = _layout(kernel, geometry)
    height, width = geometry.output_shape
    taps = sum(map(len, grouped.values()))
    work = driver.Work(row_bytes=row_width * (len(grouped) + 2) * dtype.itemsize,
                       extra_rows=extra_rows, calls=2 * taps + len(grouped) * FETCH_CALLS,
                       row_ns=cost(row_width, taps, len(grouped), dtype, s))
    return driver.plan(batch, height, batch * height * width * dtype.itemsize, work, s)


def strip_function(source, kernel, geometry, out):
    """What 'polyphase' does for one strip, as a function of (arena, batch, rows).

    Also the fallback of the paths of matrix products for strips whose input
    holds NaN or infinity.
    """
    grouped, extra_rows, row_width = _layout(kernel, geometry)

    def strip(arena, batch, rows):
        n_rows = rows.stop - rows.start + extra_rows
        blocks = phase_blocks(arena, source, batch, rows.start * geometry.stride[0], n_rows,
                              row_width, grouped, geometry.stride, out.dtype)
        shape = next(iter(blocks.values())).shape
        multiply_add(arena.take(shape, out.dtype), offsets(grouped, row_width, blocks),
                     arena.take(shape, out.dtype), out=out[batch, rows])

    return strip


def fallback(source, kernel, geometry, out):
    """`strip_function`, made at its first call, for the paths of matrix products.

    Their strips whose data hold NaN or infinity are done by these tap loops
    instead; most calls have none, and never pay for the layout.
    """
    made = []

    def strip(arena, batch, rows):
        if not made:
            made.append(strip_function(source, kernel, geometry, out))
        return made[0](arena, batch, rows)

    return strip


def run(source, kernel, geometry, out, plan):
    """Fill ``out`` (N, H_out, W_out) from ``source`` (a Padded) as planned."""
    driver.run(strip_function(source, kernel, geometry, out), plan)
