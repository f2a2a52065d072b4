"""A 3 x 3 layer by Winograd's minimal filtering F(2 x 2, 3 x 3): 16 matrix products, not 36.

Four outputs in a 2 x 2 block read a 4 x 4 tile ``d`` of the padded input
(stride 1: tiles two cells apart, overlapping by two). Winograd (1980), as
Lavin and Gray (2016) apply it to CNN layers, computes them as::

    y = A^T [ (G g G^T) * (B^T d B) ] A        (* : cell by cell, 4 x 4)

      B^T = [1  0 -1  0]     G = [ 1    0    0 ]     A^T = [1  1  1  0]
            [0  1  1  0]         [1/2  1/2  1/2]           [0  1 -1 -1]
            [0 -1  1  0]         [1/2 -1/2  1/2]
            [0  1  0 -1]         [ 0    0    1 ]

The 16 products of a tile, one per cell ``(k, l)`` of the 4 x 4 transforms,
replace the 36 multiply-adds of four 3 x 3 windows. Over channels, cell
``(k, l)`` of every tile at once is one matrix product::

    M[k, l] = U[k, l] @ V[k, l]
    (C_out, tiles)  (C_out, C_in)  (C_in, tiles)

with ``U = G g G^T`` of each pair of channels (the kernel's transform, once
per call) and ``V = B^T d B`` of each tile and input channel. So a layer is 16
products of depth C_in instead of 9 over four times as many cells: 2.25 times
fewer multiply-adds in BLAS, at the price of the transforms, which add and
subtract only.

The transforms are passes over whole arrays, each a NumPy call over every
tile of a strip (of several images) at once. The input of a strip is split
into its four phases ``(row % 2, column % 2)`` and laid out flat, ``s =
tiles_w + 1`` cells a row, the channels one after another: cell ``(i, j)``
of tile ``(k, l)`` is then the phase ``(k % 2, l % 2)`` shifted by ``(k // 2)
* s + l // 2``, so every transform is an addition of two shifted runs of one
contiguous buffer. Each run's last column, and its last row per channel,
straddle a row or a channel; their results are computed and dropped. The
separable transform (rows, then columns) makes 24 passes over tile-sized
arrays on the way in and 24 on the way out, and the inverse transform of a
strip runs as its products come, transform row by row (``k``), so that only
four of the 16 ``V`` and ``M`` are ever held.

Cost per output cell, for C_in = C_out = C: 4 C multiply-adds in BLAS
(against 9 C), about 12 additions per channel in the transforms and a fetch
of the input; measured, one thread, the benchmark's layer (N = 8, 64 -> 64,
56 x 56, float32): 14 ms, against 18 ms for the stacked products of
``layer.py``. Memory: about 7 (C_in + C_out) cells per tile and row of tiles
of a strip.

Limits: 3 x 3 kernels at stride 1 and dilation 1, float32 and float64 (every
border mode, bias, groups). Integers keep the exact sums of ``layer.py``.
The transforms mix the cells of a tile, so a NaN or an infinity reaches all
four outputs of its tiles (and infinities meet as NaN), and large finite
values may overflow where the direct sums do not: a strip whose result is not
all finite is recomputed by ``layer.py``, so NaN and infinity land exactly
where the reference puts them. Its rounding error: a few units of the
dtype's precision times the sum of the magnitudes of the kernel's terms, like
the direct sums' (the transforms' coefficients are 0, +-1/2 and +-1).
"""
import dataclasses
import math

import numpy as np

from .. import driver, settings as _settings
from ..padding import Padded
from ..shapes import conv_geometry
from . import layer
from .costs import cell_scale, products

__all__ = ["plan", "conv2d", "kernel_transform"]

#: B^T's rows (and B's columns) as one operation on two cells: cell k of the
#: transform is ``op(d[a], d[b])``.
_IN = ((np.subtract, 0, 2), (np.add, 1, 2), (np.subtract, 2, 1), (np.subtract, 1, 3))

#: The kernel's transform: ``G g G^T`` of each (3, 3) kernel.
_G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])

#: NumPy calls of a strip: 4 fetches (each a few), 3 + 4 transform passes and
#: 4 products per transform row, 6 inverse passes per row, 4 writes.
_CALLS = 4 * 4 + 4 * (3 + 4 + 4 + 6) + 4 + 2


def kernel_transform(kernel, groups):
    """``U[k, l]``: (4, 4, groups, C_out / groups, C_in / groups), ``G g G^T`` of every kernel.

    ``kernel`` is (C_out, C_in / groups, 3, 3); computed in its dtype (the
    coefficients 1/2 are exact).
    """
    out_channels, per_in = kernel.shape[:2]
    g = _G.astype(kernel.dtype)
    u = g @ kernel @ g.T                                   # (C_out, C_in / groups, 4, 4)
    u = u.reshape(groups, out_channels // groups, per_in, 4, 4)
    return np.ascontiguousarray(u.transpose(3, 4, 0, 1, 2))


def _check(kernel_shape, geometry, dtype):
    """ValueError where this path does not take the layer: it says which condition fails."""
    if tuple(kernel_shape[2:]) != (3, 3):
        raise ValueError(f"method 'winograd' takes 3 x 3 kernels, got {tuple(kernel_shape[2:])}")
    if geometry.stride != (1, 1) or geometry.dilation != (1, 1):
        raise ValueError(f"method 'winograd' takes stride 1 and dilation 1, got stride "
                         f"{geometry.stride} and dilation {geometry.dilation}")
    if np.dtype(dtype) not in (np.float32, np.float64):
        raise ValueError(f"method 'winograd' computes in float32 or float64, got "
                         f"{np.dtype(dtype)}")


class _Tiles:
    """How a strip's tiles lie in its buffers: ``s`` cells a row, ``tile_rows + 1`` rows a channel."""

    def __init__(self, images, kernel_shape, geometry, groups, padding_mode, fill_value, dtype):
        self.in_channels = images.shape[1]
        self.out_channels = kernel_shape[0]
        self.groups, self.dtype = groups, np.dtype(dtype)
        self.source = Padded(images.reshape((-1,) + images.shape[2:]), geometry.padding,
                             padding_mode, fill_value)
        self.height, self.width = geometry.output_shape
        self.s = (self.width + 1) // 2 + 1

    def row_bytes(self):
        """Buffer bytes per output row: 4 phases, 2 + 1 transform rows in, 1 + 4 + 2 out."""
        return (7 * self.in_channels + 7 * self.out_channels) * self.s * self.dtype.itemsize // 2

    def work(self, st):
        """What a strip costs, for the driver's plan (`driver.Work`), per output row.

        Per tile (half a tile row an output row): 16 products over the
        group's input channels; 24 passes over the input's transforms and 24
        over the output's; the fetch of 4 phases and the writes of 4.
        """
        s, c, o = self.s, self.in_channels, self.out_channels
        per_in = c // self.groups
        macs = 16 * o * per_in * s / 2
        passes = (24 * (c + o) * st.flat_ns + 4 * c * st.fetch_ns + 4 * o * st.strided_ns) * s / 2
        row_ns = (cell_scale(self.dtype) * passes
                  + products(macs, per_in * s * self.dtype.itemsize, self.dtype, st))
        return driver.Work(row_bytes=self.row_bytes(), extra_rows=2, row_ns=row_ns,
                           calls=_CALLS, rows_multiple=2)


def plan(images, kernel_shape, geometry, groups, padding_mode, fill_value, dtype, s):
    """The plan of a layer by F(2 x 2, 3 x 3): strips of output rows (even counts), threads.

    Raises ValueError where the path does not take the layer (`_check`).
    """
    _check(kernel_shape, geometry, dtype)
    tiles = _Tiles(images, kernel_shape, geometry, groups, padding_mode, fill_value, dtype)
    out_bytes = (images.shape[0] * kernel_shape[0] * math.prod(geometry.output_shape)
                 * tiles.dtype.itemsize)
    strips = dataclasses.replace(s, strip_bytes=max(s.strip_bytes, s.winograd_strip_bytes))
    return driver.plan(images.shape[0], geometry.output_shape[0], out_bytes, tiles.work(s),
                       strips)._replace(detail=tiles, settings=s)


def conv2d(images, kernel, geometry, groups, padding_mode, fill_value, dtype, bias=None,
           out=None, plan_=None):
    """A 3 x 3 layer at stride 1 by F(2 x 2, 3 x 3); arguments as ``layer.conv2d``'s.

    Strips whose result is not all finite (NaN or infinity in their input,
    or an overflow in the transforms) are recomputed by ``layer.conv2d``.
    """
    if plan_ is None:
        plan_ = plan(images, kernel.shape, geometry, groups, padding_mode, fill_value, dtype,
                     _settings.current())
    tiles = plan_.detail
    height, width = geometry.output_shape
    batch, out_channels = images.shape[0], kernel.shape[0]
    if out is None:
        out = np.empty((batch, out_channels, height, width), dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        u = kernel_transform(kernel, groups)
    if not np.isfinite(u).all():
        return layer.conv2d(images, kernel, geometry, groups, padding_mode, fill_value, dtype,
                            bias, out)
    spoilt = []

    def strip(arena, batch_slice, rows):
        # Overflow and NaN in a strip's transforms are not the result's: the strip is redone.
        with np.errstate(over="ignore", invalid="ignore"):
            finite = _strip(arena, tiles, u, bias, out, batch_slice, rows)
        if not finite:
            spoilt.append((batch_slice, rows))

    layer._run(strip, plan_)
    for batch_slice, rows in spoilt:
        _redo(images, kernel, geometry, groups, padding_mode, fill_value, dtype, bias,
              out, batch_slice, rows)
    return out


def _redo(images, kernel, geometry, groups, padding_mode, fill_value, dtype, bias, out,
          batch_slice, rows):
    """Output ``rows`` of images ``batch_slice`` by the direct sums of ``layer.conv2d``."""
    source = Padded(images[batch_slice].reshape((-1,) + images.shape[2:]), geometry.padding,
                    padding_mode, fill_value)
    part = source.region(slice(None), range(rows.start, rows.stop + 2),
                         range(geometry.output_shape[1] + 2), dtype)
    part = part.reshape((-1, images.shape[1]) + part.shape[1:])
    layer.conv2d(part, kernel, conv_geometry(part.shape, (3, 3)), groups, "zeros", 0, dtype,
                 bias, out=out[batch_slice, :, rows])


def _strip(arena, tiles, u, bias, out, batch_slice, rows):
    """Output ``rows`` (an even start) of images ``batch_slice`` into ``out``; whether all finite."""
    n = batch_slice.stop - batch_slice.start
    c, o, s, dtype = tiles.in_channels, tiles.out_channels, tiles.s, tiles.dtype
    groups = tiles.groups
    first, tile_rows = rows.start // 2, -(-(rows.stop - rows.start) // 2)
    span = (tile_rows + 1) * s                 # one channel's run of tile positions
    length, out_length = n * c * span, n * o * span
    # Four phases, each followed by room for the shifted runs that pass its end.
    phases = arena.take((4, length + s + 2), dtype)
    phases[:, length:] = 0
    for index, (p, q) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
        top = 2 * first + p
        tiles.source.region(
            slice(batch_slice.start * c, batch_slice.stop * c),
            range(top, top + 2 * (tile_rows + 1), 2), range(q, q + 2 * s, 2), dtype,
            out=phases[index, :length].reshape(n * c, tile_rows + 1, s))
    rows_in = arena.take((2, length + 1), dtype)      # B^T d of one transform row, per column phase
    cell = arena.take((length,), dtype)                # V[k, l]
    product = arena.take((out_length,), dtype)         # M[k, l], where it is not summed in place
    result = arena.take((4, out_length), dtype)        # y, per output phase (row % 2, col % 2)
    partial = arena.take((2, out_length), dtype)       # A^T-row sums of M[k, :], for k >= 2
    (y00, y01, y10, y11), (p0, p1) = result, partial
    shape_in, shape_out = (n, groups, c // groups, span), (n, groups, o // groups, span)
    for k in range(4):
        # B^T d: transform row k from tile rows i = k - 1 .. k + 1 (phase i % 2, shifted i // 2).
        for q in range(2):
            d = [phases[2 * (i % 2) + q, (i // 2) * s:(i // 2) * s + length + 1]
                 for i in range(4)]
            op, a, b = _IN[k]
            op(d[a], d[b], out=rows_in[q])
        # (B^T d) B, column l, read shifted as the rows were; each then multiplied by U[k, l].
        e = [rows_in[j % 2, j // 2:j // 2 + length] for j in range(4)]
        first_sum, second_sum = ((y00, y01), (y10, y11), (p0, p1), (p0, p1))[k]
        for l in range(4):
            op, a, b = _IN[l]
            op(e[a], e[b], out=cell)
            target = (first_sum, second_sum, product, product)[l]
            np.matmul(u[k, l], cell.reshape(shape_in), out=target.reshape(shape_out))
            if k == 1 and l == 1 and bias is not None:
                # M[1, 1] reaches all four outputs of its tile once: the bias joins it there.
                view = target.reshape(n, o, span)
                np.add(view, bias[:, np.newaxis], out=view)
            # A^T along the row: first = M0 + M1 + M2, second = M1 - M2 - M3.
            if l == 1:
                np.add(first_sum, second_sum, out=first_sum)
            elif l == 2:
                np.add(first_sum, product, out=first_sum)
                np.subtract(second_sum, product, out=second_sum)
            elif l == 3:
                np.subtract(second_sum, product, out=second_sum)
        # A^T down the column: y0 = r0 + r1 + r2, y1 = r1 - r2 - r3 (r0, r1 summed in place).
        if k == 1:
            np.add(y00, y10, out=y00)
            np.add(y01, y11, out=y01)
        elif k >= 2:
            for y, r in ((y00, p0), (y01, p1)) if k == 2 else ():
                np.add(y, r, out=y)
            for y, r in ((y10, p0), (y11, p1)):
                np.subtract(y, r, out=y)
    if not np.isfinite(np.add.reduce(result, axis=None)):
        return False
    grid = result.reshape(2, 2, n, o, tile_rows + 1, s)
    for p in range(2):
        out_rows = range(rows.start + p, rows.stop, 2)
        for q in range(2):
            out_cols = range(q, tiles.width, 2)
            np.copyto(out[batch_slice, :, rows.start + p:rows.stop:2, q::2],
                      grid[p, q, :, :, :len(out_rows), :len(out_cols)])
    return True
