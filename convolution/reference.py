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

The story goes on in two more files, read in this order. In
``reference_layers.py``:

6. `conv2d_layer_loops`: a CNN layer: channels, a batch, groups and a bias.
7. `conv_transpose2d_loops`: the transposed convolution, each input cell
   spreading copies of the kernel into the output.
8. `conv2d_backward_loops`: the gradients that train a layer.

In ``reference_nd.py``:

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
import numpy as np

from .checks import as_kernel, as_matrix
from .geometry import conv_geometry
from .padding import PADDING_MODES, check_padding_mode

__all__ = ["pad", "output_size", "conv2d_loops", "conv2d_slices", "same_padding",
           "full_padding"]


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
# geometry.resolve_padding is the package's one place for these rules, for any
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
# Arguments, checked as conv2d checks them
# ---------------------------------------------------------------------------

def _arguments(matrix, kernel, stride, dilation, padding, padding_mode, fill_value, layer=False):
    """The arguments as arrays and normalised pairs; wrong ones refused as ``conv2d`` does.

    Returns ``matrix, kernel, stride, dilation, padding`` with the padding as
    ``((top, bottom), (left, right))`` ('same' and 'full' worked out).
    """
    check_padding_mode(padding_mode, fill_value)
    matrix = as_matrix(matrix)
    kernel = as_kernel(kernel, ndims=(4,) if layer else (2,))
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
# Next
# ---------------------------------------------------------------------------
#
# These loops are the whole convolution of one matrix with one kernel. The
# tutorial goes on in reference_layers.py (6. a CNN layer, 7. the transposed
# convolution, 8. the gradients), then in reference_nd.py (9. any number of
# axes), written the same way and resting on the functions above.
