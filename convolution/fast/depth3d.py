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
BLAS (``R = ROWS`` rows a group; the band's zeros are the price of the
matrix form: ``(R + kh - 1) / kh`` times the ``kd * kh * kw`` of the sums),
plus ``kw`` copied cells per input cell and one addition per depth tap.
Memory: the shifted layout of one block of slices and the block's output,
a few MiB (`BLOCK_BYTES`); the volume's border is never built whole.

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

from ..padding import Padded, _runs, _slice, _source_map

__all__ = ["ROWS", "BLOCK_BYTES", "applies", "convolve"]

#: Output rows a group: more amortise the calls, fewer waste fewer multiply-adds.
ROWS = 4
#: The shifted layout and output of one block of slices, at most (about).
BLOCK_BYTES = 4 << 20


def applies(geometry):
    """Whether the band stays small: its zeros cost at most about 3 times the sums."""
    (_, kh, _), (_, sh, _), (_, dh, _) = (geometry.kernel_shape, geometry.stride,
                                          geometry.dilation)
    return ((ROWS - 1) * sh + (kh - 1) * dh + 1) <= 3 * kh * ROWS


def _bands(kernel, geometry, rows):
    """``band[a][r, line * kw + c] = kernel[a, b, c]`` for ``line = r * sh + b * dh``."""
    kd, kh, kw = kernel.shape
    (_, sh, _), (_, dh, _) = geometry.stride, geometry.dilation
    lines = (rows - 1) * sh + (kh - 1) * dh + 1
    bands = np.zeros((kd, rows, lines, kw), kernel.dtype)
    for r in range(rows):
        for b in range(kh):
            bands[:, r, r * sh + b * dh, :] = kernel[:, b, :]
    return bands.reshape(kd, rows, lines * kw)


def _fetch(padded, source, shifted, geometry, dtype, fill_value):
    """``shifted[p, line, c, :]`` for the padded slices ``source`` (input slices, -1 the fill)."""
    kw, dw, sw, width = (geometry.kernel_shape[2], geometry.dilation[2], geometry.stride[2],
                         geometry.output_shape[2])
    lines = shifted.shape[1]
    for start, length, first, step in _runs(source):
        if first < 0:
            shifted[start:start + length] = fill_value
            continue
        batch = _slice(first, 1 if step == 0 else length, step)
        here = 1 if step == 0 else length
        for c in range(kw):
            padded.region(batch, range(0, lines), range(c * dw, c * dw + (width - 1) * sw + 1, sw),
                          dtype, out=shifted[start:start + here, :, c, :])
        if step == 0:          # a replicated border: one slice, repeated
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

    Returns a new array (..., D_out, H_out, W_out) of ``dtype``.
    """
    volumes = matrix.reshape((-1,) + matrix.shape[-3:])
    kd, kh, kw = kernel.shape
    (sd, sh, _), (dd, dh, _) = geometry.stride, geometry.dilation
    depth, height, width = geometry.output_shape
    rows = ROWS
    groups = -(-height // rows)
    # The lines every group reads (the last groups may read past the padded height: zeros).
    lines = (groups * rows - 1) * sh + (kh - 1) * dh + 1
    per_group = ((rows - 1) * sh + (kh - 1) * dh + 1) * kw
    bands = _bands(kernel, geometry, rows)
    itemsize = np.dtype(dtype).itemsize
    slice_bytes = lines * kw * width * itemsize
    block = max(1, min(depth, BLOCK_BYTES // max(slice_bytes * sd + 2 * groups * rows * width
                                                 * itemsize, 1)))
    reach = (block - 1) * sd + (kd - 1) * dd + 1       # input slices a block reads
    shifted = np.empty((reach, lines, kw, width), dtype)
    acc = np.empty((block, groups, rows, width), dtype)
    part = np.empty_like(acc)
    source = _source_map(geometry.input_shape[0], *geometry.padding[0], padding_mode)
    out = np.empty((volumes.shape[0],) + geometry.output_shape, dtype)
    s = shifted.strides
    with np.errstate(invalid="ignore", over="ignore"):   # the band's zeros times an infinity
        for n, volume in enumerate(volumes):
            padded = Padded(volume, geometry.padding[1:], padding_mode, fill_value)
            for z0 in range(0, depth, block):
                count = min(block, depth - z0)
                needed = (count - 1) * sd + (kd - 1) * dd + 1
                _fetch(padded, source[z0 * sd:z0 * sd + needed], shifted[:needed], geometry, dtype,
                       fill_value)
                for a in range(kd):
                    # (z, g): from line g*R*sh of shifted slice z*sd + a*dd, kw shifts each.
                    view = np.lib.stride_tricks.as_strided(
                        shifted[a * dd:], (count, groups, per_group, width),
                        (sd * s[0], rows * sh * s[1], s[2], s[3]), writeable=False)
                    np.matmul(bands[a], view, out=(acc if a == 0 else part)[:count])
                    if a:
                        acc[:count] += part[:count]
                result = acc[:count].reshape(count, groups * rows, width)[:, :height]
                out[n, z0:z0 + count] = result
                if not np.isfinite(np.add.reduce(result, axis=None)):
                    # NaN or infinity: those slices tap by tap, exactly
                    for z in np.flatnonzero(~np.isfinite(result).all(axis=(1, 2))):
                        _taps(shifted, kernel, geometry, z, height, out[n, z0 + z])
    return out.reshape(matrix.shape[:-3] + geometry.output_shape)
