"""The CNN layer's fast paths: the sums over channels as matrix products, through BLAS.

Output channel ``o`` of a layer is a sum over input channels ``c`` and kernel
taps ``(a, b)`` (see ``reference.conv2d_layer_loops``). Fix the tap, and the
sums over channels, for every output cell at once, are one matrix product::

    out[:, cells] += kernel[:, :, a, b] @ padded[:, cells the tap meets]
      (C_out, cells)      (C_out, C_in)          (C_in, cells)

So a layer is kh * kw matrix products, each as long as a strip of output
rows, and BLAS does the multiply-adds at close to the machine's peak. Groups
are a batch of smaller products, one per group (``np.matmul`` loops over
them in C); with one input channel per group (depthwise convolution) the
product is a broadcast multiply.

The cells a tap meets are a strided slice of the padded input (``shapes.tap``).
To hand BLAS a plain matrix without copying it, each strip of the padded
input is split into its stride phases (``shapes.tap_phases``: a tap reads one
phase, at a fixed offset) and laid out flat, ``row_width`` cells a row. Tap
``(a', b')`` of a phase then meets the cells ``a' * row_width + b'`` onwards,
one contiguous run per channel: a matrix whose rows are the channels, read in
place. The runs also cover the ``row_width - W_out`` cells at the end of each
row, which hold no output; they are computed and dropped.

The transposed convolution scatters instead: for each tap, one product of
the tap's weights with the input, added onto a strided slice of the output.
The kernel's gradient sums, for each tap, the products of the output's
gradient with the cells the tap met.

Every path runs on ``strips.py``'s driver (strips of output rows of a few
MiB, the thread pool, each thread's scratch memory), and is tested against
``reference.py``. Integers run through the same products in int64: exact,
but NumPy's own loops rather than BLAS.
"""
import contextlib
import functools
import itertools

import numpy as np

from . import strips
from .padding import Padded
from .shapes import tap_phases

__all__ = ["conv2d", "conv_transpose2d", "kernel_gradient"]


@functools.lru_cache(maxsize=None)
def _blas_controller():
    """threadpoolctl's controller of the BLAS libraries loaded, or None without threadpoolctl."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    return ThreadpoolController()


def _run(work, plan):
    """`strips.run`, with BLAS on one thread while it runs: the strips are the threads.

    BLAS's own threads on top of ours would oversubscribe the cores, and many
    short products split over threads are slow even alone (measured: 820 ms
    instead of 52 for the benchmark's layer with OpenBLAS on two threads).
    Without threadpoolctl, BLAS keeps its default.
    """
    controller = _blas_controller()
    with controller.limit(limits=1, user_api="blas") if controller else contextlib.nullcontext():
        strips.run(work, plan)


def _product(per_in):
    """The product of (G, rows, per_in) weights with (N, G, per_in, cells): matmul, or a
    broadcast multiply when ``per_in`` is 1 (the same numbers, one pass)."""
    return np.multiply if per_in == 1 else np.matmul


def _weights(kernel, groups, transposed=False):
    """Per tap ``(a, b)``, the kernel's weights as C-contiguous (groups, out, in) matrices.

    ``kernel`` is (C_out, C_in / groups, kh, kw); with ``transposed`` it is
    (C_in, C_out / groups, kh, kw) and each group's matrix is transposed, so
    that it maps the input's channels to the output's in both cases.
    """
    first, second, kh, kw = kernel.shape
    leading = first // groups
    grouped = kernel.reshape(groups, leading, second, kh, kw)
    if transposed:
        grouped = grouped.transpose(0, 2, 1, 3, 4)
    return {(a, b): np.ascontiguousarray(grouped[..., a, b])
            for a, b in itertools.product(range(kh), range(kw))}


class _FlatStrips:
    """The padded input's stride phases, fetched strip by strip and laid out flat.

    For the output rows of a strip, `blocks` returns, for each phase a tap
    reads, the phase's rows as one (N, groups, C_in / groups, cells) array,
    ``row_width`` cells a row: tap ``(a', b')`` of the phase meets cells
    ``a' * row_width + b'`` to that plus `length`.
    """

    def __init__(self, matrix, kernel_shape, groups, geometry, padding_mode, fill_value, dtype):
        batch, self.in_channels = matrix.shape[:2]
        self.groups, self.dtype = groups, dtype
        images = matrix.reshape((batch * self.in_channels,) + matrix.shape[2:])
        self.source = Padded(images, geometry.padding, padding_mode, fill_value)
        self.stride = geometry.stride
        self.phases = tap_phases(kernel_shape, geometry.stride, geometry.dilation)
        offsets = [offset for taps in self.phases.values() for _, offset in taps]
        self.reach_h = max(a for a, _ in offsets)     # rows below the strip that taps read
        self.reach_w = max(b for _, b in offsets)
        self.width = geometry.output_shape[1]
        self.row_width = self.width + self.reach_w

    def row_bytes(self, out_channels):
        """Bytes of buffers per output row: the phases, an accumulator and its scratch."""
        cells = self.row_width * np.dtype(self.dtype).itemsize
        return (len(self.phases) * self.in_channels + 2 * out_channels) * cells

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

    def tap_grids(self, blocks, n_rows):
        """``(tap, cells)``: the (N, groups, C_in / groups, n_rows, W_out) cells each tap meets."""
        for phase, taps in self.phases.items():
            grid = blocks[phase].reshape(blocks[phase].shape[:3] + (-1, self.row_width))
            for tap, (a, b) in taps:
                yield tap, grid[..., a:a + n_rows, b:b + self.width]


def conv2d(matrix, kernel, geometry, groups, padding_mode, fill_value, dtype, bias=None):
    """A layer's forward pass: one matrix product per kernel tap and strip.

    Parameters
    ----------
    matrix : ndarray, shape (N, C_in, H, W)
    kernel : ndarray, shape (C_out, C_in / groups, kh, kw), of ``dtype``
    geometry : shapes.ConvGeometry
    groups : int
    padding_mode, fill_value
        As for ``conv2d``.
    dtype : dtype
        The dtype to compute in and return.
    bias : ndarray, shape (C_out,), optional

    Returns
    -------
    ndarray, shape (N, C_out, H_out, W_out)
    """
    out_channels, per_in = kernel.shape[:2]
    height, width = geometry.output_shape
    out = np.empty((matrix.shape[0], out_channels, height, width), dtype)
    flat = _FlatStrips(matrix, kernel.shape[2:], groups, geometry, padding_mode, fill_value, dtype)
    weights, product = _weights(kernel, groups), _product(per_in)

    def strip(arena, images, rows):
        blocks = flat.blocks(arena, images, rows)
        n, n_rows = images.stop - images.start, rows.stop - rows.start
        shape = (n, groups, out_channels // groups, n_rows * flat.row_width)
        acc, scratch = arena.take(shape, dtype), arena.take(shape, dtype)
        length = flat.length(n_rows)
        acc_run, scratch_run = acc[..., :length], scratch[..., :length]
        for k, (tap, run) in enumerate(flat.taps(blocks, length)):
            if k == 0:
                product(weights[tap], run, out=acc_run)
            else:
                product(weights[tap], run, out=scratch_run)
                acc_run += scratch_run
        result = acc.reshape(n, out_channels, n_rows, flat.row_width)[..., :width]
        if bias is None:
            out[images, :, rows] = result
        else:
            np.add(result, bias[:, np.newaxis, np.newaxis], out=out[images, :, rows])

    _run(strip, strips.plan(out, height, flat.row_bytes(out_channels), flat.reach_h))
    return out


def conv_transpose2d(matrix, kernel, geometry, groups, dtype, bias=None):
    """The transposed convolution: each tap's product with the input, scattered onto the output.

    Parameters
    ----------
    matrix : ndarray, shape (N, C_in, H, W)
    kernel : ndarray, shape (C_in, C_out / groups, kh, kw), of ``dtype``
    geometry : shapes.TransposeGeometry
    groups : int
    dtype : dtype
    bias : ndarray, shape (C_out,), optional

    Returns
    -------
    ndarray, shape (N, C_out, H_out, W_out)

    Notes
    -----
    A strip of output rows ``[y0, y1)`` receives copies from the input rows
    ``i`` with ``i * sh + a * dh`` in that range for some tap ``a``. The strip
    scatters those rows, whole, into a buffer of its own, and keeps the rows
    it owns: input rows near a seam are spread twice, so that no two threads
    ever add into the same cells.
    """
    batch, in_channels, height, width = matrix.shape
    per_out, kh, kw = kernel.shape[1:]
    out_channels, per_in = groups * per_out, in_channels // groups
    (sh, sw), (dh, dw) = geometry.stride, geometry.dilation
    ((top, _), (left, _)), (out_h, out_w) = geometry.padding, geometry.output_shape
    span_h, span_w = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    buffer_w = max((width - 1) * sw + span_w, left + out_w)
    out = np.empty((batch, out_channels, out_h, out_w), dtype)
    source = np.ascontiguousarray(matrix, dtype).reshape(batch, groups, per_in, height * width)
    weights, product = _weights(kernel, groups, transposed=True), _product(per_in)

    def strip(arena, images, rows):
        n = images.stop - images.start
        y0, y1 = rows.start + top, rows.stop + top       # rows of the uncropped result
        first = max(0, -(-(y0 - span_h + 1) // sh))      # the input rows that reach them
        last = min(height, (y1 - 1) // sh + 1)
        base = min(y0, first * sh)
        buffer_h = max(y1, (last - 1) * sh + span_h) - base
        buffer = arena.take((n, out_channels, buffer_h, buffer_w), dtype)
        buffer[...] = 0
        if last > first:
            spread = arena.take((n, groups, per_out, (last - first) * width), dtype)
            cells = source[images, ..., first * width:last * width]
            for (a, b), weight in weights.items():
                product(weight, cells, out=spread)
                row, col = first * sh - base + a * dh, b * dw
                buffer[:, :, row:row + (last - first - 1) * sh + 1:sh,
                       col:col + (width - 1) * sw + 1:sw] += spread.reshape(
                           n, out_channels, last - first, width)
        result = buffer[:, :, y0 - base:y1 - base, left:left + out_w]
        if bias is None:
            out[images, :, rows] = result
        else:
            np.add(result, bias[:, np.newaxis, np.newaxis], out=out[images, :, rows])

    row_bytes = out_channels * (buffer_w + -(-width // sh)) * np.dtype(dtype).itemsize
    _run(strip, strips.plan(out, out_h, row_bytes, span_h))
    return out


def kernel_gradient(grad_output, matrix, kernel_shape, geometry, groups, padding_mode,
                    fill_value, dtype):
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
    The tap's cells are copied out of the strip's flat phases (runs of
    ``row_width`` cells would also meet input cells beyond the output's
    width, and an infinity there times a zero gradient is NaN). Each thread
    sums its strips into a kernel-sized array of its own; those are added up
    at the end, in a fixed order, so the result does not depend on which
    thread took which strip.
    """
    out_channels, per_in, kh, kw = kernel_shape
    per_out = out_channels // groups
    height, width = geometry.output_shape
    flat = _FlatStrips(matrix, (kh, kw), groups, geometry, padding_mode, fill_value, dtype)
    grad_output = np.ascontiguousarray(grad_output, dtype)
    tasks, workers = strips.plan(grad_output, height, flat.row_bytes(out_channels), flat.reach_h)
    workers = min(workers, len(tasks))
    totals = [np.zeros((kh, kw, groups, per_out, per_in), dtype) for _ in range(workers)]

    def strip(arena, images, rows, total):
        blocks = flat.blocks(arena, images, rows)
        n, n_rows = images.stop - images.start, rows.stop - rows.start
        grads = grad_output[images, :, rows].reshape(n, groups, per_out, n_rows * width)
        cells = arena.take((n, groups, per_in, n_rows, width), dtype)
        for (a, b), grid in flat.tap_grids(blocks, n_rows):
            np.copyto(cells, grid)
            total[a, b] += np.matmul(grads, cells.reshape(n, groups, per_in, -1).swapaxes(-1, -2)
                                     ).sum(axis=0)

    def worker(arena, index):
        for images, rows in tasks[index::workers]:
            strip(strips.Arena.start(), images, rows, totals[index])

    _run(worker, ([(index,) for index in range(workers)], workers))
    total = functools.reduce(np.add, totals)      # (kh, kw, groups, per_out, per_in)
    return total.transpose(2, 3, 4, 0, 1).reshape(kernel_shape)
