"""The tutorial, continued: a CNN layer, the transposed convolution and the gradients.

Read ``reference.py`` first: this file builds on its `pad`, `output_size`
and `conv2d_loops`, in the same plain loops and with no optimisation tricks.
Every fast path in the package is tested against it.

6. `conv2d_layer_loops`: a CNN layer: channels, a batch, groups and a bias.
7. `conv_transpose2d_loops`: the transposed convolution, each input cell
   spreading copies of the kernel into the output.
8. `conv2d_backward_loops`: the gradients that train a layer.

The tutorial ends in ``reference_nd.py``: the same loops for any number of
axes.
"""
import numpy as np

from .checks import as_array, as_bias, as_kernel
from .geometry import conv_transpose_geometry
from .reference import _arguments, _dtype, output_size, pad
from .shapes import channels

__all__ = ["conv2d_layer_loops", "transposed_size", "conv_transpose2d_loops",
           "conv2d_backward_loops"]


# ---------------------------------------------------------------------------
# 6. A CNN layer: channels, a batch, groups and a bias
# ---------------------------------------------------------------------------

def conv2d_layer_loops(matrix, kernel, stride=1, dilation=1, padding=0, padding_mode="zeros",
                       fill_value=0, bias=None, groups=1):
    """A convolution layer, as ``torch.nn.functional.conv2d`` computes it, in plain loops.

    An image in a CNN has channels (red, green, blue; later, the features a
    layer found), and a layer has one kernel per pair of output and input
    channel: output channel ``o`` is the sum, over the input channels ``c``,
    of ``conv2d_loops(matrix[c], kernel[o, c])``, plus the bias ``bias[o]``.

    ``groups`` splits both sets of channels into that many groups; output
    channels of group ``g`` read only the input channels of group ``g``, so
    the kernel holds ``C_in / groups`` input channels per output channel. With
    ``groups == C_in`` every output channel reads one input channel:
    depthwise convolution.

    Parameters
    ----------
    matrix : array_like, shape (N, C_in, H, W) or (C_in, H, W)
        A batch of N images, or one image.
    kernel : array_like, shape (C_out, C_in / groups, kh, kw)
    stride, dilation, padding, padding_mode, fill_value
        As for `conv2d_loops`.
    bias : array_like, shape (C_out,), optional
    groups : int, default 1

    Returns
    -------
    ndarray, shape (N, C_out, H_out, W_out) or (C_out, H_out, W_out)

    Examples
    --------
    >>> x = np.arange(18).reshape(2, 3, 3)                  # 2 channels of 3 x 3
    >>> k = np.array([[[[1]], [[1]]], [[[1]], [[-1]]]])     # 1 x 1 kernels: a sum, a difference
    >>> conv2d_layer_loops(x, k, bias=[0, 100])
    array([[[ 9, 11, 13],
            [15, 17, 19],
            [21, 23, 25]],
    <BLANKLINE>
           [[91, 91, 91],
            [91, 91, 91],
            [91, 91, 91]]])
    """
    matrix, kernel, (sh, sw), (dh, dw), padding = _arguments(
        matrix, kernel, stride, dilation, padding, padding_mode, fill_value, layer=True)
    layout = channels(matrix.shape, kernel.shape, groups)
    bias = as_bias(bias, layout.out_channels)
    if not layout.batched:       # one image is a batch of one
        matrix = matrix[np.newaxis]
    padded = pad(matrix, padding, padding_mode, fill_value)
    out_channels, in_per_group, kh, kw = kernel.shape
    out_per_group = out_channels // groups
    out_h = output_size(padded.shape[-2], kh, sh, dh)
    out_w = output_size(padded.shape[-1], kw, sw, dw)
    out = np.zeros((padded.shape[0], out_channels, out_h, out_w), _dtype(matrix, kernel, bias))
    for o in range(out_channels):
        group = o // out_per_group           # the group output channel o belongs to
        for i in range(out_h):
            for j in range(out_w):
                for c in range(in_per_group):
                    channel = group * in_per_group + c     # the input channel kernel[o, c] reads
                    for a in range(kh):
                        for b in range(kw):
                            out[:, o, i, j] += (kernel[o, c, a, b]
                                                * padded[:, channel, i * sh + a * dh,
                                                         j * sw + b * dw])
    if bias is not None:       # one number per output channel, added to each of its cells
        out += bias[:, np.newaxis, np.newaxis]
    return out if layout.batched else out[0]


# ---------------------------------------------------------------------------
# 7. The transposed convolution: each input cell spreads copies of the kernel
# ---------------------------------------------------------------------------

def transposed_size(size, kernel_size, stride, dilation):
    """The size along one axis of the transposed convolution, before any cropping.

    Input cell ``i`` spreads to cells ``i * stride + a * dilation`` for every
    tap ``a``; the last input cell reaches ``(size - 1) * stride`` plus the
    dilated kernel's span.

    Examples
    --------
    >>> transposed_size(3, 3, stride=2, dilation=1)    # cells 0..2, 2..4, 4..6
    7
    """
    span = dilation * (kernel_size - 1) + 1
    return (size - 1) * stride + span


def conv_transpose2d_loops(matrix, kernel, stride=1, dilation=1, padding=0, output_padding=0,
                           bias=None, groups=1):
    """The transposed convolution, as ``torch.nn.functional.conv_transpose2d``, in plain loops.

    The forward convolution gathers: each output cell is a weighted sum of
    the input cells under its window. The transposed convolution scatters:
    each input cell ``(i, j)`` adds a copy of the kernel, weighted by its
    value, onto the output, with its top-left tap at ``(i * sh, j * sw)`` and
    tap ``(a, b)`` on cell ``(i * sh + a * dh, j * sw + b * dw)``: the very
    index of the forward loop, read the other way. With stride 2 the copies
    land two cells apart, so the output is about twice as large as the input:
    the upsampling layer of decoders and GANs.

    ``padding`` runs backwards too: the forward convolution added it to its
    input, so here it is cropped off the result (``top`` rows at the top,
    ``bottom`` at the bottom, and so on). ``output_padding`` adds rows at the
    bottom and columns at the right: a forward convolution with stride s maps
    s input sizes onto the same output size, and this picks the larger ones.

    Parameters
    ----------
    matrix : array_like, shape (N, C_in, H, W) or (C_in, H, W)
    kernel : array_like, shape (C_in, C_out / groups, kh, kw)
        PyTorch's layout: the input channels lead, the transpose of the
        forward convolution's (C_out, C_in / groups, kh, kw).
    stride, dilation : int or pair
    padding : int, pair or pair of pairs
        Cells cropped off the result: ``((top, bottom), (left, right))``.
    output_padding : int or pair
        Cells added at the bottom and right, smaller than the stride or the
        dilation on its axis.
    bias : array_like, shape (C_out,), optional
    groups : int, default 1

    Returns
    -------
    ndarray, shape (N, C_out, H_out, W_out) or (C_out, H_out, W_out)
        ``H_out = (H - 1) * sh + dh * (kh - 1) + 1 - top - bottom + output_padding``

    Examples
    --------
    Each cell of a 2 x 2 input spreads a copy of a 2 x 2 kernel, 3 cells apart:

    >>> conv_transpose2d_loops([[[1, 2], [3, 4]]], [[[[1, 10], [100, 1000]]]], stride=3)
    array([[[   1,   10,    0,    2,   20],
            [ 100, 1000,    0,  200, 2000],
            [   0,    0,    0,    0,    0],
            [   3,   30,    0,    4,   40],
            [ 300, 3000,    0,  400, 4000]]])
    """
    matrix = as_array(matrix, "matrix")
    kernel = as_kernel(kernel, ndims=(4,), transposed=True)
    layout = channels(matrix.shape, kernel.shape, groups, transposed=True)
    geometry = conv_transpose_geometry(matrix.shape, kernel.shape[2:], stride, dilation,
                                       padding, output_padding)
    (sh, sw), (dh, dw) = geometry.stride, geometry.dilation
    ((top, bottom), (left, right)), (extra_h, extra_w) = geometry.padding, geometry.output_padding
    bias = as_bias(bias, layout.out_channels)
    if not layout.batched:
        matrix = matrix[np.newaxis]
    batch, in_channels, height, width = matrix.shape
    _, out_per_group, kh, kw = kernel.shape
    in_per_group = in_channels // groups
    full_h = transposed_size(height, kh, sh, dh) + extra_h
    full_w = transposed_size(width, kw, sw, dw) + extra_w
    full = np.zeros((batch, layout.out_channels, full_h, full_w), _dtype(matrix, kernel, bias))
    for c in range(in_channels):
        group = c // in_per_group            # the group input channel c belongs to
        for o in range(out_per_group):
            channel = group * out_per_group + o     # the output channel kernel[c, o] writes
            for i in range(height):
                for j in range(width):
                    for a in range(kh):
                        for b in range(kw):
                            full[:, channel, i * sh + a * dh, j * sw + b * dw] += (
                                kernel[c, o, a, b] * matrix[:, c, i, j])
    out = full[:, :, top:full_h - bottom, left:full_w - right]
    if bias is not None:
        out += bias[:, np.newaxis, np.newaxis]
    return out if layout.batched else out[0]


# ---------------------------------------------------------------------------
# 8. The gradients
# ---------------------------------------------------------------------------

def conv2d_backward_loops(grad_output, matrix, kernel, stride=1, dilation=1, padding=0,
                          padding_mode="zeros", fill_value=0, groups=1):
    """The gradients of a layer, by the chain rule applied to each product of `conv2d_layer_loops`.

    Training gives, for the layer's output ``out``, a gradient ``grad_output``
    of the loss with respect to it (for the loss ``sum(grad_output * out)``,
    exactly that). Each output is a sum of products
    ``kernel[o, c, a, b] * padded[n, channel, i*sh + a*dh, j*sw + b*dw]``
    plus ``bias[o]``, so each product passes ``grad_output[n, o, i, j]`` on:
    times the input cell to the kernel tap, times the kernel tap to the input
    cell, and as it is to the bias. The second of these is the scatter of
    `conv_transpose2d_loops`: the gradient with respect to the input is the
    transposed convolution of the gradient with respect to the output.

    The padded input's border cells are copies of input cells (or the fill
    value, which has no gradient). So the gradient of a border cell is folded
    back onto the cell it copies, found by padding ``arange`` with the same
    ``np.pad`` mode: the row (or column) index each padded row holds.

    Parameters
    ----------
    grad_output : array_like, shape (N, C_out, H_out, W_out) or (C_out, H_out, W_out)
        Shaped like the layer's output.
    matrix, kernel, stride, dilation, padding, padding_mode, fill_value, groups
        As for `conv2d_layer_loops`.

    Returns
    -------
    grad_matrix : ndarray, shaped like ``matrix``
    grad_kernel : ndarray, shaped like ``kernel``
    grad_bias : ndarray, shape (C_out,)

    Examples
    --------
    One channel, a 1 x 3 input, a 1 x 2 kernel: out = [x0 k0 + x1 k1, x1 k0 + x2 k1].

    >>> gx, gk, gb = conv2d_backward_loops([[[1, 10]]], [[[5, 6, 7]]], [[[[2, 3]]]])
    >>> gx            # x0: 1 k0;  x1: 1 k1 + 10 k0;  x2: 10 k1
    array([[[ 2, 23, 30]]])
    >>> gk            # k0: 1 x0 + 10 x1;  k1: 1 x1 + 10 x2
    array([[[[65, 76]]]])
    >>> gb
    array([11])
    """
    matrix, kernel, (sh, sw), (dh, dw), padding = _arguments(
        matrix, kernel, stride, dilation, padding, padding_mode, fill_value, layer=True)
    layout = channels(matrix.shape, kernel.shape, groups)
    grad_output = as_array(grad_output, "grad_output")
    if not layout.batched:
        matrix, grad_output = matrix[np.newaxis], grad_output[np.newaxis]
    padded = pad(matrix, padding, padding_mode, fill_value)
    out_channels, in_per_group, kh, kw = kernel.shape
    out_per_group = out_channels // groups
    out_h = output_size(padded.shape[-2], kh, sh, dh)
    out_w = output_size(padded.shape[-1], kw, sw, dw)
    if grad_output.shape != (padded.shape[0], out_channels, out_h, out_w):
        raise ValueError(f"grad_output must have the shape of the layer's output, "
                         f"{(padded.shape[0], out_channels, out_h, out_w)}, "
                         f"got {grad_output.shape}")
    dtype = _dtype(grad_output, matrix, kernel)
    grad_padded = np.zeros(padded.shape, dtype)
    grad_kernel = np.zeros(kernel.shape, dtype)
    for o in range(out_channels):
        group = o // out_per_group
        for i in range(out_h):
            for j in range(out_w):
                for c in range(in_per_group):
                    channel = group * in_per_group + c
                    for a in range(kh):
                        for b in range(kw):
                            row, col = i * sh + a * dh, j * sw + b * dw
                            # out[:, o, i, j] += kernel[o, c, a, b] * padded[:, channel, row, col]
                            grad_kernel[o, c, a, b] += np.sum(grad_output[:, o, i, j]
                                                              * padded[:, channel, row, col])
                            grad_padded[:, channel, row, col] += (grad_output[:, o, i, j]
                                                                  * kernel[o, c, a, b])
    grad_bias = grad_output.sum(axis=(0, 2, 3)).astype(dtype)

    # Fold the border back: padded row p copies input row rows_from[p]; -1 marks the
    # fill value of 'zeros' and 'constant' (pad's fill_value), which copies no cell.
    (top, bottom), (left, right) = padding
    height, width = matrix.shape[-2:]
    rows_from = pad(np.arange(height)[np.newaxis], ((0, 0), (top, bottom)), padding_mode, -1)[0]
    cols_from = pad(np.arange(width)[np.newaxis], ((0, 0), (left, right)), padding_mode, -1)[0]
    grad_matrix = np.zeros(matrix.shape, dtype)
    for p, row in enumerate(rows_from):
        for q, col in enumerate(cols_from):
            if row >= 0 and col >= 0:
                grad_matrix[..., row, col] += grad_padded[..., p, q]
    if not layout.batched:
        grad_matrix = grad_matrix[0]
    return grad_matrix, grad_kernel, grad_bias
