"""The public functions: validate, then hand over to the reference loops or a fast path.

``conv2d`` (a 2-D kernel, or a CNN layer's 4-D one), ``conv_transpose2d`` and
``conv2d_backward``.
"""
import numpy as np

from . import chunked, fast, reference, reference_layers
from .checks import as_array, as_bias, as_kernel, as_matrix, check_choice, check_groups
from .dtypes import compute_dtype as _compute_dtype
from .fast import operations
from .geometry import adjoint_geometry, conv_geometry, conv_transpose_geometry
from .padding import check_padding_mode, fill_docstring, pad_adjoint
from .shapes import channels as channel_layout, check_axes

__all__ = ["conv2d", "conv_transpose2d", "conv2d_backward", "METHODS", "LAYER_METHODS"]

#: Every value ``conv2d``'s ``method`` accepts: 'auto', the reference loops,
#: the fast paths of ``fast/`` (``fast.METHODS``) and the layer's own
#: (``fast.CHANNEL_METHODS``: the stacked products, Winograd's).
METHODS = ("auto", "loops") + fast.METHODS + fast.CHANNEL_METHODS
#: What ``conv_transpose2d`` and ``conv2d_backward`` accept.
LAYER_METHODS = ("auto", "loops")


def _as_layer(matrix, kernel):
    """A 2-D kernel's arguments as a layer with one channel: (B, 1, H, W) and (1, 1, kh, kw)."""
    return matrix.reshape((-1, 1) + matrix.shape[-2:]), kernel[np.newaxis, np.newaxis]


def along_axes(func, ndim, matrix, kernel, axes, **params):
    """``func(matrix, kernel, **params)``, the kernel's axes running along ``axes`` of the input.

    SciPy's convention: kernel axis ``i`` runs along input axis ``axes[i]``.
    Those axes are moved last, ``func`` filters the last ``ndim`` axes, and
    the result's axes are moved back where they came from.
    """
    if not chunked.is_dask_array(matrix):
        matrix = as_array(matrix, "matrix")
    if np.ndim(kernel) != ndim:
        raise ValueError(f"axes is for a filter (a {ndim}-D kernel); a layer's axes are "
                         f"PyTorch's (N, C_in, ...), got kernel of shape {np.shape(kernel)}")
    axes = check_axes(axes, matrix.ndim, ndim)
    last = tuple(range(matrix.ndim - ndim, matrix.ndim))
    return np.moveaxis(func(np.moveaxis(matrix, axes, last), kernel, **params), last, axes)


@fill_docstring
def conv2d(matrix, kernel, stride=1, dilation=1, padding=0, *,
           padding_mode="zeros", fill_value=0, flip=False, bias=None, groups=1, method="auto",
           axes=None):
    """Generalized 2-D convolution (cross-correlation) with stride, dilation and padding.

    With a 2-D kernel, a filter: every (H, W) matrix of the input is
    convolved with it. With a 4-D kernel, a CNN layer, as
    ``torch.nn.functional.conv2d``: channels, a batch, groups and a bias.

    The filter runs along the last two axes, unless ``axes`` says otherwise:
    an (H, W, 3) photo is, to ``conv2d``, H matrices of W x 3, and
    ``conv2d(photo, k)`` mixes its colours. ``conv2d(photo, k, axes=(0, 1))``
    filters each colour channel (``apply_filter_to_image`` takes (H, W, C)
    pictures as they come).

    Parameters
    ----------
    matrix : array_like, shape (..., H, W), or (N, C_in, H, W) or (C_in, H, W)
        The input. With a 2-D kernel, leading axes are a batch: each (H, W)
        matrix in it is convolved with the same kernel. With a 4-D kernel, a
        batch of N images of C_in channels, or one image. Lists of lists work.
        A Dask array gives a lazy Dask array, computed chunk by chunk with
        the same result (``chunked.py``; docs/large-images.md).
    kernel : array_like, shape (kh, kw) or (C_out, C_in / groups, kh, kw)
        Any size from 1 x 1, odd or even, square or not. A 4-D kernel holds
        one (kh, kw) kernel per pair of output and input channel, in
        PyTorch's layout.
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
    {padding_mode}
    flip : bool, default False
        True computes true convolution: the kernel rotated by 180 degrees
        (each (kh, kw) kernel of a 4-D one).
    bias : number or array_like of shape (C_out,), optional
        Added to every output cell: a scalar with a 2-D kernel, one value per
        output channel with a 4-D kernel.
    groups : int, default 1
        With a 4-D kernel, splits the input and the output channels into
        ``groups`` groups; output channels of group g read only the input
        channels of group g. Must divide C_in and C_out; ``groups == C_in``
        is depthwise convolution. Must be 1 with a 2-D kernel.
    method : str, default 'auto'
        'auto' picks the fastest path for the arguments; 'loops' runs the
        tutorial's loops of ``reference.py`` (slow, for reading and testing).
        'matmul' (``fast/layer.py``) does the sums over channels as one matrix
        product per kernel tap, through BLAS: the path 'auto' takes for 4-D
        kernels; 'winograd' (``fast/winograd.py``), for 3 x 3 kernels at
        stride 1 and dilation 1 in float32 or float64, the same sums in 2.25
        or 4 times fewer multiply-adds (Winograd's F(2 x 2, 3 x 3) or
        F(4 x 4, 3 x 3), the one estimated faster), which 'auto' takes where
        it is estimated faster (many channels). The paths of ``fast/`` convolve one (H, W) matrix with
        one (kh, kw) kernel, and with a 4-D kernel run once per pair of
        channels: 'direct' and 'polyphase' loop over the kernel's taps,
        'banded' does the sums as matrix products, 'separable' applies a
        low-rank kernel as column and row filters, 'fft' multiplies spectra.
        'fft' refuses integer data and results (not exact); 'separable'
        refuses integer kernels that do not factor into integer vectors.
        'auto' takes 'fft' only for finite float data without a large
        dynamic range (its error is relative to the largest value in a
        tile); NaN and infinity reach exactly the outputs whose window holds
        them on every path but 'fft'.
    axes : (int, int), optional
        With a 2-D kernel, the input axes its rows and columns run along
        (SciPy's convention; negative axes count from the end). The last two
        by default; ``(0, 1)`` for an (H, W, C) image. Not with a 4-D kernel.

    Returns
    -------
    ndarray, shape (..., H_out, W_out), or (N, C_out, H_out, W_out) or (C_out, H_out, W_out)
        A new array, never a view of the inputs. Integer and bool inputs
        (with an integer or bool kernel, and bias) give int64, computed
        exactly as long as the sums fit in int64. Otherwise the dtype is
        NumPy's promotion of the two, and of the bias as adding it afterwards
        would promote it: float32 stays float32, float64 stays float64,
        complex works.

    Raises
    ------
    TypeError
        Non-numeric data; a parameter of the wrong type (a float stride, a
        bool, a string inside a pair, a float groups).
    ValueError
        ``matrix`` with fewer than 2 dimensions or an empty axis; ``kernel``
        neither 2-D nor 4-D, or empty; stride or dilation below 1; negative
        padding; a wrong number of values; an unknown padding string,
        padding_mode or method; a dilated kernel that does not fit in the
        padded input. With a 4-D kernel: a matrix that is not 3-D or 4-D,
        channels that do not match the kernel's, groups that do not divide
        them, a bias that is not one value per output channel.

    Notes
    -----
    This is cross-correlation, as in PyTorch, TensorFlow and every
    deep-learning library: with ``padded`` the input after padding,

    .. code-block:: text

        out[..., i, j] = sum over a < kh, b < kw of
                         kernel[a, b] * padded[..., i*sh + a*dh, j*sw + b*dw]

    and with a 4-D kernel, output channel o of group g = o // (C_out / groups),

    .. code-block:: text

        out[n, o, i, j] = bias[o] + sum over c < C_in / groups, a < kh, b < kw of
            kernel[o, c, a, b] * padded[n, g * C_in / groups + c, i*sh + a*dh, j*sw + b*dw]

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
    and the matrix products (times C_out * C_in / groups with a 4-D kernel,
    at close to the matrix product's speed), O(r * (kh + kw)) per output for
    a separable kernel of rank r, and O(log(tile)) per output for the FFT.
    Memory beyond input and output: the fast paths work in strips of a few
    MiB per thread, together at most the output's size (or 256 KiB a thread
    for small images), and never pad the whole input; no im2col copy is
    made. The FFT's tiles take a few tens of MiB. 'loops' pads the whole
    input.

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

    A layer: a batch of 8 RGB images, 16 output channels, in 4 groups.

    >>> images = np.ones((8, 3, 32, 32), np.float32)
    >>> conv2d(images, np.ones((16, 3, 5, 5), np.float32), padding=2, stride=2,
    ...        bias=np.zeros(16, np.float32)).shape
    (8, 16, 16, 16)
    >>> conv2d(np.ones((8, 32, 32)), np.ones((16, 2, 3, 3)), groups=4)[:, 0, 0]
    array([18., 18., 18., 18., 18., 18., 18., 18., 18., 18., 18., 18., 18.,
           18., 18., 18.])

    An (H, W, 3) photo, channel by channel:

    >>> conv2d(np.ones((6, 5, 3)), np.ones((3, 3)), axes=(0, 1)).shape
    (4, 3, 3)
    """
    if axes is not None:
        return along_axes(conv2d, 2, matrix, kernel, axes, stride=stride, dilation=dilation,
                          padding=padding, padding_mode=padding_mode, fill_value=fill_value,
                          flip=flip, bias=bias, groups=groups, method=method)
    if chunked.is_dask_array(matrix):    # lazily, chunk by chunk: see chunked.py
        return chunked.convolve(conv2d, matrix, as_array(kernel, "kernel"), stride, dilation,
                                padding, padding_mode, fill_value, flip=flip, bias=bias,
                                groups=groups, method=method)
    check_choice("method", method, METHODS)
    check_padding_mode(padding_mode, fill_value)
    if not isinstance(flip, (bool, np.bool_)):
        raise TypeError(f"flip must be True or False, got {flip!r}")
    matrix = as_matrix(matrix)
    kernel = as_kernel(kernel, ndims=(2, 4))
    check_groups(groups, kernel)
    geometry = conv_geometry(matrix.shape, kernel.shape[-2:], stride, dilation, padding)
    layout = channel_layout(matrix.shape, kernel.shape, groups) if kernel.ndim == 4 else None
    bias_array = as_bias(bias, layout and layout.out_channels)
    compute_dtype, result_dtype = _compute_dtype({"matrix": matrix, "kernel": kernel},
                                                 fill_value, bias)
    kernel = kernel.astype(compute_dtype, copy=False)
    if flip:
        kernel = kernel[..., ::-1, ::-1]
    if bias is not None:
        bias_array = bias_array.astype(compute_dtype)

    if kernel.ndim == 2 and method not in fast.CHANNEL_METHODS:
        if method == "loops":
            out = reference.conv2d_loops(matrix.astype(compute_dtype, copy=False), kernel,
                                         geometry.stride, geometry.dilation, geometry.padding,
                                         padding_mode, fill_value)
        elif bias is None:
            return fast.convolve(matrix, kernel, geometry, padding_mode, fill_value,
                                 compute_dtype, method, result_dtype)
        else:
            out = fast.convolve(matrix, kernel, geometry, padding_mode, fill_value,
                                compute_dtype, method)
        if bias is not None:
            out += bias_array
        return out.astype(result_dtype, copy=False)

    if kernel.ndim == 2:       # a layer's path with a 2-D kernel: a layer of one channel
        out_shape = matrix.shape[:-2] + geometry.output_shape
        images, kernel = _as_layer(matrix, kernel)
        bias_array = None if bias is None else bias_array.reshape(1)
    else:
        out_shape = matrix.shape[:-3] + (layout.out_channels,) + geometry.output_shape
        images = matrix.reshape((-1,) + matrix.shape[-3:])
    if method == "loops":
        out = reference_layers.conv2d_layer_loops(
            images.astype(compute_dtype, copy=False), kernel, geometry.stride, geometry.dilation,
            geometry.padding, padding_mode, fill_value, bias_array, groups)
    else:
        out = operations.conv2d(images, kernel, geometry, groups, padding_mode, fill_value,
                                compute_dtype, bias_array, method=method)
    return out.reshape(out_shape).astype(result_dtype, copy=False)


def _adjoint(images, kernel, geometry, groups, padding_mode, dtype, bias=None, loops=False):
    """The adjoint of conv2d with border ``padding_mode``: conv_transpose2d of (N, C_in, H, W).

    ``geometry`` (a TransposeGeometry) crops ``padding`` off the spread
    result. With 'zeros' and 'constant', the border held the fill value,
    which no input cell feeds: cropped. With the other modes each border
    cell was a copy of an input cell: the spread result is computed whole,
    the padded size, and each border cell's sum folded back onto the cell it
    copies (``padding.pad_adjoint``). The bias comes last.
    """
    copies = padding_mode not in ("zeros", "constant")
    padding = geometry.padding
    if copies:      # nothing cropped: the padded size
        geometry = geometry._replace(padding=((0, 0), (0, 0)), output_shape=tuple(
            n + sum(p) for n, p in zip(geometry.output_shape, padding)))
    if loops:
        out = reference_layers.conv_transpose2d_loops(
            images, kernel, geometry.stride, geometry.dilation, geometry.padding,
            geometry.output_padding, None if copies else bias, groups)
    else:
        out = operations.conv_transpose2d(images, kernel, geometry, groups, dtype,
                                          None if copies else bias)
    if copies:
        out = pad_adjoint(out, padding, padding_mode, overwrite=True)
        if bias is not None:
            out += bias[:, np.newaxis, np.newaxis]
    return out


@fill_docstring
def conv_transpose2d(matrix, kernel, stride=1, dilation=1, padding=0, output_padding=0, *,
                     padding_mode="zeros", bias=None, groups=1, method="auto"):
    """The transposed convolution, as ``torch.nn.functional.conv_transpose2d``.

    Each input cell spreads a copy of the kernel, weighted by its value, onto
    the output: cell ``(i, j)`` adds ``matrix[i, j] * kernel[a, b]`` to output
    cell ``(i * sh + a * dh, j * sw + b * dw)``, the index `conv2d` reads,
    taken the other way. With stride s the copies land s cells apart: the
    output is about s times larger, the upsampling layer of decoders and
    GANs. It is one operation with three faces (see Examples):

    1. the adjoint of `conv2d`: ``sum(conv2d(x, k) * y) == sum(x * conv_transpose2d(y, k))``;
    2. the gradient of `conv2d` with respect to its input
       (``conv2d_backward(y, x, k)[0]``);
    3. a plain convolution (``flip=True``) of the input spread out with
       ``stride - 1`` zeros between its cells, padded with
       ``dilation * (kernel_size - 1)`` cells less ``padding`` on each side.

    Parameters
    ----------
    matrix : array_like, shape (..., H, W), or (N, C_in, H, W) or (C_in, H, W)
        With a 2-D kernel, leading axes are a batch; with a 4-D kernel, a
        batch of N images of C_in channels, or one image.
    kernel : array_like, shape (kh, kw) or (C_in, C_out / groups, kh, kw)
        PyTorch's layout for the transposed convolution: the input channels
        lead. It is the layout of the `conv2d` kernel this is the transpose
        of, (C_out, C_in / groups, kh, kw) seen from the other side.
    stride, dilation : int or (int, int), default 1
        As for `conv2d`: the stride and dilation of the forward convolution.
    padding : int, pair or pair of pairs, default 0
        The forward convolution's padding, cropped off here:
        ``((top, bottom), (left, right))`` cells off the spread result.
        The strings are for `conv2d` only.
    output_padding : int or (int, int), default 0
        Cells added at the bottom and the right, smaller than the stride or
        the dilation on its axis. A convolution with stride s maps s input
        sizes onto one output size; this picks which of them to return.
    padding_mode : str, default 'zeros'
        The border of the forward convolution this is the adjoint of:
        ``sum(conv2d(x, k, padding=p, padding_mode=m) * y) ==
        sum(x * conv_transpose2d(y, k, padding=p, padding_mode=m))``. With
        'zeros' (and 'constant', whose fill value is a constant term with no
        adjoint) the padding is cropped off the spread result, as in
        PyTorch. With the other modes each border cell of the forward pass
        was a copy of an input cell, so what the spread result holds there
        is added onto that cell (``padding.pad_adjoint``): the gradient of a
        conv2d with that border, as ``conv2d_backward`` computes it. PyTorch
        accepts only 'zeros' here. The modes:

        {padding_mode_names}
    bias : number or array_like of shape (C_out,), optional
        A scalar with a 2-D kernel, one value per output channel with a 4-D one.
    groups : int, default 1
        As for `conv2d`; must divide C_in and C_out.
    method : {'auto', 'loops'}, default 'auto'
        'loops' runs the tutorial's loops (``reference_layers.conv_transpose2d_loops``).

    Returns
    -------
    ndarray, shape (..., H_out, W_out), or (N, C_out, H_out, W_out) or (C_out, H_out, W_out)
        With a 4-D kernel, the batch axis if ``matrix`` had one. Dtypes as
        for `conv2d`: exact int64 for integers.

    Raises
    ------
    TypeError, ValueError
        As for `conv2d`; also an ``output_padding`` not smaller than the
        stride or the dilation, a padding string, and padding that crops
        away the whole result.

    Notes
    -----
    The output shape (see ``geometry.conv_transpose_output_shape``)::

        H_out = (H - 1) * sh - top - bottom + dh * (kh - 1) + output_padding + 1

    which inverts `conv2d`'s: conv2d of an (H_out, W_out) input with the same
    parameters has (H, W) outputs. Time: one multiply-add per input cell,
    kernel tap and pair of channels, as for `conv2d`; the fast path does the
    sums over channels as matrix products, in strips of output rows.

    Examples
    --------
    Each cell spreads a copy of the kernel, 2 cells apart:

    >>> conv_transpose2d([[1, 2], [3, 4]], [[1, 1, 1], [1, 1, 1]], stride=2)
    array([[1, 1, 3, 2, 2],
           [1, 1, 3, 2, 2],
           [3, 3, 7, 4, 4],
           [3, 3, 7, 4, 4]])

    The three faces, on a 5 x 6 input, a 3 x 3 kernel, stride 2 and
    padding 1 (conv2d gives 3 x 3; ``output_padding=(0, 1)`` picks width 6,
    not 5, on the way back):

    >>> rng = np.random.default_rng(0)
    >>> x, k, y = (rng.integers(-9, 10, size=shape) for shape in [(5, 6), (3, 3), (3, 3)])
    >>> back = conv_transpose2d(y, k, stride=2, padding=1, output_padding=(0, 1))
    >>> back.shape
    (5, 6)

    1. The adjoint of conv2d:

    >>> int(np.sum(conv2d(x, k, stride=2, padding=1) * y)) == int(np.sum(x * back))
    True

    2. The gradient of ``sum(conv2d(x, k) * y)`` with respect to x:

    >>> np.array_equal(conv2d_backward(y, x, k, stride=2, padding=1)[0], back)
    True

    3. The input spread out with one zero between cells, convolved with the
    flipped kernel, padded with 2 - 1 = 1 cell on each side (and the output
    padding's cell on the right):

    >>> spread = np.zeros((5, 5), int)
    >>> spread[::2, ::2] = y
    >>> np.array_equal(conv2d(spread, k, padding=((1, 1), (1, 2)), flip=True), back)
    True

    With a border of copies, the adjoint of conv2d with that border:

    >>> y2 = rng.integers(-9, 10, size=(5, 6))
    >>> back = conv_transpose2d(y2, k, padding=1, padding_mode="reflect")
    >>> int(np.sum(conv2d(x, k, padding=1, padding_mode="reflect") * y2)) == int(np.sum(x * back))
    True

    A layer: 16 channels upsampled to 8, twice the size.

    >>> conv_transpose2d(np.ones((4, 16, 7, 7)), np.ones((16, 8, 4, 4)), stride=2,
    ...                  padding=1).shape
    (4, 8, 14, 14)
    """
    check_choice("method", method, LAYER_METHODS)
    check_padding_mode(padding_mode)
    matrix = as_matrix(matrix)
    kernel = as_kernel(kernel, ndims=(2, 4), transposed=True)
    check_groups(groups, kernel)
    geometry = conv_transpose_geometry(matrix.shape, kernel.shape[-2:], stride, dilation, padding,
                                       output_padding)
    layout = (channel_layout(matrix.shape, kernel.shape, groups, transposed=True)
              if kernel.ndim == 4 else None)
    bias_array = as_bias(bias, layout and layout.out_channels)
    compute_dtype, result_dtype = _compute_dtype({"matrix": matrix, "kernel": kernel}, 0, bias)
    kernel = kernel.astype(compute_dtype, copy=False)
    if bias is not None:
        bias_array = bias_array.astype(compute_dtype).reshape(-1)
    if kernel.ndim == 2:
        out_shape = matrix.shape[:-2] + geometry.output_shape
        images, kernel = _as_layer(matrix, kernel)
    else:
        out_shape = matrix.shape[:-3] + (layout.out_channels,) + geometry.output_shape
        images = matrix.reshape((-1,) + matrix.shape[-3:])
    if method == "loops":
        images = images.astype(compute_dtype, copy=False)
    out = _adjoint(images, kernel, geometry, groups, padding_mode, compute_dtype, bias_array,
                   loops=method == "loops")
    return out.reshape(out_shape).astype(result_dtype, copy=False)


def conv2d_backward(grad_output, matrix, kernel, stride=1, dilation=1, padding=0, *,
                    padding_mode="zeros", fill_value=0, groups=1, method="auto"):
    """The gradients of `conv2d` with respect to its input, its kernel and its bias.

    For a loss whose gradient with respect to ``out = conv2d(matrix, kernel,
    ...)`` is ``grad_output``, by the chain rule; equivalently, the gradients
    of ``sum(grad_output * conv2d(matrix, kernel, ...))``. What PyTorch's
    autograd computes for ``torch.nn.functional.conv2d``.

    Parameters
    ----------
    grad_output : array_like, shaped like ``conv2d(matrix, kernel, ...)``
    matrix, kernel, stride, dilation, padding, padding_mode, fill_value, groups
        As for `conv2d`.
    method : {'auto', 'loops'}, default 'auto'
        'loops' runs the tutorial's loops (``reference_layers.conv2d_backward_loops``).

    Returns
    -------
    grad_matrix : ndarray, shaped like ``matrix``
    grad_kernel : ndarray, shaped like ``kernel``
    grad_bias : ndarray of shape (C_out,) with a 4-D kernel, a scalar with a 2-D one
        The sum of ``grad_output`` over every axis but the channels.

    Raises
    ------
    TypeError, ValueError
        As for `conv2d`, and a ``grad_output`` not shaped like its result.

    Notes
    -----
    Each output is a sum of products
    ``kernel[o, c, a, b] * padded[n, c', i*sh + a*dh, j*sw + b*dw]``, so

    .. code-block:: text

        grad_kernel[o, c, a, b] = sum over n, i, j of
                                  grad_output[n, o, i, j] * padded[n, c', i*sh + a*dh, j*sw + b*dw]

    and the gradient with respect to the padded input is the transposed
    convolution of ``grad_output`` (`conv_transpose2d`, no padding, with the
    ``output_padding`` that gives the padded size). Its border folds back
    onto the input: with 'zeros' and 'constant' the border is the fill value
    and its gradient is dropped; with the other modes each border cell is a
    copy of an input cell and its gradient is added to that cell's
    (``padding.pad_adjoint``): ``conv_transpose2d(grad_output, kernel, ...,
    padding_mode=padding_mode)``, a few slice additions. The input's gradient
    goes through the planner that ``conv2d`` uses (``fast/operations.py``):
    at stride 1 one correlation with the kernel reversed, above one stride
    phase at a time or all of them in one band product, with the kernel's
    structure (a separable kernel's transposed convolution is separable
    too). The kernel's is the correlation of the input with ``grad_output``, by the
    path estimated fastest (``fast/gradients.py``): small matrix products of
    the input read in place and a few shifted copies of ``grad_output``, one
    FFT of the whole padded image for large kernels, or per tap one product
    over the channels for layers. On two threads or more the two gradients
    of a large kernel run side by side (the kernel's keeps to one thread;
    ``operations.gradients_side_by_side``). Time: about two to two and a
    half times `conv2d`'s; more for kernels that 'separable' takes forward
    (2 k multiply-adds an output forward for a k x k kernel, where the
    kernel's gradient needs k * k).

    Complex data: these are the derivatives of the sum as a holomorphic
    function, with nothing conjugated. PyTorch's autograd follows the
    conjugate (Wirtinger) convention, which is
    ``conv2d_backward(grad_output, matrix.conj(), kernel.conj(), ...)``.

    Examples
    --------
    conv2d is linear in the kernel, so a change of one tap changes
    ``sum(y * conv2d(x, k))`` by exactly the gradient times the change:

    >>> rng = np.random.default_rng(1)
    >>> x, k = rng.integers(-9, 10, size=(2, 3, 6, 6)), rng.integers(-9, 10, size=(4, 3, 3, 3))
    >>> y = rng.integers(-9, 10, size=(2, 4, 3, 3))
    >>> grad_x, grad_k, grad_b = conv2d_backward(y, x, k, stride=2, padding=1,
    ...                                          padding_mode="reflect")
    >>> grad_x.shape, grad_k.shape, grad_b.shape
    ((2, 3, 6, 6), (4, 3, 3, 3), (4,))
    >>> loss = lambda k: int(np.sum(y * conv2d(x, k, stride=2, padding=1, padding_mode="reflect")))
    >>> k2 = k.copy()
    >>> k2[1, 2, 0, 1] += 1
    >>> loss(k2) - loss(k) == int(grad_k[1, 2, 0, 1])
    True
    """
    check_choice("method", method, LAYER_METHODS)
    check_padding_mode(padding_mode, fill_value)
    matrix = as_matrix(matrix)
    kernel = as_kernel(kernel, ndims=(2, 4))
    check_groups(groups, kernel)
    geometry = conv_geometry(matrix.shape, kernel.shape[-2:], stride, dilation, padding)
    if kernel.ndim == 4:
        layout = channel_layout(matrix.shape, kernel.shape, groups)
        expected = matrix.shape[:-3] + (layout.out_channels,) + geometry.output_shape
    else:
        expected = matrix.shape[:-2] + geometry.output_shape
    grad_output = as_array(grad_output, "grad_output")
    if grad_output.shape != expected:
        raise ValueError(f"grad_output must have the shape of conv2d's result, {expected} for "
                         f"matrix of shape {matrix.shape} and kernel of shape {kernel.shape}, "
                         f"got {grad_output.shape}")
    compute_dtype, result_dtype = _compute_dtype(
        {"grad_output": grad_output, "matrix": matrix, "kernel": kernel}, fill_value)
    layer_kernel = kernel.astype(compute_dtype, copy=False)
    if kernel.ndim == 2:
        images, layer_kernel = _as_layer(matrix, layer_kernel)
    else:
        images = matrix.reshape((-1,) + matrix.shape[-3:])
    grads = grad_output.reshape((images.shape[0], -1) + geometry.output_shape)
    if method == "loops":
        grad_matrix, grad_kernel, grad_bias = reference_layers.conv2d_backward_loops(
            grads.astype(compute_dtype, copy=False), images.astype(compute_dtype, copy=False),
            layer_kernel, geometry.stride, geometry.dilation, geometry.padding, padding_mode,
            fill_value, groups)
    else:
        spread = adjoint_geometry(geometry)
        grad_matrix, grad_kernel, grad_bias = operations.backward(
            grads, images, layer_kernel, geometry, groups, padding_mode, fill_value,
            compute_dtype, lambda: _adjoint(grads, layer_kernel, spread, groups, padding_mode,
                                            compute_dtype))
    if kernel.ndim == 2:
        grad_kernel, grad_bias = grad_kernel[0, 0], grad_bias.sum()
    return (grad_matrix.reshape(matrix.shape).astype(result_dtype, copy=False),
            grad_kernel.astype(result_dtype, copy=False),
            np.asarray(grad_bias).astype(result_dtype)[()])
