"""'separable': a kernel of low rank as column filters followed by row filters.

The idea
    A kernel of rank r is a sum of r outer products ``u v^T`` (its SVD, or an
    exact factorisation into integer vectors: Sobel, box and binomial kernels
    have one, `rank_terms`). Correlating with ``u v^T`` is correlating the
    columns with ``u`` (a kh-tap filter), then the rows of that with ``v``
    (a kw-tap filter). For floats both passes are matrix products: the
    column pass is 'banded' with the one-column kernel ``u`` (``banded.band``;
    an unpadded input's rows are read in place), the row pass multiplies
    blocks of ``depth`` columns of its result by a Toeplitz matrix of ``v``
    (``Settings.separable_block`` output columns a block). For integers both
    passes are flat multiply-adds, exactly.

Cost per output
    ``r * (kh + kw)`` multiply-adds instead of ``kh * kw``: a 9 x 9 Gaussian
    (rank 1) costs 18 instead of 81. For floats in BLAS, the band's and the
    Toeplitz matrix's zeros come on top, as in 'banded'.

Limits
    Integer kernels only when they are the outer product of two integer
    vectors (results stay exact); float kernels when their rank-1 terms sum
    to the kernel within its precision (not for NaN or infinity, nor for
    dtypes LAPACK does not take). 'auto' weighs it only where
    ``r * (kh + kw) < kh * kw``. A strip whose input holds NaN or infinity
    is done tap by tap ('polyphase'), as in 'banded'.
"""
import math
from typing import NamedTuple

import numpy as np

from .. import driver
from ..dtypes import BLAS_DTYPES
from .cache import kernel_cache
from .costs import FETCH_CALLS, cell_scale, products
from .phases import finite, may_hold_nonfinite, multiply_add, offsets, ones, padded_width, \
    phase_blocks, phases
from . import banded, polyphase

__all__ = ["rank_terms", "terms", "cost", "cost_products", "plan", "run"]


@kernel_cache()
def rank_terms(kernel):
    """The kernel as a short sum of outer products ``u v^T``, or None (cached, read-only).

    Integers: only an exact factorisation into integer vectors, so that
    integer results stay exact. Floats: an exact outer product where the
    kernel is one, so that integer-valued data and kernels keep exactly
    integer-valued sums; else the SVD, keeping the singular values above the
    kernel's rounding level (``max(kh, kw) * eps * s_max``, NumPy's
    ``matrix_rank`` rule), so the terms sum to the kernel within its own
    precision.

    The SVD is taken of the kernel divided by its largest entry, in float64
    (complex128), and each term's scale split evenly between ``u`` and
    ``v``: a kernel near the dtype's largest value (float32 times 1e38)
    would otherwise overflow inside the SVD and give terms that sum to
    something else. Terms that still do not sum to the kernel within a few
    rounding units (or that overflow) give None. So do kernels holding NaN or
    infinity, and dtypes LAPACK does not take (longdouble): no SVD is tried.
    """
    found = _rank_terms(kernel)
    for term in found or ():
        for vector in term:
            vector.flags.writeable = False
    return found


def _rank_terms(kernel):
    if kernel.dtype.kind in "iub":
        rows = np.flatnonzero(kernel.any(axis=1))
        if len(rows) == 0:
            return None
        row = kernel[rows[0]]
        v = row // np.gcd.reduce(row)     # primitive: its entries share no factor
        j = np.flatnonzero(v)[0]
        u = kernel[:, j] // v[j]
        return [(u, v)] if np.array_equal(np.outer(u, v), kernel) else None
    if kernel.dtype not in BLAS_DTYPES or not np.isfinite(kernel).all():
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
        found = [((left[:, t] * (math.sqrt(singular[t]) * root)).astype(kernel.dtype),
                  (right[t] * (math.sqrt(singular[t]) * root)).astype(kernel.dtype))
                 for t in range(rank)]
        # The terms as they will be used, summed in float64 relative to the kernel's scale.
        total = sum(np.outer(u.astype(wide) / root, v.astype(wide) / root) for u, v in found)
        error = np.max(np.abs(total - kernel.astype(wide) / scale))
    if not error <= 4 * max(kernel.shape) ** 2 * np.finfo(kernel.dtype).eps:
        return None
    return found


def terms(kernel):
    """`rank_terms`, or a ValueError for method='separable' where there are none."""
    found = rank_terms(kernel)
    if found is not None:
        return found
    if kernel.dtype.kind in "iub":
        raise ValueError("method='separable' needs a float kernel, or an integer kernel of "
                         "rank 1 (the outer product of two integer vectors), got an integer "
                         f"kernel of rank {np.linalg.matrix_rank(kernel)}")
    if kernel.dtype not in BLAS_DTYPES:
        raise ValueError(f"method='separable' factors the kernel with LAPACK, which does not "
                         f"take {kernel.dtype}; use method='auto'")
    raise ValueError(f"method='separable' could not factor this {kernel.dtype} kernel into "
                     f"rank-1 terms that sum to it within its precision (it holds NaN or "
                     f"infinity, or its terms would overflow); use method='auto'")


def _tap_layout(geometry, kernel):
    """The terms, and for each the taps of its column pass and of its row pass, by phase."""
    found = terms(kernel)
    (sh, sw), (dh, dw) = geometry.stride, geometry.dilation
    kh, kw = kernel.shape
    # The column pass reads row phases of the input, the row pass column phases
    # of the column pass's result; each term has the same phases, other weights.
    columns = [phases([((a, 0), u[a]) for a in range(kh)], (sh, 1), (dh, 1)) for u, _ in found]
    rows_ = [phases([((0, b), v[b]) for b in range(kw)], (1, sw), (1, dw)) for _, v in found]
    return found, columns, rows_


class Passes(NamedTuple):
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


@kernel_cache()
def _passes(kernel, stride, dilation, width, rows, block):
    """The `Passes` of a float kernel (cached)."""
    (sh, sw), (dh, dw) = stride, dilation
    kh, kw = kernel.shape
    blocks = -(-width // block)
    depth = (block - 1) * sw + dw * (kw - 1) + 1
    columns = (blocks * block - 1) * sw + dw * (kw - 1) + 1
    bands, toeplitz = [], []
    for u, v in rank_terms(kernel):
        bands.append(banded.band(u.reshape(kh, 1), (sh, 1), (dh, 1), rows, False))
        row = np.zeros((depth, block), kernel.dtype)
        for b in range(kw):
            row[np.arange(block) * sw + b * dw, np.arange(block)] = v[b]
        row.flags.writeable = False
        toeplitz.append(row)
    return Passes(tuple(band.matrix for band in bands), tuple(toeplitz), bands[0].phases,
                  bands[0].reach, rows, block, blocks, columns, depth)


def passes(kernel, geometry, s):
    """The `Passes` of a float kernel for this geometry and these settings."""
    return _passes(kernel, geometry.stride, geometry.dilation, geometry.output_shape[1],
                   s.band_rows, s.separable_block)


def cost(padded, row_width, kernel_shape, count, stride, dtype, s):
    """ns per output row tap by tap (integers): per term a column pass and a row pass."""
    (kh, kw), (sh, sw) = kernel_shape, stride
    per_term = padded * kh * sh + row_width * kw + (row_width * sw if sw > 1 else 0)
    return cell_scale(dtype) * (count * per_term * s.flat_ns + sh * padded * s.fetch_ns)


def cost_products(columns, width, phases_, band_width, band_rows, depth, count, dtype, s):
    """ns per output row on floats: two matrix products per term.

    Per output row: a row of each of ``phases_`` row phases fetched
    (``columns`` cells), per term a column pass (a band of ``band_width``
    columns, one product per ``band_rows`` rows) and a row pass (``depth``
    multiply-adds per output cell).
    """
    itemsize = np.dtype(dtype).itemsize
    return (cell_scale(dtype) * phases_ * columns * s.fetch_ns
            + count * (products(columns * band_width, band_width * columns * itemsize, dtype, s)
                       + products(width * depth, depth * band_rows * itemsize, dtype, s)))


def plan(geometry, kernel, batch, dtype, s):
    """Strips of output rows; a multiple of the band's rows for floats."""
    found = terms(kernel)
    (sh, sw), (span_h, span_w) = geometry.stride, geometry.span
    kh, kw = kernel.shape
    height, width = geometry.output_shape
    out_bytes = batch * height * width * dtype.itemsize
    if dtype in BLAS_DTYPES:
        p = passes(kernel, geometry, s)
        count = len(p.phases)
        work = driver.Work(
            row_bytes=(count + 2) * p.width * dtype.itemsize,
            extra_rows=p.reach + p.rows - 1, rows_multiple=p.rows,
            calls=count * (FETCH_CALLS + 2) + 4 * len(found) + 2, fixed_ns=2 * s.call_ns,
            row_ns=cost_products(p.width, width, count, p.bands[0].shape[1], p.rows, p.depth,
                                 len(found), dtype, s))
        return driver.plan(batch, height, out_bytes, work, s)
    padded = padded_width(geometry)
    row_width = width + span_w // sw
    work = driver.Work(
        row_bytes=(padded * (sh + 2) + row_width * (sw + 3)) * dtype.itemsize,
        extra_rows=span_h // sh, calls=len(found) * (2 * (kh + kw) + 2) + sh * FETCH_CALLS,
        row_ns=cost(padded, row_width, kernel.shape, len(found), geometry.stride, dtype, s))
    return driver.plan(batch, height, out_bytes, work, s)


def run(source, kernel, geometry, out, plan):
    """Fill ``out`` (N, H_out, W_out) from ``source`` (a Padded) as planned."""
    if out.dtype in BLAS_DTYPES:
        with driver.single_threaded_blas(plan.settings.limit_blas):
            driver.run(_products_strip(source, kernel, geometry, out, plan.settings), plan)
    else:
        driver.run(_taps_strip(source, kernel, geometry, out), plan)


def _products_strip(source, kernel, geometry, out, s):
    """One strip of the separable path as two matrix products per term."""
    p = passes(kernel, geometry, s)
    sh, sw = geometry.stride
    width, dtype = out.shape[2], out.dtype
    itemsize = dtype.itemsize
    count, rows_, block = len(p.phases), p.rows, p.block
    depth = p.bands[0].shape[1]
    whole_blocks = width // block
    check = may_hold_nonfinite(source)
    # Terms without weights 0: a window's NaN or infinity reaches its own output
    # through both passes (w * NaN is NaN for w != 0), and so does a column
    # pass that overflowed; the results are checked instead of the input
    # and the column passes (measured: 6% of a 9 x 9 Gaussian's time, float32).
    results = check and all(bool((u != 0).all() and (v != 0).all())
                            for u, v in rank_terms(kernel))
    taps_instead = polyphase.fallback(source, kernel, geometry, out)
    # Unpadded, at row stride 1, in the data's dtype: the column pass reads the input's
    # rows in place (their copy took a fifth of a 9 x 9 Gaussian's time at 1024 x 1024).
    # It reads the input's own columns; those beyond (the row pass's last block) are
    # zeros in its result, as in a copy's. The rows its last group reads past the
    # strip's windows are the next rows' cells, whose sums no output keeps; a strip
    # whose rows would pass the end of the input's memory is fetched.
    matrix = source.matrix
    in_place = (sh == 1 and geometry.padding == ((0, 0), (0, 0))
                and source.shape == matrix.shape[1:]      # not a shifted view (float16 blocks)
                and matrix.dtype == dtype and matrix.flags.c_contiguous)
    used = min(matrix.shape[2], p.width)      # the columns of the input the passes read

    def strip(arena, batch, rows):
        if not results:
            if products(arena, batch, rows) is None:
                taps_instead(arena, batch, rows)
            return
        # Any overflow or invalid operation in here sends the strip to the tap
        # loops, which raise NumPy's warnings as they would.
        with np.errstate(over="ignore", invalid="ignore"):
            target = products(arena, batch, rows)
            done = target is not None and (
                bool(np.isfinite(np.matmul(target, ones(width, dtype.str))).all())
                or bool(np.isfinite(target).all()))
        if not done:
            taps_instead(arena, batch, rows)

    def products(arena, batch, rows):
        """The strip's results (its view of ``out``), or None for the tap loops."""
        n = len(range(*batch.indices(out.shape[0])))
        lines = rows.stop - rows.start
        groups = -(-lines // rows_)
        phase_rows = groups * rows_ + p.reach
        first_image = batch.indices(matrix.shape[0])[0]
        column_pass = arena.take((n, groups, rows_, p.width), dtype)
        flags = (arena.take((n * phase_rows * count * max(p.width, matrix.shape[2]),), np.bool_)
                 if check and not results else None)
        if in_place and ((first_image + n - 1) * matrix.shape[1] + rows.start + phase_rows
                         <= matrix.shape[0] * matrix.shape[1]):
            if flags is not None and not finite(
                    flags, matrix[batch, rows.start:rows.start + lines + p.reach]):
                return None
            operands = np.ndarray((n, groups, depth, used), dtype, matrix,
                                  first_image * matrix.strides[0] + rows.start * matrix.strides[1],
                                  (matrix.strides[0], rows_ * matrix.strides[1],
                                   matrix.strides[1], itemsize))
            passes_out = column_pass[..., :used]
            column_pass[..., used:] = 0
        else:
            fetched = arena.take((n, phase_rows, count, p.width), dtype)
            for k, q in enumerate(p.phases):
                first = rows.start * sh + q
                source.region(batch, range(first, first + sh * phase_rows, sh),
                              range(p.width), dtype, out=fetched[:, :, k])
            if flags is not None and not finite(flags, fetched):
                return None
            operands = np.ndarray((n, groups, depth, p.width), dtype, fetched, 0,
                                  (fetched.strides[0], rows_ * count * p.width * itemsize,
                                   p.width * itemsize, itemsize))
            passes_out = column_pass
        # Row pass, block j: `depth` columns of the column pass from j * block * sw on.
        row_view = np.ndarray((n, p.blocks, lines, p.depth), dtype, column_pass, 0,
                              (column_pass.strides[0], block * sw * itemsize,
                               p.width * itemsize, itemsize))
        target = out[batch, rows]
        # The output's whole blocks of columns, as (n, blocks, rows, block): a view.
        blocks_view = target[..., :whole_blocks * block].reshape(
            n, lines, whole_blocks, block).transpose(0, 2, 1, 3)
        partial = arena.take((n, 1, lines, block), dtype) if width % block else None
        summed = (arena.take((n, whole_blocks, lines, block), dtype)
                  if len(p.bands) > 1 and whole_blocks else None)
        for t, (band, toeplitz) in enumerate(zip(p.bands, p.toeplitz)):
            np.matmul(band, operands, out=passes_out)
            # A column pass that overflowed holds infinities, which the row pass's
            # zeros would turn into NaN: such a strip is done tap by tap.
            if flags is not None and not finite(flags, column_pass):
                return None
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
        return target

    return strip


def _taps_strip(source, kernel, geometry, out):
    """One strip of the separable path tap by tap, on flat phases (exact for integers)."""
    found, columns, rows_ = _tap_layout(geometry, kernel)
    (sh, sw), (span_h, span_w) = geometry.stride, geometry.span
    width = geometry.output_shape[1]
    padded = source.shape[1]
    extra_rows = span_h // sh
    row_width = width + span_w // sw

    def strip(arena, batch, rows):
        n_rows = rows.stop - rows.start + extra_rows
        blocks = phase_blocks(arena, source, batch, rows.start * sh, n_rows, padded,
                              columns[0], (sh, 1), out.dtype)
        column_pass = arena.take(next(iter(blocks.values())).shape, out.dtype)
        scratch = arena.take(column_pass.shape, out.dtype)
        shape = column_pass.shape[:2] + (row_width,)
        result, partial, row_scratch = (arena.take(shape, out.dtype) for _ in range(3))
        col_blocks = {r: arena.take(shape, out.dtype) for _, r in rows_[0]} if sw > 1 else {}
        target, last = out[batch, rows], len(found) - 1
        for t in range(len(found)):
            multiply_add(column_pass, offsets(columns[t], padded, blocks), scratch)
            if sw == 1:    # row_width == padded: the column pass is the only phase
                phase_blocks_ = {(0, 0): column_pass}
            else:
                phase_blocks_ = {}
                for _, r in rows_[t]:
                    block = phase_blocks_[0, r] = col_blocks[r]
                    part = column_pass[:, :, r::sw][:, :, :row_width]
                    block[:, :, :part.shape[2]] = part
                    block[:, :, part.shape[2]:] = 0
            row_terms = offsets(rows_[t], row_width, phase_blocks_)
            if t < last:
                multiply_add(result if t == 0 else partial, row_terms, row_scratch)
                if t:
                    result += partial
            else:    # the last term goes straight into the output, with the others' sum
                multiply_add(partial, row_terms, row_scratch, out=target)
                if last:
                    target += result[:, :target.shape[1], :width]

    return strip
