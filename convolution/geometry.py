"""Output-shape math and index arithmetic: the one module every path leans on.

Everything here works on shapes and integers, never on data. It owns the
output-shape formula (forward and transposed), written once for any number
of axes, the padding 'same' and 'full' add, the cells an output cell reads
(`window`, `tap`) and an input cell spreads into (`spread`), and the stride
phases a strided or transposed convolution splits into. The reference loops,
the fast paths and the pictures all take their geometry from here, so they
cannot disagree about which input cells an output cell reads. The arguments
arrive normalised by ``shapes.py``.
"""
import functools
import itertools
import math
from typing import NamedTuple

from .checks import check_choice
from .shapes import PADDING_STRINGS, as_shape, as_tuple, padding_pairs, too_large

__all__ = ["ConvGeometry", "TransposeGeometry", "resolve_padding",
           "conv_geometry", "conv_output_shape", "conv_transpose_geometry", "adjoint_geometry",
           "conv_transpose_output_shape", "window", "tap", "stride_phase",
           "tap_phases", "TransposePhase", "transpose_phases", "spread"]


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
    kernel = as_shape(kernel_shape, "kernel_shape", (1, math.inf))
    axes = len(kernel)
    size = as_shape(input_shape, "input_shape", (axes, math.inf))[-axes:]
    stride = as_tuple(stride, "stride", axes)
    dilation = as_tuple(dilation, "dilation", axes)
    if not isinstance(padding, str):
        return padding_pairs(padding, axes)
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
    kernel_hw = as_shape(kernel_shape, "kernel_shape", (1, math.inf))
    ndim = len(kernel_hw)
    input_hw = as_shape(input_shape, "input_shape", (ndim, math.inf))[-ndim:]
    stride = as_tuple(stride, "stride", ndim)
    dilation = as_tuple(dilation, "dilation", ndim)
    pads = resolve_padding(padding, input_hw, kernel_hw, stride, dilation)
    if too_large(padded := tuple(n + sum(p) for n, p in zip(input_hw, pads))):
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

    @property
    def span(self):
        """``(dh * (kh - 1), dw * (kw - 1))``: cells from the kernel's first tap to its last."""
        return tuple(_span(k, d) for k, d in zip(self.kernel_shape, self.dilation))


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
    kernel_hw = as_shape(kernel_shape, "kernel_shape", (1, math.inf))
    ndim = len(kernel_hw)
    input_hw = as_shape(input_shape, "input_shape", (ndim, math.inf))[-ndim:]
    stride = as_tuple(stride, "stride", ndim)
    dilation = as_tuple(dilation, "dilation", ndim)
    if isinstance(padding, str):
        forms = ("a pair (pad_h, pad_w) or a pair of pairs ((top, bottom), (left, right))"
                 if ndim == 2 else f"a tuple of {ndim} ints or a tuple of {ndim} pairs")
        raise TypeError(f"padding of a transposed convolution must be an int, {forms}, "
                        f"got {padding!r}")
    pads = padding_pairs(padding, ndim)
    extra = as_tuple(output_padding, "output_padding", ndim, minimum=0)
    if any(e >= max(s, d) for e, s, d in zip(extra, stride, dilation)):
        raise ValueError(f"output_padding must be smaller than the stride or the dilation on "
                         f"its axis, got output_padding {extra} with stride {stride} and "
                         f"dilation {dilation}")
    output_hw = tuple(_transpose_output_size(n, k, s, d, *p, e) for n, k, s, d, p, e
                      in zip(input_hw, kernel_hw, stride, dilation, pads, extra))
    if too_large(output_hw):
        raise ValueError(f"stride {stride} and dilation {dilation} make an output of shape "
                         f"{output_hw}, more than an array holds (2**59 cells); use a smaller "
                         f"stride or dilation")
    if min(output_hw) < 1:
        raise ValueError(f"padding {pads} crops more than the transposed convolution "
                         f"produces; the output shape would be {output_hw}. Use less padding")
    return TransposeGeometry(input_hw, kernel_hw, stride, dilation, pads, extra, output_hw)


@functools.lru_cache(maxsize=256)
def adjoint_geometry(geometry):
    """The `TransposeGeometry` of the adjoint of a convolution of ``geometry`` (a `ConvGeometry`).

    The input's gradient of ``conv2d`` is ``conv_transpose2d`` of the
    output's gradient with this geometry: its output has the input's shape,
    its ``output_padding`` restores the rows and columns at the end that no
    window reached. (What `conv_transpose_geometry` finds, without checking
    again what `conv_geometry` did.)

    >>> g = conv_geometry((7, 6), (3, 3), stride=2, padding=1)
    >>> adjoint_geometry(g).output_shape, adjoint_geometry(g).output_padding
    ((7, 6), (0, 1))
    """
    padded = tuple(n + sum(p) for n, p in zip(geometry.input_shape, geometry.padding))
    extra = tuple((size - span - 1) % s
                  for size, span, s in zip(padded, geometry.span, geometry.stride))
    return TransposeGeometry(geometry.output_shape, geometry.kernel_shape, geometry.stride,
                             geometry.dilation, geometry.padding, extra, geometry.input_shape)


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
