"""The fast paths, and the choice 'auto' makes between them.

Every path computes what ``reference.conv2d_loops`` computes and is tested
against it. None loops over output cells in Python. They share one driver
(``strips.py``): the output is cut into strips of rows (tiles, for the FFT)
of a few MiB, each strip fetches only the part of the padded input it reads
(``padding.Padded``), and where the calls are long enough to share, the
strips are spread over the cores with threads. So memory beyond input and
output stays a strip per thread, whatever the image size.

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
``banded``
    The sums as matrix products, which BLAS does in one call per strip. A
    group of R output rows reads R + reach rows of the input's row phase;
    each of those rows is laid out once per kernel column, shifted by that
    column's offset, so that output row i of the group is the band matrix's
    row i (the kernel's weights on its diagonals) times those rows.
``separable``
    A kernel of rank r is a sum of r outer products ``u v^T`` (its SVD): r
    passes of a kh-tap column filter followed by a kw-tap row filter,
    r*(kh + kw) multiply-adds per output instead of kh*kw.
``fft``
    Overlap-save: each tile of the padded input is transformed with
    ``numpy.fft``, multiplied by the kernel's spectrum and transformed back.
    The cost no longer grows with the kernel's size.

Each path has a ``plan_<name>`` that says how it cuts the work and what that
is estimated to cost (``costs.py``); 'auto' takes the cheapest plan whose
conditions the data meet (`choose_method`), and runs it as planned.
"""
import functools
import math
from typing import NamedTuple

import numpy as np

from . import costs, strips
from .padding import Padded
from .shapes import tap

__all__ = ["METHODS", "choose_method", "convolve", "cost_estimates", "plan"]

#: NumPy calls one fetch of a region of the padded input makes (a few slice
#: copies for the borders, the zeroing of margins), for the cost model.
_FETCH_CALLS = 4

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


def _may_hold_nonfinite(source):
    """Whether regions of ``source`` (a Padded) can hold NaN or infinity: not for integer data."""
    return source.matrix.dtype.kind in "fc" or not np.isfinite(source.fill_value)


def _finite(flags, block):
    """Whether ``block`` holds only finite numbers; ``flags``: a bool buffer at least as large."""
    return bool(np.isfinite(block, out=flags[:block.size].reshape(block.shape)).all())


def _tap_phases(kernel, geometry):
    """`_phases` of the kernel's taps for this geometry, cached on the kernel's bytes.

    'auto' plans every path for every call; a network's layers call with the
    same few kernels over and over. Read-only: shared by every call.
    """
    return _cached_tap_phases(kernel.dtype.str, kernel.shape, kernel.tobytes(),
                              geometry.stride, geometry.dilation)


@functools.lru_cache(maxsize=256)
def _cached_tap_phases(dtype, shape, data, stride, dilation):
    kernel = np.frombuffer(data, dtype=dtype).reshape(shape)
    return _phases(_taps(kernel), stride, dilation)


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
# The paths. Each plans its strips (``plan_<name>``, from the geometry, the
# kernel, the batch size and the dtype) and fills ``out`` (N, H_out, W_out)
# from ``source`` (a Padded) as planned.
# ---------------------------------------------------------------------------

def _padded_width(geometry):
    return geometry.input_shape[1] + sum(geometry.padding[1])


def plan_direct(geometry, kernel, batch, dtype):
    (sh, _), (span_h, _) = geometry.stride, geometry.span
    height, width = geometry.output_shape
    padded_width = _padded_width(geometry)
    taps = sum(map(len, _tap_phases(kernel, geometry).values()))
    work = strips.Work(row_bytes=(padded_width * sh + 2 * width) * dtype.itemsize,
                       extra_rows=span_h // sh, calls=2 * taps + _FETCH_CALLS,
                       row_ns=costs.direct(width, padded_width, taps, sh, dtype))
    return strips.plan(batch, height, batch * height * width * dtype.itemsize, work)


def conv2d_direct(source, kernel, geometry, out, plan):
    """Tap by tap: the weight times a strided slice of the strip, added to the output."""
    (sh, _), (span_h, _) = geometry.stride, geometry.span
    taps = _taps(kernel)

    def strip(arena, batch, rows):
        acc = out[batch, rows]     # accumulate straight into the output
        block_rows = range(rows.start * sh, (rows.stop - 1) * sh + span_h + 1)
        block = source.region(batch, block_rows, range(source.shape[1]), out.dtype,
                              out=arena.take((acc.shape[0], len(block_rows), source.shape[1]),
                                             out.dtype))
        scratch = arena.take(acc.shape, out.dtype)
        for k, ((a, b), weight) in enumerate(taps):
            r, c = tap(a, b, acc.shape[-2:], geometry.stride, geometry.dilation)
            np.multiply(block[:, r, c], weight, out=acc if k == 0 else scratch)
            if k:
                acc += scratch

    strips.run(strip, plan)


def _polyphase_layout(kernel, geometry):
    """The taps by phase, the rows a strip reads below its own, and the phase blocks' width."""
    phases = _tap_phases(kernel, geometry)
    extra_rows = max(a for taps in phases.values() for a, _, _ in taps)
    # All phase blocks are `row_width` wide and as tall as the accumulator, so
    # offset a*row_width + b reads the same relative cell in every one of them.
    row_width = geometry.output_shape[1] + max(b for taps in phases.values() for _, b, _ in taps)
    return phases, extra_rows, row_width


def plan_polyphase(geometry, kernel, batch, dtype):
    phases, extra_rows, row_width = _polyphase_layout(kernel, geometry)
    height, width = geometry.output_shape
    taps = sum(map(len, phases.values()))
    work = strips.Work(row_bytes=row_width * (len(phases) + 2) * dtype.itemsize,
                       extra_rows=extra_rows, calls=2 * taps + len(phases) * _FETCH_CALLS,
                       row_ns=costs.polyphase(row_width, taps, len(phases), dtype))
    return strips.plan(batch, height, batch * height * width * dtype.itemsize, work)


def _polyphase_strip(source, kernel, geometry, out):
    """What 'polyphase' does for one strip, as a function of (arena, batch, rows)."""
    phases, extra_rows, row_width = _polyphase_layout(kernel, geometry)

    def strip(arena, batch, rows):
        n_rows = rows.stop - rows.start + extra_rows
        blocks = _phase_blocks(arena, source, batch, rows.start * geometry.stride[0], n_rows,
                               row_width, phases, geometry.stride, out.dtype)
        shape = next(iter(blocks.values())).shape
        _multiply_add(arena.take(shape, out.dtype), _offsets(phases, row_width, blocks),
                      arena.take(shape, out.dtype), out=out[batch, rows])

    return strip


def conv2d_polyphase(source, kernel, geometry, out, plan):
    """Tap by tap, on the strip's stride phases laid out flat: contiguous multiply-adds."""
    strips.run(_polyphase_strip(source, kernel, geometry, out), plan)


#: Output rows per band: each group of this many rows is one matrix product
#: of the band (BAND_ROWS x K) and K shifted input rows. More rows per group
#: make longer products but more zeros in the band (R + reach rows for R).
BAND_ROWS = 4

#: The floating dtypes BLAS multiplies; 'auto' takes 'banded' and 'separable' for these only.
_BLAS_DTYPES = tuple(map(np.dtype, (np.float32, np.float64, np.complex64, np.complex128)))


class _Band(NamedTuple):
    """The band matrix of a kernel and how a strip lays out the rows it multiplies.

    ``matrix`` (rows, K) holds the weights. The K rows it multiplies are,
    for each of a group's ``rows + reach`` rows of each row phase q in
    ``phases`` (padded rows ``q + sh * i``), and each kernel column, that
    row of the input shifted by the column's offset. Kernel column b reads
    padded columns ``b * dw + sw * j``: column phase ``r = b * dw % sw``,
    at offset ``b * dw // sw`` in it. ``columns`` lists, per column phase,
    ``(r, first, offsets)``: the block a strip fetches holds padded columns
    ``r + sw * (first + j)``, and each kernel column of that phase is the
    block shifted by one of ``offsets``.
    """
    matrix: np.ndarray
    rows: int
    phases: tuple
    reach: int
    columns: tuple


def _band(kernel, geometry):
    """The `_Band` of ``kernel`` for this geometry (cached on the kernel's bytes)."""
    return _cached_band(kernel.dtype.str, kernel.shape, kernel.tobytes(), geometry.stride,
                        geometry.dilation, BAND_ROWS)


@functools.lru_cache(maxsize=256)
def _cached_band(dtype, shape, data, stride, dilation, rows, sparse=True):
    """See `_band`. ``sparse``: leave out the kernel's rows and columns of zeros.

    They add nothing to finite sums; the separable path keeps them, so that
    the bands of all its terms read the same rows.
    """
    kernel = np.frombuffer(data, dtype=dtype).reshape(shape)
    (sh, sw), (dh, dw) = stride, dilation
    kernel_rows = [a for a in range(shape[0]) if kernel[a].any() or not sparse] or [0]
    kernel_cols = [b for b in range(shape[1]) if kernel[:, b].any() or not sparse] or [0]
    kernel_cols.sort(key=lambda b: (b * dw % sw, b * dw // sw))   # by column phase, then offset
    phases = sorted({a * dh % sh for a in kernel_rows})
    reach = max(a * dh // sh for a in kernel_rows)
    band = np.zeros((rows, rows + reach, len(phases), len(kernel_cols)), kernel.dtype)
    for a in kernel_rows:
        q, offset = a * dh % sh, a * dh // sh
        for i in range(rows):
            band[i, i + offset, phases.index(q)] = kernel[a, kernel_cols]
    band = band.reshape(rows, -1)
    band.flags.writeable = False    # cached: shared by every call with this kernel
    columns = {}
    for b in kernel_cols:
        columns.setdefault(b * dw % sw, []).append(b * dw // sw)
    columns = tuple((r, offsets[0], tuple(o - offsets[0] for o in offsets))
                    for r, offsets in columns.items())
    return _Band(band, rows, tuple(phases), reach, columns)


def _even_step(values):
    """The common difference of ``values`` if they are evenly spaced, else None."""
    steps = {b - a for a, b in zip(values, values[1:])}
    return steps.pop() if len(steps) == 1 else 0 if not steps else None


#: Bytes of the shifted rows one matrix product of 'banded' multiplies: a
#: strip's input is fetched once, then laid out shifted and multiplied this
#: much at a time, so that the product finds its rows in cache. With many
#: threads, products four times as large can pay (`plan_banded`).
BAND_BYTES = 2 ** 19
#: What products four times `BAND_BYTES` cost more per cell on one thread,
#: measured: up to a quarter on 1024-wide float32 images, nothing at 4096.
BAND_LARGE_COST = 1.2


def _band_layout(band, width, itemsize, product_bytes):
    """Per row of a strip: the cells fetched, and the shifted cells; the groups a product takes."""
    phases = len(band.phases)
    fetched = phases * sum(width + offsets[-1] for _, _, offsets in band.columns)
    shifted = phases * sum(len(offsets) for _, _, offsets in band.columns) * width
    groups = max(1, product_bytes // (shifted * itemsize * band.rows))
    return fetched, shifted, groups


def plan_banded(geometry, kernel, batch, dtype):
    """The cheaper of two plans: cache-sized products, or four times larger ones.

    Each product is a few NumPy calls, each of which holds the GIL while it
    starts: with many threads, larger products (fewer calls) can beat the
    cache's preference for small ones.
    """
    band = _band(kernel, geometry)
    height, width = geometry.output_shape
    copies = sum(1 if _even_step(offsets) is not None else len(offsets)
                 for _, _, offsets in band.columns) * len(band.phases)
    out_bytes = batch * height * width * dtype.itemsize
    plans = []
    for product_bytes, factor in ((BAND_BYTES, 1.0), (4 * BAND_BYTES, BAND_LARGE_COST)):
        fetched, shifted, groups = _band_layout(band, width, dtype.itemsize, product_bytes)
        work = strips.Work(
            row_bytes=fetched * dtype.itemsize, extra_rows=band.reach + band.rows - 1,
            rows_multiple=band.rows,
            calls=len(band.phases) * len(band.columns) * (_FETCH_CALLS + 2),
            row_calls=(copies + 2) / (groups * band.rows), fixed_ns=2 * costs.CALL_NS,
            row_ns=factor * costs.banded(width, fetched, shifted, band.matrix.shape[1], dtype))
        chosen = strips.plan(batch, height, out_bytes, work)
        # Every thread's products together within the output's size (the memory promise).
        if product_bytes == BAND_BYTES or chosen.threads * product_bytes <= out_bytes:
            plans.append(chosen._replace(detail=min(product_bytes,
                                                    out_bytes // chosen.threads)))
    return min(plans, key=lambda plan: plan.ns)


def conv2d_banded(source, kernel, geometry, out, plan):
    """Groups of rows as band-matrix products: one BLAS call for many groups.

    A strip's input is fetched once (each row phase, each column phase);
    then, a few groups of rows at a time (`BAND_BYTES`, or four times that
    as planned), its rows are laid out once per kernel column, shifted by
    that column's offset, and multiplied by the band. A strip whose fetched
    input holds a NaN or an infinity is done by 'polyphase' instead (the
    band's zeros would spread it: 0 * inf is NaN), so these reach exactly
    the outputs whose window holds them.
    """
    band = _band(kernel, geometry)
    sh, sw = geometry.stride
    width, dtype = out.shape[2], out.dtype
    itemsize = dtype.itemsize
    phases, rows_ = len(band.phases), band.rows
    shifts = sum(len(offsets) for _, _, offsets in band.columns)
    _, _, per_product = _band_layout(band, width, itemsize, plan.detail)
    widest = max(width + offsets[-1] for _, _, offsets in band.columns)
    depth = band.matrix.shape[1]
    # Per column phase: its block's width, its first shift in `shifted`, the step of its shifts.
    layout, s = [], 0
    for r, first, offsets in band.columns:
        layout.append((r, first, offsets, width + offsets[-1], s, _even_step(offsets)))
        s += len(offsets)
    check = _may_hold_nonfinite(source)
    fallback = []

    def strip(arena, batch, rows):
        n = len(range(*batch.indices(out.shape[0])))
        count = rows.stop - rows.start
        groups = -(-count // rows_)
        phase_rows = groups * rows_ + band.reach
        blocks = []
        flags = arena.take((n * phase_rows * widest,), np.bool_) if check else None
        for q in band.phases:
            first_row = rows.start * sh + q
            row_range = range(first_row, first_row + sh * phase_rows, sh)
            for r, first, offsets, block_width, _, _ in layout:
                block = source.region(
                    batch, row_range, range(r + sw * first, r + sw * (first + block_width), sw),
                    dtype, out=arena.take((n, phase_rows, block_width), dtype))
                if check and not _finite(flags, block):
                    if not fallback:
                        fallback.append(_polyphase_strip(source, kernel, geometry, out))
                    return fallback[0](arena, batch, rows)
                blocks.append(block)
        taken = min(per_product, groups)
        shifted = arena.take((n, taken * rows_ + band.reach, phases, shifts, width), dtype)
        target = out[batch, rows]
        for g in range(0, groups, taken):
            here = min(taken, groups - g)         # groups in this product
            top, lines = g * rows_, here * rows_ + band.reach
            k = 0
            for p in range(phases):
                for _, _, offsets, _, s, step in layout:
                    block = blocks[k]
                    k += 1
                    if step is not None:    # every shift of this column phase in one copy
                        shifted[:, :lines, p, s:s + len(offsets)] = np.ndarray(
                            (n, lines, len(offsets), width), dtype, block,
                            top * block.strides[1], block.strides[:2] + (step * itemsize,
                                                                         itemsize))
                    else:
                        for i, offset in enumerate(offsets):
                            shifted[:, :lines, p, s + i] = block[:, top:top + lines,
                                                                 offset:offset + width]
            # Group g multiplies the `depth` rows of `shifted` from its first row on.
            products = np.ndarray((n, here, depth, width), dtype, shifted, 0,
                                  (shifted.strides[0], shifted.strides[1] * rows_,
                                   width * itemsize, itemsize))
            whole = min(here * rows_, count - top) // rows_
            if whole:
                np.matmul(band.matrix, products[:, :whole],
                          out=target[:, top:top + whole * rows_].reshape(n, whole, rows_, width))
            if whole < here:      # the image's last rows: part of a group
                last = np.matmul(band.matrix, products[:, whole:])
                target[:, top + whole * rows_:] = last[:, 0, :count - top - whole * rows_]

    with strips.single_threaded_blas():
        strips.run(strip, plan)


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
    binomial kernels have one), so that integer results stay exact. Floats:
    an exact outer product where the kernel is one, so that integer-valued
    data and kernels keep exactly integer-valued sums; else the SVD, keeping
    the singular values above the kernel's rounding level (``max(kh, kw) *
    eps * s_max``, NumPy's ``matrix_rank`` rule), so the terms sum to the
    kernel within its own precision.

    The SVD is taken of the kernel divided by its largest entry, in float64
    (complex128), and each term's scale split evenly between ``u`` and
    ``v``: a kernel near the dtype's largest value (float32 times 1e38)
    would otherwise overflow inside the SVD and give terms that sum to
    something else. Terms that still do not sum to the kernel within a few
    rounding units (or that overflow) give None. So do kernels holding NaN or
    infinity, and dtypes LAPACK does not take (longdouble): no SVD is tried.
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
    if kernel.dtype not in _BLAS_DTYPES or not np.isfinite(kernel).all():
        return None
    i, j = np.unravel_index(np.argmax(np.abs(kernel)), kernel.shape)
    scale = float(np.abs(kernel[i, j]))
    if scale == 0:
        return [(kernel[:, 0].copy(), kernel[0].copy())]
    u, v = kernel[:, j].copy(), kernel[i] / kernel[i, j]
    with np.errstate(over="ignore", invalid="ignore"):
        if np.array_equal(np.outer(u, v), kernel):
            return [(u, v)]
    wide = np.complex128 if kernel.dtype.kind == "c" else np.float64
    left, singular, right = np.linalg.svd(kernel.astype(wide) / scale)
    tolerance = singular[0] * max(kernel.shape) * np.finfo(kernel.dtype).eps
    rank = max(int(np.sum(singular > tolerance)), 1)
    root = math.sqrt(scale)
    with np.errstate(over="ignore", invalid="ignore"):
        terms = [((left[:, t] * (math.sqrt(singular[t]) * root)).astype(kernel.dtype),
                  (right[t] * (math.sqrt(singular[t]) * root)).astype(kernel.dtype))
                 for t in range(rank)]
        # The terms as they will be used, summed in float64 relative to the kernel's scale.
        total = sum(np.outer(u.astype(wide) / root, v.astype(wide) / root) for u, v in terms)
        error = np.max(np.abs(total - kernel.astype(wide) / scale))
    if not error <= 4 * max(kernel.shape) ** 2 * np.finfo(kernel.dtype).eps:
        return None
    return terms


def _separable_terms(kernel):
    """`_rank_terms`, or a ValueError for method='separable' where there are none."""
    terms = _rank_terms(kernel)
    if terms is not None:
        return terms
    if kernel.dtype.kind in "iub":
        raise ValueError("method='separable' needs a float kernel, or an integer kernel of "
                         "rank 1 (the outer product of two integer vectors), got an integer "
                         f"kernel of rank {np.linalg.matrix_rank(kernel)}")
    if kernel.dtype not in _BLAS_DTYPES:
        raise ValueError(f"method='separable' factors the kernel with LAPACK, which does not "
                         f"take {kernel.dtype}; use method='auto'")
    raise ValueError(f"method='separable' could not factor this {kernel.dtype} kernel into "
                     f"rank-1 terms that sum to it within its precision (it holds NaN or "
                     f"infinity, or its terms would overflow); use method='auto'")


def _separable_layout(geometry, kernel):
    """The terms, and for each the taps of its column pass and of its row pass, by phase."""
    terms = _separable_terms(kernel)
    (sh, sw), (dh, dw) = geometry.stride, geometry.dilation
    kh, kw = kernel.shape
    # The column pass reads row phases of the input, the row pass column phases
    # of the column pass's result; each term has the same phases, other weights.
    columns = [_phases([((a, 0), u[a]) for a in range(kh)], (sh, 1), (dh, 1)) for u, _ in terms]
    rows_ = [_phases([((0, b), v[b]) for b in range(kw)], (1, sw), (1, dw)) for _, v in terms]
    return terms, columns, rows_


#: Output columns per block of the separable path's row pass: each block is
#: the column pass's rows times a Toeplitz matrix of the row filter.
SEPARABLE_BLOCK = 16


class _Passes(NamedTuple):
    """The separable path's matrices: per term a column band and a row Toeplitz matrix.

    The column pass of term t is 'banded' with the kernel's column ``u_t``
    (``bands[t]``, all reading ``phases`` and ``reach`` rows below a group of
    ``rows``); it covers ``width`` columns of the padded input, enough for
    every one of the row pass's ``blocks``. The row pass of block j multiplies
    ``depth`` columns of the column pass, from ``j * block * sw`` on, by
    ``toeplitz[t]`` (depth x block), whose column c holds ``v_t`` on the
    cells ``c * sw + b * dw``: ``block`` output columns.
    """
    bands: tuple
    toeplitz: tuple
    phases: tuple
    reach: int
    rows: int
    block: int
    blocks: int
    width: int
    depth: int


def _passes(kernel, geometry):
    """The `_Passes` of a float kernel (cached on its bytes, and on the sizes read now)."""
    return _cached_passes(kernel.dtype.str, kernel.shape, kernel.tobytes(), geometry.stride,
                          geometry.dilation, geometry.output_shape[1], BAND_ROWS,
                          SEPARABLE_BLOCK)


@functools.lru_cache(maxsize=256)
def _cached_passes(dtype, shape, data, stride, dilation, width, rows, block):
    kernel = np.frombuffer(data, dtype=dtype).reshape(shape)
    (sh, sw), (dh, dw) = stride, dilation
    blocks = -(-width // block)
    depth = (block - 1) * sw + dw * (shape[1] - 1) + 1
    columns = (blocks * block - 1) * sw + dw * (shape[1] - 1) + 1
    bands, toeplitz = [], []
    for u, v in _rank_terms(kernel):
        bands.append(_cached_band(dtype, (shape[0], 1), u.tobytes(), (sh, 1), (dh, 1), rows,
                                  sparse=False))
        row = np.zeros((depth, block), kernel.dtype)
        for b in range(shape[1]):
            row[np.arange(block) * sw + b * dw, np.arange(block)] = v[b]
        row.flags.writeable = False
        toeplitz.append(row)
    return _Passes(tuple(band.matrix for band in bands), tuple(toeplitz), bands[0].phases,
                   bands[0].reach, rows, block, blocks, columns, depth)


def plan_separable(geometry, kernel, batch, dtype):
    terms = _separable_terms(kernel)
    (sh, sw), (span_h, span_w) = geometry.stride, geometry.span
    kh, kw = kernel.shape
    height, width = geometry.output_shape
    out_bytes = batch * height * width * dtype.itemsize
    if dtype in _BLAS_DTYPES:
        passes = _passes(kernel, geometry)
        phases = len(passes.phases)
        work = strips.Work(
            row_bytes=(phases + 2) * passes.width * dtype.itemsize,
            extra_rows=passes.reach + passes.rows - 1, rows_multiple=passes.rows,
            calls=phases * (_FETCH_CALLS + 2) + 4 * len(terms) + 2, fixed_ns=2 * costs.CALL_NS,
            row_ns=costs.separable_products(passes.width, width, phases,
                                            passes.bands[0].shape[1], passes.rows, passes.depth,
                                            len(terms), dtype))
        return strips.plan(batch, height, out_bytes, work)
    padded_width = _padded_width(geometry)
    row_width = width + span_w // sw
    work = strips.Work(
        row_bytes=(padded_width * (sh + 2) + row_width * (sw + 3)) * dtype.itemsize,
        extra_rows=span_h // sh, calls=len(terms) * (2 * (kh + kw) + 2) + sh * _FETCH_CALLS,
        row_ns=costs.separable(padded_width, row_width, kernel.shape, len(terms),
                               geometry.stride, dtype))
    return strips.plan(batch, height, out_bytes, work)


def conv2d_separable(source, kernel, geometry, out, plan):
    """Sum over the kernel's rank-1 terms u v^T: a column pass with u, then a row pass with v.

    Floats: both passes are matrix products (BLAS), a column band as in
    'banded' and a Toeplitz matrix per block of output columns; a strip
    whose input holds NaN or infinity is done tap by tap instead, as in
    'banded'. Integers: tap by tap, exactly.
    """
    if out.dtype in _BLAS_DTYPES:
        with strips.single_threaded_blas():
            strips.run(_separable_products_strip(source, kernel, geometry, out), plan)
    else:
        strips.run(_separable_taps_strip(source, kernel, geometry, out), plan)


def _separable_products_strip(source, kernel, geometry, out):
    """One strip of the separable path as two matrix products per term."""
    passes = _passes(kernel, geometry)
    sh, sw = geometry.stride
    width, dtype = out.shape[2], out.dtype
    itemsize = dtype.itemsize
    phases, rows_, block = len(passes.phases), passes.rows, passes.block
    depth = passes.bands[0].shape[1]
    whole_blocks = width // block
    check = _may_hold_nonfinite(source)
    fallback = []

    def strip(arena, batch, rows):
        n = len(range(*batch.indices(out.shape[0])))
        count = rows.stop - rows.start
        groups = -(-count // rows_)
        phase_rows = groups * rows_ + passes.reach
        fetched = arena.take((n, phase_rows, phases, passes.width), dtype)
        for p, q in enumerate(passes.phases):
            first = rows.start * sh + q
            source.region(batch, range(first, first + sh * phase_rows, sh),
                          range(passes.width), dtype, out=fetched[:, :, p])
        if check and not _finite(arena.take((fetched.size,), np.bool_), fetched):
            if not fallback:
                fallback.append(_polyphase_strip(source, kernel, geometry, out))
            return fallback[0](arena, batch, rows)
        products = np.ndarray((n, groups, depth, passes.width), dtype, fetched, 0,
                              (fetched.strides[0], rows_ * phases * passes.width * itemsize,
                               passes.width * itemsize, itemsize))
        column_pass = arena.take((n, groups, rows_, passes.width), dtype)
        # Row pass, block j: `depth` columns of the column pass from j * block * sw on.
        row_view = np.ndarray((n, passes.blocks, count, passes.depth), dtype, column_pass, 0,
                              (column_pass.strides[0], block * sw * itemsize,
                               passes.width * itemsize, itemsize))
        target = out[batch, rows]
        # The output's whole blocks of columns, as (n, blocks, rows, block): a view.
        blocks_view = target[..., :whole_blocks * block].reshape(
            n, count, whole_blocks, block).transpose(0, 2, 1, 3)
        partial = arena.take((n, 1, count, block), dtype) if width % block else None
        summed = (arena.take((n, whole_blocks, count, block), dtype)
                  if len(passes.bands) > 1 and whole_blocks else None)
        for t, (band, toeplitz) in enumerate(zip(passes.bands, passes.toeplitz)):
            np.matmul(band, products, out=column_pass)
            if whole_blocks:
                np.matmul(row_view[:, :whole_blocks], toeplitz,
                          out=blocks_view if t == 0 else summed)
                if t:
                    blocks_view += summed
            if partial is not None:
                np.matmul(row_view[:, whole_blocks:], toeplitz, out=partial)
                last = target[:, :, whole_blocks * block:]
                if t == 0:
                    last[...] = partial[:, 0, :, :last.shape[2]]
                else:
                    last += partial[:, 0, :, :last.shape[2]]

    return strip


def _separable_taps_strip(source, kernel, geometry, out):
    """One strip of the separable path tap by tap, on flat phases (exact for integers)."""
    terms, columns, rows_ = _separable_layout(geometry, kernel)
    (sh, sw), (span_h, span_w) = geometry.stride, geometry.span
    width = geometry.output_shape[1]
    padded_width = source.shape[1]
    extra_rows = span_h // sh
    row_width = width + span_w // sw

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

    return strip


#: The FFT size of one overlap-save tile along an axis, unless the kernel is wider.
FFT_TILE = 320


@functools.lru_cache(maxsize=1024)
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


def plan_fft(geometry, kernel, batch, dtype):
    if not _fft_exact_enough(dtype):
        raise ValueError(f"method='fft' computes in float64 or complex128, which would not "
                         f"be exact for {dtype} results; use method='auto'")
    phases = _tap_phases(kernel, geometry)
    (length_h, tile_h, _), (length_w, tile_w, _) = _fft_plan(geometry.output_shape, phases)
    height, width = geometry.output_shape
    if height <= tile_h and width <= tile_w:     # one tile an image: several images a task
        step = max(1, min(math.ceil(batch / strips.threads()),
                          strips.STRIP_BYTES // (length_h * length_w * 16 * (len(phases) + 1))))
        tasks = [(slice(n, min(n + step, batch)), slice(0, height), slice(0, width))
                 for n in range(0, batch, step)]
    else:
        tasks = [(slice(n, n + 1), slice(i, min(i + tile_h, height)),
                  slice(j, min(j + tile_w, width)))
                 for n in range(batch) for i in range(0, height, tile_h)
                 for j in range(0, width, tile_w)]
    images = math.ceil(batch / len(tasks))     # a task's images
    return strips.plan_tasks(
        tasks, len(tasks) * images * costs.fft_tile((length_h, length_w), len(phases)),
        calls_per_task=len(phases) * (_FETCH_CALLS + 3) + 2,
        fixed_ns=costs.fft((length_h, length_w), len(phases)))


def conv2d_fft(source, kernel, geometry, out, plan):
    """Overlap-save on the stride phases: FFT each phase tile, multiply, sum, transform back.

    With stride 1 there is one phase and this is textbook overlap-save with the
    dilated kernel. With stride s, each phase is convolved with the taps that
    read it (a kernel ``s`` times smaller), the products of the spectra are
    summed, and one inverse transform gives only the outputs that are kept.

    Its rounding error is relative to the largest terms of the tile (see
    ``choose_method``), so integer data never come here: a value near 2**63
    would swamp every small one in its tile.
    """
    if source.matrix.dtype.kind in "iub":
        raise ValueError(f"method='fft' does not take integer data (got {source.matrix.dtype}): "
                         f"its rounding error is relative to the largest value in each tile, "
                         f"not to each output's own terms; convert the data to float to use it")
    (sh, sw) = geometry.stride
    phases = _tap_phases(kernel, geometry)
    (length_h, tile_h, reach_h), (length_w, tile_w, reach_w) = _fft_plan(
        geometry.output_shape, phases)
    lengths = (length_h, length_w)
    is_complex = out.dtype.kind == "c" or kernel.dtype.kind == "c"
    # float32 is transformed in float64 too: its results then keep float32's
    # precision relative to each tile's largest terms.
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

    strips.run(tile, plan)


#: The fast paths by name; ``conv2d(..., method=name)`` picks one.
METHODS = {
    "direct": conv2d_direct,
    "polyphase": conv2d_polyphase,
    "banded": conv2d_banded,
    "separable": conv2d_separable,
    "fft": conv2d_fft,
}

#: Each path's planner: (geometry, kernel, batch, dtype) -> strips.Plan.
PLANS = {
    "direct": plan_direct,
    "polyphase": plan_polyphase,
    "banded": plan_banded,
    "separable": plan_separable,
    "fft": plan_fft,
}


def plan(method, geometry, kernel, batch=1, dtype=None):
    """The plan of path ``method``: its strips, its threads, its estimated time (ns).

    Raises ValueError where the path does not take this kernel or dtype.
    Cached: on the arguments, and on what else a plan depends on (`_settings`).
    """
    dtype = np.dtype(dtype or kernel.dtype)
    return _cached_plan(method, geometry, kernel.dtype.str, kernel.shape, kernel.tobytes(),
                        batch, dtype.str, _settings())


def _settings():
    """What plans depend on beyond the arguments, read at every call.

    The threads a call may use, the driver's and the paths' sizes, the cost
    model's constants: a test or a user that changes one gets new plans.
    """
    return (strips.threads(), strips.STRIP_BYTES, strips.MIN_STRIP_BYTES, strips.THREAD_GAIN,
            BAND_ROWS, BAND_BYTES, BAND_LARGE_COST, SEPARABLE_BLOCK, FFT_TILE, FFT_MARGIN,
            costs.constants())


@functools.lru_cache(maxsize=1024)
def _cached_plan(method, geometry, kernel_dtype, shape, data, batch, dtype, settings):
    kernel = np.frombuffer(data, dtype=kernel_dtype).reshape(shape)
    return PLANS[method](geometry, kernel, batch, np.dtype(dtype))


# ---------------------------------------------------------------------------
# The choice 'auto' makes.
# ---------------------------------------------------------------------------

#: How much larger than a window's own values 'auto' lets the largest value
#: of an FFT tile be, in units of the result dtype's precision against
#: float64's (see `_fft_surprise_free`): 2**10 for float64 data.
FFT_RANGE = 2.0 ** 10
#: 'auto' takes the FFT only where its estimate beats every other path's by
#: this factor: where the two are close, the path whose error is relative to
#: each output's own terms (and the estimates' own error) decide.
FFT_MARGIN = 1.25


def _candidates(kernel, dtype):
    """The paths 'auto' weighs for this kernel and dtype, decided from the kernel alone.

    Checked before anything is computed from the kernel: a kernel holding NaN
    or infinity, or of a dtype LAPACK and BLAS do not take (longdouble),
    leaves the tap loops, which handle every value and dtype.
    """
    names = ["direct", "polyphase"]
    if kernel.dtype.kind in "iub":
        return names + (["separable"] if _rank_terms(kernel) is not None else [])
    if dtype not in _BLAS_DTYPES or not np.isfinite(kernel).all():
        return names
    names.append("banded")
    terms = _rank_terms(kernel)
    if terms is not None and len(terms) * sum(kernel.shape) < kernel.size:
        names.append("separable")
    if _fft_exact_enough(dtype):
        names.append("fft")
    return names


def cost_estimates(kernel, geometry, batch=1):
    """{method: estimated ns} for every path 'auto' weighs for these arguments.

    Each is the path's own plan's estimate (`plan`), threads included.
    """
    dtype = kernel.dtype
    return {name: plan(name, geometry, kernel, batch, dtype).ns
            for name in _candidates(kernel, dtype)}


def _all_finite(images, fill_value=0):
    """Whether ``images`` and ``fill_value`` hold only finite numbers.

    One sum first: it is finite only if every term is (a NaN or an infinity
    makes it NaN or infinite), and costs no temporary array. Only a sum that
    overflowed needs the cell-by-cell check.
    """
    if images.dtype.kind not in "fc":
        return True
    if not np.isfinite(fill_value):
        return False
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.isfinite(np.add.reduce(images, axis=None))
                    or np.isfinite(images).all())


def _fft_surprise_free(images, geometry, dtype, fill_value=0):
    """Whether the FFT's error stays near the direct sums' on these data.

    The FFT's rounding error bounds each output by a few units of float64
    precision times the largest terms in its whole tile, where the direct
    sums' is relative to the output's own window. They differ where a tile
    holds values far larger than some window in it sees. The data are cut
    into blocks half the kernel's span on a side, each of which some window
    holds whole; the largest value over the smallest block maximum (blocks of
    zeros aside: their outputs get an absolute error at the bound instead of
    an exact 0) must stay within `FFT_RANGE` units of the result dtype's
    precision against float64's. A pass over the data, in chunks of rows.
    """
    span_h, span_w = geometry.span
    bh, bw = span_h // 2 + 1, span_w // 2 + 1
    n, height, width = images.shape
    largest, smallest = abs(fill_value), math.inf
    step = max(bh, (2 ** 20 // max(width * images.itemsize, 1)) // bh * bh)
    for top in range(0, height, step):
        chunk = np.abs(images[:, top:top + step])
        largest = max(largest, float(chunk.max()))
        rows, cols = chunk.shape[1] // bh * bh, width // bw * bw
        if rows and cols:
            blocks = chunk[:, :rows, :cols].reshape(n, rows // bh, bh, cols // bw, bw)
            maxima = blocks.max(axis=(2, 4))
            maxima = maxima[maxima > 0]
            if maxima.size:
                smallest = min(smallest, float(maxima.min()))
    if smallest == math.inf:
        return True
    allowed = FFT_RANGE * np.finfo(dtype).eps / np.finfo(np.float64).eps
    return largest <= allowed * smallest


def choose_method(kernel, geometry, batch=1, images=None, fill_value=0):
    """The path 'auto' takes, and its plan: the cheapest plan whose conditions the data meet.

    ``kernel`` is in the dtype of the computation. ``images`` (N, H, W) are
    the data, when known (their batch size then replaces ``batch``); without
    them, data that meet every condition are assumed. Only 'fft' has
    conditions: float data (its rounding error is relative to the largest
    value in a tile, which an integer near 2**63 would make useless for the
    small ones), finite (it would spread a NaN or an infinity over the whole
    tile), and not too far apart within a tile (`_fft_surprise_free`).
    'banded' and 'separable' do any strip whose input holds NaN or infinity
    tap by tap, so these reach exactly the outputs whose window holds them.

    Returns ``(method, plan)``.
    """
    dtype = kernel.dtype
    if images is not None:
        batch = images.shape[0]
    ranked = _ranked_plans(geometry, dtype.str, kernel.shape, kernel.tobytes(), batch,
                           _settings())
    for name, chosen in ranked:
        if name == "fft" and images is not None and (
                images.dtype.kind not in "fc" or not _all_finite(images, fill_value)
                or not _fft_surprise_free(images, geometry, dtype, fill_value)):
            continue
        return name, chosen
    raise AssertionError("the tap loops take every kernel")


@functools.lru_cache(maxsize=1024)
def _ranked_plans(geometry, dtype, shape, data, batch, settings):
    """((method, plan), ...) for every path 'auto' weighs, the cheapest first (cached)."""
    kernel = np.frombuffer(data, dtype=dtype).reshape(shape)
    plans = [(name, _cached_plan(name, geometry, dtype, shape, data, batch, dtype, settings))
             for name in _candidates(kernel, kernel.dtype)]
    return tuple(sorted(plans, key=lambda item: item[1].ns * (FFT_MARGIN if item[0] == "fft"
                                                              else 1)))


def convolve(matrix, kernel, geometry, padding_mode, fill_value, dtype, method="auto"):
    """Run a fast path: ``matrix`` (..., H, W) with ``kernel`` in ``dtype``.

    The entry point from ``conv2d``, which has validated every argument.
    Returns a new array of shape (..., H_out, W_out) and dtype ``dtype``.
    """
    batch_shape = matrix.shape[:-2]
    images = matrix.reshape((-1,) + matrix.shape[-2:])
    out = np.empty((images.shape[0],) + geometry.output_shape, dtype)
    source = Padded(images, geometry.padding, padding_mode, fill_value)
    if kernel.dtype.kind in "iub" and not kernel.any():      # an integer kernel of zeros
        out[...] = 0
    else:
        if method == "auto":
            method, chosen = choose_method(kernel, geometry, images=images, fill_value=fill_value)
        else:
            chosen = plan(method, geometry, kernel, images.shape[0], dtype)
        METHODS[method](source, kernel, geometry, out, chosen)
    return out.reshape(batch_shape + geometry.output_shape)
