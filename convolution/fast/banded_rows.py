"""'banded' on strips of the whole width: the plan where a group's shifted rows stay in cache.

The idea
    As in ``banded.py``: a group of ``R`` output rows is the band times
    ``K`` shifted rows, each a row of the padded input shifted by a kernel
    column's offset. Where one group's shifted rows of the whole width are
    within ``Settings.band_tile_from``, the products stay in cache without
    tiles, and a strip is cut only into products of a few groups each.

    With column stride 1, a border of one value ('zeros', 'constant') and
    the input C-contiguous in the computation's dtype, a strip copies its
    shifted rows straight from the input, one copy for all the shifts of a
    column phase: each input row is read as if the rows were one long row,
    and the few cells of each shifted row that lie in the border (they read
    the neighbouring row's cells instead) are then set to the fill value;
    the shifted rows of the border's rows above and below the image are the
    fill value whole. No fetch of the input with its border, no second copy.
    (The image's first and last groups once fetched their input: two fetches
    and checks a call, about 0.1 ns an output of float32 3x3 at 1024 x 1024.)
    So does float32 at column stride 2: the copy reads each cell it needs
    with the one after it as one 8-byte integer and keeps its low half
    (`_pairs`), a contiguous read (measured, 3x3 stride 2 dilation 2: 1.14-1.2
    times faster at 2048 and 4096 than a fetch of the stride phase and copies
    from it). Other borders and strides fetch their input with its border
    first (`padding.Padded`) and shift that.

The NaN gate
    A kernel without weights 0: each product's results are summed, row by
    row, as a product with ones while they are in the cache, and the sums
    checked once a strip (a window's NaN or infinity times a nonzero weight
    shows in its own output, whatever BLAS does with the band's zeros).
    A strip that fetches its input sums each block as it fetches it instead,
    where that costs less (`_blocks_pay`: one or two blocks a strip take
    fewer calls than a sum a product). Else the strip's windows are summed first, or each
    fetched block; a strip that holds NaN or infinity is done tap by tap
    ('polyphase').

What a call works out
    Everything that follows from the band, the geometry and the dtype (the
    shifts' places, the border cells, the blocks' columns, whether groups
    read in place, which gate) is a `Layout`, made with the plan and kept in
    it: a call reads it (the plan is cached), and its strips pay only for
    their NumPy calls.

Cost per output
    ``K / R`` multiply-adds in BLAS; ``K / R`` cells copied into the
    shifted rows (the band's row count per kernel column); the sum of the
    results (about 0.05 ns a cell in cache); a few NumPy calls per product.
"""
import functools
import math
import sys
from typing import NamedTuple

import numpy as np

from .. import driver
from . import polyphase
from .costs import cell_scale
from .phases import (band_products, even_step, group_operands, may_hold_nonfinite,
                     sums_finite)

__all__ = ["Layout", "layout", "run"]


class Layout(NamedTuple):
    """What `run` needs that follows from the band, the geometry, the dtype and the plan alone.

    Worked out when the plan is made (`layout`), and kept in it: a call
    reads it, and pays nothing to work it out again.
    """
    band: object            # the kernel's `banded.Band`
    per_product: int        # the groups one product takes
    #: Per column phase ``(r, first, offsets, slot, step, cols)``: its first shift in the
    #: shifted rows, the step of its shifts, the padded columns of the block a strip fetches.
    columns: tuple
    shifts: int
    #: Per shift ``(slot, low, high)``: its cells before ``low`` and from ``high`` on lie
    #: in the border. None where groups may not read the input in place.
    border: object
    #: Whether groups read the input in place where the input and its border allow.
    in_place: bool
    #: (wide, narrow) integer dtypes where column stride 2 reads pairs of cells (`_pairs`).
    pairs: object
    window_phases: tuple    # the row phases some window reads
    shift_columns: tuple    # per shift, the input's column of its output column 0
    low_byte: int           # the bytes of a row's long read before the input row's first cell
    high_byte: int          # and to its end
    #: Whether a fetched strip's gate sums its blocks, rather than the results' rows.
    check_blocks: bool


def layout(band_, geometry, kernel_rows, dtype, per_product, strip_rows, s):
    """The `Layout` of a plan: strips of about ``strip_rows`` rows, ``per_product`` groups each
    product."""
    (sh, sw), dh = geometry.stride, geometry.dilation[0]
    dtype = np.dtype(dtype)
    itemsize = dtype.itemsize
    width = geometry.output_shape[1]
    left = geometry.padding[1][0]
    columns, slot = [], 0
    for r, first, offsets in band_.columns:
        columns.append((r, first, offsets, slot, even_step(offsets),
                        range(r + sw * first, r + sw * (first + width + offsets[-1]), sw)))
        slot += len(offsets)
    border = _border_cells(band_.columns, left, width, geometry.input_shape[1], sw)
    if border is not None and not _fills_pay(border, per_product * band_.rows, width, dtype,
                                             s.call_ns, s.fetch_ns):
        border = None
    pairs = _pairs(dtype, sw)
    in_place = (border is not None and width * sw * itemsize >= s.in_place_row_bytes
                # Other column strides read cell by cell: no faster than a fetch
                # (measured, float64 stride 2: 0.97-1.02 times its time).
                and (sw == 1 or pairs is not None and _pairs_pay(band_.columns)))
    shift_columns = tuple(r + sw * (first + offset) - left for r, first, offsets in band_.columns
                          for offset in offsets)
    low_byte = min(shift_columns) * itemsize
    high_byte = ((max(shift_columns) + sw * (width - 1) + 1) * itemsize
                 + (itemsize if in_place and pairs is not None else 0))
    window_phases = tuple(sorted({a * dh % sh for a in range(kernel_rows)}))
    return Layout(band_, per_product, tuple(columns), slot, border, in_place,
                  pairs if in_place else None, window_phases, shift_columns, low_byte,
                  high_byte, _blocks_pay(band_, width, per_product, strip_rows, dtype, s))


def _blocks_pay(band_, width, per_product, strip_rows, dtype, s):
    """Whether a fetched strip's gate costs less as a sum of each block it fetches than as
    the sum of each product's results (a NumPy call each, and a sum a strip).

    Each block is summed in the cache as it is fetched, two calls a block:
    with one block a strip (stride 1, or dilation 2 at stride 2) fewer calls
    than one a product; with four (stride 2, dilation 1) four times the
    cells of the results.
    """
    blocks = len(band_.phases) * len(band_.columns)
    cells = len(band_.phases) * sum(width + offsets[-1] for _, _, offsets in band_.columns)
    products = math.ceil(-(-strip_rows // band_.rows) / per_product)
    cell_ns = s.flat_ns / 2 * cell_scale(dtype) * strip_rows
    return 2 * blocks * s.call_ns + cells * cell_ns <= (products + 1) * s.call_ns + width * cell_ns


def run(source, kernel, geometry, out, plan):
    """Fill ``out`` (N, H_out, W_out) from ``source`` (a Padded), strips of the whole width.

    ``plan.detail[2]``: its `Layout`.
    """
    found = plan.detail[2]
    band_ = found.band
    sh, sw = geometry.stride
    top_pad, left_pad = geometry.padding[0][0], geometry.padding[1][0]
    matrix = source.matrix
    height = matrix.shape[1]
    width, dtype = out.shape[2], out.dtype
    itemsize = dtype.itemsize
    phases, rows_, reach = len(band_.phases), band_.rows, band_.reach
    depth = band_.matrix.shape[1]
    columns, shifts, border, per_product = (found.columns, found.shifts, found.border,
                                            found.per_product)
    check = may_hold_nonfinite(source)
    in_place = (found.in_place and matrix.dtype == dtype and matrix.flags.c_contiguous
                and source.constant_border
                and (source.fill_value == 0 or bool(np.isfinite(source.fill_value))))
    # The NaN gate. A kernel without weights 0: the results' row sums, taken
    # as each product leaves its rows in the cache (measured: 3 times faster
    # than once a strip at 1024 x 1024), checked once a strip; or, in a
    # fetched strip where that costs less, each fetched block summed as it is
    # fetched. Kernel rows or columns of zeros, which the band leaves out: the
    # fetched blocks then miss cells that the windows hold (0 * NaN is NaN in
    # the tap loops too), so the strip's windows are checked whole, first; so
    # too for a kernel with weights 0 read in place (no block is fetched).
    dense = band_.dense
    blocks_first = check and dense and not in_place and (found.check_blocks
                                                        or not band_.nonzero)
    results = check and band_.nonzero and not blocks_first
    whole_first = check and not results and not blocks_first
    tap_by_tap = polyphase.fallback(source, kernel, geometry, out)

    def strip(arena, batch, rows):
        n = len(range(*batch.indices(out.shape[0])))
        count = rows.stop - rows.start
        groups = -(-count // rows_)
        if whole_first and not _windows_finite(arena, batch, rows, groups, n):
            return tap_by_tap(arena, batch, rows)
        target = out[batch, rows]
        # Any overflow or invalid operation in here sends the strip to the tap
        # loops, which raise NumPy's warnings as they would.
        sums = arena.take((n, count), dtype) if results else None
        with np.errstate(over="ignore", invalid="ignore"):
            if in_place:
                _in_place(arena, batch, rows, groups, target, sums)
                done = True
            else:
                done = _fetched(arena, batch, rows, groups, target, sums)
            done = done and (not results or bool(np.isfinite(sums).all()
                                                 or np.isfinite(target).all()))
        if not done:
            tap_by_tap(arena, batch, rows)

    def _windows_finite(arena, batch, rows, groups, n):
        """Whether the padded rows the strip reads hold only finite numbers."""
        top = rows.start * sh
        bottom = max((rows.stop - 1) * sh + geometry.span[0],
                     top + band_.phases[-1] + sh * (groups * rows_ + reach - 1))
        with np.errstate(over="ignore", invalid="ignore"):
            if top >= top_pad and bottom < top_pad + height:     # the input's own rows
                return all(sums_finite(matrix[batch, top + q - top_pad:bottom - top_pad + 1:sh])
                           for q in found.window_phases)
            return sums_finite(source.region(
                batch, range(top, bottom + 1), range(source.shape[1]), dtype,
                out=arena.take((n, bottom + 1 - top, source.shape[1]), dtype)))

    def _in_place(arena, batch, rows, groups, target, sums):
        """The strip's groups, their shifted rows copied from the input itself.

        Per row phase, a product's shifted rows of the input's own rows are one
        copy a column phase, each input row read as if the rows were one long
        row; those of the rows in the border above and below the image are set
        to the fill value whole. A row whose long read would start before the
        input's memory or end after it (the first and the last row of the
        memory) is copied apart, its cells inside the image only.
        """
        n, count = target.shape[:2]
        b0, b1 = batch.indices(matrix.shape[0])[:2]
        taken = min(per_product, groups)
        shifted = arena.take((n, taken * rows_ + reach, phases, shifts, width), dtype)
        operands = group_operands(shifted, depth, rows_, taken)
        # The cells of the shifted rows in the border, whatever their row and phase.
        fills = [view for slot, low, high in border
                 for view in (shifted[..., slot, :low], shifted[..., slot, high:]) if view.size]
        steps = (matrix.strides[0], matrix.strides[1] * sh)
        row_bytes, fill = matrix.strides[1], source.fill_value
        low_byte, high_byte = found.low_byte, found.high_byte
        if found.pairs is None:
            base, lines_out, kind, copy = matrix, shifted, dtype, _assign
        else:
            base, lines_out, kind, copy = (matrix, shifted.view(found.pairs[1]), found.pairs[0],
                                           _narrow)
        for g in range(0, groups, taken):
            here = min(taken, groups - g)         # groups in this product
            used = min(here * rows_, count - g * rows_) + reach    # the last group has fewer
            # The image's last group multiplies lines past its last with weights 0:
            # they must hold finite numbers (0 * NaN is NaN), not what the arena held.
            if used < here * rows_ + reach:
                shifted[:, used:here * rows_ + reach] = 0
            for p, q in enumerate(band_.phases):
                row = rows.start * sh + q - top_pad + sh * g * rows_   # the input's, of line 0
                above = min(used, max(0, -(row // sh)))
                below = min(used, max(above, -(-(height - row) // sh)))
                if above:
                    shifted[:, :above, p] = fill
                if below < used:
                    shifted[:, below:used, p] = fill
                if above == below:
                    continue
                # The lines above..below-1 read the input's rows, as one long read
                # over all images of the batch: none may start before its memory
                # or end after it.
                while (above < below and b0 * matrix.strides[0] + (row + sh * above)
                       * row_bytes + low_byte < 0):
                    _row_apart(shifted, batch, p, above, row + sh * above)
                    above += 1
                while (above < below and (b1 - 1) * matrix.strides[0] + (row + sh * (below - 1))
                       * row_bytes + high_byte > matrix.nbytes):
                    below -= 1
                    _row_apart(shifted, batch, p, below, row + sh * below)
                if below <= above:
                    continue
                at = b0 * matrix.strides[0] + (row + sh * above) * row_bytes
                for r, column, offsets, s, step, _ in columns:
                    at_column = at + (r + sw * column - left_pad) * itemsize
                    if step is not None:    # every shift of this column phase in one copy
                        copy(lines_out[:, above:below, p, s:s + len(offsets)], np.ndarray(
                            (n, below - above, len(offsets), width), kind, base, at_column,
                            steps + (sw * step * itemsize, sw * itemsize)))
                    else:
                        for i, offset in enumerate(offsets):
                            copy(lines_out[:, above:below, p, s + i], np.ndarray(
                                (n, below - above, width), kind, base,
                                at_column + sw * offset * itemsize, steps + (sw * itemsize,)))
            for view in fills:
                view.fill(fill)
            band_products(band_.matrix, operands, here, g * rows_, count, rows_, target, sums)

    def _row_apart(shifted, batch, p, line, row):
        """Line ``line`` of phase ``p``: input row ``row``, each shift's cells inside the image."""
        for (slot, low, high), column in zip(border, found.shift_columns):
            shifted[:, line, p, slot, low:high] = matrix[batch, row, sw * low + column:
                                                         sw * (high - 1) + column + 1:sw]

    def _fetched(arena, batch, rows, groups, target, sums):
        """The strip's groups from a copy of their input with its border.

        With ``sums``, the results' row sums go there (the gate); with
        ``blocks_first``, each block is summed as it is fetched, in the cache:
        False where one holds NaN or infinity.
        """
        n, count = target.shape[:2]
        phase_rows = groups * rows_ + reach
        first_row = rows.start * sh
        blocks = []
        for q in band_.phases:
            row_range = range(first_row + q, first_row + q + sh * phase_rows, sh)
            for _, _, offsets, _, _, cols in columns:
                block = source.region(batch, row_range, cols, dtype,
                                      out=arena.take((n, phase_rows, len(cols)), dtype))
                if blocks_first and not sums_finite(block):
                    return False
                blocks.append(block)
        taken = min(per_product, groups)
        shifted = arena.take((n, taken * rows_ + reach, phases, shifts, width), dtype)
        operands = group_operands(shifted, depth, rows_, taken)
        # Per block, every shift of its column phase as one view (an even step), or one each.
        views = []
        for p in range(phases):
            for (_, _, offsets, s, step, _), block in zip(columns, blocks[p * len(columns):]):
                if step is not None:
                    views.append((p, slice(s, s + len(offsets)), np.ndarray(
                        (n, phase_rows, len(offsets), width), dtype, block, 0,
                        block.strides[:2] + (step * itemsize, itemsize))))
                else:
                    views.extend((p, s + i, block[:, :, offset:offset + width])
                                 for i, offset in enumerate(offsets))
        for g in range(0, groups, taken):
            here = min(taken, groups - g)         # groups in this product
            top, used = g * rows_, here * rows_ + reach
            for p, at, view in views:
                shifted[:, :used, p, at] = view[:, top:top + used]
            band_products(band_.matrix, operands, here, top, count, rows_, target, sums)
        return True

    with driver.single_threaded_blas(plan.settings.limit_blas):
        driver.run(strip, plan)


def _assign(target, values):
    target[...] = values


def _narrow(target, values):
    """``target[...] = values``, each wide integer cut to its low half."""
    np.copyto(target, values, casting="unsafe")


def _pairs(dtype, step):
    """(wide, narrow) integer dtypes for reading every second cell of ``dtype`` as the low half
    of a wide integer, where that works: float32 at column stride 2, little-endian; else None.

    Measured, 3x3 stride 2 dilation 2 float32 at 1024 x 1024: the shifted rows
    copied 20% faster than from a strided view of the floats, which reads
    cell by cell.
    """
    if step == 2 and np.dtype(dtype) == np.float32 and np.dtype(dtype).isnative \
            and sys.byteorder == "little":
        return np.dtype(np.uint64), np.dtype(np.uint32)
    return None


def _pairs_pay(columns):
    """Whether reading pairs of cells in place (`_pairs`) costs less than a fetch of the stride
    phase and contiguous copies from it: not where a column phase has many shifts, each of
    whose cells the pairs read twice as wide. Measured, float32 stride 2 dilation 2, 'same'
    zero borders, a fetch's time over in place: 3 x 3 1.10-1.19 at 512 to 2048, 5 x 5 1.0-1.07,
    7 x 7 0.95-1.12, 9 x 9 0.96-1.09, 11 x 11 1.0-1.07 (and 0.97 at 1024 without borders)."""
    return max(len(offsets) for _, _, offsets in columns) <= PAIRS_SHIFTS


def _fills_pay(border, rows, width, dtype, call_ns, fetch_ns):
    """Whether setting the border cells, a NumPy call each a product of ``rows`` rows, costs less
    than fetching the input with its border (wide kernels have many: measured, a kernel 11 wide
    lost 8% in place, 5 wide gained 6%)."""
    calls = sum((low > 0) + (high < width) for _, low, high in border)
    return calls * call_ns / rows < width * fetch_ns * cell_scale(dtype)


#: The most shifts a column phase may have for pairs to be read in place (`_pairs_pay`).
PAIRS_SHIFTS = 7


@functools.lru_cache(maxsize=256)
def _border_cells(columns, left, width, inner, step=1):
    """Per shift: ``(slot, low, high)``, its cells before ``low`` and from ``high`` on read
    the border; None where some shift reads nothing of the input.

    ``columns``: the band's; ``left``: the border's columns on the left;
    ``width``, ``inner``: the output's and the input's; ``step``: the column stride.
    """
    cells, slot = [], 0
    for r, first, offsets in columns:
        for offset in offsets:
            padded = r + step * (first + offset)     # the padded column of the shift's cell 0
            low = min(width, max(0, -(-(left - padded) // step)))
            high = max(0, min(width, -(-(left + inner - padded) // step)))
            if low >= high:
                return None
            cells.append((slot, low, high))
            slot += 1
    return tuple(cells)
