"""The test suite: ``python -m unittest tests.py`` runs all of it.

One TestCase class per concern. Tests that need an optional package (SciPy,
PyTorch, OpenCV, ...) skip cleanly when it is not installed; ``.ci/run``
installs them, so CI runs everything.
"""
import doctest
import importlib
import itertools
import os
import pkgutil
import tracemalloc
import unittest
import warnings
from pathlib import Path

import numpy as np

import convolution
from convolution import conv2d, conv_output_shape, engine
from convolution.engine import METHODS as FAST_METHODS, choose_method
from convolution.padding import PADDING_MODES, Padded, pad
from convolution.reference import conv2d_loops
from convolution.shapes import conv_geometry

HERE = Path(__file__).resolve().parent


def optional(name):
    """The module ``name``, or None when it is not installed (its tests then skip).

    CI sets CONVOLUTION_TEST_REQUIRE_OPTIONAL=1 after installing every optional
    package, so that there a missing one fails the run instead of skipping.
    """
    try:
        return importlib.import_module(name)
    except ImportError:
        if os.environ.get("CONVOLUTION_TEST_REQUIRE_OPTIONAL") == "1":
            raise
        return None


scipy_signal = optional("scipy.signal")
torch = optional("torch")


def load_tests(loader, tests, pattern):
    """Add the docstring examples of every module and the README's examples."""
    for module in pkgutil.iter_modules(convolution.__path__, "convolution."):
        if module.name in ("convolution.plot", "convolution.animation") and matplotlib is None:
            continue    # its examples draw figures (matplotlib is set up at the end of the file)
        tests.addTests(doctest.DocTestSuite(importlib.import_module(module.name)))
    tests.addTests(doctest.DocTestSuite(convolution))
    tests.addTests(doctest.DocFileSuite(str(HERE / "README.md"), module_relative=False,
                                        globs={"np": np}))
    return tests


# Small integer matrices for the hand-computed maps. Each expected map below was
# worked out independently of the library (pure-Python index arithmetic, checked
# by hand on a few cells), never produced by conv2d.
M = np.array([[3, 1, 4, 1, 5, 9],
              [2, 6, 5, 3, 5, 8],
              [9, 7, 9, 3, 2, 3],
              [8, 4, 6, 2, 6, 4],
              [3, 3, 8, 3, 2, 7]])
K3 = np.array([[1, 0, -1],
               [2, 1, 0],
               [0, 1, 1]])
K2 = np.array([[1, 2],
               [-1, 1]])
K23 = np.array([[1, 0, 2],
                [0, -1, 1]])


def random_case(rng):
    """Random arguments for conv2d: shapes, dtypes and every parameter form."""
    kh, kw = rng.integers(1, 6, size=2)
    dh, dw = rng.integers(1, 4, size=2)
    sh, sw = rng.integers(1, 4, size=2)
    batch = tuple(rng.integers(1, 3, size=rng.integers(0, 3)))
    form = rng.integers(5)
    padding = ("valid", "same", "full", tuple(rng.integers(0, 4, size=2)),
               tuple(tuple(p) for p in rng.integers(0, 5, size=(2, 2))))[form]
    span_h, span_w = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    h = int(rng.integers(max(span_h - 2, 1), span_h + 12))
    w = int(rng.integers(max(span_w - 2, 1), span_w + 12))
    mode = list(PADDING_MODES)[rng.integers(len(PADDING_MODES))]
    kind = rng.integers(3)
    if kind == 0:
        matrix = rng.integers(-50, 50, size=batch + (h, w))
        kernel = rng.integers(-5, 6, size=(kh, kw))
    elif kind == 1:
        matrix = rng.standard_normal(batch + (h, w)).astype(np.float32)
        kernel = rng.standard_normal((kh, kw)).astype(np.float32)
    else:
        matrix = rng.standard_normal(batch + (h, w))
        kernel = rng.standard_normal((kh, kw))
    fill = int(rng.integers(-3, 4)) if mode == "constant" else 0
    return matrix, kernel, dict(stride=(int(sh), int(sw)), dilation=(int(dh), int(dw)),
                                padding=padding, padding_mode=mode, fill_value=fill,
                                flip=bool(rng.integers(2)))


def fits(matrix, kernel, params):
    """Whether the dilated kernel fits in the padded input for these parameters."""
    try:
        conv_output_shape(matrix.shape, kernel.shape, params["stride"], params["dilation"],
                          params["padding"])
    except ValueError:
        return False
    return True


def exact_methods(kernel):
    """The methods that must give exact integer results for this integer kernel."""
    methods = ("auto", "loops", "direct", "polyphase")
    if rank_one_integer(np.asarray(kernel)):
        methods += ("separable",)
    return methods


def rank_one_integer(kernel):
    """Whether an integer kernel is the outer product of two integer vectors."""
    return kernel.dtype.kind in "iub" and np.linalg.matrix_rank(kernel) <= 1 and kernel.any()


def assert_close(test, actual, expected, scale, ulps=32):
    """Equal on integers; on floats within ``ulps`` rounding units of ``scale``.

    ``scale`` is the size of the terms summed, ``sum(|kernel|) * max(|matrix|)``:
    rounding errors of a sum are relative to its terms, not to its result,
    which cancellation can make arbitrarily small.
    """
    test.assertEqual(actual.shape, expected.shape)
    test.assertEqual(actual.dtype, expected.dtype)
    if actual.dtype.kind in "iub":
        np.testing.assert_array_equal(actual, expected)
    else:
        tol = ulps * np.finfo(actual.dtype).eps * max(scale, np.finfo(actual.dtype).tiny)
        np.testing.assert_allclose(actual, expected, rtol=0, atol=tol)


def term_scale(matrix, kernel, fill_value=0):
    """``sum(|kernel|) * max(|matrix|, |fill_value|)``: the size of the terms of each sum."""
    return float(np.abs(kernel).sum() * max(np.abs(matrix).max(), abs(fill_value)))


class TestOutputShape(unittest.TestCase):
    """conv_output_shape: the formula and the string paddings."""

    def test_formula(self):
        # floor((H + top + bottom - dh*(kh-1) - 1) / sh) + 1, worked out by hand.
        self.assertEqual(conv_output_shape((9, 14), (5, 5), (2, 1), (1, 2)), (3, 6))
        self.assertEqual(conv_output_shape((10, 10), (3, 3), 3, 1, 1), (4, 4))
        self.assertEqual(conv_output_shape((7, 8), (2, 3), (1, 2), (3, 1), ((0, 1), (2, 0))),
                         (5, 4))
        self.assertEqual(conv_output_shape((1, 1), (1, 1)), (1, 1))
        self.assertEqual(conv_output_shape((4, 3, 6, 6), (3, 3)), (4, 4))

    def test_same_follows_tensorflow(self):
        for h, k, s, d in itertools.product(range(1, 12), range(1, 6), range(1, 4), range(1, 3)):
            with self.subTest(h=h, k=k, s=s, d=d):
                out = conv_output_shape((h, h), (k, k), s, d, "same")
                self.assertEqual(out, (-(-h // s),) * 2)

    def test_full_and_valid(self):
        self.assertEqual(conv_output_shape((5, 6), (3, 2), padding="full"), (7, 7))
        self.assertEqual(conv_output_shape((5, 6), (3, 2), dilation=2, padding="full"), (9, 8))
        self.assertEqual(conv_output_shape((5, 6), (3, 2), padding="valid"), (3, 5))

    def test_numpy_integers_accepted(self):
        self.assertEqual(conv_output_shape((np.int64(9), 14), (5, np.int32(5)), np.int64(2),
                                           (np.uint8(1), 2)), (3, 3))

    def test_does_not_fit(self):
        with self.assertRaisesRegex(ValueError, r"output shape would be \(1, -1\)"):
            conv_output_shape((5, 5), (3, 3), dilation=(2, 3))


class TestHandComputed(unittest.TestCase):
    """Feature maps worked out independently of the library, one per parameter."""

    def check(self, expected, matrix, kernel, *args, **kwargs):
        """Every exact method gives ``expected`` exactly; every method, in float64, closely."""
        for method in exact_methods(kernel):
            with self.subTest(method=method):
                result = conv2d(matrix, kernel, *args, method=method, **kwargs)
                self.assertEqual(result.dtype, np.int64)
                np.testing.assert_array_equal(result, expected)
        matrix, kernel = np.asarray(matrix, float), np.asarray(kernel, float)
        for method in ("auto",) + tuple(FAST_METHODS):
            with self.subTest(method=method, dtype="float64"):
                result = conv2d(matrix, kernel, *args, method=method, **kwargs)
                assert_close(self, result, np.asarray(expected, float),
                             term_scale(matrix, kernel, kwargs.get("fill_value", 0)))

    def test_readme_example(self):
        matrix = [[1, 4, 4, 2, 1, 0, 0, 1, 0, 0, 3, 3, 3, 4], [0, 2, 0, 2, 0, 3, 4, 4, 2, 1, 1, 3, 0, 4],
                  [1, 1, 0, 0, 3, 4, 2, 4, 4, 2, 3, 0, 0, 4], [4, 0, 1, 2, 0, 2, 0, 3, 3, 3, 0, 4, 1, 0],
                  [3, 0, 0, 3, 3, 3, 2, 0, 2, 1, 1, 0, 4, 2], [2, 4, 3, 1, 1, 0, 2, 1, 3, 4, 4, 0, 2, 3],
                  [2, 4, 3, 3, 2, 1, 4, 0, 3, 4, 1, 2, 0, 0], [2, 1, 0, 1, 1, 2, 2, 3, 0, 0, 1, 2, 4, 2],
                  [3, 3, 1, 1, 1, 1, 4, 4, 2, 3, 2, 2, 2, 3]]
        kernel = [[0, 1, 3, 3, 2], [0, 1, 3, 1, 3], [1, 1, 2, 0, 2], [2, 2, 3, 2, 0], [1, 3, 1, 2, 0]]
        expected = [[52, 64, 60, 83, 61, 91], [84, 85, 78, 81, 94, 66], [77, 76, 74, 50, 79, 72]]
        self.check(expected, matrix, kernel, stride=(2, 1), dilation=(1, 2), padding=(0, 0))
        self.check(expected, matrix, kernel, (2, 1), (1, 2), (0, 0))

    def test_stride_per_axis(self):
        self.check([[25, 29, 17, 8], [31, 29, 26, 19]], M, K3, stride=(2, 1))
        self.check([[25, 8], [32, 13], [31, 19]], M, K3, stride=(1, 3))

    def test_dilation_per_axis(self):
        self.check([[35, 34, 25, 9]], M, K3, dilation=(2, 1))
        self.check([[14, 0, 14, 24], [12, 8, 8, 19], [25, 11, 13, 11], [25, 8, 12, 14]],
                   M, K2, dilation=(1, 2))

    def test_padding_per_axis(self):
        self.check([[18, 14, 17, 20], [25, 29, 17, 8], [32, 34, 29, 13], [31, 29, 26, 19],
                    [11, 16, 19, 6]], M, K3, padding=(1, 0))
        self.check([[0, 8, 9, 8, 4, 13, 26, 1, 0], [0, 13, 12, 18, 5, 12, 22, 5, 0],
                    [0, 26, 19, 27, 11, 11, 6, -1, 0], [0, 19, 16, 21, 5, 13, 19, -3, 0]],
                   M, K2, padding=(0, 2))

    def test_stride_dilation_padding_combined(self):
        self.check([[10, 20, 18], [18, 36, 31], [-3, 16, 24]],
                   M, K3, stride=2, dilation=(1, 2), padding=(1, 2))

    def test_even_kernel(self):
        self.check([[9, 8, 4, 13, 26], [12, 18, 5, 12, 22], [19, 27, 11, 11, 6],
                    [16, 21, 5, 13, 19]], M, K2)

    def test_non_square_kernel(self):
        self.check([[10, 16], [14, 14], [29, 17], [25, 17]], M, K23, stride=(1, 2))

    def test_asymmetric_padding(self):
        self.check([[8, 9, 8, 4, 13, 26], [13, 12, 18, 5, 12, 22], [26, 19, 27, 11, 11, 6],
                    [19, 16, 21, 5, 13, 19], [6, 9, 19, 14, 7, 16], [0, 0, 0, 0, 0, 0]],
                   M, K2, padding=((0, 2), (1, 0)))

    def test_same_with_stride_2_and_even_kernel(self):
        # H=5: 3 outputs, total = 2*2 + 2 - 5 = 1 row, at the bottom. W=6: total 0.
        self.check([[9, 4, 26], [19, 11, 6], [9, 14, 16]], M, K2, stride=2, padding="same")

    def test_each_padding_mode(self):
        expected = {
            "zeros": [[0, 3, -2, 3, -3, 4, 4, -9], [0, 8, 9, 8, 4, 13, 26, 1],
                      [0, 13, 12, 18, 5, 12, 22, 5], [0, 26, 19, 27, 11, 11, 6, -1],
                      [0, 19, 16, 21, 5, 13, 19, -3], [0, 6, 9, 19, 14, 7, 16, 7],
                      [0, 0, 0, 0, 0, 0, 0, 0]],
            "constant": [[21, 17, 19, 24, 18, 25, 25, 19], [21, 8, 9, 8, 4, 13, 26, 22],
                         [21, 13, 12, 18, 5, 12, 22, 26], [21, 26, 19, 27, 11, 11, 6, 20],
                         [21, 19, 16, 21, 5, 13, 19, 18], [21, 13, 9, 19, 14, 7, 16, 21],
                         [21, 21, 21, 21, 21, 21, 21, 21]],
            "reflect": [[14, 12, 12, 19, 8, 17, 25, 14], [7, 3, 9, 8, 4, 13, 26, 16],
                        [15, 12, 12, 18, 5, 12, 22, 17], [21, 29, 19, 27, 11, 11, 6, 9],
                        [9, 20, 16, 21, 5, 13, 19, 11], [12, 13, 5, 21, 10, 11, 14, 13],
                        [12, 22, 14, 18, 4, 13, 15, 15]],
            "symmetric": [[9, 9, 3, 12, 3, 15, 27, 27], [3, 9, 9, 8, 4, 13, 26, 27],
                          [12, 6, 12, 18, 5, 12, 22, 24], [29, 27, 19, 27, 11, 11, 6, 9],
                          [20, 24, 16, 21, 5, 13, 19, 12], [9, 9, 9, 24, 9, 6, 21, 21],
                          [13, 9, 5, 21, 10, 11, 14, 21]],
            "replicate": [[9, 9, 3, 12, 3, 15, 27, 27], [9, 9, 9, 8, 4, 13, 26, 27],
                          [6, 6, 12, 18, 5, 12, 22, 24], [27, 27, 19, 27, 11, 11, 6, 9],
                          [24, 24, 16, 21, 5, 13, 19, 12], [9, 9, 9, 24, 9, 6, 21, 21],
                          [9, 9, 9, 24, 9, 6, 21, 21]],
            "circular": [[20, 7, 7, 22, 11, 11, 20, 7], [26, 9, 9, 8, 4, 13, 26, 9],
                         [22, 18, 12, 18, 5, 12, 22, 18], [6, 25, 19, 27, 11, 11, 6, 25],
                         [19, 16, 16, 21, 5, 13, 19, 16], [20, 7, 7, 22, 11, 11, 20, 7],
                         [26, 9, 9, 8, 4, 13, 26, 9]],
        }
        for mode, feature_map in expected.items():
            with self.subTest(padding_mode=mode):
                self.check(feature_map, M, K2, padding=((1, 2), (2, 1)), padding_mode=mode,
                           fill_value=7 if mode == "constant" else 0)

    def test_padding_wider_than_the_input(self):
        self.check([[12, 21, 32, 23, 12, 21, 32, 23, 12, 21, 32, 23],
                    [45, 54, 65, 56, 45, 54, 65, 56, 45, 54, 65, 56]],
                   [[1, 2, 3], [4, 5, 6]], [[1, 10]], padding=(0, 5), padding_mode="reflect")
        self.check([[666, 555, 444], [333, 222, 111], [666, 555, 444], [333, 222, 111]],
                   [[1, 2, 3], [4, 5, 6]], [[1, 10, 100]], stride=(1, 2), dilation=(1, 3),
                   padding=(1, 4), padding_mode="circular")

    def test_flip_is_true_convolution(self):
        # Flipped K2 is [[1, -1], [2, 1]]: out[0, 0] = 3 - 1 + 2*2 + 6 = 12.
        self.check([[12, 14, 16, 7, 14], [21, 24, 23, 6, 4], [22, 12, 20, 11, 15],
                    [13, 12, 23, 4, 13]], M, K2, flip=True)

    def test_one_by_one_kernel_and_batch(self):
        batch = np.stack([M, -M, 2 * M])
        self.check(np.stack([3 * M, -3 * M, 6 * M])[:, ::2, ::3], batch, [[3]], stride=(2, 3))


def compare_with_loops(test, seed, cases, methods=None):
    """Every fast path against the reference loops on ``cases`` random arguments."""
    rng = np.random.default_rng(seed)
    checked = 0
    while checked < cases:
        matrix, kernel, params = random_case(rng)
        if not fits(matrix, kernel, params):
            continue
        expected = conv2d(matrix, kernel, method="loops", **params)
        applicable = ("auto",) + tuple(
            exact_methods(kernel) if kernel.dtype.kind == "i" else FAST_METHODS)
        for method in [m for m in methods or applicable if m in applicable]:
            with test.subTest(case=checked, method=method, shape=matrix.shape,
                              kernel=kernel.shape, **params):
                assert_close(test, conv2d(matrix, kernel, method=method, **params), expected,
                             term_scale(matrix, kernel, params["fill_value"]))
        checked += 1


class TestAgainstReference(unittest.TestCase):
    """Every fast path against the reference loops, on random arguments."""

    def test_random_cases(self):
        compare_with_loops(self, 20261125, 400)

    def test_reference_on_padded_input(self):
        # conv2d pads, then runs the loops: the same as padding by hand with np.pad.
        rng = np.random.default_rng(7)
        x = rng.integers(-9, 10, size=(6, 7))
        k = rng.integers(-3, 4, size=(2, 3))
        padded = np.pad(x, ((1, 2), (0, 3)), mode="symmetric")
        np.testing.assert_array_equal(
            conv2d_loops(padded, k, (2, 1), (2, 2)),
            conv2d(x, k, (2, 1), (2, 2), ((1, 2), (0, 3)), padding_mode="symmetric"))


class TestFastPaths(unittest.TestCase):
    """The engine's machinery: strips, tiles and threads, paths, and the choice 'auto' makes."""

    def setUp(self):
        self.saved = engine.STRIP_BYTES, engine.FFT_TILE, os.environ.get("CONVOLUTION_THREADS")

    def tearDown(self):
        engine.STRIP_BYTES, engine.FFT_TILE, threads = self.saved
        if threads is None:
            os.environ.pop("CONVOLUTION_THREADS", None)
        else:
            os.environ["CONVOLUTION_THREADS"] = threads

    def test_many_strips_tiles_and_threads(self):
        # Tiny strips and FFT tiles cut even the small random cases into many
        # pieces, shared by 3 threads: every seam must be invisible.
        engine.STRIP_BYTES, engine.FFT_TILE = 256, 8
        os.environ["CONVOLUTION_THREADS"] = "3"
        compare_with_loops(self, 99, 150, methods=tuple(FAST_METHODS))

    def test_large_image_in_strips(self):
        rng = np.random.default_rng(8)
        x = rng.standard_normal((2, 301, 257)).astype(np.float32)
        k = rng.standard_normal((4, 3)).astype(np.float32)
        for params in (dict(padding="same"), dict(stride=(2, 3), dilation=(3, 2), padding=(5, 1),
                                                  padding_mode="reflect")):
            expected = conv2d(x.astype(np.float64), k.astype(np.float64), method="direct",
                              **params)
            for method in FAST_METHODS:
                with self.subTest(method=method, **params):
                    result = conv2d(x, k, method=method, **params)
                    self.assertEqual(result.dtype, np.float32)
                    assert_close(self, result, expected.astype(np.float32), term_scale(x, k), 8)

    def test_padded_region_equals_np_pad(self):
        rng = np.random.default_rng(9)
        for _ in range(2000):
            n, h, w = rng.integers(1, 3), rng.integers(1, 7), rng.integers(1, 7)
            x = rng.integers(-9, 9, size=(n, h, w))
            pads = tuple(tuple(int(v) for v in rng.integers(0, 12, size=2)) for _ in range(2))
            mode = list(PADDING_MODES)[rng.integers(len(PADDING_MODES))]
            fill = 5 if mode == "constant" else 0
            full = pad(x, pads, mode, fill)
            rows = range(rng.integers(full.shape[1]), rng.integers(full.shape[1] + 4) + 1,
                         rng.integers(1, 4))
            cols = range(rng.integers(full.shape[2]), rng.integers(full.shape[2] + 4) + 1,
                         rng.integers(1, 4))
            region = Padded(x, pads, mode, fill).region(slice(None), rows, cols, np.int64)
            expected = np.zeros((n, len(rows), len(cols)), np.int64)
            inside = full[:, rows.start:rows.stop:rows.step, cols.start:cols.stop:cols.step]
            expected[:, :inside.shape[1], :inside.shape[2]] = inside
            with self.subTest(shape=x.shape, padding=pads, mode=mode, rows=rows, cols=cols):
                np.testing.assert_array_equal(region, expected)

    def test_rank_terms(self):
        sobel = np.array([[1, 0, -1], [2, 0, -2], [1, 0, -1]])
        (u, v), = engine._rank_terms(sobel)
        np.testing.assert_array_equal(np.outer(u, v), sobel)
        self.assertEqual(u.dtype.kind, "i")
        self.assertIsNone(engine._rank_terms(np.array([[1, 2], [3, 4]])))
        g = np.outer([1.0, 4, 6, 4, 1], [1.0, 2, 1]) / 64
        self.assertEqual(len(engine._rank_terms(g)), 1)
        rng = np.random.default_rng(10)
        k = rng.standard_normal((5, 4))
        terms = engine._rank_terms(k)
        self.assertEqual(len(terms), 4)
        np.testing.assert_allclose(sum(np.outer(u, v) for u, v in terms), k, atol=1e-14)

    def test_auto_choices(self):
        rng = np.random.default_rng(11)
        def choice(shape, kernel, **params):
            return choose_method(shape, kernel, conv_geometry(shape, kernel.shape, **params))
        gaussian = np.outer(np.hanning(11), np.hanning(11))
        self.assertEqual(choice((1024, 1024), rng.random((3, 3))), "polyphase")
        self.assertEqual(choice((1024, 1024), gaussian), "separable")
        self.assertEqual(choice((1024, 1024), rng.random((31, 31))), "fft")
        self.assertEqual(choice((1024, 1024), rng.random((3, 3)), stride=2, dilation=2),
                         "polyphase")
        # Integers: never the FFT, and separable only when exact.
        self.assertNotEqual(choice((1024, 1024), rng.integers(-5, 5, (31, 31))), "fft")
        self.assertEqual(choice((1024, 1024), np.outer(np.arange(1, 12), np.arange(1, 12))),
                         "separable")

    def test_integer_separable_is_exact(self):
        x = np.full((40, 50), 2 ** 40, dtype=np.int64)
        x[::3] += 1
        k = np.outer([1, 2, 1], [1, 0, -1, 5])
        np.testing.assert_array_equal(conv2d(x, k, method="separable"),
                                      conv2d(x, k, method="loops"))

    def test_zero_integer_kernel(self):
        for method in ("auto", "direct", "polyphase"):
            with self.subTest(method=method):
                result = conv2d(np.ones((5, 5), int), np.zeros((2, 2), int), method=method)
                np.testing.assert_array_equal(result, np.zeros((4, 4)))


class TestMemory(unittest.TestCase):
    """Memory beyond input and output stays within a few strips, not copies of the input."""

    def peak(self, function):
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            result = function()
            return tracemalloc.get_traced_memory()[1] - base - result.nbytes
        finally:
            tracemalloc.stop()

    def test_non_fft_paths_stay_within_three_outputs(self):
        rng = np.random.default_rng(12)
        x = rng.random((1024, 1024)).astype(np.float32)
        gaussian = np.outer(np.hanning(11), np.hanning(11)).astype(np.float32)
        for method, kernel in (("direct", x[:3, :3]), ("polyphase", x[:11, :11]),
                               ("separable", gaussian)):
            for stride in (1, 2):
                with self.subTest(method=method, stride=stride):
                    extra = self.peak(lambda: conv2d(x, kernel, stride, padding="same",
                                                     padding_mode="reflect", method=method))
                    output = (1024 // stride) ** 2 * 4
                    self.assertLess(extra, 3 * output)

    def test_fft_memory_does_not_grow_with_the_image(self):
        # Overlap-save: the FFT's buffers are a few tiles, whatever the image size.
        rng = np.random.default_rng(13)
        kernel = rng.random((31, 31)).astype(np.float32)
        extra = []
        for n in (1024, 2048):
            x = rng.random((n, n)).astype(np.float32)
            extra.append(self.peak(lambda: conv2d(x, kernel, padding="same", method="fft")))
        self.assertLess(extra[1], 1.25 * extra[0] + 2 ** 20)


@unittest.skipIf(scipy_signal is None, "scipy is not installed")
class TestScipyOracle(unittest.TestCase):
    """scipy.signal.correlate2d at stride 1; a dilated kernel has zeros between its taps."""

    @staticmethod
    def dilate(kernel, dilation):
        kh, kw = kernel.shape
        dilated = np.zeros(((kh - 1) * dilation[0] + 1, (kw - 1) * dilation[1] + 1), kernel.dtype)
        dilated[::dilation[0], ::dilation[1]] = kernel
        return dilated

    def test_valid_and_full(self):
        rng = np.random.default_rng(3)
        for _ in range(60):
            x = rng.standard_normal((rng.integers(8, 20), rng.integers(8, 20)))
            k = rng.standard_normal(tuple(rng.integers(1, 5, size=2)))
            dilation = tuple(int(d) for d in rng.integers(1, 3, size=2))
            for padding in ("valid", "full"):
                with self.subTest(shape=x.shape, kernel=k.shape, dilation=dilation,
                                  padding=padding):
                    expected = scipy_signal.correlate2d(x, self.dilate(k, dilation), mode=padding)
                    assert_close(self, conv2d(x, k, dilation=dilation, padding=padding),
                                 expected, term_scale(x, k))

    def test_border_modes(self):
        # scipy's boundaries: 'fill' is constant, 'wrap' circular, 'symm' symmetric.
        rng = np.random.default_rng(4)
        x = rng.integers(-20, 20, size=(9, 11))
        k = rng.integers(-3, 4, size=(3, 4))
        for mode, boundary in (("constant", "fill"), ("circular", "wrap"),
                               ("symmetric", "symm")):
            with self.subTest(padding_mode=mode):
                fill = 5 if mode == "constant" else 0
                expected = scipy_signal.correlate2d(x, k, mode="full", boundary=boundary,
                                                    fillvalue=fill)
                np.testing.assert_array_equal(
                    conv2d(x, k, padding="full", padding_mode=mode, fill_value=fill), expected)

    def test_flip_is_convolve2d(self):
        rng = np.random.default_rng(5)
        x, k = rng.standard_normal((10, 12)), rng.standard_normal((4, 3))
        assert_close(self, conv2d(x, k, padding="full", flip=True),
                     scipy_signal.convolve2d(x, k, mode="full"), term_scale(x, k))

    def test_complex(self):
        # correlate2d conjugates its second argument; conv2d does not.
        rng = np.random.default_rng(6)
        x = rng.standard_normal((8, 9)) + 1j * rng.standard_normal((8, 9))
        k = rng.standard_normal((3, 3)) + 1j * rng.standard_normal((3, 3))
        result = conv2d(x, k)
        self.assertEqual(result.dtype, np.complex128)
        assert_close(self, result, scipy_signal.correlate2d(x, np.conj(k), mode="valid"),
                     term_scale(x, k))


@unittest.skipIf(torch is None, "torch is not installed")
class TestTorchOracle(unittest.TestCase):
    """torch.nn.functional.conv2d, on random stride, dilation, padding and border modes."""

    def test_random_cases(self):
        F = torch.nn.functional
        rng = np.random.default_rng(11)
        torch_modes = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate",
                       "circular": "circular"}
        checked = 0
        while checked < 150:
            x = rng.standard_normal((2, rng.integers(5, 20), rng.integers(5, 20)))
            k = rng.standard_normal(tuple(rng.integers(1, 6, size=2)))
            stride = tuple(int(v) for v in rng.integers(1, 4, size=2))
            dilation = tuple(int(v) for v in rng.integers(1, 4, size=2))
            pads = rng.integers(0, 4, size=4)   # top, bottom, left, right
            mode = list(torch_modes)[rng.integers(4)]
            if mode == "reflect":    # torch's reflect needs padding < input size
                pads = np.minimum(pads, min(x.shape[-2:]) - 1)
            padding = ((int(pads[0]), int(pads[1])), (int(pads[2]), int(pads[3])))
            try:
                ours = conv2d(x, k, stride, dilation, padding, padding_mode=mode)
            except ValueError:
                continue    # the dilated kernel does not fit
            padded = F.pad(torch.from_numpy(x)[:, None],
                           (padding[1][0], padding[1][1], padding[0][0], padding[0][1]),
                           mode=torch_modes[mode])
            theirs = F.conv2d(padded, torch.from_numpy(k)[None, None], stride=stride,
                              dilation=dilation)[:, 0].numpy()
            with self.subTest(case=checked, stride=stride, dilation=dilation, padding=padding,
                              mode=mode):
                assert_close(self, ours, theirs, term_scale(x, k))
            checked += 1

    def test_same_at_stride_1(self):
        rng = np.random.default_rng(12)
        for kh, kw, dh, dw in itertools.product((1, 2, 3, 4), (2, 5), (1, 2), (1, 3)):
            x, k = rng.standard_normal((13, 16)), rng.standard_normal((kh, kw))
            with warnings.catch_warnings():   # torch warns that it copies for even kernels
                warnings.simplefilter("ignore", UserWarning)
                theirs = torch.nn.functional.conv2d(
                    torch.from_numpy(x)[None, None], torch.from_numpy(k)[None, None],
                    dilation=(dh, dw), padding="same")[0, 0].numpy()
            with self.subTest(kernel=(kh, kw), dilation=(dh, dw)):
                assert_close(self, conv2d(x, k, dilation=(dh, dw), padding="same"), theirs,
                             term_scale(x, k))


class TestDtypes(unittest.TestCase):
    """Result dtypes, exact integers, IEEE special values, and no aliasing."""

    def test_integers_are_exact_in_int64(self):
        # 2**53 + 1 is not a float64: a float path would lose the final 1.
        x = np.array([[2 ** 52, 2 ** 52, 1]], dtype=np.int64)
        for method in exact_methods(np.ones((1, 3), int)):
            with self.subTest(method=method):
                result = conv2d(x, [[1, 1, 1]], method=method)
                self.assertEqual(result.dtype, np.int64)
                self.assertEqual(int(result[0, 0]), 2 ** 53 + 1)

    def test_small_integer_types_do_not_overflow(self):
        x = np.full((4, 4), 255, dtype=np.uint8)
        k = np.full((3, 3), 100, dtype=np.int8)
        result = conv2d(x, k)
        self.assertEqual(result.dtype, np.int64)
        np.testing.assert_array_equal(result, np.full((2, 2), 9 * 255 * 100))

    def test_bool(self):
        x = np.eye(4, dtype=bool)
        result = conv2d(x, np.ones((2, 2), dtype=bool))
        self.assertEqual(result.dtype, np.int64)
        np.testing.assert_array_equal(result, [[2, 1, 0], [1, 2, 1], [0, 1, 2]])

    def test_float_dtypes_follow_numpy_promotion(self):
        cases = [(np.float32, np.float32, np.float32), (np.float64, np.float32, np.float64),
                 (np.uint8, np.float32, np.float32), (np.int64, np.float64, np.float64),
                 (np.float16, np.float16, np.float16), (np.float32, np.complex64, np.complex64),
                 (bool, np.float64, np.float64)]
        for matrix_dtype, kernel_dtype, expected in cases:
            with self.subTest(matrix=matrix_dtype, kernel=kernel_dtype):
                result = conv2d(np.ones((5, 5), matrix_dtype), np.ones((3, 3), kernel_dtype))
                self.assertEqual(result.dtype, expected)
                np.testing.assert_array_equal(result, np.full((3, 3), 9))

    def test_uint64_beyond_int64_is_refused(self):
        with self.assertRaisesRegex(ValueError, "matrix holds values above 2\\*\\*63 - 1"):
            conv2d(np.full((3, 3), 2 ** 63, dtype=np.uint64), [[1]])

    def test_nan_and_inf_propagate(self):
        x = np.zeros((5, 5))
        x[2, 2] = np.nan
        x[0, 4] = np.inf
        for method in ("auto", "loops", "direct", "polyphase"):
            with self.subTest(method=method), np.errstate(invalid="ignore"):
                # Every window over (2, 2) is NaN, even where the weight is 0 (NaN * 0).
                # The one window over (0, 4) meets it with weight 0: inf * 0 is NaN.
                result = conv2d(x, [[1.0, 0.0], [0.0, 1.0]], method=method)
                nan = np.zeros((4, 4), bool)
                nan[1:3, 1:3] = nan[0, 3] = True
                np.testing.assert_array_equal(np.isnan(result), nan)
                np.testing.assert_array_equal(result[~nan], 0)
                # With positive weights the infinity stays an infinity.
                result = conv2d(x, np.ones((2, 2)), method=method)
                self.assertEqual(result[0, 3], np.inf)

    def test_auto_keeps_nan_local_where_fft_would_be_faster(self):
        # A large kernel on a large image is the FFT's case; a NaN must still
        # reach only the outputs whose window holds it.
        x = np.random.default_rng(1).random((300, 300))
        x[150, 150] = np.nan
        kernel = np.random.default_rng(2).random((25, 25))
        self.assertEqual(choose_method((300, 300), kernel, conv_geometry((300, 300), (25, 25))),
                         "fft")
        with np.errstate(invalid="ignore"):
            result = conv2d(x, kernel)
        nan = np.zeros(result.shape, bool)
        nan[126:151, 126:151] = True
        np.testing.assert_array_equal(np.isnan(result), nan)

    def test_inputs_unchanged_and_result_not_shared(self):
        for method in ("auto", "loops") + tuple(FAST_METHODS):
            for kernel in ([[1.0]], [[1.0, 2.0], [3.0, 4.0]]):
                x = np.arange(20.0).reshape(4, 5)
                k = np.array(kernel)
                x_before, k_before = x.copy(), k.copy()
                result = conv2d(x, k, method=method)
                with self.subTest(method=method, kernel=k.shape):
                    np.testing.assert_array_equal(x, x_before)
                    np.testing.assert_array_equal(k, k_before)
                    self.assertFalse(np.shares_memory(result, x))
                    self.assertFalse(np.shares_memory(result, k))

    def test_read_only_and_non_contiguous_inputs(self):
        x = np.arange(60.0).reshape(6, 10)[:, ::2]
        x.flags.writeable = False
        expected = conv2d(np.ascontiguousarray(x), np.ones((2, 2)), method="loops")
        for method in ("auto",) + tuple(FAST_METHODS):
            with self.subTest(method=method):
                assert_close(self, conv2d(x, np.ones((2, 2)), method=method), expected,
                             term_scale(x, np.ones((2, 2))))


class TestErrors(unittest.TestCase):
    """Every bad input: the exception type and the rule it breaks."""

    x = np.ones((6, 6))
    k = np.ones((3, 3))

    def check(self, error, pattern, *args, **kwargs):
        with self.assertRaisesRegex(error, pattern):
            conv2d(*args, **kwargs)

    def test_stride_and_dilation(self):
        for name in ("stride", "dilation"):
            with self.subTest(name=name):
                self.check(ValueError, rf"{name} must be an int >= 1 .*got 0",
                           self.x, self.k, **{name: 0})
                self.check(ValueError, rf"{name} must .*got \(1, -2\)", self.x, self.k,
                           **{name: (1, -2)})
                self.check(TypeError, rf"{name} must .*got 2.0", self.x, self.k, **{name: 2.0})
                self.check(TypeError, rf"{name} must .*got True", self.x, self.k, **{name: True})
                self.check(TypeError, rf"{name} must .*got '2'", self.x, self.k, **{name: "2"})
                self.check(ValueError, rf"{name} must .*3 values", self.x, self.k,
                           **{name: (1, 1, 1)})

    def test_padding(self):
        self.check(ValueError, r"padding must be non-negative, got -1", self.x, self.k, padding=-1)
        self.check(ValueError, r"padding must be non-negative, got \(\(0, 1\), \(-1, 0\)\)",
                   self.x, self.k, padding=((0, 1), (-1, 0)))
        self.check(ValueError, r"one of 'valid', 'same', 'full', got 'middle'",
                   self.x, self.k, padding="middle")
        self.check(ValueError, r"padding must be .*4 values", self.x, self.k,
                   padding=(1, 1, 1, 1))
        self.check(ValueError, r"padding must be .*\(\(1, 2, 3\), 1\)", self.x, self.k,
                   padding=((1, 2, 3), 1))
        self.check(TypeError, r"padding must be .*got 1.5", self.x, self.k, padding=1.5)
        self.check(TypeError, r"padding must be .*got \('same', 1\)", self.x, self.k,
                   padding=("same", 1))

    def test_padding_mode_and_fill_value(self):
        self.check(ValueError, r"padding_mode must be one of 'zeros', 'constant', 'reflect', "
                   r"'symmetric', 'replicate', 'circular', got 'mirror'",
                   self.x, self.k, padding_mode="mirror")
        self.check(ValueError, r"fill_value is used only with padding_mode='constant'",
                   self.x, self.k, padding=1, fill_value=3)
        self.check(TypeError, r"fill_value must be a number, got 'a'", self.x, self.k,
                   padding_mode="constant", fill_value="a")
        self.check(ValueError, r"fill_value must be an integer .* got 0.5",
                   np.ones((4, 4), int), [[1]], padding=1, padding_mode="constant",
                   fill_value=0.5)

    def test_methods_that_would_not_be_exact(self):
        self.check(ValueError, r"method='fft' .* would not be exact for int64 results",
                   np.ones((4, 4), int), [[1, 2], [3, 4]], method="fft")
        if np.finfo(np.longdouble).eps < np.finfo(np.float64).eps:
            self.check(ValueError, rf"method='fft' .* not be exact for {np.dtype(np.longdouble)}",
                       np.ones((4, 4), np.longdouble), [[1, 2], [3, 4]], method="fft")
        self.check(ValueError, r"method='separable' needs .* integer kernel of rank 2",
                   np.ones((4, 4), int), [[1, 2], [3, 4]], method="separable")

    def test_method_and_flip(self):
        self.check(ValueError, r"method must be one of 'auto', 'loops', .*got 'fast'",
                   self.x, self.k, method="fast")
        self.check(TypeError, r"flip must be True or False, got 1", self.x, self.k, flip=1)

    def test_matrix(self):
        self.check(ValueError, r"matrix must have at least 2 dimensions .*got shape \(5,\)",
                   np.ones(5), self.k)
        self.check(ValueError, r"matrix .*no empty axis, got shape \(0, 5\)",
                   np.ones((0, 5)), self.k)
        self.check(ValueError, r"matrix .*no empty axis, got shape \(4, 0\)", [[], [], [], []],
                   [[1]])
        self.check(ValueError, r"matrix must have .*got shape \(\)", 3, self.k)
        self.check(ValueError, r"matrix must be a rectangular array", [[1, 2], [3]], self.k)
        self.check(TypeError, r"matrix must hold numbers .*got dtype <U1", [["a", "b"]], [[1]])
        self.check(TypeError, r"matrix must hold numbers .*got dtype object",
                   np.array([[1, None]], dtype=object), [[1]])

    def test_kernel(self):
        self.check(ValueError, r"kernel must be 2-D \(kh, kw\) and not empty, got shape \(3,\)",
                   self.x, [1, 2, 3])
        self.check(ValueError, r"kernel must be 2-D .*got shape \(1, 3, 3\)", self.x,
                   np.ones((1, 3, 3)))
        self.check(ValueError, r"kernel must be 2-D .*got shape \(0, 3\)", self.x,
                   np.ones((0, 3)))
        self.check(TypeError, r"kernel must hold numbers .*got dtype <U1", self.x, [["a"]])

    def test_kernel_does_not_fit(self):
        self.check(ValueError, r"spans \(5, 7\) cells, more than the padded input \(6, 6\) "
                   r"holds; the output shape would be \(2, 0\)", self.x, self.k, dilation=(2, 3))
        self.check(ValueError, r"output shape would be \(0, 6\)", np.ones((2, 8)), np.ones((3, 3)))

    def test_no_assertion_or_index_errors_on_random_bad_parameters(self):
        rng = np.random.default_rng(0)
        bad = [0, -1, 2.5, "x", None, (1,), (1, 2, 3), ((1,), 1), True, [[1, 2], [3, 4]],
               np.array([1, 2, 3]), ((1, 2), (3, -4))]
        for name in ("stride", "dilation", "padding"):
            for value in bad:
                with self.subTest(name=name, value=value):
                    try:
                        conv2d(rng.random((7, 7)), np.ones((2, 2)), **{name: value})
                    except (ValueError, TypeError) as error:
                        self.assertIn(name, str(error))


# --- Pictures (issue 5) ---

import contextlib
import io
import subprocess
import sys
import tempfile

from convolution import animate_conv2d, plot, plot_conv2d
from convolution.__main__ import FIGURES, main
from convolution.shapes import conv_geometry, window

matplotlib = optional("matplotlib")
iio = optional("imageio.v3")
if matplotlib is not None:
    matplotlib.use("Agg")   # headless, whatever the machine's default backend is

# Unusual parameters: each picture must show exactly the cells conv2d reads.
PICTURE_CASES = [
    dict(input_shape=(7, 8), kernel_shape=(2, 2), stride=3),
    dict(input_shape=(7, 9), kernel_shape=(3, 3), dilation=(2, 3)),
    dict(input_shape=(4, 5), kernel_shape=(2, 3), padding=((0, 2), (3, 1))),
    dict(input_shape=(5, 6), kernel_shape=(4, 4), stride=2, padding="same"),
    dict(input_shape=(2, 3), kernel_shape=(2, 2), stride=(2, 3), padding=(3, 4),
         padding_mode="reflect"),          # padding wider than the input
    dict(input_shape=(3, 4), kernel_shape=(3, 2), stride=(2, 1), dilation=(1, 2),
         padding="full", padding_mode="circular",
         matrix=np.arange(12).reshape(3, 4) - 5, kernel=[[1, -2], [3, 0], [-1, 4]]),
]


def read_cells(geometry, i, j):
    """The padded cells output cell (i, j) reads, from the formula i*sh + a*dh, j*sw + b*dw."""
    (kh, kw), (sh, sw), (dh, dw) = geometry.kernel_shape, geometry.stride, geometry.dilation
    return {(i * sh + a * dh, j * sw + b * dw) for a in range(kh) for b in range(kw)}


def padded_shape(geometry):
    (h, w), ((top, bottom), (left, right)) = geometry.input_shape, geometry.padding
    return h + top + bottom, w + left + right


def expected_roles(geometry, step):
    """Role of every input and output cell in frame ``step``, worked out without plot.py."""
    (hp, wp), ((top, _), (left, _)) = padded_shape(geometry), geometry.padding
    (h, w), (ho, wo) = geometry.input_shape, geometry.output_shape
    i, j = divmod(step, wo)
    reads = read_cells(geometry, i, j)
    inputs = {(r, c): plot.READ if (r, c) in reads
              else plot.INPUT if top <= r < top + h and left <= c < left + w else plot.PADDING
              for r, c in itertools.product(range(hp), range(wp))}
    outputs = {(r, c): plot.DONE if r * wo + c < step else
               plot.CURRENT if r * wo + c == step else plot.TODO
               for r, c in itertools.product(range(ho), range(wo))}
    return inputs, outputs


def sample_points(geometry, cells, grid):
    """Data points a quarter cell in from each cell's top-left corner, clear of centred labels."""
    x0 = 0 if grid == "input" else padded_shape(geometry)[1] + plot.GAP
    return np.array([(x0 + c + 0.25, r + 0.25) for r, c in cells])


def rendered_colors(fig, points):
    """The RGB colours the Agg canvas draws at data ``points`` of the figure's Axes."""
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3].astype(int)
    xy = fig.axes[0].transData.transform(points)
    return image[(image.shape[0] - xy[:, 1]).astype(int), xy[:, 0].astype(int)]


def role_rgb(roles):
    return np.array([np.round(np.array(matplotlib.colors.to_rgb(plot.COLORS[role])) * 255)
                     for role in roles])


def labels_at(ax):
    """The visible Text artists of ``ax`` by their position."""
    return {tuple(text.get_position()): text for text in ax.texts if text.get_visible()}


@unittest.skipIf(matplotlib is None, "matplotlib is not installed")
class TestPlot(unittest.TestCase):
    """plot_conv2d: the cells drawn are the cells conv2d reads."""

    def test_window_is_the_formula(self):
        # The helper both the loops and the pictures use, against the formula.
        for case in PICTURE_CASES:
            g = conv_geometry(case["input_shape"], case["kernel_shape"], case.get("stride", 1),
                              case.get("dilation", 1), case.get("padding", 0))
            hp, wp = padded_shape(g)
            for i, j in itertools.product(*map(range, g.output_shape)):
                rows, cols = window(i, j, g.kernel_shape, g.stride, g.dilation)
                self.assertEqual(set(itertools.product(range(hp)[rows], range(wp)[cols])),
                                 read_cells(g, i, j))

    def test_rendered_pixels_show_the_cells_read(self):
        for case in PICTURE_CASES:
            g = conv_geometry(case["input_shape"], case["kernel_shape"], case.get("stride", 1),
                              case.get("dilation", 1), case.get("padding", 0))
            n = g.output_shape[0] * g.output_shape[1]
            for step in sorted({0, n // 3, n // 2, n - 1}):
                fig = plot_conv2d(**case, step=step)
                inputs, outputs = expected_roles(g, step)
                for grid, roles in (("input", inputs), ("output", outputs)):
                    with self.subTest(case=case, step=step, grid=grid):
                        colors = rendered_colors(fig, sample_points(g, roles, grid))
                        expected = role_rgb(roles.values())
                        wrong = [cell for cell, got, want in zip(roles, colors, expected)
                                 if np.abs(got - want).max() > 2]
                        self.assertEqual(wrong, [], f"cells drawn in the wrong colour")

    def test_roles_have_distinct_colors(self):
        # Otherwise the pixel test could not tell a read cell from an unread one.
        rgb = dict(zip(plot.COLORS, role_rgb(plot.COLORS)))
        for a, b in itertools.combinations([plot.INPUT, plot.PADDING, plot.READ, plot.CURRENT,
                                            plot.DONE], 2):
            self.assertGreater(np.abs(rgb[a] - rgb[b]).max(), 30, (a, b))

    def test_padded_cell_drawn_unlike_an_input_cell(self):
        g = conv_geometry((4, 4), (2, 2), padding=1)
        fig = plot_conv2d((4, 4), (2, 2), padding=1, step=0, matrix=np.full((4, 4), 5))
        # Cell (4, 4) is an input cell, (5, 5) a padded one; the kernel reads neither.
        padded_rgb, input_rgb = rendered_colors(fig, sample_points(g, [(5, 5), (4, 4)], "input"))
        self.assertGreater(np.abs(padded_rgb - input_rgb).max(), 30)
        labels = labels_at(fig.axes[0])
        padded_label, input_label = labels[(5.5, 5.5)], labels[(4.5, 4.5)]
        self.assertEqual((padded_label.get_text(), input_label.get_text()), ("0", "5"))
        self.assertEqual((padded_label.get_style(), input_label.get_style()),
                         ("italic", "normal"))

    def test_padded_cells_name_the_cell_they_copy(self):
        fig = plot_conv2d((4, 4), (3, 3), stride=2, padding=2, padding_mode="reflect")
        labels = labels_at(fig.axes[0])
        shown = np.array([[labels[(c + 0.5, r + 0.5)].get_text() for c in range(8)]
                          for r in range(8)])
        # Reflection of rows/columns 0..3 about the edge cell: 2 1 | 0 1 2 3 | 2 1.
        mirror = [2, 1, 0, 1, 2, 3, 2, 1]
        np.testing.assert_array_equal(shown, [[str(4 * r + c) for c in mirror] for r in mirror])
        # Zeros copy no cell: no labels in the grids without values.
        fig = plot_conv2d((4, 4), (3, 3), padding=2)
        self.assertFalse(any(x % 1 == 0.5 and y % 1 == 0.5 for x, y in labels_at(fig.axes[0])))

    def test_values_and_sums_match_conv2d(self):
        matrix = np.array([[1, 4, 4, 2, 1, 0, 0, 1, 0, 0, 3, 3, 3, 4],
                           [0, 2, 0, 2, 0, 3, 4, 4, 2, 1, 1, 3, 0, 4],
                           [1, 1, 0, 0, 3, 4, 2, 4, 4, 2, 3, 0, 0, 4],
                           [4, 0, 1, 2, 0, 2, 0, 3, 3, 3, 0, 4, 1, 0],
                           [3, 0, 0, 3, 3, 3, 2, 0, 2, 1, 1, 0, 4, 2],
                           [2, 4, 3, 1, 1, 0, 2, 1, 3, 4, 4, 0, 2, 3],
                           [2, 4, 3, 3, 2, 1, 4, 0, 3, 4, 1, 2, 0, 0],
                           [2, 1, 0, 1, 1, 2, 2, 3, 0, 0, 1, 2, 4, 2],
                           [3, 3, 1, 1, 1, 1, 4, 4, 2, 3, 2, 2, 2, 3]])
        kernel = [[0, 1, 3, 3, 2], [0, 1, 3, 1, 3], [1, 1, 2, 0, 2], [2, 2, 3, 2, 0],
                  [1, 3, 1, 2, 0]]
        expected = [[52, 64, 60, 83, 61, 91], [84, 85, 78, 81, 94, 66], [77, 76, 74, 50, 79, 72]]
        fig = plot_conv2d((9, 14), (5, 5), (2, 1), (1, 2), step=8, matrix=matrix, kernel=kernel)
        ax = fig.axes[0]
        labels = labels_at(ax)
        for (r, c), value in np.ndenumerate(matrix):
            self.assertEqual(labels[(c + 0.5, r + 0.5)].get_text(), str(value))
        x0 = 14 + plot.GAP
        for (i, j), value in np.ndenumerate(expected):
            label = labels.get((x0 + j + 0.5, i + 0.5))
            # Cells up to the current one (number 8) show their sums; later ones are blank.
            self.assertEqual(label and label.get_text(), str(value) if i * 6 + j <= 8 else None)
        self.assertTrue(ax.get_title().endswith("(1, 2) of 3×6 · sum of weight × value over "
                                                "the blue cells = 78"), ax.get_title())

    def test_values_of_padded_cells_follow_the_mode(self):
        matrix = np.arange(20).reshape(4, 5)
        kernel = np.array([[2, -1], [0, 3]])
        for mode, np_mode in (("constant", "constant"), ("symmetric", "symmetric"),
                              ("replicate", "edge")):
            fill = 7 if mode == "constant" else 0
            fig = plot_conv2d((4, 5), (2, 2), 2, 1, ((1, 2), (0, 1)), padding_mode=mode,
                              fill_value=fill, step=5, matrix=matrix, kernel=kernel)
            labels = labels_at(fig.axes[0])
            padded = np.pad(matrix, ((1, 2), (0, 1)), np_mode,
                            **({"constant_values": 7} if mode == "constant" else {}))
            with self.subTest(padding_mode=mode):
                for (r, c), value in np.ndenumerate(padded):
                    self.assertEqual(labels[(c + 0.5, r + 0.5)].get_text(), str(value))
                sums = conv2d(matrix, kernel, 2, 1, ((1, 2), (0, 1)), padding_mode=mode,
                              fill_value=fill)
                for (i, j), value in np.ndenumerate(sums[:2]):   # cells 0..5 of 3 x 3
                    if i * 3 + j <= 5:
                        self.assertEqual(labels[(6 + plot.GAP + j + 0.5, i + 0.5)].get_text(),
                                         str(value))

    def test_kernel_weights_sit_on_their_taps(self):
        kernel = np.array([[11, 12, 13], [21, 22, 23]])
        g = conv_geometry((8, 9), (2, 3), (2, 3), (3, 2), ((1, 0), (0, 2)))
        for step in range(g.output_shape[0] * g.output_shape[1]):
            fig = plot_conv2d((8, 9), (2, 3), (2, 3), (3, 2), ((1, 0), (0, 2)), step=step,
                              kernel=kernel)
            i, j = divmod(step, g.output_shape[1])
            for text in fig.axes[0].texts:
                if text.get_text().startswith("×"):
                    a, b = divmod(int(text.get_text()[1:]), 10)
                    x, y = text.get_position()
                    # Bottom-right corner of the cell under tap (a - 1, b - 1).
                    self.assertEqual((round(y - 0.95, 9), round(x - 0.95, 9)),
                                     (i * 2 + (a - 1) * 3, j * 3 + (b - 1) * 2))

    def test_drawn_into_a_given_axes(self):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(10, 4))
        FigureCanvasAgg(fig)
        left, right = fig.subplots(1, 2)
        self.assertIs(plot_conv2d((5, 5), (3, 3), dilation=2, ax=right), fig)
        self.assertEqual(len(left.collections), 0)
        self.assertEqual(len(right.collections), 2)     # the input grid and the output grid
        self.assertAlmostEqual(right.get_xlim()[1] - right.get_xlim()[0], 5 + plot.GAP + 1 + 0.1)


@unittest.skipIf(matplotlib is None, "matplotlib is not installed")
class TestPlotErrors(unittest.TestCase):
    """Bad arguments: conv2d's errors for conv2d's parameters, the rule for the others."""

    def test_same_errors_as_conv2d(self):
        bad = [dict(stride=0), dict(stride=2.0), dict(dilation=(1, -2)), dict(dilation=(2, 3)),
               dict(padding=-1), dict(padding="middle"), dict(padding=(1, 1, 1)),
               dict(padding_mode="mirror"), dict(padding=1, fill_value=3)]
        for kwargs in bad:
            with self.subTest(**kwargs):
                try:
                    conv2d(np.ones((6, 6)), np.ones((3, 3)), **kwargs)
                except (TypeError, ValueError) as error:
                    expected = error
                else:
                    self.fail("conv2d accepted it")
                with self.assertRaises(type(expected)) as caught:
                    plot_conv2d((6, 6), (3, 3), **kwargs)
                self.assertEqual(str(caught.exception), str(expected))
                with tempfile.TemporaryDirectory() as folder, \
                        self.assertRaises(type(expected)) as caught:
                    animate_conv2d((6, 6), (3, 3), path=os.path.join(folder, "a.gif"), **kwargs)
                self.assertEqual(str(caught.exception), str(expected))

    def test_step(self):
        with self.assertRaisesRegex(ValueError, r"step must be an output cell number from 0 to "
                                                r"3 \(output shape \(2, 2\)\), got 4"):
            plot_conv2d((5, 5), (3, 3), stride=2, step=4)
        with self.assertRaisesRegex(ValueError, r"step must be .*got -1"):
            plot_conv2d((5, 5), (3, 3), stride=2, step=-1)
        for step in (1.0, True, "1"):
            with self.assertRaisesRegex(TypeError, rf"step must be an int, got {step!r}"):
                plot_conv2d((5, 5), (3, 3), stride=2, step=step)
        title = plot_conv2d((5, 5), (3, 3), stride=2, step=np.int64(3)).axes[0].get_title()
        self.assertIn("output cell (1, 1) of 2×2", title)

    def test_matrix_and_kernel(self):
        with self.assertRaisesRegex(ValueError, r"matrix must have the shape \(5, 5\) given for "
                                                r"it, got shape \(4, 5\)"):
            plot_conv2d((5, 5), (3, 3), matrix=np.ones((4, 5)))
        with self.assertRaisesRegex(ValueError, r"matrix must .*got shape \(2, 5, 5\)"):
            plot_conv2d((5, 5), (3, 3), matrix=np.ones((2, 5, 5)))
        with self.assertRaisesRegex(ValueError, r"kernel must have the shape \(3, 3\) given for "
                                                r"it, got shape \(3, 2\)"):
            plot_conv2d((5, 5), (3, 3), kernel=np.ones((3, 2)))
        with self.assertRaisesRegex(TypeError, r"matrix must hold numbers"):
            plot_conv2d((1, 2), (1, 1), matrix=[["a", "b"]])

    def test_ax(self):
        with self.assertRaisesRegex(TypeError, r"ax must be a matplotlib Axes or None, "
                                               r"got 'left'"):
            plot_conv2d((5, 5), (3, 3), ax="left")
        # Every argument is checked before drawing: a bad one leaves the Axes untouched.
        from matplotlib.figure import Figure

        ax = Figure().subplots()
        for kwargs in (dict(step=4), dict(kernel=np.ones((2, 2))), dict(stride=0)):
            with self.subTest(**kwargs), self.assertRaises(ValueError):
                plot_conv2d((5, 5), (3, 3), stride=kwargs.pop("stride", 2), ax=ax, **kwargs)
            self.assertEqual((len(ax.collections), len(ax.texts), ax.get_title()), (0, 0, ""))

    def test_animation_arguments(self):
        cases = [(ValueError, r"path must end in '.gif' or '.mp4', got '.*a.png'", "a.png", {}),
                 (ValueError, r"fps must be a positive number, got 0", "a.gif", dict(fps=0)),
                 (TypeError, r"fps must be a positive number, got '2'", "a.gif", dict(fps="2")),
                 (TypeError, r"fps must be a positive number, got True", "a.gif", dict(fps=True)),
                 (ValueError, r"fps must be a positive number, got nan", "a.gif",
                  dict(fps=float("nan"))),
                 (ValueError, r"dpi must be a positive number, got -1", "a.gif", dict(dpi=-1))]
        for error, pattern, name, kwargs in cases:
            with self.subTest(pattern=pattern), tempfile.TemporaryDirectory() as folder:
                with self.assertRaisesRegex(error, pattern):
                    animate_conv2d((5, 5), (3, 3), path=os.path.join(folder, name), **kwargs)
                self.assertEqual(os.listdir(folder), [])

    def test_mp4_needs_ffmpeg(self):
        from matplotlib import animation

        if animation.writers.is_available("ffmpeg"):
            self.skipTest("ffmpeg is installed")
        with tempfile.TemporaryDirectory() as folder:
            with self.assertRaisesRegex(FileNotFoundError, r"'.mp4' needs ffmpeg, which is not"):
                animate_conv2d((5, 5), (3, 3), path=os.path.join(folder, "a.mp4"))
            self.assertEqual(os.listdir(folder), [])


@unittest.skipIf(matplotlib is None or iio is None, "matplotlib or imageio is not installed")
class TestAnimation(unittest.TestCase):
    """animate_conv2d: one frame per output cell, each showing the cells read."""

    def test_one_frame_per_output_cell(self):
        for args, kwargs in [(((5, 6), (4, 4), 2, 1, "same"), {}),
                             (((3, 4), (2, 3)), dict(padding=((0, 1), (2, 0)))),
                             (((1, 1), (1, 1)), {}),
                             (((3, 7), (2, 2), (1, 3), (1, 2), "full"),
                              dict(padding_mode="circular", fps=5))]:
            with self.subTest(args=args, kwargs=kwargs), tempfile.TemporaryDirectory() as folder:
                path = os.path.join(folder, "a.gif")
                self.assertEqual(animate_conv2d(*args, path=path, **kwargs), path)
                h_out, w_out = conv_output_shape(*args[:2], *args[2:],
                                                 **{k: v for k, v in kwargs.items()
                                                    if k == "padding"})
                self.assertEqual(iio.imread(path, index=None).shape[0], h_out * w_out)

    def test_frames_show_the_cells_read(self):
        # GIF colours are quantised to a palette: compare with a tolerance.
        case = dict(input_shape=(2, 3), kernel_shape=(2, 2), stride=(2, 3), dilation=(1, 2),
                    padding=(3, 4), padding_mode="reflect")
        g = conv_geometry(case["input_shape"], case["kernel_shape"], case["stride"],
                          case["dilation"], case["padding"])
        with tempfile.TemporaryDirectory() as folder:
            path = animate_conv2d(**case, path=os.path.join(folder, "a.gif"), dpi=60)
            frames = iio.imread(path, index=None)[..., :3].astype(int)
        fig = plot_conv2d(**case)
        fig.canvas.draw()
        to_fraction = fig.axes[0].transData + fig.transFigure.inverted()
        height, width = frames.shape[1:3]
        for step, frame in enumerate(frames):
            inputs, outputs = expected_roles(g, step)
            for grid, roles in (("input", inputs), ("output", outputs)):
                fx, fy = to_fraction.transform(sample_points(g, roles, grid)).T
                colors = frame[((1 - fy) * height).astype(int), (fx * width).astype(int)]
                wrong = [cell for cell, got, want in zip(roles, colors, role_rgb(roles.values()))
                         if np.abs(got - want).max() > 12]
                with self.subTest(step=step, grid=grid):
                    self.assertEqual(wrong, [])


def run_main(*args):
    """``main(args)`` in this process: (exit status, stderr)."""
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        try:
            status = main(list(args))
        except SystemExit as exit:      # argparse's usage errors
            status = exit.code
    return status, stderr.getvalue()


def run_command(*args, cwd):
    """``python -m convolution ARGS`` in a new process, with this checkout importable."""
    paths = [str(HERE)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(paths))
    return subprocess.run([sys.executable, "-m", "convolution", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


@unittest.skipIf(matplotlib is None or iio is None, "matplotlib or imageio is not installed")
class TestAnimateCommandLine(unittest.TestCase):
    """python -m convolution animate: writes the file, or one line on stderr and status 2."""

    def test_writes_the_animation(self):
        with tempfile.TemporaryDirectory() as folder:
            result = run_command("animate", "out.gif", "--input", "5x6", "--kernel", "2x3",
                                 "--stride", "2", "--dilation", "1x2", "--padding", "1x0x2x1",
                                 "--padding-mode", "symmetric", "--fps", "4", cwd=folder)
            self.assertEqual((result.returncode, result.stderr), (0, ""))
            self.assertEqual(result.stdout, "wrote out.gif\n")
            self.assertEqual(os.listdir(folder), ["out.gif"])    # no temporary file left
            h_out, w_out = conv_output_shape((5, 6), (2, 3), 2, (1, 2), ((1, 0), (2, 1)))
            path = os.path.join(folder, "out.gif")
            self.assertEqual(iio.imread(path, index=None).shape[0], h_out * w_out)
            self.assertEqual(iio.immeta(path)["duration"], 250)      # 4 frames per second
            umask = os.umask(0)
            os.umask(umask)
            self.assertEqual(os.stat(path).st_mode & 0o777, 0o666 & ~umask)

    def test_refuses_to_overwrite_without_force(self):
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "out.gif")
            Path(path).write_bytes(b"keep")
            result = run_command("animate", "out.gif", "--input", "4x4", "--kernel", "3x3",
                                 cwd=folder)
            self.assertEqual(result.returncode, 2)
            self.assertEqual(result.stderr, "python -m convolution animate: error: out.gif "
                                            "exists; pass --force to replace it\n")
            self.assertEqual(Path(path).read_bytes(), b"keep")
            self.assertEqual(run_main("animate", path, "--input", "4x4", "--kernel", "3x3",
                                      "--force"), (0, ""))
            self.assertEqual(iio.imread(path, index=None).shape[0], 4)

    def test_bad_input_in_a_new_process(self):
        with tempfile.TemporaryDirectory() as folder:
            result = run_command("animate", "out.gif", "--input", "5x5", "--kernel", "3x3",
                                 "--stride", "0", cwd=folder)
            self.assertEqual(result.returncode, 2)
            self.assertEqual(result.stderr, "python -m convolution animate: error: stride must "
                                            "be an int >= 1 or a pair of them, got 0\n")
            self.assertEqual(os.listdir(folder), [])

    def test_bad_input(self):
        cases = [(["--input", "5by5"], "--input must be HxW, two integers, got '5by5'"),
                 (["--input", "5"], "--input must be HxW"),
                 (["--kernel", "9x9"], "kernel of shape (9, 9) with dilation (1, 1) spans"),
                 (["--dilation", "2.5"], "--dilation must be D or DHxDW, integers, got '2.5'"),
                 (["--padding", "-1"], "padding must be non-negative, got -1"),
                 (["--padding", "1x2x3"], "--padding must be P, PHxPW or TOPxBOTTOMxLEFTxRIGHT, "
                                          "integers, or one of same, valid, full, got '1x2x3'"),
                 (["--padding", "middle"], "--padding must be"),
                 (["--padding-mode", "mirror"], "padding_mode must be one of 'zeros'"),
                 (["--fps", "0"], "fps must be a positive number, got 0.0"),
                 (["--fps", "x"], "argument --fps: invalid float value: 'x'"),
                 (["--output-name", "x"], "unrecognized arguments: --output-name x")]
        with tempfile.TemporaryDirectory() as folder:
            out = os.path.join(folder, "out.gif")
            os.mkdir(os.path.join(folder, "a.gif"))     # a folder named like an animation
            for extra, message in cases:
                args = ["animate", out, "--input", "5x5", "--kernel", "3x3"]
                for k in range(len(extra) // 2):   # the case's options replace the defaults
                    if extra[2 * k] in args:
                        del args[args.index(extra[2 * k]):args.index(extra[2 * k]) + 2]
                status, stderr = run_main(*args, *extra)
                with self.subTest(extra=extra):
                    self.assertEqual(status, 2)
                    self.assertEqual(stderr.count("\n"), 1, stderr)
                    self.assertIn(message, stderr)
                    self.assertEqual(os.listdir(folder), ["a.gif"])
            for output, message in ((os.path.join(folder, "out.png"), "OUTPUT must end in "
                                     ".gif or .mp4, got '"),
                                    (os.path.join(folder, "no", "out.gif"), "folder "),
                                    (os.path.join(folder, "a.gif"), "is a folder; give a file "
                                                                      "name")):
                status, stderr = run_main("animate", output, "--input", "5x5", "--kernel", "3x3")
                with self.subTest(output=output):
                    self.assertEqual((status, stderr.count("\n")), (2, 1))
                    self.assertIn(message, stderr)
                    self.assertEqual(os.listdir(folder), ["a.gif"])
                    self.assertEqual(os.listdir(os.path.join(folder, "a.gif")), [])

    def test_missing_option(self):
        status, stderr = run_main("animate", "out.gif", "--input", "5x5")
        self.assertEqual((status, stderr), (2, "python -m convolution animate: error: the "
                                               "following arguments are required: --kernel\n"))


class TestPicturesAreOptional(unittest.TestCase):
    """matplotlib is needed only when a picture is drawn."""

    def run_python(self, code):
        env = dict(os.environ, PYTHONPATH=str(HERE))
        return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                              text=True, timeout=60)

    def test_import_costs_numpy_only(self):
        result = self.run_python("import sys, convolution; print(sorted({m.split('.')[0] for m "
                                 "in sys.modules} & {'matplotlib', 'PIL', 'imageio'}))")
        self.assertEqual(result.stdout, "[]\n", result.stderr)

    def test_without_matplotlib(self):
        # sys.modules[name] = None makes `import name` fail as if it were not installed.
        result = self.run_python(
            "import sys; sys.modules['matplotlib'] = None\n"
            "from convolution.__main__ import main\n"
            "sys.exit(main(['animate', 'never.gif', '--input', '3x3', '--kernel', '2x2']))")
        self.assertEqual((result.returncode, result.stderr),
                         (2, "python -m convolution animate: error: the pictures need "
                             "matplotlib: pip install matplotlib\n"))


@unittest.skipIf(matplotlib is None or iio is None, "matplotlib or imageio is not installed")
class TestReadmeFigures(unittest.TestCase):
    """python -m convolution figures, and the figures the README shows."""

    def check_figure(self, path, arguments):
        if path.endswith(".png"):
            self.assertEqual(iio.imread(path).ndim, 3)
            return
        h_out, w_out = conv_output_shape(
            arguments["input_shape"], arguments["kernel_shape"], arguments.get("stride", 1),
            arguments.get("dilation", 1), arguments.get("padding", 0))
        self.assertEqual(iio.imread(path, index=None).shape[0], h_out * w_out)
        self.assertLess(os.path.getsize(path), 300_000)

    def test_figures_command(self):
        with tempfile.TemporaryDirectory() as folder:
            self.assertEqual(run_main("figures", folder), (0, ""))
            self.assertEqual(sorted(os.listdir(folder)), sorted(FIGURES))
            for name, arguments in FIGURES.items():
                with self.subTest(name=name):
                    self.check_figure(os.path.join(folder, name), arguments)

    def test_readme_shows_every_figure(self):
        readme = (HERE / "README.md").read_text(encoding="utf-8")
        self.assertEqual(sorted(os.listdir(HERE / "files")), sorted(FIGURES))
        for name, arguments in FIGURES.items():
            with self.subTest(name=name):
                self.assertTrue(f"(files/{name})" in readme, f"README does not show {name}")
                self.check_figure(str(HERE / "files" / name), arguments)
        self.assertTrue("python -m convolution figures" in readme,
                        "README does not say how to regenerate the figures")
