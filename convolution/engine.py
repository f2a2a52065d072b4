"""The fast paths, and the choice 'auto' makes between them.

Every path computes what ``reference.conv2d_loops`` computes and is tested
against it. None loops over output cells in Python. They share one driver:
the output is cut into strips of rows (tiles, for the FFT) of a few MiB,
each strip fetches only the part of the padded input it reads
(``padding.Padded``), and on large images the strips are spread over the
cores with threads (NumPy releases the GIL inside its loops). So memory
beyond input and output stays a strip per thread, whatever the image size;
each thread keeps that strip's memory between calls. The driver is
``strips.py``.

The paths, by the name ``conv2d(..., method=name)`` takes:

``direct``
    For each kernel tap, multiply a whole strided slice of the strip by the
    tap's weight and add it to the output (``shapes.tap``).
``polyphase``
    The same sums, on memory read contiguously. The strip is split into its
    stride phases (row ``q``, column ``r`` of every ``sh`` x ``sw`` cell
    block); a tap only ever reads one phase, at a fixed offset. Laid out flat,
    each tap is then one multiply-add over a contiguous 1-D run of memory, and
    with stride > 1 no output that would be thrown away is computed.
``separable``
    A kernel of rank r is a sum of r outer products ``u v^T`` (its SVD): r
    passes of a kh-tap column filter followed by a kw-tap row filter,
    r*(kh + kw) multiply-adds per output instead of kh*kw.
``fft``
    Overlap-save: each tile of the padded input is transformed with
    ``numpy.fft``, multiplied by the kernel's spectrum and transformed back.
    The cost no longer grows with the kernel's size.
"""
import functools
import math

import numpy as np

from . import strips
from .padding import Padded
from .shapes import tap

__all__ = ["METHODS", "choose_method", "convolve", "cost_estimates"]

# ---------------------------------------------------------------------------
# Flat multiply-adds and stride phases, shared by the paths.
# ---------------------------------------------------------------------------

def _multiply_add(acc, terms, scratch, out=None):
    """``acc.flat[:L] = sum of w * block.flat[o:o + L]`` over ``terms`` of (block, o, w).

    Every block has ``acc``'s shape (N, rows, width); ``L`` is its size less
    the largest offset, so no read runs past a block's end. The cells of
    ``acc`` from ``L`` on are set to zero: margins no caller reads, kept finite.

    With ``out`` (N, R, W), the last term is added straight into it, on the
    cells that are results (``acc[:, :R, :W]``): one pass less than finishing
    ``acc`` and copying those cells out.
    """
    if out is not None:
        *terms, (block, offset, weight) = terms
        width = acc.shape[2]
        a, b = divmod(offset, width)
        view = (slice(None), slice(a, a + out.shape[1]), slice(b, b + out.shape[2]))
        np.multiply(block[view], weight, out=out)
        if terms:
            _multiply_add(acc, terms, scratch)
            out += acc[:, :out.shape[1], :out.shape[2]]
        return
    length = acc.size - max(offset for _, offset, _ in terms)
    flat, scratch = acc.reshape(-1), scratch.reshape(-1)[:length]
    flat[length:] = 0
    flat = flat[:length]
    for k, (block, offset, weight) in enumerate(terms):
        source = block.reshape(-1)[offset:offset + length]
        if k == 0:
            np.multiply(source, weight, out=flat)
        else:
            np.multiply(source, weight, out=scratch)
            flat += scratch


def _taps(kernel):
    """The kernel's taps as ``((a, b), weight)``; zero taps are dropped for integers.

    A zero weight still matters for floats: 0 * inf and 0 * nan are nan.
    """
    taps = list(np.ndenumerate(kernel))
    if kernel.dtype.kind in "iub":
        taps = [(index, weight) for index, weight in taps if weight != 0]
    return taps


def _phases(taps, stride, dilation):
    """Group taps by the stride phase they read: {(q, r): [(row offset, col offset, w)]}.

    Tap (a, b) reads padded row ``i*sh + a*dh = sh*(i + a*dh // sh) + a*dh % sh``:
    always phase ``q = a*dh % sh``, at row ``i + a*dh // sh`` of that phase.
    Likewise for columns.
    """
    (sh, sw), (dh, dw) = stride, dilation
    phases = {}
    for (a, b), weight in taps:
        phase = ((a * dh) % sh, (b * dw) % sw)
        phases.setdefault(phase, []).append(((a * dh) // sh, (b * dw) // sw, weight))
    return phases


def _phase_blocks(arena, source, batch, first_row, n_rows, row_width, phases, stride, dtype):
    """The strip's stride phases that ``phases`` reads, each (N, n_rows, row_width)."""
    sh, sw = stride
    shape = (len(range(*batch.indices(source.matrix.shape[0]))), n_rows, row_width)
    return {(q, r): source.region(batch, range(first_row + q, first_row + q + sh * n_rows, sh),
                                  range(r, r + sw * row_width, sw), dtype,
                                  out=arena.take(shape, dtype))
            for q, r in phases}


def _offsets(phases, row_width, blocks):
    """Flat multiply-add terms: each tap's phase block and offset in it."""
    return [(blocks[phase], a * row_width + b, weight)
            for phase, taps in phases.items() for a, b, weight in taps]


# ---------------------------------------------------------------------------
# The paths. Each fills ``out`` (N, H_out, W_out) from ``source`` (a Padded).
# ---------------------------------------------------------------------------

def conv2d_direct(source, kernel, geometry, out):
    """Tap by tap: the weight times a strided slice of the strip, added to the output."""
    (sh, _), (dh, _) = geometry.stride, geometry.dilation
    span_h = dh * (kernel.shape[0] - 1) + 1
    taps = _taps(kernel)

    def strip(arena, batch, rows):
        acc = out[batch, rows]     # accumulate straight into the output
        block_rows = range(rows.start * sh, (rows.stop - 1) * sh + span_h)
        block = source.region(batch, block_rows, range(source.shape[1]), out.dtype,
                              out=arena.take((acc.shape[0], len(block_rows), source.shape[1]),
                                             out.dtype))
        scratch = arena.take(acc.shape, out.dtype)
        for k, ((a, b), weight) in enumerate(taps):
            r, c = tap(a, b, acc.shape[-2:], geometry.stride, geometry.dilation)
            np.multiply(block[:, r, c], weight, out=acc if k == 0 else scratch)
            if k:
                acc += scratch

    row_bytes = (source.shape[1] * sh + 2 * geometry.output_shape[1]) * out.itemsize
    strips.run(strip, strips.plan(out, geometry.output_shape[0], row_bytes,
                                  (span_h - 1) // sh))


def conv2d_polyphase(source, kernel, geometry, out):
    """Tap by tap, on the strip's stride phases laid out flat: contiguous multiply-adds."""
    height, width = geometry.output_shape
    phases = _phases(_taps(kernel), geometry.stride, geometry.dilation)
    extra_rows = max(a for taps in phases.values() for a, _, _ in taps)
    # All phase blocks are `row_width` wide and as tall as the accumulator, so
    # offset a*row_width + b reads the same relative cell in every one of them.
    row_width = width + max(b for taps in phases.values() for _, b, _ in taps)

    def strip(arena, batch, rows):
        n_rows = rows.stop - rows.start + extra_rows
        blocks = _phase_blocks(arena, source, batch, rows.start * geometry.stride[0], n_rows,
                               row_width, phases, geometry.stride, out.dtype)
        shape = next(iter(blocks.values())).shape
        _multiply_add(arena.take(shape, out.dtype), _offsets(phases, row_width, blocks),
                      arena.take(shape, out.dtype), out=out[batch, rows])

    row_bytes = row_width * (len(phases) + 2) * out.itemsize
    strips.run(strip, strips.plan(out, height, row_bytes, extra_rows))


def _rank_terms(kernel):
    """The kernel as a short sum of outer products ``u v^T``, or None.

    Cached on the kernel's bytes: 'auto' asks for every call, and a network's
    layers call with the same few kernels over and over.
    """
    return _cached_rank_terms(kernel.dtype.str, kernel.shape, kernel.tobytes())


@functools.lru_cache(maxsize=256)
def _cached_rank_terms(dtype, shape, data):
    kernel = np.frombuffer(data, dtype=dtype).reshape(shape)
    terms = _rank_terms_uncached(kernel)
    for term in terms or ():
        for vector in term:
            vector.flags.writeable = False
    return terms


def _rank_terms_uncached(kernel):
    """See `_rank_terms`.

    Integers: only an exact factorisation into integer vectors (Sobel, box,
    binomial kernels have one), so that integer results stay exact. Floats: an
    exact outer product where the kernel is one, so that integer-valued data
    and kernels keep exactly integer-valued sums; else the SVD, keeping the
    singular values above the kernel's rounding level (``max(kh, kw) * eps *
    s_max``, NumPy's ``matrix_rank`` rule), so the terms sum to the kernel
    within its own precision.
    """
    if kernel.dtype.kind in "iub":
        rows = np.flatnonzero(kernel.any(axis=1))
        if len(rows) == 0:
            return None
        row = kernel[rows[0]]
        v = row // np.gcd.reduce(row)     # primitive: its entries share no factor
        j = np.flatnonzero(v)[0]
        u = kernel[:, j] // v[j]
        return [(u, v)] if np.array_equal(np.outer(u, v), kernel) else None
    i, j = np.unravel_index(np.argmax(np.abs(kernel)), kernel.shape)
    if kernel[i, j] != 0:
        u, v = kernel[:, j].copy(), kernel[i] / kernel[i, j]
        if np.array_equal(np.outer(u, v), kernel):
            return [(u, v)]
    left, singular, right = np.linalg.svd(kernel)
    tolerance = singular[0] * max(kernel.shape) * np.finfo(kernel.dtype).eps
    rank = max(int(np.sum(singular > tolerance)), 1)
    return [((left[:, t] * singular[t]).astype(kernel.dtype), right[t].astype(kernel.dtype))
            for t in range(rank)]


def conv2d_separable(source, kernel, geometry, out):
    """Sum over the kernel's rank-1 terms u v^T: a column pass with u, then a row pass with v."""
    terms = _rank_terms(kernel)
    if terms is None:
        raise ValueError("method='separable' needs a float kernel, or an integer kernel of "
                         "rank 1 (the outer product of two integer vectors), got an integer "
                         f"kernel of rank {np.linalg.matrix_rank(kernel)}")
    (sh, sw), (dh, dw) = geometry.stride, geometry.dilation
    height, width = geometry.output_shape
    kh, kw = kernel.shape
    padded_width = source.shape[1]
    # The column pass reads row phases of the input, the row pass column phases
    # of the column pass's result; each term has the same phases, other weights.
    columns = [_phases([((a, 0), u[a]) for a in range(kh)], (sh, 1), (dh, 1)) for u, _ in terms]
    rows_ = [_phases([((0, b), v[b]) for b in range(kw)], (1, sw), (1, dw)) for _, v in terms]
    extra_rows = (dh * (kh - 1)) // sh
    row_width = width + (dw * (kw - 1)) // sw

    def strip(arena, batch, rows):
        n_rows = rows.stop - rows.start + extra_rows
        blocks = _phase_blocks(arena, source, batch, rows.start * sh, n_rows, padded_width,
                               columns[0], (sh, 1), out.dtype)
        column_pass = arena.take(next(iter(blocks.values())).shape, out.dtype)
        scratch = arena.take(column_pass.shape, out.dtype)
        shape = column_pass.shape[:2] + (row_width,)
        result, partial, row_scratch = (arena.take(shape, out.dtype) for _ in range(3))
        col_blocks = {r: arena.take(shape, out.dtype) for _, r in rows_[0]} if sw > 1 else {}
        target, last = out[batch, rows], len(terms) - 1
        for t in range(len(terms)):
            _multiply_add(column_pass, _offsets(columns[t], padded_width, blocks), scratch)
            if sw == 1:    # row_width == padded_width: the column pass is the only phase
                phase_blocks = {(0, 0): column_pass}
            else:
                phase_blocks = {}
                for _, r in rows_[t]:
                    block = phase_blocks[0, r] = col_blocks[r]
                    part = column_pass[:, :, r::sw][:, :, :row_width]
                    block[:, :, :part.shape[2]] = part
                    block[:, :, part.shape[2]:] = 0
            row_terms = _offsets(rows_[t], row_width, phase_blocks)
            if t < last:
                _multiply_add(result if t == 0 else partial, row_terms, row_scratch)
                if t:
                    result += partial
            else:    # the last term goes straight into the output, with the others' sum
                _multiply_add(partial, row_terms, row_scratch, out=target)
                if last:
                    target += result[:, :target.shape[1], :width]

    row_bytes = (padded_width * (sh + 2) + row_width * (sw + 3)) * out.itemsize
    strips.run(strip, strips.plan(out, height, row_bytes, extra_rows))


#: The FFT size of one overlap-save tile along an axis, unless the kernel is wider.
FFT_TILE = 320


def _fft_length(n):
    """The smallest 5-smooth length >= n (2**a 3**b 5**c): numpy.fft's fast sizes."""
    best = 2 ** math.ceil(math.log2(n))
    for threes in (1, 3, 9, 27, 81):
        for fives in (1, 5, 25, 125):
            m = threes * fives
            if m < n:
                m *= 2 ** math.ceil(math.log2(n / m))
            best = min(best, m) if m >= n else best
    return best


def _fft_exact_enough(dtype):
    """Whether float64/complex128 transforms are as precise as ``dtype`` itself."""
    return dtype.kind in "fc" and np.finfo(dtype).eps >= np.finfo(np.float64).eps


def _fft_plan(output_shape, phases):
    """Per axis: the FFT length and the output cells one tile computes.

    A tile of T outputs reads T + reach cells of each phase (reach: the
    largest offset of a tap in its phase). Circular correlation of length
    ``L >= T + reach`` then has no wrap-around in the T outputs kept.
    """
    reaches = (max(a for taps in phases.values() for a, _, _ in taps),
               max(b for taps in phases.values() for _, b, _ in taps))
    plan = []
    for size, reach in zip(output_shape, reaches):
        tile = max(FFT_TILE, 2 * (reach + 1))
        length = _fft_length(size + reach if size + reach <= tile else tile)
        plan.append((length, length - reach, reach))
    return plan


def conv2d_fft(source, kernel, geometry, out):
    """Overlap-save on the stride phases: FFT each phase tile, multiply, sum, transform back.

    With stride 1 there is one phase and this is textbook overlap-save with the
    dilated kernel. With stride s, each phase is convolved with the taps that
    read it (a kernel ``s`` times smaller), the products of the spectra are
    summed, and one inverse transform gives only the outputs that are kept.
    """
    if not _fft_exact_enough(out.dtype):
        raise ValueError(f"method='fft' computes in float64 or complex128, which would not "
                         f"be exact for {out.dtype} results; use method='auto'")
    (sh, sw) = geometry.stride
    phases = _phases(_taps(kernel), geometry.stride, geometry.dilation)
    (length_h, tile_h, reach_h), (length_w, tile_w, reach_w) = _fft_plan(
        geometry.output_shape, phases)
    lengths = (length_h, length_w)
    is_complex = out.dtype.kind == "c" or kernel.dtype.kind == "c"
    # float32 is transformed in float64 too: its results then stay within an
    # ulp or so of the direct sums', which float32 transforms would not.
    dtype = np.complex128 if is_complex else np.float64
    forward, inverse = (np.fft.fft2, np.fft.ifft2) if is_complex else (np.fft.rfft2, np.fft.irfft2)
    spectra = {}
    for phase, taps in phases.items():
        sub_kernel = np.zeros(lengths, dtype)
        for a, b, weight in taps:
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

    height, width = geometry.output_shape
    images, _ = strips.plan(out, height, length_w * 16 * (len(phases) + 1), tile_rows=tile_h)
    tiles = [(batch, rows, slice(j, min(j + tile_w, width)))
             for batch, rows in images for j in range(0, width, tile_w)]
    strips.run(tile, (tiles, strips.threads()))


#: The fast paths by name; ``conv2d(..., method=name)`` picks one.
METHODS = {
    "direct": conv2d_direct,
    "polyphase": conv2d_polyphase,
    "separable": conv2d_separable,
    "fft": conv2d_fft,
}

# ---------------------------------------------------------------------------
# The choice 'auto' makes.
# ---------------------------------------------------------------------------

#: Cost model constants, in nanoseconds, measured by
#: `python benchmarks/run.py --calibrate` (the median of three runs, rounded)
#: on the benchmark's machine: a 2-core AMD EPYC with AVX-512, NumPy 2.4, one
#: thread, float64. float32 costs half as much per cell, int64 one and a half.
#: One multiply-add over one cell of a flat contiguous strip (polyphase):
COST_FLAT = 0.35
#: ... and over one cell of a strided slice (direct):
COST_STRIDED = 0.6
#: Fetching one cell of the padded input into a strip (a copy):
COST_FETCH = 0.57
#: An FFT, per cell and per log2(cells):
COST_FFT = 0.55
#: Python's cost of one NumPy call inside a path (dispatch and bookkeeping):
COST_CALL = 1100.0
#: The fixed cost of one numpy.fft call, whatever its size:
COST_FFT_CALL = 13600.0
#: How much of each extra thread a path turns into speed (speed-up with n
#: threads = 1 + (n - 1) * efficiency), measured on a 2048 x 2048 image: the
#: FFT's tiles are long independent calls; the separable path's passes are
#: bound by memory bandwidth and gained nothing from a second thread here.
PARALLEL_EFFICIENCY = {"direct": 0.28, "polyphase": 0.57, "separable": 0.0, "fft": 0.43}


def _cell_scale(dtype):
    """Cost of one cell of ``dtype`` relative to float64: by size, integers dearer."""
    return dtype.itemsize / 8 + (0.5 if dtype.kind in "iub" else 0.0)


def cost_estimates(padded_shape, kernel, geometry, batch):
    """Estimated time, in nanoseconds, of every path that applies to these arguments.

    Returns a dict {method: cost}. Integer kernels never get 'fft' (it is not
    exact), and get 'separable' only for an exact integer rank-1 factorisation.
    The estimates count cells touched and NumPy calls made, with the constants
    above; they only need to rank the paths, not to predict times.
    """
    kh, kw = kernel.shape
    (sh, sw), dw = geometry.stride, geometry.dilation[1]
    height, width = geometry.output_shape
    padded_width = padded_shape[1]
    taps = _taps(kernel)
    phase_taps = _phases(taps, geometry.stride, geometry.dilation)
    phases = len(phase_taps)
    row_width = width + (dw * (kw - 1)) // sw
    scale = _cell_scale(kernel.dtype)
    rows = batch * height                                   # output rows, all images
    n_strips = max(1, rows * row_width * (phases + 2) * kernel.itemsize // strips.STRIP_BYTES)
    costs = {
        "direct": n_strips * len(taps) * 2 * COST_CALL
        + scale * rows * (width * len(taps) * COST_STRIDED + sh * padded_width * COST_FETCH),
        "polyphase": n_strips * len(taps) * 2 * COST_CALL
        + scale * rows * row_width * (len(taps) * COST_FLAT + phases * COST_FETCH),
    }
    terms = _rank_terms(kernel)
    if terms is not None and (kernel.dtype.kind in "iub" or len(terms) * (kh + kw) < kh * kw):
        per_term = padded_width * kh + row_width * kw + (row_width * sw if sw > 1 else 0)
        costs["separable"] = (n_strips * len(terms) * 2 * (kh + kw) * COST_CALL
                              + scale * rows * (len(terms) * per_term * COST_FLAT
                                                + sh * padded_width * COST_FETCH))
    if _fft_exact_enough(kernel.dtype):
        (length_h, tile_h, _), (length_w, tile_w, _) = _fft_plan(
            geometry.output_shape, phase_taps)
        tiles = batch * math.ceil(height / tile_h) * math.ceil(width / tile_w)
        cells = length_h * length_w
        transform = cells * math.log2(max(cells, 2)) * COST_FFT / 2 + COST_FFT_CALL
        # The kernel's spectra once, then per tile a transform per phase and one back.
        costs["fft"] = phases * transform + tiles * ((phases + 1) * transform
                                                     + (phases + 3) * COST_CALL)
    if rows * row_width * kernel.itemsize * 3 >= strips.PARALLEL_BYTES:   # as `plan` decides
        costs = {method: cost / (1 + (strips.threads() - 1) * PARALLEL_EFFICIENCY[method])
                 for method, cost in costs.items()}
    return costs


#: Paths that reorganise the sums so much that NaN and infinity no longer
#: reach exactly the outputs whose window holds them (the FFT spreads a NaN
#: over its whole tile; a kernel's SVD turns its zero taps into tiny nonzero
#: ones, so 0 * inf is no longer nan). 'auto' takes them for finite data only.
_FINITE_ONLY = ("fft", "separable")


def choose_method(padded_shape, kernel, geometry, batch=1, finite=lambda: True):
    """The path 'auto' takes: the cheapest by `cost_estimates`.

    ``finite()`` is asked, only when needed, whether the input holds nothing
    but finite numbers (see ``_FINITE_ONLY``).
    """
    costs = cost_estimates(padded_shape, kernel, geometry, batch)
    best = min(costs, key=costs.get)
    if best in _FINITE_ONLY and kernel.dtype.kind in "fc" and not (
            np.isfinite(kernel).all() and finite()):
        best = min((m for m in costs if m not in _FINITE_ONLY), key=costs.get)
    return best


def convolve(matrix, kernel, geometry, padding_mode, fill_value, dtype, method="auto"):
    """Run a fast path: ``matrix`` (..., H, W) with ``kernel`` in ``dtype``.

    The entry point from ``conv2d``, which has validated every argument.
    Returns a new array of shape (..., H_out, W_out) and dtype ``dtype``.
    """
    batch_shape = matrix.shape[:-2]
    images = matrix.reshape((-1,) + matrix.shape[-2:])
    out = np.empty((images.shape[0],) + geometry.output_shape, dtype)
    source = Padded(images, geometry.padding, padding_mode, fill_value)
    if not _taps(kernel):      # an integer kernel of zeros
        out[...] = 0
    else:
        if method == "auto":
            method = choose_method(
                source.shape, kernel, geometry, images.shape[0],
                finite=lambda: images.dtype.kind not in "fc"
                or (np.isfinite(images).all() and np.isfinite(fill_value)))
        METHODS[method](source, kernel, geometry, out)
    return out.reshape(batch_shape + geometry.output_shape)
