"""Stride phases and flat multiply-adds: the pieces the tap-by-tap paths share.

Tap ``(a, b)`` of output cell ``(i, j)`` reads padded cell
``(i*sh + a*dh, j*sw + b*dw)``: always a cell of one stride phase,
``(a*dh % sh, b*dw % sw)``, at a fixed offset ``(a*dh // sh, b*dw // sw)``
in it (``geometry.stride_phase``). Laid out flat, each phase block ``row_width``
cells a row, the taps of a phase then read contiguous runs of one block:
a tap is one multiply-add over a 1-D run (`multiply_add`).
"""
import functools

import numpy as np

from ..dtypes import BLAS_DTYPES
from ..geometry import stride_phase
from .cache import kernel_cache

__all__ = ["taps", "phases", "tap_phases", "phase_blocks", "offsets", "multiply_add",
           "may_hold_nonfinite", "finite", "all_finite", "sums_finite", "ones",
           "group_operands", "band_products",
           "even_step", "padded_width"]


def multiply_add(acc, terms, scratch, out=None):
    """``acc.flat[:L] = sum of w * block.flat[o:o + L]`` over ``terms`` of (block, o, w).

    Every block has ``acc``'s shape (N, rows, width); ``L`` is its size less
    the largest offset, so no read runs past a block's end. The cells of
    ``acc`` from ``L`` on are set to zero: margins no caller reads, kept finite.

    With ``out`` (N, R, W), the last term is added straight into it, on the
    cells that are results (``acc[:, :R, :W]``): one pass less than finishing
    ``acc`` and copying those cells out.
    """
    if out is not None:
        *terms, (block, offset, weight) = terms
        width = acc.shape[2]
        a, b = divmod(offset, width)
        view = (slice(None), slice(a, a + out.shape[1]), slice(b, b + out.shape[2]))
        np.multiply(block[view], weight, out=out)
        if terms:
            multiply_add(acc, terms, scratch)
            out += acc[:, :out.shape[1], :out.shape[2]]
        return
    length = acc.size - max(offset for _, offset, _ in terms)
    flat, scratch = acc.reshape(-1), scratch.reshape(-1)[:length]
    flat[length:] = 0
    flat = flat[:length]
    for k, (block, offset, weight) in enumerate(terms):
        source = block.reshape(-1)[offset:offset + length]
        if k == 0:
            np.multiply(source, weight, out=flat)
        else:
            np.multiply(source, weight, out=scratch)
            flat += scratch


def taps(kernel):
    """The kernel's taps as ``((a, b), weight)``; zero taps are dropped for integers.

    A zero weight still matters for floats: 0 * inf and 0 * nan are nan.
    """
    found = list(np.ndenumerate(kernel))
    if kernel.dtype.kind in "iub":
        found = [(index, weight) for index, weight in found if weight != 0]
    return found


def phases(weighted_taps, stride, dilation):
    """Group taps by the stride phase they read: {(q, r): [(row offset, col offset, w)]}."""
    (sh, sw), (dh, dw) = stride, dilation
    grouped = {}
    for (a, b), weight in weighted_taps:
        (q, row), (r, col) = stride_phase(a * dh, sh), stride_phase(b * dw, sw)
        grouped.setdefault((q, r), []).append((row, col, weight))
    return grouped


@kernel_cache()
def _tap_phases(kernel, stride, dilation):
    return phases(taps(kernel), stride, dilation)


def tap_phases(kernel, geometry):
    """`phases` of the kernel's taps for this geometry (cached; read-only, shared)."""
    return _tap_phases(kernel, geometry.stride, geometry.dilation)


def phase_blocks(arena, source, batch, first_row, n_rows, row_width, grouped, stride, dtype):
    """The strip's stride phases that ``grouped`` reads, each (N, n_rows, row_width)."""
    sh, sw = stride
    shape = (len(range(*batch.indices(source.matrix.shape[0]))), n_rows, row_width)
    return {(q, r): source.region(batch, range(first_row + q, first_row + q + sh * n_rows, sh),
                                  range(r, r + sw * row_width, sw), dtype,
                                  out=arena.take(shape, dtype))
            for q, r in grouped}


def offsets(grouped, row_width, blocks):
    """Flat multiply-add terms: each tap's phase block and offset in it."""
    return [(blocks[phase], a * row_width + b, weight)
            for phase, found in grouped.items() for a, b, weight in found]


def may_hold_nonfinite(source):
    """Whether regions of ``source`` (a Padded) can hold NaN or infinity: not for integer data."""
    return source.matrix.dtype.kind in "fc" or not np.isfinite(source.fill_value)


def finite(flags, block):
    """Whether ``block`` holds only finite numbers; ``flags``: a bool buffer at least as large."""
    return bool(np.isfinite(block, out=flags[:block.size].reshape(block.shape)).all())


def padded_width(geometry):
    """The padded input's width."""
    return geometry.input_shape[1] + sum(geometry.padding[1])


def all_finite(values):
    """Whether ``values`` hold only finite numbers: one sum, cell by cell only if it overflowed.

    The sum is finite only if every term is (a NaN or an infinity makes it
    NaN or infinite). For floats BLAS takes, each row's sum is a product with
    ones, about twice as fast as ``np.add.reduce`` on float32 rows in cache.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        return sums_finite(values)


def sums_finite(values):
    """`all_finite`, for a caller already inside ``np.errstate(over='ignore', invalid='ignore')``.

    The strips of the banded paths check each block they fetch with it: a
    microsecond less a block than `all_finite`, which sets the error state
    itself.
    """
    if values.ndim > 1 and values.shape[-1] > 1 and values.dtype in BLAS_DTYPES:
        total = np.add.reduce(np.matmul(values, ones(values.shape[-1], values.dtype.str)),
                              axis=None)
    else:
        total = np.add.reduce(values, axis=None)
    return bool(np.isfinite(total) or np.isfinite(values).all())


@functools.lru_cache(maxsize=64)
def ones(length, dtype):
    """A read-only vector of ``length`` ones of ``dtype`` (cached)."""
    found = np.ones(length, dtype)
    found.flags.writeable = False
    return found


def group_operands(shifted, depth, rows, groups):
    """The operands of ``groups`` groups' products: (N, groups, depth, width), a view of
    ``shifted``.

    ``shifted`` (N, lines, ..., width), C-contiguous, whose axes after the
    lines flatten to ``depth / (rows + reach)`` shifted rows of each line:
    group g multiplies the ``depth`` rows from line ``g * rows`` on, so the
    groups' operands overlap and nothing is copied twice. Made once a strip
    (or tile), for all its products.
    """
    return np.ndarray((shifted.shape[0], groups, depth, shifted.shape[-1]), shifted.dtype,
                      shifted, 0, (shifted.strides[0], shifted.strides[1] * rows,
                                   shifted.strides[-2], shifted.itemsize))


def band_products(band, operands, here, top, count, rows, target, sums=None):
    """``here`` groups of ``rows`` output rows: the band times each group's shifted rows.

    ``band`` (rows, depth); ``operands`` (N, >= here, depth, width), the
    groups' shifted rows (`group_operands`). The results go to ``target``
    (N, count, width) from row ``top``: whole groups straight in, the
    image's last group, part of one, through a temporary. ``sums`` (N,
    count), if given, gets the results' row sums (a product with ones) while
    they are in the cache: the banded paths' NaN gate.
    """
    n, width = target.shape[0], target.shape[2]
    whole = min(here * rows, count - top) // rows
    if whole:
        np.matmul(band, operands[:, :whole],
                  out=target[:, top:top + whole * rows].reshape(n, whole, rows, width))
    if whole < here:      # the image's last rows: part of a group
        last = np.matmul(band, operands[:, whole:here])
        target[:, top + whole * rows:] = last[:, 0, :count - top - whole * rows]
    if sums is not None:
        np.matmul(target[:, top:top + here * rows], ones(width, target.dtype.str),
                  out=sums[:, top:top + here * rows])


def even_step(values):
    """The common difference of ``values`` if they are evenly spaced, else None."""
    steps = {b - a for a, b in zip(values, values[1:])}
    return steps.pop() if len(steps) == 1 else 0 if not steps else None
