"""The test suite: ``python -m unittest tests.py`` runs all of it.

One TestCase class per concern. Tests that need an optional package (SciPy,
PyTorch, OpenCV, ...) skip cleanly when it is not installed; ``.ci/run``
installs them, so CI runs everything.
"""
import concurrent.futures
import contextlib
import doctest
import importlib
import io
import itertools
import math
import os
import pkgutil
import shutil
import stat
import subprocess
import sys
import tempfile
import tracemalloc
import unittest
import warnings
from pathlib import Path
from unittest import mock

import numpy as np

import convolution
from convolution import (animate_conv2d, apply_filter_to_image, box_kernel, conv2d,
                         conv_output_shape, engine, gaussian_kernel, get_kernel, plot,
                         plot_conv2d, strips)
from convolution.__main__ import FIGURES, main
from convolution.engine import METHODS as FAST_METHODS, choose_method
from convolution.kernels import KERNELS, identity_kernel, motion_blur_kernel
from convolution.padding import PADDING_MODES, Padded, pad
from convolution.reference import conv2d_loops
from convolution.shapes import conv_geometry, window

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
cv2 = optional("cv2")
iio = optional("imageio.v3")
matplotlib = optional("matplotlib")
if matplotlib is not None:
    matplotlib.use("Agg")   # headless, whatever the machine's default backend is


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

# The classic tutorial's 9 x 14 matrix and 5 x 5 kernel (the README's example), and its
# feature map with stride (2, 1) and dilation (1, 2), worked out outside the library
# (PyTorch's conv2d gives the same).
README_MATRIX = np.array([[1, 4, 4, 2, 1, 0, 0, 1, 0, 0, 3, 3, 3, 4],
                          [0, 2, 0, 2, 0, 3, 4, 4, 2, 1, 1, 3, 0, 4],
                          [1, 1, 0, 0, 3, 4, 2, 4, 4, 2, 3, 0, 0, 4],
                          [4, 0, 1, 2, 0, 2, 0, 3, 3, 3, 0, 4, 1, 0],
                          [3, 0, 0, 3, 3, 3, 2, 0, 2, 1, 1, 0, 4, 2],
                          [2, 4, 3, 1, 1, 0, 2, 1, 3, 4, 4, 0, 2, 3],
                          [2, 4, 3, 3, 2, 1, 4, 0, 3, 4, 1, 2, 0, 0],
                          [2, 1, 0, 1, 1, 2, 2, 3, 0, 0, 1, 2, 4, 2],
                          [3, 3, 1, 1, 1, 1, 4, 4, 2, 3, 2, 2, 2, 3]])
README_KERNEL = np.array([[0, 1, 3, 3, 2], [0, 1, 3, 1, 3], [1, 1, 2, 0, 2], [2, 2, 3, 2, 0],
                          [1, 3, 1, 2, 0]])
README_MAP = [[52, 64, 60, 83, 61, 91], [84, 85, 78, 81, 94, 66], [77, 76, 74, 50, 79, 72]]


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
        matrix, kernel = README_MATRIX.tolist(), README_KERNEL.tolist()   # lists of lists work
        self.check(README_MAP, matrix, kernel, stride=(2, 1), dilation=(1, 2), padding=(0, 0))
        self.check(README_MAP, matrix, kernel, (2, 1), (1, 2), (0, 0))

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
        self.saved = (strips.STRIP_BYTES, engine.FFT_TILE, strips.PARALLEL_BYTES,
                      os.environ.get("CONVOLUTION_THREADS"))

    def tearDown(self):
        strips.STRIP_BYTES, engine.FFT_TILE, strips.PARALLEL_BYTES, threads = self.saved
        if threads is None:
            os.environ.pop("CONVOLUTION_THREADS", None)
        else:
            os.environ["CONVOLUTION_THREADS"] = threads

    def test_many_strips_tiles_and_threads(self):
        # Tiny strips and FFT tiles cut even the small random cases into many
        # pieces, shared by 3 threads: every seam must be invisible.
        strips.STRIP_BYTES, engine.FFT_TILE, strips.PARALLEL_BYTES = 256, 8, 0
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

    def test_8192_square_float32_with_11x11_kernel_under_1_gb(self):
        # The whole process, input and output included, in a fresh interpreter.
        code = ("import resource, numpy as np, convolution\n"
                "x = np.random.default_rng(0).random((8192, 8192), dtype=np.float32)\n"
                "k = np.random.default_rng(1).random((11, 11)).astype(np.float32)\n"
                "out = convolution.conv2d(x, k, padding='same')\n"
                "print(out.shape, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
        if sys.platform != "linux":
            self.skipTest("ru_maxrss is in kilobytes on Linux only")
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                env=dict(os.environ, PYTHONPATH=str(HERE)), timeout=300)
        shape, kilobytes = result.stdout.rsplit(")", 1)
        self.assertEqual(shape + ")", "(8192, 8192)", result.stderr)
        self.assertLess(int(kilobytes) * 1024, 2 ** 30)

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
                        self.assertEqual(wrong, [], "cells drawn in the wrong colour")

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
        matrix, kernel, expected = README_MATRIX, README_KERNEL.tolist(), README_MAP
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
            self.assertEqual(result.stderr, "convolution: error: OUTPUT 'out.gif' "
                                            "exists; pass --force to overwrite it\n")
            self.assertEqual(Path(path).read_bytes(), b"keep")
            self.assertEqual(run_main("animate", path, "--input", "4x4", "--kernel", "3x3",
                                      "--force"), (0, ""))
            self.assertEqual(iio.imread(path, index=None).shape[0], 4)

    def test_bad_input_in_a_new_process(self):
        with tempfile.TemporaryDirectory() as folder:
            result = run_command("animate", "out.gif", "--input", "5x5", "--kernel", "3x3",
                                 "--stride", "0", cwd=folder)
            self.assertEqual(result.returncode, 2)
            self.assertEqual(result.stderr, "convolution: error: stride must "
                                            "be an int >= 1 or a pair of them, got 0\n")
            self.assertEqual(os.listdir(folder), [])

    def test_bad_input(self):
        cases = [(["--input", "5by5"], "argument --input: expected HxW, two whole numbers, got '5by5'"),
                 (["--input", "5"], "argument --input: expected HxW"),
                 (["--kernel", "9x9"], "kernel of shape (9, 9) with dilation (1, 1) spans"),
                 (["--dilation", "2.5"], "argument --dilation: expected N or HxW with whole numbers, got "
                                          "'2.5'"),
                 (["--padding", "-1"], "padding must be non-negative, got -1"),
                 (["--padding", "1x2x3"], "argument --padding: expected same, valid, full, N, HxW or "
                                          "TOPxBOTTOMxLEFTxRIGHT, got '1x2x3'"),
                 (["--padding", "middle"], "argument --padding: expected"),
                 (["--padding-mode", "mirror"], "argument --padding-mode: invalid choice: 'mirror'"),
                 (["--fps", "0"], "argument --fps: expected a positive number, got '0'"),
                 (["--fps", "x"], "argument --fps: expected a number, got 'x'"),
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
        self.assertEqual((status, stderr), (2, "convolution: error: the following arguments are "
                                               "required: --kernel (see 'convolution animate "
                                               "--help')\n"))


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
                         (2, "convolution: error: the pictures need "
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
        self.assertLessEqual(set(FIGURES), set(os.listdir(HERE / "files")))
        for name, arguments in FIGURES.items():
            with self.subTest(name=name):
                self.assertTrue(f"(files/{name})" in readme, f"README does not show {name}")
                self.check_figure(str(HERE / "files" / name), arguments)
        self.assertTrue("python -m convolution figures" in readme,
                        "README does not say how to regenerate the figures")


# --- Images, kernels and the command line (issue 3) ---

SAMPLE_PHOTO = HERE / "files" / "grace_hopper.jpg"


def filter_by_hand(image, kernel, **params):
    """What apply_filter_to_image must return on an integer (C, H, W) or (H, W) stack.

    A second witness built from conv2d and the rules written in the issue:
    compute in float64, round to nearest, clip to the dtype's range, cast.
    """
    params.setdefault("padding", "same")
    params.setdefault("padding_mode", "reflect")
    values = conv2d(np.asarray(image, np.float64), np.asarray(kernel, np.float64), **params)
    info = np.iinfo(image.dtype)
    return np.clip(np.rint(values), info.min, info.max).astype(image.dtype)


class TestApplyFilter(unittest.TestCase):
    """apply_filter_to_image: channels, alpha, dtypes, saturation, parameters."""

    def setUp(self):
        rng = np.random.default_rng(3)
        self.rgb = rng.integers(0, 256, size=(9, 11, 3), dtype=np.uint8)
        self.rgba = rng.integers(0, 256, size=(9, 11, 4), dtype=np.uint8)
        self.kernel = rng.normal(size=(3, 3))

    def test_hand_computed_box_blur(self):
        image = np.array([[10, 20, 30],
                          [40, 50, 60],
                          [70, 80, 90]], np.uint8)
        # With 'reflect' the border is 50 40 50 60 50 / 20 10 20 30 20 / ... so the top-left
        # window holds 50 40 50 20 10 20 50 40 50, 330 in all: 330 / 9 = 36.7 -> 37.
        # Middle column 360, 450, 540 / 9 = 40, 50, 60; the rest by the same sums.
        np.testing.assert_array_equal(apply_filter_to_image(image, np.ones((3, 3)) / 9),
                                      [[37, 40, 43], [47, 50, 53], [57, 60, 63]])
        # Zero padding darkens the border: 10 + 20 + 40 + 50 = 120, 120 / 9 = 13.3 -> 13.
        np.testing.assert_array_equal(
            apply_filter_to_image(image, "box", padding_mode="zeros"),
            [[13, 23, 18], [30, 50, 37], [27, 43, 31]])

    def test_saturation_at_both_ends(self):
        # A white pixel on black, sharpened: 5 * 255 = 1275 must give 255 (a plain cast
        # would wrap to 251); its neighbours, -255, must give 0 (a cast would give 1).
        white_dot = np.zeros((5, 5), np.uint8)
        white_dot[2, 2] = 255
        expected = np.zeros((5, 5), np.uint8)
        expected[2, 2] = 255
        np.testing.assert_array_equal(apply_filter_to_image(white_dot, "sharpen"), expected)
        # A black pixel on white: 0 - 4 * 255 = -1020 -> 0 and 5*255 - 3*255 = 510 -> 255.
        black_dot = 255 - white_dot
        np.testing.assert_array_equal(apply_filter_to_image(black_dot, "sharpen"),
                                      255 - expected)
        # Other integers: a dot at the maximum (unsigned) or the minimum (signed), whose
        # centre and neighbours leave the range at opposite ends.
        for dtype in (np.uint16, np.uint32, np.int8, np.int16, np.int32):
            info = np.iinfo(dtype)
            extreme, opposite = (info.max, 0) if info.min == 0 else (info.min, info.max)
            with self.subTest(dtype=dtype):
                dot = np.zeros((3, 3), dtype)
                dot[1, 1] = extreme
                result = apply_filter_to_image(dot, "sharpen")
                self.assertEqual(result.dtype, dtype)
                self.assertEqual(result[1, 1], extreme)          # 5 * extreme, clipped
                np.testing.assert_array_equal(result[[0, 1, 1, 2], [1, 0, 2, 1]], opposite)
                np.testing.assert_array_equal(result[[0, 0, 2, 2], [0, 2, 0, 2]], 0)

    def test_64_bit_integers_clip_without_overflow(self):
        # float(2**63 - 1) is 2**63, which int64 cannot hold: the clip must stay below it.
        big = np.full((2, 2), np.iinfo(np.int64).max, np.int64)
        result = apply_filter_to_image(big, [[2.0]])
        self.assertTrue((result == 2**63 - 1024).all())
        small = np.full((2, 2), np.iinfo(np.int64).min, np.int64)
        self.assertTrue((apply_filter_to_image(small, [[2.0]]) == -2**63).all())

    def test_rounding_is_to_nearest(self):
        image = np.array([[1, 2]], np.uint8)
        # (1 + 2) / 2 = 1.5 -> 2 (halves to even), 1 * 0.3 -> 0, 2 * 0.8 = 1.6 -> 2.
        np.testing.assert_array_equal(
            apply_filter_to_image(image, [[0.5, 0.5]], padding="valid"), [[2]])
        np.testing.assert_array_equal(apply_filter_to_image(image, [[0.8]]), [[1, 2]])

    def test_greyscale(self):
        grey = self.rgb[..., 0]
        result = apply_filter_to_image(grey, self.kernel)
        self.assertEqual((result.shape, result.dtype), (grey.shape, np.uint8))
        np.testing.assert_array_equal(result, filter_by_hand(grey, self.kernel))

    def test_rgb_channels_are_filtered_alike(self):
        result = apply_filter_to_image(self.rgb, self.kernel)
        self.assertEqual((result.shape, result.dtype), (self.rgb.shape, np.uint8))
        self.assertTrue(result.flags.c_contiguous)
        for c in range(3):
            with self.subTest(channel=c):
                np.testing.assert_array_equal(result[..., c],
                                              filter_by_hand(self.rgb[..., c], self.kernel))

    def test_any_number_of_channels(self):
        image = np.random.default_rng(4).integers(0, 256, size=(6, 7, 5), dtype=np.uint8)
        result = apply_filter_to_image(image, "box")
        np.testing.assert_array_equal(
            result, np.moveaxis(filter_by_hand(np.moveaxis(image, -1, 0), box_kernel()), 0, -1))

    def test_rgba_keeps_alpha(self):
        result = apply_filter_to_image(self.rgba, self.kernel)
        np.testing.assert_array_equal(result[..., 3], self.rgba[..., 3])
        np.testing.assert_array_equal(result[..., :3],
                                      apply_filter_to_image(self.rgba[..., :3], self.kernel))
        filtered = apply_filter_to_image(self.rgba, self.kernel, filter_alpha=True)
        np.testing.assert_array_equal(filtered[..., 3],
                                      filter_by_hand(self.rgba[..., 3], self.kernel))
        self.assertFalse((filtered[..., 3] == self.rgba[..., 3]).all())

    def test_grey_and_alpha_keeps_alpha(self):
        image = self.rgba[..., 2:]
        result = apply_filter_to_image(image, "gaussian")
        np.testing.assert_array_equal(result[..., 1], image[..., 1])
        np.testing.assert_array_equal(result[..., 0],
                                      apply_filter_to_image(image[..., 0], "gaussian"))

    def test_alpha_follows_stride_and_padding(self):
        image = np.random.default_rng(5).integers(0, 256, size=(7, 9, 4), dtype=np.uint8)
        alpha = image[..., 3]
        # 5 x 5, stride (2, 3), 'same': 4 x 3 outputs; total padding 3*2 + 5 - 7 = 4 rows
        # (2 on top) and 2*3 + 5 - 9 = 2 columns (1 on the left). Each window's centre is
        # 2 cells in, so output (i, j) sits on input row 2i + 2 - 2, column 3j + 2 - 1.
        result = apply_filter_to_image(image, "gaussian", stride=(2, 3))
        np.testing.assert_array_equal(result[..., 3], alpha[0::2, 1::3])
        np.testing.assert_array_equal(
            result[..., :3], apply_filter_to_image(image[..., :3], "gaussian", stride=(2, 3)))
        # 'valid' drops a 2-cell frame, and stride 2 keeps every other centre.
        result = apply_filter_to_image(image, "gaussian", stride=2, padding="valid")
        np.testing.assert_array_equal(result[..., 3], alpha[2:-2:2, 2:-2:2])
        # 'full' with zero padding: the new border of the output is transparent.
        result = apply_filter_to_image(image, "box", padding="full", padding_mode="zeros")
        np.testing.assert_array_equal(result[..., 3], np.pad(alpha, 1))
        # Dilation 2 spreads a 2 x 2 kernel over 3 x 3: the centre is the middle cell.
        result = apply_filter_to_image(image, np.ones((2, 2)), dilation=2, padding="valid")
        np.testing.assert_array_equal(result[..., 3], alpha[1:-1, 1:-1])

    def test_uint16(self):
        image = np.random.default_rng(6).integers(0, 65536, size=(8, 10, 3), dtype=np.uint16)
        result = apply_filter_to_image(image, "sharpen")
        self.assertEqual((result.shape, result.dtype), (image.shape, np.uint16))
        expected = filter_by_hand(np.moveaxis(image, -1, 0), get_kernel("sharpen"))
        np.testing.assert_array_equal(result, np.moveaxis(expected, 0, -1))
        self.assertTrue((result == 65535).any() and (result == 0).any())

    def test_float_images_keep_their_dtype_and_are_not_clipped(self):
        image = self.rgb / 255.0
        for dtype in (np.float64, np.float32, np.float16):
            with self.subTest(dtype=dtype):
                result = apply_filter_to_image(image.astype(dtype), "sharpen")
                self.assertEqual((result.shape, result.dtype), (image.shape, dtype))
                self.assertTrue(result.max() > 1 and result.min() < 0)
                expected = np.moveaxis(conv2d(np.moveaxis(image, -1, 0), get_kernel("sharpen"),
                                              padding="same", padding_mode="reflect"), 0, -1)
                tolerance = {np.float64: 1e-12, np.float32: 1e-5, np.float16: 1e-2}[dtype]
                np.testing.assert_allclose(result.astype(np.float64), expected, atol=tolerance)

    def test_kernel_by_name_and_by_array(self):
        for name in KERNELS:
            with self.subTest(kernel=name):
                np.testing.assert_array_equal(apply_filter_to_image(self.rgb, name),
                                              apply_filter_to_image(self.rgb, get_kernel(name)))
        as_list = [[0, 1, 0], [1, -4, 1], [0, 1, 0]]
        np.testing.assert_array_equal(apply_filter_to_image(self.rgb, as_list),
                                      apply_filter_to_image(self.rgb, "laplacian"))

    def test_identity_of_any_size_changes_nothing(self):
        for size in (1, 2, 3, 4, (2, 5), (6, 3)):
            with self.subTest(size=size):
                np.testing.assert_array_equal(
                    apply_filter_to_image(self.rgba, identity_kernel(size)), self.rgba)

    def test_parameters_pass_through_to_conv2d(self):
        cases = [dict(stride=2), dict(stride=(1, 3)), dict(dilation=2),
                 dict(dilation=(2, 1), stride=(2, 2)), dict(padding="valid"),
                 dict(padding="full", padding_mode="zeros"), dict(padding=(1, 0)),
                 dict(padding=((0, 2), (1, 0)), padding_mode="circular"),
                 dict(padding_mode="symmetric"), dict(padding_mode="replicate"),
                 dict(padding_mode="constant", fill_value=255), dict(method="loops")]
        channels = np.moveaxis(self.rgb, -1, 0)
        for params in cases:
            with self.subTest(**params):
                result = apply_filter_to_image(self.rgb, self.kernel, **params)
                expected = np.moveaxis(filter_by_hand(channels, self.kernel, **params), 0, -1)
                np.testing.assert_array_equal(result, expected)
                self.assertEqual(result.shape[:2],
                                 conv_output_shape(self.rgb.shape[:2], self.kernel.shape,
                                                   params.get("stride", 1),
                                                   params.get("dilation", 1),
                                                   params.get("padding", "same")))

    def test_input_is_not_modified(self):
        for image in (self.rgb, self.rgba, self.rgb[..., 0], self.rgb / 255):
            before = image.copy()
            kernel = self.kernel.copy()
            result = apply_filter_to_image(image, kernel, stride=2)
            np.testing.assert_array_equal(image, before)
            np.testing.assert_array_equal(kernel, self.kernel)
            self.assertFalse(np.shares_memory(result, image))

    def test_errors(self):
        cases = [
            (TypeError, r"image of dtype bool has no levels .* image.astype\(np.uint8\) \* 255",
             np.zeros((3, 3), bool), "box", {}),
            (TypeError, r"image must hold real numbers .*got dtype complex128",
             np.zeros((3, 3), complex), "box", {}),
            (TypeError, r"image must hold real numbers .*got dtype <U1", [["a"]], "box", {}),
            (ValueError, r"image must have shape \(H, W\) or \(H, W, C\) .*got shape \(5,\)",
             np.zeros(5), "box", {}),
            (ValueError, r"got shape \(2, 3, 3, 3\)", np.zeros((2, 3, 3, 3)), "box", {}),
            (ValueError, r"no empty axis, got shape \(3, 3, 0\)", np.zeros((3, 3, 0)), "box", {}),
            (ValueError, r"unknown kernel 'blur'; the known kernels are 'identity', 'box'",
             self.rgb, "blur", {}),
            (ValueError, r"kernel must be 2-D \(kh, kw\) and not empty, got shape \(3,\)",
             self.rgb, [1, 2, 3], {}),
            (ValueError, r"kernel must hold finite numbers", self.rgb, [[1, np.nan]], {}),
            (TypeError, r"kernel must be a kernel name or an array of real numbers, got dtype "
                        r"complex128", self.rgb, [[1j]], {}),
            (TypeError, r"filter_alpha must be True or False, got 1", self.rgba, "box",
             dict(filter_alpha=1)),
            (ValueError, r"stride must be an int >= 1 or a pair of them, got 0", self.rgba, "box",
             dict(stride=0)),
            (ValueError, r"padding_mode must be one of .*got 'mirror'", self.rgba, "box",
             dict(padding_mode="mirror")),
            (ValueError, r"spans \(21, 21\) cells, more than the padded input \(9, 11\) holds",
             self.rgba, "gaussian", dict(dilation=5, padding="valid")),
        ]
        for error, message, image, kernel, params in cases:
            with self.subTest(message=message):
                with self.assertRaisesRegex(error, message):
                    apply_filter_to_image(image, kernel, **params)


class TestKernels(unittest.TestCase):
    """The kernel library: values, normalisation, orientation, get_kernel and its errors."""

    def test_every_kernel_is_a_new_float64_array(self):
        for name in KERNELS:
            with self.subTest(kernel=name):
                kernel = get_kernel(name)
                self.assertEqual(kernel.dtype, np.float64)
                self.assertEqual(kernel.ndim, 2)
                kernel[...] = 7
                self.assertFalse((get_kernel(name) == 7).all())

    def test_gaussian_by_hand(self):
        # Samples exp(-x**2 / (2 * 1.2**2)) at x = -2..2, worked out with math.exp.
        samples = [math.exp(-x * x / (2 * 1.2 ** 2)) for x in (-2, -1, 0, 1, 2)]
        column = np.array(samples) / sum(samples)
        np.testing.assert_allclose(gaussian_kernel(5, 1.2), np.outer(column, column),
                                   rtol=0, atol=1e-16)
        # sigma=None: OpenCV's rule, 0.3 * ((5 - 1) * 0.5 - 1) + 0.8 = 1.1 for 5 taps and
        # 0.3 * ((3 - 1) * 0.5 - 1) + 0.8 = 0.8 for 3.
        np.testing.assert_allclose(gaussian_kernel(5), gaussian_kernel(5, 1.1), atol=1e-16)
        np.testing.assert_allclose(gaussian_kernel((3, 5)), gaussian_kernel((3, 5), (0.8, 1.1)),
                                   atol=1e-16)
        np.testing.assert_allclose(gaussian_kernel((3, 5), (None, 2.0)),
                                   gaussian_kernel((3, 5), (0.8, 2.0)), atol=1e-16)

    def test_gaussian_shape_and_normalisation(self):
        for size, sigma in ((1, None), (4, None), ((3, 7), (0.5, 3.0)), (9, 2.5), ((1, 5), 1)):
            with self.subTest(size=size, sigma=sigma):
                kernel = gaussian_kernel(size, sigma)
                self.assertEqual(kernel.shape, size if isinstance(size, tuple) else (size, size))
                self.assertAlmostEqual(kernel.sum(), 1.0, places=14)
                np.testing.assert_allclose(kernel, kernel[::-1, ::-1], atol=1e-17)
                self.assertEqual(np.linalg.matrix_rank(kernel), 1)   # separable
                self.assertEqual(np.unravel_index(kernel.argmax(), kernel.shape),
                                 ((kernel.shape[0] - 1) // 2, (kernel.shape[1] - 1) // 2))
        # A larger sigma spreads the weight: the centre gets less.
        self.assertGreater(gaussian_kernel(5, 0.8)[2, 2], gaussian_kernel(5, 3.0)[2, 2])

    def test_box_and_identity(self):
        np.testing.assert_array_equal(box_kernel((2, 3)), np.full((2, 3), 1 / 6))
        np.testing.assert_array_equal(box_kernel(1), [[1.0]])
        np.testing.assert_array_equal(identity_kernel((3, 4)),
                                      [[0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0]])

    def test_fixed_kernels(self):
        expected = {
            "sharpen": [[0, -1, 0], [-1, 5, -1], [0, -1, 0]],
            "laplacian": [[0, 1, 0], [1, -4, 1], [0, 1, 0]],
            "sobel_x": [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]],
            "sobel_y": [[-1, -2, -1], [0, 0, 0], [1, 2, 1]],
            "emboss": [[-2, -1, 0], [-1, 1, 1], [0, 1, 2]],
            "outline": [[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]],
        }
        for name, values in expected.items():
            with self.subTest(kernel=name):
                np.testing.assert_array_equal(get_kernel(name), values)
        np.testing.assert_array_equal(get_kernel("sharpen"),
                                      identity_kernel() - get_kernel("laplacian"))

    def test_sobel_orientation(self):
        # Brightness rising to the right and downwards: sobel_x and sobel_y respond
        # positively (cross-correlation, no flip), and nothing else.
        ramp = np.add.outer(np.arange(6.0), 10 * np.arange(6.0))   # +1 a row, +10 a column
        x = apply_filter_to_image(ramp, "sobel_x", padding="valid")
        y = apply_filter_to_image(ramp, "sobel_y", padding="valid")
        np.testing.assert_array_equal(x, np.full((4, 4), 4 * 2 * 10.0))
        np.testing.assert_array_equal(y, np.full((4, 4), 4 * 2 * 1.0))

    def test_motion_blur(self):
        np.testing.assert_array_equal(motion_blur_kernel(4), np.eye(4) / 4)
        np.testing.assert_array_equal(motion_blur_kernel((1, 5)), np.full((1, 5), 0.2))
        np.testing.assert_array_equal(motion_blur_kernel((5, 1)), np.full((5, 1), 0.2))
        # 3 x 5: steps t = 0..4 at rows round(t * 2 / 4) = 0, 1, 1, 2, 2 (halves up), cols t.
        np.testing.assert_array_equal(motion_blur_kernel((3, 5)) * 5,
                                      [[1, 0, 0, 0, 0], [0, 1, 1, 0, 0], [0, 0, 0, 1, 1]])
        for size in (1, 2, 7, (2, 9), (9, 2), (4, 6)):
            with self.subTest(size=size):
                kernel = motion_blur_kernel(size)
                self.assertAlmostEqual(kernel.sum(), 1.0)
                self.assertEqual(np.count_nonzero(kernel), max(kernel.shape))
                self.assertTrue(kernel[0, 0] > 0 and kernel[-1, -1] > 0)

    def test_parameters(self):
        np.testing.assert_array_equal(get_kernel("box", size=(2, 4)), box_kernel((2, 4)))
        np.testing.assert_array_equal(get_kernel("gaussian", size=3, sigma=2.0),
                                      gaussian_kernel(3, 2.0))
        self.assertEqual(get_kernel("motion_blur", size=np.int64(5)).shape, (5, 5))

    def test_errors(self):
        cases = [
            (ValueError, r"unknown kernel 'Gaussian'; the known kernels are 'identity', 'box', "
                         r"'gaussian', 'sharpen', 'laplacian', 'sobel_x', 'sobel_y', 'emboss', "
                         r"'outline', 'motion_blur'$", "Gaussian", {}),
            (TypeError, r"kernel name must be a string, got 3", 3, {}),
            (TypeError, r"kernel 'sharpen' takes no parameters, got size=5", "sharpen",
             dict(size=5)),
            (TypeError, r"kernel 'gaussian' takes only size, sigma, got radius=2", "gaussian",
             dict(radius=2)),
            (TypeError, r"kernel 'box' takes only size, got sigma=1.0", "box", dict(sigma=1.0)),
            (ValueError, r"size must be an int >= 1 or a pair of them, got 0", "box",
             dict(size=0)),
            (ValueError, r"size must be .*got \(3, -1\)", "gaussian", dict(size=(3, -1))),
            (TypeError, r"size must be .*got 2.5", "motion_blur", dict(size=2.5)),
            (TypeError, r"size must be .*got True", "identity", dict(size=True)),
            (ValueError, r"size must be .*got 3 values", "gaussian", dict(size=(1, 2, 3))),
            (ValueError, r"sigma must be None, a positive finite number or a pair of them, "
                         r"got 0", "gaussian", dict(sigma=0)),
            (ValueError, r"sigma must be .*got -1.5", "gaussian", dict(sigma=-1.5)),
            (ValueError, r"sigma must be .*got nan", "gaussian", dict(sigma=float("nan"))),
            (ValueError, r"sigma must be .*got inf", "gaussian", dict(sigma=math.inf)),
            (TypeError, r"sigma must be .*got '1'", "gaussian", dict(sigma="1")),
            (TypeError, r"sigma must be .*got True", "gaussian", dict(sigma=True)),
            (ValueError, r"sigma must be .*got 3 values", "gaussian", dict(sigma=(1, 2, 3))),
        ]
        for error, message, name, params in cases:
            with self.subTest(message=message):
                with self.assertRaisesRegex(error, message):
                    get_kernel(name, **params)


@unittest.skipIf(cv2 is None, "OpenCV (opencv-python-headless) is not installed")
class TestOpenCVAgreement(unittest.TestCase):
    """cv2.filter2D and cv2.getGaussianKernel as outside oracles."""

    # Named kernels, with sizes, whose weights are odd in both directions.
    ODD = [("sharpen", {}), ("laplacian", {}), ("sobel_x", {}), ("sobel_y", {}),
           ("emboss", {}), ("outline", {}), ("identity", {}), ("box", {}),
           ("box", dict(size=(3, 7))), ("gaussian", {}), ("gaussian", dict(size=9, sigma=2.5)),
           ("gaussian", dict(size=(3, 11))), ("motion_blur", {}), ("motion_blur", dict(size=15))]

    @classmethod
    def setUpClass(cls):
        rng = np.random.default_rng(7)
        photo = cv2.imread(str(SAMPLE_PHOTO))   # BGR; the order of the channels is moot here
        cls.images = {
            "photo": photo,
            "photo grey": cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY),
            "random rgb": rng.integers(0, 256, size=(37, 53, 3), dtype=np.uint8),
            "random grey": rng.integers(0, 256, size=(41, 29), dtype=np.uint8),
        }

    def assert_within_one_level(self, ours, theirs):
        self.assertEqual((ours.shape, ours.dtype), (theirs.shape, theirs.dtype))
        self.assertLessEqual(np.abs(ours.astype(int) - theirs.astype(int)).max(), 1)

    def test_odd_kernels_match_filter2d(self):
        rng = np.random.default_rng(8)
        kernels = [(f"{name} {params}", get_kernel(name, **params)) for name, params in self.ODD]
        kernels += [("random 5x5", rng.normal(size=(5, 5))),
                    ("random 7x3", rng.normal(size=(7, 3)) / 3)]
        for label, kernel in kernels:
            for image_name, image in self.images.items():
                with self.subTest(kernel=label, image=image_name):
                    theirs = cv2.filter2D(image, -1, kernel, borderType=cv2.BORDER_REFLECT_101)
                    self.assert_within_one_level(apply_filter_to_image(image, kernel), theirs)

    def test_even_kernels_match_filter2d_anchored_at_their_centre(self):
        # OpenCV anchors a kernel at (kw // 2, kh // 2); 'same' padding puts the extra row and
        # column at the bottom and right, which is the anchor ((kw - 1) // 2, (kh - 1) // 2).
        rng = np.random.default_rng(9)
        for shape in ((2, 2), (4, 4), (2, 5), (6, 3)):
            kernel = rng.normal(size=shape)
            anchor = ((shape[1] - 1) // 2, (shape[0] - 1) // 2)
            for image_name, image in self.images.items():
                with self.subTest(shape=shape, image=image_name):
                    ours = apply_filter_to_image(image, kernel)
                    theirs = cv2.filter2D(image, -1, kernel, anchor=anchor,
                                          borderType=cv2.BORDER_REFLECT_101)
                    self.assert_within_one_level(ours, theirs)
                    # OpenCV's default anchor is one cell further in: not what 'same' does.
                    default = cv2.filter2D(image, -1, kernel, borderType=cv2.BORDER_REFLECT_101)
                    self.assertGreater(np.abs(ours.astype(int) - default).max(), 1)

    def test_other_borders(self):
        borders = {"symmetric": cv2.BORDER_REFLECT, "replicate": cv2.BORDER_REPLICATE,
                   "zeros": cv2.BORDER_CONSTANT}
        image = self.images["random rgb"]
        kernel = get_kernel("emboss")
        for mode, border in borders.items():
            with self.subTest(padding_mode=mode):
                theirs = cv2.filter2D(image, -1, kernel, borderType=border)
                ours = apply_filter_to_image(image, kernel, padding_mode=mode)
                self.assert_within_one_level(ours, theirs)

    def test_gaussian_kernel_matches_getGaussianKernel(self):
        def opencv(size, sigma):
            return cv2.getGaussianKernel(size, sigma, ktype=cv2.CV_64F).ravel()

        np.testing.assert_allclose(gaussian_kernel(5, 1.2),
                                   np.outer(opencv(5, 1.2), opencv(5, 1.2)), rtol=0, atol=1e-16)
        np.testing.assert_allclose(gaussian_kernel((3, 7), (0.6, 2.0)),
                                   np.outer(opencv(3, 0.6), opencv(7, 2.0)), rtol=0, atol=1e-16)
        # OpenCV documents odd sizes only (its even kernels are not samples of the curve).
        for n in range(1, 26, 2):
            sigma = 0.3 * ((n - 1) * 0.5 - 1) + 0.8
            with self.subTest(size=n):
                ours = gaussian_kernel(n)
                np.testing.assert_allclose(ours, np.outer(opencv(n, sigma), opencv(n, sigma)),
                                           rtol=0, atol=1e-16)
                # sigma <= 0 makes OpenCV use that same sigma, except for small sizes,
                # where it returns fixed tables instead (see gaussian_kernel's Notes).
                if n in (3, 5, 7) or n >= 11:
                    agrees = np.allclose(ours, np.outer(opencv(n, 0), opencv(n, 0)),
                                         rtol=0, atol=1e-16)
                    self.assertEqual(agrees, n >= 11)
        np.testing.assert_array_equal(opencv(5, 0) * 16, [1, 4, 6, 4, 1])


@unittest.skipIf(iio is None, "imageio is not installed")
class TestCommandLine(unittest.TestCase):
    """`python -m convolution`, end to end in a subprocess: results and every bad input."""

    def setUp(self):
        self.folder = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.folder)
        rng = np.random.default_rng(10)
        self.rgb = rng.integers(0, 256, size=(20, 30, 3), dtype=np.uint8)
        iio.imwrite(self.folder / "in.png", self.rgb)
        self.input = self.folder / "in.png"
        self.input_bytes = self.input.read_bytes()

    def run_cli(self, *args):
        env = dict(os.environ, PYTHONPATH=str(HERE))
        return subprocess.run([sys.executable, "-m", "convolution", *map(str, args)],
                              cwd=self.folder, env=env, capture_output=True, text=True,
                              timeout=120)

    def assert_succeeds(self, *args):
        done = self.run_cli(*args)
        self.assertEqual((done.returncode, done.stderr), (0, ""))
        return done

    def assert_fail(self, *cases):
        """Each case ``(message, *args)`` exits 2 with one line on stderr; no file is touched.

        The runs change nothing, so they run side by side, and the folder is
        compared before and after all of them: no OUTPUT and no temporary file
        appeared, and INPUT and every other file kept their bytes.
        """
        def snapshot():
            return {path.name: path.read_bytes() if path.is_file() else None
                    for path in self.folder.iterdir()}

        before = snapshot()
        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
            runs = list(pool.map(lambda case: self.run_cli(*case[1:]), cases))
        for (message, *args), done in zip(cases, runs):
            with self.subTest(args=args):
                self.assertEqual(done.returncode, 2, done.stderr)
                self.assertEqual(done.stdout, "")
                self.assertEqual(done.stderr.count("\n"), 1, done.stderr)
                self.assertTrue(done.stderr.startswith("convolution: error: "), done.stderr)
                self.assertNotIn("Traceback", done.stderr)
                self.assertRegex(done.stderr, message)
        self.assertEqual(snapshot(), before)
        self.assertEqual(self.input.read_bytes(), self.input_bytes)

    def test_filter_the_sample_photo(self):
        shutil.copy(SAMPLE_PHOTO, self.folder / "photo.jpg")
        done = self.assert_succeeds("filter", "photo.jpg", "blurred.png")
        self.assertEqual(done.stdout, "wrote blurred.png (600 x 512, 3 channels, uint8)\n")
        written = iio.imread(self.folder / "blurred.png")
        photo = iio.imread(self.folder / "photo.jpg")
        self.assertEqual((written.shape, written.dtype), (photo.shape, photo.dtype))
        np.testing.assert_array_equal(written, apply_filter_to_image(photo, "gaussian"))

    def test_options_reach_the_library(self):
        self.assert_succeeds("filter", "in.png", "out.png", "--kernel", "gaussian", "--size",
                             "3x7", "--sigma", "1.5", "--stride", "2x3", "--dilation", "2",
                             "--padding", "full", "--padding-mode", "constant",
                             "--fill-value", "255")
        expected = apply_filter_to_image(self.rgb, gaussian_kernel((3, 7), 1.5), stride=(2, 3),
                                         dilation=2, padding="full", padding_mode="constant",
                                         fill_value=255)
        written = iio.imread(self.folder / "out.png")
        self.assertEqual(written.shape[:2], conv_output_shape((20, 30), (3, 7), (2, 3), 2, "full"))
        np.testing.assert_array_equal(written, expected)
        self.assert_succeeds("filter", "in.png", "valid.png", "--kernel", "box", "--padding",
                             "valid", "--size", "4")
        self.assertEqual(iio.imread(self.folder / "valid.png").shape, (17, 27, 3))
        self.assert_succeeds("filter", "in.png", "pad.png", "--kernel", "box", "--padding",
                             "1x0", "--size", "3")
        self.assertEqual(iio.imread(self.folder / "pad.png").shape, (20, 28, 3))

    def test_kernel_files(self):
        kernel = np.array([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]])
        np.save(self.folder / "k.npy", kernel)
        (self.folder / "k.txt").write_text("1 -2 0.5\n0 3 -1\n")
        expected = apply_filter_to_image(self.rgb, kernel)
        for name in ("k.npy", "k.txt"):
            with self.subTest(kernel=name):
                self.assert_succeeds("filter", "in.png", f"{name}.png", "--kernel", name)
                np.testing.assert_array_equal(iio.imread(self.folder / f"{name}.png"), expected)

    def test_dtypes_and_channels_are_kept(self):
        rgba = np.dstack([self.rgb, np.arange(30, dtype=np.uint8)[None, :].repeat(20, 0) * 8])
        grey16 = self.rgb[..., 0].astype(np.uint16) * 257
        iio.imwrite(self.folder / "rgba.png", rgba)
        iio.imwrite(self.folder / "grey16.png", grey16)
        with warnings.catch_warnings():   # imageio's TIFF writer warns about its future
            warnings.simplefilter("ignore", DeprecationWarning)
            iio.imwrite(self.folder / "float.tif", self.rgb / np.float32(255))
        cases = [("rgba.png", "rgba_out.png", rgba, "4 channels, uint8"),
                 ("grey16.png", "grey16_out.png", grey16, "1 channel, uint16"),
                 ("float.tif", "float_out.tif", self.rgb / np.float32(255), "3 channels, float32")]
        for source, target, image, description in cases:
            with self.subTest(image=source):
                done = self.assert_succeeds("filter", source, target, "--kernel", "sharpen")
                self.assertEqual(done.stdout,
                                 f"wrote {target} ({image.shape[0]} x {image.shape[1]}, "
                                 f"{description})\n")
                written = iio.imread(self.folder / target)
                self.assertEqual(written.dtype, image.dtype)
                np.testing.assert_array_equal(written, apply_filter_to_image(image, "sharpen"))

    def test_one_bit_images_become_8_bit(self):
        iio.imwrite(self.folder / "bits.png", self.rgb[..., 0] > 127)
        self.assert_succeeds("filter", "bits.png", "out.png", "--kernel", "identity")
        written = iio.imread(self.folder / "out.png")
        self.assertEqual(written.dtype, np.uint8)
        np.testing.assert_array_equal(written, np.where(self.rgb[..., 0] > 127, 255, 0))

    def test_force_overwrites_and_keeps_permissions(self):
        target = self.folder / "out.png"
        target.write_bytes(b"old")
        target.chmod(0o640)
        self.assert_fail((r"OUTPUT 'out.png' exists; pass --force to overwrite it",
                          "filter", "in.png", "out.png"))
        self.assert_succeeds("filter", "in.png", "out.png", "--force")
        self.assertEqual(stat.S_IMODE(target.stat().st_mode), 0o640)
        np.testing.assert_array_equal(iio.imread(target),
                                      apply_filter_to_image(self.rgb, "gaussian"))
        self.assertEqual(sorted(p.name for p in self.folder.iterdir()), ["in.png", "out.png"])

    def test_new_files_get_the_umask_permissions(self):
        self.assert_succeeds("filter", "in.png", "out.png")   # not mkstemp's 0o600
        umask = os.umask(0)
        os.umask(umask)
        self.assertEqual(stat.S_IMODE((self.folder / "out.png").stat().st_mode),
                         0o666 & ~umask)

    def test_bad_paths(self):
        (self.folder / "sub").mkdir()
        (self.folder / "link.png").symlink_to("in.png")
        os.link(self.folder / "in.png", self.folder / "hard.png")
        (self.folder / "text.png").write_text("not an image\n")
        same = r"OUTPUT '.*' is the same file as INPUT 'in.png'; write the result to another file"
        self.assert_fail(
            (r"INPUT 'nothere.png' does not exist", "filter", "nothere.png", "out.png"),
            (r"INPUT 'sub' is a folder, not an image file", "filter", "sub", "out.png"),
            (r"cannot read INPUT 'text.png' as an image", "filter", "text.png", "out.png"),
            (r"cannot write OUTPUT 'nofolder/out.png': folder .*nofolder' does not exist",
             "filter", "in.png", "nofolder/out.png"),
            (r"OUTPUT 'sub' is a folder; give a file name", "filter", "in.png", "sub"),
            # The same file under other names: the path itself, relative, absolute, through
            # '..', a symbolic link and a hard link; --force does not change that.
            *[(same, "filter", "in.png", spelling, *force)
              for spelling in ("in.png", "./in.png", "sub/../in.png", self.folder / "in.png",
                               "link.png", "hard.png")
              for force in ((), ("--force",))],
            (r"OUTPUT 'link.png' is the same file as INPUT 'hard.png'",
             "filter", "hard.png", "link.png", "--force"))

    def test_bad_formats(self):
        iio.imwrite(self.folder / "rgba.png", np.dstack([self.rgb, self.rgb[..., :1]]))
        iio.imwrite(self.folder / "rgb16.tif", self.rgb.astype(np.uint16) * 257)
        iio.imwrite(self.folder / "anim.gif", np.stack([self.rgb, 255 - self.rgb]))
        self.assert_fail(
            (r"OUTPUT 'out' has no extension", "filter", "in.png", "out"),
            (r"cannot write OUTPUT 'out.xyz': imageio knows no image format '.xyz'",
             "filter", "in.png", "out.xyz"),
            # These fail inside imageio's writer, after the temporary file was made.
            (r"cannot write OUTPUT 'out.jpg': imageio could not save a uint16 image with 3 "
             r"channels as .jpg .*; .tif holds every dtype", "filter", "rgb16.tif", "out.jpg"),
            (r"could not save a uint8 image with 4 channels as .jpg",
             "filter", "rgba.png", "out.jpg"),
            (r"INPUT 'anim.gif' holds 2 frames", "filter", "anim.gif", "out.png"))

    def test_bad_kernels_and_parameters(self):
        (self.folder / "ragged.txt").write_text("1 2\n3\n")
        (self.folder / "words.txt").write_text("a b\nc d\n")
        (self.folder / "empty.txt").write_text("")
        (self.folder / "nan.txt").write_text("1 nan\n1 1\n")
        np.save(self.folder / "flat.npy", np.ones(3))
        np.save(self.folder / "k.npy", np.ones((2, 2)))
        (self.folder / "fake.npy").write_bytes(b"1 2\n3 4\n")
        (self.folder / "cut.npy").write_bytes((self.folder / "k.npy").read_bytes()[:40])
        cases = [
            (r"unknown kernel 'blur': not a kernel name \(identity, box, gaussian, .*\) nor a "
             r"file", "--kernel", "blur"),
            (r"cannot read kernel file 'ragged.txt'", "--kernel", "ragged.txt"),
            (r"cannot read kernel file 'words.txt'", "--kernel", "words.txt"),
            (r"kernel file 'empty.txt' must hold a 2-D array of finite numbers",
             "--kernel", "empty.txt"),
            (r"kernel file 'nan.txt' must hold a 2-D array", "--kernel", "nan.txt"),
            (r"kernel file 'flat.npy' must hold a 2-D array .*got shape \(3,\)",
             "--kernel", "flat.npy"),
            (r"kernel file 'fake.npy' is not a NumPy .npy file", "--kernel", "fake.npy"),
            (r"cannot read kernel file 'cut.npy'", "--kernel", "cut.npy"),
            (r"--size applies to library kernels, not to the kernel file 'k.npy'",
             "--kernel", "k.npy", "--size", "3"),
            (r"kernel 'sharpen' takes no parameters, got size=5", "--kernel", "sharpen",
             "--size", "5"),
            (r"kernel 'box' takes only size, got sigma=2.0", "--kernel", "box", "--sigma", "2"),
            (r"size must be an int >= 1 or a pair of them, got 0", "--size", "0"),
            (r"sigma must be None, a positive finite number .*got -1.0", "--sigma", "-1"),
            (r"sigma must be .*got nan", "--sigma", "nan"),
            (r"stride must be an int >= 1 or a pair of them, got \(0, 2\)", "--stride", "0x2"),
            (r"dilation must be an int >= 1 .*got -1", "--dilation", "-1"),
            (r"padding must be non-negative, got -1", "--padding", "-1"),
            (r"fill_value is used only with padding_mode='constant'", "--fill-value", "3"),
            (r"spans \(101, 101\) cells, more than the padded input \(20, 30\) holds",
             "--padding", "valid", "--dilation", "25"),
            # argparse's own errors, on one line too.
            (r"argument --size: expected N or HxW with whole numbers, got 'big' \(see "
             r"'convolution filter --help'\)", "--size", "big"),
            (r"argument --sigma: expected S or SHxSW with numbers, got '1x2x3'", "--sigma",
             "1x2x3"),
            (r"argument --padding: expected same, valid, full, N, HxW or TOPxBOTTOMxLEFTxRIGHT, "
             "got 'half'",
             "--padding", "half"),
            (r"argument --padding-mode: invalid choice: 'mirror'", "--padding-mode", "mirror"),
            (r"argument --fill-value: expected a number, got 'white'", "--fill-value", "white"),
            (r"unrecognized arguments: --colour", "--colour"),
        ]
        self.assert_fail(*[(message, "filter", "in.png", "out.png", *options)
                           for message, *options in cases])

    def test_usage_errors(self):
        self.assert_fail(
            (r"the following arguments are required: COMMAND \(see 'convolution --help'\)",),
            (r"argument COMMAND: invalid choice: 'blur'", "blur", "in.png"),
            (r"the following arguments are required: INPUT, OUTPUT", "filter"))

    def test_help(self):
        done = self.assert_succeeds("--help")
        self.assertIn("filter", done.stdout)
        self.assertIn("examples:", done.stdout)
        done = self.assert_succeeds("filter", "--help")
        for name in KERNELS:
            self.assertIn(f"\n  {name} ", done.stdout)
        for option in ("--kernel", "--size", "--sigma", "--stride", "--dilation", "--padding",
                       "--padding-mode", "--fill-value", "--filter-alpha", "--force"):
            self.assertIn(option, done.stdout)
        self.assertIn("convolution filter photo.jpg blurred.jpg", done.stdout)

    def test_interrupted_write_leaves_nothing_behind(self):
        # In-process, to interrupt at the worst moment: inside imageio's write.
        def interrupt(path, *args, **kwargs):
            Path(path).write_bytes(b"half an image")
            raise KeyboardInterrupt
        stderr = io.StringIO()
        with mock.patch("imageio.v3.imwrite", side_effect=interrupt), \
                contextlib.redirect_stderr(stderr):
            status = main(["filter", str(self.input), str(self.folder / "out.png")])
        self.assertEqual(status, 130)
        self.assertEqual(stderr.getvalue(), "convolution: interrupted\n")
        self.assertEqual([p.name for p in self.folder.iterdir()], ["in.png"])
        self.assertEqual(self.input.read_bytes(), self.input_bytes)

    def test_without_imageio_one_line_says_what_to_install(self):
        stderr = io.StringIO()
        with mock.patch.dict(sys.modules, {"imageio": None, "imageio.v3": None}), \
                contextlib.redirect_stderr(stderr):
            status = main(["filter", str(self.input), str(self.folder / "out.png")])
        self.assertEqual(status, 2)
        self.assertEqual(stderr.getvalue(), "convolution: error: reading and writing images "
                                            "needs imageio: pip install imageio\n")
        self.assertEqual([p.name for p in self.folder.iterdir()], ["in.png"])
