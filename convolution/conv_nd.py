"""conv1d and conv3d: everything conv2d has, for signals and for volumes.

``conv1d``, ``conv3d``, ``conv_transpose1d``, ``conv_transpose3d``,
``conv1d_backward`` and ``conv3d_backward`` take `conv2d`'s arguments with one
value (or pair) per axis, and mean what it means: a kernel with 1 (3) axes is
a filter of the last 1 (3) axes of the input, any leading axes a batch; a
kernel with 3 (5) axes is a layer in PyTorch's layout, (C_out, C_in / groups,
*k) on (N, C_in, *spatial) or (C_in, *spatial).

How they are computed, all on the 2-D machinery (which gets every border
mode, dtype rule and NaN right and is tested against the loops), or on a fast
path of their own:

- A signal is a matrix of one row: ``conv1d`` is `conv2d` with a unit axis
  in front of the signal's. For long float signals, ``fast/fold1d.py`` folds
  the signal into rows instead and does the sums as Toeplitz products (BLAS).
- A 3-D kernel is a sum over its depth taps of 2-D convolutions: output slice
  ``z`` adds ``conv2d(padded[z * sd + a * dd], kernel[a])`` over the taps
  ``a``, on blocks of slices read in place through the depth border's source
  map (``depth.py``, which runs the transposed convolution and the gradients
  the same way, backwards). For float filters, ``fast/depth3d.py`` folds the
  depth and height taps into one matrix product per output slice.

Dask arrays are computed lazily, chunk by chunk: a 1-D one through `conv2d`'s
Dask path (``chunked.py``); a 3-D one as a sum over the depth taps of those
lazy 2-D convolutions of its (lazily gathered) slices (``depth.py``).

This module validates the arguments and routes the work; the work itself is
``depth.py``'s, the 2-D functions' and the fast paths'.
"""
import numbers

import numpy as np

from . import chunked, depth, reference_nd
from .fast import depth3d as fast_depth3d, fold1d as fast_fold1d
from .checks import as_array, as_bias, check_choice
from .conv import (LAYER_METHODS, METHODS, along_axes, conv2d, conv2d_backward,
                   conv_transpose2d)
from .dtypes import compute_dtype as _compute_dtype
from .padding import check_padding_mode
from .geometry import conv_geometry, conv_transpose_geometry
from .shapes import channels as channel_layout

__all__ = ["conv1d", "conv3d", "conv_transpose1d", "conv_transpose3d", "conv1d_backward",
           "conv3d_backward", "ND_METHODS"]

#: What ``conv1d`` and ``conv3d`` accept as ``method``: conv2d's, which run the
#: 2-D work, and 'fold', the fast path of ``fast/fold1d.py`` (1-D) or
#: ``fast/depth3d.py`` (3-D) for real float filters.
ND_METHODS = METHODS + ("fold",)

_NAMES = {1: ("L", "k"), 3: ("D, H, W", "kd, kh, kw")}


# ---------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------

def _check_kernel(kernel, ndim, transposed=False):
    """``kernel`` as an array with ``ndim`` axes (a filter) or ``ndim + 2`` (a layer)."""
    kernel = as_array(kernel, "kernel")
    if kernel.ndim not in (ndim, ndim + 2) or 0 in kernel.shape:
        window = _NAMES[ndim][1]
        channels = "C_in, C_out / groups" if transposed else "C_out, C_in / groups"
        raise ValueError(f"kernel must be {ndim}-D ({window}) or {ndim + 2}-D ({channels}, "
                         f"{window}) and not empty, got shape {kernel.shape}")
    return kernel


def _check_matrix(matrix, ndim):
    """``matrix`` as an array of numbers with at least ``ndim`` axes, none of them empty."""
    matrix = as_array(matrix, "matrix")
    if matrix.ndim < ndim or 0 in matrix.shape:
        raise ValueError(f"matrix must have at least {ndim} dimension{'s' * (ndim > 1)} "
                         f"(..., {_NAMES[ndim][0]}) and no empty axis, got shape {matrix.shape}")
    return matrix


def _check_groups(groups, kernel, ndim):
    """A filter has no channels to group: ``groups`` must stay 1."""
    if kernel.ndim == ndim and (isinstance(groups, bool)
                                or not isinstance(groups, numbers.Integral) or groups != 1):
        raise ValueError(f"groups must be 1 with a {ndim}-D kernel (it splits the channels of "
                         f"a {ndim + 2}-D kernel), got groups={groups!r} with kernel of shape "
                         f"{kernel.shape}")


def _check_flip(flip):
    if not isinstance(flip, (bool, np.bool_)):
        raise TypeError(f"flip must be True or False, got {flip!r}")


# ---------------------------------------------------------------------------
# The forward convolution
# ---------------------------------------------------------------------------

def _convolve(ndim, matrix, kernel, stride, dilation, padding, padding_mode, fill_value, flip,
              bias, groups, method, axes):
    """conv1d and conv3d: validate, then the loops, a fast path or the 2-D machinery."""
    params = dict(stride=stride, dilation=dilation, padding=padding, padding_mode=padding_mode,
                  fill_value=fill_value, flip=flip, bias=bias, groups=groups, method=method)
    public = conv1d if ndim == 1 else conv3d
    if axes is not None:
        return along_axes(public, ndim, matrix, kernel, axes, **params)
    if chunked.is_dask_array(matrix):
        return _dask_convolve(ndim, matrix, as_array(kernel, "kernel"), **params)
    check_choice("method", method, ND_METHODS)
    check_padding_mode(padding_mode, fill_value)
    _check_flip(flip)
    matrix = _check_matrix(matrix, ndim)
    kernel = _check_kernel(kernel, ndim)
    _check_groups(groups, kernel, ndim)
    geometry = conv_geometry(matrix.shape, kernel.shape[-ndim:], stride, dilation, padding)
    layer = kernel.ndim == ndim + 2
    layout = channel_layout(matrix.shape, kernel.shape, groups) if layer else None
    bias_array = as_bias(bias, layout and layout.out_channels)
    compute_dtype, result_dtype = _compute_dtype({"matrix": matrix, "kernel": kernel},
                                                 fill_value, bias)
    fold = (not layer and compute_dtype in fast_fold1d.DTYPES and matrix.dtype.kind in "biuf"
            and np.isfinite(fill_value))
    if method == "fold" and not fold:
        raise ValueError(f"method='fold' takes a real float filter ({ndim}-D kernel) and a "
                         f"finite fill_value, got kernel of shape {kernel.shape} and dtype "
                         f"{np.result_type(matrix, kernel)}")
    if flip:
        kernel = kernel[(Ellipsis,) + (slice(None, None, -1),) * ndim]
    if ndim == 1 and method not in ("loops", "fold") and not (
            method == "auto" and fold and fast_fold1d.pays(matrix.shape[-1], kernel.shape[-1],
                                                           geometry.stride[0])):
        # A signal is a matrix of one row.
        out = conv2d(matrix[..., np.newaxis, :], kernel[..., np.newaxis, :],
                     stride=(1,) + geometry.stride, dilation=(1,) + geometry.dilation,
                     padding=((0, 0),) + geometry.padding, padding_mode=padding_mode,
                     fill_value=fill_value, bias=bias, groups=groups, method=method)
        return out[..., 0, :]
    kernel = kernel.astype(compute_dtype, copy=False)
    if bias is not None:
        bias_array = bias_array.astype(compute_dtype)
    if method == "loops":
        cells = matrix.astype(compute_dtype, copy=False)
        if layer:
            out = reference_nd.convnd_layer_loops(cells, kernel, geometry.stride,
                                                  geometry.dilation, geometry.padding,
                                                  padding_mode, fill_value, bias_array, groups)
        else:
            out = reference_nd.convnd_loops(cells, kernel, geometry.stride, geometry.dilation,
                                            geometry.padding, padding_mode, fill_value)
            if bias is not None:
                out += bias_array
        return out.astype(result_dtype, copy=False)
    if ndim == 1:
        out = fast_fold1d.convolve(matrix, kernel, geometry, padding_mode, fill_value,
                                   compute_dtype)
    elif fold and (method == "fold" or method == "auto" and fast_depth3d.applies(geometry)):
        out = fast_depth3d.convolve(matrix, kernel, geometry, padding_mode, fill_value,
                                    compute_dtype)
    else:
        out = depth.depth_sum(matrix, kernel, geometry, layer, groups, padding_mode, fill_value,
                              compute_dtype, method if method in METHODS else "auto")
    if bias is not None:
        out += bias_array.reshape((-1, 1, 1, 1)) if layer else bias_array
    return out.astype(result_dtype, copy=False)


def conv1d(matrix, kernel, stride=1, dilation=1, padding=0, *, padding_mode="zeros",
           fill_value=0, flip=False, bias=None, groups=1, method="auto", axes=None):
    """Generalized 1-D convolution (cross-correlation): `conv2d` for signals.

    With a 1-D kernel, a filter of the last axis (or of ``axes``); with a 3-D
    kernel, a layer as ``torch.nn.functional.conv1d``.

    Parameters
    ----------
    matrix : array_like, shape (..., L), or (N, C_in, L) or (C_in, L)
        With a 1-D kernel, leading axes are a batch of signals. With a 3-D
        kernel, a batch of N signals of C_in channels, or one. A Dask array
        gives a lazy Dask array, computed chunk by chunk.
    kernel : array_like, shape (k,) or (C_out, C_in / groups, k)
    stride, dilation : int or (int,), default 1
    padding : int, (before, after), ((before, after),) or str, default 0
        Cells added at the start and the end: an int (both), a pair
        ``(before, after)``, or 'valid', 'full', 'same' (TensorFlow's rule,
        at any stride: ``ceil(L / stride)`` outputs). A causal filter, whose
        output ``t`` reads no input after ``t``, is
        ``padding=(dilation * (k - 1), 0)``.
    padding_mode, fill_value, flip, bias, groups
        As for `conv2d`: the six border modes, the fill value of 'constant',
        the kernel reversed, a bias (scalar for a filter, (C_out,) for a
        layer), groups of channels.
    method : str, default 'auto'
        'loops' runs the tutorial's loops (``reference_nd.convnd_loops``);
        `conv2d`'s methods run `conv2d` on the signal as one row; 'fold'
        (real float filters) folds the signal into overlapping rows and does
        the sums as one Toeplitz matrix product per block of rows
        (``fast/fold1d.py``), the path 'auto' takes for long float signals.
    axes : int or (int,), optional
        The input axis a 1-D kernel runs along (SciPy's convention); the
        last by default.

    Returns
    -------
    ndarray, shape (..., L_out), or (N, C_out, L_out) or (C_out, L_out)
        Dtypes as for `conv2d`: exact int64 for integers, float16 computed
        in float32, NaN and infinity reaching exactly the outputs whose
        window holds them.

    Raises
    ------
    TypeError, ValueError
        As for `conv2d`, with one value per axis; also ``axes`` that are not
        one axis of the input, or given with a layer's kernel.

    Notes
    -----
    ``out[..., i] = sum over a < k of kernel[a] * padded[..., i * s + a * d]`` and
    ``L_out = floor((L + before + after - d * (k - 1) - 1) / s) + 1``.

    Examples
    --------
    >>> conv1d([1, 2, 3, 4, 5], [1, 0, -1])
    array([-2, -2, -2])
    >>> conv1d([1, 2, 3, 4, 5], [1, 1, 1], padding=(2, 0))     # causal: the past 3 samples
    array([ 1,  3,  6,  9, 12])
    >>> conv1d(np.ones((4, 2, 100)), np.ones((8, 2, 5)), stride=2, padding="same").shape
    (4, 8, 50)
    """
    return _convolve(1, matrix, kernel, stride, dilation, padding, padding_mode, fill_value, flip,
                     bias, groups, method, axes)


def conv3d(matrix, kernel, stride=1, dilation=1, padding=0, *, padding_mode="zeros",
           fill_value=0, flip=False, bias=None, groups=1, method="auto", axes=None):
    """Generalized 3-D convolution (cross-correlation): `conv2d` for volumes and video.

    With a 3-D kernel, a filter of the last three axes (or of ``axes``);
    with a 5-D kernel, a layer as ``torch.nn.functional.conv3d``.

    Parameters
    ----------
    matrix : array_like, shape (..., D, H, W), or (N, C_in, D, H, W) or (C_in, D, H, W)
    kernel : array_like, shape (kd, kh, kw) or (C_out, C_in / groups, kd, kh, kw)
    stride, dilation : int or (int, int, int), default 1
    padding : int, 3 ints, 3 pairs or str, default 0
        An int (every side), ``(pd, ph, pw)``, ``((front, back), (top, bottom),
        (left, right))`` (ints and pairs may be mixed), or 'valid', 'full',
        'same' (TensorFlow's rule at any stride).
    padding_mode, fill_value, flip, bias, groups
        As for `conv2d`, on every axis.
    method : str, default 'auto'
        'loops' runs ``reference_nd.convnd_loops``; `conv2d`'s methods run the
        2-D work of each depth tap; 'fold' (real float filters) does the
        sums of each output slice as one matrix product, every depth tap in
        it (``fast/depth3d.py``), the path 'auto' takes for them.
    axes : 3 ints, optional
        The input axes the kernel's run along (SciPy's convention).

    Returns
    -------
    ndarray, shape (..., D_out, H_out, W_out), or (N, C_out, D_out, H_out, W_out) or
    (C_out, D_out, H_out, W_out)

    Raises
    ------
    TypeError, ValueError
        As for `conv1d`.

    Notes
    -----
    ``out[..., z, i, j]`` is the sum over the taps ``(a, b, c)`` of
    ``kernel[a, b, c] * padded[..., z*sd + a*dd, i*sh + b*dh, j*sw + c*dw]``, and each output size follows `conv_output_shape`. The
    depth border is read through a source map, never built; memory beyond
    input and output: a block of a few MiB of slices.

    Examples
    --------
    >>> volume = np.arange(64).reshape(4, 4, 4)
    >>> conv3d(volume, np.ones((2, 2, 2), int), stride=2)
    array([[[ 84, 100],
            [148, 164]],
    <BLANKLINE>
           [[340, 356],
            [404, 420]]])
    >>> conv3d(np.ones((2, 3, 8, 8, 8)), np.ones((4, 3, 3, 3, 3)), padding=1).shape
    (2, 4, 8, 8, 8)
    """
    return _convolve(3, matrix, kernel, stride, dilation, padding, padding_mode, fill_value, flip,
                     bias, groups, method, axes)


# ---------------------------------------------------------------------------
# The transposed convolution
# ---------------------------------------------------------------------------

def _transpose(ndim, matrix, kernel, stride, dilation, padding, output_padding, bias, groups,
               method):
    check_choice("method", method, LAYER_METHODS)
    matrix = _check_matrix(matrix, ndim)
    kernel = _check_kernel(kernel, ndim, transposed=True)
    _check_groups(groups, kernel, ndim)
    geometry = conv_transpose_geometry(matrix.shape, kernel.shape[-ndim:], stride, dilation,
                                       padding, output_padding)
    layer = kernel.ndim == ndim + 2
    layout = channel_layout(matrix.shape, kernel.shape, groups, transposed=True) if layer else None
    bias_array = as_bias(bias, layout and layout.out_channels)
    if ndim == 1:
        out = conv_transpose2d(matrix[..., np.newaxis, :], kernel[..., np.newaxis, :],
                               stride=(1,) + geometry.stride, dilation=(1,) + geometry.dilation,
                               padding=((0, 0),) + geometry.padding,
                               output_padding=(0,) + geometry.output_padding, bias=bias,
                               groups=groups, method=method)
        return out[..., 0, :]
    compute_dtype, result_dtype = _compute_dtype({"matrix": matrix, "kernel": kernel}, 0, bias)
    kernel = kernel.astype(compute_dtype, copy=False)
    if bias is not None:
        bias_array = bias_array.astype(compute_dtype)
    if method == "loops":
        cells = matrix.astype(compute_dtype, copy=False)
        if not layer:    # a filter is a layer of one channel, over a batch
            cells = cells.reshape((-1, 1) + matrix.shape[-3:])
        out = reference_nd.conv_transposend_loops(
            cells, kernel if layer else kernel[np.newaxis, np.newaxis], geometry.stride,
            geometry.dilation, geometry.padding, geometry.output_padding,
            bias_array if layer else None, groups)
        if not layer:
            out = out.reshape(matrix.shape[:-3] + geometry.output_shape)
    else:
        out = depth.depth_spread(matrix, kernel, geometry, layer, groups, compute_dtype)
    if bias is not None and not (method == "loops" and layer):
        out += bias_array.reshape((-1, 1, 1, 1)) if layer else bias_array
    return out.astype(result_dtype, copy=False)


def conv_transpose1d(matrix, kernel, stride=1, dilation=1, padding=0, output_padding=0, *,
                     bias=None, groups=1, method="auto"):
    """The transposed 1-D convolution, as ``torch.nn.functional.conv_transpose1d``.

    `conv_transpose2d` for signals: each input cell spreads a copy of the
    kernel onto the output, ``stride`` cells apart; the adjoint of `conv1d`
    and its gradient with respect to the input.

    Parameters
    ----------
    matrix : array_like, shape (..., L), or (N, C_in, L) or (C_in, L)
    kernel : array_like, shape (k,) or (C_in, C_out / groups, k)
    stride, dilation : int or (int,), default 1
    padding : int or (before, after), default 0
        The forward convolution's padding, cropped off here.
    output_padding : int, default 0
        Cells added at the end, smaller than the stride or the dilation.
    bias, groups, method
        As for `conv_transpose2d`.

    Returns
    -------
    ndarray, shape (..., L_out), or (N, C_out, L_out) or (C_out, L_out)
        ``L_out = (L - 1) * s - before - after + d * (k - 1) + output_padding + 1``.

    Examples
    --------
    >>> conv_transpose1d([1, 2, 3], [1, 10], stride=3)
    array([ 1, 10,  0,  2, 20,  0,  3, 30])
    """
    return _transpose(1, matrix, kernel, stride, dilation, padding, output_padding, bias, groups,
                      method)


def conv_transpose3d(matrix, kernel, stride=1, dilation=1, padding=0, output_padding=0, *,
                     bias=None, groups=1, method="auto"):
    """The transposed 3-D convolution, as ``torch.nn.functional.conv_transpose3d``.

    Parameters
    ----------
    matrix : array_like, shape (..., D, H, W), or (N, C_in, D, H, W) or (C_in, D, H, W)
    kernel : array_like, shape (kd, kh, kw) or (C_in, C_out / groups, kd, kh, kw)
    stride, dilation, padding, output_padding
        As for `conv_transpose2d`, one value (or pair) per axis.
    bias, groups, method
        As for `conv_transpose2d`.

    Returns
    -------
    ndarray, shape (..., D_out, H_out, W_out), or (N, C_out, D_out, H_out, W_out) or
    (C_out, D_out, H_out, W_out)

    Examples
    --------
    >>> conv_transpose3d(np.ones((2, 4, 3, 3, 3)), np.ones((4, 6, 4, 4, 4)), stride=2,
    ...                  padding=1).shape
    (2, 6, 6, 6, 6)
    """
    return _transpose(3, matrix, kernel, stride, dilation, padding, output_padding, bias, groups,
                      method)


# ---------------------------------------------------------------------------
# The gradients
# ---------------------------------------------------------------------------

def _backward(ndim, grad_output, matrix, kernel, stride, dilation, padding, padding_mode,
              fill_value, groups, method):
    check_choice("method", method, LAYER_METHODS)
    check_padding_mode(padding_mode, fill_value)
    matrix = _check_matrix(matrix, ndim)
    kernel = _check_kernel(kernel, ndim)
    _check_groups(groups, kernel, ndim)
    geometry = conv_geometry(matrix.shape, kernel.shape[-ndim:], stride, dilation, padding)
    layer = kernel.ndim == ndim + 2
    if layer:
        layout = channel_layout(matrix.shape, kernel.shape, groups)
        expected = matrix.shape[:-ndim - 1] + (layout.out_channels,) + geometry.output_shape
    else:
        expected = matrix.shape[:-ndim] + geometry.output_shape
    grad_output = as_array(grad_output, "grad_output")
    if grad_output.shape != expected:
        raise ValueError(f"grad_output must have the shape of conv{ndim}d's result, {expected} "
                         f"for matrix of shape {matrix.shape} and kernel of shape "
                         f"{kernel.shape}, got {grad_output.shape}")
    if ndim == 1:
        grad_matrix, grad_kernel, grad_bias = conv2d_backward(
            grad_output[..., np.newaxis, :], matrix[..., np.newaxis, :],
            kernel[..., np.newaxis, :], stride=(1,) + geometry.stride,
            dilation=(1,) + geometry.dilation, padding=((0, 0),) + geometry.padding,
            padding_mode=padding_mode, fill_value=fill_value, groups=groups, method=method)
        return grad_matrix[..., 0, :], grad_kernel[..., 0, :], grad_bias
    compute_dtype, result_dtype = _compute_dtype(
        {"grad_output": grad_output, "matrix": matrix, "kernel": kernel}, fill_value)
    kernel = kernel.astype(compute_dtype, copy=False)
    if layer and not layout.batched:
        grad_output, matrix = grad_output[np.newaxis], matrix[np.newaxis]
    grad_matrix, grad_kernel = depth.depth_backward(grad_output, matrix, kernel, geometry, layer,
                                                    groups, padding_mode, fill_value,
                                                    compute_dtype, method)
    if layer:
        grad_bias = grad_output.sum(axis=(0, 2, 3, 4))
        if not layout.batched:
            grad_matrix = grad_matrix[0]
    else:
        grad_bias = grad_output.sum()
    return (grad_matrix.astype(result_dtype, copy=False),
            grad_kernel.astype(result_dtype, copy=False),
            np.asarray(grad_bias).astype(result_dtype)[()])


def conv1d_backward(grad_output, matrix, kernel, stride=1, dilation=1, padding=0, *,
                    padding_mode="zeros", fill_value=0, groups=1, method="auto"):
    """The gradients of `conv1d` with respect to its input, its kernel and its bias.

    As `conv2d_backward`, for signals: what PyTorch's autograd computes for
    ``torch.nn.functional.conv1d``, in every border mode.

    Returns
    -------
    grad_matrix : ndarray, shaped like ``matrix``
    grad_kernel : ndarray, shaped like ``kernel``
    grad_bias : ndarray of shape (C_out,) with a 3-D kernel, a scalar with a 1-D one

    Examples
    --------
    >>> gx, gk, gb = conv1d_backward([1, 10], [5, 6, 7], [2, 3])
    >>> gx, gk, int(gb)
    (array([ 2, 23, 30]), array([65, 76]), 11)
    """
    return _backward(1, grad_output, matrix, kernel, stride, dilation, padding, padding_mode,
                     fill_value, groups, method)


def conv3d_backward(grad_output, matrix, kernel, stride=1, dilation=1, padding=0, *,
                    padding_mode="zeros", fill_value=0, groups=1, method="auto"):
    """The gradients of `conv3d` with respect to its input, its kernel and its bias.

    As `conv2d_backward`, for volumes: one `conv2d_backward` per depth tap
    on blocks of slices, the gradient of a border slice added to the slice
    it copies.

    Returns
    -------
    grad_matrix, grad_kernel, grad_bias
        As for `conv1d_backward`.

    Examples
    --------
    >>> x, k = np.ones((3, 4, 4), int), np.ones((2, 2, 2), int)
    >>> gx, gk, gb = conv3d_backward(np.ones((2, 3, 3), int), x, k)
    >>> gx[0], gk.shape, int(gb)
    (array([[1, 2, 2, 1],
           [2, 4, 4, 2],
           [2, 4, 4, 2],
           [1, 2, 2, 1]]), (2, 2, 2), 18)
    """
    return _backward(3, grad_output, matrix, kernel, stride, dilation, padding, padding_mode,
                     fill_value, groups, method)


# ---------------------------------------------------------------------------
# Dask
# ---------------------------------------------------------------------------

def _dask_convolve(ndim, matrix, kernel, *, stride, dilation, padding, padding_mode, fill_value,
                   flip, bias, groups, method):
    """conv1d and conv3d of a Dask array, lazily.

    1-D: `conv2d`'s Dask path (``chunked.py``) on the signal as one row.
    3-D: the sum over the depth taps of `conv2d`'s lazy 2-D convolutions of
    the slices each tap reads, gathered lazily through the source map (the
    fill's slices padded on lazily). Each chunk is then computed in memory,
    with the in-memory function's exactness.
    """
    params = dict(padding_mode=padding_mode, fill_value=fill_value, groups=groups, method=method)
    shape = matrix.shape
    if any(map(np.isnan, shape)):
        raise ValueError(f"matrix must have known chunk sizes, got a Dask array of shape "
                         f"{shape}; call its compute_chunk_sizes() first")
    # One output cell computed in memory checks every argument as in memory and tells the
    # result's dtype ('same' fits any kernel on a cell); if it fails, the same call on a
    # stand-in of the real shape, broadcast from one value, raises the in-memory error.
    public = conv1d if ndim == 1 else conv3d
    layer = kernel.ndim == ndim + 2
    keep = {shape.__len__() - ndim - 1} if layer else set()
    small = [n if axis in keep else 1 for axis, n in enumerate(shape)]
    try:
        sample = public(np.zeros(small, matrix.dtype), kernel, stride, dilation, "same",
                        flip=flip, bias=bias, **params)
        conv_geometry(shape, kernel.shape[-ndim:], stride, dilation, padding)
    except (TypeError, ValueError):
        public(np.broadcast_to(np.zeros((), matrix.dtype), shape), kernel, stride, dilation,
               padding, flip=flip, bias=bias, **params)
        raise
    if ndim == 1:
        geometry = conv_geometry(matrix.shape, kernel.shape[-1:], stride, dilation, padding)
        out = conv2d(matrix[..., np.newaxis, :], kernel[..., np.newaxis, :],
                     stride=(1,) + geometry.stride, dilation=(1,) + geometry.dilation,
                     padding=((0, 0),) + geometry.padding, flip=flip, bias=bias, **params)
        return out[..., 0, :]
    geometry = conv_geometry(matrix.shape, kernel.shape[-3:], stride, dilation, padding)
    compute_dtype, _ = _compute_dtype({"matrix": np.zeros((), matrix.dtype), "kernel": kernel},
                                      fill_value, bias)
    if flip:
        kernel = kernel[..., ::-1, ::-1, ::-1]
    kernel = kernel.astype(compute_dtype, copy=False)
    batched = layer and matrix.ndim == 5
    total = depth.dask_depth_sum(matrix if batched or not layer else matrix[np.newaxis], kernel,
                                 geometry, layer, padding_mode, fill_value, compute_dtype, params)
    if bias is not None:
        total = total + (np.asarray(bias, compute_dtype).reshape((-1, 1, 1, 1)) if layer
                         else np.asarray(bias, compute_dtype))
    if layer and not batched:
        total = total[0]
    return total.astype(sample.dtype)
