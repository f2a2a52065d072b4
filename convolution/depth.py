"""A 3-D convolution as 2-D ones: one per depth tap, on blocks of the input's slices.

``out[..., z, :, :]`` is the sum over the depth taps ``a`` of
``conv2d(padded[..., z * sd + a * dd, :, :], kernel[..., a, :, :])``: the
depth axis is a sum of 2-D convolutions, each computed by `conv2d` (which
gets every border mode, dtype rule and NaN right, and is tested against the
loops). The depth border is never built: the border's source map
(``padding.source_map``, from ``np.pad`` itself) says which input slice each
padded slice copies, or that it is the fill, so the slices are read in
place, a bounded block of them at a time (``Settings.slice_block_bytes``),
and memory stays O(output). A layer's slices become a batch of 2-D images,
``(N, C, Z, H, W)`` as ``(N * Z, C, H, W)``.

The transposed convolution and the gradients run the same decomposition
backwards (`conv_transpose2d`, `conv2d_backward` per depth tap); a gradient
that lands on a border slice is added to the slice it copies.

`conv3d` and its relatives (``conv_nd.py``) validate their arguments and
come here for the work; the fast path of float filters, which folds the
depth taps into matrix products instead, is ``fast/depth3d.py``.
"""
import numpy as np

from . import settings as _settings
from .conv import conv2d, conv2d_backward, conv_transpose2d
from .padding import PADDING_MODES, source_map, source_runs

__all__ = ["plane", "depth_sources", "depth_sum", "depth_spread", "depth_backward",
           "dask_depth_sum"]


def plane(geometry):
    """The stride, dilation and padding of the last two axes, for `conv2d`."""
    return dict(stride=geometry.stride[-2:], dilation=geometry.dilation[-2:],
                padding=geometry.padding[-2:])


def depth_sources(geometry, padding_mode, tap):
    """For each output slice, the input slice depth tap ``tap`` reads; -1 for the fill."""
    (depth, _, _), (sd, _, _), (dd, _, _) = geometry.input_shape, geometry.stride, geometry.dilation
    source = source_map(depth, *geometry.padding[0], padding_mode)
    return source[tap * dd: tap * dd + (geometry.output_shape[0] - 1) * sd + 1: sd]


def _slices(matrix, sources, dtype, fill_value):
    """``matrix[..., sources, :, :]``, the fill where a source is -1 (then in ``dtype``).

    A run of consecutive slices is a view; anything else a copy of the
    slices asked for, which the caller keeps to a bounded block.
    """
    if (sources >= 0).all():
        if len(sources) == 1 or (np.diff(sources) == 1).all():
            return matrix[..., sources[0]:sources[-1] + 1, :, :]
        return np.take(matrix, sources, axis=-3)
    out = np.empty(matrix.shape[:-3] + (len(sources),) + matrix.shape[-2:], dtype)
    inside = sources >= 0
    out[..., inside, :, :] = np.take(matrix, sources[inside], axis=-3)
    out[..., ~inside, :, :] = fill_value
    return out


def _blocks(count, slice_bytes):
    """Ranges of at most ``Settings.slice_block_bytes`` of slices, covering ``range(count)``."""
    step = max(1, _settings.current().slice_block_bytes // max(slice_bytes, 1))
    return [range(start, min(start + step, count)) for start in range(0, count, step)]


def _as_planes(cells, layer):
    """Slices ``(..., Z, H, W)`` (a filter) or ``(N, C, Z, H, W)`` (a layer) as 2-D inputs.

    A filter's slices are a batch as they are. A layer's become the batch
    ``(N * Z, C, H, W)``.
    """
    if not layer:
        return cells
    n, c, z = cells.shape[:3]
    return np.moveaxis(cells, 2, 1).reshape((n * z, c) + cells.shape[3:])


def _from_planes(planes, layer, n):
    """The inverse of `_as_planes` on a result: ``(N * Z, C, H, W)`` back to ``(N, C, Z, H, W)``."""
    if not layer:
        return planes
    return np.moveaxis(planes.reshape((n, -1) + planes.shape[1:]), 1, 2)


def depth_sum(matrix, kernel, geometry, layer, groups, padding_mode, fill_value, dtype, method):
    """conv3d: the sum over the depth taps of `conv2d` calls on blocks of slices, in ``dtype``.

    A tap that reads one run of input slices, a stride apart, once the zero
    fill is left out, reads them in place, a view: the zero fill adds
    nothing where the tap's weights are finite, so its slices are not
    convolved at all. A tap that reads its slices otherwise (a reflected,
    replicated or circular border, a nonzero fill) gathers each block's
    slices into one copy: one `conv2d` call per block rather than one per
    run of slices.
    """
    if layer and matrix.ndim == 4:
        return depth_sum(matrix[np.newaxis], kernel, geometry, layer, groups, padding_mode,
                         fill_value, dtype, method)[0]
    lead = matrix.shape[:-3]
    out_lead = (lead[0], kernel.shape[0]) if layer else lead
    out = np.zeros(out_lead + geometry.output_shape, dtype)
    slice_bytes = int(np.prod(lead)) * int(np.prod(matrix.shape[-2:])) * max(
        matrix.itemsize, np.dtype(dtype).itemsize)
    n = out_lead[0] if layer else 0

    def add(cells, weights, target):
        part = conv2d(_as_planes(cells, layer), weights, padding_mode=padding_mode,
                      fill_value=fill_value, groups=groups, method=method, **plane(geometry))
        target += _from_planes(part, layer, n)

    for tap in range(kernel.shape[-3]):
        weights = kernel[..., tap, :, :]
        sources = depth_sources(geometry, padding_mode, tap)
        inside = np.flatnonzero(sources >= 0)
        skip_fill = fill_value == 0 and np.isfinite(weights).all()
        if skip_fill and not len(inside):
            continue
        lo, hi = (inside[0], inside[-1] + 1) if len(inside) else (0, 0)
        step = sources[lo + 1] - sources[lo] if hi - lo > 1 else 1
        if (hi - lo == len(inside) and (skip_fill or hi - lo == len(sources)) and step > 0
                and (np.diff(sources[lo:hi]) == step).all()):
            # One run of slices, a stride apart: a view.
            cells = matrix[..., sources[lo]:sources[hi - 1] + 1:step, :, :]
            for block in _blocks(hi - lo, slice_bytes):
                add(cells[..., block.start:block.stop, :, :], weights,
                    out[..., lo + block.start:lo + block.stop, :, :])
            continue
        for block in _blocks(len(sources), slice_bytes):
            add(_slices(matrix, sources[block.start:block.stop], dtype, fill_value), weights,
                out[..., block.start:block.stop, :, :])
    return out


def depth_spread(matrix, kernel, geometry, layer, groups, dtype):
    """conv_transpose3d: a depth tap spreads each input slice onto one output slice.

    Input slice ``i`` through depth tap ``a`` lands on output slice
    ``i * sd + a * dd - front``; those that land in the cropped padding are
    dropped. Each tap is `conv_transpose2d` of blocks of input slices.
    """
    if layer and matrix.ndim == 4:
        return depth_spread(matrix[np.newaxis], kernel, geometry, layer, groups, dtype)[0]
    depth = matrix.shape[-3]
    (sd, _, _), (dd, _, _), (front, _) = geometry.stride, geometry.dilation, geometry.padding[0]
    out_depth = geometry.output_shape[0]
    lead = matrix.shape[:-3]
    out_lead = (lead[0], kernel.shape[1] * groups) if layer else lead
    out = np.zeros(out_lead + geometry.output_shape, dtype)
    planar = dict(stride=geometry.stride[1:], dilation=geometry.dilation[1:],
                  padding=geometry.padding[1:], output_padding=geometry.output_padding[1:])
    slice_bytes = int(np.prod(lead)) * int(np.prod(matrix.shape[-2:])) * matrix.itemsize
    for tap in range(kernel.shape[-3]):
        targets = np.arange(depth) * sd + tap * dd - front
        inside = np.flatnonzero((targets >= 0) & (targets < out_depth))
        if not len(inside):
            continue
        for block in _blocks(len(inside), slice_bytes):
            first, last = inside[block.start], inside[block.stop - 1]
            cells = matrix[..., first:last + 1, :, :]
            part = conv_transpose2d(_as_planes(cells, layer), kernel[..., tap, :, :],
                                    groups=groups, **planar)
            out[..., targets[first]:targets[last] + 1:sd, :, :] += _from_planes(
                part, layer, out_lead[0] if layer else 0)
    return out


def depth_backward(grad_output, matrix, kernel, geometry, layer, groups, padding_mode,
                   fill_value, dtype, method):
    """conv3d_backward's input and kernel gradients: `conv2d_backward` per depth tap and block.

    ``matrix`` and ``grad_output`` have their batch axis (a layer's
    unbatched input is given one by the caller); returns ``(grad_matrix,
    grad_kernel)`` in ``dtype``.
    """
    grad_matrix = np.zeros(matrix.shape, dtype)
    grad_kernel = np.zeros(kernel.shape, dtype)
    lead = matrix.shape[:-3]
    slice_bytes = int(np.prod(lead)) * int(np.prod(matrix.shape[-2:])) * np.dtype(dtype).itemsize
    n = lead[0] if layer else 0
    for tap in range(kernel.shape[-3]):
        sources = depth_sources(geometry, padding_mode, tap)
        for block in _blocks(geometry.output_shape[0], slice_bytes):
            here = sources[block.start:block.stop]
            cells = _slices(matrix, here, dtype, fill_value)
            grads = grad_output[..., block.start:block.stop, :, :]
            part_matrix, part_kernel, _ = conv2d_backward(
                _as_planes(grads, layer), _as_planes(cells, layer), kernel[..., tap, :, :],
                padding_mode=padding_mode, fill_value=fill_value, groups=groups,
                method=method, **plane(geometry))
            grad_kernel[..., tap, :, :] += part_kernel
            # A gradient of a border slice goes to the slice it copies; the fill has none.
            # Run by run: the slices of one run are distinct, but for a replicated one.
            part_matrix = _from_planes(part_matrix, layer, n)
            for run in source_runs(here):
                if run.first < 0:
                    continue
                piece = part_matrix[..., run.start:run.start + run.length, :, :]
                if run.step == 0:
                    piece = piece.sum(axis=-3, keepdims=True)
                grad_matrix[..., run.input_slice(), :, :] += piece
    return grad_matrix, grad_kernel


def dask_depth_sum(matrix, kernel, geometry, layer, padding_mode, fill_value, dtype, params):
    """conv3d of a Dask array, lazily: the sum over the depth taps of `conv2d`'s lazy 2-D ones.

    The slices each tap reads are gathered lazily through the source map
    (the fill's slices padded on lazily); ``kernel`` is flipped already and
    in ``dtype``, ``params`` the 2-D arguments (``padding_mode``,
    ``fill_value``, ``groups``, ``method``). Returns the lazy sum in
    ``dtype``, without the bias.
    """
    import dask.array as da

    fill = PADDING_MODES[padding_mode] == "constant"
    front, back = geometry.padding[0]
    if fill and (front or back):
        # The fill's slices, lazily: cells of the dtype the sums are made in.
        widths = [(0, 0)] * matrix.ndim
        widths[-3] = (front, back)
        matrix = da.pad(matrix.astype(dtype), widths, mode="constant",
                        constant_values=fill_value)
    total = None
    for tap in range(kernel.shape[-3]):
        if fill:
            start = tap * geometry.dilation[0]
            cells = matrix[..., start:start + (geometry.output_shape[0] - 1)
                           * geometry.stride[0] + 1:geometry.stride[0], :, :]
        else:
            cells = da.take(matrix, depth_sources(geometry, padding_mode, tap), axis=-3)
        if layer:
            n, c, z = cells.shape[:3]
            planes = da.moveaxis(cells, 2, 1).reshape((n * z, c) + cells.shape[3:])
        else:
            planes = cells
        part = conv2d(planes, kernel[..., tap, :, :], **plane(geometry), **params)
        if layer:
            part = da.moveaxis(part.reshape((n, z) + part.shape[1:]), 1, 2)
        part = part.astype(dtype)
        total = part if total is None else total + part
    return total
