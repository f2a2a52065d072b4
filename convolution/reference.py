"""Convolution one output cell at a time: the algorithm, written to be read.

This file is the tutorial. Read it top to bottom; it has no optimisation
tricks in it, and every fast path in the package is tested against it. It
leans on the rest of the package only to check its arguments, so that
``conv2d_loops(x, k, stride=2)`` accepts (and refuses) what ``conv2d`` does.

1. `pad`: the border, with ``np.pad``.
2. `output_size`: how many outputs fit.
3. `conv2d_loops`: one kernel sliding over a matrix, cell by cell and tap by tap.
4. `conv2d_slices`: the same sums, one slice of the input per tap.
5. `same_padding` and `full_padding`: the border 'same' and 'full' add,
   worked out for an even kernel at stride 2.
6. `conv2d_layer_loops`: a CNN layer: channels, a batch, groups and a bias.
7. `conv_transpose2d_loops`: the transposed convolution, each input cell
   spreading copies of the kernel into the output.
8. `conv2d_backward_loops`: the gradients that train a layer.
9. `convnd_loops`, `convnd_layer_loops`, `conv_transposend_loops`: the same
   loops for any number of axes (1-D signals, 3-D volumes), and a causal
   filter.

A worked example with stride 2 and dilation 2 closes this introduction.

The picture to keep in mind: the kernel laid over the top-left corner of the
padded input. Its taps are ``dilation`` cells apart, so a (kh, kw) kernel
covers a window of ``dh * (kh - 1) + 1`` rows by ``dw * (kw - 1) + 1``
columns, reading every ``dh``-th row and ``dw``-th column of it. Multiply
each tap by the cell under it, add the products up: that is the first output
cell. Move the kernel ``sw`` columns to the right for the next one; at the end
of the row, go back to the left edge and ``sh`` rows down. For output cell
(i, j), the window's top-left cell is (i * sh, j * sw), and tap (a, b) of the
kernel lies over the cell ``a * dh`` rows and ``b * dw`` columns further:

    out[i, j] = sum over a < kh, b < kw of
                kernel[a, b] * padded[i * sh + a * dh, j * sw + b * dw]

This is cross-correlation, as in every deep-learning library: the kernel is
not flipped. Convolution in the textbook sense flips the kernel first
(``kernel[::-1, ::-1]``), which ``conv2d(..., flip=True)`` does.

Worked example: stride 2, dilation 2
------------------------------------
A 7 x 7 matrix holding 0 .. 48 and a 2 x 2 kernel of ones. With dilation 2
the kernel's taps are two cells apart, so its window spans 3 x 3 cells; with
stride 2 it moves two cells at a time. The window fits where its top-left
cell is at row 0, 2 or 4 (a window at row 6 would need rows 6 .. 8), so the
output is (7 - 3) // 2 + 1 = 3 cells a side. Output cell (1, 2) reads rows
1*2 + 0*2 = 2 and 1*2 + 1*2 = 4, columns 2*2 + 0*2 = 4 and 2*2 + 1*2 = 6::

    .  .  .  .  .  .  .
    .  .  .  .  .  .  .
    .  .  .  . 18  . 20
    .  .  .  .  .  .  .
    .  .  .  . 32  . 34
    .  .  .  .  .  .  .
    .  .  .  .  .  .  .

    18 + 20 + 32 + 34 = 104

>>> x = np.arange(49).reshape(7, 7)
>>> conv2d_loops(x, [[1, 1], [1, 1]], stride=2, dilation=2)
array([[ 32,  40,  48],
       [ 88,  96, 104],
       [144, 152, 160]])
>>> np.array_equal(conv2d_slices(x, [[1, 1], [1, 1]], stride=2, dilation=2),
...                conv2d_loops(x, [[1, 1], [1, 1]], stride=2, dilation=2))
True
"""
import itertools

import numpy as np

from .checks import as_array, as_bias, as_kernel
from .padding import PADDING_MODES, check_padding_mode
from .shapes import channels, conv_geometry, conv_transpose_geometry

__all__ = ["pad", "output_size", "conv2d_loops", "conv2d_slices", "same_padding",
           "full_padding", "conv2d_layer_loops",
           "transposed_size", "conv_transpose2d_loops", "conv2d_backward_loops",
           "pad_nd", "convnd_loops", "convnd_layer_loops", "conv_transposend_loops"]


# ---------------------------------------------------------------------------
# 1. The border
# ---------------------------------------------------------------------------

def pad(matrix, padding, padding_mode="zeros", fill_value=0):
    """``matrix`` with ``padding = ((top, bottom), (left, right))`` cells added around it.

    Only the last two axes (height and width) are padded. What the new cells
    hold is the border mode, each one a mode of ``np.pad``; for the row
    ``a b c d`` and three cells on the left:

    ==========  ===============  ===========
    mode        left border      np.pad mode
    ==========  ===============  ===========
    zeros       ``0 0 0 | a b``  constant
    constant    ``v v v | a b``  constant, with ``fill_value`` v
    reflect     ``d c b | a b``  reflect
    symmetric   ``c b a | a b``  symmetric
    replicate   ``a a a | a b``  edge
    circular    ``b c d | a b``  wrap
    ==========  ===============  ===========

    Examples
    --------
    >>> pad(np.array([[1, 2, 3, 4]]), ((0, 0), (3, 1)), "reflect")
    array([[4, 3, 2, 1, 2, 3, 4, 3]])
    """
    widths = [(0, 0)] * (np.ndim(matrix) - 2) + list(padding)
    if PADDING_MODES[padding_mode] == "constant":
        return np.pad(matrix, widths, mode="constant", constant_values=fill_value)
    return np.pad(matrix, widths, mode=PADDING_MODES[padding_mode])


# ---------------------------------------------------------------------------
# 2. How many outputs
# ---------------------------------------------------------------------------

def output_size(padded_size, kernel_size, stride, dilation):
    """The number of outputs along one axis: every position where the window still fits.

    The dilated kernel spans ``span = dilation * (kernel_size - 1) + 1``
    cells. Window ``i`` starts at cell ``i * stride`` and ends at cell
    ``i * stride + span - 1``, which must be inside the padded input:
    ``i * stride + span <= padded_size``. So ``i`` runs from 0 to
    ``(padded_size - span) // stride``, and there are that many plus one.

    Examples
    --------
    >>> output_size(7, 2, stride=2, dilation=2)    # windows at 0, 2 and 4; span 3
    3
    """
    span = dilation * (kernel_size - 1) + 1
    return (padded_size - span) // stride + 1


# ---------------------------------------------------------------------------
# 3. The loops
# ---------------------------------------------------------------------------

def conv2d_loops(matrix, kernel, stride=1, dilation=1, padding=0, padding_mode="zeros",
                 fill_value=0):
    """Cross-correlate ``matrix`` with ``kernel``, one output cell and one tap at a time.

    Parameters
    ----------
    matrix : array_like, shape (..., H, W)
        Leading axes are a batch: every matrix in it is convolved with the
        same kernel (the loops below work on all of them at once).
    kernel : array_like, shape (kh, kw)
    stride, dilation, padding, padding_mode, fill_value
        As for ``conv2d``.

    Returns
    -------
    ndarray, shape (..., H_out, W_out)
        int64 for integer (and bool) inputs, so that the sums do not wrap
        around; NumPy's promotion of the two otherwise.

    Notes
    -----
    Time O(H_out * W_out * kh * kw) multiply-adds, each one a step of the
    Python loop, which is why it is slow: a 256 x 256 output with a 3 x 3
    kernel is 589,824 trips round the innermost loop.

    Examples
    --------
    >>> conv2d_loops(np.arange(16).reshape(4, 4), np.ones((2, 2), int), stride=2)
    array([[10, 18],
           [42, 50]])
    """
    matrix, kernel, (sh, sw), (dh, dw), padding = _arguments(
        matrix, kernel, stride, dilation, padding, padding_mode, fill_value)
    padded = pad(matrix, padding, padding_mode, fill_value)
    kh, kw = kernel.shape
    out_h = output_size(padded.shape[-2], kh, sh, dh)
    out_w = output_size(padded.shape[-1], kw, sw, dw)
    out = np.zeros(padded.shape[:-2] + (out_h, out_w), _dtype(matrix, kernel))
    for i in range(out_h):
        for j in range(out_w):
            total = 0      # the products of the window at (i * sh, j * sw), added up
            for a in range(kh):
                for b in range(kw):
                    total = total + kernel[a, b] * padded[..., i * sh + a * dh, j * sw + b * dw]
            out[..., i, j] = total
    return out


# ---------------------------------------------------------------------------
# 4. The same sums, one slice per tap
# ---------------------------------------------------------------------------

def conv2d_slices(matrix, kernel, stride=1, dilation=1, padding=0, padding_mode="zeros",
                  fill_value=0):
    """The sums of `conv2d_loops`, added up tap by tap instead of cell by cell.

    Swap the loops: for a fixed tap (a, b), the cells it meets as ``i`` and
    ``j`` run over the output are rows ``a*dh, a*dh + sh, a*dh + 2*sh, ...``
    (``out_h`` of them) and columns ``b*dw, b*dw + sw, ...``: one strided
    slice of the padded input, of the output's shape. Multiply it by the
    tap's weight and add it to the output. kh * kw NumPy operations instead of
    H_out * W_out * kh * kw Python steps; the fast paths of ``fast/`` start
    from here.

    Examples
    --------
    >>> conv2d_slices(np.arange(16).reshape(4, 4), np.ones((2, 2), int), stride=2)
    array([[10, 18],
           [42, 50]])
    """
    matrix, kernel, (sh, sw), (dh, dw), padding = _arguments(
        matrix, kernel, stride, dilation, padding, padding_mode, fill_value)
    padded = pad(matrix, padding, padding_mode, fill_value)
    kh, kw = kernel.shape
    out_h = output_size(padded.shape[-2], kh, sh, dh)
    out_w = output_size(padded.shape[-1], kw, sw, dw)
    out = np.zeros(padded.shape[:-2] + (out_h, out_w), _dtype(matrix, kernel))
    for a in range(kh):
        for b in range(kw):
            rows = slice(a * dh, a * dh + (out_h - 1) * sh + 1, sh)
            cols = slice(b * dw, b * dw + (out_w - 1) * sw + 1, sw)
            out += kernel[a, b] * padded[..., rows, cols]
    return out


# ---------------------------------------------------------------------------
# 5. The padding 'same' and 'full' add
# ---------------------------------------------------------------------------
#
# A padding string names a goal; the border is worked out per axis from the
# input size n, the kernel size k, the stride s and the dilation d, as the
# window covers d * (k - 1) + 1 cells. The worked example: n = 5 cells, an
# even kernel k = 4, stride 2, dilation 1.
#
# 'same' (TensorFlow's rule, at any stride): ceil(n / s) outputs, here 3.
# Their windows start s cells apart, so the last one starts at (3 - 1) * 2 = 4
# of the padded input and ends at 4 + 4 - 1 = 7: the padded input needs 8
# cells, 3 more than the input. An odd number of cells cannot be split evenly;
# the odd one goes at the end, so 1 before and 2 after:
#
#     padded cell:   0  1  2  3  4  5  6  7
#     holds:         P  x0 x1 x2 x3 x4 P  P      (P: padding)
#     output 0:     [x  x  x  x]
#     output 1:           [x  x  x  x]
#     output 2:                 [x  x  x  x]
#
# With an odd kernel at stride 1 the total is even and the border symmetric;
# PyTorch's padding='same' (stride 1 only) puts the odd cell at the end too.
#
# 'full': every window that overlaps the input by at least one cell, so the
# border is the whole span, d * (k - 1) = 3 cells, on both sides: 11 padded
# cells and (11 - 4) // 2 + 1 = 4 outputs, the first window reading only x0.
#
# shapes.resolve_padding is the package's one place for these rules, for any
# number of axes; the tests tie the two functions below to it.

def same_padding(size, kernel_size, stride=1, dilation=1):
    """The cells 'same' adds before and after one axis: ``ceil(size / stride)`` outputs.

    Examples
    --------
    >>> same_padding(5, 4, stride=2)
    (1, 2)
    >>> same_padding(5, 3)
    (1, 1)
    >>> x = np.arange(25).reshape(5, 5)
    >>> np.array_equal(conv2d_loops(x, np.ones((4, 4), int), stride=2, padding="same"),
    ...                conv2d_loops(x, np.ones((4, 4), int), stride=2, padding=((1, 2), (1, 2))))
    True
    """
    outputs = -(-size // stride)                        # ceil(size / stride)
    window = dilation * (kernel_size - 1) + 1           # the cells one window covers
    needed = (outputs - 1) * stride + window            # where the last window ends
    total = max(needed - size, 0)
    return total // 2, total - total // 2               # the odd cell at the end


def full_padding(kernel_size, dilation=1):
    """The cells 'full' adds before and after one axis: the dilated kernel's span.

    Examples
    --------
    >>> full_padding(4)
    (3, 3)
    >>> output_size(5 + sum(full_padding(4)), 4, stride=2, dilation=1)
    4
    """
    span = dilation * (kernel_size - 1)
    return span, span


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


# ---------------------------------------------------------------------------
# Arguments, checked as conv2d checks them
# ---------------------------------------------------------------------------

def _arguments(matrix, kernel, stride, dilation, padding, padding_mode, fill_value, layer=False):
    """The arguments as arrays and normalised pairs; wrong ones refused as ``conv2d`` does.

    Returns ``matrix, kernel, stride, dilation, padding`` with the padding as
    ``((top, bottom), (left, right))`` ('same' and 'full' worked out).
    """
    check_padding_mode(padding_mode, fill_value)
    matrix = as_array(matrix, "matrix")
    kernel = as_kernel(kernel, ndims=(4,) if layer else (2,))
    if matrix.ndim < 2 or 0 in matrix.shape:
        raise ValueError(f"matrix must have at least 2 dimensions (..., H, W) and no empty "
                         f"axis, got shape {matrix.shape}")
    geometry = conv_geometry(matrix.shape, kernel.shape[-2:], stride, dilation, padding)
    return matrix, kernel, geometry.stride, geometry.dilation, geometry.padding


def _dtype(*arrays):
    """int64 when every array holds integers (the sums then cannot wrap around).

    Else NumPy's promotion. None (no bias) is left out.
    """
    arrays = [array for array in arrays if array is not None]
    if all(array.dtype.kind in "biu" for array in arrays):
        return np.dtype(np.int64)
    return np.result_type(*arrays)


# ---------------------------------------------------------------------------
# 9. Any number of axes: the same loops, with index tuples
# ---------------------------------------------------------------------------
#
# Nothing above needs two axes. An output cell is a tuple of indices, one per
# axis, and so is a kernel tap; along every axis the index is the one of the
# 2-D loops, ``i * stride + a * dilation``. ``itertools.product`` walks every
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
