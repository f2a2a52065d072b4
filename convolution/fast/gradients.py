"""The kernel's gradient: the input correlated with the output's gradient, two ways.

The sum
    ``grad[o, c, a, b] = sum over n, i, j of g[n, o, i, j] * padded[n, c', i*sh + a*dh,
    j*sw + b*dw]``, with ``g`` the gradient of ``conv2d``'s output: for each
    tap, the sum of the output's gradient times the cells that tap met. It is
    a correlation whose kernel (``g``) is as large as the image and whose
    result (the kernel) is small: kh * kw multiply-adds per output cell, like
    the forward pass, but with nothing to reuse from one tap to the next
    unless the taps are made to share their operands.

'shifts': small matrix products of the input read in place and a few shifted copies
    Lay the padded input's stride phase out in rows of ``row_width`` cells
    (``W_out`` plus the kernel's reach in the phase), and the output's
    gradient alike, zeros beyond ``W_out``. For output row ``i``, tap
    ``(a, b)`` at offset ``(a', b')`` in its phase sums::

        grad[a, b] += sum over u of  x[i + a', u + b']  *  g[i, u]

    The rows ``x[i + a']`` of every row tap are rows of the input, ``row_width``
    cells apart: in place, they are a (row_width x kh) matrix. The column
    shift ``b'`` is split, ``b' = b0 + B * v``: the gradient's row moved by
    ``b0`` (B copies, ``_split``), against the input's rows read ``B * v``
    cells further on (in place again, a matrix per ``v``). So each output row
    is ``kw / B`` products (B x row_width) @ (row_width x kh), one NumPy call a
    strip (a batch of products), and every tap's sum an entry of them:
    B copies of the gradient buy kh * kw multiply-adds per cell inside BLAS,
    instead of kh * kw passes over memory. Few copies (B about kw / 6, at
    least 2) measured fastest: wider products do more per call, and each
    copy is a pass over the strip (`_COLUMNS_PER_COPY`). Channels and groups
    are rows of the same products, (C_out/g B x row_width) @ (row_width x kh) per
    input channel; the batch and the rows are summed as the strips are.

    Cost per output cell: B copies and kh * kw multiply-adds in small BLAS
    products, about 10**4 each, which NumPy calls in a loop of its own. On
    one thread: small products from two threads wait for each other in
    OpenBLAS.

    Limits: finite float data only (the zeros beyond ``W_out`` multiply real
    cells of the input; an infinite one would make NaN where the reference
    loops add nothing: ``operations.kernel_gradient`` then computes the
    gradient again by the taps, which multiply exactly the cells each tap
    met). Integers take the taps too. Memory: a strip's copies, a few MiB.

'fft': one transform of the whole padded image
    The same sums are the correlation of the padded input with the gradient
    spread by the stride, at lags ``(a*dh, b*dw)``: the product of their
    spectra. Transforms of the padded size (rounded up to a fast length) see
    no wrap-around at these lags, for no lag plus gradient cell passes the
    padded input's edge. Of the inverse only the kh lags' rows are kept
    before its second axis is transformed back.

    Cost: a real transform of the padded image per image and channel, one of
    the gradient per image and output channel, whatever the kernel's size,
    against kh * kw multiply-adds per cell: as fast as 'shifts' at about
    31 x 31 on 512 x 512 (4 ms, one thread), faster beyond. In float64
    (float32 data included), through ``scipy.fft`` where installed
    (numpy.fft otherwise).

    Limits: finite float data of moderate range only. Its error is relative
    to the norms of the whole input and gradient, where the direct sums' is
    relative to their own terms; `fft` compares the two first (`_accurate`)
    and leaves data it would not do well to the other paths. Memory: the
    spectra of one image's channels and of each pair of channels.
"""
import functools
import math

import numpy as np

from .. import driver
from ..padding import Padded
from ..geometry import stride_phase
from .costs import cell_scale, mac_scale, transforms

__all__ = ["plan_shifts", "shifts", "plan_fft", "fft"]


def _axis_taps(size, stride, dilation):
    """``{phase: [(tap, offset in the phase), ...]}`` along one axis (``geometry.stride_phase``)."""
    grouped = {}
    for tap in range(size):
        phase, offset = stride_phase(tap * dilation, stride)
        grouped.setdefault(phase, []).append((tap, offset))
    return grouped


class _Layout:
    """How `shifts` lays out a strip: its phases, its row width, its copies and products."""

    def __init__(self, shape, kernel_shape, geometry, groups, dtype):
        self.in_channels = shape[1]
        self.out_channels, self.per_in, kh, kw = kernel_shape
        self.groups, self.dtype = groups, np.dtype(dtype)
        self.per_out = self.out_channels // groups
        self.rows = _axis_taps(kh, geometry.stride[0], geometry.dilation[0])
        self.cols = _axis_taps(kw, geometry.stride[1], geometry.dilation[1])
        self.reach_h = max(offset for taps in self.rows.values() for _, offset in taps)
        self.reach_w = max(offset for taps in self.cols.values() for _, offset in taps)
        self.width = geometry.output_shape[1]
        self.row_width = self.width + self.reach_w
        self.taps = kh * kw
        #: Per column phase: (copies of the gradient, views of the input), product B * views
        #: covering its taps; ``slack``: cells the views read past a block's last row.
        self.split = {r: _split(len(cols)) for r, cols in self.cols.items()}
        #: Per phase of rows (of columns): its first offset and the step between its taps'.
        self.row_steps = {q: _progression([o for _, o in taps]) for q, taps in self.rows.items()}
        self.col_steps = {r: _progression([o for _, o in taps]) for r, taps in self.cols.items()}
        self.slack = max(self.col_steps[r][1] * copies * (views - 1)
                         for r, (copies, views) in self.split.items())

    def row_bytes(self):
        """Bytes of buffers per output row of one image: phases, shifted gradient, products."""
        phases = len(self.rows) * len(self.cols)
        copies = sum(c for c, _ in self.split.values())
        products = sum(c * v for c, v in self.split.values()) * sum(map(len, self.rows.values()))
        return ((phases * self.in_channels + self.out_channels * copies) * self.row_width
                + self.in_channels * self.per_out * products) * self.dtype.itemsize

    def work(self, s):
        """What a strip costs per output row of one image (`driver.Work`)."""
        phases = len(self.rows) * len(self.cols)
        copies = sum(c for c, _ in self.split.values())
        taps = sum(c * v for c, v in self.split.values()) * sum(map(len, self.rows.values()))
        products = sum(v for _, v in self.split.values()) * len(self.rows) * self.in_channels
        cells = self.row_width * cell_scale(self.dtype)
        row_ns = (cells * (self.out_channels * copies * s.copy_ns
                           + phases * self.in_channels * s.fetch_ns)
                  + self.in_channels * self.per_out * taps
                  * (self.row_width * mac_scale(self.dtype) * s.mac_ns + s.flat_ns)
                  + products * s.product_call_ns)
        return driver.Work(row_bytes=self.row_bytes(), extra_rows=self.reach_h + 1,
                           row_ns=row_ns, calls=3 + copies + 5 * phases)


#: The gradient is copied once per this many of a phase's kernel columns (at least twice):
#: fewer copies, more and narrower products. Measured on a whole image at once, one thread,
#: float32 512 x 512 (float64 256 x 256), ms for 1, 2, 4 and kw copies: 9 x 9 1.25, 0.83,
#: 0.96, 1.16; 15 x 15 2.84, 1.65, 1.45, 2.45 (1.49, 0.79, 0.75, 1.13); 31 x 31 11.0, 5.8,
#: 4.7, 5.6, and 4.5 for 8; 5 x 5 (0.29, 0.23, 0.30, 0.30); for 1, 2, 3 copies, 3 x 3 0.48,
#: 0.43, 0.49.
_COLUMNS_PER_COPY = 6


def _split(columns):
    """``(copies, views)`` for a phase of ``columns`` kernel columns: a power of two of copies."""
    copies = 1 if columns == 1 else max(2, 2 ** math.ceil(math.log2(columns / _COLUMNS_PER_COPY)))
    copies = min(copies, columns)
    return copies, -(-columns // copies)


def plan_shifts(images, kernel_shape, geometry, groups, padding_mode, fill_value, dtype, s):
    """The plan of `shifts`: strips of output rows, threads, the estimate; ``detail`` its layout.

    Raises ValueError for dtypes BLAS does not take (integers, longdouble).
    It depends on the shapes alone: cached on them, the settings and the threads.
    """
    if np.dtype(dtype) not in (np.float32, np.float64, np.complex64, np.complex128):
        raise ValueError(f"the shifted copies' products take BLAS's dtypes, not {dtype}")
    return _plan_shifts(images.shape, tuple(kernel_shape), geometry, groups, np.dtype(dtype).str,
                        driver.threads(), s)


@functools.lru_cache(maxsize=256)
def _plan_shifts(shape, kernel_shape, geometry, groups, dtype, threads, s):
    layout = _Layout(shape, kernel_shape, geometry, groups, dtype)
    out_bytes = (shape[0] * kernel_shape[0] * math.prod(geometry.output_shape)
                 * np.dtype(dtype).itemsize)
    # On one thread: its many small products, called from two threads at once, wait for
    # each other inside OpenBLAS (measured: a layer (8, 16, 64, 64), 3 x 3, 11.1 ms on two
    # threads against 6.0 on one; 9 x 9 at 512, 2.9 against 2.5 for the whole backward).
    with driver.limit_threads(1):
        return driver.plan(shape[0], geometry.output_shape[0], out_bytes, layout.work(s),
                           s)._replace(detail=layout)


def _view(base, start, shape, strides):
    """A read-only view of the C-contiguous ``base`` from its element ``start``.

    What ``as_strided`` makes, with a few microseconds less of Python a call.

    Every element it reaches must lie inside ``base``: the callers see to it.
    """
    view = np.ndarray(shape, base.dtype, base, start * base.itemsize, strides)
    view.flags.writeable = False
    return view


def _progression(offsets):
    """``(first, step)`` of offsets that go up by a constant step (one offset: step 1)."""
    steps = {b - a for a, b in zip(offsets, offsets[1:])}
    assert len(steps) <= 1, offsets     # the taps of one phase are equally spaced
    return offsets[0], steps.pop() if steps else 1


def shifts(grad_output, images, kernel_shape, geometry, groups, padding_mode, fill_value,
           dtype, plan_):
    """The kernel's gradient as products of shifted copies, strip by strip (see the module).

    ``grad_output`` (N, C_out, H_out, W_out), ``images`` (N, C_in, H, W),
    finite; ``plan_`` from `plan_shifts`. Returns an array of
    ``kernel_shape`` (C_out, C_in / groups, kh, kw), of ``dtype``.

    Each thread sums its strips into arrays of its own, added up at the end
    in a fixed order: the result does not depend on which thread took which
    strip.
    """
    layout, s = plan_.detail, plan_.settings
    groups, per_in, per_out = layout.groups, layout.per_in, layout.per_out
    rw, width, reach_h = layout.row_width, layout.width, layout.reach_h
    (sh, sw), channels, out_channels = geometry.stride, images.shape[1], layout.out_channels
    height = geometry.output_shape[0]
    itemsize = np.dtype(dtype).itemsize
    source = Padded(images.reshape((-1,) + images.shape[2:]), geometry.padding, padding_mode,
                    fill_value)
    tasks, workers = plan_.tasks, min(plan_.threads, len(plan_.tasks))
    # Unpadded, at stride 1, the input's rows are the rows the taps read: no copy (but
    # for the last strip, whose views read `slack` cells past the input's end).
    in_place = (geometry.padding == ((0, 0), (0, 0)) and geometry.stride == (1, 1)
                and images.dtype == dtype and images.flags.c_contiguous)
    plane = math.prod(images.shape[2:])
    # Per phase (q, r) and worker: (groups, per_in, views, per_out * copies, row taps).
    totals = [{(q, r): np.zeros((groups, per_in, layout.split[r][1],
                                 per_out * layout.split[r][0], len(rows)), dtype)
               for q, rows in layout.rows.items() for r in layout.cols}
              for _ in range(workers)]

    def strip(arena, batch, out_rows, total):
        n, m = batch.stop - batch.start, out_rows.stop - out_rows.start
        block_rows, cells = m + reach_h, m * rw
        grads = grad_output[batch, :, out_rows].reshape(n * out_channels, m, width)
        shifted = {}
        for r, cols in layout.cols.items():
            # The gradient laid out flat, rw cells a row, moved right by the first `copies`
            # column offsets: one copy each, zeros around its rows. The further columns are
            # the input read further on.
            copies = layout.split[r][0]
            first, step = layout.col_steps[r]
            base = arena.take((n * out_channels, copies, m, rw), dtype)
            for k in range(copies):
                offset = first + k * step
                base[:, k, :, :offset] = 0
                base[:, k, :, offset:offset + width] = grads
                base[:, k, :, offset + width:] = 0
            # Output row i: the (per_out * copies, rw) matrix of its shifted gradients.
            channel = copies * cells * itemsize
            shifted[r] = _view(base, 0, (n, groups, m, 1, 1, per_out * copies, rw),
                               (out_channels * channel, per_out * channel, rw * itemsize, 0, 0,
                                cells * itemsize, itemsize))
        for q, rows in layout.rows.items():
            first_row = out_rows.start * sh + q
            first, step = layout.row_steps[q]
            for r, cols in layout.cols.items():
                copies, views = layout.split[r]
                # The views of the input: each `copies` column offsets further on.
                view_step = copies * layout.col_steps[r][1]
                if in_place and (layout.slack == 0 or out_rows.stop < height):
                    base, cell = images, plane * itemsize
                    start = batch.start * channels * plane + (first_row + first) * rw
                else:
                    block = arena.take((n * channels, block_rows * rw + layout.slack), dtype)
                    source.region(slice(batch.start * channels, batch.stop * channels),
                                  range(first_row, first_row + sh * block_rows, sh),
                                  range(r, r + sw * rw, sw), dtype,
                                  out=block[:, :block_rows * rw].reshape(
                                      n * channels, block_rows, rw))
                    block[:, block_rows * rw:] = 0
                    base, start, cell = block, first * rw, block.shape[1] * itemsize
                # Output row i, input channel c, view v: the rw cells of each row offset
                # (rows of the block, `step` rows apart), as a (rw, row taps) matrix.
                cells_of = _view(base, start, (n, groups, m, per_in, views, rw, len(rows)),
                                 (channels * cell, per_in * cell, rw * itemsize, cell,
                                  view_step * itemsize, itemsize, step * rw * itemsize))
                # One product per output row, input channel and view: (per_out copies, rw)
                # @ (rw, kh), summed over the images and rows.
                total[q, r] += np.matmul(shifted[r], cells_of).sum(axis=(0, 2))

    def worker(arena, index):
        for batch, out_rows in tasks[index::workers]:
            strip(driver.Arena.start(), batch, out_rows, totals[index])

    with driver.single_threaded_blas(s.limit_blas):
        driver.run(worker, driver.Plan([(index,) for index in range(workers)], workers,
                                       plan_.ns, settings=s))
    grad = np.empty(kernel_shape, dtype)
    for (q, r), total in totals[0].items():
        for other in totals[1:]:
            total = total + other[q, r]
        rows, cols = layout.rows[q], layout.cols[r]
        copies, views = layout.split[r]
        # (groups, per_in, views, per_out, copies, row taps) -> grad[o, c, a, b], the
        # column tap b = copies * view + copy (those past the phase's last dropped).
        total = total.reshape(groups, per_in, views, per_out, copies, len(rows)).transpose(
            0, 3, 1, 5, 2, 4).reshape(out_channels, per_in, len(rows), views * copies)
        grad[:, :, _taps(rows), _taps(cols)] = total[..., :len(cols)]
    return grad


def _taps(taps):
    """The kernel's taps of one phase (equally spaced: `_axis_taps`) as a slice."""
    first, step = _progression([tap for tap, _ in taps])
    return slice(first, taps[-1][0] + 1, step)


def _fft_module():
    """``scipy.fft`` where installed (real transforms of float64, threads), else numpy.fft."""
    try:
        import scipy.fft
        return scipy.fft
    except ImportError:     # pragma: no cover - scipy is optional
        return np.fft


def _fast_length(n):
    """A length >= n that the transforms do fast."""
    try:
        import scipy.fft
        return scipy.fft.next_fast_len(n, real=True)
    except ImportError:     # pragma: no cover - scipy is optional
        from .fft import _length
        return _length(n)


def fft_lengths(geometry):
    """The transforms' shape: the padded input's, each axis rounded up to a fast length."""
    return tuple(_fast_length(n + sum(p)) for n, p in zip(geometry.input_shape,
                                                           geometry.padding))


def plan_fft(images, kernel_shape, geometry, groups, padding_mode, fill_value, dtype, s):
    """``driver.Plan`` of `fft`: one task, its estimate.

    Raises ValueError for other dtypes than real floats, and where the
    spectra it holds (one image's channels, the gradient's, and one sum per
    pair of channels) would pass 8 times the larger of the input and the
    output's gradient, and ``Settings.keep_bytes`` (what a thread may keep).
    """
    if np.dtype(dtype) not in (np.float32, np.float64):
        raise ValueError(f"the FFT of the kernel's gradient takes real floats, not {dtype}")
    return _plan_fft(images.shape, images.itemsize, tuple(kernel_shape), geometry,
                     np.dtype(dtype).itemsize, s)


@functools.lru_cache(maxsize=256)
def _plan_fft(shape, image_itemsize, kernel_shape, geometry, itemsize, s):
    """`plan_fft`, from the shapes alone (cached)."""
    batch, channels = shape[:2]
    out_channels, per_in = kernel_shape[:2]
    lengths = fft_lengths(geometry)
    spectra = batch * (channels + out_channels)
    pairs = out_channels * per_in
    cells = lengths[0] * (lengths[1] // 2 + 1)
    held = (pairs + channels + out_channels) * cells * 16
    size = math.prod(shape)
    if held > max(8 * max(size * max(image_itemsize, itemsize),
                          batch * out_channels * math.prod(geometry.output_shape) * itemsize),
                  s.keep_bytes):
        raise ValueError(f"the FFT of the kernel's gradient would hold {held} bytes of spectra "
                         f"for {pairs} pairs of channels")
    ns = (transforms(lengths, spectra, s) + transforms(lengths, pairs, s) / 2
          + cell_scale(np.complex128) * cells * (batch * pairs + spectra) * s.flat_ns)
    return driver.Plan([()], 1, ns, settings=s)


def _accurate(padded, grads, geometry, arena, s):
    """Whether the FFT's error stays near the direct sums' for one image (see the module).

    ``padded`` (C_in, Hp, Wp), ``grads`` (C_out, H_out, W_out). The FFT's
    error on every lag is a few units of float64's precision times
    ``|x| |g|``, the norms of the input and the gradient (by Cauchy-Schwarz
    the most any lag's terms can add up to); the direct sums' is relative to
    the lag's own terms, ``sum |x| |g|``. They differ where the gradient is
    large only where the input is small. The terms of the first tap, a fair
    sample of every tap's (their windows differ by the kernel's span), must
    add up to within ``Settings.fft_range`` of the norms' product, and no
    value may pass 2**500 (whose products could overflow in the spectra).
    """
    (height, width), (sh, sw) = geometry.output_shape, geometry.stride
    channels, out_channels = padded.shape[0], grads.shape[0]
    largest = terms = squares_x = squares_g = 0.0
    step = max(1, 2 ** 15 // (width * max(channels, out_channels)))    # rows a block
    x = arena.take((channels, step, width), np.float64)
    g = arena.take((out_channels, step, width), np.float64)
    for top in range(0, height, step):      # in blocks of rows: small buffers, in cache
        rows = min(step, height - top)
        xs, gs = x[:, :rows], g[:, :rows]
        np.abs(padded[:, top * sh:(top + rows - 1) * sh + 1:sh, :(width - 1) * sw + 1:sw],
               out=xs)
        np.abs(grads[:, top:top + rows], out=gs)
        largest = max(largest, float(xs.max()), float(gs.max()))
        xs, gs = xs.reshape(channels, -1), gs.reshape(out_channels, -1)
        terms += float(np.sum(gs @ xs.T))
        squares_x += float(np.vdot(xs, xs))
        squares_g += float(np.vdot(gs, gs))
    norms = math.sqrt(squares_x * squares_g)
    return largest < 2.0 ** 500 and norms <= s.fft_range * terms


def fft(grad_output, images, kernel_shape, geometry, groups, padding_mode, fill_value, dtype,
        plan_):
    """The kernel's gradient through one FFT of the whole padded image (see the module).

    ``grad_output`` (N, C_out, H_out, W_out) and ``images`` (N, C_in, H, W),
    finite real floats. Returns an array of ``kernel_shape``, of ``dtype``;
    None where an image fails `_accurate` (its error could pass the direct
    sums' by far: another path must take these data).
    """
    module = _fft_module()
    options = {} if module is np.fft else {"workers": driver.threads()}
    lengths = fft_lengths(geometry)
    (sh, sw), (dh, dw) = geometry.stride, geometry.dilation
    out_channels, per_in, kh, kw = kernel_shape
    per_out = out_channels // groups
    batch, channels = images.shape[:2]
    height, width = geometry.output_shape
    source = Padded(images.reshape((-1,) + images.shape[2:]), geometry.padding, padding_mode,
                    fill_value)
    padded_h, padded_w = source.shape
    spectrum = (lengths[0], lengths[1] // 2 + 1)
    # The sum of the images' products of spectra: the first image's product itself, the
    # others added to it (no array of zeros first: fresh arrays of a few MiB cost their
    # page faults at every call, a fifth of the time at 512 x 512).
    sums = [None]
    accurate = [True]

    def transform(arena):
        # The transforms' inputs, zero beyond the data, in the thread's scratch memory:
        # a fresh array of this size would cost its page faults every call.
        padded = arena.take((channels,) + lengths, np.float64)
        spread = arena.take((out_channels,) + lengths, np.float64)
        padded[:, padded_h:] = 0
        padded[:, :padded_h, padded_w:] = 0
        spread[...] = 0
        for n in range(batch):
            source.region(slice(n * channels, (n + 1) * channels), range(padded_h),
                          range(padded_w), np.float64, out=padded[:, :padded_h, :padded_w])
            if not _accurate(padded, grad_output[n], geometry, arena, plan_.settings):
                accurate[0] = False
                return
            inputs = module.rfft2(padded, **options).reshape((groups, 1, per_in) + spectrum)
            # The gradient's cells as far apart as the windows they weigh.
            spread[:, :(height - 1) * sh + 1:sh, :(width - 1) * sw + 1:sw] = grad_output[n]
            grads = module.rfft2(spread, **options).reshape((groups, per_out, 1) + spectrum)
            np.conjugate(grads, out=grads)
            if grads.shape == inputs.shape:     # one pair of channels a group: in place
                product = np.multiply(grads, inputs, out=grads)
            else:
                product = grads * inputs
            if sums[0] is None:
                sums[0] = product
            else:
                sums[0] += product

    with driver.single_threaded_blas(plan_.settings.limit_blas):
        driver.run(transform, driver.Plan([()], 1, plan_.ns, settings=plan_.settings))
    if not accurate[0]:
        return None
    # Only the rows of the lags a * dh go through the second inverse transform (in the
    # sums' own memory where scipy.fft may).
    overwrite = {} if module is np.fft else {"overwrite_x": True}
    rows = module.ifft(sums[0], axis=-2, **options, **overwrite)[..., np.arange(kh) * dh, :]
    lags = module.irfft(rows, lengths[1], axis=-1, **options)[..., np.arange(kw) * dw]
    return lags.reshape(kernel_shape).astype(dtype)
