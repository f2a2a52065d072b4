"""The fast paths, and the choice between them.

Every path here computes exactly what ``reference.conv2d_loops`` computes, on
the same arguments (an already padded input, a 2-D kernel, stride and dilation
pairs), and is tested against it. None loops over output cells in Python.
"""
import numpy as np

from .shapes import conv_output_shape, tap

__all__ = ["METHODS", "conv2d_direct", "choose_method"]


def conv2d_direct(padded, kernel, stride, dilation):
    """Loop over the kernel's taps, each a whole strided slice of the input.

    Where the reference visits every output cell and sums kh*kw products,
    this visits every kernel tap ``(a, b)`` and adds ``kernel[a, b]`` times
    the slice of the input that tap meets, for all output cells at once (see
    ``shapes.tap``). Same products, same sums, in a different order: kh*kw
    Python steps instead of H_out*W_out, each a NumPy loop over the output.

    Notes
    -----
    Memory: the output and one scratch array of its size; the slices are
    views, so no copy of the input is made (unlike im2col, which copies it
    kh*kw times). Time: O(H_out * W_out * kh * kw).
    """
    out_shape = conv_output_shape(padded.shape, kernel.shape, stride, dilation)
    dtype = np.result_type(padded, kernel)
    out = np.zeros(padded.shape[:-2] + out_shape, dtype=dtype)
    product = np.empty_like(out)
    for (a, b), weight in np.ndenumerate(kernel):
        rows, cols = tap(a, b, out_shape, stride, dilation)
        np.multiply(padded[..., rows, cols], weight, out=product)
        out += product
    return out


#: The fast paths by name; ``conv2d(..., method=name)`` picks one.
METHODS = {
    "direct": conv2d_direct,
}


def choose_method(padded_shape, kernel, stride, dilation):
    """The name of the path 'auto' takes for these arguments."""
    return "direct"
