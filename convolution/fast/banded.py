"""'banded': output rows in groups as band-matrix products, tile by tile, through BLAS.

The idea
    Output row ``i`` is a sum over kernel rows ``a`` and columns ``b`` of
    ``k[a, b]`` times padded row ``i*sh + a*dh``, shifted by ``b*dw`` columns.
    Take ``R`` output rows at once (``Settings.band_rows``): they read
    ``R + reach`` rows of each row phase the taps read (``reach``: the largest
    row offset of a tap in its phase, ``geometry.stride_phase``). Lay each of
    those rows out once per kernel column, shifted by that column's offset
    (and split into column phases for stride > 1): ``K = (R + reach) * phases
    * columns`` shifted rows. Then the R output rows are one matrix product:
    the band ``(R, K)``, which holds the kernel's weights on its diagonals
    (`band`), times the ``(K, columns)`` shifted rows. The groups of a strip
    share one product call: ``np.matmul`` of the band with a strided view
    ``(groups, K, columns)`` of the shifted rows, each group ``R`` rows below
    the last, so nothing is copied twice.

    The output is cut into strips of rows (the driver's tasks) and each strip
    into tiles of columns (`_tile_columns`), so that every product stays small
    and its operands in cache however wide the image: one group's shifted
    rows are at most ``Settings.band_tile_bytes`` (256 KiB: K * columns *
    itemsize), and a product's groups at most ``Settings.band_bytes`` of
    them. Products that grow with the image's width leave BLAS's kernels for
    small matrices and the cache together: that made the cost of an output
    cell grow 2 to 4 times from 1024 to 8192 columns, which tiles keep flat.
    Where one group's shifted rows of the whole width are within
    ``Settings.band_tile_from`` (1 MiB: a current core's L2 cache) they stay
    in cache untiled, and tiles would only add calls: the plan then keeps
    whole-width strips (`_plan_whole`; ``banded_rows.py`` runs them, most
    groups reading the input in place).
    Tiles that read no border read the input in place (with column stride 1);
    the edge tiles, just wide enough to hold the columns that read the left
    and right borders, and the strips at the top and bottom, fetch a copy of
    their input with its border (`padding.Padded`).

Cost per output
    ``K / R`` multiply-adds in BLAS (``mac_ns`` each), about ``(R + reach) /
    R`` times the kh * kw of the tap loops (the band's zeros), but at BLAS's
    speed; plus a copy per kernel column and row phase of the input into the
    shifted rows (``copy_ns``), in cache; the fetch of the edge tiles only;
    and the NaN gate, one sum over the input. A few NumPy calls per product.

Limits
    Floats that BLAS takes (``dtypes.BLAS_DTYPES``) and finite kernels. The
    band's zeros would spread a NaN or an infinity (0 * inf is NaN), so a
    strip whose input holds one is done by 'polyphase' instead: they reach
    exactly the outputs whose window holds them. The gate is a sum (finite
    only if every term is; cell by cell only where it overflowed), never a
    separate pass that writes flags. For a kernel without weights 0 it sums
    each product's results, row by row, as they leave them in the cache (a
    product with ones), and checks the sums once a strip: a window's NaN or
    infinity times a nonzero weight shows in its own output, whatever BLAS
    does with the band's zeros. Else it sums what each tile reads (its
    fetched block, or in place its windows); and for a kernel with rows or
    columns of zeros, which the band leaves out, each strip's windows whole
    first (0 * NaN is NaN in the tap loops too). Its memory is a strip's edge
    tiles and one product's shifted rows per thread.

'separable' builds its column pass from `band` too (a one-column kernel).
"""
from typing import NamedTuple

import numpy as np

from .. import driver
from .cache import kernel_cache
from .costs import FETCH_CALLS, cell_scale, products
from .phases import (all_finite, band_products, even_step, group_operands, may_hold_nonfinite,
                     padded_width)
from . import banded_rows, polyphase

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
    #: No kernel row or column of zeros: the band reads every cell of every window.
    dense: bool = True
    #: No weight 0: a window's NaN or infinity shows in its own output.
    nonzero: bool = True


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
    return Band(matrix, rows, tuple(phases), reach, columns,
                bool(kernel.any(axis=1).all() and kernel.any(axis=0).all()),
                bool((kernel != 0).all()))


def _band(kernel, geometry, s):
    return band(kernel, geometry.stride, geometry.dilation, s.band_rows)


def _tile_columns(band_, geometry, itemsize, s):
    """The output columns' tiles, as (start, stop) pairs: narrow ones at the borders.

    A tile is as wide as one group's shifted rows within
    ``Settings.band_tile_bytes`` allow (K * columns * itemsize bytes: the
    products stay small and their operands in cache whatever the image's
    width), the interior ones of equal width. A tile that reads a border
    (padding) needs a copy of its input fetched with it; the others read the
    input in place. So the first and last tiles are just wide enough to hold
    the columns that read the left and right borders (at least 64, so that
    their products are not slivers), and the rest read no border at all.
    """
    width = geometry.output_shape[1]
    most = max(64, s.band_tile_bytes // (band_.matrix.shape[1] * itemsize) // 16 * 16)
    if width <= most:       # one tile: edge tiles beside it would cost more calls than they save
        return ((0, width),)
    low, high = _inside(band_, geometry) if _reads_in_place(geometry) else (0, 0)
    edges = [0]
    if low:
        edges.append(max(low, 64))
    end = min(high, width - 64) if high < width else width
    if end - edges[-1] < 64:          # no interior worth a tile of its own
        edges = [0]
        end = 0
    else:
        count = -(-(end - edges[-1]) // most)
        step = -(-(end - edges[-1]) // count)
        edges.extend(range(edges[-1] + step, end, step))
        edges.append(end)
    if edges[-1] < width:
        count = -(-(width - edges[-1]) // most)
        step = -(-(width - edges[-1]) // count)
        edges.extend(range(edges[-1] + step, width, step))
        edges.append(width)
    return tuple(zip(edges, edges[1:])) or ((0, 0),)


def _reads_in_place(geometry):
    """Whether tiles that read no border read the input in place.

    Not with column stride > 1: each shifted copy would then read the input
    with a stride, where one fetch of the stride phase makes them all
    contiguous (measured: in place was slower, 5.2 against 3.9 ns an output
    for a 3x3 kernel, stride 2, dilation 2, float32).
    """
    return geometry.stride[1] == 1


def _inside(band_, geometry):
    """The output columns ``low`` to ``high - 1`` read no border: only the input's own columns."""
    sw = geometry.stride[1]
    left = geometry.padding[1][0]
    last = left + geometry.input_shape[1] - 1       # the last padded column inside
    low = max(max(0, -(-(left - r - sw * first) // sw)) for r, first, _ in band_.columns)
    high = min((last - r) // sw - first - offsets[-1] + 1 for r, first, offsets in band_.columns)
    return low, high


def _layout(band_, tile, itemsize, product_bytes):
    """Per row of a tile: the cells fetched, and the shifted cells; the groups a product takes."""
    phases = len(band_.phases)
    fetched = phases * sum(tile + offsets[-1] for _, _, offsets in band_.columns)
    shifted = phases * sum(len(offsets) for _, _, offsets in band_.columns) * tile
    groups = max(1, product_bytes // max(1, shifted * itemsize * band_.rows))
    return fetched, shifted, groups


def cost(width, fetched, shifted, band_width, operand_bytes, checked, dtype, s):
    """ns per output row.

    Per output row: ``fetched`` cells of the padded input fetched (border
    tiles only), ``checked`` cells of the input summed (the NaN gate),
    ``shifted`` cells laid out shifted, and a band of ``band_width`` columns
    times as many shifted rows: that many multiply-adds per output cell, in
    products whose operand has ``operand_bytes``.
    """
    return (cell_scale(dtype) * (fetched * s.fetch_ns + shifted * s.copy_ns
                                 + checked * s.flat_ns / 2)
            + products(width * band_width, operand_bytes, dtype, s))


def plan(geometry, kernel, batch, dtype, s):
    """Strips of output rows, cut into tiles of columns; the cheaper of two product sizes.

    Each product is a few NumPy calls, each of which holds the GIL while it
    starts: with many threads, larger products (fewer calls) can beat the
    cache's preference for small ones.
    """
    band_ = _band(kernel, geometry, s)
    height, width = geometry.output_shape
    itemsize = dtype.itemsize
    if band_.matrix.shape[1] * width * itemsize <= s.band_tile_from:
        return _plan_whole(band_, geometry, kernel, batch, dtype, s)
    tiles = _tile_columns(band_, geometry, itemsize, s)
    tile = max(stop - start for start, stop in tiles)
    # Tiles that read a border, and the columns they cover: only they fetch a copy.
    low, high = _inside(band_, geometry) if _reads_in_place(geometry) else (0, 0)
    border = [stop - start for start, stop in tiles if start < low or stop > high]
    blocks = len(band_.phases) * len(band_.columns)
    copies = sum(1 if even_step(offsets) is not None else len(offsets)
                 for _, _, offsets in band_.columns) * len(band_.phases)
    out_bytes = batch * height * width * itemsize
    checked = (len(band_.phases) * len(band_.columns) * padded_width(geometry)
               // geometry.stride[1])
    plans = []
    for product_bytes, factor in ((s.band_bytes, 1.0), (4 * s.band_bytes, s.band_large_cost)):
        fetched, shifted, groups = _layout(band_, tile, itemsize, product_bytes)
        work = driver.Work(
            # A strip fetches one tile at a time, but falls back to 'polyphase'
            # over its whole width: its buffers are those of the whole row.
            row_bytes=_layout(band_, width, itemsize, product_bytes)[0] * itemsize,
            extra_rows=band_.reach + band_.rows - 1, rows_multiple=band_.rows,
            calls=1 + (len(tiles) + len(border) * FETCH_CALLS) * blocks,
            row_calls=sum((copies + 2) / (_layout(band_, stop - start, itemsize,
                                                  product_bytes)[2] * band_.rows)
                          for start, stop in tiles),
            fixed_ns=2 * s.call_ns,
            row_ns=factor * cost(width, fetched * sum(border) / max(tile, 1),
                                 shifted * width / max(tile, 1),
                                 band_.matrix.shape[1], band_.matrix.shape[1] * tile * itemsize,
                                 checked, dtype, s))
        chosen = driver.plan(batch, height, out_bytes, work, s)
        # Every thread's products together within the output's size (the memory promise).
        if product_bytes == s.band_bytes or chosen.threads * product_bytes <= out_bytes:
            plans.append(chosen._replace(detail=(min(product_bytes,
                                                     out_bytes // chosen.threads), tiles)))
    return min(plans, key=lambda plan: plan.ns)


def _plan_whole(band_, geometry, kernel, batch, dtype, s):
    """As `plan`, for strips not cut into tiles: products as wide as the output.

    Where one group's shifted rows fit ``Settings.band_tile_from`` (they and
    the product stay in cache), tiles would only add calls, and a strip's
    fetched input is checked for NaN and infinity as it is fetched.
    """
    height, width = geometry.output_shape
    copies = sum(1 if even_step(offsets) is not None else len(offsets)
                 for _, _, offsets in band_.columns) * len(band_.phases)
    out_bytes = batch * height * width * dtype.itemsize
    plans = []
    # Products of twice the tiles' size where rows may be read in place (column
    # stride 1): each takes a few NumPy calls, which whole rows in cache pay for
    # better (measured, 1024 x 1024 float32: 11x11 15% faster, 3x3 10%; four
    # times as large lost 10 to 25%). Strided strips fetch a block beside them,
    # and keep the tiles' size (measured: 3% faster than twice it).
    first = 2 * s.band_bytes if geometry.stride[1] == 1 else s.band_bytes
    for product_bytes, factor in ((first, 1.0), (4 * s.band_bytes, s.band_large_cost)):
        fetched, shifted, groups = _layout(band_, width, dtype.itemsize, product_bytes)
        work = driver.Work(
            row_bytes=fetched * dtype.itemsize, extra_rows=band_.reach + band_.rows - 1,
            rows_multiple=band_.rows,
            calls=len(band_.phases) * len(band_.columns) * (FETCH_CALLS + 2),
            row_calls=(copies + 2) / (groups * band_.rows), fixed_ns=2 * s.call_ns,
            row_ns=factor * cost(width, fetched, shifted, band_.matrix.shape[1],
                                 band_.matrix.shape[1] * width * dtype.itemsize, 0, dtype, s))
        chosen = driver.plan(batch, height, out_bytes, work, s)
        # Every thread's products together within the output's size (the memory promise),
        # or, as the strips, ``min_strip_bytes`` a thread on small outputs: the products
        # of a 256 x 256 call are then one or two, not eight (measured, 3x3 stride 2
        # dilation 2 'same', float32: 1.17 times faster), and their border cells few.
        if not plans or chosen.threads * product_bytes <= out_bytes:
            plans.append(chosen._replace(detail=min(product_bytes, max(
                out_bytes // chosen.threads, s.min_strip_bytes))))
    chosen = min(plans, key=lambda plan: plan.ns)
    # What the strips need from the band and the geometry, worked out once with the plan.
    per_product = _layout(band_, width, dtype.itemsize, chosen.detail)[2]
    strip_rows = max((rows.stop - rows.start for _, rows in chosen.tasks), default=1)
    return chosen._replace(detail=(chosen.detail, None, banded_rows.layout(
        band_, geometry, kernel.shape[0], dtype, per_product, strip_rows, s)))


class _Block(NamedTuple):
    """Where a block of the padded input lies: in ``base`` (C-contiguous) from byte ``offset``.

    ``strides`` (image, row, column), in bytes. A tile inside the image reads
    the input itself (``base`` is the input, the strides step over the
    stride phases); a tile at a border reads a copy fetched with its border.
    """
    base: np.ndarray
    offset: int
    strides: tuple

    def view(self, shape, offset, strides):
        return np.ndarray(shape, self.base.dtype, self.base, self.offset + offset, strides)


def run(source, kernel, geometry, out, plan):
    """Fill ``out`` (N, H_out, W_out) from ``source`` (a Padded) as planned."""
    if out.size == 0:
        return
    if plan.detail[1] is None:
        return banded_rows.run(source, kernel, geometry, out, plan)
    band_ = _band(kernel, geometry, plan.settings)
    sh, sw = geometry.stride
    (top_pad, _), (left_pad, _) = geometry.padding
    matrix = source.matrix
    height, width = matrix.shape[1:]
    dtype = out.dtype
    itemsize = dtype.itemsize
    phases, rows_ = len(band_.phases), band_.rows
    shifts = sum(len(offsets) for _, _, offsets in band_.columns)
    product_bytes, tiles = plan.detail
    tile = max(stop - start for start, stop in tiles)
    # Groups per product, per tile: narrow edge tiles take more of them, so
    # that every product's shifted rows are about product_bytes.
    per_product = [_layout(band_, stop - start, itemsize, product_bytes)[2]
                   for start, stop in tiles]
    # Per column phase: its first shift in `shifted`, the step of its shifts.
    layout, k = [], 0
    for r, first, offsets in band_.columns:
        layout.append((r, first, offsets, k, even_step(offsets)))
        k += len(offsets)
    in_place = _reads_in_place(geometry) and matrix.dtype == dtype and matrix.flags.c_contiguous
    check = may_hold_nonfinite(source)
    if check and not np.isfinite(source.fill_value):
        in_place = False         # every tile is fetched, and checked as it is
    # Kernel rows and columns of zeros the band leaves out, or none: the
    # band then reads every cell of every window, and what it fetches is what to check.
    dense = band_.dense
    # No weight 0: every window's NaN or infinity shows in its own output (w * NaN is
    # NaN for w != 0, whatever BLAS does with the band's zeros), so the products'
    # results are checked instead of their input, as they leave them in the cache:
    # their row sums, a product with ones, checked once a strip.
    results = check and band_.nonzero
    span_h, span_w = geometry.span
    window_phases = sorted({a * geometry.dilation[0] % sh for a in range(kernel.shape[0])})

    def batch_size(batch):
        return len(range(*batch.indices(out.shape[0])))

    tap_by_tap = polyphase.fallback(source, kernel, geometry, out)

    def _gate(batch, first, last):
        """Whether padded rows ``first`` to ``last`` (inside the image) hold only finite numbers.

        A sum over each row phase that some window reads, all its columns:
        the cells every tile of the strip reads in place, and those its border
        tiles copy (the padding maps columns within a row), and those of the
        kernel's rows and columns of zeros that the band leaves out (0 * NaN is
        NaN, so they matter too).
        """
        return all(all_finite(matrix[batch, first + q - top_pad:last - top_pad + 1:sh])
                   for q in window_phases)

    def _window_finite(arena, batch, first, last):
        """As `_gate`, for a strip that reads a border above or below: a copy of its windows."""
        region = source.region(batch, range(first, last + 1), range(source.shape[1]), dtype,
                               out=arena.take((batch_size(batch), last + 1 - first,
                                               source.shape[1]), dtype))
        return all_finite(region)

    def strip(arena, batch, rows):
        n, count = batch_size(batch), rows.stop - rows.start
        sums = arena.take((len(tiles), n, count), dtype) if results else None
        # Any overflow or invalid operation in here sends the strip to the tap
        # loops, which raise NumPy's warnings as they would.
        with np.errstate(over="ignore", invalid="ignore"):
            done = _strip(arena, batch, rows, sums)
            done = done and (not results or bool(np.isfinite(sums).all()
                                                 or np.isfinite(out[batch, rows]).all()))
        if not done:
            tap_by_tap(arena, batch, rows)

    def _strip(arena, batch, rows, sums):
        b0, n = batch.indices(out.shape[0])[0], len(range(*batch.indices(out.shape[0])))
        count = rows.stop - rows.start
        groups = -(-count // rows_)
        phase_rows = groups * rows_ + band_.reach
        # The padded rows the strip's windows hold, and those its band reads:
        # all inside the image, its tiles may read the input in place.
        # (Its products also read rows beyond the windows, with weights 0: 0 * NaN is NaN.)
        top = rows.start * sh
        bottom = max((rows.stop - 1) * sh + span_h, top + band_.phases[-1] + sh * (phase_rows - 1))
        rows_inside = in_place and top >= top_pad and bottom < top_pad + height
        # The gate. A band without kernel rows or columns of zeros reads every cell
        # of every window: each tile checks what it reads, while it comes into the
        # cache anyway. Else the strip's windows are checked whole, first.
        if check and not results and not dense and not (
                _gate(batch, top, bottom) if rows_inside
                else _window_finite(arena, batch, top, bottom)):
            return False
        space = arena.take((n * max((min(most, groups) * rows_ + band_.reach) * (stop - start)
                                    for most, (start, stop) in zip(per_product, tiles))
                                * phases * shifts,), dtype)
        scratch = {}
        for t, ((c0, c1), most) in enumerate(zip(tiles, per_product)):
            here_width = c1 - c0
            taken = min(most, groups)
            shifted = space[:n * (taken * rows_ + band_.reach) * phases * shifts * here_width]
            shifted = shifted.reshape(n, taken * rows_ + band_.reach, phases, shifts, here_width)
            blocks, unchecked = [], check and dense and not results
            for q in band_.phases:
                first_row = rows.start * sh + q
                for r, first, offsets, _, _ in layout:
                    block_width = here_width + offsets[-1]
                    col = r + sw * (first + c0)          # padded column of the block's first
                    end = col + sw * (block_width - 1)    # and of its last
                    if rows_inside and col >= left_pad and end < left_pad + width:
                        if unchecked:      # in place (column stride 1): the tile's windows
                            unchecked = False
                            if not all_finite(matrix[batch, top - top_pad:bottom - top_pad + 1,
                                                      c0 - left_pad:c1 + span_w - left_pad]):
                                return False
                        blocks.append(_Block(matrix, matrix.strides[0] * b0
                                             + matrix.strides[1] * (first_row - top_pad)
                                             + matrix.strides[2] * (col - left_pad),
                                             (matrix.strides[0], matrix.strides[1] * sh,
                                              matrix.strides[2] * sw)))
                        continue
                    key = (q, r)
                    if key not in scratch:
                        scratch[key] = arena.take((n, phase_rows, tile + offsets[-1]), dtype)
                    fetched = source.region(
                        batch, range(first_row, first_row + sh * phase_rows, sh),
                        range(col, end + 1, sw), dtype, out=scratch[key][:, :, :block_width])
                    if check and dense and not results and not all_finite(fetched):
                        return False
                    blocks.append(_Block(scratch[key], 0, scratch[key].strides))
            _tile(blocks, batch, rows, groups, taken, slice(c0, c1), shifted,
                  None if sums is None else sums[t])
        return True

    def _tile(blocks, batch, rows, groups, taken, cols, shifted, sums):
        n, here_width = shifted.shape[0], shifted.shape[4]
        count = rows.stop - rows.start
        target = out[batch, rows, cols]
        work = shifted
        operands = group_operands(shifted, band_.matrix.shape[1], rows_, taken)
        for g in range(0, groups, taken):
            here = min(taken, groups - g)         # groups in this product
            top, lines = g * rows_, here * rows_ + band_.reach
            b = 0
            for p in range(phases):
                for _, _, offsets, s, step in layout:
                    block = blocks[b]
                    b += 1
                    bs, rs, cs = block.strides
                    if step is not None:    # every shift of this column phase in one copy
                        work[:, :lines, p, s:s + len(offsets)] = block.view(
                            (n, lines, len(offsets), here_width), top * rs,
                            (bs, rs, step * cs, cs))
                    else:
                        for i, offset in enumerate(offsets):
                            work[:, :lines, p, s + i] = block.view(
                                (n, lines, here_width), top * rs + offset * cs, (bs, rs, cs))
            band_products(band_.matrix, operands, here, top, count, rows_, target, sums)

    with driver.single_threaded_blas(plan.settings.limit_blas):
        driver.run(strip, plan)
