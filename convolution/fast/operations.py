"""Every operation as one correlation, and the planner that routes it.

Each function the package offers computes the same sum: cells of a padded
input times kernel weights, summed over taps and channels.

- ``conv2d`` with a 4-D kernel is a layer: images (N, C_in, H, W) correlated
  with a kernel (C_out, C_in / groups, kh, kw), the sums running over the
  channels of a group. With a 2-D kernel, a layer of one pair of channels
  whose batch is the input's leading axes.
- ``conv_transpose2d``, and ``conv2d_backward``'s gradient of the input, is
  a layer too, once per stride phase of its output: the output cells of one
  phase are reached by one subset of the kernel's taps only, and gather
  them as a correlation at stride 1 with those taps reversed and the
  channels swapped (``geometry.transpose_phases``). No zeros are spread
  between the input's cells, and no product of a tap that lands elsewhere
  is computed: at stride s, 1/s**2 of the multiply-adds of a correlation
  over the spread input.
- The kernel's gradient is the correlation of the padded input with the
  output's gradient as the kernel, stride and dilation trading places, the
  batch summed as channels are (`kernel_gradient`).

For a layer, `plan_layer` ranks what can compute it, with one cost model:
the paths that do the sums over channels themselves (``layer.py``'s stacked
products, 'matmul' in the registry) against the best 2-D path (``fast.PATHS``:
the band, the FFT, ...) run once per pair of channels, by their estimated
times (each path's own plan). 'auto' so takes the FFT for a few channels
and a large kernel, and the stacked products for many channels, whichever
function was called.
"""
import functools
import itertools
import math

import numpy as np

from .. import driver, settings as _settings
from ..geometry import conv_geometry, transpose_phases
from . import PATHS, all_finite, choose_method, convolve, fft, fft_surprise_free, layer, plan
from .costs import cell_scale

__all__ = ["plan_layer", "conv2d", "conv_transpose2d", "kernel_gradient"]


def _blas_once(function):
    """``function`` inside one `driver.single_threaded_blas` block.

    Its paths open blocks of their own, one per call; nested inside this one,
    they only count themselves in. BLAS's thread count is then set once per
    operation, not once per phase or pair of channels (a few hundred
    microseconds each, with OpenBLAS).
    """
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with driver.single_threaded_blas(_settings.current().limit_blas):
            return function(*args, **kwargs)
    return wrapper


def plan_layer(images, kernel, geometry, groups, padding_mode, fill_value, dtype):
    """``(how, plan)``: 'matmul' and its plan, or 'pairs' and the 2-D path each pair takes.

    ``images`` (N, C_in, H, W), ``kernel`` (C_out, C_in / groups, kh, kw) in
    ``dtype``. A layer of one pair goes to the 2-D paths at once; one of more
    pairs than ``Settings.pair_limit``, or whose products are estimated
    below ``Settings.pair_floor_ns`` (where planning every pair would cost
    more than it could save), to the stacked products. Otherwise the two
    estimates decide: the pairs' is the best 2-D plan of the first pair's
    kernel on the first channel's data, times the pairs, plus the sum of
    their results.
    """
    s = _settings.current()
    out_channels, per_in = kernel.shape[:2]
    pairs = out_channels * per_in
    if pairs == 1:
        return "pairs", "auto"
    name, chosen = min(((name, path.plan(images, kernel.shape, geometry, groups, padding_mode,
                                         fill_value, dtype, s))
                        for name, path in PATHS.items() if path.channels),
                       key=lambda option: option[1].ns)
    if pairs > s.pair_limit or chosen.ns < s.pair_floor_ns:
        return name, chosen
    method, best = choose_method(kernel[0, 0], geometry, images=images[:, 0],
                                 fill_value=fill_value)
    cells = images.shape[0] * math.prod(geometry.output_shape)
    per_pair = best.ns + cells * cell_scale(dtype) * s.flat_ns
    if pairs * per_pair >= chosen.ns:
        return name, chosen
    return "pairs", _pair_method(method, images, kernel, geometry, dtype, fill_value, s)


def _pair_method(method, images, kernel, geometry, dtype, fill_value, s):
    """The 2-D path every pair takes: the first pair's, where it holds for all of them.

    The tap loops and the band take any finite kernel of the dtype; the FFT
    also needs every input channel's data to meet its conditions (checked
    once a channel here, not once a pair). Otherwise, and for 'separable'
    (whose terms depend on each kernel), each pair chooses for itself ('auto').
    """
    if method == "separable" or not np.isfinite(kernel).all():
        return "auto"
    if method == "fft":     # the first channel's data met them in `choose_method`
        for c in range(1, images.shape[1]):
            channel = images[:, c]
            if not (channel.dtype.kind in "fc" and all_finite(channel, fill_value)
                    and fft_surprise_free(channel, geometry, np.dtype(dtype), fill_value, s)):
                return "auto"
    return method


def _pairs(images, kernel, geometry, groups, padding_mode, fill_value, dtype, method, out):
    """The layer as 2-D convolutions with ``method``, one per pair of channels, summed into ``out``."""
    out_channels, per_in = kernel.shape[:2]
    per_out = out_channels // groups
    for o in range(out_channels):
        for c in range(per_in):
            matrix = images[:, (o // per_out) * per_in + c]
            if c == 0:      # the first pair's sums go straight into the output
                convolve(matrix, kernel[o, c], geometry, padding_mode, fill_value, dtype, method,
                         out=out[:, o])
            else:
                out[:, o] += convolve(matrix, kernel[o, c], geometry, padding_mode, fill_value,
                                      dtype, method)
    return out


@_blas_once
def conv2d(images, kernel, geometry, groups, padding_mode, fill_value, dtype, bias=None,
           out=None, method="auto"):
    """A layer, by ``method``: 'auto' (`plan_layer`), a path of the channel sums, or a 2-D one per pair.

    ``images`` (N, C_in, H, W), ``kernel`` (C_out, C_in / groups, kh, kw) in
    ``dtype``, ``bias`` (C_out,); ``out`` (N, C_out, H_out, W_out), where to
    write (a strided view of a larger array will do). Returns ``out``, or a
    new array.
    """
    chosen = None
    if method == "auto":
        method, chosen = plan_layer(images, kernel, geometry, groups, padding_mode, fill_value,
                                    dtype)
        if method == "pairs":
            method, chosen = chosen, None
    if PATHS.get(method, PATHS["direct"]).channels:
        return PATHS[method].run(images, kernel, geometry, groups, padding_mode, fill_value,
                                 dtype, bias, out, chosen)
    shape = (images.shape[0], kernel.shape[0]) + geometry.output_shape
    if out is None and kernel.shape[:2] == (1, 1):     # one pair: its result is the output
        out = convolve(images[:, 0], kernel[0, 0], geometry, padding_mode, fill_value, dtype,
                       method).reshape(shape)
    else:
        if out is None:
            out = np.empty(shape, dtype)
        _pairs(images, kernel, geometry, groups, padding_mode, fill_value, dtype, method, out)
    if bias is not None:
        out += bias[:, np.newaxis, np.newaxis]
    return out


@_blas_once
def conv_transpose2d(images, kernel, geometry, groups, dtype, bias=None):
    """The transposed convolution, one layer correlation per stride phase of its output.

    Parameters
    ----------
    images : ndarray, shape (N, C_in, H, W)
    kernel : ndarray, shape (C_in, C_out / groups, kh, kw), of ``dtype``
    geometry : geometry.TransposeGeometry
    groups : int
    dtype : dtype
    bias : ndarray, shape (C_out,), optional

    Returns
    -------
    ndarray, shape (N, C_out, H_out, W_out)

    Notes
    -----
    The output cells of one stride phase (every sh-th row from q, every
    sw-th column from r) are reached by one subset of the kernel's taps
    (``geometry.transpose_phases``), and gather their sums as `conv2d` does
    with those taps, reversed, at stride 1: each phase runs through
    `conv2d` ('auto': the planner chooses its path), writing into its
    strided slice of the output.

    A gather also multiplies weights by the zeros beyond the input's edges,
    and an infinite or NaN weight times zero is NaN, where the scatter of
    ``reference_layers.conv_transpose2d_loops`` (and PyTorch) adds nothing. A kernel
    that is not all finite is scattered, tap by tap (``layer.scatter``).
    """
    batch, in_channels = images.shape[:2]
    per_out, kh, kw = kernel.shape[1:]
    out_channels, per_in = groups * per_out, in_channels // groups
    # (C_in, C_out / groups, ...) as conv2d's (C_out, C_in / groups, ...), group by group.
    forward = kernel.reshape(groups, per_in, per_out, kh, kw).transpose(0, 2, 1, 3, 4).reshape(
        out_channels, per_in, kh, kw)
    out = np.empty((batch, out_channels) + geometry.output_shape, dtype)
    if not np.isfinite(kernel).all():
        out[...] = 0 if bias is None else bias[:, np.newaxis, np.newaxis]
        return layer.scatter(images, forward, geometry, groups, out)
    rows, cols = (transpose_phases(images.shape[axis], kernel.shape[axis], *args)
                  for axis, args in ((2, (geometry.stride[0], geometry.dilation[0],
                                          geometry.padding[0][0], geometry.output_shape[0])),
                                     (3, (geometry.stride[1], geometry.dilation[1],
                                          geometry.padding[1][0], geometry.output_shape[1]))))
    reached = np.zeros(geometry.output_shape, bool)
    for row, col in itertools.product(rows, cols):
        cells = images[:, :, row.input, col.input]
        sub_kernel = forward[:, :, row.taps][:, :, :, col.taps]
        phase_geometry = conv_geometry(cells.shape, sub_kernel.shape[2:], 1,
                                       (row.dilation, col.dilation), (row.padding, col.padding))
        conv2d(cells, sub_kernel, phase_geometry, groups, "zeros", 0, dtype, bias,
               out=out[:, :, row.output, col.output])
        reached[row.output, col.output] = True
    if not reached.all():       # phases no tap reaches: the bias alone
        out[:, :, ~reached] = 0 if bias is None else bias[:, np.newaxis]
    return out


@_blas_once
def kernel_gradient(grad_output, images, kernel_shape, geometry, groups, padding_mode,
                    fill_value, dtype):
    """The gradient of ``sum(grad_output * conv2d(images, kernel))`` with respect to the kernel.

    ``grad[o, c, a, b]`` sums ``grad_output[n, o, i, j] * padded[n, c', i*sh + a*dh,
    j*sw + b*dw]``: for each (n, o), the correlation of the padded input with
    ``grad_output[n, o]`` as its kernel, at stride ``(dh, dw)`` and dilation
    ``(sh, sw)``, of which the first (kh, kw) outputs are kept. Two paths:
    ``layer.kernel_gradient`` (per tap, one product of the output's gradient
    with the cells the tap met), or the FFT of that correlation once per
    (n, o) with the group's input channels as its batch, for few images and
    channels, large kernels and finite float data: the planner takes the one
    estimated faster.

    Returns an array of ``kernel_shape`` (C_out, C_in / groups, kh, kw).
    """
    s = _settings.current()
    out_channels, per_in, kh, kw = kernel_shape
    batch = images.shape[0]
    taps = layer.plan_kernel_gradient(images, kernel_shape, geometry, groups, padding_mode,
                                      fill_value, dtype, s)
    spread = _fft_geometry(images, grad_output, geometry)
    if (taps.ns >= s.pair_floor_ns and batch * out_channels <= s.pair_limit
            and spread is not None and fft.exact_enough(np.dtype(dtype))
            and all_finite(images, fill_value) and all_finite(grad_output)):
        estimate = batch * out_channels * plan("fft", spread, np.asarray(grad_output[0, 0], dtype),
                                               per_in, dtype).ns
        if _FFT_GRADIENT_MARGIN * estimate < taps.ns:
            per_out = out_channels // groups
            total = np.zeros(kernel_shape, dtype)
            for n, o in itertools.product(range(batch), range(out_channels)):
                first = (o // per_out) * per_in
                total[o] += convolve(images[n, first:first + per_in],
                                     np.asarray(grad_output[n, o], dtype), spread, padding_mode,
                                     fill_value, dtype, "fft")[:, :kh, :kw]
            return total
    return layer.kernel_gradient(grad_output, images, kernel_shape, geometry, groups,
                                 padding_mode, fill_value, dtype, taps)


#: The FFT of a whole image takes the kernel's gradient only where its estimate beats
#: the taps' by this factor: its transforms, as large as the image, outgrow the cache
#: the prices were measured in. Measured on 512 x 512 float32, one image, against the
#: estimates: the taps 3 to 7 times their estimate, the FFT 9 to 14 times (a loaded
#: machine); the two took the same time at 15 x 15, the FFT a third at 31 x 31.
_FFT_GRADIENT_MARGIN = 2.0


def _fft_geometry(images, grad_output, geometry):
    """The geometry of the input correlated with the output's gradient, stride and dilation swapped.

    Its outputs from (0, 0) to (kh, kw) are the kernel's gradient; None where
    the data are not floats (the FFT takes none other).
    """
    if images.dtype.kind not in "fc" or grad_output.dtype.kind not in "fc":
        return None
    return conv_geometry(images.shape, grad_output.shape[-2:], geometry.dilation,
                         geometry.stride, geometry.padding)
