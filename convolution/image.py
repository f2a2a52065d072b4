"""Filtering pictures: `conv2d` applied to images as they come from files.

A picture is an (H, W) greyscale array or an (H, W, C) array of channels,
usually of unsigned 8- or 16-bit integers. Filtering one correctly takes a
few steps around the convolution itself, each of which a naive version gets
wrong:

1. every channel is filtered, not just three, and alpha is left alone;
2. the arithmetic is done in floating point, so weights like 1/9 or -1 work;
3. the result is rounded to the nearest integer and *clipped* to the dtype's
   range before it is cast back. Casting without clipping wraps round: a
   sharpened white pixel at 256 would become 0, black.

The borders are reflected by default (``padding_mode='reflect'``, OpenCV's
default border), so a blur does not darken the edges the way zero padding
does.
"""
import numpy as np

from .conv import conv2d
from .kernels import get_kernel
from .padding import pad
from .shapes import conv_geometry

__all__ = ["apply_filter_to_image"]

#: Channel counts whose last channel is alpha: grey + alpha, and RGB + alpha.
ALPHA_CHANNELS = (2, 4)


def _as_image(image):
    """``image`` as an ndarray of real numbers, shape (H, W) or (H, W, C)."""
    image = np.asarray(image)
    if image.dtype.kind == "b":
        raise TypeError("image of dtype bool has no levels between black and white to "
                        "filter; convert it first, e.g. image.astype(np.uint8) * 255")
    if image.dtype.kind not in "iuf":
        raise TypeError(f"image must hold real numbers (integer or float), "
                        f"got dtype {image.dtype}")
    if image.ndim not in (2, 3) or 0 in image.shape:
        raise ValueError(f"image must have shape (H, W) or (H, W, C) with no empty axis, "
                         f"got shape {image.shape}")
    return image


def _as_kernel(kernel):
    """``kernel`` (a library name or a 2-D array) as a 2-D float64 array."""
    if isinstance(kernel, str):
        return get_kernel(kernel)
    kernel = np.asarray(kernel)
    if kernel.dtype.kind not in "biuf":
        raise TypeError(f"kernel must be a kernel name or an array of real numbers, "
                        f"got dtype {kernel.dtype}")
    if kernel.ndim != 2 or 0 in kernel.shape:
        raise ValueError(f"kernel must be 2-D (kh, kw) and not empty, got shape {kernel.shape}")
    kernel = kernel.astype(np.float64)
    if not np.isfinite(kernel).all():
        raise ValueError("kernel must hold finite numbers, got NaN or infinity")
    return kernel


def _work_dtype(dtype):
    """The dtype the convolution runs in for an image of ``dtype``.

    8-bit images go to float32, as in OpenCV: its 24-bit significand holds
    every sum of 8-bit values times a kernel's weights to far better than
    the half grey level that rounding at the end needs, and it is twice as
    fast as float64. Wider integers go to float64, which holds every uint16
    and int32 value exactly. Floats keep their own precision (float16 is
    accumulated in float32 by `conv2d`).
    """
    if dtype.kind in "iu":
        return np.dtype(np.float32 if dtype.itemsize == 1 else np.float64)
    return np.promote_types(dtype, np.float32)


def _to_dtype(values, dtype):
    """Float ``values`` back in the image's ``dtype``: rounded and clipped if integer.

    ``values`` is overwritten (the caller's own result, not needed after).

    Rounding is to the nearest integer, halves to even (``np.rint``), as
    OpenCV's ``saturate_cast`` does. Clipping is what makes this safe: a
    value above the dtype's maximum becomes the maximum (white), below the
    minimum becomes the minimum, instead of wrapping round.
    """
    if dtype.kind == "f":
        return values.astype(dtype, order="C")
    info = np.iinfo(dtype)
    low, high = float(info.min), float(info.max)
    # For 64-bit integers float(info.max) rounds up to 2**63 (or 2**64), which
    # the cast would overflow on; step down to the largest float below it.
    if int(high) > info.max:
        high = float(np.nextafter(high, 0))
    values = np.rint(values, out=values)    # in place: ``values`` is the caller's scratch
    np.clip(values, low, high, out=values)
    return values.astype(dtype, order="C")


def _resample_alpha(alpha, kernel_shape, stride, dilation, padding, padding_mode,
                    fill_value):
    """The alpha of each output pixel: the input alpha at its window's centre.

    The window of output cell ``(i, j)`` covers padded rows ``i * sh`` to
    ``i * sh + dh * (kh - 1)``; its centre row (the upper one of two middle
    rows when there is no single one) is ``i * sh + (dh * (kh - 1)) // 2``,
    and likewise for the columns. At stride 1 with 'same' padding that is
    input cell ``(i, j)`` itself, so alpha comes back unchanged; with a
    stride it is subsampled exactly where the colour is, and any border
    added by the padding is filled by the same ``padding_mode`` as the colour.
    """
    geometry = conv_geometry(alpha.shape, kernel_shape, stride, dilation, padding)
    (kh, kw), (sh, sw), (dh, dw) = geometry.kernel_shape, geometry.stride, geometry.dilation
    (ho, wo) = geometry.output_shape
    padded = pad(alpha, geometry.padding, padding_mode, fill_value)
    top, left = (dh * (kh - 1)) // 2, (dw * (kw - 1)) // 2
    return padded[top:top + (ho - 1) * sh + 1:sh, left:left + (wo - 1) * sw + 1:sw]


def apply_filter_to_image(image, kernel, *, stride=1, dilation=1, padding="same",
                          padding_mode="reflect", fill_value=0, filter_alpha=False,
                          method="auto"):
    """Filter a picture with a kernel, every channel alike, in the picture's own dtype.

    Parameters
    ----------
    image : array_like, shape (H, W) or (H, W, C)
        Greyscale, or any number of channels (RGB, RGBA, ...). Integer
        (uint8, uint16, int16, ...) or float; bool is refused (see Raises).
        Not modified.
    kernel : str or array_like, shape (kh, kw)
        A name from the kernel library (`get_kernel`, with its default
        parameters: 'gaussian' is 5 x 5) or a 2-D array of real numbers. Use
        ``get_kernel(name, size=..., ...)`` for other parameters.
    stride, dilation, padding, padding_mode, fill_value, method
        As for `conv2d`, with the same meaning and errors; only the defaults
        differ: ``padding='same'`` and ``padding_mode='reflect'`` (see Notes).
        ``fill_value`` is in the image's units (255 is white in uint8).
    filter_alpha : bool, default False
        With 2 channels (grey + alpha) or 4 (RGB + alpha), the last channel is
        alpha, and by default is not filtered (see Notes). True filters it
        like the others.

    Returns
    -------
    ndarray, shape (H_out, W_out) or (H_out, W_out, C)
        A new array in the image's dtype. ``(H_out, W_out)`` is ``(H, W)``
        with the defaults; see `conv_output_shape` otherwise.

    Raises
    ------
    TypeError
        An image of bool, complex or non-numeric dtype (a bool image has
        nothing between black and white to hold a blur: convert it, e.g.
        ``image.astype(np.uint8) * 255``); a kernel that is not a name or a
        real array; ``filter_alpha`` not a bool; a parameter of the wrong type.
    ValueError
        An image that is not (H, W) or (H, W, C), or has an empty axis; an
        unknown kernel name; a kernel that is not 2-D or holds NaN or
        infinity; any parameter error of `conv2d`.

    Notes
    -----
    The channels are moved to the front, ``(C, H, W)``, and filtered by one
    `conv2d` call, which treats the leading axis as a batch.

    Integer images are computed in float64, then rounded to the nearest
    integer (halves to even) and clipped to the dtype's range, as OpenCV's
    saturation does: a sharpened white pixel stays white instead of
    wrapping round to black. Float images are computed in their own
    precision (float16 in float32) and not clipped: values outside
    ``[0, 1]`` are kept for the caller to decide about.

    The defaults keep the picture's size and its borders. 'same' padding
    gives an output the size of the input at stride 1, and centres odd
    kernels on each pixel (even kernels on the upper-left of their four
    middle cells). 'reflect' fills the border with a mirror image of the
    picture, so a blur near the edge averages real picture, not black: zero
    padding darkens the edges. It is OpenCV's default border
    (``BORDER_REFLECT_101``). Zero padding is one keyword away:
    ``padding_mode='zeros'``.

    Alpha is passed through, not filtered, because blurring transparency
    makes haloes. When the output has another size than the input (a
    stride, other padding), alpha is resampled like the colour: each output
    pixel takes the alpha of the input pixel at the centre of its window,
    with the border filled by the same ``padding_mode``. At stride 1 with
    'same' padding that is the input's alpha, unchanged.

    Cost: as `conv2d` on the (C, H, W) stack of channels, read straight from
    the image (no float copy of it is made): in float32 for 8-bit images, in
    float64 for wider integers. Memory beyond the image is the filtered
    result in that float dtype and `conv2d`'s strips: for a 1920 x 1080 RGB
    uint8 photo, 4.3 bytes a value beyond the output (``tracemalloc``).

    Examples
    --------
    A white dot on black, sharpened: the centre saturates at 255 instead of
    wrapping to 5 * 255 - 1024 = 251, and the neighbours clip at 0.

    >>> dot = np.zeros((3, 3), np.uint8)
    >>> dot[1, 1] = 255
    >>> apply_filter_to_image(dot, "sharpen")
    array([[  0,   0,   0],
           [  0, 255,   0],
           [  0,   0,   0]], dtype=uint8)

    An RGBA picture keeps its shape, dtype and alpha:

    >>> rgba = np.zeros((4, 5, 4), np.uint8)
    >>> rgba[..., 0] = 200
    >>> rgba[..., 3] = [0, 50, 100, 150, 255]
    >>> out = apply_filter_to_image(rgba, "box")
    >>> out.shape, out.dtype, bool((out[..., 3] == rgba[..., 3]).all())
    ((4, 5, 4), dtype('uint8'), True)

    A stride of 2 halves the size, rounding up:

    >>> apply_filter_to_image(rgba, "box", stride=2).shape
    (2, 3, 4)
    """
    image = _as_image(image)
    kernel = _as_kernel(kernel)
    if not isinstance(filter_alpha, (bool, np.bool_)):
        raise TypeError(f"filter_alpha must be True or False, got {filter_alpha!r}")
    work = _work_dtype(image.dtype)
    params = dict(stride=stride, dilation=dilation, padding=padding,
                  padding_mode=padding_mode, fill_value=fill_value, method=method)

    # conv2d converts the image to the kernel's dtype strip by strip as it
    # reads it (uint8 and float32 give float32): no float copy of the image.
    if image.ndim == 2:
        filtered = conv2d(image, kernel.astype(work), **params)
        return _to_dtype(filtered, image.dtype)

    channels = np.moveaxis(image, -1, 0)   # (C, H, W), a view
    has_alpha = image.shape[-1] in ALPHA_CHANNELS and not filter_alpha
    colour = channels[:-1] if has_alpha else channels
    filtered = conv2d(colour, kernel.astype(work), **params)   # (C', H_out, W_out)
    if has_alpha:
        # conv2d has checked every parameter by now, so this cannot fail.
        alpha = _resample_alpha(channels[-1], kernel.shape, stride, dilation, padding,
                                padding_mode, fill_value)
        filtered = np.concatenate([filtered, alpha[np.newaxis]])
    return _to_dtype(np.moveaxis(filtered, 0, -1), image.dtype)
