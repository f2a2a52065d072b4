"""The fast paths, and the choice 'auto' makes between them.

Every path computes what ``reference.conv2d_loops`` computes and is tested
against it. None loops over output cells in Python. They share one driver:
the output is cut into strips of rows (tiles, for the FFT) sized to stay in
the processor's cache, each strip fetches only the part of the padded input
it reads (``padding.Padded``), and the strips are spread over the cores with
threads (NumPy releases the GIL inside its loops). So memory beyond input and
output stays a few strips per thread, whatever the image size.

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
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .padding import Padded
from .shapes import tap

__all__ = ["METHODS", "choose_method", "convolve", "cost_estimates"]

# ---------------------------------------------------------------------------
# The driver: strips, threads, and flat multiply-adds.
# ---------------------------------------------------------------------------

#: Bytes of working memory (all buffers together) of one strip: most of one
#: core's L2 cache (1 MiB on the machine the benchmark ran on), so that every
#: pass of a strip over its buffers reads from cache, not from main memory.
STRIP_BYTES = int(os.environ.get("CONVOLUTION_STRIP_BYTES", 768 * 1024))

_pool = None
_pool_lock = threading.Lock()


def threads():
    """Worker threads: $CONVOLUTION_THREADS, else the cores this process may use."""
    if "CONVOLUTION_THREADS" in os.environ:
        return max(1, int(os.environ["CONVOLUTION_THREADS"]))
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _run(work, tasks):
    """Run ``work(*task)`` for every task, on the thread pool when it pays."""
    global _pool
    workers = threads()
    if workers == 1 or len(tasks) == 1:
        for task in tasks:
            work(*task)
        return
    with _pool_lock:
        if _pool is None or _pool._max_workers != workers:
            _pool = ThreadPoolExecutor(workers, thread_name_prefix="convolution")
    for _ in _pool.map(lambda task: work(*task), tasks):
        pass


def _strips(batch, rows, row_bytes, extra_rows=0, tile_rows=None):
    """Cut (batch, output rows) into tasks of about STRIP_BYTES of buffers each.

    ``row_bytes`` is what one row of a strip's buffers costs; a strip of R
    output rows holds ``R + extra_rows`` rows (the kernel's reach below the
    strip), so strips are kept at least twice as tall as that overlap. Small
    images are grouped several to a task, large ones cut into strips of rows,
    of ``tile_rows`` rows when given (the FFT's tiles). There are at least as
    many tasks as threads when the work is large enough to share.
    """
    per_image = (rows + extra_rows) * row_bytes
    if per_image <= STRIP_BYTES and (tile_rows is None or rows <= tile_rows):
        step = max(1, STRIP_BYTES // per_image)
        if batch * per_image >= 2 * STRIP_BYTES:
            step = min(step, math.ceil(batch / threads()))
        return [(slice(n, min(n + step, batch)), slice(0, rows)) for n in range(0, batch, step)]
    step = tile_rows or max(int(STRIP_BYTES // row_bytes) - extra_rows, 2 * extra_rows, 1)
    return [(slice(n, n + 1), slice(i, min(i + step, rows)))
            for n in range(batch) for i in range(0, rows, step)]


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


def _phase_blocks(source, batch, first_row, n_rows, row_width, phases, stride, dtype):
    """The strip's stride phases that ``phases`` reads, each (N, n_rows, row_width)."""
    sh, sw = stride
    return {(q, r): source.region(batch, range(first_row + q, first_row + q + sh * n_rows, sh),
                                  range(r, r + sw * row_width, sw), dtype)
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

    def strip(batch, rows):
        block = source.region(batch, range(rows.start * sh, (rows.stop - 1) * sh + span_h),
                              range(source.shape[1]), out.dtype)
        acc = out[batch, rows]     # accumulate straight into the output
        scratch = np.empty_like(acc)
        for k, ((a, b), weight) in enumerate(taps):
            r, c = tap(a, b, acc.shape[-2:], geometry.stride, geometry.dilation)
            np.multiply(block[:, r, c], weight, out=acc if k == 0 else scratch)
            if k:
                acc += scratch

    row_bytes = (source.shape[1] * sh + 2 * geometry.output_shape[1]) * out.itemsize
    _run(strip, _strips(out.shape[0], geometry.output_shape[0], row_bytes,
                        (span_h - 1) // sh))


def conv2d_polyphase(source, kernel, geometry, out):
    """Tap by tap, on the strip's stride phases laid out flat: contiguous multiply-adds."""
    height, width = geometry.output_shape
    phases = _phases(_taps(kernel), geometry.stride, geometry.dilation)
    extra_rows = max(a for taps in phases.values() for a, _, _ in taps)
    # All phase blocks are `row_width` wide and as tall as the accumulator, so
    # offset a*row_width + b reads the same relative cell in every one of them.
    row_width = width + max(b for taps in phases.values() for _, b, _ in taps)

    def strip(batch, rows):
        n_rows = rows.stop - rows.start + extra_rows
        blocks = _phase_blocks(source, batch, rows.start * geometry.stride[0], n_rows,
                               row_width, phases, geometry.stride, out.dtype)
        acc = np.empty_like(next(iter(blocks.values())))
        _multiply_add(acc, _offsets(phases, row_width, blocks), np.empty_like(acc),
                      out=out[batch, rows])

    _run(strip, _strips(out.shape[0], height, row_width * (len(phases) + 2) * out.itemsize,
                        extra_rows))


def _rank_terms(kernel):
    """The kernel as a short sum of outer products ``u v^T``, or None.

    Floats: the SVD, keeping the singular values above the kernel's rounding
    level (``max(kh, kw) * eps * s_max``, NumPy's ``matrix_rank`` rule), so the
    sum equals the kernel to within its own precision. Integers: only an exact
    integer factorisation of a rank-1 kernel (Sobel, box, binomial), so that
    integer results stay exact.
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

    def strip(batch, rows):
        n_rows = rows.stop - rows.start + extra_rows
        blocks = _phase_blocks(source, batch, rows.start * sh, n_rows, padded_width,
                               columns[0], (sh, 1), out.dtype)
        column_pass = np.empty_like(next(iter(blocks.values())))
        scratch = np.empty_like(column_pass)
        shape = column_pass.shape[:2] + (row_width,)
        result, partial, row_scratch = (np.empty(shape, out.dtype) for _ in range(3))
        target, last = out[batch, rows], len(terms) - 1
        for t in range(len(terms)):
            _multiply_add(column_pass, _offsets(columns[t], padded_width, blocks), scratch)
            if sw == 1:    # row_width == padded_width: the column pass is the only phase
                phase_blocks = {(0, 0): column_pass}
            else:
                phase_blocks = {}
                for _, r in rows_[t]:
                    block = phase_blocks[0, r] = np.zeros(shape, out.dtype)
                    part = column_pass[:, :, r::sw][:, :, :row_width]
                    block[:, :, :part.shape[2]] = part
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
    _run(strip, _strips(out.shape[0], height, row_bytes, extra_rows))


#: The FFT size of one overlap-save tile along an axis, unless the kernel is wider.
FFT_TILE = 512


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

    def tile(batch, rows, cols):
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
    images = _strips(out.shape[0], height, length_w * 16 * (len(phases) + 1), tile_rows=tile_h)
    _run(tile, [(batch, rows, slice(j, min(j + tile_w, width)))
                for batch, rows in images for j in range(0, width, tile_w)])


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

#: Cost model constants, in nanoseconds, fitted to `python benchmarks/run.py`
#: on a 2-core AMD EPYC (AVX-512) with NumPy 2.4, for float64 on one thread.
#: One multiply-add over one cell of a flat contiguous strip:
COST_FLAT = 0.45
#: ... and over one cell of a strided slice (the direct path):
COST_STRIDED = 0.75
#: Fetching one cell of the padded input into a strip (a copy):
COST_FETCH = 0.5
#: One FFT tile: per cell per log2(cells), forward and inverse together:
COST_FFT = 0.55
#: Python's cost of one NumPy call inside a path (dispatch and bookkeeping):
COST_CALL = 1500.0


def cost_estimates(padded_shape, kernel, geometry, batch):
    """Estimated time, in nanoseconds, of every path that applies to these arguments.

    Returns a dict {method: cost}. Integer kernels never get 'fft' (it is not
    exact), and get 'separable' only for an exact integer rank-1 factorisation.
    """
    kh, kw = kernel.shape
    (sh, sw), (dh, dw) = geometry.stride, geometry.dilation
    height, width = geometry.output_shape
    outputs = batch * height * width
    taps = len(_taps(kernel))
    phases = len(_phases(_taps(kernel), geometry.stride, geometry.dilation)) if taps else 1
    row_width = width + (dw * (kw - 1)) // sw
    strips = max(1, outputs * max(phases, 3) * kernel.itemsize // STRIP_BYTES)
    scale = kernel.dtype.itemsize / 8 if kernel.dtype.kind == "f" else kernel.dtype.itemsize / 8 + 0.5
    costs = {
        "direct": strips * taps * 2 * COST_CALL
        + scale * (outputs * taps * COST_STRIDED + batch * height * sh * padded_shape[1] * COST_FETCH),
        "polyphase": strips * taps * 2 * COST_CALL
        + scale * batch * height * row_width * (taps * COST_FLAT + phases * COST_FETCH),
    }
    terms = _rank_terms(kernel)
    if terms is not None and (kernel.dtype.kind in "iub" or len(terms) * (kh + kw) < kh * kw):
        cells = batch * height * (padded_shape[1] * (kh + sh) + row_width * (kw + sw))
        costs["separable"] = (strips * len(terms) * 2 * (kh + kw) * COST_CALL
                              + scale * len(terms) * cells * COST_FLAT)
    if _fft_exact_enough(kernel.dtype):
        (length_h, tile_h, _), (length_w, tile_w, _) = _fft_plan(
            geometry.output_shape, _phases(_taps(kernel), geometry.stride, geometry.dilation))
        tiles = batch * math.ceil(height / tile_h) * math.ceil(width / tile_w)
        cells = length_h * length_w
        costs["fft"] = tiles * ((phases + 1) * cells * math.log2(cells) * COST_FFT / 2
                                + (phases + 6) * COST_CALL)
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
                finite=lambda: np.isfinite(images).all() and np.isfinite(fill_value))
        METHODS[method](source, kernel, geometry, out)
    return out.reshape(batch_shape + geometry.output_shape)
