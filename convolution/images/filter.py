"""Filtering pictures: `conv2d` applied to images as they come from files.

A picture is an (H, W) greyscale array or an (H, W, C) array of channels,
usually of unsigned 8- or 16-bit integers. Filtering one correctly takes a
few steps around the convolution itself, each of which a naive version gets
wrong:

1. every channel is filtered, not just three;
2. with an alpha channel, colour is weighted by alpha, so that what cannot
   be seen (transparent pixels, whatever colour they hold) does not bleed
   into what can;
3. the arithmetic is done in floating point, so weights like 1/9 or -1 work;
4. the result is rounded to the nearest integer and *clipped* to the dtype's
   range before it is cast back. Casting without clipping wraps round: a
   sharpened white pixel at 256 would become 0, black.

The borders are reflected by default (``padding_mode='reflect'``, OpenCV's
default border), so a blur does not darken the edges the way zero padding
does.
"""
import math
import numbers

import numpy as np

from .. import chunked
from ..checks import as_kernel, check_choice
from ..conv import METHODS, conv2d
from ..geometry import conv_geometry
from ..padding import PADDING_MODES, check_padding_mode, pad
from .kernels import get_kernel

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


def _as_kernel(kernel, params):
    """``kernel``, a library name made with ``params`` or a 2-D array of finite reals."""
    if isinstance(kernel, str):
        return get_kernel(kernel, **params)
    if params:
        given = ", ".join(f"{key}={value!r}" for key, value in params.items())
        raise TypeError(f"kernel parameters ({given}) apply to a kernel name, not to an "
                        f"array kernel")
    return as_kernel(kernel, kinds="biuf", finite=True)


def _check_fill_value(fill_value, dtype):
    """Refuse a border value that a picture of ``dtype`` cannot hold.

    The border is made of pixels of the picture, alpha included, so its value
    must be one the dtype holds: a whole number in range for integers (300
    in uint8 would have no meaning; NumPy would wrap it to 44), a number that
    does not overflow for floats (NaN and infinity are IEEE data and pass).
    conv2d cannot check this, since pictures reach it as floats.
    """
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        if isinstance(fill_value, numbers.Integral):
            held = info.min <= int(fill_value) <= info.max
        else:
            held = (isinstance(fill_value, numbers.Real) and math.isfinite(fill_value)
                    and float(fill_value).is_integer() and info.min <= fill_value <= info.max)
        if not held:
            raise ValueError(f"fill_value must be a whole number from {info.min} to {info.max} "
                             f"for an image of dtype {dtype}, got {fill_value!r}")
        return
    largest = float(np.finfo(dtype).max)
    if isinstance(fill_value, numbers.Integral):
        held = abs(int(fill_value)) <= largest
    else:
        held = isinstance(fill_value, numbers.Real) and not (
            math.isfinite(fill_value) and abs(fill_value) > largest)
    if not held:
        raise ValueError(f"fill_value must be a real number within the range of {dtype} "
                         f"(+-{largest:.5g}), NaN or infinity, got {fill_value!r}")


def _opaque(dtype):
    """The alpha of an opaque pixel: the largest value of an integer dtype, 1.0 for floats."""
    return float(np.iinfo(dtype).max) if dtype.kind in "iu" else 1.0


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


def _to_dtype(values, dtype, out=None):
    """Float ``values`` back in the image's ``dtype``: rounded and clipped if integer.

    ``values`` is overwritten (the caller's own result, not needed after).
    The result is a new C-contiguous array, or ``out`` when given.

    Rounding is to the nearest integer, halves to even (``np.rint``), as
    OpenCV's ``saturate_cast`` does. Clipping is what makes this safe: a
    value above the dtype's maximum becomes the maximum (white), below the
    minimum becomes the minimum, instead of wrapping round.
    """
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        low, high = float(info.min), float(info.max)
        # For 64-bit integers float(info.max) rounds up to 2**63 (or 2**64), which
        # the cast would overflow on; step down to the largest float below it.
        if int(high) > info.max:
            high = float(np.nextafter(high, 0))
        values = np.rint(values, out=values)    # in place: ``values`` is the caller's scratch
        np.clip(values, low, high, out=values)
    if out is None:
        return values.astype(dtype, order="C")
    np.copyto(out, values, casting="unsafe")
    return out


def _window_centres(planes, kernel_shape, stride, dilation, padding, padding_mode,
                    fill_value):
    """The input pixel at the centre of each output pixel's window, for (..., H, W) ``planes``.

    The window of output cell ``(i, j)`` covers padded rows ``i * sh`` to
    ``i * sh + dh * (kh - 1)``; its centre row (the upper one of two middle
    rows when there is no single one) is ``i * sh + (dh * (kh - 1)) // 2``,
    and likewise for the columns. At stride 1 with 'same' padding that is
    input cell ``(i, j)`` itself, so the planes come back unchanged; with a
    stride they are subsampled exactly where the colour is, and any border
    added by the padding is filled by the same ``padding_mode`` as the colour.
    """
    geometry = conv_geometry(planes.shape[-2:], kernel_shape, stride, dilation, padding)
    (kh, kw), (sh, sw), (dh, dw) = geometry.kernel_shape, geometry.stride, geometry.dilation
    (ho, wo) = geometry.output_shape
    padded = pad(planes, geometry.padding, padding_mode, fill_value)
    top, left = (dh * (kh - 1)) // 2, (dw * (kw - 1)) // 2
    return padded[..., top:top + (ho - 1) * sh + 1:sh, left:left + (wo - 1) * sw + 1:sw]


def _filter_with_alpha(image, kernel, filter_alpha, params):
    """Filter ``image`` (H, W, C), its last channel alpha: colour weighted by alpha.

    Returns the result in the image's dtype, alpha last: filtered with the
    kernel if ``filter_alpha``, else the input alpha at each window's centre
    (`_window_centres`).

    With ``a`` the alpha as a weight from 0 (transparent) to 1 (opaque), the
    kernel is split by sign, ``w = p - n`` (``p`` its positive weights, ``n``
    the negative ones, sums ``P`` and ``N``), and each part averages the
    colour under it, each pixel weighted by its alpha::

        colour = P * p(colour * a) / p(a)  -  N * n(colour * a) / n(a)

    where ``p(x)`` is ``x`` filtered with ``p``. Transparent pixels count
    for nothing; in an opaque window this is the plain ``w(colour)``; and a
    flat colour ``c`` gives ``(P - N) * c`` for any kernel, so no rim of the
    colour that transparent pixels hold appears, whether the kernel blurs,
    sharpens or takes differences. A blur (``N = 0``) is the familiar
    ``p(colour * a) / p(a)``: the premultiplied colour filtered, divided by
    the filtered alpha.

    Where one part sees no visible pixel (``p(a)`` or ``n(a)`` 0, up to
    rounding), it takes the other part's average; where neither does, a
    fully transparent window, the colour stays that of the window's centre,
    unchanged. No quotient has a divisor near 0 or below it.

    The border is made like the picture: with ``padding_mode='constant'``, a
    pixel whose every channel, alpha included, is ``fill_value``. A picture
    opaque everywhere, border included, is filtered as without alpha, which
    is what the formula gives too, at a fraction of the cost. So is a kernel
    of zeros, which has no part to average with: colour 0 everywhere, as
    without alpha.
    """
    dtype, work = image.dtype, kernel.dtype
    opaque = _opaque(dtype)
    channels = np.moveaxis(image, -1, 0)             # (C, H, W), a view
    colour_channels, alpha = channels[:-1], channels[-1]
    fill = params["fill_value"]
    centre_args = (kernel.shape, params["stride"], params["dilation"], params["padding"],
                   params["padding_mode"], fill)
    border_opaque = PADDING_MODES[params["padding_mode"]] != "constant" or fill >= opaque
    # A kernel of zeros weights no pixel, visible or not: the plain filter, colour 0.
    if border_opaque and alpha.min() >= opaque or not kernel.any():     # nothing to weight
        filtered = conv2d(channels if filter_alpha else colour_channels, kernel, **params)
        out = np.empty(filtered.shape[1:] + (channels.shape[0],), dtype)
        _to_dtype(np.moveaxis(filtered, 0, -1), dtype, out=out[..., :filtered.shape[0]])
        if not filter_alpha:
            out[..., -1] = _window_centres(alpha, *centre_args)
        return out

    weight = alpha.astype(work)                      # (H, W), from 0 to 1
    weight /= work.type(opaque)
    np.clip(weight, 0, 1, out=weight)
    # The border pixel of 'constant' padding: every channel fill_value.
    fill_weight = np.clip(np.float64(fill) / opaque, 0, 1)
    with np.errstate(invalid="ignore"):              # infinity * 0 is NaN, as IEEE says
        premultiplied = colour_channels * weight     # (C - 1, H, W)
        colour_fill = fill * fill_weight
    eps = float(np.finfo(work).eps)
    parts = []        # (sum of the part's weights, with its sign; average colour; seen)
    coverage = None   # the alpha filtered with the kernel, p(a) - n(a), if filter_alpha
    for part, sign in ((np.maximum(kernel, 0), 1), (np.maximum(-kernel, 0), -1)):
        if part.any():
            covered = conv2d(weight, part, **dict(params, fill_value=fill_weight))
            average = conv2d(premultiplied, part, **dict(params, fill_value=colour_fill))
            seen = covered > 64 * eps * float(part.sum())     # above the rounding of a 0
            np.divide(average, covered, out=average, where=seen)
            parts.append((sign * float(part.sum()), average, seen))
            if filter_alpha:
                covered *= work.type(sign * opaque)
                coverage = covered if coverage is None else coverage + covered
    del premultiplied, weight

    (total, colour, seen), *negative = parts
    if negative:          # a part that sees nothing visible takes the other's average
        [(total_n, colour_n, seen_n)] = negative
        np.copyto(colour, colour_n, where=~seen)
        np.copyto(colour_n, colour, where=~seen_n)
        colour *= work.type(total)
        colour_n *= work.type(total_n)
        colour += colour_n
        seen |= seen_n
        del colour_n
    elif total != 1:
        colour *= work.type(total)
    if not seen.all():    # fully transparent windows keep their centre's colour
        np.copyto(colour, _window_centres(colour_channels, *centre_args), where=~seen)

    out = np.empty(colour.shape[1:] + (channels.shape[0],), dtype)
    _to_dtype(np.moveaxis(colour, 0, -1), dtype, out=out[..., :-1])
    if filter_alpha:
        _to_dtype(coverage, dtype, out=out[..., -1])
    else:
        out[..., -1] = _window_centres(alpha, *centre_args)
    return out


def check_arguments(image, kernel, *, stride=1, dilation=1, padding="same",
                    padding_mode="reflect", fill_value=0, filter_alpha=False, method="auto",
                    **kernel_params):
    """Every check `apply_filter_to_image` makes, without filtering: the image and kernel as arrays.

    Raises what `apply_filter_to_image` raises for these arguments. The
    command line calls it once the image is read, so that an error in the
    options is reported before anything else is done.
    """
    image = _as_image(image)
    kernel = _as_kernel(kernel, kernel_params)
    if not isinstance(filter_alpha, (bool, np.bool_)):
        raise TypeError(f"filter_alpha must be True or False, got {filter_alpha!r}")
    check_padding_mode(padding_mode, fill_value)
    _check_fill_value(fill_value, image.dtype)
    check_choice("method", method, METHODS)
    conv_geometry(image.shape[:2], kernel.shape, stride, dilation, padding)
    return image, kernel


def apply_filter_to_image(image, kernel, *, stride=1, dilation=1, padding="same",
                          padding_mode="reflect", fill_value=0, filter_alpha=False,
                          method="auto", **kernel_params):
    """Filter a picture with a kernel, every channel alike, in the picture's own dtype.

    Parameters
    ----------
    image : array_like, shape (H, W) or (H, W, C)
        Greyscale, or any number of channels (RGB, RGBA, ...). Integer
        (uint8, uint16, int16, ...) or float; bool is refused (see Raises).
        Not modified. A Dask array gives a lazy Dask array, filtered chunk
        by chunk with the same result (``chunked.py``; docs/large-images.md).
        A channels-first array (C, H, W) is ``np.moveaxis(image, 0, -1)``
        here (and back with ``np.moveaxis(out, -1, 0)``); or, without the
        picture's rounding and alpha rules, ``conv2d(image, kernel)``, which
        filters the last two axes of anything.
    kernel : str or array_like, shape (kh, kw)
        A name from the kernel library, made by `get_kernel` with
        ``kernel_params`` ('gaussian' is 5 x 5 by default), or a 2-D array of
        real numbers.
    stride, dilation, padding, padding_mode, fill_value, method
        As for `conv2d`, with the same meaning and errors; only the defaults
        differ: ``padding='same'`` and ``padding_mode='reflect'`` (see Notes).
        ``fill_value`` is in the image's units (255 is white in uint8) and
        must be a value of the image's dtype (see Raises); with
        ``padding_mode='constant'`` every channel of the border, alpha
        included, holds it.
    filter_alpha : bool, default False
        With 2 channels (grey + alpha) or 4 (RGB + alpha), the last channel is
        alpha. By default it is kept, not filtered; True filters it with the
        kernel. Either way the colour is weighted by alpha (see Notes).
    **kernel_params
        The named kernel's own parameters, as for `get_kernel`: ``size`` for
        'identity', 'box', 'gaussian' and 'motion_blur', and ``sigma`` for
        'gaussian', e.g. ``apply_filter_to_image(photo, "gaussian", size=9)``.

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
        real array; ``filter_alpha`` not a bool; a parameter of the wrong type;
        a kernel parameter the named kernel does not take, or given with an
        array kernel.
    ValueError
        An image that is not (H, W) or (H, W, C), or has an empty axis; an
        unknown kernel name; a kernel that is not 2-D or holds NaN or
        infinity; a ``fill_value`` the image's dtype cannot hold (for integer
        images a whole number in range: not 300 or NaN in uint8; for floats
        no overflow, NaN and infinity allowed); any parameter error of `conv2d`.

    Notes
    -----
    The channels are moved to the front, ``(C, H, W)``, and filtered by one
    `conv2d` call, which treats the leading axis as a batch (pictures with
    transparency take a few, see Alpha below).

    Integer images are computed in floating point: float32 for 8-bit
    images, as OpenCV does (its 24-bit significand holds their sums far more
    finely than the rounding at the end needs), float64 for wider integers
    (which holds every 16- and 32-bit value exactly; 64-bit values above
    2**53 are rounded). The result is rounded to the nearest integer (halves
    to even) and clipped to the dtype's range, as OpenCV's saturation does:
    a sharpened white pixel stays white instead of wrapping round to black.
    On 8-bit images every value is within one grey level of
    ``cv2.filter2D`` with the same kernel and border (tested); values can
    differ by one where the exact result lies within rounding error of a
    half. Float images are computed in their own precision (float16 in
    float32) and not clipped: values outside ``[0, 1]`` are kept for the
    caller to decide about.

    The defaults keep the picture's size and its borders. 'same' padding
    gives an output the size of the input at stride 1, and centres odd
    kernels on each pixel (even kernels on the upper-left of their four
    middle cells). 'reflect' fills the border with a mirror image of the
    picture, so a blur near the edge averages real picture, not black: zero
    padding darkens the edges. It is OpenCV's default border
    (``BORDER_REFLECT_101``). Zero padding is one keyword away:
    ``padding_mode='zeros'``.

    **Alpha.** A transparent pixel's colour cannot be seen, but it is still
    stored (often black), and filtering colour as it is would mix it into
    the visible pixels nearby: a dark rim round a blurred logo. So colour is
    weighted by alpha (``a``, from 0 to 1 = the dtype's maximum, or 1.0 for
    floats). For a kernel of positive weights (a blur) the colour is the
    average of the visible colours in the window::

        colour_out = filter(colour * a) / filter(a)

    which is filtering premultiplied colour and dividing by the filtered
    alpha. A kernel with negative weights is split by sign, ``w = p - n``,
    each part averaging the visible colours under it: ``colour_out =
    sum(p) * p(colour * a) / p(a) - sum(n) * n(colour * a) / n(a)``. This
    is the plain filter in opaque windows, leaves a flat colour flat
    (times the weights' sum) however alpha varies, and never divides by a
    filtered alpha near 0 or below it, as a single quotient could for
    sharpening. A part that sees nothing visible takes the other's average;
    a fully transparent window keeps the colour of its centre pixel: what
    transparent pixels hold is neither blurred into nor made up. A kernel
    of zeros has no part to average with and gives colour 0, as it does
    without alpha.

    ``filter_alpha`` decides only the alpha channel; the colour is the same
    either way. False (the default) keeps alpha: at stride 1 with 'same'
    padding it comes back unchanged, and otherwise each output pixel takes
    the alpha of the input pixel at the centre of its window, the border
    made by the same ``padding_mode``. The picture keeps its shape, and its
    edges stay sharp while the colour inside them is blurred. True filters
    alpha with the kernel, rounded and clipped like the colour: a blur then
    softens the edges, and the colour of the new soft edge is that of the
    visible pixels it comes from. With zero padding the border is
    transparent: it fades the edges (with ``filter_alpha``) instead of
    darkening them.

    Cost: as `conv2d` on the (C, H, W) stack of channels, read straight from
    the image (no float copy of it is made): in float32 for 8-bit images, in
    float64 for wider integers. Memory beyond the image is the filtered
    result in that float dtype and `conv2d`'s strips: for a 1920 x 1080 RGB
    uint8 photo, 4.3 bytes a value beyond the output (``tracemalloc``).
    Pictures with transparency cost more: a float copy of the premultiplied
    colour, alpha filtered as well, and all of it twice for kernels with
    weights of both signs (once a sign). Measured on 6000 x 4000 RGBA
    (see ``docs/images.md``): for a blur about 2.3 times the memory and 2
    to 4 times the time of the same picture without alpha, for sharpen 3
    times the memory and 4 to 6 times the time. Pictures whose alpha is
    opaque everywhere cost what pictures without alpha do.

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

    An RGBA picture keeps its shape, dtype and alpha, and its red stays red
    next to the transparent black column, which counts for nothing:

    >>> rgba = np.zeros((4, 5, 4), np.uint8)
    >>> rgba[:, 1:, 0] = 200
    >>> rgba[..., 3] = [0, 50, 100, 150, 255]
    >>> out = apply_filter_to_image(rgba, "box")
    >>> out.shape, out.dtype, bool((out[..., 3] == rgba[..., 3]).all())
    ((4, 5, 4), dtype('uint8'), True)
    >>> out[0, :, 0]
    array([200, 200, 200, 200, 200], dtype=uint8)

    A stride of 2 halves the size, rounding up:

    >>> apply_filter_to_image(rgba, "box", stride=2).shape
    (2, 3, 4)

    A named kernel takes its parameters here as in `get_kernel`:

    >>> apply_filter_to_image(dot, "box", size=(1, 3))[1]
    array([170,  85, 170], dtype=uint8)
    """
    if chunked.is_dask_array(image):     # lazily, chunk by chunk: see chunked.py
        kernel = _as_kernel(kernel, kernel_params)
        return chunked.convolve(apply_filter_to_image, image, kernel, stride, dilation, padding,
                                padding_mode, fill_value, channels_last=True,
                                filter_alpha=filter_alpha, method=method)
    image, kernel = check_arguments(image, kernel, stride=stride, dilation=dilation,
                                    padding=padding, padding_mode=padding_mode,
                                    fill_value=fill_value, filter_alpha=filter_alpha,
                                    method=method, **kernel_params)
    # conv2d converts the image to the kernel's dtype strip by strip as it
    # reads it (uint8 and float32 give float32): no float copy of the image.
    kernel = kernel.astype(_work_dtype(image.dtype))
    params = dict(stride=stride, dilation=dilation, padding=padding,
                  padding_mode=padding_mode, fill_value=fill_value, method=method)

    if image.ndim == 2:
        return _to_dtype(conv2d(image, kernel, **params), image.dtype)
    if image.shape[-1] in ALPHA_CHANNELS:
        return _filter_with_alpha(image, kernel, filter_alpha, params)
    filtered = conv2d(np.moveaxis(image, -1, 0), kernel, **params)   # (C, H_out, W_out)
    return _to_dtype(np.moveaxis(filtered, 0, -1), image.dtype)
