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
from .phases import tap_phases

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


def tiles(output_shape, grouped, s):
    """Per axis: the FFT length, the output cells one tile computes, and the reach.

    A tile of T outputs reads T + reach cells of each phase (reach: the
    largest offset of a tap in its phase).
    """
    reaches = (max(a for found in grouped.values() for a, _, _ in found),
               max(b for found in grouped.values() for _, b, _ in found))
    plan_ = []
    for size, reach in zip(output_shape, reaches):
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
    grouped = tap_phases(kernel, geometry)
    (length_h, tile_h, _), (length_w, tile_w, _) = tiles(geometry.output_shape, grouped, s)
    height, width = geometry.output_shape
    if height <= tile_h and width <= tile_w:     # one tile an image: several images a task
        step = max(1, min(math.ceil(batch / driver.threads()),
                          s.strip_bytes // (length_h * length_w * 16 * (len(grouped) + 1))))
        tasks = [(slice(n, min(n + step, batch)), slice(0, height), slice(0, width))
                 for n in range(0, batch, step)]
    else:
        tasks = [(slice(n, n + 1), slice(i, min(i + tile_h, height)),
                  slice(j, min(j + tile_w, width)))
                 for n in range(batch) for i in range(0, height, tile_h)
                 for j in range(0, width, tile_w)]
    images = math.ceil(batch / len(tasks))     # a task's images
    return driver.plan_tasks(
        tasks, len(tasks) * images * cost((length_h, length_w), len(grouped), s),
        calls_per_task=len(grouped) * (FETCH_CALLS + 3) + 2,
        fixed_ns=transforms((length_h, length_w), len(grouped), s), s=s)


def run(source, kernel, geometry, out, plan):
    """Fill ``out`` (N, H_out, W_out) from ``source`` (a Padded), tile by tile."""
    if source.matrix.dtype.kind in "iub":
        raise ValueError(f"method='fft' does not take integer data (got {source.matrix.dtype}): "
                         f"its rounding error is relative to the largest value in each tile, "
                         f"not to each output's own terms; convert the data to float to use it")
    (sh, sw) = geometry.stride
    grouped = tap_phases(kernel, geometry)
    (length_h, tile_h, reach_h), (length_w, tile_w, reach_w) = tiles(
        geometry.output_shape, grouped, plan.settings)
    lengths = (length_h, length_w)
    is_complex = out.dtype.kind == "c" or kernel.dtype.kind == "c"
    # float32 is transformed in float64 too: its results then keep float32's
    # precision relative to each tile's largest terms.
    dtype = np.complex128 if is_complex else np.float64
    forward, inverse = (np.fft.fft2, np.fft.ifft2) if is_complex else (np.fft.rfft2, np.fft.irfft2)
    spectra = {}
    for phase, found in grouped.items():
        sub_kernel = np.zeros(lengths, dtype)
        for a, b, weight in found:
            sub_kernel[a, b] = weight
        # Correlation, not convolution: the conjugate spectrum (for complex
        # kernels, of the conjugate kernel, so that the kernel is not conjugated).
        spectra[phase] = np.conj(forward(np.conj(sub_kernel) if is_complex else sub_kernel))

    def tile(arena, batch, rows, cols):
        n_rows, n_cols = rows.stop - rows.start, cols.stop - cols.start
        total = None
        for (q, r), spectrum in spectra.items():
            first_row, first_col = rows.start * sh + q, cols.start * sw + r
            block = source.region(batch, range(first_row, first_row + sh * (n_rows + reach_h), sh),
                                  range(first_col, first_col + sw * (n_cols + reach_w), sw), dtype)
            product = forward(block, s=lengths)
            product *= spectrum
            if total is None:
                total = product
            else:
                total += product
        out[batch, rows, cols] = inverse(total, s=lengths)[:, :n_rows, :n_cols]

    driver.run(tile, plan)
