"""Arrays larger than memory: a convolution of a Dask array, computed chunk by chunk.

`conv2d` and `apply_filter_to_image` hand a ``dask.array.Array`` to
`convolve`, which returns a lazy Dask array whose chunks are computed by the
same in-memory function on blocks of the input that carry the halo their
windows need. The result equals the in-memory one: each output cell is the
same sum over the same cells (integers exactly; floats to rounding, as the
per-chunk choice of fast path may differ from the whole image's).

How it works, along each of the two spatial axes:

1. The border is resolved for the whole image, as in memory: ``padding`` and
   its 'same' or 'full' form by `conv_geometry`, the cells each border cell
   copies by `padding._source_map`. The padded axis is assembled lazily from
   slices of the input (a reflection is a reversed slice, a circular border
   a slice of the far side), so a chunk at the edge holds exactly the cells
   ``np.pad`` would put there. In the 'zeros' and 'constant' modes the border
   is a placeholder that each chunk strips and hands back to the in-memory
   function as padding: the fill then lives in the dtype that function
   computes in, as in memory (a fill of 300 on a uint8 image stays 300).
2. The padded axis keeps the input's chunks; `plan_axis` picks which of
   their boundaries the output keeps (see `plan_axis` for the rule and for
   the chunks of the result). Each chunk receives from its neighbours, by
   ``dask.array.map_overlap``, the rows its windows reach into them, trims
   what it does not need, and is convolved with the in-memory function with
   no padding of its own: its first window starts on the stride grid.

Every other axis keeps its chunks (a batch), except channels, which are made
one chunk: the last axis of an (H, W, C) image, and the axis before (H, W)
when the kernel is 4-D (C_out, C_in / groups, kh, kw).

Threads: each chunk runs under ``strips.limit_threads(1)``. Dask already runs
one chunk per core (a thread of the local scheduler or of a distributed
worker), so a chunk that started its own pool would put cores x cores
threads on the machine. With fewer chunks than cores, make the chunks
smaller instead. ``dask.distributed`` also starts its worker processes with
``OMP_NUM_THREADS=1`` and the like, so BLAS stays on one thread there.

Nothing here imports Dask at import time; `is_dask_array` recognises a Dask
array without importing it, so NumPy callers never pay for it.
"""
import itertools
import sys

import numpy as np

from .padding import PADDING_MODES, _runs, _slice, _source_map
from .shapes import conv_geometry
from .strips import limit_threads

__all__ = ["is_dask_array", "convolve", "plan_axis"]


def is_dask_array(value):
    """Whether ``value`` is a ``dask.array.Array``, without importing Dask.

    A Dask array can only exist once ``dask.array`` has been imported, so
    looking it up in ``sys.modules`` is exact and costs nothing.
    """
    dask_array = sys.modules.get("dask.array")
    return dask_array is not None and isinstance(value, dask_array.Array)


def plan_axis(chunks, kernel_size, stride, dilation, padding, output_size, fill):
    """The chunks of one spatial axis: of the padded input, of the output, and the halo.

    Parameters
    ----------
    chunks : tuple of int
        The input's chunks along the axis (they sum to its size ``H``).
    kernel_size, stride, dilation : int
        ``kh``, ``sh`` and ``dh`` along the axis.
    padding : (int, int)
        ``(top, bottom)``, resolved for the whole axis.
    output_size : int
        ``H_out``, from `conv_geometry`.
    fill : bool
        Whether the border is a fill ('zeros', 'constant') rather than copies.

    Returns
    -------
    padded_chunks, output_starts, halo
        ``padded_chunks`` chunk the padded axis (``H + top + bottom`` cells);
        output chunk ``k`` holds outputs ``output_starts[k]`` up to
        ``output_starts[k + 1]`` (the last entry is ``H_out``) and is computed
        from padded chunk ``k`` with ``halo = (before, after)`` cells of its
        neighbours.

    Notes
    -----
    Output cell ``i`` reads padded cells ``i*sh`` to ``i*sh + span - 1``
    (``span = dh*(kh - 1) + 1``), and belongs to the chunk of the input cell
    at the centre of its window, padded cell ``i*sh + (span - 1)//2`` (the
    cell `apply_filter_to_image` takes alpha from). So an input chunk
    boundary at ``b`` becomes the output boundary::

        o = ceil((b + top - (span - 1)//2) / sh)

    and the padded chunks break at ``top + b``. With 'same' padding at stride
    1 the output is chunked exactly like the input; with a stride the
    boundaries are divided by it, rounded up. A padded chunk then reaches
    about ``(span - 1)//2`` cells into the chunk before and the rest of the
    span into the chunk after.

    Boundaries are dropped (their two chunks merged) where a chunk would be
    smaller than the halo it lends to its neighbours (Dask takes a halo
    from the adjacent chunk only), where they would leave an output chunk
    empty or lie outside the output, and, for fill borders, where all the
    windows of the next chunk would start in the fill after the input. A
    kernel larger than the chunks thus gives fewer, larger chunks; never an
    error.

    Examples
    --------
    A 3-tap kernel with 'same' padding keeps the chunks, with one cell of
    halo on each side:

    >>> plan_axis((4, 4, 4), 3, 1, 1, (1, 1), 12, fill=False)
    ((5, 4, 5), (0, 4, 8, 12), (1, 1))

    At stride 2 ('same' pads 0 on top and 1 below) the output chunks halve:

    >>> plan_axis((4, 4, 4), 3, 2, 1, (0, 1), 6, fill=False)
    ((4, 4, 5), (0, 2, 4, 6), (0, 1))

    Chunks of 1 are too small for a halo of 4 (a 5-tap kernel dilated by 2
    spans 9 cells) and merge into chunks of at least 4:

    >>> plan_axis((1,) * 12, 5, 1, 2, (4, 4), 12, fill=False)
    ((5, 4, 4, 7), (0, 1, 5, 9, 12), (4, 4))
    """
    top, bottom = padding
    size = sum(chunks)
    padded_size = size + top + bottom
    span = dilation * (kernel_size - 1) + 1
    centre = (span - 1) // 2
    # The end of the padded cells that hold the input: a chunk's first window starts before it.
    inside_end = top + size if fill else padded_size

    candidates = []     # (padded boundary, output boundary) for each input chunk boundary
    for boundary in itertools.accumulate(chunks[:-1]):
        start = -(-(boundary + top - centre) // stride)
        if 0 < start < output_size and start * stride < inside_end:
            candidates.append((top + boundary, start))

    def halo(kept):
        # What chunk k needs beyond its own cells [c_k, c_k+1): its first window starts at
        # o_k * sh, its last ends at (o_k+1 - 1) * sh + span; halos come from the neighbours.
        before = max([c - o * stride for c, o in kept] + [0])
        after = max([(o - 1) * stride + span - c for c, o in kept] + [0])
        return before, after

    least = max(halo(candidates))
    kept = []
    for padded, start in candidates:
        previous_padded, previous_start = kept[-1] if kept else (0, 0)
        if start > previous_start and padded - previous_padded >= least:
            kept.append((padded, start))
    while kept and padded_size - kept[-1][0] < least:
        kept.pop()
    padded_bounds = [0] + [c for c, _ in kept] + [padded_size]
    padded_chunks = tuple(b - a for a, b in zip(padded_bounds, padded_bounds[1:]))
    output_starts = (0,) + tuple(o for _, o in kept) + (output_size,)
    return padded_chunks, output_starts, halo(kept)


def _pad_axis(array, axis, before, after, padding_mode):
    """``array`` lazily extended along ``axis`` as `padding.pad` would, by slices of itself.

    Fill cells ('zeros', 'constant') are zeros here, placeholders that
    `_convolve_block` strips: the in-memory function adds the real fill.
    """
    import dask.array as da

    if before == after == 0:
        return array
    pieces = []
    for _, length, first, step in _runs(_source_map(array.shape[axis], before, after,
                                                     padding_mode)):
        index = [slice(None)] * array.ndim
        if first < 0:
            shape = array.shape[:axis] + (length,) + array.shape[axis + 1:]
            chunks = array.chunks[:axis] + ((length,),) + array.chunks[axis + 1:]
            pieces.append(da.zeros(shape, dtype=array.dtype, chunks=chunks))
        elif step == 0:     # a replicated edge: one cell, repeated
            index[axis] = slice(first, first + 1)
            pieces.append(da.repeat(array[tuple(index)], length, axis=axis))
        else:
            index[axis] = _slice(first, length, step)
            pieces.append(array[tuple(index)])
    return da.concatenate(pieces, axis=axis)


def _convolve_block(block, in_memory, kernel, plans, params, options, block_id=None):
    """One output chunk: the ``in_memory`` function on one padded chunk and its halo.

    ``plans`` holds, for each spatial axis, ``(axis, starts, outputs, before,
    inside, stride, span)``: where the padded chunks start, the output chunks'
    bounds, the halo taken from the chunk before, the padded cells that hold
    the input (the others are fill), and the axis's stride and kernel span.
    """
    index = [slice(None)] * block.ndim
    keep = [slice(None)] * block.ndim
    padding = []
    for axis, starts, outputs, before, inside, stride, span in plans:
        k = block_id[axis]
        received = starts[k] - before if k else 0      # the padded cell at block index 0
        first, count = outputs[k], outputs[k + 1] - outputs[k]
        begin = first * stride                          # where the chunk's first window starts
        # Where its last window ends; a chunk of pure fill reads on to the first input
        # cell, so that there are data to convolve (the extra outputs are dropped below).
        end = max((first + count - 1) * stride + span, inside[0] + 1)
        fill_before, fill_after = max(inside[0] - begin, 0), max(end - inside[1], 0)
        index[axis] = slice(begin + fill_before - received, end - fill_after - received)
        keep[axis] = slice(count)
        padding.append((fill_before, fill_after))
    with limit_threads(1):
        out = in_memory(block[tuple(index)], kernel, padding=tuple(padding), **params,
                        **options)
    return out[tuple(keep)]


def convolve(func, array, kernel, stride, dilation, padding, padding_mode, fill_value, *,
             channels_last=False, **options):
    """``func(array, kernel, ...)`` on a Dask ``array``, lazily, chunk by chunk.

    Parameters
    ----------
    func : callable
        The in-memory function, `conv2d` or `apply_filter_to_image`, called
        as ``func(block, kernel, stride=, dilation=, padding=, padding_mode=,
        fill_value=, **options)`` on NumPy blocks.
    array : dask.array.Array, shape (..., H, W), or (H, W[, C]) if ``channels_last``
    kernel : ndarray
        The kernel, of shape (kh, kw), or (C_out, C_in / groups, kh, kw),
        whose channel axis (the axis before H, W of ``array``) is then kept
        in one chunk.
    stride, dilation, padding, padding_mode, fill_value, **options
        As for ``func``. Checked here, before anything is computed, by
        ``func`` itself on a few cells and by `conv_geometry`, so the errors
        are the in-memory ones. (A check that needs the values, such as
        `conv2d`'s on uint64 values above 2**63 - 1, fires when the chunk
        holding them is computed.)
    channels_last : bool
        The layout of images: (H, W) or (H, W, C), channels in one chunk.

    Returns
    -------
    dask.array.Array
        Lazy; its shape and dtype are the in-memory result's. Its chunks:
        leading (batch) axes keep the input's; channel axes are one chunk;
        the two spatial axes follow the input's chunks as `plan_axis` says
        (at stride 1 with 'same' padding, exactly the input's).
    """
    import dask.array as da

    params = dict(stride=stride, dilation=dilation, padding_mode=padding_mode,
                  fill_value=fill_value)
    shape = array.shape
    if (array.ndim < 2 or 0 in shape or (channels_last and array.ndim > 3)
            or (np.ndim(kernel) == 4 and array.ndim not in (3, 4))):
        # A shape the in-memory function refuses: let it say so, in its own words, on a
        # stand-in of this shape that holds one value (broadcast, so it costs nothing).
        func(np.broadcast_to(np.zeros((), array.dtype), shape), kernel, padding=padding,
             **params, **options)
    axes = (0, 1) if channels_last else (array.ndim - 2, array.ndim - 1)
    whole = tuple(range(2, array.ndim)) if channels_last else (
        (array.ndim - 3,) if np.ndim(kernel) == 4 else ())
    # One output cell computed in memory checks every other argument as func does, and
    # tells the result's dtype and channels ('same' fits any kernel on a 1 x 1 input).
    sample = func(np.zeros([n if axis in whole else 1 for axis, n in enumerate(shape)],
                           array.dtype), kernel, padding="same", **params, **options)
    geometry = conv_geometry(tuple(shape[axis] for axis in axes), np.shape(kernel)[-2:],
                             stride, dilation, padding)

    fill = PADDING_MODES[padding_mode] == "constant"
    padded, plans, depth = array, [], {}
    chunks = {axis: -1 for axis in whole}          # of the padded array
    out_chunks = list(array.chunks)
    for axis, size, n_out, k, s, d, pads in zip(axes, geometry.input_shape,
                                               geometry.output_shape, geometry.kernel_shape,
                                               geometry.stride, geometry.dilation,
                                               geometry.padding):
        padded = _pad_axis(padded, axis, *pads, padding_mode)
        chunks[axis], outputs, depth[axis] = plan_axis(array.chunks[axis], k, s, d, pads,
                                                       n_out, fill)
        starts = tuple(itertools.accumulate((0,) + chunks[axis][:-1]))
        inside = (pads[0], pads[0] + size) if fill else (0, size + sum(pads))
        plans.append((axis, starts, outputs, depth[axis][0], inside, s, d * (k - 1) + 1))
        out_chunks[axis] = tuple(b - a for a, b in zip(outputs, outputs[1:]))
    for axis in whole:
        out_chunks[axis] = (sample.shape[axis],)
    return da.map_overlap(_convolve_block, padded.rechunk(chunks), depth=depth,
                          boundary="none", trim=False, chunks=tuple(out_chunks),
                          dtype=sample.dtype, meta=np.empty((0,) * array.ndim, sample.dtype),
                          in_memory=func, kernel=kernel, plans=tuple(plans), params=params,
                          options=options)
