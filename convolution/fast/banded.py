"""'banded': groups of output rows as band-matrix products, which BLAS does in one call a strip.

The idea
    Output row ``i`` is a sum over kernel rows ``a`` and columns ``b`` of
    ``k[a, b]`` times padded row ``i*sh + a*dh``, shifted by ``b*dw`` columns.
    Take ``R`` output rows at once (``Settings.band_rows``): they read
    ``R + reach`` rows of each row phase the taps read (``reach``: the largest
    row offset of a tap in its phase, ``shapes.stride_phase``). Lay each of
    those rows out once per kernel column, shifted by that column's offset
    (and split into column phases for stride > 1): ``K = (R + reach) * phases
    * columns`` shifted rows. Then the R output rows are one matrix product:
    the band ``(R, K)``, which holds the kernel's weights on its diagonals
    (`band`), times the ``(K, W_out)`` shifted rows. The groups of a strip
    share one product call: ``np.matmul`` of the band with a strided view
    ``(groups, K, W_out)`` of the shifted rows, each group ``R`` rows below the
    last, so nothing is copied twice.

    A strip's input is fetched once (each row phase, each column phase);
    then, a few groups at a time (``Settings.band_bytes`` of shifted rows, or
    four times that as planned: fewer, longer calls pay with many threads),
    its rows are laid out shifted and multiplied by the band, while they are
    still in cache.

Cost per output
    ``K`` multiply-adds in BLAS (``mac_ns`` each, dearer as the shifted rows
    outgrow the cache), about ``(R + reach) / R`` times the kh * kw of the
    tap loops (the band's zeros), but at BLAS's speed; plus a copy per kernel
    column and row phase of the input (``copy_ns``), and its fetch.

Limits
    Floats that BLAS takes (``dtypes.BLAS_DTYPES``) and finite kernels. The
    band's zeros would spread a NaN or an infinity (0 * inf is NaN), so a
    strip whose fetched input holds one is done by 'polyphase' instead: they
    reach exactly the outputs whose window holds them. Kernel rows and columns
    of zeros are left out of the band. Its memory is a strip's fetched input
    and one product's shifted rows per thread.

'separable' builds its column pass from `band` too (a one-column kernel).
"""
from typing import NamedTuple

import numpy as np

from .. import driver
from .cache import kernel_cache
from .costs import FETCH_CALLS, cell_scale, products
from .phases import finite, may_hold_nonfinite
from . import polyphase

__all__ = ["Band", "band", "cost", "plan", "run"]


class Band(NamedTuple):
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


@kernel_cache()
def band(kernel, stride, dilation, rows, sparse=True):
    """The `Band` of ``kernel`` (cached). ``sparse``: leave out its rows and columns of zeros.

    They add nothing to finite sums; the separable path keeps them, so that
    the bands of all its terms read the same rows.
    """
    (sh, sw), (dh, dw) = stride, dilation
    kh, kw = kernel.shape
    kernel_rows = [a for a in range(kh) if kernel[a].any() or not sparse] or [0]
    kernel_cols = [b for b in range(kw) if kernel[:, b].any() or not sparse] or [0]
    kernel_cols.sort(key=lambda b: (b * dw % sw, b * dw // sw))   # by column phase, then offset
    phases = sorted({a * dh % sh for a in kernel_rows})
    reach = max(a * dh // sh for a in kernel_rows)
    matrix = np.zeros((rows, rows + reach, len(phases), len(kernel_cols)), kernel.dtype)
    for a in kernel_rows:
        q, offset = a * dh % sh, a * dh // sh
        for i in range(rows):
            matrix[i, i + offset, phases.index(q)] = kernel[a, kernel_cols]
    matrix = matrix.reshape(rows, -1)
    matrix.flags.writeable = False    # cached: shared by every call with this kernel
    columns = {}
    for b in kernel_cols:
        columns.setdefault(b * dw % sw, []).append(b * dw // sw)
    columns = tuple((r, offsets[0], tuple(o - offsets[0] for o in offsets))
                    for r, offsets in columns.items())
    return Band(matrix, rows, tuple(phases), reach, columns)


def _band(kernel, geometry, s):
    return band(kernel, geometry.stride, geometry.dilation, s.band_rows)


def _even_step(values):
    """The common difference of ``values`` if they are evenly spaced, else None."""
    steps = {b - a for a, b in zip(values, values[1:])}
    return steps.pop() if len(steps) == 1 else 0 if not steps else None


def _layout(band_, width, itemsize, product_bytes):
    """Per row of a strip: the cells fetched, and the shifted cells; the groups a product takes."""
    phases = len(band_.phases)
    fetched = phases * sum(width + offsets[-1] for _, _, offsets in band_.columns)
    shifted = phases * sum(len(offsets) for _, _, offsets in band_.columns) * width
    groups = max(1, product_bytes // (shifted * itemsize * band_.rows))
    return fetched, shifted, groups


def cost(width, fetched, shifted, band_width, dtype, s):
    """ns per output row.

    Per output row: ``fetched`` cells of the padded input fetched,
    ``shifted`` cells laid out shifted, and a band of ``band_width`` columns
    times as many shifted rows: that many multiply-adds per output cell.
    """
    itemsize = np.dtype(dtype).itemsize
    return (cell_scale(dtype) * (fetched * s.fetch_ns + shifted * s.copy_ns)
            + products(width * band_width, band_width * width * itemsize, dtype, s))


def plan(geometry, kernel, batch, dtype, s):
    """The cheaper of two plans: cache-sized products, or four times larger ones.

    Each product is a few NumPy calls, each of which holds the GIL while it
    starts: with many threads, larger products (fewer calls) can beat the
    cache's preference for small ones.
    """
    band_ = _band(kernel, geometry, s)
    height, width = geometry.output_shape
    copies = sum(1 if _even_step(offsets) is not None else len(offsets)
                 for _, _, offsets in band_.columns) * len(band_.phases)
    out_bytes = batch * height * width * dtype.itemsize
    plans = []
    for product_bytes, factor in ((s.band_bytes, 1.0), (4 * s.band_bytes, s.band_large_cost)):
        fetched, shifted, groups = _layout(band_, width, dtype.itemsize, product_bytes)
        work = driver.Work(
            row_bytes=fetched * dtype.itemsize, extra_rows=band_.reach + band_.rows - 1,
            rows_multiple=band_.rows,
            calls=len(band_.phases) * len(band_.columns) * (FETCH_CALLS + 2),
            row_calls=(copies + 2) / (groups * band_.rows), fixed_ns=2 * s.call_ns,
            row_ns=factor * cost(width, fetched, shifted, band_.matrix.shape[1], dtype, s))
        chosen = driver.plan(batch, height, out_bytes, work, s)
        # Every thread's products together within the output's size (the memory promise).
        if product_bytes == s.band_bytes or chosen.threads * product_bytes <= out_bytes:
            plans.append(chosen._replace(detail=min(product_bytes,
                                                    out_bytes // chosen.threads)))
    return min(plans, key=lambda plan: plan.ns)


def run(source, kernel, geometry, out, plan):
    """Fill ``out`` (N, H_out, W_out) from ``source`` (a Padded) as planned."""
    band_ = _band(kernel, geometry, plan.settings)
    sh, sw = geometry.stride
    width, dtype = out.shape[2], out.dtype
    itemsize = dtype.itemsize
    phases, rows_ = len(band_.phases), band_.rows
    shifts = sum(len(offsets) for _, _, offsets in band_.columns)
    _, _, per_product = _layout(band_, width, itemsize, plan.detail)
    widest = max(width + offsets[-1] for _, _, offsets in band_.columns)
    depth = band_.matrix.shape[1]
    # Per column phase: its block's width, its first shift in `shifted`, the step of its shifts.
    layout, k = [], 0
    for r, first, offsets in band_.columns:
        layout.append((r, first, offsets, width + offsets[-1], k, _even_step(offsets)))
        k += len(offsets)
    check = may_hold_nonfinite(source)
    fallback = []

    def strip(arena, batch, rows):
        n = len(range(*batch.indices(out.shape[0])))
        count = rows.stop - rows.start
        groups = -(-count // rows_)
        phase_rows = groups * rows_ + band_.reach
        blocks = []
        flags = arena.take((n * phase_rows * widest,), np.bool_) if check else None
        for q in band_.phases:
            first_row = rows.start * sh + q
            row_range = range(first_row, first_row + sh * phase_rows, sh)
            for r, first, offsets, block_width, _, _ in layout:
                block = source.region(
                    batch, row_range, range(r + sw * first, r + sw * (first + block_width), sw),
                    dtype, out=arena.take((n, phase_rows, block_width), dtype))
                if check and not finite(flags, block):
                    if not fallback:
                        fallback.append(polyphase.strip_function(source, kernel, geometry, out))
                    return fallback[0](arena, batch, rows)
                blocks.append(block)
        taken = min(per_product, groups)
        shifted = arena.take((n, taken * rows_ + band_.reach, phases, shifts, width), dtype)
        target = out[batch, rows]
        for g in range(0, groups, taken):
            here = min(taken, groups - g)         # groups in this product
            top, lines = g * rows_, here * rows_ + band_.reach
            b = 0
            for p in range(phases):
                for _, _, offsets, _, s, step in layout:
                    block = blocks[b]
                    b += 1
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
            operands = np.ndarray((n, here, depth, width), dtype, shifted, 0,
                                  (shifted.strides[0], shifted.strides[1] * rows_,
                                   width * itemsize, itemsize))
            whole = min(here * rows_, count - top) // rows_
            if whole:
                np.matmul(band_.matrix, operands[:, :whole],
                          out=target[:, top:top + whole * rows_].reshape(n, whole, rows_, width))
            if whole < here:      # the image's last rows: part of a group
                last = np.matmul(band_.matrix, operands[:, whole:])
                target[:, top + whole * rows_:] = last[:, 0, :count - top - whole * rows_]

    with driver.single_threaded_blas(plan.settings.limit_blas):
        driver.run(strip, plan)
