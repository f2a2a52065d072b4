"""The public ``conv2d``: validate, then hand over to the reference loops or a fast path."""
import numbers

import numpy as np

from . import engine, reference
from .checks import as_array, as_kernel, check_choice
from .padding import check_padding_mode, pad
from .shapes import conv_geometry

__all__ = ["conv2d", "METHODS"]

#: Every value ``method`` accepts: 'auto', the reference loops, the fast paths.
METHODS = ("auto", "loops") + tuple(engine.METHODS)


def _is_int64(value):
    """Whether ``value`` is a whole number (not NaN, not inf) that int64 holds."""
    if isinstance(value, numbers.Integral):
        return -2 ** 63 <= int(value) < 2 ** 63
    if np.iscomplexobj(value) or not np.isfinite(value):
        return False
    return value == int(value) and -2 ** 63 <= int(value) < 2 ** 63


def _compute_dtype(matrix, kernel, fill_value):
    """The dtype the paths compute in, and the dtype of the result.

    Integers (and bools) accumulate exactly in int64. Everything else follows
    NumPy's promotion of ``matrix`` and ``kernel``, except that float16 is
    accumulated in float32 and rounded once at the end.
    """
    if matrix.dtype.kind in "biu" and kernel.dtype.kind in "biu":
        for name, array in (("matrix", matrix), ("kernel", kernel)):
            if array.dtype == np.uint64 and array.size and array.max() > np.iinfo(np.int64).max:
                raise ValueError(f"{name} holds values above 2**63 - 1, which int64 "
                                 f"accumulation cannot represent; convert it to float")
        if not _is_int64(fill_value):
            raise ValueError(f"fill_value must be an integer within int64's range when "
                             f"matrix and kernel are integers, got {fill_value!r}")
        return np.dtype(np.int64), np.dtype(np.int64)
    result = np.result_type(matrix.dtype, kernel.dtype)
    if result.kind != "c" and isinstance(fill_value, numbers.Complex) and np.imag(fill_value):
        raise ValueError(f"fill_value must be real when matrix and kernel are real, "
                         f"got {fill_value!r}")
    return np.promote_types(result, np.float32), result


def conv2d(matrix, kernel, stride=1, dilation=1, padding=0, *,
           padding_mode="zeros", fill_value=0, flip=False, method="auto"):
    """Generalized 2-D convolution (cross-correlation) with stride, dilation and padding.

    Parameters
    ----------
    matrix : array_like, shape (H, W) or (..., H, W)
        The input. Leading axes are a batch: each (H, W) matrix in it is
        convolved with the same kernel. Lists of lists work.
    kernel : array_like, shape (kh, kw)
        Any size from 1 x 1, odd or even, square or not.
    stride : int or (int, int), default 1
        Step between windows, ``(sh, sw)``: rows, then columns. At least 1.
    dilation : int or (int, int), default 1
        Spacing between kernel taps, ``(dh, dw)``; 1 is a dense kernel. At least 1.
    padding : int, pair, pair of pairs or str, default 0
        Cells added around the input before convolving: an int (all four
        sides), ``(ph, pw)`` (top and bottom get ph, left and right pw),
        ``((top, bottom), (left, right))``, or 'valid' (none), 'full'
        (``dh * (kh - 1)`` rows on top and bottom, likewise for the width:
        every overlap of kernel and input) or 'same' (see Notes).
    padding_mode : str, default 'zeros'
        What the added cells hold. For the row ``a b c d``:

        ==========  ===============  ===========  ==================  ==============
        mode        left border      np.pad       OpenCV              scipy.ndimage
        ==========  ===============  ===========  ==================  ==============
        zeros       ``0 0 0 | a b``  constant     BORDER_CONSTANT     constant
        constant    ``v v v | a b``  constant     BORDER_CONSTANT     constant
        reflect     ``d c b | a b``  reflect      BORDER_REFLECT_101  mirror
        symmetric   ``c b a | a b``  symmetric    BORDER_REFLECT      reflect
        replicate   ``a a a | a b``  edge         BORDER_REPLICATE    nearest
        circular    ``b c d | a b``  wrap         BORDER_WRAP         grid-wrap
        ==========  ===============  ===========  ==================  ==============

        Padding wider than the input repeats the pattern, as ``np.pad`` does.
    fill_value : number, default 0
        The value of the added cells with ``padding_mode='constant'``; any
        other mode refuses a nonzero fill value, as ``np.pad`` does.
    flip : bool, default False
        True computes true convolution: the kernel rotated by 180 degrees.
    method : str, default 'auto'
        'auto' picks the fastest path for the arguments with a cost model;
        'loops' runs the reference loops of ``reference.py`` (slow, for
        reading and testing). The fast paths (see ``engine.py``): 'direct'
        and 'polyphase' loop over the kernel's taps, 'banded' does the sums
        as matrix products, 'separable' applies a low-rank kernel as column
        and row filters, 'fft' multiplies spectra. 'fft' refuses integer
        data and results (not exact); 'separable' refuses integer kernels
        that do not factor into integer vectors. 'auto' takes 'fft' only for
        finite float data without a large dynamic range (its error is
        relative to the largest value in a tile); NaN and infinity reach
        exactly the outputs whose window holds them on every path but 'fft'.

    Returns
    -------
    ndarray, shape (..., H_out, W_out)
        A new array, never a view of the inputs. Integer and bool inputs
        (with an integer or bool kernel) give int64, computed exactly as long
        as the sums fit in int64. Otherwise the dtype is NumPy's promotion of
        the two: float32 stays float32, float64 stays float64, complex works.

    Raises
    ------
    TypeError
        Non-numeric data; a parameter of the wrong type (a float stride, a
        bool, a string inside a pair).
    ValueError
        ``matrix`` with fewer than 2 dimensions or an empty axis; ``kernel``
        not 2-D or empty; stride or dilation below 1; negative padding; a wrong
        number of values; an unknown padding string, padding_mode or method; a
        dilated kernel that does not fit in the padded input.

    Notes
    -----
    This is cross-correlation, as in PyTorch, TensorFlow and every
    deep-learning library: with ``padded`` the input after padding,

    .. code-block:: text

        out[..., i, j] = sum over a < kh, b < kw of
                         kernel[a, b] * padded[..., i*sh + a*dh, j*sw + b*dw]

    The window is anchored at the kernel's top-left cell. The output shape is
    (see `conv_output_shape`)::

        H_out = floor((H + top + bottom - dh * (kh - 1) - 1) / sh) + 1

    'same' follows TensorFlow's rule, which stays defined for stride > 1
    (where PyTorch refuses it): ``H_out = ceil(H / sh)``, with
    ``total = max((H_out - 1) * sh + dh * (kh - 1) + 1 - H, 0)`` rows of
    padding, ``total // 2`` on top and the rest (one more when ``total`` is
    odd) at the bottom; likewise for the width. At stride 1 it is PyTorch's
    'same'.

    NaN and infinity are data: they propagate as IEEE arithmetic says
    (an infinite input under a zero weight gives NaN).

    Cost: time O(H_out * W_out * kh * kw) multiply-adds for the tap loops
    and the matrix products, O(r * (kh + kw)) per output for a separable
    kernel of rank r, and O(log(tile)) per output for the FFT. Memory beyond input and output: the
    fast paths work in strips of a few MiB per thread, together at most the
    output's size (or 256 KiB a thread for small images), and never pad the
    whole input; no im2col copy is made. The FFT's tiles take a few tens of MiB. 'loops' pads the whole input.

    Examples
    --------
    >>> matrix = np.arange(25).reshape(5, 5)
    >>> conv2d(matrix, [[1, 0], [0, -1]])
    array([[-6, -6, -6, -6],
           [-6, -6, -6, -6],
           [-6, -6, -6, -6],
           [-6, -6, -6, -6]])
    >>> conv2d(matrix, [[1, 1], [1, 1]], stride=2, dilation=(1, 3), padding="same")
    array([[ 9, 20, 11],
           [29, 60, 31],
           [22, 45, 23]])
    >>> conv2d(np.ones((2, 4, 4)), np.ones((3, 3)), padding=1, padding_mode="constant",
    ...        fill_value=-1).shape
    (2, 4, 4)
    """
    check_choice("method", method, METHODS)
    check_padding_mode(padding_mode, fill_value)
    if not isinstance(flip, (bool, np.bool_)):
        raise TypeError(f"flip must be True or False, got {flip!r}")
    matrix = as_array(matrix, "matrix")
    kernel = as_kernel(kernel)
    if matrix.ndim < 2 or 0 in matrix.shape:
        raise ValueError(f"matrix must have at least 2 dimensions (..., H, W) and no empty "
                         f"axis, got shape {matrix.shape}")
    geometry = conv_geometry(matrix.shape, kernel.shape, stride, dilation, padding)
    compute_dtype, result_dtype = _compute_dtype(matrix, kernel, fill_value)

    kernel = kernel.astype(compute_dtype, copy=False)
    if flip:
        kernel = kernel[::-1, ::-1]
    if method == "loops":
        padded = pad(matrix.astype(compute_dtype, copy=False), geometry.padding,
                     padding_mode, fill_value)
        out = reference.conv2d_loops(padded, kernel, geometry.stride, geometry.dilation)
    else:
        out = engine.convolve(matrix, kernel, geometry, padding_mode, fill_value,
                              compute_dtype, method)
    return out.astype(result_dtype, copy=False)
