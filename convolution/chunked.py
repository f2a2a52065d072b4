"""Arrays larger than memory: a convolution of a Dask array, computed chunk by chunk.

`conv2d` and `apply_filter_to_image` hand a ``dask.array.Array`` to
`convolve`, which returns a lazy Dask array. Each of its chunks is the same
in-memory function applied to the cells that chunk's windows read, gathered
from the input's chunks, so the result equals the in-memory one: each output
cell is the same sum over the same cells (integers exactly; floats to
rounding, as each chunk's fast path is chosen for that chunk, and to the
bit with ``method='direct'`` or ``'polyphase'``, which add the taps in one
order whatever the chunk; the matrix products of 'separable' and 'banded'
add in an order that follows the chunk's width).

How, along each of the two spatial axes:

1. The border is resolved for the whole image, as in memory: ``padding``
   and its 'same' or 'full' forms by `conv_geometry`, the input cell that
   each border cell copies by ``padding._source_map`` (built from ``np.pad``
   itself). A reflection is then a reversed run of input cells, a circular
   border a run from the far side, a replicated edge one cell repeated.
2. `plan_axis` cuts the output into chunks that follow the input's (see it
   for the rule, which is also the chunks of the result).
3. Each output chunk's windows span a range of the padded axis. Its cells
   are gathered by one small task per input chunk they come from (the halo
   of a neighbour, or the far side of the image for a circular border), each
   a copy, so that an input chunk leaves memory as soon as its own output
   chunk is computed; ``dask.array.map_overlap`` keeps views instead, which
   hold their whole chunk (measured on a LocalCluster: about twice the
   memory). In the 'zeros' and 'constant' modes the fill is not gathered
   but handed to the in-memory function as padding, so it lives in the dtype
   that function computes in, as in memory (a fill of 300 on a uint8 image
   stays 300).

Every other axis keeps its chunks (a batch), except channels, which are made
one chunk: the last axis of an (H, W, C) image, and the axis before (H, W)
when the kernel is 4-D (C_out, C_in / groups, kh, kw).

Threads: each chunk runs under ``driver.limit_threads(1)``. Dask already runs
one chunk per core (a thread of the local scheduler or of a distributed
worker), so a chunk that started its own pool would put cores x cores
threads on the machine. With fewer chunks than cores, make the chunks
smaller instead. ``dask.distributed`` also starts its worker processes with
``OMP_NUM_THREADS=1`` and the like, so BLAS stays on one thread there.

Nothing here imports Dask at import time; `is_dask_array` recognises a Dask
array without importing it, so NumPy callers never pay for it.
"""
import functools
import itertools
import sys

import numpy as np

from .padding import PADDING_MODES, _runs, _slice, _source_map
from .geometry import conv_geometry
from .driver import limit_threads

__all__ = ["is_dask_array", "convolve", "plan_axis"]


def is_dask_array(value):
    """Whether ``value`` is a ``dask.array.Array``, without importing Dask.

    A Dask array can only exist once ``dask.array`` has been imported, so
    looking it up in ``sys.modules`` is exact and costs nothing.
    """
    dask_array = sys.modules.get("dask.array")
    return dask_array is not None and isinstance(value, dask_array.Array)


def plan_axis(chunks, kernel_size, stride, dilation, padding, output_size, fill):
    """Where the output chunks start along one spatial axis.

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
    tuple of int
        Output chunk ``k`` holds outputs ``starts[k]`` up to ``starts[k + 1]``;
        the last entry is ``H_out``.

    Notes
    -----
    Output cell ``i`` reads padded cells ``i*sh`` to ``i*sh + span - 1``
    (``span = dh*(kh - 1) + 1``), and belongs to the chunk of the input cell
    at the centre of its window, padded cell ``i*sh + (span - 1)//2`` (the
    cell `apply_filter_to_image` takes alpha from). So an input chunk
    boundary at ``b`` becomes the output boundary::

        o = ceil((b + top - (span - 1)//2) / sh)

    With 'same' padding at stride 1 the output is chunked exactly like the
    input; with a stride the boundaries are divided by it, rounded up. An
    output chunk then reads about ``(span - 1)//2`` cells into the input
    chunk before it and the rest of the span into the chunk after: its halo.

    Boundaries are dropped (their two chunks merged) where an input chunk
    would be smaller than the halo it lends to its neighbours, so that an
    output chunk reads from its neighbours only; where they would leave an
    output chunk empty or lie outside the output; and, for fill borders,
    where all the windows of the next chunk would start in the fill after
    the input. A kernel larger than the chunks thus gives fewer, larger
    chunks; never an error.

    Examples
    --------
    A 3-tap kernel with 'same' padding keeps the chunks:

    >>> plan_axis((4, 4, 4), 3, 1, 1, (1, 1), 12, fill=False)
    (0, 4, 8, 12)

    At stride 2 ('same' pads 0 on top and 1 below) the output chunks halve:

    >>> plan_axis((4, 4, 4), 3, 2, 1, (0, 1), 6, fill=False)
    (0, 2, 4, 6)

    Chunks of 1 are too small for a halo of 4 (a 5-tap kernel dilated by 2
    spans 9 cells) and merge into chunks of at least 4:

    >>> plan_axis((1,) * 12, 5, 1, 2, (4, 4), 12, fill=False)
    (0, 1, 5, 9, 12)
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
    return (0,) + tuple(o for _, o in kept) + (output_size,)


def _axis_blocks(chunks, kernel_size, stride, dilation, padding, output_size, padding_mode):
    """What each output chunk along one spatial axis reads.

    Returns, for each output chunk, ``(count, fill, runs)``: its number of
    outputs; ``(before, after)``, the fill cells at its ends (nonzero only
    in the 'zeros' and 'constant' modes, at the image's border), which the
    in-memory function adds as padding; and the runs of input cells between
    them, in order, each within one input chunk: ``(chunk, cells, repeat)``,
    the chunk's index, a slice of it (step -1 for a reflection), and how
    many times its one cell is repeated for a replicated edge (else 1).
    """
    size = sum(chunks)
    fill = PADDING_MODES[padding_mode] == "constant"
    top, bottom = padding
    inside = (top, top + size) if fill else (0, size + top + bottom)
    span = dilation * (kernel_size - 1) + 1
    starts = plan_axis(chunks, kernel_size, stride, dilation, padding, output_size, fill)
    source = _source_map(size, top, bottom, padding_mode)
    bounds = np.cumsum((0,) + tuple(chunks))
    blocks = []
    for first, stop in zip(starts, starts[1:]):
        begin = first * stride                          # the chunk's first window starts here
        # ... and its last ends here; a chunk of pure fill reads on to the first input
        # cell, so that there are data to convolve (its extra outputs are dropped).
        end = max((stop - 1) * stride + span, inside[0] + 1)
        before, after = max(inside[0] - begin, 0), max(end - inside[1], 0)
        runs = []
        for _, length, cell, step in _runs(source[begin + before:end - after]):
            cells = cell + step * np.arange(length)
            owner = np.searchsorted(bounds, cells, side="right") - 1
            for part in np.split(np.arange(length), np.flatnonzero(np.diff(owner)) + 1):
                chunk = int(owner[part[0]])
                local = _slice(int(cells[part[0]] - bounds[chunk]), len(part), step)
                runs.append((chunk, local, len(part) if step == 0 else 1))
        blocks.append((stop - first, (before, after), runs))
    return blocks


def _gather(chunk, region, repeats):
    """The cells of ``chunk`` that an output chunk reads, as a copy.

    A view would keep the whole input chunk in memory for as long as the
    output chunk waits for its other inputs. ``repeats`` holds ``(axis,
    count)`` for the axes along which one cell is repeated.
    """
    cells = chunk[region]
    for axis, count in repeats:
        cells = np.repeat(cells, count, axis=axis)
    return cells.copy() if cells.base is not None else cells


def _convolve_block(pieces, padding, counts, in_memory, kernel, axes, params, options):
    """One output chunk: ``pieces`` (a 2-D nested list) joined, convolved in memory with
    ``padding`` (the fill at the border), and cut to ``counts`` outputs along ``axes``."""
    cells = np.concatenate([np.concatenate(row, axis=axes[1]) for row in pieces], axis=axes[0])
    with limit_threads(1):
        out = in_memory(cells, kernel, padding=padding, **params, **options)
    keep = [slice(None)] * out.ndim
    for axis, count in zip(axes, counts):
        keep[axis] = slice(count)
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
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph

    params = dict(stride=stride, dilation=dilation, padding_mode=padding_mode,
                  fill_value=fill_value)
    shape = array.shape
    if any(map(np.isnan, shape)):
        raise ValueError(f"{'image' if channels_last else 'matrix'} must have known chunk "
                         f"sizes, got a Dask array of shape {shape}; call its "
                         f"compute_chunk_sizes() first")
    axes = (0, 1) if channels_last else (array.ndim - 2, array.ndim - 1)
    whole = tuple(range(2, array.ndim)) if channels_last else (
        (array.ndim - 3,) if np.ndim(kernel) == 4 and array.ndim >= 3 else ())
    # One output cell computed in memory checks every argument as func does, and tells
    # the result's dtype and channels ('same' fits any kernel on a 1 x 1 input).
    try:
        sample = func(np.zeros([n if axis in whole else min(n, 1) for axis, n in enumerate(shape)],
                               array.dtype), kernel, padding="same", **params, **options)
    except (TypeError, ValueError):
        # func's message may show the shape: raise it again on a stand-in of the real
        # shape, broadcast from one value so that it costs nothing (func checks first).
        func(np.broadcast_to(np.zeros((), array.dtype), shape), kernel, padding=padding,
             **params, **options)
        raise
    geometry = conv_geometry(tuple(shape[axis] for axis in axes), np.shape(kernel)[-2:],
                             stride, dilation, padding)
    array = array.rechunk({axis: -1 for axis in whole})
    blocks = [_axis_blocks(array.chunks[axis], *parameters, padding_mode)
              for axis, *parameters in zip(axes, geometry.kernel_shape, geometry.stride,
                                           geometry.dilation, geometry.padding,
                                           geometry.output_shape)]
    out_chunks = list(array.chunks)
    for axis, axis_blocks in zip(axes, blocks):
        out_chunks[axis] = tuple(count for count, _, _ in axis_blocks)
    for axis in whole:
        out_chunks[axis] = (sample.shape[axis],)

    convolve_block = functools.partial(_convolve_block, in_memory=func, kernel=kernel,
                                       axes=axes, params=params, options=options)
    token = tokenize(array, kernel, func, params, options, padding, channels_last)
    name, gather_name = f"convolve-{token}", f"convolve-gather-{token}"
    graph = {}
    for index in itertools.product(*(range(len(c)) for c in out_chunks)):
        (rows, row_fill, row_runs), (cols, col_fill, col_runs) = (
            blocks[0][index[axes[0]]], blocks[1][index[axes[1]]])
        pieces = [[None] * len(col_runs) for _ in row_runs]
        for (r, row_run), (c, col_run) in itertools.product(enumerate(row_runs),
                                                            enumerate(col_runs)):
            source, region, repeats = list(index), [slice(None)] * array.ndim, []
            for axis, (chunk, cells, repeat) in zip(axes, (row_run, col_run)):
                source[axis], region[axis] = chunk, cells
                if repeat > 1:
                    repeats.append((axis, repeat))
            key = (array.name, *source)
            if repeats or any(region[axis] != slice(0, array.chunks[axis][source[axis]], 1)
                              for axis in axes):            # not the whole chunk: gather
                graph[(gather_name, *index, r, c)] = (_gather, key, tuple(region), repeats)
                key = (gather_name, *index, r, c)
            pieces[r][c] = key
        graph[(name, *index)] = (convolve_block, pieces, (row_fill, col_fill), (rows, cols))
    layer = HighLevelGraph.from_collections(name, graph, dependencies=[array])
    return da.Array(layer, name, tuple(out_chunks),
                    meta=np.empty((0,) * array.ndim, sample.dtype))
