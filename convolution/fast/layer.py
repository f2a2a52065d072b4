"""The CNN layer's fast paths: the sums over channels as matrix products, through BLAS.

Output channel ``o`` of a layer is a sum over input channels ``c`` and kernel
taps ``(a, b)`` (see ``reference_layers.conv2d_layer_loops``). Fix the tap, and the
sums over channels, for every output cell at once, are one matrix product::

    out[:, cells] += kernel[:, :, a, b] @ padded[:, cells the tap meets]
      (C_out, cells)      (C_out, C_in)          (C_in, cells)

So a layer is kh * kw matrix products, each as long as a strip of output
rows, and BLAS does the multiply-adds at close to the machine's peak. With
few input channels, those products are shallow; the taps' cells are then
stacked one above the other (an im2col of the strip, `_stacks`) and
multiplied in one deeper product. Groups
are a batch of smaller products, one per group (``np.matmul`` loops over
them in C); with one input channel per group (depthwise convolution) the
product is a broadcast multiply.

The cells a tap meets are a strided slice of the padded input (``geometry.tap``).
To hand BLAS a plain matrix without copying it, each strip of the padded
input is split into its stride phases (``geometry.tap_phases``: a tap reads one
phase, at a fixed offset) and laid out flat, ``row_width`` cells a row. Tap
``(a', b')`` of a phase then meets the cells ``a' * row_width + b'`` onwards,
one contiguous run per channel: a matrix whose rows are the channels, read in
place. The runs also cover the ``row_width - W_out`` cells at the end of each
row, which hold no output; they are computed and dropped.

The transposed convolution and the input's gradient run as such products
too, one plain convolution for each stride phase of their output
(``fast/operations.py`` routes them). The kernel's gradient sums, for each
tap, the products of the output's gradient with the cells the tap met
(`kernel_gradient`). A transposed kernel holding NaN or infinity is
scattered tap by tap instead (`scatter`).

Cost per output: C_in / groups * kh * kw multiply-adds in BLAS, plus a copy
of the stacked taps' cells. Limits: every dtype (integers exactly, in
NumPy's loops); large kernels with few channels are faster through a 2-D
path per pair of channels (the FFT, the band), which the planner weighs.

Every path runs on the driver (``driver/``: strips of output rows of a few
MiB, the thread pool, each thread's scratch memory), and is tested against
``reference.py``. Integers run through the same products in int64: exact,
but NumPy's own loops rather than BLAS.
"""
import functools
import itertools
import math

import numpy as np

from .. import driver, settings as _settings
from ..padding import Padded
from ..geometry import tap_phases
from .costs import cell_scale, products

__all__ = ["plan", "conv2d", "scatter", "plan_kernel_gradient", "kernel_gradient"]


def _run(work, plan):
    """`driver.run`, with BLAS on one thread while it runs: the strips are the threads.

    BLAS's own threads on top of ours would oversubscribe the cores, and many
    short products split over threads are slow even alone (measured: 820 ms
    instead of 52 for the benchmark's layer with OpenBLAS on two threads).
    """
    with driver.single_threaded_blas(plan.settings.limit_blas):
        driver.run(work, plan)


def _product(per_in):
    """How (G, C_out / G, per_in) weights multiply (N, G, per_in, cells) input cells.

    A matrix product; with one input channel per group, the same numbers as
    a broadcast multiply, in one pass.
    """
    return np.multiply if per_in == 1 else np.matmul


def _weights(kernel, groups, stacks):
    """Per stack of taps, its weights: a C-contiguous (groups, out, in * taps) matrix.

    ``kernel`` is (C_out, C_in / groups, kh, kw); the weights of tap (a, b)
    are ``kernel[:, :, a, b]``, group by group, and a stack's lie side by
    side in the order its cells are stacked. One copy of the kernel in all
    (memory: the kernel's size, once).
    """
    out_channels, per_in, kh, kw = kernel.shape
    grouped = kernel.reshape(groups, out_channels // groups, per_in, kh * kw)
    return [np.ascontiguousarray(grouped[..., [a * kw + b for (a, b), _, _ in stack]]
                                 .transpose(0, 1, 3, 2)).reshape(groups, -1, len(stack) * per_in)
            for stack in stacks]


def _stacks(taps, per_in, dtype, s):
    """The taps cut into runs, each run one matrix product over its taps' channels stacked.

    A product over 64 input channels keeps BLAS's multiply-adds busy less
    than one over 576, and each product of its own needs an addition into
    the sum after it; a stack of taps needs a copy of its cells instead (an
    im2col of one strip, in cache). Measured here, one thread, N = 8,
    float32, in ms, a product per tap against stacks of at most 1024:
    64 -> 64 channels 56 x 56 3 x 3, 26.6 and 21.8; 3 -> 64 112 x 112
    7 x 7 stride 2 (a first layer), 24.6 and 7.8; 16 -> 32 64 x 64 5 x 5,
    20.4 and 14.1; 256 -> 256 14 x 14 3 x 3, 19.6 and 19.8 (stacks of 256
    to 4096 within 5% of each other). So from 256 input channels on each
    tap is a product of its own, read in place, and so are integers
    (NumPy's own loops, not BLAS, which gain nothing from a copy), and
    depthwise layers (one input channel a group: a broadcast multiply).

    Stacking into the output's rows directly (no accumulator, no copy of
    the result) was tried too: the copies from the windows' rows of W_out
    cells and the products into rows H_out * W_out apart were slower than
    the flat runs and their one copy at the end (25.9 against 24.5 ms).
    """
    taps = list(taps)
    if not 1 < per_in < s.stack_channels or np.dtype(dtype) not in (np.float32, np.float64):
        return [taps[i:i + 1] for i in range(len(taps))]
    count = -(-len(taps) * per_in // s.stack_depth)
    size = -(-len(taps) // count)
    return [taps[i:i + size] for i in range(0, len(taps), size)]


@functools.lru_cache(maxsize=256)
def _layout(kernel_shape, stride, dilation, width, per_in, dtype, s):
    """How `_FlatStrips` lays out the taps: (phases, reach_h, reach_w, row_width, stacks, depth).

    Worked out from the shapes alone, once (for a 31 x 31 kernel, a thousand
    taps sorted in Python: milliseconds, which every plan of a call paid).
    Shared by every call: read only.
    """
    phases = tap_phases(kernel_shape, stride, dilation)
    offsets = [offset for taps in phases.values() for _, offset in taps]
    reach_h = max(a for a, _ in offsets)     # rows below the strip that taps read
    reach_w = max(b for _, b in offsets)
    row_width = width + reach_w
    runs = ((tap, phase, a * row_width + b) for phase, taps in phases.items()
            for tap, (a, b) in taps)
    stacks = tuple(tuple(stack) for stack in _stacks(runs, per_in, dtype, s))
    # Rows of the buffer a stack of taps is copied into (0: every tap read in place).
    depth = 0 if max(map(len, stacks)) == 1 else max(len(stack) for stack in stacks) * per_in
    return phases, reach_h, reach_w, row_width, stacks, depth


class _FlatStrips:
    """The padded input's stride phases, fetched strip by strip and laid out flat.

    For the output rows of a strip, `blocks` returns, for each phase a tap
    reads, the phase's rows as one (N, groups, C_in / groups, cells) array,
    ``row_width`` cells a row: tap ``(a', b')`` of the phase meets cells
    ``a' * row_width + b'`` to that plus `length`.
    """

    def __init__(self, matrix, kernel_shape, groups, geometry, padding_mode, fill_value, dtype,
                 s):
        self.settings = s
        batch, self.in_channels = matrix.shape[:2]
        self.groups, self.dtype = groups, dtype
        images = matrix.reshape((batch * self.in_channels,) + matrix.shape[2:])
        self.source = Padded(images, geometry.padding, padding_mode, fill_value)
        self.stride = geometry.stride
        self.width = geometry.output_shape[1]
        (self.phases, self.reach_h, self.reach_w, self.row_width, self.stacks,
         self.depth) = _layout(kernel_shape, geometry.stride, geometry.dilation, self.width,
                               self.in_channels // groups, np.dtype(dtype).str, s)

    def row_bytes(self, out_channels):
        """Bytes of buffers per output row: the phases, an accumulator and its scratch, a stack."""
        cells = self.row_width * np.dtype(self.dtype).itemsize
        return (len(self.phases) * self.in_channels + 2 * out_channels
                + self.groups * self.depth) * cells

    def work(self, out_channels):
        """What a strip costs, for the driver's plan (`driver.Work`).

        Per output row: the phases fetched, the stacks of taps copied, and
        per stack a product over the channels and an addition, priced by
        `costs.py`.
        """
        taps = sum(map(len, self.phases.values()))
        per_in, cells = self.in_channels // self.groups, self.row_width
        copied = sum(len(stack) for stack in self.stacks if len(stack) > 1) * self.in_channels
        s = self.settings
        row_ns = (cell_scale(self.dtype) * cells
                  * (len(self.phases) * self.in_channels * s.fetch_ns
                     + copied * s.copy_ns + len(self.stacks) * out_channels * s.flat_ns)
                  + products(taps * out_channels * per_in * cells,
                             per_in * cells * np.dtype(self.dtype).itemsize, self.dtype, s))
        return driver.Work(row_bytes=self.row_bytes(out_channels), extra_rows=self.reach_h,
                           row_ns=row_ns, calls=2 * len(self.stacks) + taps + 4 * len(self.phases))

    def length(self, n_rows):
        """The cells a tap's run covers: up to the last output of the strip's last row."""
        return n_rows * self.row_width - self.reach_w

    def blocks(self, arena, images, rows):
        n = images.stop - images.start
        (sh, sw), c = self.stride, self.in_channels
        block_rows = rows.stop - rows.start + self.reach_h
        blocks = {}
        for q, r in self.phases:
            first = rows.start * sh + q
            block = self.source.region(
                slice(images.start * c, images.stop * c), range(first, first + sh * block_rows, sh),
                range(r, r + sw * self.row_width, sw), self.dtype,
                out=arena.take((n * c, block_rows, self.row_width), self.dtype))
            blocks[q, r] = block.reshape(n, self.groups, c // self.groups, -1)
        return blocks

    def taps(self, blocks, length):
        """``(tap, run)`` for every tap: the (N, groups, C_in / groups, length) cells it meets."""
        for phase, taps in self.phases.items():
            for tap, (a, b) in taps:
                offset = a * self.row_width + b
                yield tap, blocks[phase][..., offset:offset + length]

    def stacked(self, blocks, length, buffer):
        """For every stack of taps, in order: the cells its taps meet, one above the other.

        A stack of one tap is its run, read in place; a longer one is copied
        into ``buffer`` (N, groups, `depth`, length), each tap's channels
        below the last one's.
        """
        per_in = self.in_channels // self.groups
        for stack in self.stacks:
            if len(stack) == 1:
                _, phase, offset = stack[0]
                yield blocks[phase][..., offset:offset + length]
                continue
            cells = buffer[:, :, :len(stack) * per_in]
            for k, (_, phase, offset) in enumerate(stack):
                np.copyto(cells[:, :, k * per_in:(k + 1) * per_in],
                          blocks[phase][..., offset:offset + length])
            yield cells

    def tap_grids(self, blocks, n_rows):
        """``(tap, cells)``: the (N, groups, C_in / groups, n_rows, W_out) cells each tap meets."""
        for phase, taps in self.phases.items():
            grid = blocks[phase].reshape(blocks[phase].shape[:3] + (-1, self.row_width))
            for tap, (a, b) in taps:
                yield tap, grid[..., a:a + n_rows, b:b + self.width]


def plan(matrix, kernel_shape, geometry, groups, padding_mode, fill_value, dtype, s):
    """The plan of a layer's forward pass: strips of output rows, threads, the estimate.

    ``matrix`` (N, C_in, H, W), ``kernel_shape`` (C_out, C_in / groups, kh, kw).
    The plan's ``detail`` holds how the strips lay out the padded input.
    """
    flat = _FlatStrips(matrix, kernel_shape[2:], groups, geometry, padding_mode, fill_value,
                       dtype, s)
    out_bytes = (matrix.shape[0] * kernel_shape[0] * math.prod(geometry.output_shape)
                 * np.dtype(dtype).itemsize)
    return driver.plan(matrix.shape[0], geometry.output_shape[0], out_bytes,
                       flat.work(kernel_shape[0]), s)._replace(detail=flat)


def conv2d(matrix, kernel, geometry, groups, padding_mode, fill_value, dtype, bias=None,
           out=None, plan_=None):
    """A layer's forward pass: one matrix product per stack of kernel taps and strip.

    Parameters
    ----------
    matrix : ndarray, shape (N, C_in, H, W)
    kernel : ndarray, shape (C_out, C_in / groups, kh, kw), of ``dtype``
    geometry : geometry.ConvGeometry
    groups : int
    padding_mode, fill_value
        As for ``conv2d``.
    dtype : dtype
        The dtype to compute in and return.
    bias : ndarray, shape (C_out,), optional
    out : ndarray, shape (N, C_out, H_out, W_out), optional
        Where to write the result (a strided view of a larger array will do).
    plan_ : driver.Plan, optional
        As `plan` made it for these arguments.

    Returns
    -------
    ndarray, shape (N, C_out, H_out, W_out)
        ``out``, if given.
    """
    out_channels, per_in = kernel.shape[:2]
    height, width = geometry.output_shape
    if out is None:
        out = np.empty((matrix.shape[0], out_channels, height, width), dtype)
    if plan_ is None:
        plan_ = plan(matrix, kernel.shape, geometry, groups, padding_mode, fill_value, dtype,
                     _settings.current())
    flat = plan_.detail
    stacked, product = _weights(kernel, groups, flat.stacks), _product(per_in)

    def strip(arena, images, rows):
        blocks = flat.blocks(arena, images, rows)
        n, n_rows = images.stop - images.start, rows.stop - rows.start
        shape = (n, groups, out_channels // groups, n_rows * flat.row_width)
        acc, scratch = arena.take(shape, dtype), arena.take(shape, dtype)
        length = flat.length(n_rows)
        buffer = arena.take((n, groups, flat.depth, length), dtype) if flat.depth else None
        acc_run, scratch_run = acc[..., :length], scratch[..., :length]
        for k, cells in enumerate(flat.stacked(blocks, length, buffer)):
            if k == 0:
                product(stacked[k], cells, out=acc_run)
            else:
                product(stacked[k], cells, out=scratch_run)
                acc_run += scratch_run
        result = acc.reshape(n, out_channels, n_rows, flat.row_width)[..., :width]
        if bias is None:
            out[images, :, rows] = result
        else:
            np.add(result, bias[:, np.newaxis, np.newaxis], out=out[images, :, rows])

    _run(strip, plan_)
    return out


def scatter(matrix, forward, geometry, groups, out):
    """Add to ``out`` what each input cell spreads through each tap, tap by tap.

    ``forward`` is the kernel in conv2d's layout (C_out, C_in / groups, kh, kw).
    Per tap, one product over the channels of the whole input, added onto the
    strided slice of the output where it lands: the loops' scatter, with no
    product for cells beyond the input's edges. Memory: one output-sized array.
    """
    batch, in_channels, height, width = matrix.shape
    out_channels, per_in, kh, kw = forward.shape
    cells = matrix.reshape(batch, groups, per_in, height * width)
    grouped = forward.reshape(groups, out_channels // groups, per_in, kh, kw)
    (sh, sw), (dh, dw) = geometry.stride, geometry.dilation
    ((top, _), (left, _)), (out_h, out_w) = geometry.padding, geometry.output_shape
    for a, b in itertools.product(range(kh), range(kw)):
        rows = _lands(height, a * dh - top, sh, out_h)
        cols = _lands(width, b * dw - left, sw, out_w)
        if rows and cols:
            spread = np.matmul(grouped[..., a, b], cells).reshape(
                batch, out_channels, height, width)
            out[:, :, rows[1], cols[1]] += spread[:, :, rows[0], cols[0]]
    return out


def _lands(size, shift, stride, out_size):
    """(input cells, output cells): where input cell i lands, at i * stride + shift, inside."""
    first = max(0, -(shift // stride))
    last = min(size, (out_size - 1 - shift) // stride + 1)
    if last <= first:
        return None
    return slice(first, last), slice(first * stride + shift, (last - 1) * stride + shift + 1,
                                     stride)


def _copies(grids, cells):
    """``(tap, cells)`` with each tap's cells copied into ``cells`` and flattened."""
    for tap, grid in grids:
        np.copyto(cells, grid)
        yield tap, cells.reshape(cells.shape[:3] + (-1,))


def plan_kernel_gradient(matrix, kernel_shape, geometry, groups, padding_mode, fill_value, dtype,
                         s):
    """The plan of `kernel_gradient`: the forward pass's strips (the same products, transposed)."""
    flat = _FlatStrips(matrix, kernel_shape[2:], groups, geometry, padding_mode, fill_value,
                       dtype, s)
    out_bytes = (matrix.shape[0] * kernel_shape[0] * math.prod(geometry.output_shape)
                 * np.dtype(dtype).itemsize)
    return driver.plan(matrix.shape[0], geometry.output_shape[0], out_bytes,
                       flat.work(kernel_shape[0]), s)._replace(detail=flat)


def kernel_gradient(grad_output, matrix, kernel_shape, geometry, groups, padding_mode,
                    fill_value, dtype, plan_=None):
    """The gradient of ``sum(grad_output * conv2d(matrix, kernel))`` with respect to the kernel.

    ``grad[o, c, a, b]`` sums ``grad_output[n, o, i, j]`` times the cell tap
    ``(a, b)`` met for output ``(i, j)``: per tap and strip, one product of
    the output's gradient, (C_out, cells), with the tap's cells, (cells, C_in).

    Parameters
    ----------
    grad_output : ndarray, shape (N, C_out, H_out, W_out)
    matrix : ndarray, shape (N, C_in, H, W)
    kernel_shape : (C_out, C_in / groups, kh, kw)
    geometry, groups, padding_mode, fill_value, dtype
        As for `conv2d`.

    Returns
    -------
    ndarray, shape ``kernel_shape``

    Notes
    -----
    Each thread sums its strips into a kernel-sized array of its own; those
    are added up at the end, in a fixed order, so the result does not depend
    on which thread took which strip.
    """
    out_channels, per_in, kh, kw = kernel_shape
    per_out = out_channels // groups
    height, width = geometry.output_shape
    if plan_ is None:
        plan_ = plan_kernel_gradient(matrix, kernel_shape, geometry, groups, padding_mode,
                                     fill_value, dtype, _settings.current())
    flat, s = plan_.detail, plan_.settings
    tasks, workers = plan_.tasks, min(plan_.threads, len(plan_.tasks))
    totals = [np.zeros((kh, kw, groups, per_out, per_in), dtype) for _ in range(workers)]

    # Runs of row_width cells read in place, as the forward pass reads them, against
    # the output's gradient laid out alike, zero beyond W_out: a zero times a finite
    # input cell adds nothing. An infinite cell there would add NaN, so data that is
    # not all finite takes copies of exactly the cells each tap met.
    finite = np.dtype(dtype).kind in "biu" or (np.isfinite(fill_value)
                                               and np.isfinite(matrix).all())

    def strip(arena, images, rows, total):
        blocks = flat.blocks(arena, images, rows)
        n, n_rows = images.stop - images.start, rows.stop - rows.start
        if finite:
            grads = arena.take((n, out_channels, n_rows, flat.row_width), dtype)
            grads[..., :width] = grad_output[images, :, rows]
            grads[..., width:] = 0
            length = flat.length(n_rows)
            grads = grads.reshape(n, groups, per_out, -1)[..., :length]
            pairs = flat.taps(blocks, length)
        else:
            grads = np.asarray(grad_output[images, :, rows], dtype).reshape(
                n, groups, per_out, n_rows * width)
            pairs = _copies(flat.tap_grids(blocks, n_rows),
                            arena.take((n, groups, per_in, n_rows, width), dtype))
        for (a, b), cells in pairs:
            total[a, b] += np.matmul(grads, cells.swapaxes(-1, -2)).sum(axis=0)

    def worker(arena, index):
        for images, rows in tasks[index::workers]:
            strip(driver.Arena.start(), images, rows, totals[index])

    _run(worker, driver.Plan([(index,) for index in range(workers)], workers, plan_.ns,
                             settings=s))
    total = functools.reduce(np.add, totals)      # (kh, kw, groups, per_out, per_in)
    return total.transpose(2, 3, 4, 0, 1).reshape(kernel_shape)
