"""'subpixel': the transposed convolution, every stride phase of a block of rows in one product.

The idea
    A transposed convolution with stride s spreads each input cell over the
    output, s cells apart. Along one axis, kernel tap ``a`` lands input cell
    ``i`` on output cell ``y = i*s + a*d - crop``. Cut the output into blocks
    of s cells: ``y = n*s + p`` is sub-pixel ``p`` of block ``n``, and with
    ``(p, o) = geometry.stride_phase(a*d - crop, s)`` (the tap's phase and
    offset) tap ``a`` brings block ``n`` input cell ``n - o``. So the s
    sub-pixels of a block gather from the same few input cells, each through
    the taps of its own phase; in 2-D, the ``sh * sw`` sub-pixels of block
    ``(n, m)`` gather from one window of ``(reach_h + 1) x (reach_w + 1)``
    input cells (``reach``: the offsets' range; `Axis` places the blocks so
    that it is smallest). A window times one matrix gives all of them at
    once: the transposed convolution is a plain correlation at stride 1 with
    ``sh * sw * C_out`` output channels and a kernel of ``ceil(kh/sh) x
    ceil(kw/sw)`` taps, whose channels are then laid out as the sub-pixels
    of each block (the "sub-pixel convolution" of Shi et al., 2016, read
    backwards; PyTorch's ``pixel_shuffle``).

    As a product: lay each input row out once per column shift ``0 ..
    reach_w`` (``shifts`` copies, each shifted by one more cell, with the
    group's input channels between them). The ``R + reach_h`` consecutive
    rows of that layout from block row ``n``'s first are then one matrix of
    ``K = (R + reach_h) * C_in / groups * shifts`` rows, read in place, and
    the ``R`` block rows from ``n`` on are the band ``(M, K)`` times it,
    ``M = R * C_out / groups * sh * sw`` rows of weights (`band`: each
    sub-pixel's taps where its rows and shifts meet them, zeros elsewhere).
    ``R`` is 1 wherever the sub-pixels give BLAS four rows or more. One
    ``np.matmul`` takes every block row of a strip. A band of few rows is
    multiplied transposed, ``(width, K) @ (K, M)``: each block's ``sw``
    column sub-pixels then lie side by side, as in the output, and an output
    row copies as units of ``sw`` cells, one call per row sub-pixel for the
    whole strip; a band of many rows, as it is, and each sub-pixel copies to
    its strided place in the output.

Cost per output
    ``K`` multiply-adds in BLAS per block and output channel: ``(R + reach_h)
    * (reach_w + 1)`` taps where the phase's own correlation has about
    ``kh/sh * kw/sw`` (the band's zeros): for a 4 x 4 kernel at stride 2 none
    are wasted, for 5 x 5 a third. The input is copied
    ``shifts`` times, ``1 / (sh * sw)`` of an output's size each, and each
    output cell is written once. Against the stride phases as separate
    correlations (``fast/operations.py``), each of which copies its own
    shifted rows of the same input and writes its strided slice, this shares
    the input's copies between the phases, and makes one product call and
    one plan where they make one per phase. Measured, float32, one thread,
    a 256 x 256 input at stride 2: 5 x 5 about 0.5, 11 x 11 0.35 of the time
    of conv2d over the zero-spread input, where the phases' correlations
    took 1.75 and 1.0 (``benchmarks/run.py --operations``).

Limits
    Floats that BLAS takes, finite kernels and finite data: the band's zeros
    would spread a NaN or an infinity onto the sub-pixels of other phases
    (0 * inf is NaN), so the caller sends those to the stride phases'
    correlations, which read only their own taps. At stride 1 the caller
    keeps to the correlation, which the planner routes. The band holds about
    ``R * (R + reach_h) * (reach_w + 1) * sh * sw / (kh * kw)`` times the
    kernel's weights; it is kept (`kernel_cache`) for kernels of up to
    `CACHED_CELLS` weights. Memory: one strip's shifted rows and its products
    (the driver's strips: a few MiB), and the band.
"""
import math

import numpy as np

from .. import driver
from ..geometry import stride_phase
from .cache import CACHED_CELLS, kernel_cache
from .costs import FETCH_CALLS, cell_scale, products

__all__ = ["Axis", "band", "plan", "run"]


class Axis:
    """One axis of the transposed convolution as blocks of ``stride`` output cells.

    Output cell ``y`` gathers input cell ``i`` through tap ``a`` where ``y =
    i*stride + a*dilation - crop``. Cut the output into blocks of ``stride``
    cells from cell ``-align`` on: ``y + align = n*stride + p``, sub-pixel
    ``p`` of block ``n``, and ``n = i + o`` with ``(p, o) =
    geometry.stride_phase(a*dilation - crop + align, stride)``: the tap's phase
    and offset (`tap_phase`, `tap_offset`). ``align`` is chosen so that a
    block's taps reach as few input cells as can be (block grid on the full
    result's, before the crop); `count` blocks hold output cells.
    ``phases``: the sub-pixels some tap reaches, sorted; ``last``: the
    largest offset (block ``n`` reads input cells from ``n - last`` on),
    ``reach``: the largest less the smallest.
    """

    def __init__(self, kernel_size, stride, dilation, crop, out_size, align=None):
        def split(shift):
            return [stride_phase(a * dilation - crop + shift, stride) for a in range(kernel_size)]

        def reach(shift):
            offsets = [o for _, o in split(shift)]
            return max(offsets) - min(offsets)

        if align is None:
            align = min(range(stride), key=reach)
        taps = split(align)
        self.stride, self.out_size, self.align = stride, out_size, align
        self.tap_phase = tuple(p for p, _ in taps)
        self.tap_offset = tuple(o for _, o in taps)
        self.phases = tuple(sorted(set(self.tap_phase)))
        self.last = max(self.tap_offset)
        self.reach = self.last - min(self.tap_offset)
        self.count = -(-(out_size + align) // stride)

    def blocks(self, phase, start, stop):
        """``(lo, hi)``: of blocks ``start .. stop - 1``, those whose sub-pixel ``phase`` is a
        cell of the output (``0 <= n*stride + phase - align < out_size``)."""
        s, shift = self.stride, self.align - phase
        return max(start, -(-shift // s)), min(stop, -(-(self.out_size + shift) // s))

    def cell(self, block, phase):
        """The output cell of sub-pixel ``phase`` of ``block``."""
        return block * self.stride + phase - self.align


#: Bands of more rows than this multiply as they are, ``(M, K) @ (K, width)``; of fewer,
#: transposed. Measured, float32, ms: (width, K) @ (K, M) against (M, K) @ (K, width) for
#: M = 4, K = 9, width 258: 0.068 and 0.068 (and the copies out half as long); for M = 128,
#: K = 256, width 17: 2.6 against 1.1.
_BY_ROWS = 16


def _by_rows(rows, sw, dtype):
    """Whether a band of ``rows`` rows multiplies as it is, not transposed.

    Transposed, each output row copies as units of ``sw`` cells, where a
    unit is of a size NumPy copies in one move; a band of many rows as it
    is, in BLAS's favourite shape (`_BY_ROWS`).
    """
    return rows > _BY_ROWS or sw * np.dtype(dtype).itemsize not in (4, 8, 16)


def _rows_per_product(out_channels, phases, s):
    """R: block rows per product, so that the band has about ``Settings.band_rows`` rows or more.

    Each block row more adds ``1 / R`` of the band's width to every output's
    multiply-adds (its zeros); fewer rows than BLAS's kernels take wastes
    their lanes. The sub-pixels of a block give ``phases`` rows per channel.
    """
    return max(1, -(-s.band_rows // (out_channels * phases)))


def _band(kernel, groups, strides, dilations, crops, rows):
    """The band: (groups, M, K) weights, M over (block row, channel out, row phase, column
    phase), K over (input row, channel in, column shift) of one product (see the module's
    docstring). ``kernel`` (C_in, C_out / groups, kh, kw), the transposed layout; ``crops``
    per axis, ``(crop - align) % stride`` (the rest shifts every block alike).
    """
    in_channels, per_out, kh, kw = kernel.shape
    per_in = in_channels // groups
    (sh, sw), (dh, dw) = strides, dilations
    rows_axis, cols_axis = Axis(kh, sh, dh, crops[0], 1, 0), Axis(kw, sw, dw, crops[1], 1, 0)
    # (G, C_in / G, C_out / G, kh, kw) -> (G, C_out / G, C_in / G, kh, kw)
    weights = kernel.reshape(groups, per_in, per_out, kh, kw).transpose(0, 2, 1, 3, 4)
    matrix = np.zeros((groups, rows, per_out, len(rows_axis.phases), len(cols_axis.phases),
                       rows + rows_axis.reach, per_in, cols_axis.reach + 1), kernel.dtype)
    for a in range(kh):
        p = rows_axis.phases.index(rows_axis.tap_phase[a])
        line = rows_axis.last - rows_axis.tap_offset[a]
        for b in range(kw):
            r = cols_axis.phases.index(cols_axis.tap_phase[b])
            shift = cols_axis.last - cols_axis.tap_offset[b]
            for i in range(rows):
                matrix[:, i, :, p, r, i + line, :, shift] = weights[..., a, b]
    matrix = matrix.reshape(groups, rows * per_out * len(rows_axis.phases)
                            * len(cols_axis.phases), -1)
    matrix.flags.writeable = False      # cached: shared by every call with this kernel
    return matrix


_cached_band = kernel_cache(maxsize=64)(_band)


def band(kernel, groups, strides, dilations, crops, rows):
    """`_band`, kept for kernels of up to `CACHED_CELLS` weights (read-only)."""
    if kernel.size > CACHED_CELLS:
        return _band(kernel, groups, strides, dilations, crops, rows)
    return _cached_band(kernel, groups, strides, dilations, crops, rows)


class _Layout:
    """What a call's strips share: both axes, the rows per product, the product's sizes."""

    def __init__(self, images_shape, kernel_shape, geometry, groups, s):
        in_channels = images_shape[1]
        _, per_out, kh, kw = kernel_shape
        (sh, sw), (dh, dw) = geometry.stride, geometry.dilation
        (top, _), (left, _) = geometry.padding
        self.rows = Axis(kh, sh, dh, top, geometry.output_shape[0])
        self.cols = Axis(kw, sw, dw, left, geometry.output_shape[1])
        self.crops = ((top - self.rows.align) % sh, (left - self.cols.align) % sw)
        self.in_channels, self.groups = in_channels, groups
        self.per_in, self.per_out = in_channels // groups, per_out
        self.sub_pixels = len(self.rows.phases) * len(self.cols.phases)
        self.R = _rows_per_product(per_out, self.sub_pixels, s)
        self.shifts = self.cols.reach + 1
        self.depth = (self.R + self.rows.reach) * self.per_in * self.shifts     # K
        self.height = self.rows.count        # block rows: the driver's rows
        self.width = self.cols.count         # block columns

    def work(self, dtype, s):
        """What a strip costs, per block row of one image (`driver.Work`)."""
        itemsize = np.dtype(dtype).itemsize
        read = self.in_channels * self.width       # the input's cells, from memory once
        shifted = read * self.shifts                # ... and laid out shifted, in cache
        written = self.groups * self.per_out * self.sub_pixels * self.width
        row_ns = (cell_scale(dtype) * (read * s.fetch_ns + (shifted - read + written) * s.copy_ns)
                  + products(written * self.depth, self.depth * self.width * itemsize, dtype, s))
        return driver.Work(row_bytes=(shifted + written) * itemsize,
                           extra_rows=self.rows.reach + self.R - 1, row_ns=row_ns,
                           calls=FETCH_CALLS + self.shifts + 1 + self.R * len(self.rows.phases),
                           fixed_ns=2 * s.call_ns, rows_multiple=self.R)


def plan(images_shape, kernel_shape, geometry, groups, dtype, s):
    """Strips of block rows, the threads that share them, the estimate; ``detail``: the layout.

    ``images_shape`` (N, C_in, H, W), ``kernel_shape`` (C_in, C_out / groups,
    kh, kw), ``geometry`` a ``geometry.TransposeGeometry``.
    """
    layout = _Layout(images_shape, kernel_shape, geometry, groups, s)
    out_bytes = (images_shape[0] * groups * kernel_shape[1] * math.prod(geometry.output_shape)
                 * np.dtype(dtype).itemsize)
    chosen = driver.plan(images_shape[0], layout.height, max(out_bytes, 1),
                         layout.work(dtype, s), s)
    return chosen._replace(detail=layout)


def run(images, kernel, geometry, groups, dtype, bias, out, plan_):
    """Fill ``out`` (N, C_out, H_out, W_out), C-contiguous, with the transposed convolution.

    ``images`` (N, C_in, H, W) and ``kernel`` (C_in, C_out / groups, kh, kw)
    finite, of a dtype BLAS takes; ``bias`` (C_out,) or None; ``plan_`` as
    `plan` made it.

    A band of at most `_BY_ROWS` rows multiplies transposed, ``(width, K) @
    (K, M)``: the result's rows are block columns, each block's ``sw``
    column sub-pixels side by side, as the output holds them, so that an
    output row copies as units of ``sw`` cells (one NumPy call for every
    channel and block row of a strip, per row sub-pixel), not as ``sw``
    strided copies of single cells.
    """
    layout = plan_.detail
    rows_axis, cols_axis, R = layout.rows, layout.cols, layout.R
    batch, in_channels = images.shape[:2]
    G, per_in, per_out = groups, layout.per_in, layout.per_out
    n_rows, n_cols = len(rows_axis.phases), len(cols_axis.phases)
    (sh, sw), (out_h, out_w) = geometry.stride, geometry.output_shape
    weights = band(kernel, groups, geometry.stride, geometry.dilation, layout.crops, R)
    M = weights.shape[1]
    by_rows = _by_rows(M, sw, dtype)
    weights = weights[np.newaxis, :, np.newaxis]     # (1, G, 1, M, K)
    shifts, width = layout.shifts, layout.width
    depth, itemsize = layout.depth, np.dtype(dtype).itemsize
    # Block n reads input rows from n - rows_axis.last on; block column m, input columns
    # from m - cols_axis.last on, and shift c of it m - cols_axis.last + c.
    height, width_in = images.shape[2:]
    # (N, G, H, C_in / groups, W): a row's channels side by side, as the shifted rows hold them.
    source = images.reshape(batch, G, per_in, height, width_in).transpose(0, 1, 3, 2, 4)
    # A transposed product's rows are block columns: tiles of them keep each product's
    # operand within Settings.band_tile_bytes (BLAS's kernels for small matrices, and the
    # cache), however wide the image; the strips' rows are as wide as the tiles together.
    tile = width if by_rows else max(64, plan_.settings.band_tile_bytes // (depth * itemsize)
                                     // 16 * 16)
    tiles = -(-width // tile)
    tile = -(-width // tiles)
    wide = tiles * tile
    # Per shift: the columns of the shifted rows that lie inside the input, and where they start.
    inside = []
    for c in range(shifts):
        first = c - cols_axis.last
        lo, hi = max(0, -first), min(wide, width_in - first)
        inside.append((c, lo, hi, first + lo))
    out_groups = out.reshape((batch, G, per_out, out_h, out_w))
    if n_rows < sh or n_cols < sw:      # sub-pixels no tap reaches (the strips add the bias)
        out[...] = 0
    # Blocks whose sw cells are all output cells copy as units of sw cells (where every
    # column sub-pixel is reached and the products are transposed); the rest cell by cell:
    # per column sub-pixel, (index, sub-pixel, first block, blocks, first output cell).
    unit = np.dtype((np.void, sw * itemsize))
    units = (int(cols_axis.align > 0), (out_w + cols_axis.align) // sw)
    if n_cols < sw or by_rows or units[1] <= units[0] or not out.flags.c_contiguous:
        units = None
    loose = []
    for j, r in enumerate(cols_axis.phases):
        lo, hi = cols_axis.blocks(r, 0, width)
        spans = [(lo, hi)] if units is None else [(lo, min(hi, units[0])),
                                                  (max(lo, units[1]), hi)]
        loose += [(j, r, start, stop - start, cols_axis.cell(start, r))
                  for start, stop in spans if start < stop]
    strides = out.strides

    def strip(arena, images_slice, block_rows):
        n0, n1 = images_slice.indices(batch)[:2]
        n = n1 - n0
        b0, count = block_rows.start, block_rows.stop - block_rows.start
        products_ = -(-count // R)
        lines = products_ * R + rows_axis.reach
        # The input rows the strip reads, those inside the input, and the shifted rows
        # (n, G, lines, C_in / groups, shifts, wide): the K rows a product reads, consecutive.
        first = b0 - rows_axis.last
        r_lo, r_hi = max(0, -first), max(0, min(lines, height - first))
        shifted = arena.take((n, G, lines, per_in, shifts, wide), dtype)
        if r_lo:
            shifted[:, :, :r_lo] = 0
        if r_hi < lines:
            shifted[:, :, max(r_hi, r_lo):] = 0
        if r_lo < r_hi:
            rows = source[n0:n1, :, first + r_lo:first + r_hi]
            for c, lo, hi, x0 in inside:
                cells = shifted[:, :, r_lo:r_hi, :, c]
                if lo:
                    cells[..., :lo] = 0
                if hi < wide:
                    cells[..., max(hi, lo):] = 0
                if lo < hi:
                    cells[..., lo:hi] = rows[..., x0:x0 + hi - lo]
        line = shifted.strides[2]
        # (n, G, products, tiles, tile, K): each product's K rows, transposed, tile by tile.
        operands = np.ndarray((n, G, products_, tiles, tile, depth), dtype, shifted, 0,
                              (shifted.strides[0], shifted.strides[1], R * line,
                               tile * itemsize, itemsize, wide * itemsize))
        if by_rows:     # (n, G, products, block row, channel, row and column sub-pixel, width)
            result = arena.take((n, G, products_, M, wide), dtype)
            np.matmul(weights, operands[:, :, :, 0].swapaxes(-1, -2), out=result)
            cells = result.reshape(n, G, products_, R, per_out, n_rows, n_cols, wide)
        else:           # (n, G, products, width, block row, channel, row and column sub-pixel)
            result = arena.take((n, G, products_, tiles, tile, M), dtype)
            np.matmul(operands, weights[:, :, :, np.newaxis].swapaxes(-1, -2), out=result)
            cells = result.reshape(n, G, products_, wide, R, per_out, n_rows, n_cols)
        for rho in range(R):
            for i, p in enumerate(rows_axis.phases):
                # The products whose block row rho holds sub-pixel p inside the output.
                lo, hi = rows_axis.blocks(p, b0 + rho, b0 + count)
                q0, taken = -(-(lo - b0 - rho) // R), -(-(hi - b0 - rho) // R)
                taken -= q0
                if taken <= 0:
                    continue
                y0 = rows_axis.cell(b0 + rho + R * q0, p)
                step = R * sh
                target = out_groups[n0:n1, :, :, y0:y0 + step * taken:step]
                sub = slice(q0, q0 + taken)
                if by_rows:
                    for j, r, start, length, x0 in loose:
                        np.copyto(target[..., x0:x0 + sw * length:sw],
                                  cells[:, :, sub, rho, :, i, j, start:start + length].transpose(
                                      0, 1, 3, 2, 4))
                    continue
                if units is not None:
                    u0, u1 = units
                    whole = np.ndarray((n, G, taken, u1 - u0, per_out), unit, result,
                                       cells.strides[2] * q0 + cells.strides[3] * u0
                                       + cells.strides[4] * rho + cells.strides[6] * i,
                                       (cells.strides[0], cells.strides[1], cells.strides[2],
                                        cells.strides[3], cells.strides[5]))
                    sink = np.ndarray((n, G, per_out, taken, u1 - u0), unit, out,
                                      n0 * strides[0] + y0 * strides[2]
                                      + cols_axis.cell(u0, 0) * itemsize,
                                      (strides[0], per_out * strides[1], strides[1],
                                       step * strides[2], sw * itemsize))
                    np.copyto(sink, whole.transpose(0, 1, 4, 2, 3))
                for j, r, start, length, x0 in loose:
                    np.copyto(target[..., x0:x0 + sw * length:sw],
                              cells[:, :, sub, start:start + length, rho, :, i, j].transpose(
                                  0, 1, 4, 2, 3))
        if bias is not None:
            rows = out[n0:n1, :, max(0, rows_axis.cell(b0, 0)):rows_axis.cell(b0 + count, 0)]
            rows += bias[:, np.newaxis, np.newaxis]

    with driver.single_threaded_blas(plan_.settings.limit_blas):
        driver.run(strip, plan_)
    return out
