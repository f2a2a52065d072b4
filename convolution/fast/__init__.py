"""The fast paths: one registry, and the planner that chooses between them.

Every path computes what ``reference.conv2d_loops`` computes and is tested
against it. None loops over output cells in Python. Each lives in a file of
its own whose docstring says its idea, its cost per output and its limits,
beside its plan and its cost formula:

``direct.py``
    Tap by tap, a strided slice of the input times the tap's weight.
``polyphase.py``
    The same sums on the input split into its stride phases, read contiguously.
``banded.py``, ``banded_rows.py``
    Groups of output rows as band-matrix products through BLAS; strips cut
    into tiles of columns, or (``banded_rows.py``) of the whole width.
``separable.py``
    A low-rank kernel as column filters followed by row filters.
``fft.py``
    Overlap-save: the sums of each tile as a product of spectra.
``layer.py``
    A CNN layer's sums over channels as matrix products, one per stack of taps.
``winograd.py``
    A 3 x 3 layer at stride 1 by Winograd's F(2 x 2, 3 x 3): 16 products, not 36.
``winograd4.py``
    The same by F(4 x 4, 3 x 3), its transforms small matrix products: 36, not 144.
``winograd_layout.py``
    What the two tile sizes share: the layer's shape and the kernel's transform.
``winograd_gradient.py``
    The kernel's gradient of a 3 x 3 layer by F(3 x 3, 2 x 2): 16 products, not 36.
``subpixel.py``
    The transposed convolution: every stride phase of a block of rows in one product.
``gradients.py``
    The kernel's gradient as matrix products of shifted copies, or one FFT.
``operations.py``
    Every operation (the layer, the transposed convolution, both gradients)
    put in that one form, and the planner that routes a layer.

They share ``phases.py`` (stride phases, flat multiply-adds), ``cache.py``
(what is worked out from a kernel, once per kernel), ``costs.py`` (the cost
model's prices) and the driver (``driver/``: strips, threads, scratch
memory, BLAS). Each path has a ``plan`` that says how it cuts the work and
what that is estimated to cost; 'auto' takes the cheapest plan whose
conditions the data meet (`choose_method`), and runs it as planned.

Adding a path is adding a file with ``plan(geometry, kernel, batch, dtype,
settings)`` and ``run(source, kernel, geometry, out, plan)``, and a line in
`PATHS`.
"""
import math
from typing import Callable, NamedTuple

import numpy as np

from .. import driver, settings as _settings
from ..dtypes import BLAS_DTYPES
from ..padding import Padded
from . import (banded, direct, fft, gradients, layer, polyphase, separable, winograd,
               winograd_gradient)
from .cache import CACHED_CELLS, kernel_cache

__all__ = ["PATHS", "CHANNEL_METHODS", "GRADIENT_PATHS", "METHODS", "Path", "GradientPath",
           "all_finite", "choose_method", "convolve", "cost_estimates", "fft_surprise_free",
           "plan"]


class Path(NamedTuple):
    """A fast path as the registry knows it.

    ``channels``: whether the path does a layer's sums over channels itself.
    A path that does not convolves one (H, W) matrix with one (kh, kw)
    kernel: ``plan(geometry, kernel, batch, dtype, settings)`` returns a
    ``driver.Plan`` (or raises ValueError where the path does not take the
    kernel or dtype), ``run(source, kernel, geometry, out, plan)`` fills
    ``out`` (N, H_out, W_out) from ``source`` (a ``padding.Padded``) as
    planned; a layer runs it once per pair of channels. One that does:
    ``plan(images, kernel_shape, geometry, groups, padding_mode, fill_value,
    dtype, settings)`` (raising ValueError where the path does not take the
    layer: 'winograd' takes 3 x 3 kernels at stride 1 only) and
    ``run(images, kernel, geometry, groups, padding_mode, fill_value, dtype,
    bias, out, plan)``, on (N, C_in, H, W).
    """
    plan: Callable
    run: Callable
    channels: bool = False


#: The fast paths by name; ``conv2d(..., method=name)`` picks one.
PATHS = {
    "direct": Path(direct.plan, direct.run),
    "polyphase": Path(polyphase.plan, polyphase.run),
    "banded": Path(banded.plan, banded.run),
    "separable": Path(separable.plan, separable.run),
    "fft": Path(fft.plan, fft.run),
    "matmul": Path(layer.plan, layer.conv2d, channels=True),
    "winograd": Path(winograd.plan, winograd.conv2d, channels=True),
}


class GradientPath(NamedTuple):
    """A path of the kernel's gradient (``operations.kernel_gradient`` ranks them).

    ``plan(images, kernel_shape, geometry, groups, padding_mode, fill_value,
    dtype, settings)`` returns a ``driver.Plan`` (or raises ValueError where
    the path does not take the dtype or size); ``run(grad_output, images,
    kernel_shape, geometry, groups, padding_mode, fill_value, dtype, plan)``
    returns the gradient, of ``kernel_shape``.
    """
    plan: Callable
    run: Callable


#: The paths of the kernel's gradient by name: per tap, by shifted copies, by one FFT, by
#: Winograd's F(3 x 3, 2 x 2).
GRADIENT_PATHS = {
    "taps": GradientPath(layer.plan_kernel_gradient, layer.kernel_gradient),
    "shifts": GradientPath(gradients.plan_shifts, gradients.shifts),
    "fft": GradientPath(gradients.plan_fft, gradients.fft),
    "winograd": GradientPath(winograd_gradient.plan, winograd_gradient.kernel_gradient),
}
#: The names of the paths of a 2-D kernel (that do no sums over channels).
METHODS = tuple(name for name, path in PATHS.items() if not path.channels)
#: The names of the paths of a layer that do the sums over channels themselves.
CHANNEL_METHODS = tuple(name for name, path in PATHS.items() if path.channels)


def plan(method, geometry, kernel, batch=1, dtype=None):
    """The plan of path ``method``: its strips, its threads, its estimated time (ns).

    Raises ValueError where the path does not take this kernel or dtype.
    Cached on the arguments and on the settings and threads in force.
    """
    dtype = np.dtype(dtype or kernel.dtype)
    s = _settings.current()
    if kernel.size > CACHED_CELLS:
        return PATHS[method].plan(geometry, kernel, batch, dtype, s)
    return _plan(kernel, method, geometry, batch, dtype.str, driver.threads(), s)


@kernel_cache(maxsize=1024)
def _plan(kernel, method, geometry, batch, dtype, threads, s):
    return PATHS[method].plan(geometry, kernel, batch, np.dtype(dtype), s)


def _candidates(kernel, dtype):
    """The paths 'auto' weighs for this kernel and dtype, decided from the kernel alone.

    Checked before anything is computed from the kernel: a kernel holding NaN
    or infinity, or of a dtype LAPACK and BLAS do not take (longdouble),
    leaves the tap loops, which handle every value and dtype.
    """
    names = ["direct", "polyphase"]
    if kernel.dtype.kind in "iub":
        return names + (["separable"] if separable.rank_terms(kernel) is not None else [])
    if dtype not in BLAS_DTYPES or not np.isfinite(kernel).all():
        return names
    names.append("banded")
    terms = separable.rank_terms(kernel)
    if terms is not None and len(terms) * sum(kernel.shape) < kernel.size:
        names.append("separable")
    if fft.exact_enough(dtype):
        names.append("fft")
    return names


def cost_estimates(kernel, geometry, batch=1):
    """{method: estimated ns} for every path 'auto' weighs for these arguments.

    Each is the path's own plan's estimate (`plan`), threads included.
    """
    dtype = kernel.dtype
    return {name: plan(name, geometry, kernel, batch, dtype).ns
            for name in _candidates(kernel, dtype)}


def all_finite(images, fill_value=0):
    """Whether ``images`` and ``fill_value`` hold only finite numbers.

    One sum first: it is finite only if every term is (a NaN or an infinity
    makes it NaN or infinite), and costs no temporary array. Only a sum that
    overflowed needs the cell-by-cell check.
    """
    if images.dtype.kind not in "fc":
        return True
    if not np.isfinite(fill_value):
        return False
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.isfinite(np.add.reduce(images, axis=None))
                    or np.isfinite(images).all())


def fft_surprise_free(images, geometry, dtype, fill_value, s):
    """Whether the FFT's error stays near the direct sums' on these data.

    The FFT's rounding error bounds each output by a few units of float64
    precision times the largest terms in its whole tile, where the direct
    sums' is relative to the output's own window. They differ where a tile
    holds values far larger than some window in it sees. The data are cut
    into blocks half the kernel's span on a side, each of which some window
    holds whole; the largest value over the smallest block maximum (blocks of
    zeros aside: their outputs get an absolute error at the bound instead of
    an exact 0) must stay within ``Settings.fft_range`` units of the result
    dtype's precision against float64's. A pass over the data, in chunks of rows.

    Each block's maximum is taken along its rows first (an elementwise
    maximum of whole rows, which NumPy vectorises), then along its columns,
    on what is left (a sixteenth of the cells for a 31 x 31 kernel): 1024 x
    1024 float32 in 0.9 ms, against 4.2 for one reduction over both axes of
    the blocks.
    """
    span_h, span_w = geometry.span
    bh, bw = span_h // 2 + 1, span_w // 2 + 1
    n, height, width = images.shape
    largest, smallest = abs(fill_value), math.inf
    step = max(bh, (2 ** 20 // max(width * images.itemsize, 1)) // bh * bh)
    for top in range(0, height, step):
        chunk = np.abs(images[:, top:top + step])
        rows, cols = chunk.shape[1] // bh * bh, width // bw * bw
        if rows < chunk.shape[1]:       # the rows below the last whole block
            largest = max(largest, float(chunk[:, rows:].max()))
        if rows:
            columns = np.maximum.reduce(chunk[:, :rows].reshape(n, rows // bh, bh, width),
                                        axis=2)
            largest = max(largest, float(columns.max()))
            if cols:
                maxima = columns[..., :cols].reshape(n, rows // bh, cols // bw, bw).max(axis=3)
                maxima = maxima[maxima > 0]
                if maxima.size:
                    smallest = min(smallest, float(maxima.min()))
    if smallest == math.inf:
        return True
    allowed = float(s.fft_range * np.finfo(dtype).eps / np.finfo(np.float64).eps)
    return largest <= allowed * smallest


def choose_method(kernel, geometry, batch=1, images=None, fill_value=0):
    """The path 'auto' takes, and its plan: the cheapest plan whose conditions the data meet.

    ``kernel`` is in the dtype of the computation. ``images`` (N, H, W) are
    the data, when known (their batch size then replaces ``batch``); without
    them, data that meet every condition are assumed. Only 'fft' has
    conditions: float data (its rounding error is relative to the largest
    value in a tile, which an integer near 2**63 would make useless for the
    small ones), finite (it would spread a NaN or an infinity over the whole
    tile), and not too far apart within a tile (`fft_surprise_free`).
    'banded' and 'separable' do any strip whose input holds NaN or infinity
    tap by tap, so these reach exactly the outputs whose window holds them.

    Returns ``(method, plan)``.
    """
    dtype = kernel.dtype
    if images is not None:
        batch = images.shape[0]
    s = _settings.current()
    ranked = (_ranked.__wrapped__ if kernel.size > CACHED_CELLS else _ranked)(
        kernel, geometry, batch, driver.threads(), s)
    for name, chosen in ranked:
        if name == "fft" and images is not None and (
                images.dtype.kind not in "fc" or not all_finite(images, fill_value)
                or not fft_surprise_free(images, geometry, dtype, fill_value, s)):
            continue
        return name, chosen
    raise AssertionError("the tap loops take every kernel")


@kernel_cache(maxsize=1024)
def _ranked(kernel, geometry, batch, threads, s):
    """((method, plan), ...) for every path 'auto' weighs, the cheapest first (cached).

    The paths are ranked by their estimates on one thread: the work decides
    the path, and then the path's own plan decides how many threads share
    it. Ranked with their threads, a path that makes more work would look
    cheaper for taking more threads (one per ``Settings.thread_ns`` of work),
    and a machine whose cores share the work worse than the model assumes
    (measured on 16 cores: 11x11 at 1024² took 2.7x as long on 16 threads,
    by the FFT, as on 4 by the band products) would get slower with more
    threads. Each plan returned has the threads of the call.
    """
    names = _candidates(kernel, kernel.dtype)
    with driver.limit_threads(1):
        alone = {name: plan(name, geometry, kernel, batch, kernel.dtype).ns for name in names}
    ranked = sorted(names, key=lambda name: alone[name] * (s.fft_margin if name == "fft"
                                                           else 1))
    return tuple((name, plan(name, geometry, kernel, batch, kernel.dtype)) for name in ranked)


def convolve(matrix, kernel, geometry, padding_mode, fill_value, dtype, method="auto",
             result_dtype=None, out=None):
    """Run a fast path: ``matrix`` (..., H, W) with ``kernel`` in ``dtype``.

    The entry point from ``conv2d``, which has validated every argument.
    Returns a new array of shape (..., H_out, W_out) and dtype
    ``result_dtype`` (default ``dtype``). A result narrower than ``dtype``
    (float16, accumulated in float32) is computed a block of rows at a time
    and rounded into the result block by block, so that no whole output of
    ``dtype`` is ever held: memory beyond input and output stays within the
    result's size. ``out`` (N, H_out, W_out) of ``dtype``, for a 3-D
    ``matrix``: where to write (a strided view will do); returned.
    """
    result_dtype = np.dtype(result_dtype or dtype)
    batch_shape = matrix.shape[:-2]
    images = matrix.reshape((-1,) + matrix.shape[-2:])
    if out is None:
        out = np.empty((images.shape[0],) + geometry.output_shape, result_dtype)
    source = Padded(images, geometry.padding, padding_mode, fill_value)
    if kernel.dtype.kind in "iub" and not kernel.any():      # an integer kernel of zeros
        out[...] = 0
        return out.reshape(batch_shape + geometry.output_shape)
    if method == "auto":
        method, chosen = choose_method(kernel, geometry, images=images, fill_value=fill_value)
    else:
        chosen = plan(method, geometry, kernel, images.shape[0], dtype)
    height = geometry.output_shape[0]
    block = height
    if result_dtype.itemsize < np.dtype(dtype).itemsize and out.nbytes > _BLOCK_BYTES:
        block = max(1, math.ceil(height / math.ceil(out.nbytes / _BLOCK_BYTES)))
    if block == height:
        if result_dtype == dtype:
            PATHS[method].run(source, kernel, geometry, out, chosen)
        else:
            wide = np.empty(out.shape, dtype)
            PATHS[method].run(source, kernel, geometry, wide, chosen)
            out[...] = wide
        return out.reshape(batch_shape + geometry.output_shape)
    sh = geometry.stride[0]
    for top in range(0, height, block):
        rows = min(block, height - top)
        part = geometry._replace(output_shape=(rows, geometry.output_shape[1]))
        wide = np.empty((images.shape[0], rows, geometry.output_shape[1]), dtype)
        PATHS[method].run(source.shifted(top * sh), kernel, part, wide,
                          plan(method, part, kernel, images.shape[0], dtype))
        out[:, top:top + rows] = wide
        del wide        # before the next block's is taken
    return out.reshape(batch_shape + geometry.output_shape)


#: A result narrower than its computation is computed in blocks of rows of
#: about this many bytes of the result (`convolve`).
_BLOCK_BYTES = 2 ** 21
