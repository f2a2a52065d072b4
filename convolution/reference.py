"""Convolution one output cell at a time: the algorithm, written to be read.

This file is the tutorial. It has no optimisation tricks in it; every fast
path in the package is tested against it. It starts where ``conv2d`` has done
the bookkeeping: the parameters are normalised pairs and the input has
already been padded (see ``padding.py``), so all that is left is the sliding
window.

Picture the kernel laid over the top-left corner of the padded input. Its
taps are ``dilation`` cells apart, so a (kh, kw) kernel covers a window of
``dh * (kh - 1) + 1`` rows by ``dw * (kw - 1) + 1`` columns, reading every
``dh``-th row and ``dw``-th column of it. Multiply each tap by the cell under
it, add the products up: that is the first output cell. Move the kernel
``sw`` columns to the right for the next one; at the end of the row, go back
to the left edge and ``sh`` rows down. The output has a cell for every
position where the whole window still fits inside the padded input.

In one formula, for output cell (i, j):

    out[i, j] = sum over a < kh, b < kw of
                kernel[a, b] * padded[i * sh + a * dh, j * sw + b * dw]

This is cross-correlation, as in every deep-learning library: the kernel is
not flipped. Convolution in the textbook sense flips the kernel first
(``kernel[::-1, ::-1]``), which ``conv2d(..., flip=True)`` does.
"""
import numpy as np

from .shapes import conv_output_shape, window

__all__ = ["conv2d_loops"]


def conv2d_loops(padded, kernel, stride, dilation):
    """Cross-correlate an already padded input with ``kernel``, cell by cell.

    Parameters
    ----------
    padded : ndarray, shape (..., Hp, Wp)
        The input with its border already added. Leading axes are a batch:
        every matrix in it is convolved with the same kernel.
    kernel : ndarray, shape (kh, kw)
    stride, dilation : pair of int
        ``(sh, sw)`` and ``(dh, dw)``, each at least 1.

    Returns
    -------
    ndarray, shape (..., H_out, W_out)
        In the dtype NumPy gives ``padded * kernel``.

    Notes
    -----
    Time O(H_out * W_out * kh * kw) multiply-adds, plus a Python-level step
    for every output cell, which is why it is slow: a 256 x 256 image is
    65,536 trips round the loop.

    Examples
    --------
    >>> padded = np.arange(16).reshape(4, 4)
    >>> conv2d_loops(padded, np.ones((2, 2), int), stride=(2, 2), dilation=(1, 1))
    array([[10, 18],
           [42, 50]])
    """
    # The same formula conv2d uses: padding is already in `padded`, so none here.
    out_h, out_w = conv_output_shape(padded.shape, kernel.shape, stride, dilation)
    out = np.zeros(padded.shape[:-2] + (out_h, out_w), dtype=np.result_type(padded, kernel))
    for i in range(out_h):
        for j in range(out_w):
            # The kh x kw cells under the kernel's taps, `dilation` apart.
            rows, cols = window(i, j, kernel.shape, stride, dilation)
            out[..., i, j] = np.sum(padded[..., rows, cols] * kernel, axis=(-2, -1))
    return out
