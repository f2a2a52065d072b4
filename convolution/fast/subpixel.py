"""'subpixel': the transposed convolution, every stride phase of a block of rows in one product.

The idea
    A transposed convolution with stride s spreads each input cell over the
    output, s cells apart. Along one axis, kernel tap ``a`` lands input cell
    ``i`` on output cell ``Y = i*s + a*d`` (before the padding is cropped):
    on cell ``n*s + p`` with ``p = a*d % s`` (the tap's phase) and ``n = i +
    a*d // s``. So the s cells ``n*s + p`` of one block ``n`` (its
    sub-pixels) gather from the same few input cells ``n - reach .. n``, each
    through the taps of its own phase (``shapes.stride_phase``); in 2-D, the
    sh * sw sub-pixels of block ``(n, m)`` gather from one window of
    ``(reach_h + 1) x (reach_w + 1)`` input cells. A window times one matrix
    gives all of them at once: the transposed convolution is a plain
    correlation at stride 1 with ``sh * sw * C_out`` output channels and a
    kernel of ``ceil(kh/sh) x ceil(kw/sw)`` taps, whose channels are then
    laid out as the sub-pixels of each block (the "sub-pixel convolution"
    of Shi et al., 2016, read backwards; PyTorch's ``pixel_shuffle``).

    As a product: lay each input row out once per column offset ``0 ..
    reach_w`` (``shifts`` copies, each shifted by one more cell; and the
    group's input channels between them). The ``R + reach_h`` consecutive
    rows of that layout below block row ``n`` are then one matrix of ``K =
    (R + reach_h) * C_in / groups * shifts`` rows, read in place, and the
    ``R`` block rows from ``n`` on are the band ``(M, K)`` times it, with
    ``M = R * C_out / groups * sh * sw`` rows of weights (`band`: the
    kernel's taps on its diagonals, zeros elsewhere). ``R`` is 1 wherever
    the sub-pixels alone give BLAS four rows or more. One ``np.matmul``
    takes every block row of a strip, in C, and ``sh * sw`` strided copies
    put the sub-pixels where they go in the output, cropping the padding.

Cost per output
    About ``K / (R * sh * sw)`` ... precisely ``K`` multiply-adds in BLAS per
    block and output channel, ``(reach_h + R) * (reach_w + 1)`` taps where
    the phase's own correlation has ``ceil(kh/sh) * ceil(kw/sw)`` or fewer
    (the band's zeros): for a 4 x 4 kernel at stride 2 none are wasted, for
    5 x 5 a third. The input is fetched once and copied ``shifts`` times,
    1 / (sh * sw) of an output's size each, and each output cell written
    once. Against the stride phases as separate correlations (``fast/
    operations.py``), each of which copies its own shifted rows of the same
    input and writes its strided slice, this shares the input's copies
    between the phases and makes one product call where they make one per
    phase, and no planning per phase.

Limits
    Floats that BLAS takes, finite kernels and finite data: the band's zeros
    would spread a NaN or an infinity onto the sub-pixels of other phases
    (0 * inf is NaN), so the caller sends those to the stride phases'
    correlations, which read only their own taps. The band holds ``R *
    (R + reach_h) / ceil(kh/sh)`` times the kernel's weights; it is kept
    (`kernel_cache`) for kernels of up to `CACHED_CELLS` weights. Memory:
    one strip's fetched rows, their shifted layout and its products (the
    driver's strips: a few MiB), and the band.
"""
import math

import numpy as np

from .. import driver
from ..padding import Padded
from ..shapes import stride_phase
from .cache import kernel_cache
from .costs import FETCH_CALLS, cell_scale, products

__all__ = ["CACHED_CELLS", "Axis", "axis", "band", "plan", "run"]

#: Kernels of more weights than this build their band each call (kept: at most this many).
CACHED_CELLS = 4096


class Axis:
    """One axis of the transposed convolution as blocks of ``stride`` sub-pixels.

    ``phases``: the phases some tap lands on, sorted; ``tap_phase[a]`` and
    ``tap_offset[a]``: tap ``a``'s phase and the blocks it reaches ahead
    (``shapes.stride_phase`` of ``a * dilation``); ``reach``: the largest of
    these. Output cell ``y`` is sub-pixel ``(y + crop) % stride`` of block
    ``(y + crop) // stride``; ``first`` and ``count``: the blocks that hold
    output cells, from ``crop // stride`` on.
    """

    def __init__(self, kernel_size, stride, dilation, crop, out_size):
        split = [stride_phase(a * dilation, stride) for a in range(kernel_size)]
        self.stride, self.crop, self.out_size = stride, crop, out_size
        self.tap_phase = tuple(p for p, _ in split)
        self.tap_offset = tuple(o for _, o in split)
        self.phases = tuple(sorted(set(self.tap_phase)))
        self.reach = max(self.tap_offset)
        self.first = crop // stride
        self.count = -(-(crop + out_size) // stride) - self.first

    def cells(self, phase, start, stop):
        """Blocks ``start .. stop - 1`` (counted from `first`) as far as sub-pixel
        ``phase`` of them is an output cell: ``(lo, hi, y0)``, output cells
        ``y0, y0 + stride, ...`` from block ``lo`` to ``hi - 1``; None if none is."""
        s, offset = self.stride, self.crop - phase
        lo = max(start, -(-offset // s) - self.first)
        hi = min(stop, (self.out_size - 1 + offset) // s - self.first + 1)
        if lo >= hi:
            return None
        return lo, hi, s * (self.first + lo) - offset


def axis(kernel_size, stride, dilation, crop, out_size):
    """The `Axis` of these parameters."""
    return Axis(kernel_size, stride, dilation, crop, out_size)


def _rows_per_product(out_channels, phases, s):
    """R: block rows per product, so that the band has about ``Settings.band_rows`` rows or more.

    Each block row more adds ``1 / R`` of the band's width to every output's
    multiply-adds (its zeros); fewer rows than BLAS's kernels take wastes
    their lanes. The sub-pixels of a block give ``phases`` rows per channel.
    """
    return max(1, -(-s.band_rows // (out_channels * phases)))


def _band(kernel, groups, strides, dilations, rows):
    """The band: (groups, M, K) weights, M over (block row, channel out, row phase, column
    phase), K over (input row, channel in, column shift) of one product (see the module's
    docstring). ``kernel`` (C_in, C_out / groups, kh, kw), the transposed layout."""
    in_channels, per_out, kh, kw = kernel.shape
    per_in = in_channels // groups
    (sh, sw), (dh, dw) = strides, dilations
    rows_axis, cols_axis = Axis(kh, sh, dh, 0, 1), Axis(kw, sw, dw, 0, 1)
    reach_h, reach_w = rows_axis.reach, cols_axis.reach
    # (groups, C_in / groups, C_out / groups, kh, kw) -> (groups, C_out / groups, C_in / groups, ...)
    weights = kernel.reshape(groups, per_in, per_out, kh, kw).transpose(0, 2, 1, 3, 4)
    matrix = np.zeros((groups, rows, per_out, len(rows_axis.phases), len(cols_axis.phases),
                       rows + reach_h, per_in, reach_w + 1), kernel.dtype)
    for a in range(kh):
        p = rows_axis.phases.index(rows_axis.tap_phase[a])
        for b in range(kw):
            r = cols_axis.phases.index(cols_axis.tap_phase[b])
            shift = reach_w - cols_axis.tap_offset[b]
            for i in range(rows):
                matrix[:, i, :, p, r, i + reach_h - rows_axis.tap_offset[a], :, shift] = (
                    weights[..., a, b])
    matrix = matrix.reshape(groups, rows * per_out * len(rows_axis.phases)
                            * len(cols_axis.phases), -1)
    matrix.flags.writeable = False      # cached: shared by every call with this kernel
    return matrix


_cached_band = kernel_cache(maxsize=64)(_band)


def band(kernel, groups, strides, dilations, rows):
    """`_band`, kept for kernels of up to `CACHED_CELLS` weights (read-only)."""
    if kernel.size > CACHED_CELLS:
        return _band(kernel, groups, strides, dilations, rows)
    return _cached_band(kernel, groups, strides, dilations, rows)


class _Layout:
    """What a call's strips share: both axes, the rows per product, the product's sizes."""

    def __init__(self, images_shape, kernel_shape, geometry, groups, s):
        batch, in_channels, height, width = images_shape
        _, per_out, kh, kw = kernel_shape
        (sh, sw), (dh, dw) = geometry.stride, geometry.dilation
        (top, _), (left, _) = geometry.padding
        self.rows = Axis(kh, sh, dh, top, geometry.output_shape[0])
        self.cols = Axis(kw, sw, dw, left, geometry.output_shape[1])
        self.batch, self.in_channels, self.groups = batch, in_channels, groups
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
        fetched = self.in_channels * (self.width + self.cols.reach)
        shifted = self.in_channels * self.shifts * self.width
        written = self.groups * self.per_out * self.sub_pixels * self.width
        macs = written * self.depth
        row_ns = (cell_scale(dtype) * (fetched * s.fetch_ns + shifted * s.copy_ns
                                       + written * s.strided_ns)
                  + products(macs, self.depth * self.width * itemsize, dtype, s))
        return driver.Work(row_bytes=(fetched + shifted + written) * itemsize,
                           extra_rows=self.rows.reach + self.R - 1, row_ns=row_ns,
                           calls=FETCH_CALLS + 2 + self.sub_pixels, fixed_ns=2 * s.call_ns,
                           rows_multiple=self.R)


def plan(images_shape, kernel_shape, geometry, groups, dtype, s):
    """Strips of block rows, the threads that share them, the estimate; ``detail``: the layout.

    ``images_shape`` (N, C_in, H, W), ``kernel_shape`` (C_in, C_out / groups,
    kh, kw), ``geometry`` a ``shapes.TransposeGeometry``.
    """
    layout = _Layout(images_shape, kernel_shape, geometry, groups, s)
    out_bytes = (images_shape[0] * groups * kernel_shape[1] * math.prod(geometry.output_shape)
                 * np.dtype(dtype).itemsize)
    chosen = driver.plan(images_shape[0], layout.height, max(out_bytes, 1),
                         layout.work(dtype, s), s)
    return chosen._replace(detail=layout)


def run(images, kernel, geometry, groups, dtype, bias, out, plan_):
    """Fill ``out`` (N, C_out, H_out, W_out) with the transposed convolution, as planned.

    ``images`` (N, C_in, H, W) and ``kernel`` (C_in, C_out / groups, kh, kw)
    finite, of a dtype BLAS takes; ``bias`` (C_out,) or None.
    """
    layout = plan_.detail
    rows_axis, cols_axis, R = layout.rows, layout.cols, layout.R
    batch, in_channels = images.shape[:2]
    G, per_in, per_out = groups, layout.per_in, layout.per_out
    n_rows, n_cols = len(rows_axis.phases), len(cols_axis.phases)
    matrix = band(kernel, groups, geometry.stride, geometry.dilation, R)[np.newaxis, :, np.newaxis]
    reach_h, reach_w, shifts, width = rows_axis.reach, cols_axis.reach, layout.shifts, layout.width
    depth, itemsize = layout.depth, np.dtype(dtype).itemsize
    # The input with reach_h rows and reach_w columns of zeros before it: its row
    # rows_axis.first + t is the first that block row t of the output reads.
    source = Padded(images.reshape((-1,) + images.shape[2:]), ((reach_h, 0), (reach_w, 0)))
    columns = range(cols_axis.first, cols_axis.first + width + reach_w)
    out_groups = out.reshape((batch, G, per_out) + out.shape[2:])
    grouped_bias = None if bias is None else bias.reshape(1, G, per_out, 1, 1)
    if n_rows < rows_axis.stride or n_cols < cols_axis.stride:   # sub-pixels no tap reaches
        out[...] = 0 if bias is None else bias[:, np.newaxis, np.newaxis]
    col_cells = [cols_axis.cells(r, 0, width) for r in cols_axis.phases]

    def strip(arena, images_slice, block_rows):
        n0, n1 = images_slice.indices(batch)[:2]
        n = n1 - n0
        count = block_rows.stop - block_rows.start
        products_ = -(-count // R)
        lines = products_ * R + reach_h
        first = rows_axis.first + block_rows.start
        fetched = source.region(slice(n0 * in_channels, n1 * in_channels),
                                range(first, first + lines), columns, dtype,
                                out=arena.take((n * in_channels, lines, len(columns)), dtype))
        f = fetched.reshape(n, G, per_in, lines, len(columns))
        # Each row once per column shift, the group's channels between: (n, G, lines, per_in,
        # shifts, width), so that the K rows a product reads are consecutive.
        if per_in == 1 and shifts == 1:
            shifted = f
            line = f.strides[3]
        else:
            shifted = arena.take((n, G, lines, per_in, shifts, width), dtype)
            bs, gs, cs, ls, xs = f.strides
            np.copyto(shifted, np.ndarray(shifted.shape, dtype, fetched, 0,
                                          (bs, gs, ls, cs, xs, xs)))
            line = shifted.strides[2]
        operands = np.ndarray((n, G, products_, depth, width), dtype, shifted, 0,
                              (shifted.strides[0], shifted.strides[1], R * line,
                               width * itemsize if shifted is not f else line, itemsize))
        result = arena.take((n, G, products_, matrix.shape[-2], width), dtype)
        np.matmul(matrix, operands, out=result)
        # (n, G, block rows, per_out, row phase, column phase, block columns)
        result = result.reshape(n, G, products_ * R, per_out, n_rows, n_cols, width)
        target = out_groups[n0:n1]
        for i, p in enumerate(rows_axis.phases):
            found = rows_axis.cells(p, block_rows.start, block_rows.start + count)
            if found is None:
                continue
            lo, hi, y0 = found
            lo, hi = lo - block_rows.start, hi - block_rows.start
            for j, cells in enumerate(col_cells):
                if cells is None:
                    continue
                c_lo, c_hi, x0 = cells
                source_cells = result[:, :, lo:hi, :, i, j, c_lo:c_hi].transpose(0, 1, 3, 2, 4)
                sink = target[..., y0:y0 + rows_axis.stride * (hi - lo):rows_axis.stride,
                              x0:x0 + cols_axis.stride * (c_hi - c_lo):cols_axis.stride]
                if grouped_bias is None:
                    np.copyto(sink, source_cells)
                else:
                    np.add(source_cells, grouped_bias, out=sink)

    with driver.single_threaded_blas(plan_.settings.limit_blas):
        driver.run(strip, plan_)
    return out
