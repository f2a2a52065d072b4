"""conv1d, conv3d, their transposes and gradients, and axes=: every witness the 2-D tests have.

The N-d reference loops (``reference_nd.convnd_loops`` and friends), PyTorch
(forward, transposed, autograd; np.pad for 'symmetric'), scipy.ndimage for
the filters in every border mode, the adjoint identity, exact integers, NaN
placement, Dask, and every error path.
"""
import itertools
import threading
import tracemalloc
import unittest
import warnings
from unittest import mock

import numpy as np

from convolution import (conv1d, conv1d_backward, conv2d, conv3d, conv3d_backward,
                         conv_output_shape, conv_transpose1d, conv_transpose3d,
                         conv_transpose_output_shape, convnd_layer_loops, convnd_loops,
                         conv_transposend_loops, reference)
from convolution import settings
from convolution.fast import depth3d as fast_depth3d, fold1d as fast_fold1d
from convolution.padding import PADDING_MODES
from convolution.geometry import conv_geometry
from convolution.shapes import as_tuple, check_axes

from .common import forced_threads, matplotlib, optional, torch

ndimage = optional("scipy.ndimage")
dask_array = optional("dask.array")

MODES = tuple(PADDING_MODES)
FUNCTIONS = {1: conv1d, 3: conv3d}
TRANSPOSES = {1: conv_transpose1d, 3: conv_transpose3d}
BACKWARDS = {1: conv1d_backward, 3: conv3d_backward}
#: scipy.ndimage's name for each border mode.
NDIMAGE_MODES = {"zeros": "constant", "constant": "constant", "reflect": "mirror",
                 "symmetric": "reflect", "replicate": "nearest", "circular": "grid-wrap"}


def random_filter_case(rng, ndim, big=False):
    """Random shapes and parameters for a filter of ``ndim`` axes, in every parameter form."""
    spatial = tuple(int(v) for v in rng.integers(1, 40 if (big and ndim == 1) else 7, ndim))
    kernel = tuple(int(v) for v in rng.integers(1, 5 if ndim == 1 else 4, ndim))
    stride = tuple(int(v) for v in rng.integers(1, 4, ndim))
    dilation = tuple(int(v) for v in rng.integers(1, 3, ndim))
    form = rng.integers(4)
    if form == 0:
        padding = int(rng.integers(0, 3))
    elif form == 1:
        padding = str(rng.choice(["valid", "same", "full"]))
    elif form == 2:
        padding = tuple(int(v) for v in rng.integers(0, 3, ndim))
    else:
        padding = tuple((int(a), int(b)) for a, b in rng.integers(0, 4, (ndim, 2)))
    return spatial, kernel, dict(stride=stride, dilation=dilation, padding=padding)


class TestGeometry(unittest.TestCase):
    """The geometry written once for any number of axes; the 2-D API as it was."""

    def test_output_shape_is_the_formula_per_axis(self):
        rng = np.random.default_rng(0)
        for ndim in (1, 2, 3, 4):
            for _ in range(50):
                spatial, kernel, params = random_filter_case(rng, ndim)
                with self.subTest(ndim=ndim, spatial=spatial, kernel=kernel, **params):
                    try:
                        shape = conv_output_shape(spatial, kernel, **params)
                    except ValueError:
                        continue
                    # Each axis on its own, through the same function, one axis at a time.
                    g = conv_geometry(spatial, kernel, **params)
                    for axis in range(ndim):
                        (before, after) = g.padding[axis]
                        expected = (spatial[axis] + before + after
                                    - g.dilation[axis] * (kernel[axis] - 1) - 1
                                    ) // g.stride[axis] + 1
                        self.assertEqual(shape[axis], expected)
                    if params["padding"] == "same":
                        self.assertEqual(shape, tuple(-(-n // s) for n, s
                                                      in zip(spatial, params["stride"])))

    def test_two_axes_unchanged(self):
        self.assertEqual(conv_output_shape((9, 14), (5, 5), (2, 1), (1, 2)), (3, 6))
        self.assertEqual(conv_geometry((7, 8), (2, 3), padding=((0, 1), (2, 0))).padding,
                         ((0, 1), (2, 0)))
        with self.assertRaisesRegex(ValueError, r"stride must be an int >= 1 or a pair of them"):
            conv_output_shape((5, 5), (3, 3), stride=(1, 2, 3))

    def test_one_and_three_axes(self):
        self.assertEqual(conv_output_shape((100,), (7,), 3, 2), (30,))
        self.assertEqual(conv_output_shape((100,), (7,), padding=(6, 0)), (100,))    # causal
        self.assertEqual(conv_output_shape((5, 6, 7), (3, 2, 1), padding="full"), (7, 7, 7))
        self.assertEqual(conv_output_shape((5, 6, 7), (3, 3, 3), padding=(1, (0, 2), 0)),
                         (5, 6, 5))
        self.assertEqual(conv_transpose_output_shape((4,), (3,), 2, 1, 1, 1), (8,))
        self.assertEqual(conv_transpose_output_shape((3, 4, 5), (2, 2, 2), stride=(1, 2, 3)),
                         (4, 8, 14))

    def test_transpose_shape_inverts_the_forward_one(self):
        for ndim in (1, 3):
            for n, k, s, d, p in itertools.product((4, 7), (1, 3), (1, 2, 3), (1, 2), (0, 1)):
                out = conv_transpose_output_shape((n,) * ndim, (k,) * ndim, s, d, p)
                self.assertEqual(conv_output_shape(out, (k,) * ndim, s, d, p), (n,) * ndim)

    def test_tutorial_loops_agree_with_the_shared_geometry(self):
        # reference.py writes the output size again on purpose; it must agree.
        rng = np.random.default_rng(1)
        for ndim in (1, 3):
            for _ in range(30):
                spatial, kernel, params = random_filter_case(rng, ndim)
                try:
                    g = conv_geometry(spatial, kernel, **params)
                except ValueError:
                    continue
                padded = tuple(n + sum(p) for n, p in zip(spatial, g.padding))
                self.assertEqual(tuple(reference.output_size(p, k, s, d) for p, k, s, d
                                       in zip(padded, kernel, g.stride, g.dilation)),
                                 g.output_shape)
                out = convnd_loops(np.ones(spatial), np.ones(kernel), **params)
                self.assertEqual(out.shape, g.output_shape)

    def test_per_axis_parameters_of_the_wrong_length(self):
        with self.assertRaisesRegex(ValueError, r"stride must be an int >= 1 or 3 of them, "
                                    r"got 2 values"):
            as_tuple((1, 2), "stride", 3)
        with self.assertRaisesRegex(ValueError, r"padding must be an int, a tuple of 3 ints"):
            conv_geometry((5, 5, 5), (3, 3, 3), padding=(1, 1))
        with self.assertRaisesRegex(TypeError, r"padding of a transposed convolution must be "
                                    r"an int, a tuple of 3 ints"):
            conv_transpose_output_shape((3, 3, 3), (2, 2, 2), padding="same")
        with self.assertRaisesRegex(ValueError, r"output_padding must be an int >= 0 or 3 of "
                                    r"them"):
            conv_transpose_output_shape((3, 3, 3), (2, 2, 2), stride=2, output_padding=(1, 1))

    def test_axes(self):
        self.assertEqual(check_axes(None, 4, 3), (1, 2, 3))
        self.assertEqual(check_axes(-1, 2, 1), (1,))
        self.assertEqual(check_axes((2, 0), 3, 2), (2, 0))
        for axes, message in [((0,), "must have 2 entries"), ((1, 1), "2 different axes"),
                              ((0, 3), r"from -3 to 2"), ((0, 1.0), "must be an int"),
                              ((0, -1, 1), "must have 2 entries")]:
            with self.subTest(axes=axes), self.assertRaisesRegex((ValueError, TypeError),
                                                                 f"axes {message}|{message}"):
                check_axes(axes, 3, 2)


def _meet_once(function, barrier):
    """``function``, which waits at ``barrier`` the first time each thread calls it."""
    met = set()

    def wrapper(*args, **kwargs):
        if threading.get_ident() not in met:
            met.add(threading.get_ident())
            barrier.wait(timeout=60)       # a broken barrier: fewer threads ran strips
        return function(*args, **kwargs)
    return wrapper


class TestAgainstLoops(unittest.TestCase):
    """Every method against the tutorial's N-d loops, on seeded random cases."""

    def test_filters_every_method_and_mode(self):
        rng = np.random.default_rng(2)
        for ndim in (1, 3):
            for case in range(60 if ndim == 1 else 36):
                spatial, kernel, params = random_filter_case(rng, ndim, big=True)
                mode = MODES[case % len(MODES)]
                fill = -1.5 if mode == "constant" else 0
                x = rng.standard_normal((2,) + spatial)
                k = rng.standard_normal(kernel)
                try:
                    expected = convnd_loops(x, k, padding_mode=mode, fill_value=fill, **params)
                except ValueError:
                    continue
                for method in ("auto", "fold", "direct", "banded", "loops"):
                    with self.subTest(ndim=ndim, spatial=spatial, kernel=kernel, mode=mode,
                                      method=method, **params):
                        got = FUNCTIONS[ndim](x, k, padding_mode=mode, fill_value=fill,
                                              method=method, **params)
                        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)

    def test_fold_paths_on_long_signals_and_volumes(self):
        # Large enough for the folded rows and the band products, with borders on both ends.
        rng = np.random.default_rng(3)
        for k, stride, dilation, padding in [(7, 1, 1, "same"), (31, 1, 1, (30, 0)),
                                             (101, 1, 1, "full"), (5, 2, 3, (4, 7)),
                                             (1, 1, 1, 0), (9, 3, 1, "same")]:
            for mode in MODES:
                x = rng.standard_normal((2, 5000))
                w = rng.standard_normal(k)
                fill = 2.0 if mode == "constant" else 0
                with self.subTest(k=k, stride=stride, padding=padding, mode=mode):
                    expected = conv2d(x[:, None], w[None], stride=(1, stride),
                                      dilation=(1, dilation),
                                      padding=((0, 0), conv_geometry(
                                          x.shape, (k,), stride, dilation, padding).padding[0]),
                                      padding_mode=mode, fill_value=fill, method="direct")[:, 0]
                    got = conv1d(x, w, stride, dilation, padding, padding_mode=mode,
                                 fill_value=fill, method="fold")
                    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)
        for shape, k, stride, padding in [((20, 21, 22), (3, 3, 3), 1, 1),
                                          ((9, 30, 17), (5, 4, 2), (2, 1, 3), "same"),
                                          ((6, 40, 9), (2, 5, 3), 1, "full")]:
            for mode in MODES:
                x = rng.standard_normal(shape).astype(np.float32)
                w = rng.standard_normal(k).astype(np.float32)
                with self.subTest(shape=shape, k=k, mode=mode):
                    expected = conv3d(x, w, stride, 1, padding, padding_mode=mode, method="direct")
                    got = conv3d(x, w, stride, 1, padding, padding_mode=mode, method="fold")
                    self.assertEqual(got.dtype, np.float32)
                    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)

    def test_fold_paths_in_strips_and_threads(self):
        # Tiny strips, products and blocks, on three threads: the seams between strips (and
        # the strips' conversion of a strided float32 signal) change nothing.
        rng = np.random.default_rng(30)
        signals = rng.standard_normal((3, 6000))
        cases = [(signals, rng.standard_normal(k), dict(padding=padding, padding_mode=mode))
                 for k, padding, mode in [(7, "same", "reflect"), (31, (30, 0), "zeros"),
                                          (101, "full", "circular")]]
        cases.append((signals.astype(np.float32)[:, ::2], rng.standard_normal(9).astype(
            np.float32), dict(padding=4, padding_mode="symmetric")))
        volume = rng.standard_normal((2, 13, 21, 17)).astype(np.float32)
        # NaN and infinity too: the threads that meet them warn of nothing (the products
        # multiply T's zeros by them on purpose).
        spoiled = signals.copy()
        spoiled[:, ::701], spoiled[:, 5::997] = np.inf, np.nan
        cases.append((spoiled, rng.standard_normal(31), dict(padding="same")))
        hollow = volume.copy()
        hollow[:, ::5, 3, 4] = -np.inf
        for x, w, params in cases + [(volume, rng.standard_normal((3, 4, 3)).astype(np.float32),
                                      dict(padding=(1, 2, 1), padding_mode="replicate")),
                                     (hollow, rng.standard_normal((2, 3, 3)).astype(np.float32),
                                      dict(padding=1))]:
            function = conv1d if w.ndim == 1 else conv3d
            # Each of the three threads waits for the others at its first strip: all three
            # run strips, whatever the machine's speed.
            barrier = threading.Barrier(3)
            if w.ndim == 1:
                patched = mock.patch.object(fast_fold1d._Fold, "products", _meet_once(
                    fast_fold1d._Fold.products, barrier))
            else:
                patched = mock.patch.object(fast_depth3d, "_fetch", _meet_once(
                    fast_depth3d._fetch, barrier))
            with self.subTest(shape=x.shape, kernel=w.shape, **params):
                expected = function(x, w, method="direct", **params)
                with settings.using(fold_outputs=512, strip_bytes=2048,
                                    min_strip_bytes=1024, depth_rows=2), forced_threads(3), \
                        warnings.catch_warnings(), patched:
                    warnings.simplefilter("error", RuntimeWarning)
                    got = function(x, w, method="fold", **params)
                np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
                self.assertEqual(got.dtype, expected.dtype)

    def test_layers_against_loops(self):
        rng = np.random.default_rng(4)
        for ndim in (1, 3):
            for case in range(12):
                groups = int(rng.integers(1, 3))
                c_in, c_out = groups * int(rng.integers(1, 3)), groups * int(rng.integers(1, 3))
                spatial, kernel, params = random_filter_case(rng, ndim)
                mode = MODES[case % len(MODES)]
                x = rng.integers(-5, 6, (2, c_in) + spatial)
                w = rng.integers(-5, 6, (c_out, c_in // groups) + kernel)
                bias = rng.integers(-5, 6, c_out)
                try:
                    expected = convnd_layer_loops(x, w, padding_mode=mode, bias=bias,
                                                  groups=groups, **params)
                except ValueError:
                    continue
                with self.subTest(ndim=ndim, mode=mode, groups=groups, **params):
                    got = FUNCTIONS[ndim](x, w, padding_mode=mode, bias=bias, groups=groups,
                                          **params)
                    self.assertEqual(got.dtype, np.int64)
                    np.testing.assert_array_equal(got, expected)
                    one = FUNCTIONS[ndim](x[0], w, padding_mode=mode, bias=bias, groups=groups,
                                          **params)     # one image, no batch axis
                    np.testing.assert_array_equal(one, expected[0])

    def test_transposed_against_loops(self):
        rng = np.random.default_rng(5)
        for ndim in (1, 3):
            for _ in range(10):
                groups = int(rng.integers(1, 3))
                c_in, c_out = groups * int(rng.integers(1, 3)), groups * int(rng.integers(1, 3))
                spatial = tuple(int(v) for v in rng.integers(1, 5, ndim))
                kernel = tuple(int(v) for v in rng.integers(1, 4, ndim))
                stride = tuple(int(v) for v in rng.integers(1, 3, ndim))
                padding = tuple(int(v) for v in rng.integers(0, 2, ndim))
                x = rng.integers(-5, 6, (2, c_in) + spatial)
                w = rng.integers(-5, 6, (c_in, c_out // groups) + kernel)
                try:
                    expected = conv_transposend_loops(x, w, stride, 1, padding, groups=groups)
                except ValueError:
                    continue
                with self.subTest(ndim=ndim, spatial=spatial, kernel=kernel, stride=stride):
                    got = TRANSPOSES[ndim](x, w, stride, 1, padding, groups=groups)
                    np.testing.assert_array_equal(got, expected)
                    filt = TRANSPOSES[ndim](x[:, 0], w[0, 0], stride, 1, padding)
                    np.testing.assert_array_equal(
                        filt, conv_transposend_loops(x[:, :1], w[:1, :1], stride, 1, padding)[:, 0])

    def test_hand_computed(self):
        # Worked out by hand: a causal 3-tap moving sum, and a 2 x 2 x 2 box at stride 2.
        np.testing.assert_array_equal(conv1d([1, 2, 3, 4, 5], [1, 1, 1], padding=(2, 0)),
                                      [1, 3, 6, 9, 12])
        np.testing.assert_array_equal(conv1d([1, 2, 3, 4, 5, 6], [1, -1], stride=2, dilation=2),
                                      [-2, -2])
        np.testing.assert_array_equal(conv1d([1, 2, 3], [1, 10], padding=1,
                                             padding_mode="reflect"), [12, 21, 32, 23])
        volume = np.arange(64).reshape(4, 4, 4)
        # Block (0, 0, 0): cells 0, 1, 4, 5, 16, 17, 20, 21 add to 84.
        np.testing.assert_array_equal(conv3d(volume, np.ones((2, 2, 2), int), stride=2),
                                      [[[84, 100], [148, 164]], [[340, 356], [404, 420]]])


@unittest.skipIf(torch is None, "torch is not installed")
class TestAgainstTorch(unittest.TestCase):
    """PyTorch's conv1d/conv3d, conv_transpose1d/3d and autograd, in every border mode."""

    TORCH_MODES = ("zeros", "reflect", "replicate", "circular", "symmetric")

    def cases(self, rng, ndim, count):
        for case in range(count):
            groups = int(rng.integers(1, 3))
            c_in, c_out = groups * int(rng.integers(1, 3)), groups * int(rng.integers(1, 3))
            spatial = tuple(int(v) for v in rng.integers(3, 9 if ndim == 3 else 20, ndim))
            kernel = tuple(int(v) for v in rng.integers(1, 4, ndim))
            stride = tuple(int(v) for v in rng.integers(1, 3, ndim))
            dilation = tuple(int(v) for v in rng.integers(1, 3, ndim))
            padding = tuple(int(v) for v in rng.integers(0, 3, ndim))
            yield (self.TORCH_MODES[case % len(self.TORCH_MODES)], groups, c_in, c_out, spatial,
                   kernel, stride, dilation, padding)

    def test_forward_and_autograd(self):
        rng = np.random.default_rng(6)
        functional = torch.nn.functional
        for ndim in (1, 3):
            for mode, groups, c_in, c_out, spatial, kernel, stride, dilation, padding in \
                    self.cases(rng, ndim, 30):
                x = rng.standard_normal((2, c_in) + spatial)
                w = rng.standard_normal((c_out, c_in // groups) + kernel)
                b = rng.standard_normal(c_out)
                tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
                widths = [(0, 0), (0, 0)] + [(p, p) for p in padding]
                if mode == "symmetric":     # np.pad's, which PyTorch lacks: its gradient by hand
                    if any(p > n for p, n in zip(padding, spatial)):
                        continue
                    padded = torch.tensor(np.pad(x, widths, mode="symmetric"), requires_grad=True)
                elif mode == "zeros":
                    padded = tx
                else:
                    if any(p >= n for p, n in zip(padding, spatial)):
                        continue
                    padded = functional.pad(tx, [q for p in reversed(padding) for q in (p, p)],
                                            mode=mode)
                conv = getattr(functional, f"conv{ndim}d")
                try:
                    expected = conv(padded, tw, tb, stride, padding if mode == "zeros" else 0,
                                    dilation, groups)
                except RuntimeError:
                    continue      # the kernel does not fit
                with self.subTest(ndim=ndim, mode=mode, groups=groups, spatial=spatial,
                                  kernel=kernel, stride=stride, dilation=dilation,
                                  padding=padding):
                    got = FUNCTIONS[ndim](x, w, stride, dilation, padding, padding_mode=mode,
                                          bias=b, groups=groups)
                    np.testing.assert_allclose(got, expected.detach().numpy(), atol=1e-10)
                    grad = rng.standard_normal(tuple(expected.shape))
                    expected.backward(torch.tensor(grad))
                    gx, gw, gb = BACKWARDS[ndim](grad, x, w, stride, dilation, padding,
                                                 padding_mode=mode, groups=groups)
                    if mode == "symmetric":
                        # torch's gradient of the padded input, folded back onto the input
                        # the way np.pad's symmetric border copies it (the adjoint of pad).
                        from convolution.padding import pad_adjoint
                        expected_gx = pad_adjoint(padded.grad.numpy(), widths[2:], "symmetric")
                    else:
                        expected_gx = tx.grad.numpy()
                    np.testing.assert_allclose(gx, expected_gx, atol=1e-9)
                    np.testing.assert_allclose(gw, tw.grad.numpy(), atol=1e-9)
                    np.testing.assert_allclose(gb, tb.grad.numpy(), atol=1e-9)

    def test_transposed(self):
        rng = np.random.default_rng(7)
        for ndim in (1, 3):
            for _, groups, c_in, c_out, spatial, kernel, stride, dilation, padding in \
                    self.cases(rng, ndim, 30):
                output_padding = tuple(int(rng.integers(0, max(s, d)))
                                       for s, d in zip(stride, dilation))
                x = rng.standard_normal((2, c_in) + spatial)
                w = rng.standard_normal((c_in, c_out // groups) + kernel)
                b = rng.standard_normal(c_out)
                try:
                    expected = getattr(torch.nn.functional, f"conv_transpose{ndim}d")(
                        torch.tensor(x), torch.tensor(w), torch.tensor(b), stride, padding,
                        output_padding, groups, dilation).numpy()
                except RuntimeError:
                    continue
                if min(expected.shape) < 1:
                    continue
                with self.subTest(ndim=ndim, spatial=spatial, kernel=kernel, stride=stride,
                                  dilation=dilation, padding=padding,
                                  output_padding=output_padding):
                    got = TRANSPOSES[ndim](x, w, stride, dilation, padding, output_padding,
                                           bias=b, groups=groups)
                    np.testing.assert_allclose(got, expected, atol=1e-10)


@unittest.skipIf(ndimage is None, "scipy is not installed")
class TestAgainstNdimage(unittest.TestCase):
    """scipy.ndimage.correlate1d and correlate: the filters, 'same' at stride 1, every mode."""

    def test_every_mode(self):
        rng = np.random.default_rng(8)
        for mode in MODES:
            cval = 3.5 if mode == "constant" else 0.0
            for k in (1, 3, 5, 9):
                x = rng.standard_normal((3, 40))
                w = rng.standard_normal(k)
                with self.subTest(ndim=1, mode=mode, k=k):
                    expected = ndimage.correlate1d(x, w, axis=-1, mode=NDIMAGE_MODES[mode],
                                                   cval=cval)
                    for method in ("auto", "fold"):
                        np.testing.assert_allclose(
                            conv1d(x, w, padding="same", padding_mode=mode, fill_value=cval,
                                   method=method), expected, atol=1e-12)
                    # A long signal: the folded rows.
                    long = rng.standard_normal(20000)
                    np.testing.assert_allclose(
                        conv1d(long, w, padding="same", padding_mode=mode, fill_value=cval),
                        ndimage.correlate1d(long, w, mode=NDIMAGE_MODES[mode], cval=cval),
                        atol=1e-11)
            for k in [(3, 3, 3), (1, 5, 3), (5, 1, 1)]:
                x = rng.standard_normal((7, 12, 11))
                w = rng.standard_normal(k)
                with self.subTest(ndim=3, mode=mode, k=k):
                    expected = ndimage.correlate(x, w, mode=NDIMAGE_MODES[mode], cval=cval)
                    for method in ("auto", "direct", "fold"):
                        np.testing.assert_allclose(
                            conv3d(x, w, padding="same", padding_mode=mode, fill_value=cval,
                                   method=method), expected, atol=1e-11)


class TestIdentities(unittest.TestCase):
    """The adjoint identity and the gradients' exactness, on integers (so exactly)."""

    def test_adjoint_identity(self):
        rng = np.random.default_rng(9)
        for ndim in (1, 3):
            for _ in range(20):
                spatial = tuple(int(v) for v in rng.integers(3, 9, ndim))
                kernel = tuple(int(v) for v in rng.integers(1, 4, ndim))
                stride = tuple(int(v) for v in rng.integers(1, 4, ndim))
                dilation = tuple(int(v) for v in rng.integers(1, 3, ndim))
                padding = tuple(int(v) for v in rng.integers(0, 3, ndim))
                try:
                    g = conv_geometry(spatial, kernel, stride, dilation, padding)
                except ValueError:
                    continue
                extra = tuple((n + sum(p) - d * (k - 1) - 1) % s for n, p, k, s, d in
                              zip(spatial, g.padding, kernel, stride, dilation))
                layer = bool(rng.integers(2))
                x = rng.integers(-9, 10, ((2, 3) if layer else (2,)) + spatial)
                w = rng.integers(-9, 10, ((4, 3) if layer else ()) + kernel)
                y = rng.integers(-9, 10, ((2, 4) if layer else (2,)) + g.output_shape)
                with self.subTest(ndim=ndim, layer=layer, spatial=spatial, kernel=kernel,
                                  stride=stride, dilation=dilation, padding=padding):
                    forward = FUNCTIONS[ndim](x, w, stride, dilation, padding)
                    # The forward kernel, (C_out, C_in, ...), is the transposed one's layout.
                    back = TRANSPOSES[ndim](y, w, stride, dilation, padding, extra)
                    self.assertEqual(back.shape, x.shape)
                    self.assertEqual(int(np.sum(forward * y)), int(np.sum(x * back)))
                    self.assertEqual(back.dtype, np.int64)

    def test_gradients_are_exact_on_integers(self):
        # conv is linear in x and in k: one unit more on a cell changes sum(y * conv) by
        # exactly its gradient, in every border mode (the border's copies included).
        rng = np.random.default_rng(10)
        for ndim in (1, 3):
            for mode in MODES:
                spatial = (9,) if ndim == 1 else (4, 5, 4)
                kernel = (3,) if ndim == 1 else (2, 3, 2)
                params = dict(stride=2, dilation=1, padding=2, padding_mode=mode,
                              fill_value=3 if mode == "constant" else 0)
                x = rng.integers(-9, 10, (2, 2) + spatial)
                w = rng.integers(-9, 10, (3, 2) + kernel)
                y = rng.integers(-9, 10, FUNCTIONS[ndim](x, w, **params).shape)
                gx, gw, gb = BACKWARDS[ndim](y, x, w, **params)

                def loss(x, w):
                    return int(np.sum(y * FUNCTIONS[ndim](x, w, **params)))
                with self.subTest(ndim=ndim, mode=mode):
                    for index in itertools.islice(np.ndindex(x.shape), 0, None, 7):
                        x2 = x.copy()
                        x2[index] += 1
                        self.assertEqual(loss(x2, w) - loss(x, w), gx[index])
                    for index in itertools.islice(np.ndindex(w.shape), 0, None, 5):
                        w2 = w.copy()
                        w2[index] += 1
                        self.assertEqual(loss(x, w2) - loss(x, w), gw[index])
                    np.testing.assert_array_equal(gb, y.sum(axis=tuple(
                        a for a in range(y.ndim) if a != 1)))
                    # The filter form: a scalar bias gradient, kernel of the filter's shape.
                    fx, fw, fb = BACKWARDS[ndim](y[:, 0], x[:, 0], w[0, 0], **params)
                    self.assertEqual(fw.shape, kernel)
                    self.assertEqual(int(fb), int(y[:, 0].sum()))


class TestDtypesAndNaN(unittest.TestCase):

    def test_dtypes(self):
        rng = np.random.default_rng(11)
        for ndim, func in FUNCTIONS.items():
            shape = (3000,) if ndim == 1 else (5, 6, 7)
            k = (5,) if ndim == 1 else (2, 2, 2)
            for dtype, kernel_dtype, expected in [(np.float32, np.float32, np.float32),
                                                  (np.float16, np.float16, np.float16),
                                                  (np.float64, np.float32, np.float64),
                                                  (np.uint8, np.int8, np.int64),
                                                  (np.bool_, np.bool_, np.int64),
                                                  (np.complex64, np.float32, np.complex64)]:
                x = (rng.standard_normal(shape) * 10).astype(dtype)
                w = (rng.standard_normal(k) * 3).astype(kernel_dtype)
                with self.subTest(ndim=ndim, dtype=dtype, kernel=kernel_dtype):
                    got = func(x, w, padding=1, padding_mode="reflect")
                    self.assertEqual(got.dtype, expected)
                    loops = func(x, w, padding=1, padding_mode="reflect", method="loops")
                    np.testing.assert_allclose(got, loops, rtol=2e-3, atol=2e-2)

    def test_integers_exact_beyond_float64(self):
        # Sums of products near 2**57 that float64 would round (it holds 53 bits).
        big = 2 ** 28 + 1
        x = np.full(5000, big, np.int64)
        x[::3] += 1
        np.testing.assert_array_equal(conv1d(x, [big, 1]), x[:-1] * big + x[1:])
        v = np.full((3, 3, 3), big, np.int64)
        self.assertEqual(int(conv3d(v, np.full((3, 3, 3), big))[0, 0, 0]), 27 * big * big)
        self.assertNotEqual(float(27 * big * big), 27 * big * big)

    def test_fill_value_in_the_computed_dtype(self):
        # A fill of 300 around a uint8 volume stays 300 (the sums are in int64).
        v = np.zeros((2, 2, 2), np.uint8)
        out = conv3d(v, np.ones((3, 3, 3), int), padding=1, padding_mode="constant",
                     fill_value=300)
        self.assertEqual(int(out[0, 0, 0]), 300 * 19)

    def test_nan_reaches_exactly_its_windows(self):
        rng = np.random.default_rng(12)
        x = rng.standard_normal(20000)
        x[[0, 777, 12345]] = [np.nan, np.inf, np.nan]
        w = rng.standard_normal(9)
        for method in ("fold", "direct"):
            got = conv1d(x, w, padding="same", padding_mode="reflect", method=method)
            expected = conv1d(np.isnan(x) | np.isinf(x), np.ones(9, int), padding="same",
                              padding_mode="reflect") > 0
            np.testing.assert_array_equal(~np.isfinite(got), expected)
        # One NaN or infinity at every place of a folded row (128 outputs, in blocks of 16),
        # for each layout of the rows.
        x = rng.standard_normal(12000)
        for k in (7, 31, 101):
            w = rng.standard_normal(k)
            for place in range(6000, 6000 + 128 + k):
                y = x.copy()
                y[place] = np.nan if place % 2 else -np.inf
                with self.subTest(k=k, place=place):
                    got = conv1d(y, w, method="fold")
                    expected = np.zeros(len(x) - k + 1, bool)
                    expected[place - k + 1:place + 1] = True
                    np.testing.assert_array_equal(~np.isfinite(got), expected)
        # An infinite weight times the zero fill of the depth border is NaN, as in the loops
        # (the sum over depth taps must not leave the fill's slices out then).
        v = rng.standard_normal((5, 6, 7))
        w = rng.standard_normal((3, 2, 2))
        w[0, 1, 1] = np.inf
        for padding_mode, fill in (("zeros", 0), ("constant", 0), ("constant", 2.5),
                                   ("replicate", 0)):
            with self.subTest(padding_mode=padding_mode, fill_value=fill), \
                    warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)     # inf * 0, on purpose
                got = conv3d(v, w, padding=(2, 1, 0), padding_mode=padding_mode,
                             fill_value=fill, method="direct")
                expected = conv3d(v, w, padding=(2, 1, 0), padding_mode=padding_mode,
                                  fill_value=fill, method="loops")
                np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
                zero_fill = fill == 0 and padding_mode != "replicate"
                self.assertEqual(np.isnan(expected).any(), zero_fill)
                finite = np.isfinite(expected)
                np.testing.assert_array_equal(got[~finite & ~np.isnan(expected)],
                                              expected[~finite & ~np.isnan(expected)])
                np.testing.assert_allclose(got[finite], expected[finite])
        v = rng.standard_normal((10, 30, 20)).astype(np.float32)
        v[4, 10, 3] = np.nan
        got = conv3d(v, rng.standard_normal((3, 3, 3)), padding=1, method="fold")
        expected = np.zeros(v.shape, bool)
        expected[3:6, 9:12, 2:5] = True
        np.testing.assert_array_equal(np.isnan(got), expected)


class TestAxes(unittest.TestCase):
    """axes=: SciPy's convention on conv1d, conv2d and conv3d."""

    def test_photo_channel_by_channel(self):
        rng = np.random.default_rng(13)
        photo = rng.integers(0, 256, (12, 10, 3))
        k = rng.integers(-3, 4, (3, 3))
        got = conv2d(photo, k, padding="same", axes=(0, 1))
        self.assertEqual(got.shape, (12, 10, 3))
        for c in range(3):
            np.testing.assert_array_equal(got[..., c], conv2d(photo[..., c], k, padding="same"))
        # Without axes, the last two: width x channels.
        self.assertEqual(conv2d(photo, k).shape, (12, 8, 1))
        # Kernel axes swapped: the kernel's rows run along the input's columns.
        np.testing.assert_array_equal(conv2d(photo, k, axes=(1, 0))[..., 0],
                                      conv2d(photo[..., 0], k.T))

    def test_conv1d_and_conv3d(self):
        rng = np.random.default_rng(14)
        x = rng.standard_normal((30, 4))
        w = rng.standard_normal(5)
        np.testing.assert_allclose(conv1d(x, w, stride=2, axes=0), conv1d(x.T, w, stride=2).T)
        np.testing.assert_allclose(conv1d(x, w, axes=-2), conv1d(x.T, w).T)
        v = rng.standard_normal((3, 6, 7, 8))      # channels first, axes given out of order
        k = rng.standard_normal((2, 3, 4))
        got = conv3d(v, k, padding="same", axes=(3, 1, 2))
        expected = np.moveaxis(conv3d(np.moveaxis(v, (3, 1, 2), (1, 2, 3)), k, padding="same"),
                               (1, 2, 3), (3, 1, 2))
        np.testing.assert_allclose(got, expected)

    def test_errors(self):
        x = np.ones((5, 6, 3))
        for call, error, message in [
                (lambda: conv2d(x, np.ones((2, 2)), axes=(0,)), ValueError,
                 r"axes must have 2 entries"),
                (lambda: conv2d(x, np.ones((2, 2)), axes=(1, 1)), ValueError,
                 r"axes must name 2 different axes"),
                (lambda: conv2d(x, np.ones((2, 2)), axes=(0, 5)), ValueError,
                 r"axes must be axes of the input"),
                (lambda: conv2d(x, np.ones((1, 3, 2, 2)), axes=(0, 1)), ValueError,
                 r"axes is for a filter"),
                (lambda: conv1d(x, np.ones(2), axes=(0, 1)), ValueError, r"axes must have 1"),
                (lambda: conv3d(x, np.ones((2, 2, 2)), axes=(0, 1, 1)), ValueError,
                 r"3 different axes"),
                (lambda: conv1d(x, np.ones(2), axes=0.5), TypeError, r"axes must be an int")]:
            with self.subTest(message=message), self.assertRaisesRegex(error, message):
                call()


class TestErrors(unittest.TestCase):
    """Bad input: a ValueError or TypeError naming the parameter and the rule."""

    def test_errors(self):
        signal, volume = np.ones(10), np.ones((4, 5, 6))
        cases = [
            (lambda: conv1d(signal, np.ones((2, 2))), ValueError,
             r"kernel must be 1-D \(k\) or 3-D \(C_out, C_in / groups, k\).*got shape \(2, 2\)"),
            (lambda: conv3d(volume, np.ones((2, 2))), ValueError,
             r"kernel must be 3-D \(kd, kh, kw\) or 5-D"),
            (lambda: conv3d(volume, np.ones((1, 1, 2, 2))), ValueError, r"got shape \(1, 1, 2, 2\)"),
            (lambda: conv_transpose3d(volume, np.ones((2, 2, 2, 2))), ValueError,
             r"kernel must be 3-D.*\(C_in, C_out / groups"),
            (lambda: conv1d(signal, np.ones(0)), ValueError, r"not empty"),
            (lambda: conv3d(np.ones((4, 5)), np.ones((2, 2, 2))), ValueError,
             r"matrix must have at least 3 dimensions"),
            (lambda: conv1d(np.ones(0), np.ones(1)), ValueError, r"no empty axis"),
            (lambda: conv1d(signal, np.ones(3), stride=(1, 2)), ValueError,
             r"stride must be an int >= 1 or 1 of them, got 2 values"),
            (lambda: conv3d(volume, np.ones((2, 2, 2)), dilation=(1, 1)), ValueError,
             r"dilation must be an int >= 1 or 3 of them"),
            (lambda: conv3d(volume, np.ones((2, 2, 2)), padding=((1, 1), (1, 1))), ValueError,
             r"padding must be an int, a tuple of 3 ints"),
            (lambda: conv1d(signal, np.ones(3), padding=(1, 2, 3)), ValueError,
             r"padding must be .*a pair \(before, after\)"),
            (lambda: conv1d(signal, np.ones(3), stride=1.0), TypeError, r"stride must be an int"),
            (lambda: conv3d(volume, np.ones((2, 2, 2)), padding="half"), ValueError,
             r"padding must be one of 'valid', 'same', 'full'"),
            (lambda: conv1d(signal, np.ones(3), padding_mode="mirror"), ValueError,
             r"padding_mode must be one of"),
            (lambda: conv1d(signal, np.ones(3), fill_value=1), ValueError,
             r"fill_value is used only with padding_mode='constant'"),
            (lambda: conv1d(signal, np.ones(3), method="fast"), ValueError, r"method must be one of"),
            (lambda: conv1d(signal.astype(int), np.ones(3, int), method="fold"), ValueError,
             r"method='fold' takes a real float filter"),
            (lambda: conv1d(signal, np.ones(3), groups=2), ValueError,
             r"groups must be 1 with a 1-D kernel"),
            (lambda: conv1d(signal, np.ones(3), flip=1), TypeError, r"flip must be True or False"),
            (lambda: conv1d(signal, np.ones(30)), ValueError, r"more than the padded input"),
            (lambda: conv1d(np.ones((2, 3, 10)), np.ones((4, 2, 3))), ValueError,
             r"matrix has 3 channels \(axis -2"),
            (lambda: conv3d(np.ones((2, 4, 5, 6)), np.ones((4, 3, 2, 2, 2))), ValueError,
             r"matrix has 2 channels \(axis -4"),
            (lambda: conv1d(np.ones((1, 2, 3, 10)), np.ones((4, 2, 3))), ValueError,
             r"matrix must be 3-D \(N, C_in, L\) or 2-D \(C_in, L\)"),
            (lambda: conv1d(np.ones((2, 10)), np.ones((4, 2, 3)), bias=[1, 2]), ValueError,
             r"bias must have shape \(4,\)"),
            (lambda: conv1d(signal, np.ones(3), bias=[1, 2]), ValueError,
             r"bias must be a scalar"),
            (lambda: conv_transpose1d(signal, np.ones(3), stride=2, output_padding=2), ValueError,
             r"output_padding must be smaller than the stride"),
            (lambda: conv_transpose3d(volume, np.ones((2, 2, 2)), padding="same"), TypeError,
             r"padding of a transposed convolution"),
            (lambda: conv_transpose1d(signal, np.ones(3), method="direct"), ValueError,
             r"method must be one of 'auto', 'loops'"),
            (lambda: conv3d_backward(np.ones((2, 2, 2)), volume, np.ones((2, 2, 2))), ValueError,
             r"grad_output must have the shape of conv3d's result, \(3, 4, 5\)"),
            (lambda: conv1d_backward(np.ones(3), signal, np.ones(3)), ValueError,
             r"grad_output must have the shape of conv1d's result, \(8,\)"),
            (lambda: conv1d(["a"], [1]), TypeError, r"matrix must hold numbers"),
        ]
        for call, error, message in cases:
            with self.subTest(message=message), self.assertRaisesRegex(error, message):
                call()


class TestBorderSources(unittest.TestCase):

    def test_border_cells_are_the_source_map(self):
        # padding.source_cells works out the few padded cells at the ends without the whole map.
        from convolution.padding import source_cells, source_map
        for length, before, after, mode in itertools.product((1, 2, 3, 7), (0, 1, 5, 16),
                                                            (0, 2, 9), MODES):
            expected = source_map(length, before, after, mode)
            cells = np.arange(len(expected))
            with self.subTest(length=length, before=before, after=after, mode=mode):
                np.testing.assert_array_equal(
                    source_cells(cells, length, before, after, mode), expected)


class TestMemory(unittest.TestCase):
    """No padded copy of a volume: beyond the output, a bounded block of slices."""

    def test_conv3d_memory_is_bounded(self):
        rng = np.random.default_rng(15)
        volume = rng.standard_normal((64, 96, 96)).astype(np.float32)     # 2.4 MB
        for method in ("fold", "direct"):
            with self.subTest(method=method):
                tracemalloc.start()
                try:
                    out = conv3d(volume, np.ones((3, 3, 3), np.float32), padding=1,
                                 padding_mode="reflect", method=method)
                    peak = tracemalloc.get_traced_memory()[1]
                finally:
                    tracemalloc.stop()
                extra = peak - out.nbytes
                # The block budgets (a few MiB) and the strips; never the whole padded volume
                # nor kernel-sized multiples of it (27 x the input for an im2col).
                self.assertLess(extra, max(settings.current().strip_bytes,
                                           settings.current().slice_block_bytes)
                                + volume.nbytes)

    def test_fold1d_memory_is_bounded(self):
        x = np.random.default_rng(16).standard_normal(2 * 10 ** 6)
        tracemalloc.start()
        try:
            out = conv1d(x, np.ones(31), padding="same", padding_mode="reflect")
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        self.assertLess(peak - out.nbytes, x.nbytes // 8)      # no padded copy of the signal
        self.assertTrue(fast_fold1d.pays(len(x), 31, 1))


@unittest.skipIf(matplotlib is None, "matplotlib is not installed")
class TestPictures(unittest.TestCase):
    """plot_conv1d and animate_conv1d: the cells drawn are conv1d's."""

    def test_cells_read_are_the_windows(self):
        from convolution import plot_conv1d
        from matplotlib.colors import to_hex
        from convolution.pictures.plot1d import COLORS
        for length, k, stride, dilation, padding in [(8, 3, 1, 1, (2, 0)), (9, 2, 2, 3, 1),
                                                     (5, 4, 1, 1, "same")]:
            g = conv_geometry((length,), (k,), stride, dilation, padding)
            for step in range(g.output_shape[0]):
                fig = plot_conv1d(length, k, stride, dilation, padding, step=step)
                ax = fig.axes[0]
                cells = [p for p in ax.patches if p.get_y() == 0 and p.get_fill()]
                blue = [int(p.get_x()) for p in cells
                        if to_hex(p.get_facecolor()) == COLORS["read"]]
                with self.subTest(length=length, k=k, step=step):
                    self.assertEqual(blue, [step * g.stride[0] + a * g.dilation[0]
                                            for a in range(k)])
                    self.assertEqual(len(cells), length + sum(g.padding[0]))
        self.assertIn("causal", plot_conv1d(8, 3, dilation=2, padding=(4, 0)).axes[0].get_title())
        self.assertNotIn("causal", plot_conv1d(8, 3, padding=1).axes[0].get_title())

    def test_values_and_errors(self):
        from convolution import plot_conv1d
        fig = plot_conv1d(5, 3, padding=(2, 0), signal=[1, 2, 3, 4, 5], kernel=[1, 1, 1], step=4)
        texts = [t.get_text() for t in fig.axes[0].texts]
        for value in ("1", "3", "6", "9", "12"):      # the causal moving sums, as conv1d gives
            self.assertIn(value, texts)
        with self.assertRaisesRegex(ValueError, r"step must be an output cell number from 0 to 2"):
            plot_conv1d(5, 3, step=3)
        with self.assertRaisesRegex(ValueError, r"signal must have shape \(5,\)"):
            plot_conv1d(5, 3, signal=[1, 2])
        with self.assertRaisesRegex(ValueError, r"padding_mode must be one of"):
            plot_conv1d(5, 3, padding_mode="mirror")

    def test_animation(self):
        import os
        import tempfile
        from PIL import Image
        from convolution import animate_conv1d
        with tempfile.TemporaryDirectory() as folder:
            path = animate_conv1d(7, 3, padding=(2, 0), path=os.path.join(folder, "a.gif"),
                                  max_frames=4)
            with Image.open(path) as gif:
                self.assertEqual(gif.n_frames, 4)
            with self.assertRaisesRegex(ValueError, r"path must end in '.gif'"):
                animate_conv1d(7, 3, path=os.path.join(folder, "a.png"))
            self.assertEqual(sorted(os.listdir(folder)), ["a.gif"])


@unittest.skipIf(dask_array is None, "dask is not installed")
class TestDask(unittest.TestCase):
    """Dask arrays, chunk by chunk: the in-memory result, exactly for integers."""

    def test_equal_to_in_memory(self):
        da = dask_array
        rng = np.random.default_rng(17)
        for mode in MODES:
            fill = 7 if mode == "constant" else 0
            x = rng.integers(0, 256, (3, 50)).astype(np.uint8)
            w = rng.integers(-3, 4, 5)
            lazy = conv1d(da.from_array(x, chunks=(2, 13)), w, stride=2, padding=(4, 1),
                          padding_mode=mode, fill_value=fill)
            self.assertIsInstance(lazy, da.Array)
            with self.subTest(ndim=1, mode=mode):
                np.testing.assert_array_equal(lazy.compute(), conv1d(
                    x, w, stride=2, padding=(4, 1), padding_mode=mode, fill_value=fill))
            v = rng.integers(0, 256, (7, 9, 8)).astype(np.uint8)
            k = rng.integers(-3, 4, (3, 2, 3))
            lazy = conv3d(da.from_array(v, chunks=(3, 4, 5)), k, padding=(2, 1, (0, 2)),
                          padding_mode=mode, fill_value=fill, stride=(2, 1, 1))
            with self.subTest(ndim=3, mode=mode):
                self.assertIsInstance(lazy, da.Array)
                np.testing.assert_array_equal(lazy.compute(), conv3d(
                    v, k, padding=(2, 1, (0, 2)), padding_mode=mode, fill_value=fill,
                    stride=(2, 1, 1)))
        # A layer, with a bias, and a float filter to rounding.
        x = rng.standard_normal((2, 3, 6, 7, 8))
        w = rng.standard_normal((4, 3, 2, 3, 2))
        lazy = conv3d(da.from_array(x, chunks=(1, 3, 3, 4, 4)), w, padding="same", bias=np.ones(4),
                      padding_mode="circular")
        np.testing.assert_allclose(lazy.compute(), conv3d(x, w, padding="same", bias=np.ones(4),
                                                          padding_mode="circular"))
        f = rng.standard_normal((9, 10, 11))
        np.testing.assert_allclose(
            conv3d(da.from_array(f, chunks=4), w[0, 0], padding=1, axes=(2, 0, 1)).compute(),
            conv3d(f, w[0, 0], padding=1, axes=(2, 0, 1)))

    def test_errors_before_computing(self):
        lazy = dask_array.ones((4, 5, 6), chunks=2)
        with self.assertRaisesRegex(ValueError, r"dilation must be an int >= 1 or 3 of them"):
            conv3d(lazy, np.ones((2, 2, 2)), dilation=(1, 1))
        with self.assertRaisesRegex(ValueError, r"more than the padded input"):
            conv3d(lazy, np.ones((5, 2, 2)))


if __name__ == "__main__":
    unittest.main()
