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
into its four phases ``(row % 2, column % 2)`` (the cells inside the input
one strided copy each, the border around them zeros or `Padded.region`'s)
and laid out flat, ``s = tiles_w + 1`` cells a row, the channels one after
another: cell ``(i, j)`` of every tile is then phase ``(i % 2, j % 2)``
shifted by ``(i // 2) * s + j // 2`` cells, so every transform is an
addition of two shifted runs of one contiguous buffer. Each run's last
column, and its last row per channel, straddle a row or a channel; their
results are computed and dropped. The separable transform (rows, then
columns) makes 24 passes over tile-sized arrays on the way in and 24 on the
way out, and the inverse transform of a strip runs as its products come,
transform row by row (``k``), so that only two of the 16 ``V`` and four of
the 16 ``M`` are ever held (the row's ``B^T d`` and the sums of its ``M``
along ``A^T`` share one buffer: the smaller a strip's buffers, the more of
them stay in cache).

Cost per output cell, for C_in = C_out = C: 4 C multiply-adds in BLAS
(against 9 C), about 12 additions per channel in the transforms and a fetch
of the input; measured, one thread, the benchmark's layer (N = 8, 64 -> 64,
56 x 56, float32): 12.5 to 13 ms, against 18 ms for the stacked products of
``layer.py``; the 16 products alone take 6.7 to 7.1 ms of it. On two threads it runs 1.35
to 1.4 times faster than on one, where two processes, each on half the
images, run 2.0 times faster: a strip makes some 60 NumPy calls of a few
microseconds, and a thread waiting for the GIL wakes tens of microseconds
late (here, 37 a wake-up, measured by two threads taking turns). Strips of
two images halve the waits (measured, two threads: 0.90 to 0.93 of the time
of one-image strips), but double the memory beside the output. Memory: 6
(C_in + C_out) + 2 max(C_in, C_out) cells per column of tiles and row of
tiles of a strip.

Limits: 3 x 3 kernels at stride 1 and dilation 1, float32 and float64 (every
border mode, bias, groups). Integers keep the exact sums of ``layer.py``.
'auto' weighs it only for groups of 16 input channels or more (fewer make
shallow products, and the transforms outweigh what they save), and small
images pay for the dropped column and row of tiles (a 7 x 7 image computes
5 x 5 tiles for its 4 x 4).
The transforms mix the cells of a tile, so a NaN or an infinity reaches all
four outputs of its tiles (and infinities meet as NaN), and large finite
values may overflow where the direct sums do not: a strip whose result is not
all finite is recomputed by ``layer.py``, so NaN and infinity land exactly
where the reference puts them. Its rounding error: a few units of the
dtype's precision times the sum of the magnitudes of the kernel's terms, like
the direct sums' (the transforms' coefficients are 0, +-1/2 and +-1).

The larger tiles of F(4 x 4, 3 x 3) (``winograd4.py``: 2.25 multiply-adds an
output and channel instead of 4, transforms by small matrix products) run
under the same name: `plan` weighs both tile sizes by their estimates and
takes the faster (``Settings.winograd_outputs`` fixes one), in float64; in
float32 it runs only when that setting asks for it, since its rounding error
there is about twenty times the direct sums' (below). Measured, one
thread, the benchmark's layer: F(4 x 4) 0.80 to 0.83 of F(2 x 2)'s time; on
small images of many channels (256 -> 256 on 14 x 14) F(2 x 2) is faster, its
kernel's transform 16 cells a pair of channels against 36, read again by every
strip. F(4 x 4)'s rounding error in float32 is about ten times F(2 x 2)'s
(``winograd4.py``).
"""
import math

import numpy as np

from .. import driver, settings as _settings
from ..padding import Padded
from ..geometry import conv_geometry
from . import layer, winograd4, winograd_layout
from .costs import cell_scale, products

__all__ = ["plan", "conv2d", "kernel_transform"]

#: B^T's rows as one operation on two cells: row k of the transform is ``op(d[a], d[b])``.
_IN = ((np.subtract, 0, 2), (np.add, 1, 2), (np.subtract, 2, 1), (np.subtract, 1, 3))

#: The kernel's transform: ``G g G^T`` of each (3, 3) kernel.
_G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])

#: 'auto' weighs the path only for groups of at least this many input channels. Fewer
#: make its 16 products too shallow for BLAS, and its transforms (per input and output
#: channel) outweigh the multiply-adds they save; measured, one thread, against the
#: stacked products: 8 -> 8 channels 1.1 to 1.3 times slower, 16 -> 16 0.86, 2 a group
#: (64 channels, 32 groups) 1.4 to 1.7 times slower, on one thread and on two.
_FEWEST_CHANNELS = 16

#: NumPy calls of a strip, about: per transform row 4 passes in, 2 products, 5 passes
#: out; 4 writes, the check and the zeroing. And per image, 4 fetches of about 6 calls.
_CALLS, _IMAGE_CALLS = 4 * (4 + 2 + 5) + 4 + 3, 4 * 6


def kernel_transform(kernel, groups):
    """``U[k, l]``: (4, 4, groups, C_out / groups, C_in / groups), ``G g G^T`` of every kernel.

    ``kernel`` is (C_out, C_in / groups, 3, 3); the coefficients of ``G g
    G^T`` (0, +-1/4, +-1/2, 1) are exact in any float dtype
    (`winograd_layout.kernel_transform`).
    """
    return winograd_layout.kernel_transform(_G, kernel, groups)


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


class _Tiles(winograd_layout.Layout):
    """How a strip's tiles lie in its buffers: ``s`` cells a row, tile rows + 1 a channel."""

    outputs = 2          # outputs a tile, along each axis
    G = _G
    calls, image_calls = _CALLS, _IMAGE_CALLS

    def __init__(self, images, kernel_shape, geometry, groups, padding_mode, fill_value, dtype):
        super().__init__(images, kernel_shape, geometry, groups, padding_mode, fill_value, dtype)
        self.padding = geometry.padding
        # Zeros around the input, and past the padded input's edge: the border is a fill.
        self.zero_border = padding_mode == "zeros" or (padding_mode == "constant"
                                                       and fill_value == 0)
        self.s = (self.width + 1) // 2 + 1
        self.fetch_steps = {}      # `_fetch`'s slices, by grid shape and corner

    def positions(self):
        """Tile rows + 1, of ``s`` cells each: the row and column of tiles a strip drops."""
        return ((self.height + 1) // 2 + 1) * ((self.width + 1) // 2 + 1)

    def strip(self, arena, u, bias, out, batch_slice, rows):
        """Output ``rows`` (from an even row) of images ``batch_slice``; whether all finite."""
        return _strip(arena, self, u, bias, out, batch_slice, rows)

    def least_bytes(self):
        """Buffer bytes of the smallest strip `cut` makes: two output rows."""
        return 6 * self.row_bytes()

    def row_bytes(self):
        """Buffer bytes per output row: 4 phases and 2 + 2 transform rows in, 2 + 4 out, and
        2 shared by the transform's rows in and the sums out."""
        c, o = self.in_channels, self.out_channels
        return (6 * (c + o) + 2 * max(c, o)) * self.s * self.dtype.itemsize // 2

    def estimate(self, st):
        """(ns per output row of one image, ns once a call), by the prices of ``costs.py``.

        Per tile (half a tile row an output row): 16 products over the
        group's input channels; 24 passes over the input's transforms and 24
        over the output's; the fetch of 4 phases and the writes of 4. Once a
        call, the kernel's transform: a (16, 9) @ (9, pairs) product, bound
        by memory.
        """
        s, c, o = self.s, self.in_channels, self.out_channels
        per_in = c // self.groups
        tile_rows = (self.height + 1) // 2
        s *= (tile_rows + 1) / tile_rows     # the row of tiles an image's strips add, dropped
        macs = 16 * o * per_in * s / 2
        passes = (24 * (c + o) * st.flat_ns + 4 * c * st.fetch_ns + 4 * o * st.strided_ns) * s / 2
        row_ns = (cell_scale(self.dtype) * passes
                  + products(macs, per_in * s * self.dtype.itemsize, self.dtype, st))
        return row_ns, 16 * 9 * o * per_in * cell_scale(self.dtype) * st.flat_ns

    def cut(self, batch, budget, most=None):
        """Tasks ``(images, rows)`` within ``budget`` bytes of buffers: whole images, if they fit.

        Several whole images to a strip where they fit (one product then
        spans them all), else strips of an even number of rows. (``most``:
        for ``winograd4.Tiles.cut``'s sake, whose larger strips may take it.)
        """
        image_bytes = (self.height + 4) * self.row_bytes()
        if image_bytes <= budget:
            step = max(1, min(batch, budget // image_bytes))
            return [(slice(n, min(n + step, batch)), slice(0, self.height))
                    for n in range(0, batch, step)]
        rows = max(2, (budget // self.row_bytes() - 4) // 2 * 2)
        return [(slice(n, n + 1), slice(r, min(r + rows, self.height)))
                for n in range(batch) for r in range(0, self.height, rows)]


def plan(images, kernel_shape, geometry, groups, padding_mode, fill_value, dtype, s,
         outputs_room=2.85):
    """The plan of a 3 x 3 layer by Winograd's filtering: tile size, strips of output rows, threads.

    Both tile sizes are planned (F(2 x 2) here, F(4 x 4) in ``winograd4.py``;
    ``Settings.winograd_outputs`` keeps to one; float32 keeps to F(2 x 2)
    unless the setting asks for F(4 x 4)), and the one estimated faster
    taken, of those whose strip of one row of tiles fits the memory below.
    A strip's buffers are several times its output, and its ~50 NumPy
    calls want long strips, so strips are cut here (``Tiles.cut``), not by the
    driver's rule for the other paths: each at most
    ``Settings.winograd_strip_bytes``, all the threads' together within
    ``outputs_room`` times the output (strips of ``Settings.min_strip_bytes``
    at least; the forward pass plans for 2.85 of its 3, leaving NumPy's own
    temporaries beside the buffers room: measured, strips planned for 3 came
    to 2.85 and 3.003 times the output in NumPy 2.4 and 1.23), beside
    the kernel's transform, which every strip reads whole (the estimate prices
    that read where the transform outgrows the cache). Layers of fewer than
    `_FEWEST_CHANNELS` input channels a group get an infinite estimate: they
    run here when asked for by name only. Raises ValueError where the path
    does not take the layer (`_check`).
    """
    _check(kernel_shape, geometry, dtype)
    sizes = {2: _Tiles, 4: winograd4.Tiles}
    if s.winograd_outputs is not None:
        sizes = {s.winograd_outputs: sizes[s.winograd_outputs]}
    elif np.dtype(dtype) == np.float32:
        # F(4 x 4)'s rounding in float32 is some twenty times the direct sums' (winograd4.py):
        # taken there only when asked for by the setting.
        sizes = {2: _Tiles}
    batch = images.shape[0]
    # The tile size estimated fastest of those whose kernel's transform and strip of one
    # row of tiles fit within 3 times the output beyond it (either, if neither does).
    chosen = min((_plan(kind(images, kernel_shape, geometry, groups, padding_mode, fill_value,
                             dtype), batch, kernel_shape, geometry, s, outputs_room)
                  for kind in sizes.values()), key=lambda option: (option[1], option[0].ns))[0]
    if kernel_shape[1] < _FEWEST_CHANNELS:       # runs when asked for, never by 'auto'
        chosen = chosen._replace(ns=math.inf)
    return chosen


def _plan(tiles, batch, kernel_shape, geometry, s, outputs_room):
    """(plan, whether its strips pass the room) of one tile size: the fastest estimated."""
    height = geometry.output_shape[0]
    out_bytes = batch * kernel_shape[0] * math.prod(geometry.output_shape) * tiles.dtype.itemsize
    row_ns, fixed_ns = tiles.estimate(s)
    # Memory beyond input, output and the kernel's transform ((outputs + 2) ** 2 cells a
    # pair of channels): every thread's strip, together within outputs_room times the output.
    transform_cells = (tiles.outputs + 2) ** 2 * kernel_shape[0] * kernel_shape[1]
    room = int(outputs_room * out_bytes)
    # Every strip's products read the whole transform, from memory where it outgrows the
    # cache, at the price of a fetch (deep layers on small images: measured, 256 -> 256
    # channels on 8 x 14 x 14, F(4 x 4)'s 9.4 MiB read by 4 strips took 1.25 times
    # F(2 x 2)'s 4.7 MiB read by 2, whose products multiply 1.8 times as many cells).
    transform_ns = (transform_cells * cell_scale(tiles.dtype) * s.fetch_ns
                    * min(1.0, transform_cells * tiles.dtype.itemsize / s.cache_bytes))
    most, options = driver.threads(), []
    for threads in sorted({most} | {2 ** i for i in range(most.bit_length()) if 2 ** i < most}):
        budget = max(min(s.winograd_strip_bytes, room // threads), s.min_strip_bytes)
        tasks = tiles.cut(batch, budget, room // threads)
        images_per_task = max(1.0, batch / len(tasks))
        # Each product of a group is a BLAS call of its own, at a call's price.
        per_task = (tiles.outputs + 2) ** 2 * tiles.groups * s.call_ns + transform_ns
        with driver.limit_threads(threads):
            options.append(driver.plan_tasks(tasks, batch * height * row_ns
                                             + len(tasks) * per_task,
                                             tiles.calls + tiles.image_calls * images_per_task,
                                             fixed_ns, s))
    chosen = min(options, key=lambda option: (option.ns, option.threads))
    return chosen._replace(detail=tiles), room < tiles.least_bytes()


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
    spoilt = []

    def strip(arena, batch_slice, rows):
        # Overflow and NaN in a strip's transforms are not the result's: the strip is redone.
        with np.errstate(over="ignore", invalid="ignore"):
            finite = tiles.strip(arena, u, bias, out, batch_slice, rows)
        if not finite:
            spoilt.append((batch_slice, rows))

    # BLAS on one thread while the strips are the threads (as ``layer.py`` runs), the
    # kernel's transform too: a product large enough for BLAS to wake its own threads,
    # which then keep spinning for a while beside the strips'.
    with driver.single_threaded_blas(plan_.settings.limit_blas):
        with np.errstate(over="ignore", invalid="ignore"):
            u = tiles.kernel_transform(kernel)
        if not np.isfinite(u).all():
            return layer.conv2d(images, kernel, geometry, groups, padding_mode, fill_value,
                                dtype, bias, out)
        driver.run(strip, plan_)
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


def _fetch_steps(tiles, shape, top, left):
    """How `_fetch` fills a grid of ``shape`` (tile rows + 1, s) from ``top``, ``left``.

    ((grid's slices, the input's slices) of the cells inside the input, or
    None; the border's pieces (row0, row1, column0, column1), none empty).
    """
    (pad_top, _), (pad_left, _) = tiles.padding
    height, width = tiles.source.matrix.shape[1:]
    rows, cols = shape
    # Grid rows t0 .. t1 (columns j0 .. j1) fall inside the input.
    t0, t1 = (max(0, min(rows, -(-(bound + pad_top - top) // 2))) for bound in (0, height))
    j0, j1 = (max(0, min(cols, -(-(bound + pad_left - left) // 2))) for bound in (0, width))
    inside = None
    if t0 < t1 and j0 < j1:
        r, k = top + 2 * t0 - pad_top, left + 2 * j0 - pad_left
        inside = ((slice(None), slice(t0, t1), slice(j0, j1)),
                  (slice(None), slice(r, r + 2 * (t1 - t0) - 1, 2),
                   slice(k, k + 2 * (j1 - j0) - 1, 2)))
    else:
        t0 = t1 = j0 = j1 = 0
    # The border: whole rows above and below, then the columns beside the inside rows.
    pieces = [(0, t0, 0, cols), (t1, rows, 0, cols), (t0, t1, 0, j0), (t0, t1, j1, cols)]
    return inside, [piece for piece in pieces if piece[0] < piece[1] and piece[2] < piece[3]]


def _fetch(tiles, grid, image, top, left):
    """``grid`` (C_in, tile rows + 1, s): the padded input of ``image``, every other row
    from ``top``, every other column from ``left``.

    The cells inside the input are one strided copy of it; the border around
    them is zeros (cleared with the whole buffer by `fetch_phases`), or, for
    the other modes, `Padded.region`'s. (The slices of a grid's shape and
    corner are worked out once, `_fetch_steps`.)
    """
    key = (grid.shape[1:], top, left)
    steps = tiles.fetch_steps.get(key)
    if steps is None:
        steps = tiles.fetch_steps[key] = _fetch_steps(tiles, grid.shape[1:], top, left)
    inside, pieces = steps
    channels = slice(image * tiles.in_channels, (image + 1) * tiles.in_channels)
    if inside is not None:
        np.copyto(grid[inside[0]], tiles.source.matrix[channels][inside[1]], casting="unsafe")
    if tiles.zero_border:        # zeros already: `fetch_phases` cleared the whole buffer
        return
    for a, b, c, d in pieces:
        tiles.source.region(channels, range(top + 2 * a, top + 2 * b, 2),
                            range(left + 2 * c, left + 2 * d, 2), grid.dtype,
                            out=grid[:, a:b, c:d])


def fetch_phases(arena, tiles, batch_slice, rows):
    """The strip's padded input in four phases (row % 2, column % 2), laid out flat.

    (4, length + s + 2): each phase channel-major, (C_in, n, tile rows + 1,
    s), so that a product spans the strip's images, then room for the
    shifted runs that pass its end (zeros).
    """
    n, c, s = batch_slice.stop - batch_slice.start, tiles.in_channels, tiles.s
    first, tile_rows = rows.start // 2, -(-(rows.stop - rows.start) // 2)
    length = n * c * (tile_rows + 1) * s
    phases = arena.take((4, length + s + 2), tiles.dtype)
    # A zero border: the whole buffer cleared in one pass (the inside is then written
    # over), not eight pieces of border an image, each a call.
    phases[:, 0 if tiles.zero_border else length:] = 0
    for index, (p, q) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
        grid = phases[index, :length].reshape(c, n, tile_rows + 1, s)
        for i, image in enumerate(range(batch_slice.start, batch_slice.stop)):
            _fetch(tiles, grid[:, i], image, 2 * first + p, q)
    return phases


def input_row(phases, k, s, length, rows_in):
    """Row k of ``B^T d`` into ``rows_in`` (2, length + 1), both column phases in one pass.

    From tile rows i = k - 1 .. k + 1 (phase i % 2, shifted i // 2 rows of tiles).
    """
    op, *pair = _IN[k]
    op(*(phases[2 * (i % 2):2 * (i % 2) + 2, (i // 2) * s:(i // 2) * s + length + 1]
         for i in pair), out=rows_in)


def middle_cells(rows_in, length, cells):
    """``V[k, 1]`` and ``V[k, 2]`` (e1 + e2 and e2 - e1) of row k, read shifted as the rows were."""
    e1, e2 = rows_in[1, :length], rows_in[0, 1:]
    np.add(e1, e2, out=cells[0])
    np.subtract(e2, e1, out=cells[1])


def end_cells(rows_in, length, cells):
    """``V[k, 0]`` and ``V[k, 3]`` (e0 - e2 and e1 - e3): each column phase less itself shifted."""
    np.subtract(rows_in[:, :length], rows_in[:, 1:], out=cells)


def _strip(arena, tiles, u, bias, out, batch_slice, rows):
    """Output ``rows`` (from an even row) of images ``batch_slice``; whether all were finite."""
    n = batch_slice.stop - batch_slice.start
    c, o, s, dtype = tiles.in_channels, tiles.out_channels, tiles.s, tiles.dtype
    groups = tiles.groups
    tile_rows = -(-(rows.stop - rows.start) // 2)
    span = (tile_rows + 1) * s                 # one channel's run of tile positions
    length, out_length = n * c * span, n * o * span
    phases = fetch_phases(arena, tiles, batch_slice, rows)
    # B^T d, one row k, per column phase; once the row's V are made, the A^T-row sums of
    # its M (for k >= 2) take its place.
    shared = arena.take((2, max(length + 1, out_length)), dtype)
    rows_in, partial = shared[:, :length + 1], shared[:, :out_length]
    cells = arena.take((2, length), dtype)             # V[k, l] of two columns l
    products_ = arena.take((2, out_length), dtype)     # M[k, 1], M[k, 2]
    result = arena.take((4, out_length), dtype)        # y, per output phase (row % 2, col % 2)
    shape_in, shape_out = (2, groups, c // groups, n * span), (2, groups, o // groups, n * span)
    cells_in, products_out = cells.reshape(shape_in), products_.reshape(shape_out)
    sums_out = [result[:2].reshape(shape_out), result[2:].reshape(shape_out),
                partial.reshape(shape_out), partial.reshape(shape_out)]
    for k in range(4):
        # B^T d: transform row k from tile rows i = k - 1 .. k + 1 (phase i % 2, shifted
        # i // 2), both column phases in one pass.
        input_row(phases, k, s, length, rows_in)
        middle_cells(rows_in, length, cells)
        np.matmul(u[k, 1:3], cells_in, out=products_out)
        end_cells(rows_in, length, cells)
        sums = result[:2] if k == 0 else result[2:] if k == 1 else partial
        np.matmul(u[k, ::3], cells_in, out=sums_out[k])
        if k == 1 and bias is not None:
            # M[1, 1] reaches all four outputs of its tile once: the bias joins it there.
            view = products_[0].reshape(o, n * span)
            np.add(view, bias[:, np.newaxis], out=view)
        # A^T along the row, from sums = (M0, M3), products_ = (M1, M2):
        # sums[0] = M0 + M1 + M2, sums[1] = M1 - M2 - M3.
        np.add(sums[0], products_[0], out=sums[0])
        np.add(sums[0], products_[1], out=sums[0])
        np.subtract(products_[0], sums[1], out=sums[1])
        np.subtract(sums[1], products_[1], out=sums[1])
        # A^T down the column: y0 = r0 + r1 + r2, y1 = r1 - r2 - r3 (r0, r1 summed in place).
        if k == 1:
            np.add(result[:2], result[2:], out=result[:2])
        elif k == 2:
            np.add(result[:2], partial, out=result[:2])
        if k >= 2:
            np.subtract(result[2:], partial, out=result[2:])
    # A NaN or an infinity makes the sum so; a finite sum that overflows only sends the
    # strip to the direct sums, which is correct. A matrix-vector product sums each output
    # channel's tiles first (BLAS: a quarter of the time of NumPy's reduction).
    if not np.isfinite(np.add.reduce(result.reshape(-1, n * span) @ tiles.ones[:n * span])):
        return False
    grid = result.reshape(2, 2, o, n, tile_rows + 1, s).swapaxes(2, 3)
    for p in range(2):
        out_rows = range(rows.start + p, rows.stop, 2)
        for q in range(2):
            out_cols = range(q, tiles.width, 2)
            np.copyto(out[batch_slice, :, rows.start + p:rows.stop:2, q::2],
                      grid[p, q, :, :, :len(out_rows), :len(out_cols)])
    return True
