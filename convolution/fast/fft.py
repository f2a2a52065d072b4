"""'fft': overlap-save, the sums of each tile as a product of spectra.

The idea
    Correlation is multiplication of spectra: the correlation of a tile of
    the padded input with the kernel is ``ifft(fft(tile) * conj(fft(kernel)))``.
    Overlap-save cuts the output into tiles of ``T`` cells a side, each
    reading ``T + reach`` cells of the input (``reach``: the kernel's span in
    its phase); a circular correlation of length ``L >= T + reach`` then has
    no wrap-around in the ``T`` outputs kept (`tiles`). Lengths are 5-smooth,
    numpy.fft's fast sizes; tiles are ``Settings.fft_tile`` a side unless the
    kernel is wider. With stride s, each stride phase of the input is
    correlated with the taps that read it (a kernel s times smaller), the
    products summed, and one inverse transform gives only the outputs kept.

Cost per output
    ``O(log L)``, whatever the kernel's size: per tile and phase one forward
    transform and one product, one inverse transform per tile; ``fft_ns``
    per cell and log2(cells), ``fft_call_ns`` per transform.

Limits
    It computes in float64 (complex128): exact enough for float32, float64
    and their complex kinds, refused for longer floats. Its rounding error
    is relative to the largest terms of the whole tile, not to each output's
    own window: integer data never come here (a value near 2**63 would swamp
    every small one in its tile), and 'auto' takes it only for finite data
    whose tiles hold no values far larger than some window in them sees
    (``fast.choose``). A NaN or an infinity would spread over its whole tile.
    Memory: a few tiles' transforms per thread.
"""
import functools
import math

import numpy as np

from .. import driver
from .costs import FETCH_CALLS, cell_scale, transforms
from ..geometry import stride_phase

__all__ = ["exact_enough", "tiles", "cost", "plan", "run"]


@functools.lru_cache(maxsize=1024)
def _length(n):
    """The smallest 5-smooth length >= n (2**a 3**b 5**c): numpy.fft's fast sizes."""
    best = 2 ** math.ceil(math.log2(n))
    for threes in (1, 3, 9, 27, 81):
        for fives in (1, 5, 25, 125):
            m = threes * fives
            if m < n:
                m *= 2 ** math.ceil(math.log2(n / m))
            best = min(best, m) if m >= n else best
    return best


def exact_enough(dtype):
    """Whether float64/complex128 transforms are as precise as ``dtype`` itself."""
    return dtype.kind in "fc" and np.finfo(dtype).eps >= np.finfo(np.float64).eps


def axis_phases(size, stride, dilation):
    """Per stride phase of one axis, the taps that read it and their offsets in it.

    ``{q: (taps, offsets)}``: tap ``a`` reads phase ``a*dilation % stride`` at
    offset ``a*dilation // stride`` (``geometry.stride_phase``). The phases of
    the kernel are the pairs of a row phase and a column phase: a loop over
    the kernel's rows and columns, never over its taps, so that a kernel as
    large as an image (the kernel's gradient takes the output's gradient as
    its kernel) is laid out in a few array operations.
    """
    taps = np.arange(size)
    phase, offset = stride_phase(taps * dilation, stride)
    return {int(q): (taps[phase == q], offset[phase == q]) for q in np.unique(phase)}


def _phases(kernel_shape, geometry):
    """``(rows, cols)``: `axis_phases` of the kernel's rows and of its columns."""
    return tuple(axis_phases(k, s, d) for k, s, d in
                 zip(kernel_shape, geometry.stride, geometry.dilation))


def tiles(output_shape, phases, s):
    """Per axis: the FFT length, the output cells one tile computes, and the reach.

    A tile of T outputs reads T + reach cells of each phase (reach: the
    largest offset of a tap in its phase); ``phases``: `_phases`.
    """
    plan_ = []
    for size, axis in zip(output_shape, phases):
        reach = max(int(offsets.max()) for _, offsets in axis.values())
        tile = max(s.fft_tile, 2 * (reach + 1))
        length = _length(size + reach if size + reach <= tile else tile)
        plan_.append((length, length - reach, reach))
    return plan_


def cost(lengths, phases, s):
    """ns of one overlap-save tile: per phase a fetch, an FFT, a product; one FFT back."""
    cells = math.prod(lengths)
    return (transforms(lengths, phases + 1, s)
            + cell_scale(np.float64) * cells * (phases * (s.fetch_ns + s.flat_ns) + s.fetch_ns))


def plan(geometry, kernel, batch, dtype, s):
    """Tiles of the output; several whole images a task where one tile holds an image."""
    if not exact_enough(dtype):
        raise ValueError(f"method='fft' computes in float64 or complex128, which would not "
                         f"be exact for {dtype} results; use method='auto'")
    rows, cols = _phases(kernel.shape, geometry)
    count = len(rows) * len(cols)
    (length_h, tile_h, _), (length_w, tile_w, _) = tiles(geometry.output_shape, (rows, cols), s)
    height, width = geometry.output_shape
    if height <= tile_h and width <= tile_w:     # one tile an image: several images a task
        step = max(1, min(math.ceil(batch / driver.threads()),
                          s.strip_bytes // (length_h * length_w * 16 * (count + 1))))
        tasks = [(slice(n, min(n + step, batch)), slice(0, height), slice(0, width))
                 for n in range(0, batch, step)]
    else:
        tasks = [(slice(n, n + 1), slice(i, min(i + tile_h, height)),
                  slice(j, min(j + tile_w, width)))
                 for n in range(batch) for i in range(0, height, tile_h)
                 for j in range(0, width, tile_w)]
    images = math.ceil(batch / len(tasks))     # a task's images
    return driver.plan_tasks(
        tasks, len(tasks) * images * cost((length_h, length_w), count, s),
        calls_per_task=count * (FETCH_CALLS + 3) + 2,
        fixed_ns=transforms((length_h, length_w), count, s) + 3 * kernel.size * s.flat_ns, s=s)


def run(source, kernel, geometry, out, plan):
    """Fill ``out`` (N, H_out, W_out) from ``source`` (a Padded), tile by tile."""
    if source.matrix.dtype.kind in "iub":
        raise ValueError(f"method='fft' does not take integer data (got {source.matrix.dtype}): "
                         f"its rounding error is relative to the largest value in each tile, "
                         f"not to each output's own terms; convert the data to float to use it")
    (sh, sw) = geometry.stride
    row_phases, col_phases = _phases(kernel.shape, geometry)
    (length_h, tile_h, reach_h), (length_w, tile_w, reach_w) = tiles(
        geometry.output_shape, (row_phases, col_phases), plan.settings)
    lengths = (length_h, length_w)
    is_complex = out.dtype.kind == "c" or kernel.dtype.kind == "c"
    # float32 is transformed in float64 too: its results then keep float32's
    # precision relative to each tile's largest terms.
    dtype = np.complex128 if is_complex else np.float64
    forward, inverse = (np.fft.fft2, np.fft.ifft2) if is_complex else (np.fft.rfft2, np.fft.irfft2)
    # Scaled by powers of two (exact) so that no tile's sums can overflow:
    # the data to at most 1, the kernel to at most 1. The result is scaled back.
    (data_scale, data_back), (kernel_scale, kernel_back) = (
        _scale(_largest(source)), _scale(float(np.max(np.abs(kernel)))))
    spectra = {(q, r): _spectrum(kernel[np.ix_(taps_h, taps_w)], offsets_h, offsets_w, lengths,
                                 kernel_scale, is_complex)
               for q, (taps_h, offsets_h) in row_phases.items()
               for r, (taps_w, offsets_w) in col_phases.items()}

    def tile(arena, batch, rows, cols):
        n_rows, n_cols = rows.stop - rows.start, cols.stop - cols.start
        total = None
        for (q, r), spectrum in spectra.items():
            first_row, first_col = rows.start * sh + q, cols.start * sw + r
            block = source.region(batch, range(first_row, first_row + sh * (n_rows + reach_h), sh),
                                  range(first_col, first_col + sw * (n_cols + reach_w), sw), dtype)
            if data_scale != 1:
                block *= data_scale
            product = forward(block, s=lengths)
            product *= spectrum
            if total is None:
                total = product
            else:
                total += product
        result = inverse(total, s=lengths)[:, :n_rows, :n_cols]
        for back in (data_back, kernel_back):
            if back != 1:
                with np.errstate(over="ignore"):     # a result beyond the dtype's range is inf
                    result *= back
        out[batch, rows, cols] = result

    driver.run(tile, plan)


def _spectrum(taps, offsets_h, offsets_w, lengths, scale, is_complex):
    """The conjugate spectrum of one phase's taps, placed at their offsets in a tile of ``lengths``.

    Correlation, not convolution: the conjugate spectrum (for complex
    kernels, of the conjugate kernel, so that the kernel is not conjugated).
    ``rfft2`` of the whole zero-padded tile transforms each row, then each
    column; only the rows up to the last tap's hold anything, so those rows
    alone are transformed, and the transforms along the columns pad them with
    the zero rows: the same numbers, bit for bit, at half the cost (31 x 31
    in 320 x 320: 0.26 ms against 0.51).
    """
    small = np.zeros((offsets_h[-1] + 1, offsets_w[-1] + 1),
                     np.complex128 if is_complex else np.float64)
    small[np.ix_(offsets_h, offsets_w)] = taps
    small *= scale
    along_rows = (np.fft.fft(np.conj(small), n=lengths[1], axis=1) if is_complex
                  else np.fft.rfft(small, n=lengths[1], axis=1))
    return np.conj(np.fft.fft(along_rows, n=lengths[0], axis=0))


def _largest(source):
    """The largest magnitude in the padded input (its data and its fill value), or a bound.

    Only whether it reaches 2**500 matters (`_scale`). Real data narrower
    than float64 never do; for float64, the square root of the sum of
    squares bounds the largest value from above: one pass (``einsum``'s own
    loop, not BLAS, whose threads would wake for it) where a maximum and a
    minimum are two (1024 x 1024: 0.29 ms against 0.59); only a bound of
    2**500 or more (or a NaN) needs the exact passes.
    """
    matrix = source.matrix
    largest = abs(source.fill_value)
    if matrix.dtype.kind == "f" and matrix.itemsize < 8:
        return largest
    if matrix.size and matrix.dtype == np.float64 and matrix.flags.c_contiguous:
        flat = matrix.reshape(-1)
        with np.errstate(over="ignore", invalid="ignore"):
            squares = float(np.einsum("i,i->", flat, flat))
        if squares < 2.0 ** 1000:        # False for NaN and infinity
            return max(largest, math.sqrt(squares))
    if matrix.size:
        largest = max(largest, abs(float(np.max(matrix.real))), abs(float(np.min(matrix.real))))
        if matrix.dtype.kind == "c":
            largest = max(largest, abs(float(np.max(matrix.imag))),
                          abs(float(np.min(matrix.imag))))
    return largest


def _scale(largest):
    """``(scale, back)``: powers of two that bring ``largest`` to at most 2, and back.

    (1, 1) where it is below 2**500: the sums of a tile then stay far from
    float64's largest value (about 2**1024), however many cells they add.
    """
    if not np.isfinite(largest) or largest < 2.0 ** 500:
        return 1.0, 1.0
    exponent = math.frexp(largest)[1] - 1
    return math.ldexp(1.0, -exponent), math.ldexp(1.0, exponent)
