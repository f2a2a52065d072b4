"""Parameters, normalised and checked: the user's arguments as tuples of ints.

Everything here works on the arguments, never on data. It turns the user's
``stride``, ``dilation``, ``padding`` and ``axes`` into normalised tuples
(pairs for the 2-D functions, one entry per axis for any number of axes),
checks them, and checks the channels and groups of a layer. The output-shape
formulas and the index arithmetic built on these tuples are in
``geometry.py``.
"""
import itertools
import math
import operator
from typing import NamedTuple

__all__ = ["PADDING_STRINGS", "MAX_CELLS", "Channels", "as_pair", "as_tuple", "as_shape",
           "check_axes", "padding_pairs", "too_large", "channels"]

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


def as_shape(value, name, ndim):
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


def padding_pairs(padding, ndim=2):
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


#: The most cells an array of any dtype the paths make can have: NumPy refuses
#: arrays of 2**63 bytes or more, and a value takes up to 16 bytes (complex128).
MAX_CELLS = 2 ** 59


def too_large(shape):
    """Whether an array of ``shape`` has more cells than `MAX_CELLS` (then no machine holds it)."""
    return math.prod(shape) > MAX_CELLS




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
