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
    Else the strip's windows are summed first, or each fetched block; a strip
    that holds NaN or infinity is done tap by tap ('polyphase').

Cost per output
    ``K / R`` multiply-adds in BLAS; ``K / R`` cells copied into the
    shifted rows (the band's row count per kernel column); the sum of the
    results (about 0.05 ns a cell in cache); a few NumPy calls per product.
"""
import functools
import sys

import numpy as np

from .. import driver
from . import polyphase
from .costs import cell_scale
from .phases import all_finite, band_products, even_step, may_hold_nonfinite

__all__ = ["run"]


def run(source, kernel, geometry, out, plan, band_, per_product):
    """Fill ``out`` (N, H_out, W_out) from ``source`` (a Padded), strips of the whole width.

    ``band_``: the kernel's `banded.Band`; ``per_product``: the groups one
    product takes.
    """
    sh, sw = geometry.stride
    top_pad = geometry.padding[0][0]
    matrix = source.matrix
    height = matrix.shape[1]
    width, dtype = out.shape[2], out.dtype
    itemsize = dtype.itemsize
    phases, rows_ = len(band_.phases), band_.rows
    layout, shifts, border, window_phases = _setup(band_.columns, rows_, geometry,
                                                   kernel.shape[0], per_product, dtype.str,
                                                   plan.settings.call_ns,
                                                   plan.settings.fetch_ns)
    check = may_hold_nonfinite(source)
    # Kernel rows or columns of zeros, which the band leaves out: the fetched
    # blocks then miss cells that the windows hold (0 * NaN is NaN in the tap
    # loops too), so the strip's windows are checked whole, first.
    dense = band_.dense
    results = check and band_.nonzero
    in_place = (border is not None and matrix.dtype == dtype and matrix.flags.c_contiguous
                and width * sw * itemsize >= plan.settings.in_place_row_bytes
                # Other column strides read cell by cell: no faster than a fetch
                # (measured, float64 stride 2: 0.97-1.02 times its time).
                and (sw == 1 or _pairs(dtype, sw) is not None)
                and source.constant_border
                and (source.fill_value == 0 or bool(np.isfinite(source.fill_value))))
    left_pad = geometry.padding[1][0]
    # Per shift, the input's column of its output column 0; the bytes of a row's
    # long read, from the input row's first cell, before it and to its end.
    shift_columns = [r + sw * (first + offset) - left_pad for r, first, offsets, _, _ in layout
                     for offset in offsets]
    # Column stride 2, float32: each cell read with the one after it, as one 8-byte
    # integer whose low half it is (`_pairs`), a contiguous read.
    pairs = _pairs(dtype, sw) if in_place else None
    low_byte = min(shift_columns) * itemsize
    high_byte = ((max(shift_columns) + sw * (width - 1) + 1) * itemsize
                 + (itemsize if pairs is not None else 0))
    tap_by_tap = polyphase.fallback(source, kernel, geometry, out)

    def lines(count, g, here):
        """The shifted rows ``here`` groups from group g use: the image's last group has fewer."""
        return min(here * rows_, count - g * rows_) + band_.reach

    def strip(arena, batch, rows):
        n = len(range(*batch.indices(out.shape[0])))
        count = rows.stop - rows.start
        groups = -(-count // rows_)
        # Read in place, or a kernel with rows or columns of zeros: the strip's
        # windows are checked whole, first.
        whole_first = check and not results and (not dense or in_place)
        if whole_first and not _windows_finite(arena, batch, rows, groups, n):
            return tap_by_tap(arena, batch, rows)
        target = out[batch, rows]
        # The results' row sums (a product with ones), taken as each product
        # leaves its rows in the cache (measured: 3 times faster than once a
        # strip at 1024 x 1024), checked once a strip. Any overflow or invalid
        # operation in here sends the strip to the tap loops, which raise
        # NumPy's warnings as they would.
        sums = arena.take((n, count), dtype) if results else None
        with np.errstate(over="ignore", invalid="ignore"):
            if in_place:
                _in_place(arena, batch, rows, groups, target, sums)
                done = True
            else:
                done = _fetched(arena, batch, rows, groups, target, sums, whole_first)
            done = done and (not results or bool(np.isfinite(sums).all()
                                                 or np.isfinite(target).all()))
        if not done:
            tap_by_tap(arena, batch, rows)

    def _windows_finite(arena, batch, rows, groups, n):
        """Whether the padded rows the strip reads hold only finite numbers."""
        top = rows.start * sh
        bottom = max((rows.stop - 1) * sh + geometry.span[0],
                     top + band_.phases[-1] + sh * (groups * rows_ + band_.reach - 1))
        if top >= top_pad and bottom < top_pad + height:     # the input's own rows
            return all(all_finite(matrix[batch, top + q - top_pad:bottom - top_pad + 1:sh])
                       for q in window_phases)
        return all_finite(source.region(
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
        shifted = arena.take((n, taken * rows_ + band_.reach, phases, shifts, width), dtype)
        # The cells of the shifted rows in the border, whatever their row and phase.
        fills = [view for slot, low, high in border
                 for view in (shifted[..., slot, :low], shifted[..., slot, high:]) if view.size]
        steps = (matrix.strides[0], matrix.strides[1] * sh)
        row_bytes, fill = matrix.strides[1], source.fill_value
        if pairs is None:
            base, lines_out, kind, copy = matrix, shifted, dtype, _assign
        else:
            base, lines_out, kind, copy = matrix, shifted.view(pairs[1]), pairs[0], _narrow
        for g in range(0, groups, taken):
            here = min(taken, groups - g)         # groups in this product
            used = lines(count, g, here)
            # The image's last group multiplies lines past its last with weights 0:
            # they must hold finite numbers (0 * NaN is NaN), not what the arena held.
            if used < here * rows_ + band_.reach:
                shifted[:, used:here * rows_ + band_.reach] = 0
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
                for r, column, offsets, s, step in layout:
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
            band_products(band_.matrix, shifted, here, g * rows_, count, rows_, target, sums)

    def _row_apart(shifted, batch, p, line, row):
        """Line ``line`` of phase ``p``: input row ``row``, each shift's cells inside the image."""
        for (slot, low, high), column in zip(border, shift_columns):
            shifted[:, line, p, slot, low:high] = matrix[batch, row, sw * low + column:
                                                         sw * (high - 1) + column + 1:sw]

    def _fetched(arena, batch, rows, groups, target, sums, checked):
        """The strip's groups from a copy of their input with its border.

        With ``sums``, the results' row sums go there (the gate); else each
        block is summed as it is fetched, in the cache, unless the strip's
        windows were ``checked`` already: False where one holds NaN or infinity.
        """
        n, count = target.shape[:2]
        phase_rows = groups * rows_ + band_.reach
        flags = check and not checked and sums is None
        first_row = rows.start * sh
        blocks = []
        for q in band_.phases:
            row_range = range(first_row + q, first_row + q + sh * phase_rows, sh)
            for r, first, offsets, _, _ in layout:
                block = source.region(
                    batch, row_range, range(r + sw * first, r + sw * (first + width
                                                                      + offsets[-1]), sw),
                    dtype, out=arena.take((n, phase_rows, width + offsets[-1]), dtype))
                if flags and not all_finite(block):
                    return False
                blocks.append(block)
        taken = min(per_product, groups)
        shifted = arena.take((n, taken * rows_ + band_.reach, phases, shifts, width), dtype)
        for g in range(0, groups, taken):
            here = min(taken, groups - g)         # groups in this product
            top, used = g * rows_, here * rows_ + band_.reach
            b = 0
            for p in range(phases):
                for _, _, offsets, s, step in layout:
                    block = blocks[b]
                    b += 1
                    if step is not None:    # every shift of this column phase in one copy
                        shifted[:, :used, p, s:s + len(offsets)] = np.ndarray(
                            (n, used, len(offsets), width), dtype, block,
                            top * block.strides[1], block.strides[:2] + (step * itemsize,
                                                                         itemsize))
                    else:
                        for i, offset in enumerate(offsets):
                            shifted[:, :used, p, s + i] = block[:, top:top + used,
                                                                 offset:offset + width]
            band_products(band_.matrix, shifted, here, g * rows_, count, rows_, target, sums)
        return True

    with driver.single_threaded_blas(plan.settings.limit_blas):
        driver.run(strip, plan)


@functools.lru_cache(maxsize=256)
def _setup(columns, rows, geometry, kernel_rows, per_product, dtype, call_ns, fetch_ns):
    """What `run` works out from the band and the geometry alone (cached).

    Per column phase ``(r, first, offsets, slot, step)``: its first shift in
    the shifted rows and the step of its shifts; the shifts; the border
    cells of each shift where groups may read the input in place (None
    where they may not); the row phases some window reads.
    """
    (sh, sw), dh = geometry.stride, geometry.dilation[0]
    width = geometry.output_shape[1]
    layout, slot = [], 0
    for r, first, offsets in columns:
        layout.append((r, first, offsets, slot, even_step(offsets)))
        slot += len(offsets)
    border = _border_cells(columns, geometry.padding[1][0], width, geometry.input_shape[1], sw)
    if border is not None and not _fills_pay(border, per_product * rows, width, dtype, call_ns,
                                             fetch_ns):
        border = None
    window_phases = tuple(sorted({a * dh % sh for a in range(kernel_rows)}))
    return tuple(layout), slot, border, window_phases


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


def _fills_pay(border, rows, width, dtype, call_ns, fetch_ns):
    """Whether setting the border cells, a NumPy call each a product of ``rows`` rows, costs less
    than fetching the input with its border (wide kernels have many: measured, a kernel 11 wide
    lost 8% in place, 5 wide gained 6%)."""
    calls = sum((low > 0) + (high < width) for _, low, high in border)
    return calls * call_ns / rows < width * fetch_ns * cell_scale(dtype)


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
