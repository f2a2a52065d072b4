"""A 3-D filter with its depth and height taps folded into matrix products (BLAS).

The idea
--------
``out[z, i, j] = sum of kernel[a, b, c] * padded[z*sd + a*dd, i*sh + b*dh, j*sw + c*dw]``.
Lay every padded row out ``kw`` times, once per width tap, shifted by that
tap's offset (``shifted[p, line, c, j] = padded[p, line, j*sw + c*dw]``: the
only copy, ``kw`` cells per input cell). Then a group of ``R`` output rows of
slice ``z`` reads, for depth tap ``a``, one contiguous block of ``shifted``:
the ``(R - 1) * sh + (kh - 1) * dh + 1`` lines from row ``g * R * sh`` of
slice ``z*sd + a*dd``, each with its ``kw`` shifts. Those rows times a band
matrix (row ``r`` holds ``kernel[a]``'s weights at lines ``r*sh + b*dh``)
are the group's ``R`` output rows, for this depth tap:

.. code-block:: text

    out[z, gR:gR+R, :] = sum over a of band[a] @ shifted[z*sd + a*dd, lines of g].reshape(-1, Wo)

For every slice of a block and every group at once, those blocks are one
strided view of ``shifted`` (the groups overlap; nothing more is copied), so
each depth tap of a block of slices is one ``np.matmul`` call, BLAS doing the
multiply-adds of every group in it.

Cost per output
---------------
``kd * kw * ((R - 1) * sh + (kh - 1) * dh + 1) / R`` multiply-adds through
BLAS (``R = Settings.depth_rows`` rows a group; the band's zeros are the price of the
matrix form: ``(R + kh - 1) / kh`` times the ``kd * kh * kw`` of the sums),
plus ``kw`` copied cells per input cell and one addition per depth tap.
Memory: the shifted layout of one block of slices and the block's output,
a strip of the driver (``Settings.strip_bytes``, a few MiB); the volume's
border is never built whole. The blocks are the driver's strips (output
slices), which its threads share where the work is worth it.

Limits
------
Real float32 and float64 filters (BLAS). A product also multiplies the
band's zeros by every cell it reads, so a NaN or an infinity would reach a
whole group: slices whose outputs are not all finite are done again tap by
tap, from the same shifted layout, so that NaN and infinity reach exactly
the outputs whose window holds them. Single-channel work only; layers go
through the 2-D layer path, one depth tap at a time.
"""
import numpy as np

from .. import driver, settings as _settings
from ..padding import Padded, source_map, source_runs
from .cache import kernel_cache
from .costs import FETCH_CALLS, cell_scale, products

__all__ = ["applies", "convolve"]


def applies(geometry, s=None):
    """Whether the band stays small: its zeros cost at most about 3 times the sums."""
    rows = (s or _settings.current()).depth_rows
    (_, kh, _), (_, sh, _), (_, dh, _) = (geometry.kernel_shape, geometry.stride,
                                          geometry.dilation)
    return ((rows - 1) * sh + (kh - 1) * dh + 1) <= 3 * kh * rows


@kernel_cache()
def _bands(kernel, sh, dh, rows):
    """``band[a][r, line * kw + c] = kernel[a, b, c]`` for ``line = r * sh + b * dh``."""
    kd, kh, kw = kernel.shape
    lines = (rows - 1) * sh + (kh - 1) * dh + 1
    bands = np.zeros((kd, rows, lines, kw), kernel.dtype)
    for r in range(rows):
        for b in range(kh):
            bands[:, r, r * sh + b * dh, :] = kernel[:, b, :]
    bands = bands.reshape(kd, rows, lines * kw)
    bands.flags.writeable = False
    return bands


def _fetch(padded, source, shifted, geometry, dtype, fill_value):
    """``shifted[p, line, c, :]`` for the padded slices ``source`` (input slices, -1 the fill)."""
    kw, dw, sw, width = (geometry.kernel_shape[2], geometry.dilation[2], geometry.stride[2],
                         geometry.output_shape[2])
    lines = shifted.shape[1]
    for run in source_runs(source):
        start, length = run.start, run.length
        if run.first < 0:
            shifted[start:start + length] = fill_value
            continue
        here = 1 if run.step == 0 else length
        for c in range(kw):
            padded.region(run.input_slice(), range(0, lines),
                          range(c * dw, c * dw + (width - 1) * sw + 1, sw),
                          dtype, out=shifted[start:start + here, :, c, :])
        if run.step == 0:          # a replicated border: one slice, repeated
            shifted[start + 1:start + length] = shifted[start]


def _taps(shifted, kernel, geometry, z, height, out):
    """Output slice ``z`` of the block, tap by tap from ``shifted`` (the exact NaN placement)."""
    (sd, sh, _), (dd, dh, _) = geometry.stride, geometry.dilation
    out[...] = 0
    for a in range(kernel.shape[0]):
        for b in range(kernel.shape[1]):
            rows = slice(b * dh, b * dh + (height - 1) * sh + 1, sh)
            for c in range(kernel.shape[2]):
                out += kernel[a, b, c] * shifted[z * sd + a * dd, rows, c, :]


def convolve(matrix, kernel, geometry, padding_mode, fill_value, dtype):
    """conv3d's filter: ``matrix`` (..., D, H, W) with ``kernel`` (kd, kh, kw) in ``dtype``.

    Returns a new array (..., D_out, H_out, W_out) of ``dtype``. The output
    slices are cut into the driver's strips, each a block of slices done
    from its own shifted layout, on the driver's threads.
    """
    s = _settings.current()
    dtype = np.dtype(dtype)
    volumes = matrix.reshape((-1,) + matrix.shape[-3:])
    kd, kh, kw = kernel.shape
    (sd, sh, _), (dd, dh, _) = geometry.stride, geometry.dilation
    depth, height, width = geometry.output_shape
    rows = s.depth_rows
    groups = -(-height // rows)
    # The lines every group reads (the last groups may read past the padded height: zeros).
    lines = (groups * rows - 1) * sh + (kh - 1) * dh + 1
    per_group = ((rows - 1) * sh + (kh - 1) * dh + 1) * kw
    bands = _bands(kernel, sh, dh, rows)
    itemsize = dtype.itemsize
    source = source_map(geometry.input_shape[0], *geometry.padding[0], padding_mode)
    out = np.empty((volumes.shape[0],) + geometry.output_shape, dtype)
    # Per output slice: sd slices of shifted lines, the sum and one product's part.
    slice_cells = lines * kw * width
    cells = groups * rows * width
    work = driver.Work(
        row_bytes=(sd * slice_cells + (1 if groups * rows == height else 2) * cells) * itemsize,
        extra_rows=max(0, -(-((kd - 1) * dd + 1 - sd) // sd)),
        row_ns=(products(kd * cells * per_group, bands[0].nbytes, dtype, s)
                + cell_scale(dtype) * (sd * slice_cells * s.fetch_ns
                                       + (kd + 1) * cells * s.flat_ns)),
        # Per strip: kw fetches per run of the depth's source map (a block reads one run,
        # two or three at a border), a product and a sum per depth tap, the NaN gate.
        calls=2 * kd + 4 + kw * FETCH_CALLS * min(3, len(tuple(source_runs(source)))),
        fixed_ns=4 * s.call_ns)
    plan = driver.plan(len(volumes), depth, out.nbytes, work, s)

    def strip(arena, batch, block):
        # On the thread that runs the strip (errstate is per thread): the band's zeros
        # times an infinity.
        with np.errstate(invalid="ignore", over="ignore"):
            block_of_slices(arena, batch, block)

    def block_of_slices(arena, batch, block):
        z0, count = block.start, block.stop - block.start
        needed = (count - 1) * sd + (kd - 1) * dd + 1      # input slices the block reads
        shifted = arena.take((needed, lines, kw, width), dtype)
        # The sums go straight into the output where its rows are whole groups.
        whole = groups * rows == height
        acc = None if whole else arena.take((count, groups, rows, width), dtype)
        part = arena.take((count, groups, rows, width), dtype)
        strides = shifted.strides
        for n in range(*batch.indices(len(volumes))):
            if whole:
                acc = out[n, z0:z0 + count].reshape(count, groups, rows, width)
            padded = Padded(volumes[n], geometry.padding[1:], padding_mode, fill_value)
            _fetch(padded, source[z0 * sd:z0 * sd + needed], shifted, geometry, dtype,
                   fill_value)
            for a in range(kd):
                # (z, g): from line g*R*sh of shifted slice z*sd + a*dd, kw shifts each.
                view = np.lib.stride_tricks.as_strided(
                    shifted[a * dd:], (count, groups, per_group, width),
                    (sd * strides[0], rows * sh * strides[1], strides[2], strides[3]),
                    writeable=False)
                np.matmul(bands[a], view, out=acc if a == 0 else part)
                if a:
                    acc += part
            result = acc.reshape(count, groups * rows, width)[:, :height]
            if not whole:
                out[n, z0:z0 + count] = result
            if not np.isfinite(np.add.reduce(result, axis=None)):
                # NaN or infinity: those slices tap by tap, exactly
                for z in np.flatnonzero(~np.isfinite(result).all(axis=(1, 2))):
                    _taps(shifted, kernel, geometry, z, height, out[n, z0 + z])

    with driver.single_threaded_blas(s.limit_blas):
        driver.run(strip, plan)
    return out.reshape(matrix.shape[:-3] + geometry.output_shape)
