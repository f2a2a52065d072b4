"""The tutorial, last chapter: the loops of the convolution for any number of axes.

Read ``reference.py`` and ``reference_layers.py`` first: this file writes
their loops again with index tuples, so that one function serves a 1-D
signal, a 2-D image and a 3-D volume. No optimisation tricks; `conv1d` and
`conv3d` are tested against it.
"""
import itertools

import numpy as np

from .checks import as_array, as_bias
from .geometry import conv_geometry, conv_transpose_geometry
from .padding import PADDING_MODES, check_padding_mode
from .reference import _dtype, output_size
from .reference_layers import transposed_size
from .shapes import channels

__all__ = ["pad_nd", "convnd_loops", "convnd_layer_loops", "conv_transposend_loops"]


# ---------------------------------------------------------------------------
# 9. Any number of axes: the same loops, with index tuples
# ---------------------------------------------------------------------------
#
# Nothing in the loops of reference.py and reference_layers.py needs two
# axes. An output cell is a tuple of indices, one per axis, and so is a
# kernel tap; along every axis the index is the one of the 2-D loops,
# ``i * stride + a * dilation``. ``itertools.product`` walks every
# output cell (or every tap) of any number of axes, in row-major order, as the
# nested ``for`` loops above do for two. A 1-D kernel slides along a signal
# (audio, a time series); a 3-D one through a volume (a scan, a video).
#
# A causal filter
# ---------------
# In a causal filter output ``t`` depends only on inputs up to ``t``: the
# present and the past, never the future (a filter running on a live signal,
# or WaveNet's layers). Anchored at the window's first tap, output ``t``
# reads inputs ``t - before`` to ``t - before + span - 1``; for the last of
# them to be ``t``, pad ``before = span - 1 = dilation * (k - 1)`` cells on
# the left and none on the right. The output is then as long as the input
# (`convnd_loops` shows a causal moving sum).

def pad_nd(matrix, padding, padding_mode="zeros", fill_value=0):
    """`pad` for any number of axes: one ``(before, after)`` pair per padded axis, the last ones.

    Examples
    --------
    >>> pad_nd(np.array([1, 2, 3, 4]), ((3, 1),), "reflect")
    array([4, 3, 2, 1, 2, 3, 4, 3])
    """
    widths = [(0, 0)] * (np.ndim(matrix) - len(padding)) + list(padding)
    if PADDING_MODES[padding_mode] == "constant":
        return np.pad(matrix, widths, mode="constant", constant_values=fill_value)
    return np.pad(matrix, widths, mode=PADDING_MODES[padding_mode])


def convnd_loops(matrix, kernel, stride=1, dilation=1, padding=0, padding_mode="zeros",
                 fill_value=0):
    """`conv2d_loops` for a kernel of any number of axes: one output cell, one tap at a time.

    Parameters
    ----------
    matrix : array_like, shape (..., *spatial)
        The kernel runs along its last ``kernel.ndim`` axes; the leading
        ones are a batch.
    kernel : array_like, shape (k,), (kd, kh, kw), ... (any number of axes)
    stride, dilation, padding, padding_mode, fill_value
        As for ``conv1d``, ``conv2d`` and ``conv3d``: an int, or one value per axis.

    Returns
    -------
    ndarray, shape (..., *output_spatial)

    Examples
    --------
    A causal moving sum of 3 samples (padding ``(k - 1, 0)``: two cells on the
    left, none on the right): output ``t`` adds samples ``t - 2`` to ``t``.

    >>> convnd_loops([1, 2, 3, 4, 5], [1, 1, 1], padding=(2, 0))
    array([ 1,  3,  6,  9, 12])

    Changing a sample changes no output before it:

    >>> convnd_loops([1, 2, 3, 4, 50], [1, 1, 1], padding=(2, 0))
    array([ 1,  3,  6,  9, 57])

    Stride 3, and a volume:

    >>> convnd_loops(np.arange(8), [1, -1], stride=3)
    array([-1, -1, -1])
    >>> convnd_loops(np.ones((3, 4, 4), int), np.ones((2, 2, 2), int), padding=((0, 0), 1, 0))
    array([[[4, 4, 4],
            [8, 8, 8],
            [8, 8, 8],
            [8, 8, 8],
            [4, 4, 4]],
    <BLANKLINE>
           [[4, 4, 4],
            [8, 8, 8],
            [8, 8, 8],
            [8, 8, 8],
            [4, 4, 4]]])
    """
    matrix, kernel, stride, dilation, padding = _arguments_nd(
        matrix, kernel, stride, dilation, padding, padding_mode, fill_value, layer=False)
    padded = pad_nd(matrix, padding, padding_mode, fill_value)
    n = kernel.ndim
    out_shape = tuple(output_size(size, k, s, d) for size, k, s, d
                      in zip(padded.shape[-n:], kernel.shape, stride, dilation))
    out = np.zeros(padded.shape[:-n] + out_shape, _dtype(matrix, kernel))
    for cell in itertools.product(*map(range, out_shape)):        # every output cell
        total = 0
        for taps in itertools.product(*map(range, kernel.shape)):   # every tap of the kernel
            read = tuple(i * s + a * d for i, a, s, d in zip(cell, taps, stride, dilation))
            total = total + kernel[taps] * padded[(Ellipsis,) + read]
        out[(Ellipsis,) + cell] = total
    return out


def convnd_layer_loops(matrix, kernel, stride=1, dilation=1, padding=0, padding_mode="zeros",
                       fill_value=0, bias=None, groups=1):
    """`conv2d_layer_loops` for any number of spatial axes.

    Parameters
    ----------
    matrix : array_like, shape (N, C_in, *spatial) or (C_in, *spatial)
    kernel : array_like, shape (C_out, C_in / groups, *window)
        PyTorch's layout: ``conv1d``'s (C_out, C_in / groups, k), ``conv3d``'s
        (C_out, C_in / groups, kd, kh, kw).
    stride, dilation, padding, padding_mode, fill_value, bias, groups
        As for `conv2d_layer_loops`.

    Returns
    -------
    ndarray, shape (N, C_out, *output_spatial) or (C_out, *output_spatial)

    Examples
    --------
    >>> convnd_layer_loops(np.ones((2, 5)), np.ones((3, 2, 2)), bias=[0, 1, 2])
    array([[4., 4., 4., 4.],
           [5., 5., 5., 5.],
           [6., 6., 6., 6.]])
    """
    matrix, kernel, stride, dilation, padding = _arguments_nd(
        matrix, kernel, stride, dilation, padding, padding_mode, fill_value, layer=True)
    layout = channels(matrix.shape, kernel.shape, groups)
    bias = as_bias(bias, layout.out_channels)
    if not layout.batched:
        matrix = matrix[np.newaxis]
    padded = pad_nd(matrix, padding, padding_mode, fill_value)
    out_channels, in_per_group = kernel.shape[:2]
    window = kernel.shape[2:]
    out_per_group = out_channels // groups
    out_shape = tuple(output_size(size, k, s, d) for size, k, s, d
                      in zip(padded.shape[2:], window, stride, dilation))
    out = np.zeros((padded.shape[0], out_channels) + out_shape, _dtype(matrix, kernel, bias))
    for o in range(out_channels):
        group = o // out_per_group
        for cell in itertools.product(*map(range, out_shape)):
            for c in range(in_per_group):
                channel = group * in_per_group + c
                for taps in itertools.product(*map(range, window)):
                    read = tuple(i * s + a * d for i, a, s, d in zip(cell, taps, stride, dilation))
                    out[(slice(None), o) + cell] += (kernel[(o, c) + taps]
                                                     * padded[(slice(None), channel) + read])
    if bias is not None:
        out += bias.reshape((-1,) + (1,) * len(window))
    return out if layout.batched else out[0]


def conv_transposend_loops(matrix, kernel, stride=1, dilation=1, padding=0, output_padding=0,
                           bias=None, groups=1):
    """`conv_transpose2d_loops` for any number of spatial axes: each input cell spreads the kernel.

    Parameters
    ----------
    matrix : array_like, shape (N, C_in, *spatial) or (C_in, *spatial)
    kernel : array_like, shape (C_in, C_out / groups, *window)
    stride, dilation, padding, output_padding, bias, groups
        As for `conv_transpose2d_loops`, one value (or pair) per axis.

    Returns
    -------
    ndarray, shape (N, C_out, *output_spatial) or (C_out, *output_spatial)

    Examples
    --------
    >>> conv_transposend_loops([[1, 2, 3]], [[[1, 10]]], stride=3)
    array([[ 1, 10,  0,  2, 20,  0,  3, 30]])
    """
    matrix = as_array(matrix, "matrix")
    kernel = as_array(kernel, "kernel")
    if kernel.ndim < 3 or 0 in kernel.shape:
        raise ValueError(f"kernel must have at least 3 axes (C_in, C_out / groups, *window) "
                         f"and none empty, got shape {kernel.shape}")
    layout = channels(matrix.shape, kernel.shape, groups, transposed=True)
    window = kernel.shape[2:]
    geometry = conv_transpose_geometry(matrix.shape, window, stride, dilation, padding,
                                       output_padding)
    bias = as_bias(bias, layout.out_channels)
    if not layout.batched:
        matrix = matrix[np.newaxis]
    in_channels, out_per_group = matrix.shape[1], kernel.shape[1]
    in_per_group = in_channels // groups
    full_shape = tuple(transposed_size(size, k, s, d) + extra for size, k, s, d, extra
                       in zip(matrix.shape[2:], window, geometry.stride, geometry.dilation,
                              geometry.output_padding))
    full = np.zeros((matrix.shape[0], layout.out_channels) + full_shape,
                    _dtype(matrix, kernel, bias))
    for c in range(in_channels):
        group = c // in_per_group
        for o in range(out_per_group):
            channel = group * out_per_group + o
            for cell in itertools.product(*map(range, matrix.shape[2:])):
                for taps in itertools.product(*map(range, window)):
                    write = tuple(i * s + a * d for i, a, s, d
                                  in zip(cell, taps, geometry.stride, geometry.dilation))
                    full[(slice(None), channel) + write] += (kernel[(c, o) + taps]
                                                             * matrix[(slice(None), c) + cell])
    crop = tuple(slice(before, size - after)
                 for (before, after), size in zip(geometry.padding, full_shape))
    out = full[(slice(None), slice(None)) + crop]
    if bias is not None:
        out += bias.reshape((-1,) + (1,) * len(window))
    return out if layout.batched else out[0]


def _arguments_nd(matrix, kernel, stride, dilation, padding, padding_mode, fill_value, layer):
    """`_arguments` for any number of axes: the kernel's (less 2 for a layer) is the number."""
    check_padding_mode(padding_mode, fill_value)
    matrix = as_array(matrix, "matrix")
    kernel = as_array(kernel, "kernel")
    spatial = kernel.ndim - 2 if layer else kernel.ndim
    if spatial < 1 or 0 in kernel.shape:
        raise ValueError(f"kernel must have at least {3 if layer else 1} axes and none empty, "
                         f"got shape {kernel.shape}")
    if matrix.ndim < spatial or 0 in matrix.shape:
        raise ValueError(f"matrix must have at least {spatial} dimensions and no empty axis, "
                         f"got shape {matrix.shape}")
    geometry = conv_geometry(matrix.shape, kernel.shape[-spatial:], stride, dilation, padding)
    return matrix, kernel, geometry.stride, geometry.dilation, geometry.padding
