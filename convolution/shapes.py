"""Parameters and output-shape math: the one module every other path leans on.

Everything here works on shapes and integers, never on data. It turns the
user's ``stride``, ``dilation`` and ``padding`` into normalised tuples (pairs
for the 2-D functions, one entry per axis for any number of axes), checks
them, and owns the output-shape formula, written once for any number of axes.
The reference loops, the fast paths and the pictures all take their geometry
from here, so they cannot disagree about which input cells an output cell
reads.
"""
import functools
import itertools
import math
import operator
from typing import NamedTuple

from .checks import check_choice

__all__ = ["PADDING_STRINGS", "ConvGeometry", "TransposeGeometry", "Channels", "as_pair",
           "as_tuple", "check_axes", "resolve_padding",
           "conv_geometry", "conv_output_shape", "conv_transpose_geometry",
           "conv_transpose_output_shape", "channels", "window", "tap", "stride_phase",
           "tap_phases",
           "TransposePhase", "transpose_phases", "spread"]

PADDING_STRINGS = ("valid", "same", "full")


def _is_scalar(value):
    """True for a single value: an int, a NumPy scalar, a 0-d array, a string."""
    return (isinstance(value, str) or not hasattr(value, "__len__")
            or getattr(value, "ndim", None) == 0)


def _values(value, rule, shown=None):
    """The entries of a list, tuple or 1-D array; other containers are refused.

    Bytes, sets and dicts have a length too, but ``b"\x01\x02"`` or ``{1, 2}``
    given as a stride is a mistake, not a pair (a set has no order).
    """
    if isinstance(value, (list, tuple)) or getattr(value, "ndim", None) == 1:
        return list(value)
    raise TypeError(f"{rule}, got {value if shown is None else shown!r}")


def _as_int(value, rule, shown):
    """``value`` as a Python int; bools, floats, strings and float arrays are refused.

    ``operator.index`` accepts Python and NumPy integers (and 0-d integer
    arrays) and refuses the rest; bools are refused explicitly because
    ``True`` is an ``int`` to Python.
    """
    if isinstance(value, bool) or getattr(value, "dtype", None) == bool:
        raise TypeError(f"{rule}, got {shown!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{rule}, got {shown!r}") from None


def as_tuple(value, name, ndim, minimum=1):
    """An int or ``ndim`` ints as a tuple of ``ndim`` ints, one per axis.

    The one normalisation of per-axis parameters (stride, dilation,
    output_padding) for any number of axes; `as_pair` is its 2-D case.

    Examples
    --------
    >>> as_tuple(2, "stride", 3)
    (2, 2, 2)
    >>> as_tuple((1, 2, 3), "dilation", 3)
    (1, 2, 3)
    >>> as_tuple((1, 2), "stride", 3)
    Traceback (most recent call last):
        ...
    ValueError: stride must be an int >= 1 or 3 of them, got 2 values: (1, 2)
    """
    count = "a pair" if ndim == 2 else ndim
    rule = f"{name} must be an int >= {minimum} or {count} of them"
    if _is_scalar(value):
        values = (_as_int(value, rule, value),) * ndim
    elif len(entries := _values(value, rule)) == ndim:
        values = tuple(_as_int(v, rule, value) for v in entries)
    else:
        raise ValueError(f"{rule}, got {len(entries)} values: {value!r}")
    if min(values) < minimum:
        raise ValueError(f"{rule}, got {value!r}")
    return values


def check_axes(axes, ndim, count, name="axes"):
    """``axes`` of an array with ``ndim`` axes, as ``count`` distinct non-negative ints.

    SciPy's convention for the axes a filter runs along: None means the last
    ``count`` axes; negative entries count from the end.

    Examples
    --------
    >>> check_axes(None, 3, 2)
    (1, 2)
    >>> check_axes((0, -2), 3, 2)
    (0, 1)
    >>> check_axes((0, 0), 3, 2)
    Traceback (most recent call last):
        ...
    ValueError: axes must name 2 different axes of the input, got (0, 0) for an input with 3 axes
    """
    if axes is None:
        return tuple(range(ndim - count, ndim))
    rule = f"{name} must be an int or a tuple of ints"
    entries = [axes] if _is_scalar(axes) else _values(axes, rule)
    values = tuple(_as_int(v, rule, axes) for v in entries)
    if len(values) != count:
        raise ValueError(f"{name} must have {count} entries, one per axis of the kernel, "
                         f"got {axes!r}")
    if any(not -ndim <= v < ndim for v in values):
        raise ValueError(f"{name} must be axes of the input (from {-ndim} to {ndim - 1}), "
                         f"got {axes!r} for an input with {ndim} axes")
    values = tuple(v % ndim for v in values)
    if len(set(values)) != count:
        raise ValueError(f"{name} must name {count} different axes of the input, got {axes!r} "
                         f"for an input with {ndim} axes")
    return values


def as_pair(value, name, minimum=1):
    """An int or a pair of ints as a pair ``(for_height, for_width)``.

    Examples
    --------
    >>> as_pair(2, "stride")
    (2, 2)
    >>> as_pair((1, 3), "dilation")
    (1, 3)
    >>> as_pair(0, "stride")
    Traceback (most recent call last):
        ...
    ValueError: stride must be an int >= 1 or a pair of them, got 0
    """
    return as_tuple(value, name, 2, minimum)


def _shape(value, name, ndim):
    """A shape given by the user, as a tuple of positive ints."""
    rule = f"{name} must be a tuple of ints"
    if _is_scalar(value):
        raise TypeError(f"{rule}, got {value!r}")
    shape = tuple(_as_int(v, rule, value) for v in _values(value, rule))
    if not ndim[0] <= len(shape) <= ndim[1]:
        wanted = ndim[0] if ndim[0] == ndim[1] else f"at least {ndim[0]}"
        raise ValueError(f"{name} must have {wanted} entries, got {value!r}")
    if min(shape) < 1:
        raise ValueError(f"{name} must not have an empty axis, got {value!r}")
    return shape


def _padding_pairs(padding, ndim=2):
    """``padding`` that is not a string as ``((before, after), ...)``, one pair per axis.

    For 2 axes, ``((top, bottom), (left, right))``. With one axis, a plain
    pair ``(before, after)`` is also taken (it cannot be read as one value
    per axis), so that a causal padding is ``(k - 1, 0)``.
    """
    if ndim == 2:
        rule = ("padding must be an int, a pair (pad_h, pad_w), a pair of pairs "
                "((top, bottom), (left, right)) or one of 'valid', 'same', 'full'")
    else:
        rule = (f"padding must be an int, a tuple of {ndim} ints (one per axis), a tuple of "
                f"{ndim} pairs ((before, after), ...)"
                + (", a pair (before, after)" if ndim == 1 else "")
                + " or one of 'valid', 'same', 'full'")
    if (ndim == 1 and not _is_scalar(padding) and len(_values(padding, rule)) == 2
            and all(map(_is_scalar, padding))):
        padding = (tuple(padding),)
    if _is_scalar(padding):
        amount = _as_int(padding, rule, padding)
        pairs = ((amount, amount),) * ndim
    elif len(axes := _values(padding, rule)) != ndim:
        raise ValueError(f"{rule}, got {len(axes)} values: {padding!r}")
    else:
        pairs = []
        for axis in axes:
            if _is_scalar(axis):
                amount = _as_int(axis, rule, padding)
                pairs.append((amount, amount))
            elif len(sides := _values(axis, rule, padding)) == 2:
                pairs.append(tuple(_as_int(v, rule, padding) for v in sides))
            else:
                raise ValueError(f"{rule}, got {padding!r}")
        pairs = tuple(pairs)
    if min(itertools.chain(*pairs)) < 0:
        raise ValueError(f"padding must be non-negative, got {padding!r}")
    return pairs


def _same_padding(size, kernel_size, stride, dilation):
    """TensorFlow's 'same': ceil(size / stride) outputs, the odd cell at the end."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + _span(kernel_size, dilation) + 1 - size, 0)
    return (total // 2, total - total // 2)


def _span(kernel_size, dilation):
    """Cells between a dilated kernel's first and last tap, along one axis: ``d * (k - 1)``.

    The window then covers ``span + 1`` cells. The only place this is written.
    """
    return dilation * (kernel_size - 1)


def _output_size(size, kernel_size, stride, dilation, before, after):
    """The output-shape formula, for one axis. The only place it is written."""
    return (size + before + after - _span(kernel_size, dilation) - 1) // stride + 1


#: The most cells an array of any dtype the paths make can have: NumPy refuses
#: arrays of 2**63 bytes or more, and a value takes up to 16 bytes (complex128).
MAX_CELLS = 2 ** 59


def _too_large(shape):
    """Whether an array of ``shape`` has more cells than `MAX_CELLS` (then no machine holds it)."""
    return math.prod(shape) > MAX_CELLS


def resolve_padding(padding, input_shape, kernel_shape, stride=1, dilation=1):
    """The padding as ``(before, after)`` pairs, one for each axis of the kernel.

    What a convolution adds on each side of each axis, for every form of
    ``padding``: an int, one an axis, pairs, or 'valid', 'same', 'full'.

    Parameters
    ----------
    padding : int, tuple or {'valid', 'same', 'full'}
        As for `conv2d`.
    input_shape : tuple of int, (..., n_1, ..., n_k)
        The last ``k`` entries, one for each axis of the kernel, matter.
    kernel_shape : tuple of int, (k_1, ..., k_k)
    stride, dilation : int or tuple of k ints, default 1

    Returns
    -------
    tuple of k pairs of int
        ``((top, bottom), (left, right))`` for a 2-D kernel.

    Raises
    ------
    TypeError, ValueError
        As for `conv2d`: a parameter of the wrong type, or a value out of range.

    Notes
    -----
    'valid' adds nothing and 'full' adds the kernel's span ``d * (k - 1)`` on
    both sides, so that every window that overlaps the input by one cell is
    read. 'same' is TensorFlow's rule, at any stride: ``ceil(n / s)``
    outputs, and the padding that many windows need,
    ``total = max((ceil(n / s) - 1) * s + d * (k - 1) + 1 - n, 0)``, split
    ``total // 2`` before and the rest after (the odd cell at the end).

    Examples
    --------
    A 4-wide kernel at stride 2 on 5 cells: 'same' gives 3 outputs, whose
    windows reach from cell -1 to cell 6, so 1 cell before and 2 after:

    >>> resolve_padding("same", (5, 5), (4, 4), stride=2)
    ((1, 2), (1, 2))
    >>> resolve_padding("full", (5, 5), (4, 4))
    ((3, 3), (3, 3))
    >>> resolve_padding((1, (0, 2)), (5, 5), (3, 3))
    ((1, 1), (0, 2))
    >>> resolve_padding("same", (7,), (2,), dilation=3)    # one axis: a 1-D kernel
    ((1, 2),)
    """
    kernel = _shape(kernel_shape, "kernel_shape", (1, math.inf))
    axes = len(kernel)
    size = _shape(input_shape, "input_shape", (axes, math.inf))[-axes:]
    stride = as_tuple(stride, "stride", axes)
    dilation = as_tuple(dilation, "dilation", axes)
    if not isinstance(padding, str):
        return _padding_pairs(padding, axes)
    check_choice("padding", padding, PADDING_STRINGS)
    if padding == "valid":
        return ((0, 0),) * axes
    if padding == "full":
        return tuple((_span(k, d),) * 2 for k, d in zip(kernel, dilation))
    return tuple(_same_padding(n, k, s, d) for n, k, s, d in zip(size, kernel, stride, dilation))


class ConvGeometry(NamedTuple):
    """Normalised parameters of one convolution: pairs ``(height, width)``, one entry per axis."""
    input_shape: tuple
    kernel_shape: tuple
    stride: tuple
    dilation: tuple
    padding: tuple   # ((top, bottom), (left, right)): (before, after) per axis
    output_shape: tuple

    @property
    def span(self):
        """``(dh * (kh - 1), dw * (kw - 1))``: cells from the kernel's first tap to its last.

        The rows (columns) of the padded input one output cell reads reach
        this far beyond its first one: its window covers ``span + 1`` cells.

        Examples
        --------
        >>> conv_geometry((9, 14), (5, 5), stride=(2, 1), dilation=(1, 2)).span
        (4, 8)
        """
        return tuple(_span(k, d) for k, d in zip(self.kernel_shape, self.dilation))


def conv_geometry(input_shape, kernel_shape, stride=1, dilation=1, padding=0):
    """Check and normalise the parameters of a convolution.

    The single validation step shared by ``conv2d``, ``conv_output_shape`` and
    the pictures: every parameter error is raised here, with the same message
    wherever it is called from.

    Parameters
    ----------
    input_shape : tuple of int, (..., H, W)
        Only the last ``len(kernel_shape)`` entries matter.
    kernel_shape : tuple of int, (kh, kw), or one entry per axis: (k,), (kd, kh, kw), ...
        Its length is the number of axes convolved (2 for `conv2d`).
    stride, dilation, padding
        As for `conv2d`, with one entry (or pair) per axis.

    Returns
    -------
    ConvGeometry
        ``input_shape`` and ``kernel_shape`` as (H, W) and (kh, kw), ``stride``
        and ``dilation`` as pairs, ``padding`` as ((top, bottom), (left, right))
        and ``output_shape`` as (H_out, W_out); with another number of axes,
        one entry per axis.

    Raises
    ------
    TypeError
        A parameter of the wrong type (a float stride, a string inside a pair).
    ValueError
        A value out of range, a wrong number of values, an unknown padding
        string, or a dilated kernel larger than the padded input.
    """
    arguments = (input_shape, kernel_shape, stride, dilation, padding)
    if _plain(arguments):       # the same few shapes call after call: checked once
        return _cached_geometry(*arguments)
    return _conv_geometry(*arguments)


def _plain(value):
    """Whether ``value`` is a Python int or str, or a tuple of them (nested): a safe cache key.

    Not bools, NumPy integers or lists: they hash and compare like ints, so a
    cache would answer for them without the checks that refuse ``True`` or
    accept ``np.int64(2)``.
    """
    kind = type(value)
    return kind is int or kind is str or kind is tuple and all(map(_plain, value))


@functools.lru_cache(maxsize=1024)
def _cached_geometry(input_shape, kernel_shape, stride, dilation, padding):
    return _conv_geometry(input_shape, kernel_shape, stride, dilation, padding)


def _conv_geometry(input_shape, kernel_shape, stride, dilation, padding):
    kernel_hw = _shape(kernel_shape, "kernel_shape", (1, math.inf))
    ndim = len(kernel_hw)
    input_hw = _shape(input_shape, "input_shape", (ndim, math.inf))[-ndim:]
    stride = as_tuple(stride, "stride", ndim)
    dilation = as_tuple(dilation, "dilation", ndim)
    pads = resolve_padding(padding, input_hw, kernel_hw, stride, dilation)
    if _too_large(padded := tuple(n + sum(p) for n, p in zip(input_hw, pads))):
        dilated = isinstance(padding, str)      # 'full' and 'same' grow with the dilation
        raise ValueError(f"padding {padding!r}{f' with dilation {dilation}' * dilated} pads "
                         f"the input to shape {padded}, more than an array holds (2**59 "
                         f"cells); use less padding{' or dilation' * dilated}")
    output_hw = tuple(_output_size(n, k, s, d, *p) for n, k, s, d, p
                      in zip(input_hw, kernel_hw, stride, dilation, pads))
    if min(output_hw) < 1:
        padded = tuple(n + sum(p) for n, p in zip(input_hw, pads))
        span = tuple(_span(k, d) + 1 for k, d in zip(kernel_hw, dilation))
        raise ValueError(
            f"kernel of shape {kernel_hw} with dilation {dilation} spans {span} cells, "
            f"more than the padded input {padded} holds; the output shape would be "
            f"{output_hw}. Use a smaller kernel or dilation, or more padding")
    return ConvGeometry(input_hw, kernel_hw, stride, dilation, pads, output_hw)


def conv_output_shape(input_shape, kernel_shape, stride=1, dilation=1, padding=0):
    """The shape ``(H_out, W_out)`` of ``conv2d``'s result; conv1d's and conv3d's too.

    Parameters
    ----------
    input_shape : tuple of int, (..., H, W)
    kernel_shape : tuple of int, (kh, kw), or (k,), (kd, kh, kw), ...
        One entry per axis convolved: the input's last that many axes.
    stride, dilation, padding
        As for `conv2d`, one entry (or pair) per axis.

    Returns
    -------
    tuple of int
        ``(H_out, W_out)``, one entry per axis of the kernel; leading (batch)
        axes of the input are not included.

    Raises
    ------
    TypeError, ValueError
        As for `conv2d`, including when the dilated kernel does not fit.

    Notes
    -----
    With ``top`` and ``bottom`` the rows of padding added above and below,
    ``sh`` the stride and ``dh`` the dilation along the height::

        H_out = floor((H + top + bottom - dh * (kh - 1) - 1) / sh) + 1

    and likewise for the width. ``dh * (kh - 1)`` is the span of the dilated
    kernel (`ConvGeometry.span`): the rows from its first tap to its last,
    so that its window covers ``dh * (kh - 1) + 1`` rows. The string
    paddings resolve to: 'valid', no padding; 'full',
    ``dh * (kh - 1)`` on both sides; 'same', TensorFlow's rule,
    ``H_out = ceil(H / sh)`` with ``total = max((H_out - 1) * sh + dh * (kh - 1) + 1 - H, 0)``
    rows split as ``top = total // 2`` and ``bottom = total - top``.

    Examples
    --------
    >>> conv_output_shape((9, 14), (5, 5), stride=(2, 1), dilation=(1, 2))
    (3, 6)
    >>> conv_output_shape((7, 7), (4, 4), stride=2, padding="same")
    (4, 4)
    >>> conv_output_shape((32, 32), (3, 3), padding="full")
    (34, 34)
    >>> conv_output_shape((1000,), (7,), stride=2, padding="same")
    (500,)
    >>> conv_output_shape((16, 32, 32), (3, 3, 3), padding=((2, 0), 1, 1))
    (16, 32, 32)
    """
    return conv_geometry(input_shape, kernel_shape, stride, dilation, padding).output_shape


def _transpose_output_size(size, kernel_size, stride, dilation, before, after, extra):
    """The transposed convolution's output-shape formula, for one axis. Its only place.

    The input size of the `conv2d` whose adjoint this is: every position
    ``(size - 1) * stride`` the kernel's first tap reaches, plus its span,
    less the padding cropped off both ends, plus ``extra`` (output_padding)
    cells that no forward window would otherwise have reached.
    """
    return (size - 1) * stride - before - after + _span(kernel_size, dilation) + extra + 1


class TransposeGeometry(NamedTuple):
    """Normalised parameters of one transposed convolution: pairs ``(height, width)``, one per axis."""
    input_shape: tuple
    kernel_shape: tuple
    stride: tuple
    dilation: tuple
    padding: tuple          # ((top, bottom), (left, right)), cropped off the full result
    output_padding: tuple   # cells added at the bottom and right
    output_shape: tuple


def conv_transpose_geometry(input_shape, kernel_shape, stride=1, dilation=1, padding=0,
                            output_padding=0):
    """Check and normalise the parameters of a transposed convolution.

    The counterpart of `conv_geometry` for ``conv_transpose2d``: the same
    checks and messages for stride, dilation and padding (the int, pair and
    pair-of-pairs forms; the strings belong to the forward convolution only),
    plus ``output_padding``, which must be smaller than the stride or the
    dilation on its axis, as in PyTorch.

    Returns
    -------
    TransposeGeometry
        The output shape is, per axis::

            H_out = (H - 1) * sh - top - bottom + dh * (kh - 1) + output_padding + 1

    Examples
    --------
    >>> conv_transpose_geometry((3, 4), (3, 3), stride=2, padding=1, output_padding=1).output_shape
    (6, 8)
    >>> conv_transpose_geometry((3, 4), (3, 3), stride=2, output_padding=2)
    Traceback (most recent call last):
        ...
    ValueError: output_padding must be smaller than the stride or the dilation on its axis, got output_padding (2, 2) with stride (2, 2) and dilation (1, 1)
    """
    kernel_hw = _shape(kernel_shape, "kernel_shape", (1, math.inf))
    ndim = len(kernel_hw)
    input_hw = _shape(input_shape, "input_shape", (ndim, math.inf))[-ndim:]
    stride = as_tuple(stride, "stride", ndim)
    dilation = as_tuple(dilation, "dilation", ndim)
    if isinstance(padding, str):
        forms = ("a pair (pad_h, pad_w) or a pair of pairs ((top, bottom), (left, right))"
                 if ndim == 2 else f"a tuple of {ndim} ints or a tuple of {ndim} pairs")
        raise TypeError(f"padding of a transposed convolution must be an int, {forms}, "
                        f"got {padding!r}")
    pads = _padding_pairs(padding, ndim)
    extra = as_tuple(output_padding, "output_padding", ndim, minimum=0)
    if any(e >= max(s, d) for e, s, d in zip(extra, stride, dilation)):
        raise ValueError(f"output_padding must be smaller than the stride or the dilation on "
                         f"its axis, got output_padding {extra} with stride {stride} and "
                         f"dilation {dilation}")
    output_hw = tuple(_transpose_output_size(n, k, s, d, *p, e) for n, k, s, d, p, e
                      in zip(input_hw, kernel_hw, stride, dilation, pads, extra))
    if _too_large(output_hw):
        raise ValueError(f"stride {stride} and dilation {dilation} make an output of shape "
                         f"{output_hw}, more than an array holds (2**59 cells); use a smaller "
                         f"stride or dilation")
    if min(output_hw) < 1:
        raise ValueError(f"padding {pads} crops more than the transposed convolution "
                         f"produces; the output shape would be {output_hw}. Use less padding")
    return TransposeGeometry(input_hw, kernel_hw, stride, dilation, pads, extra, output_hw)


def conv_transpose_output_shape(input_shape, kernel_shape, stride=1, dilation=1, padding=0,
                                output_padding=0):
    """The shape ``(H_out, W_out)`` of ``conv_transpose2d``'s result; any number of axes.

    See `conv_transpose_geometry` for the formula and the checks; the kernel
    shape's length is the number of axes, as for `conv_output_shape`.

    Examples
    --------
    >>> conv_transpose_output_shape((4, 4), (4, 4), stride=2, padding=1)
    (8, 8)
    >>> conv_transpose_output_shape((5, 4, 4), (3, 3, 3), stride=2, padding=1,
    ...                             output_padding=(1, 0, 0))
    (10, 7, 7)
    """
    return conv_transpose_geometry(input_shape, kernel_shape, stride, dilation, padding,
                                   output_padding).output_shape


def window(i, j, kernel_shape, stride, dilation):
    """The cells of the padded input that output cell ``(i, j)`` reads.

    Returns a pair of slices: ``padded[..., rows, cols]`` has the kernel's
    shape, and its cell ``(a, b)`` is multiplied by ``kernel[a, b]``. In
    indices: row ``i * sh + a * dh``, column ``j * sw + b * dw``.

    Examples
    --------
    >>> window(1, 2, (3, 3), stride=(2, 2), dilation=(1, 2))
    (slice(2, 5, 1), slice(4, 9, 2))
    """
    (kh, kw), (sh, sw), (dh, dw) = kernel_shape, stride, dilation
    return (slice(i * sh, i * sh + _span(kh, dh) + 1, dh),
            slice(j * sw, j * sw + _span(kw, dw) + 1, dw))


def tap(a, b, output_shape, stride, dilation):
    """The cells of the padded input that kernel tap ``(a, b)`` meets.

    The same index ``i * sh + a * dh`` as `window`, seen from the kernel's
    side: ``padded[..., rows, cols]`` has the output's shape, and its cell
    ``(i, j)`` is the one output cell ``(i, j)`` multiplies by ``kernel[a, b]``.

    Examples
    --------
    >>> tap(1, 2, (3, 3), stride=(2, 2), dilation=(1, 2))
    (slice(1, 6, 2), slice(4, 9, 2))
    """
    (ho, wo), (sh, sw), (dh, dw) = output_shape, stride, dilation
    return (slice(a * dh, a * dh + (ho - 1) * sh + 1, sh),
            slice(b * dw, b * dw + (wo - 1) * sw + 1, sw))


def spread(i, j, kernel_shape, stride, dilation, padding):
    """The output cells that input cell ``(i, j)`` of a transposed convolution adds into.

    The transposed convolution runs `window` backwards: input cell ``(i, j)``
    times kernel tap ``(a, b)`` is added to output cell
    ``(i * sh + a * dh - top, j * sw + b * dw - left)``, the cell the forward
    window of output cell ``(i, j)`` reads, less the padding cropped off the
    top and the left. Returns a pair of ranges ``(rows, cols)``: tap
    ``(a, b)`` lands on ``(rows[a], cols[b])``. Entries below 0 or from the
    output's size on land in the cropped padding, and are dropped.

    Examples
    --------
    >>> spread(1, 2, (3, 3), stride=(2, 2), dilation=(1, 2), padding=((1, 1), (0, 0)))
    (range(1, 4), range(4, 9, 2))
    >>> spread(0, 0, (2, 2), stride=(1, 1), dilation=(1, 1), padding=((1, 0), (1, 0)))
    (range(-1, 1), range(-1, 1))
    """
    (kh, kw), (sh, sw), (dh, dw), ((top, _), (left, _)) = kernel_shape, stride, dilation, padding
    return (range(i * sh - top, i * sh - top + _span(kh, dh) + 1, dh),
            range(j * sw - left, j * sw - left + _span(kw, dw) + 1, dw))


def stride_phase(offset, stride):
    """The stride phase an index ``i * stride + offset`` lies in, and its place in that phase.

    ``i*s + offset = s * (i + offset // s) + offset % s``: always a cell of phase
    ``offset % s`` (the cells ``q, q + s, q + 2*s, ...``), at cell
    ``i + offset // s`` of it. Returns ``(offset % s, offset // s)``. For a tap
    ``a`` of dilation ``d``, ``offset = a * d``. The only place this is written.

    >>> stride_phase(5, 2)
    (1, 2)
    """
    return offset % stride, offset // stride


def tap_phases(kernel_shape, stride, dilation):
    """The kernel's taps grouped by the stride phase of the padded input they read.

    Tap ``(a, b)`` of output cell ``(i, j)`` reads padded row
    ``i*sh + a*dh = sh * (i + a*dh // sh) + a*dh % sh``: always a row of phase
    ``q = a*dh % sh`` (the rows ``q, q + sh, q + 2*sh, ...``), at row
    ``i + a*dh // sh`` of that phase. Likewise for the columns. So once the
    padded input is split into its ``sh * sw`` phases, every tap reads one
    phase at a fixed offset, with stride 1.

    Returns
    -------
    dict
        ``{(q, r): [((a, b), (a*dh // sh, b*dw // sw)), ...]}``, phases in the
        order their first tap comes in the kernel, taps in row-major order.

    Examples
    --------
    >>> for phase, taps in tap_phases((2, 3), stride=(2, 2), dilation=(1, 1)).items():
    ...     print(phase, taps)
    (0, 0) [((0, 0), (0, 0)), ((0, 2), (0, 1))]
    (0, 1) [((0, 1), (0, 0))]
    (1, 0) [((1, 0), (0, 0)), ((1, 2), (0, 1))]
    (1, 1) [((1, 1), (0, 0))]
    """
    phases = {}
    for taps in itertools.product(*map(range, kernel_shape)):   # any number of axes
        split = [stride_phase(a * d, s) for a, s, d in zip(taps, stride, dilation)]
        phases.setdefault(tuple(q for q, _ in split), []).append(
            (taps, tuple(place for _, place in split)))
    return phases


class TransposePhase(NamedTuple):
    """One phase of a transposed convolution along one axis, as a plain convolution.

    ``out[output] = conv(pad(x[input], padding), kernel[taps], dilation=dilation)``
    along this axis, with stride 1.
    """
    output: slice     # the output cells of the phase, every stride-th
    input: slice      # the input cells they read
    padding: tuple    # (before, after): zeros around them
    taps: list        # the kernel taps that reach the phase, as the sub-kernel orders them
    dilation: int     # the spacing of those taps in the sub-kernel


def transpose_phases(size, kernel_size, stride, dilation, crop, output_size):
    """A transposed convolution along one axis, as ``stride`` plain convolutions.

    Input cell ``i`` reaches output cell ``y`` through tap ``a`` where
    ``y + crop = i * stride + a * dilation`` (``crop``: the padding cropped
    off the start). Output cells with ``(y + crop) % stride == q`` are reached
    only by the taps with ``a * dilation % stride == q``; output cell
    ``y = m * stride + q - crop`` reads input cell ``m - a * dilation // stride``
    through each of them. Taken in decreasing ``a``, those input cells
    increase, ``dilation / gcd(dilation, stride)`` apart: a correlation with
    stride 1 of the input (cropped or padded with zeros to the cells read)
    with the phase's taps reversed.

    Returns
    -------
    list of TransposePhase
        The phases that receive anything; output cells of the others are 0.

    Examples
    --------
    Stride 2, a kernel of 4, one cell cropped: output cell 0 is cell 1 of the spread,
    which takes taps 3 and 1 (through input cells -1 and 0); cell 1 takes taps 2 and 0.

    >>> for phase in transpose_phases(3, 4, stride=2, dilation=1, crop=1, output_size=6):
    ...     print(phase.output, phase.input, phase.padding, phase.taps)
    slice(0, 6, 2) slice(0, 3, None) (1, 0) [3, 1]
    slice(1, 6, 2) slice(0, 3, None) (0, 1) [2, 0]
    """
    step = dilation // math.gcd(dilation, stride)
    phases = []
    for first in range(min(stride, output_size)):
        phase = (first + crop) % stride
        taps = [a for a in range(kernel_size - 1, -1, -1)
                if stride_phase(a * dilation, stride)[0] == phase]
        count = len(range(first, output_size, stride))
        if not taps:
            continue
        m = (first + crop - phase) // stride          # output cell `first` is m * stride + phase
        low = m - stride_phase(taps[0] * dilation, stride)[1]   # input cells of the first output
        high = low + (len(taps) - 1) * step + count - 1   # ... and by the last, through the last tap
        if high < 0 or low >= size:
            continue
        phases.append(TransposePhase(slice(first, output_size, stride),
                                     slice(max(low, 0), min(high + 1, size)),
                                     (max(-low, 0), max(high + 1 - size, 0)), taps, step))
    return phases


class Channels(NamedTuple):
    """The channel layout of one CNN layer: batch size, channels in and out, groups."""
    batch: int          # N; 1 when the matrix had no batch axis
    batched: bool       # whether the matrix had one (the result then has one too)
    in_channels: int    # C_in
    out_channels: int   # C_out
    groups: int


def channels(matrix_shape, kernel_shape, groups=1, transposed=False):
    """Check the channels of a layer with a 4-D kernel; return them as `Channels`.

    Any number of axes: a kernel of ``n + 2`` axes is a layer over ``n``
    spatial axes, on a matrix of ``n + 2`` axes (a batch) or ``n + 1``.

    Parameters
    ----------
    matrix_shape : tuple of int, (N, C_in, H, W) or (C_in, H, W)
    kernel_shape : tuple of int
        ``(C_out, C_in / groups, kh, kw)`` for `conv2d`;
        ``(C_in, C_out / groups, kh, kw)`` for ``conv_transpose2d``
        (``transposed=True``), as in PyTorch; (..., k) or (..., kd, kh, kw)
        for 1 or 3 spatial axes.
    groups : int
        Splits the input channels and the output channels into ``groups``
        groups; output channels of group ``g`` read only input channels of
        group ``g``. ``groups == C_in`` is depthwise convolution.

    Raises
    ------
    TypeError
        ``groups`` not an int.
    ValueError
        A matrix that is not 3-D or 4-D, ``groups`` below 1 or not dividing
        the channels, channels of matrix and kernel that do not match.

    Examples
    --------
    >>> channels((8, 6, 32, 32), (12, 3, 3, 3), groups=2)
    Channels(batch=8, batched=True, in_channels=6, out_channels=12, groups=2)
    >>> channels((6, 32, 32), (12, 3, 3, 3))   # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    ValueError: matrix has 6 channels (axis -3 of shape (6, 32, 32)), but kernel ... = 3
    """
    groups = _as_int(groups, "groups must be an int >= 1", groups)
    if groups < 1:
        raise ValueError(f"groups must be an int >= 1, got {groups!r}")
    spatial = len(kernel_shape) - 2
    names = {1: "L", 2: "H, W", 3: "D, H, W"}.get(spatial, "...")
    window = {1: "k", 2: "kh, kw", 3: "kd, kh, kw"}.get(spatial, "...")
    if len(matrix_shape) not in (spatial + 1, spatial + 2):
        raise ValueError(f"matrix must be {spatial + 2}-D (N, C_in, {names}) or "
                         f"{spatial + 1}-D (C_in, {names}) with a {spatial + 2}-D "
                         f"kernel, got shape {tuple(matrix_shape)}")
    channel_axis = -1 - spatial
    in_channels = matrix_shape[channel_axis]
    per_group = kernel_shape[1]
    if transposed:
        # (C_in, C_out / groups, kh, kw): the input channels lead.
        if kernel_shape[0] != in_channels:
            raise ValueError(f"matrix has {in_channels} channels (axis {channel_axis} of shape "
                             f"{tuple(matrix_shape)}), but kernel of shape {tuple(kernel_shape)} "
                             f"expects kernel.shape[0] = {kernel_shape[0]} (C_in, C_out / groups, "
                             f"{window})")
        if in_channels % groups:
            raise ValueError(f"groups={groups} must divide the input channels, "
                             f"C_in = kernel.shape[0] = {in_channels}")
        out_channels = groups * per_group
    else:
        out_channels = kernel_shape[0]
        if out_channels % groups:
            raise ValueError(f"groups={groups} must divide the output channels, "
                             f"C_out = kernel.shape[0] = {out_channels} (kernel of shape "
                             f"{tuple(kernel_shape)})")
        if in_channels != groups * per_group:
            raise ValueError(f"matrix has {in_channels} channels (axis {channel_axis} of shape "
                             f"{tuple(matrix_shape)}), but kernel of shape {tuple(kernel_shape)} "
                             f"with groups={groups} expects groups * kernel.shape[1] = "
                             f"{groups * per_group}")
    batched = len(matrix_shape) == spatial + 2
    return Channels(matrix_shape[0] if batched else 1, batched, in_channels, out_channels,
                    groups)
