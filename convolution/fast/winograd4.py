"""A 3 x 3 layer by Winograd's F(4 x 4, 3 x 3): 36 matrix products for 16 outputs, not 144.

The larger tile of ``winograd.py``'s minimal filtering (Lavin and Gray, 2016,
interpolation points 0, 1, -1, 2, -2 and infinity). Sixteen outputs in a
4 x 4 block read a 6 x 6 tile ``d`` of the padded input (tiles four cells
apart, overlapping by two)::

    y = A^T [ (G g G^T) * (B^T d B) ] A        (* : cell by cell, 6 x 6)

    B^T = [4  0 -5  0  1  0]   G = [ 1/4     0     0 ]   A^T = [1  1  1  1  1  0]
          [0 -4 -4  1  1  0]       [-1/6  -1/6  -1/6 ]         [0  1 -1  2 -2  0]
          [0  4 -4 -1  1  0]       [-1/6   1/6  -1/6 ]         [0  1  1  4  4  0]
          [0 -2 -1  2  1  0]       [1/24  1/12   1/6 ]         [0  1 -1  8 -8  1]
          [0  2 -1 -2  1  0]       [1/24 -1/12   1/6 ]
          [0  4  0 -5  0  1]       [ 0      0      1 ]

Over channels, cell ``(k, l)`` of every tile is one matrix product, as in
``winograd.py``: 36 products of depth C_in for 16 outputs, 2.25 multiply-adds
an output and input channel in BLAS, against F(2 x 2)'s 4 and the direct
sums' 9.

The transforms are matrix products too, each over every tile of a strip at
once. A strip's padded input is fetched once (`Padded.region`), and the 36
cells of its tiles are one strided copy of it, ``D[i, j]`` (C_in, images,
tile rows, tile columns) for tile cell ``(i, j)``. Then::

    R[:, j] = B^T @ D[:, j]          six (6, 6) @ (6, cells) products: B^T d
    V[k] = B^T @ R[k]                per row k of the transform: (B^T d B)[k, :]
    M[k, l] = U[k, l] @ V[k, l]      the six products of row k, one batched call
    S[k] = A^T @ M[k]                (A^T M)[.., k], as each row's products come
    Y[:, l] = A^T @ S[:, l]          four (4, 6) @ (6, cells) products: y

and the 16 cells of ``Y`` are written to the output, each one strided copy.
A (6, 6) @ (6, n) product reads six rows and writes six, one pass over the
memory where NumPy's additions would make four to six (the coefficients 2, 4,
5 and 8 each a multiplication of their own).

Cost per output cell, for C_in = C_out = C: 2.25 C multiply-adds in BLAS,
and about 14 cells a channel written by the transforms' small products, the
fetch and the write. Measured, one thread, the benchmark's layer (N = 8,
64 -> 64, 56 x 56, float32): 0.80 to 0.83 of F(2 x 2)'s time, its 36
products 3.2 to 3.7 ms of 12 to 13 (docs/layer.md). Memory per tile row of a
strip, for C_out <= 1.5 C_in: 78 C_in + 6 C_out cells a tile column, plus
the fetched rows; strips are cut (`Tiles.cut`) within
``Settings.winograd_strip_bytes``.

Precision: the transforms' coefficients (up to 8 and 1/24) make the rounding
error larger than F(2 x 2)'s: in float32, measured, about ten units of its
precision times the largest sum of an output's terms' magnitudes, against
half a unit for F(2 x 2) and 1.5 for the stacked products
(``testsuite/test_winograd.py``). Everything else is ``winograd.py``'s:
strips whose result is not all finite are redone by the direct sums.
"""
import numpy as np

from . import winograd_layout
from .costs import cell_scale, products

__all__ = ["kernel_transform", "Tiles"]

_BT = np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
                [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], float)
_G = np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
               [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]])
_AT = np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0],
                [0, 1, -1, 8, -8, 1]], float)

#: NumPy calls of a strip, about: the fetch's few, the cells' copy, 6 row products, per
#: transform row 3 products, 4 column products, the check's 3 and 16 writes.
_CALLS, _IMAGE_CALLS = 1 + 6 + 6 * 3 + 4 + 3 + 16, 4


def kernel_transform(kernel, groups):
    """``U[k, l]``: (6, 6, groups, C_out / groups, C_in / groups), ``G g G^T`` of every kernel.

    One (36, 9) @ (9, pairs) product in the kernel's dtype
    (`winograd_layout.kernel_transform`; the coefficients 1/6, 1/12 and 1/24
    rounded to it: in float32, errors of a unit of its precision, below the
    transforms' own).
    """
    return winograd_layout.kernel_transform(_G, kernel, groups)


class Tiles(winograd_layout.Layout):
    """How a strip's tiles lie in its buffers, and the strip itself (`strip`)."""

    outputs = 4          # outputs a tile, along each axis
    G = _G
    calls, image_calls = _CALLS, _IMAGE_CALLS

    @property
    def tiles_w(self):
        """Tiles along a row."""
        return -(-self.width // 4)

    def positions(self):
        """Tile rows times tile columns (the check's rows: as long as that, since rows of
        one tile row took 2.5 times as long)."""
        return -(-self.height // 4) * self.tiles_w

    def _cells(self):
        """Cells of buffers per tile row of one image: the fetch's 4 rows, the rest per tile."""
        c, o = self.in_channels, self.out_channels
        return (4 * c * (4 * self.tiles_w + 2)
                + (max(36 * c, 24 * o) + max(36 * c, 16 * o) + 6 * (c + o)) * self.tiles_w)

    def row_bytes(self):
        """Buffer bytes per output row (a quarter of a tile row)."""
        return self._cells() * self.dtype.itemsize // 4

    def least_bytes(self):
        """Buffer bytes of the smallest strip `cut` makes: one row of tiles."""
        return self.strip_bytes(1, 1)

    def strip_bytes(self, images, tile_rows):
        """Buffer bytes of a strip of ``tile_rows`` tile rows of ``images`` images."""
        extra = 2 * self.in_channels * (4 * self.tiles_w + 2)      # the fetch's last two rows
        return images * (tile_rows * self._cells() + extra) * self.dtype.itemsize

    def estimate(self, st):
        """(ns per output row of one image, ns once a call), by the prices of ``costs.py``.

        Per tile (a tile row is 4 output rows): 36 products over the group's
        input channels; the transforms' small products, each priced as a pass
        over the cells it writes (36 + 36 a channel in, 36 + 24 + 16 out,
        their reads in cache); the fetch of the padded rows, the strided copy
        of the 36 cells and the strided writes of 16. Once a call, the
        kernel's transform: a (36, 9) @ (9, pairs) product.
        """
        c, o, tw = self.in_channels, self.out_channels, self.tiles_w
        per_in = c // self.groups
        tiles = tw / 4 * (-(-self.height // 4) * 4 / self.height)   # a row's, with those dropped
        passes = (72 * c + 76 * o) * st.flat_ns + 16 * c * st.fetch_ns + (36 * c + 16 * o) \
            * st.strided_ns
        row_ns = (cell_scale(self.dtype) * passes * tiles
                  + products(36 * o * per_in * tiles, per_in * tw * self.dtype.itemsize,
                             self.dtype, st))
        return row_ns, 36 * 9 * o * per_in * cell_scale(self.dtype) * st.flat_ns

    def cut(self, batch, budget, most=None):
        """Tasks ``(images, rows)`` within ``budget`` bytes of buffers: whole images, if they fit.

        Several whole images to a strip where they fit, else strips of a
        multiple of 4 rows (one tile row at least). A strip of one whole
        image may take up to twice ``budget`` (and ``most`` at most): a strip
        makes about 55 NumPy calls, however few rows it has: strips of half an
        image took 1.03 to 1.05 times as long as whole ones on one thread, 1.3
        times in one run on two free cores (the benchmark's layer, 5 MiB an
        image).
        """
        tile_rows = -(-self.height // 4)
        image_bytes = self.strip_bytes(1, tile_rows)
        if image_bytes <= min(2 * budget, budget if most is None else max(budget, most)):
            step = max(1, min(batch, budget // image_bytes))
            return [(slice(n, min(n + step, batch)), slice(0, self.height))
                    for n in range(0, batch, step)]
        per_strip = max(1, min(tile_rows, budget // self.strip_bytes(1, 1)))
        # Strips of about equal size: as few as the budget allows.
        count = -(-tile_rows // per_strip)
        per_strip = -(-tile_rows // count)
        return [(slice(n, n + 1), slice(r, min(r + 4 * per_strip, self.height)))
                for n in range(batch) for r in range(0, self.height, 4 * per_strip)]

    def strip(self, arena, u, bias, out, batch_slice, rows):
        """Output ``rows`` (from a multiple of 4) of images ``batch_slice``; whether all finite."""
        n = batch_slice.stop - batch_slice.start
        c, o, dtype, groups = self.in_channels, self.out_channels, self.dtype, self.groups
        tiles_h, tiles_w = -(-(rows.stop - rows.start) // 4), self.tiles_w
        cells = n * tiles_h * tiles_w            # tiles of one channel
        length, out_length = c * cells, o * cells
        # The padded input's rows, channel-major (C_in, n, rows, columns): a product then
        # spans the strip's images.
        fetched = arena.take((c, n, 4 * tiles_h + 2, 4 * tiles_w + 2), dtype)
        for i, image in enumerate(range(batch_slice.start, batch_slice.stop)):
            self.source.region(slice(image * c, (image + 1) * c),
                               range(rows.start, rows.start + 4 * tiles_h + 2),
                               range(4 * tiles_w + 2), dtype, out=fetched[:, i])
        sc, sn, sr, se = fetched.strides
        # D[i, j]: cell (i, j) of every tile; the buffer holds S after the row transform.
        first = arena.take((max(36 * length, 24 * out_length),), dtype)
        cells_in = first[:36 * length].reshape(6, 6, length)
        np.copyto(cells_in.reshape(6, 6, c, n, tiles_h, tiles_w),
                  np.lib.stride_tricks.as_strided(
                      fetched, (6, 6, c, n, tiles_h, tiles_w),
                      (sr, se, sc, sn, 4 * sr, 4 * se), writeable=False))
        # R = B^T d, per tile column j; the buffer holds Y after the products.
        second = arena.take((max(36 * length, 16 * out_length),), dtype)
        rows_in = second[:36 * length].reshape(6, 6, length)
        bt, at = _BT.astype(dtype), _AT.astype(dtype)
        for j in range(6):
            np.matmul(bt, cells_in[:, j], out=rows_in[:, j])
        v = arena.take((6, length), dtype)                 # V[k, :] of one row k
        m = arena.take((6, out_length), dtype)             # M[k, :]
        sums = first[:24 * out_length].reshape(6, 4, out_length)     # S = A^T M, per row k
        shape_in, shape_out = (6, groups, c // groups, cells), (6, groups, o // groups, cells)
        for k in range(6):
            np.matmul(bt, rows_in[k], out=v)
            np.matmul(u[k], v.reshape(shape_in), out=m.reshape(shape_out))
            if k == 1 and bias is not None:
                # Row 1 and column 1 of A^T are all ones: M[1, 1] reaches every output of
                # its tile once, and the bias joins it there.
                view = m[1].reshape(o, cells)
                np.add(view, bias[:, np.newaxis], out=view)
            np.matmul(at, m, out=sums[k])
        result = second[:16 * out_length].reshape(4, 4, out_length)
        for l in range(4):
            np.matmul(at, sums[:, l], out=result[:, l])
        # NaN or infinity anywhere makes the sum so (as in winograd.py).
        if not np.isfinite(np.add.reduce(result.reshape(-1, cells) @ self.ones[:cells])):
            return False
        grid = result.reshape(4, 4, o, n, tiles_h, tiles_w).swapaxes(2, 3)
        for p in range(4):
            out_rows = len(range(rows.start + p, rows.stop, 4))
            for q in range(4):
                out_cols = len(range(q, self.width, 4))
                if out_rows and out_cols:
                    np.copyto(out[batch_slice, :, rows.start + p:rows.stop:4, q::4],
                              grid[p, q, :, :, :out_rows, :out_cols])
        return True
