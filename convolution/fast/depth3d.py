"""A 3-D filter with its depth and height taps folded into one matrix product per slice (BLAS).

The idea
--------
``out[z, i, j] = sum of kernel[a, b, c] * padded[z*sd + a*dd, i*sh + b*dh, j*sw + c*dw]``.
Lay every padded row out ``kw`` times, once per width tap, shifted by that
tap's offset (``padded[p, line, j*sw + c*dw]`` for ``c < kw``: the only
copy, ``kw`` cells per input cell). Keep the ``kd`` slices one output slice
reads in a *ring* of ``kd`` slots, interleaved line by line:

.. code-block:: text

    ring[line, slot, c, j] = padded[p, line, j*sw + c*dw]    (slice p in slot p mod kd)

For one line, its ``kd * kw`` shifted rows lie one after the other, and the
next line follows them: ``(line, slot, c)`` is a single axis of rows, a row
apart each. So the rows that a group of ``R`` output rows of slice ``z``
reads through every depth tap (``(R - 1) * sh + (kh - 1) * dh + 1`` lines
from line ``g * R * sh``, each with its ``kd * kw`` rows) are one block of
that axis, and those blocks of every group are one strided view of the ring
(the groups overlap; nothing is copied). A band matrix (row ``r`` holds
``kernel[a, b, c]`` at line ``r*sh + b*dh``, slot ``(z*sd + a) mod kd``)
times that view is the slice's output, every depth tap summed inside BLAS:

.. code-block:: text

    out[z].reshape(groups, R, Wo) = band[(z*sd) mod kd] @ view(ring)     # one np.matmul

The ``kd`` rotations of the band are worked out once per kernel. Stepping to
the next output slice brings in its ``sd`` new slices, each into the slot of
the slice it replaces: every input slice is laid out once (the first
slices of a strip fill its ring), no partial sums are added up afterwards,
and the ring stays in cache. With a depth dilation ``dd``, the slices one
output reads are ``dd`` apart, all of one residue ``z*sd mod dd``: there is
a ring per residue (slice ``p`` in ring ``p mod dd``, slot ``(p // dd) mod kd``).

Cost per output
---------------
``kd * kw * ((R - 1) * sh + (kh - 1) * dh + 1)`` multiply-adds through BLAS
(``R = Settings.depth_rows`` rows a group; the band's zeros are the price of
the matrix form: ``((R - 1) * sh + (kh - 1) * dh + 1) / kh`` times the
``kd * kh * kw`` of the sums, ``(R + kh - 1) / kh`` at stride and dilation 1), plus ``kw``
copied cells per input cell, and one ``np.matmul`` call per output slice.
Memory: the rings, ``dd * kd`` slices of ``kw`` shifted rows each (and a
few padded slices, within ``Settings.strip_bytes``, where the rows and
columns are padded), per strip of the driver; the volume's border is never
built whole. The strips (output
slices) are there for the driver's threads to share: each fills its own
ring, which costs ``(kd - 1) * dd + 1 - sd`` slices of copies more a strip.

Limits
------
Real float32 and float64 filters (BLAS). A product also multiplies the
band's zeros by every cell it reads, so a NaN or an infinity would reach a
whole group: slices whose outputs are not all finite are done again tap by
tap, from their slices fetched again into a ring, so that NaN and infinity
reach exactly the outputs whose window holds them. Single-channel work
only; layers go through the 2-D layer path, one depth tap at a time.
"""
import numpy as np

from .. import driver, settings as _settings
from ..padding import Padded, source_map
from .cache import kernel_cache
from .costs import FETCH_CALLS, cell_scale, products

__all__ = ["applies", "convolve"]


def applies(geometry, s=None):
    """Whether the band stays small: its zeros cost at most about 3 times the sums."""
    rows = (s or _settings.current()).depth_rows
    (_, kh, _), (_, sh, _), (_, dh, _) = (geometry.kernel_shape, geometry.stride,
                                          geometry.dilation)
    return ((rows - 1) * sh + (kh - 1) * dh + 1) <= 3 * kh


@kernel_cache()
def _bands(kernel, sh, dh, rows):
    """``band[rot][r, (line, slot, c)] = kernel[a, b, c]``, at ``line = r*sh + b*dh``.

    One band per rotation of the ring: ``rot`` is the slot of the output
    slice's first depth tap, and tap ``a`` lies in slot ``(rot + a) mod kd``.
    """
    kd, kh, kw = kernel.shape
    lines = (rows - 1) * sh + (kh - 1) * dh + 1
    bands = np.zeros((kd, rows, lines, kd, kw), kernel.dtype)
    for rot in range(kd):
        for r in range(rows):
            for b in range(kh):
                bands[rot, r, r * sh + b * dh, (rot + np.arange(kd)) % kd, :] = kernel[:, b, :]
    bands = bands.reshape(kd, rows, lines * kd * kw)
    bands.flags.writeable = False
    return bands


class _Slices:
    """The padded slices of one volume, each as ``kw`` shifted copies of its rows' reads.

    ``rows(p)`` is a view (lines, kw, Wo): ``padded[p, line, j*sw + c*dw]``
    at ``[line, c, j]``, of the volume itself where its rows and columns are
    not padded, else of ``planes`` (B, lines, columns), where `Padded` makes
    the padded slice ``p`` first, with the next ones of its run (up to B, in
    one call: fetching slice by slice, the call's own work took longer than
    its copies).
    """

    def __init__(self, volume, geometry, padding_mode, fill_value, dtype, lines, planes):
        (_, _, kw), (_, _, sw), (_, _, dw) = (geometry.kernel_shape, geometry.stride,
                                              geometry.dilation)
        width = geometry.output_shape[2]
        self.source = source_map(geometry.input_shape[0], *geometry.padding[0], padding_mode)
        self.fill_value, self.dtype, self.lines = fill_value, dtype, lines
        self.padded, self.staged = None, range(0)     # the input slices in ``planes``
        if planes is None:        # no border in the slices: read them in place
            base = volume
        else:
            self.padded = Padded(volume, geometry.padding[1:], padding_mode, fill_value)
            self.planes, base = planes, planes
        strides = base.strides
        self.windows = np.lib.stride_tricks.as_strided(
            base, (len(base), lines, kw, width),
            (strides[0], strides[1], dw * strides[2], sw * strides[2]), writeable=False)

    def rows(self, p):
        """The shifted rows of padded slice ``p``, or None where it is the fill."""
        index = int(self.source[p])
        if index < 0:
            return None
        if self.padded is None:
            return self.windows[index]
        if index not in self.staged:
            # Slice p and the next ones of its run of input slices, in one call.
            count = 1
            while (count < len(self.planes) and p + count < len(self.source)
                   and self.source[p + count] == index + count):
                count += 1
            self.staged = range(index, index + count)
            self.padded.region(slice(index, index + count), range(0, self.lines),
                               range(0, self.planes.shape[2]), self.dtype,
                               out=self.planes[:count])
        return self.windows[index - self.staged.start]


def _fetch(slices, p, slot):
    """``slot`` (lines, kw, Wo) of a ring = padded slice ``p``'s shifted rows."""
    rows = slices.rows(p)
    if rows is None:
        slot[...] = slices.fill_value
    else:
        slot[...] = rows


def _taps(ring, kernel, geometry, height, out):
    """One output slice tap by tap, its depth tap ``a`` in ``ring[:, a]``: exact NaN placement."""
    (_, sh, _), (_, dh, _) = geometry.stride, geometry.dilation
    out[...] = 0
    for a in range(kernel.shape[0]):
        for b in range(kernel.shape[1]):
            rows = slice(b * dh, b * dh + (height - 1) * sh + 1, sh)
            for c in range(kernel.shape[2]):
                out += kernel[a, b, c] * ring[rows, a, c, :]


def convolve(matrix, kernel, geometry, padding_mode, fill_value, dtype):
    """conv3d's filter: ``matrix`` (..., D, H, W) with ``kernel`` (kd, kh, kw) in ``dtype``.

    Returns a new array (..., D_out, H_out, W_out) of ``dtype``. The output
    slices are cut into the driver's strips, each done slice by slice
    through its own rings, on the driver's threads.
    """
    s = _settings.current()
    dtype = np.dtype(dtype)
    volumes = matrix.reshape((-1,) + matrix.shape[-3:])
    kd, kh, kw = kernel.shape
    (sd, sh, _), (dd, dh, _) = geometry.stride, geometry.dilation
    depth, height, width = geometry.output_shape
    rows = min(s.depth_rows, height)
    whole, rest = divmod(height, rows)        # groups of R rows, and the rows of a last one
    lines = (height - 1) * sh + (kh - 1) * dh + 1      # the padded lines the outputs read
    bands = _bands(kernel, sh, dh, rows)
    last = _bands(kernel, sh, dh, rest) if rest else None
    columns = (width - 1) * geometry.stride[2] + (kw - 1) * geometry.dilation[2] + 1
    padded_planes = any(geometry.padding[1]) or any(geometry.padding[2])
    out = np.empty((volumes.shape[0],) + geometry.output_shape, dtype)
    slice_cells = lines * kw * width
    work = driver.Work(
        # A strip's memory is its rings, whatever its rows: strips are there for the threads.
        row_bytes=1, extra_rows=(kd - 1) * dd + 1,
        row_ns=(products(height * width * bands.shape[2], bands[0].nbytes, dtype, s)
                + cell_scale(dtype) * sd * slice_cells * s.fetch_ns),
        calls=4 + 2 * dd,
        # Per output slice: its product (two with a last group) and its sd new slices.
        row_calls=1 + (rest > 0) + sd * (FETCH_CALLS if padded_planes else 1),
        fixed_ns=4 * s.call_ns)
    plan = driver.plan(len(volumes), depth, out.nbytes, work, s)

    def strip(arena, batch, block):
        # On the thread that runs the strip (errstate is per thread): the band's zeros
        # times an infinity.
        with np.errstate(invalid="ignore", over="ignore"):
            block_of_slices(arena, batch, block)

    def block_of_slices(arena, batch, block):
        rings = arena.take((dd, lines, kd, kw, width), dtype)
        # Padded slices, the lines and columns the outputs read, where they have a border:
        # a few at a time (within a strip's bytes) where the outputs read every slice.
        few = min(8, s.strip_bytes // (lines * columns * dtype.itemsize)) if (
            dd == 1 and sd <= kd) else 1
        planes = arena.take((max(1, few), lines, columns), dtype) if padded_planes else None
        # (g, (line, slot, c), j) of each ring: from line g*R*sh, a row apart all along.
        step = rings.strides[3]
        heads = [np.lib.stride_tricks.as_strided(
            ring, (whole, bands.shape[2], width), (rows * sh * ring.strides[0], step,
                                                   ring.strides[3]), writeable=False)
                 for ring in rings]
        tails = [np.lib.stride_tricks.as_strided(
            ring[whole * rows * sh:], (last.shape[2], width), (step, ring.strides[3]),
            writeable=False) for ring in rings] if rest else None
        for n in range(*batch.indices(len(volumes))):
            slices = _Slices(volumes[n], geometry, padding_mode, fill_value, dtype, lines,
                             planes)
            held = [[-1] * kd for _ in range(dd)]       # the padded slice in each slot
            heads_out = out[n, :, :whole * rows].reshape(depth, whole, rows, width)
            tails_out = out[n, :, whole * rows:]
            for z in range(block.start, block.stop):
                # Its slices z*sd + a*dd: ring q, from place `first` of the slices there.
                q, first = z * sd % dd, z * sd // dd
                for a in range(kd):
                    slot = (first + a) % kd
                    if held[q][slot] != z * sd + a * dd:
                        held[q][slot] = z * sd + a * dd
                        _fetch(slices, z * sd + a * dd, rings[q, :, slot])
                np.matmul(bands[first % kd], heads[q], out=heads_out[z])
                if rest:
                    np.matmul(last[first % kd], tails[q], out=tails_out[z])
            result = out[n, block]
            if not np.isfinite(np.add.reduce(result, axis=None)):
                # NaN or infinity: those slices tap by tap, exactly, their depth tap a in slot a
                for z in block.start + np.flatnonzero(~np.isfinite(result).all(axis=(1, 2))):
                    for a in range(kd):
                        _fetch(slices, z * sd + a * dd, rings[0, :, a])
                    _taps(rings[0], kernel, geometry, height, out[n, z])

    with driver.single_threaded_blas(s.limit_blas):
        driver.run(strip, plan)
    return out.reshape(matrix.shape[:-3] + geometry.output_shape)
