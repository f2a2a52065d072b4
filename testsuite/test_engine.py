"""The fast paths and their driver: strips, tiles, threads, memory and the choice 'auto' makes."""
import os
import subprocess
import sys
import tracemalloc
import unittest

import numpy as np

from convolution import conv2d, engine, strips
from convolution.engine import METHODS as FAST_METHODS, choose_method
from convolution.padding import PADDING_MODES, Padded, pad
from convolution.shapes import conv_geometry

from .common import HERE, assert_close, term_scale, compare_with_loops


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
