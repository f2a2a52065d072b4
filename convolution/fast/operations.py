"""Every operation as one correlation, and the planner that routes it.

Each function the package offers computes the same sum: cells of a padded
input times kernel weights, summed over taps and channels.

- ``conv2d`` with a 4-D kernel is a layer: images (N, C_in, H, W) correlated
  with a kernel (C_out, C_in / groups, kh, kw), the sums running over the
  channels of a group. With a 2-D kernel, a layer of one pair of channels
  whose batch is the input's leading axes.
- ``conv_transpose2d``, and ``conv2d_backward``'s gradient of the input, is
  a layer too: at stride 1 one correlation, the kernel reversed, padded as
  'full' less what is cropped (the `conv2d` of ``padding='full', flip=True``
  when nothing is); above, one per stride phase of its output: the output cells of one
  phase are reached by one subset of the kernel's taps only, and gather
  them as a correlation at stride 1 with those taps reversed and the
  channels swapped (``geometry.transpose_phases``). No zeros are spread
  between the input's cells, and no product of a tap that lands elsewhere
  is computed: at stride s, 1/s**2 of the multiply-adds of a correlation
  over the spread input. Or every phase of a block of output rows at once,
  as one band product that shares the input's copies between the phases
  (``subpixel.py``); `transpose_route` weighs the two.
- The kernel's gradient is the correlation of the padded input with the
  output's gradient as the kernel, stride and dilation trading places, the
  batch summed as channels are (`kernel_gradient`, which ranks its own
  paths: ``fast/gradients.py`` and the layer's taps).

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
from ..dtypes import BLAS_DTYPES
from ..geometry import ConvGeometry, transpose_phases
from . import (GRADIENT_PATHS, PATHS, all_finite, choose_method, convolve, fft_surprise_free,
               layer, subpixel)
from .cache import CACHED_CELLS, kernel_cache
from .costs import cell_scale

__all__ = ["plan_layer", "layer_estimate", "conv2d", "conv_transpose2d", "transpose_route",
           "kernel_gradient_plans", "kernel_gradient", "backward", "gradients_side_by_side",
           "side_by_side"]


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
    name, chosen = min(_layer_plans(images, kernel.shape, geometry, groups, padding_mode,
                                    fill_value, dtype, s), key=lambda option: option[1].ns)
    if pairs > s.pair_limit or chosen.ns < s.pair_floor_ns:
        return name, chosen
    method, best = choose_method(kernel[0, 0], geometry, images=images[:, 0],
                                 fill_value=fill_value)
    cells = images.shape[0] * math.prod(geometry.output_shape)
    per_pair = best.ns + cells * cell_scale(dtype) * s.flat_ns
    if pairs * per_pair >= chosen.ns:
        return name, chosen
    return "pairs", _pair_method(method, images, kernel, geometry, dtype, fill_value, s)


def _layer_plans(images, kernel_shape, geometry, groups, padding_mode, fill_value, dtype, s):
    """``(name, plan)`` of every path of the channel sums that takes the layer."""
    for name, path in PATHS.items():
        if path.channels:
            try:
                yield name, path.plan(images, kernel_shape, geometry, groups, padding_mode,
                                      fill_value, dtype, s)
            except ValueError:      # not a layer it takes (the kernel's size, the stride)
                continue


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
    """The transposed convolution: all stride phases in one product, or one correlation per phase.

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
    At stride 1 the transposed convolution is one correlation, with the
    kernel reversed and the 'full' padding less what is cropped
    (`_correlation_geometry`): `conv2d` computes it, the planner choosing
    its path, as it would for ``conv2d(x, k, padding='full', flip=True)``.
    Above, the output cells of one stride phase (every sh-th row from q,
    every sw-th column from r) are reached by one subset of the kernel's
    taps (``geometry.transpose_phases``), and gather their sums as `conv2d`
    does with those taps, reversed, at stride 1: each phase can run through
    `conv2d` ('auto': the planner chooses its path), writing into its
    strided slice of the output (`_by_phases`). Or every phase of a block
    of rows at once, as one band product ('subpixel', ``fast/subpixel.py``),
    which shares the copies of the input between the phases: taken at a
    stride above 1 where its estimate beats the phases' (`transpose_route`),
    for finite data of a dtype BLAS takes.

    A gather also multiplies weights by the zeros beyond the input's edges,
    and an infinite or NaN weight times zero is NaN, where the scatter of
    ``reference_layers.conv_transpose2d_loops`` (and PyTorch) adds nothing. A kernel
    that is not all finite is scattered, tap by tap (``layer.scatter``).
    """
    batch, in_channels = images.shape[:2]
    per_out, kh, kw = kernel.shape[1:]
    out_channels = groups * per_out
    shape = (batch, out_channels) + geometry.output_shape
    if not np.isfinite(kernel).all():
        out = np.empty(shape, dtype)
        out[...] = 0 if bias is None else bias[:, np.newaxis, np.newaxis]
        return layer.scatter(images, _forward_kernel(kernel, groups), geometry, groups, out)
    if geometry.stride == (1, 1) and _fits_one_correlation(geometry):
        return conv2d(images, _flipped_forward(kernel, groups), _correlation_geometry(geometry),
                      groups, "zeros", 0, dtype, bias)
    out = np.empty(shape, dtype)
    route, chosen = transpose_route(images, kernel, geometry, groups, dtype)
    if route == "subpixel":
        return subpixel.run(images, kernel, geometry, groups, dtype, bias, out, chosen)
    return _by_phases(images, kernel, geometry, groups, dtype, bias, out)


def _forward_kernel(kernel, groups):
    """(C_in, C_out / groups, kh, kw) as conv2d's (C_out, C_in / groups, kh, kw), by group."""
    in_channels, per_out, kh, kw = kernel.shape
    per_in = in_channels // groups
    return kernel.reshape(groups, per_in, per_out, kh, kw).transpose(0, 2, 1, 3, 4).reshape(
        groups * per_out, per_in, kh, kw)


@functools.lru_cache(maxsize=256)
def _fits_one_correlation(geometry):
    """Whether no side crops more than the kernel's span: the correlation's padding is >= 0."""
    return all(before <= span and after <= span + extra for span, (before, after), extra
               in zip(geometry.span, geometry.padding, geometry.output_padding))


@functools.lru_cache(maxsize=256)
def _correlation_geometry(geometry):
    """At stride 1, the one correlation the transposed convolution is (its geometry).

    Output cell ``y`` sums ``input[y + crop - a * d] * kernel[a]`` over the
    taps: with the taps reversed, a correlation of the input padded by
    ``span - crop`` zeros before (and ``span - crop + output_padding``
    after), the padding a 'full' correlation has less what is cropped.
    """
    padding = tuple((span - before, span - after + extra) for span, (before, after), extra
                    in zip(geometry.span, geometry.padding, geometry.output_padding))
    return ConvGeometry(geometry.input_shape, geometry.kernel_shape, (1, 1), geometry.dilation,
                        padding, geometry.output_shape)


def _flipped_forward(kernel, groups):
    """conv2d's kernel of the transposed convolution at stride 1: `_forward_kernel`, reversed."""
    return np.ascontiguousarray(_forward_kernel(kernel, groups)[:, :, ::-1, ::-1])


def _phase_layers(images, kernel, geometry, groups):
    """Per stride phase of the output: (output slice, its input cells, its kernel, its geometry).

    The kernel in conv2d's layout, its taps those of the phase, reversed.
    """
    forward = _forward_kernel(kernel, groups)
    rows, cols = (transpose_phases(images.shape[axis], kernel.shape[axis], *args)
                  for axis, args in ((2, (geometry.stride[0], geometry.dilation[0],
                                          geometry.padding[0][0], geometry.output_shape[0])),
                                     (3, (geometry.stride[1], geometry.dilation[1],
                                          geometry.padding[1][0], geometry.output_shape[1]))))
    out_h, out_w = geometry.output_shape
    for row, col in itertools.product(rows, cols):
        cells = images[:, :, row.input, col.input]
        sub_kernel = forward[:, :, row.taps][:, :, :, col.taps]
        # What conv_geometry would find, without checking again what the phases derived.
        yield (row.output, col.output), cells, sub_kernel, ConvGeometry(
            cells.shape[2:], sub_kernel.shape[2:], (1, 1), (row.dilation, col.dilation),
            (row.padding, col.padding), (len(range(*row.output.indices(out_h))),
                                         len(range(*col.output.indices(out_w)))))


def _by_phases(images, kernel, geometry, groups, dtype, bias, out):
    """One layer correlation per stride phase, through `conv2d`, into its slice of ``out``."""
    reached = np.zeros(geometry.output_shape, bool)
    for (rows, cols), cells, sub_kernel, phase_geometry in _phase_layers(images, kernel,
                                                                        geometry, groups):
        conv2d(cells, sub_kernel, phase_geometry, groups, "zeros", 0, dtype, bias,
               out=out[:, :, rows, cols])
        reached[rows, cols] = True
    if not reached.all():       # phases no tap reaches: the bias alone
        out[:, :, ~reached] = 0 if bias is None else bias[:, np.newaxis]
    return out


def transpose_route(images, kernel, geometry, groups, dtype):
    """``('subpixel', plan)`` or ``('phases', None)``: how `conv_transpose2d` computes these sums.

    At stride 1 there is one phase: a correlation, which the planner routes.
    Above, the band product of every phase at once ('subpixel') takes finite
    data of a dtype BLAS takes, where its estimate is below the sum of the
    phases' own best estimates (each by `layer_estimate`: the paths of the
    planner, data assumed to meet their conditions), both on one thread; the
    plan then takes the call's threads. The choice depends on the kernel and
    the shapes alone: it is kept, as plans are.
    """
    if geometry.stride == (1, 1) or np.dtype(dtype) not in BLAS_DTYPES \
            or not all_finite(images):
        return "phases", None
    route = _route if kernel.size <= CACHED_CELLS else _route.__wrapped__
    return route(kernel, images.shape, geometry, groups, np.dtype(dtype).str, driver.threads(),
                 _settings.current())


@kernel_cache(maxsize=256)
def _route(kernel, images_shape, geometry, groups, dtype, threads, s):
    dtype = np.dtype(dtype)
    images = np.broadcast_to(np.zeros((), dtype), images_shape)     # the plans read its shape
    with driver.limit_threads(1):       # the work decides, as for the 2-D paths (fast._ranked)
        alone = subpixel.plan(images_shape, kernel.shape, geometry, groups, dtype, s).ns
        phases = sum(layer_estimate(cells, sub_kernel, phase_geometry, groups, dtype, s)
                     for _, cells, sub_kernel, phase_geometry in _phase_layers(images, kernel,
                                                                              geometry, groups))
    if alone > phases:
        return "phases", None
    return "subpixel", subpixel.plan(images_shape, kernel.shape, geometry, groups, dtype, s)


def layer_estimate(images, kernel, geometry, groups, dtype, s):
    """The estimated time (ns) of a layer by the route `plan_layer` takes, data assumed fit.

    ``kernel`` (C_out, C_in / groups, kh, kw). The cheaper of the paths
    that do the sums over channels and, for up to ``Settings.pair_limit``
    pairs, the best 2-D path once per pair of channels plus the sum of their
    results (a single pair: that path alone).
    """
    out_channels, per_in = kernel.shape[:2]
    pairs = out_channels * per_in
    batch = images.shape[0]
    best = choose_method(kernel[0, 0], geometry, batch)[1].ns if pairs <= s.pair_limit \
        else math.inf
    if pairs == 1:
        return best
    cells = batch * math.prod(geometry.output_shape)
    per_pair = best + cells * cell_scale(dtype) * s.flat_ns
    return min(pairs * per_pair,
               min(chosen.ns for _, chosen in _layer_plans(images, kernel.shape, geometry,
                                                           groups, "zeros", 0, dtype, s)))


def kernel_gradient_plans(images, kernel_shape, geometry, groups, padding_mode, fill_value,
                          dtype):
    """``[(name, plan), ...]``: the kernel gradient's paths 'auto' weighs, the fastest first.

    For floats, 'shifts' and 'fft' (where they take the dtype and size) and,
    where the channels fill its products, 'taps'; for integers, 'taps'. The
    FFT's estimate counts ``Settings.fft_margin`` times (see `kernel_gradient`).
    """
    s = _settings.current()
    arguments = (images, kernel_shape, geometry, groups, padding_mode, fill_value,
                 np.dtype(dtype), s)
    options = []
    if np.dtype(dtype).kind in "fc":
        for name, path in GRADIENT_PATHS.items():
            if name != "taps":
                try:
                    options.append((name, path.plan(*arguments)))
                except ValueError:      # the path does not take this dtype or size
                    pass
    # The taps multiply exactly the cells each tap met: the path for every dtype and value.
    # For floats it is weighed only where the channels fill its products; on one pair of
    # channels 'shifts' does the same sums faster, and its plan costs far less to make.
    if not options or kernel_shape[0] * kernel_shape[1] > 1:
        options.append(("taps", GRADIENT_PATHS["taps"].plan(*arguments)))
    return sorted(options, key=lambda option: option[1].ns
                  * (s.fft_margin if option[0] == "fft" else 1))


@_blas_once
def kernel_gradient(grad_output, images, kernel_shape, geometry, groups, padding_mode,
                    fill_value, dtype, method="auto"):
    """The gradient of ``sum(grad_output * conv2d(images, kernel))`` with respect to the kernel.

    ``grad[o, c, a, b]`` sums ``grad_output[n, o, i, j] * padded[n, c', i*sh + a*dh,
    j*sw + b*dw]``: the correlation of the padded input with the output's
    gradient as its kernel, stride and dilation trading places, the batch
    summed as channels are. Four paths (``fast.GRADIENT_PATHS``): 'taps'
    (``layer.kernel_gradient``: per tap, one product of the output's gradient
    with the cells the tap met), 'shifts' (the kh x kw sums of a strip as one
    matrix product of shifted copies) and 'fft' (one transform of the whole
    padded image), both in ``fast/gradients.py``, and 'winograd' (3 x 3
    layers at stride 1, ``fast/winograd_gradient.py``). 'auto' takes the plan
    estimated fastest (the FFT's by ``Settings.fft_margin``): for floats,
    'shifts', 'fft' and 'winograd' weighed against 'taps' (which for one pair
    of channels they always beat), integers by 'taps' alone. A result of
    another path than 'taps' that is not all finite is computed again by 'taps':
    where the data hold NaN or infinity, only they multiply exactly the
    cells each tap met, as the reference loops do (the others also multiply
    cells by the zeros they add, and 0 * inf is NaN); a finite result says
    that every product was finite, the reference loops' own. 'fft' checks
    its accuracy on the data first and leaves data it would not do well to
    the next path. ``method`` names a path instead.

    Returns an array of ``kernel_shape`` (C_out, C_in / groups, kh, kw).
    """
    s = _settings.current()
    dtype = np.dtype(dtype)
    arguments = (images, kernel_shape, geometry, groups, padding_mode, fill_value, dtype, s)
    run = (grad_output, images, kernel_shape, geometry, groups, padding_mode, fill_value, dtype)
    if method != "auto":
        path = GRADIENT_PATHS[method]
        grad = path.run(*run, path.plan(*arguments))
        if grad is None:
            raise ValueError(f"method={method!r} does not take these data (its error would "
                             f"pass the direct sums' by far); use method='auto'")
        return grad
    options = kernel_gradient_plans(images, kernel_shape, geometry, groups, padding_mode,
                                    fill_value, dtype)
    for name, chosen in options:
        grad = GRADIENT_PATHS[name].run(*run, chosen)
        if name == "taps" or grad is not None and np.isfinite(grad).all():
            return grad
        # None: 'fft' found the data beyond its accuracy. Not finite: the data hold NaN or
        # infinity (or a sum overflowed), which 'shifts' and 'fft' also multiply by the
        # zeros they add: only the taps then give the reference loops' NaN and infinities.
        if grad is not None:
            return layer.kernel_gradient(*run)
    raise AssertionError("the taps take every kernel's gradient")


def backward(grad_output, images, kernel, geometry, groups, padding_mode, fill_value, dtype,
             input_gradient):
    """``conv2d_backward``'s gradients of the input, the kernel and the bias, in that order.

    ``grad_output`` (N, C_out, H_out, W_out), ``images`` (N, C_in, H, W),
    ``kernel`` (C_out, C_in / groups, kh, kw) in ``dtype``. The input's is
    ``input_gradient()`` (the adjoint of conv2d with its border, which the
    caller builds), the kernel's `kernel_gradient`. BLAS keeps to one thread
    for the whole pass, set once; on two threads or more a large kernel's
    two gradients run side by side (`gradients_side_by_side`).
    """
    def of_kernel():
        return kernel_gradient(grad_output, images, kernel.shape, geometry, groups,
                               padding_mode, fill_value, dtype)

    with driver.single_threaded_blas(_settings.current().limit_blas):
        if gradients_side_by_side(images, kernel, geometry, groups, padding_mode, fill_value,
                                  dtype):
            grad_kernel, grad_input = side_by_side(of_kernel, input_gradient)
        else:
            grad_kernel, grad_input = of_kernel(), input_gradient()
        # The data stay in their dtype: the paths convert what they fetch, strip by strip.
        grad_bias = grad_output.sum(axis=(0, 2, 3), dtype=dtype)
    return grad_input, grad_kernel, grad_bias


def gradients_side_by_side(images, kernel, geometry, groups, padding_mode, fill_value, dtype):
    """Whether ``conv2d_backward`` computes its two gradients at once, on threads of their own.

    The kernel's gradient keeps to one thread (the small products of
    'shifts', called from two threads, wait for each other in OpenBLAS; the
    FFT's plan is one task), where the forward pass, and the input's
    gradient its size, share the cores. So with two threads or more, the
    kernel's gradient runs on one while the input's takes the others
    (`side_by_side`), where each is estimated at ``Settings.thread_ns`` or
    more on one thread: below, as for the driver's strips, a thread's cold
    caches and the handoffs of the GIL cost more than it saves (measured,
    3 x 3 at 512 float32 on two threads: 1.56 ms at once against 1.02 one
    after the other; 31 x 31, 6.5 against 8.8).

    ``kernel`` (C_out, C_in / groups, kh, kw) in ``dtype``. Like the plans,
    the answer depends on the work, not on the machine's load.
    """
    s = _settings.current()
    if driver.threads() < 2:
        return False
    _, chosen = kernel_gradient_plans(images, kernel.shape, geometry, groups, padding_mode,
                                      fill_value, dtype)[0]
    if chosen.threads > 1 or chosen.ns < s.thread_ns:
        return False
    with driver.limit_threads(1):
        return layer_estimate(images, kernel, geometry, groups, dtype, s) >= s.thread_ns


def side_by_side(alone, shared):
    """``(alone(), shared())``, computed at once: ``alone`` on one thread, ``shared`` on the rest.

    Two tasks of the driver's pool; the calling thread takes ``shared``.
    """
    threads = driver.threads()
    results = [None, None]

    def task(arena, index):
        with driver.limit_threads(1 if index == 0 else threads - 1):
            results[index] = (alone, shared)[index]()

    driver.run(task, driver.Plan([(1,), (0,)], 2, 0.0, settings=_settings.current()))
    return tuple(results)
