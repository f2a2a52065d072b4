"""Argument checks that every public function shares.

Each check raises the error the house style asks for: a ``TypeError`` or
``ValueError`` that names the parameter, shows the value and states the rule.
Keeping them here means a message is written once, whichever function
(``conv2d``, ``apply_filter_to_image``, the pictures, the command line) was
called.
"""
import numbers

import numpy as np

__all__ = ["as_array", "as_bias", "as_kernel", "as_matrix", "check_choice", "check_groups"]

#: The names of a filter's axes in messages, by their count.
AXIS_NAMES = {1: "L", 2: "H, W", 3: "D, H, W"}


def check_choice(name, value, choices):
    """Refuse ``value`` unless it is one of ``choices`` (strings).

    Examples
    --------
    >>> check_choice("method", "fft", ("auto", "fft"))
    >>> check_choice("method", "fast", ("auto", "fft"))
    Traceback (most recent call last):
        ...
    ValueError: method must be one of 'auto', 'fft', got 'fast'
    """
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")


def as_array(value, name, kinds="biufc"):
    """``value`` as an ndarray whose dtype kind is one of ``kinds``.

    The default takes every kind of number: bool, signed and unsigned
    integers, floats and complex numbers.

    Examples
    --------
    >>> as_array([[1, 2], [3, 4]], "matrix").dtype.kind
    'i'
    >>> as_array([[1, 2], [3]], "matrix")
    Traceback (most recent call last):
        ...
    ValueError: matrix must be a rectangular array of numbers, got a ragged nested sequence
    >>> as_array("ab", "kernel")
    Traceback (most recent call last):
        ...
    TypeError: kernel must hold numbers (bool, integer, float or complex), got dtype <U2
    """
    try:
        array = np.asarray(value)
    except ValueError:   # ragged nested lists
        array = None
    # NumPy before 1.24 makes ragged lists an object array of lists, with a warning.
    if array is None or (array.dtype == object and not isinstance(value, np.ndarray)
                         and any(np.ndim(item) for item in array.flat)):
        raise ValueError(f"{name} must be a rectangular array of numbers, "
                         f"got a ragged nested sequence") from None
    if array.dtype.kind not in kinds:
        words = {"b": "bool", "i": "integer", "u": "integer", "f": "float", "c": "complex"}
        allowed = list(dict.fromkeys(words[kind] for kind in kinds))
        listed = allowed[0] if len(allowed) == 1 else (
            f"{', '.join(allowed[:-1])} or {allowed[-1]}")
        raise TypeError(f"{name} must hold numbers ({listed}), got dtype {array.dtype}")
    return array


def as_kernel(value, name="kernel", ndims=(2,), kinds="biufc", finite=False,
              transposed=False):
    """``value`` as a kernel: an array of ``kinds`` with ``ndims`` axes, none of them empty.

    ``finite=True`` also refuses NaN and infinity (filters of pictures,
    where a NaN weight could only be a mistake). ``transposed=True`` names
    the 4-D layout of a transposed convolution's kernel in the message.

    Examples
    --------
    >>> as_kernel([[1, 0], [0, 1]]).shape
    (2, 2)
    >>> as_kernel([1, 2, 3])
    Traceback (most recent call last):
        ...
    ValueError: kernel must be 2-D (kh, kw) and not empty, got shape (3,)
    """
    kernel = as_array(value, name, kinds)
    if kernel.ndim not in ndims or 0 in kernel.shape:
        layouts = {2: "2-D (kh, kw)", 4: "4-D (C_in, C_out / groups, kh, kw)" if transposed
                   else "4-D (C_out, C_in / groups, kh, kw)"}
        wanted = " or ".join(layouts[n] for n in ndims)
        raise ValueError(f"{name} must be {wanted} and not empty, got shape {kernel.shape}")
    if finite and not np.isfinite(kernel).all():
        raise ValueError(f"{name} must hold finite numbers, got NaN or infinity")
    return kernel


def as_bias(value, out_channels=None):
    """``value`` as a bias: None, a scalar (a 2-D kernel) or one value per output channel.

    ``out_channels`` is None for a 2-D kernel, whose one output takes a
    scalar bias; else the layer's C_out, and the bias must have shape
    ``(C_out,)``, as in PyTorch.

    Examples
    --------
    >>> as_bias([0.5, 1.0], 2)
    array([0.5, 1. ])
    >>> as_bias([1, 2, 3], 2)
    Traceback (most recent call last):
        ...
    ValueError: bias must have shape (2,), one value per output channel, got shape (3,)
    """
    if value is None:
        return None
    bias = as_array(value, "bias")
    if out_channels is None and bias.ndim:
        raise ValueError(f"bias must be a scalar with a 2-D kernel, got shape {bias.shape}")
    if out_channels is not None and bias.shape != (out_channels,):
        raise ValueError(f"bias must have shape ({out_channels},), one value per output "
                         f"channel, got shape {bias.shape}")
    return bias


def as_matrix(value, ndim=2):
    """``value`` as an array of numbers with at least ``ndim`` axes, none of them empty.

    Examples
    --------
    >>> as_matrix([[1, 2]]).shape
    (1, 2)
    >>> as_matrix([1, 2])
    Traceback (most recent call last):
        ...
    ValueError: matrix must have at least 2 dimensions (..., H, W) and no empty axis, got shape (2,)
    """
    matrix = as_array(value, "matrix")
    if matrix.ndim < ndim or 0 in matrix.shape:
        raise ValueError(f"matrix must have at least {ndim} dimension{'s' * (ndim > 1)} "
                         f"(..., {AXIS_NAMES.get(ndim, '...')}) and no empty axis, got shape "
                         f"{matrix.shape}")
    return matrix


def check_groups(groups, kernel, ndim=2):
    """A filter (a kernel of ``ndim`` axes) has no channels to group: ``groups`` must stay 1."""
    if kernel.ndim == ndim and (isinstance(groups, bool)
                                or not isinstance(groups, numbers.Integral) or groups != 1):
        raise ValueError(f"groups must be 1 with a {ndim}-D kernel (it splits the channels of "
                         f"a {ndim + 2}-D kernel), got groups={groups!r} with kernel of shape "
                         f"{kernel.shape}")
