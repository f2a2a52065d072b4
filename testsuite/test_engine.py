"""The fast paths and their driver: strips, threads, memory, BLAS, and the choice 'auto' makes.

Every test passes whatever the thread count ($CONVOLUTION_THREADS 1, 2, 3, 16,
one core of affinity, BLAS at its default thread count). Where a test needs
several threads it asks for them the one way that works on any machine:
it makes the driver believe it has the cores (`forced_threads`).
"""
import itertools
import os
import subprocess
import sys
import textwrap
import threading
import tracemalloc
import unittest
from unittest import mock

import numpy as np

from convolution import conv2d, driver, fast, settings
from convolution.driver import blas, pool as driver_threads, strips
from convolution.driver.arena import Arena
from convolution.fast import METHODS as FAST_METHODS, choose_method, separable
from convolution.padding import PADDING_MODES, Padded, pad
from convolution.geometry import conv_geometry

from .common import (HERE, assert_close, compare_with_loops, forced_threads, pretend_cores,
                     term_scale)


def run_python(*code, timeout=120):
    """The pieces of ``code`` in a fresh interpreter with this checkout importable.

    Returns (exit status, stdout, stderr).
    """
    env = dict(os.environ, PYTHONPATH=str(HERE))
    result = subprocess.run([sys.executable, "-c", "".join(map(textwrap.dedent, code))],
                            capture_output=True, text=True, env=env, timeout=timeout,
                            cwd=str(HERE))
    return result.returncode, result.stdout, result.stderr


#: Code that makes the driver of a fresh interpreter use 3 threads (see `forced_threads`).
FORCE_THREADS = """
    import os
    os.environ["CONVOLUTION_THREADS"] = "3"
    import numpy as np
    from convolution import conv2d, settings
    settings.configure(cores=3, threads=3, handoff_ns=0.0, call_ns=0.0, thread_ns=0.0,
                       strip_bytes=4096, min_strip_bytes=4096)
    x = np.random.default_rng(0).random((300, 300))
    k = np.random.default_rng(1).random((3, 3))
    expected = conv2d(x, k, method="loops")
"""


class TestPaths(unittest.TestCase):
    """Every path against the reference loops, cut into many strips and shared by threads."""

    def test_many_strips_tiles_and_threads(self):
        # Tiny strips and FFT tiles cut even the small random cases into many
        # pieces, shared by 3 threads: every seam must be invisible.
        with settings.using(strip_bytes=256, min_strip_bytes=256, fft_tile=8), \
                forced_threads(3):
            geometry = conv_geometry((40, 40), (3, 3))
            for method in FAST_METHODS:
                with self.subTest(method=method):
                    self.assertEqual(fast.plan(method, geometry, np.ones((3, 3))).threads, 3)
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

    def test_banded_every_stride_phase_and_sparse_kernel(self):
        # Row phases that taps skip, kernel rows and columns of zeros (left
        # out of the band), columns unevenly spaced once those are gone.
        rng = np.random.default_rng(14)
        x = rng.standard_normal((3, 37, 41))
        kernel = rng.standard_normal((5, 6))
        kernel[1] = 0
        kernel[:, [1, 2, 4]] = 0
        for stride in ((1, 1), (2, 3), (3, 2), (4, 1)):
            for dilation in ((1, 1), (2, 1), (1, 3)):
                with self.subTest(stride=stride, dilation=dilation):
                    expected = conv2d(x, kernel, stride, dilation, padding=2, method="loops")
                    result = conv2d(x, kernel, stride, dilation, padding=2, method="banded")
                    assert_close(self, result, expected, term_scale(x, kernel))

    def test_banded_keeps_nan_and_infinity_local(self):
        # A strip whose input holds NaN or infinity is done tap by tap: the
        # band's zeros (0 * inf is NaN) must not spread them.
        x = np.random.default_rng(15).random((64, 64))
        x[20, 30] = np.nan
        x[50, 5] = np.inf
        kernel = np.random.default_rng(16).random((3, 5))
        kernel[1, 2] = 0.0
        with np.errstate(invalid="ignore"):
            expected = conv2d(x, kernel, padding=1, method="loops")
            for method in ("banded", "auto"):
                with self.subTest(method=method):
                    result = conv2d(x, kernel, padding=1, method=method)
                    np.testing.assert_array_equal(np.isnan(result), np.isnan(expected))
                    np.testing.assert_array_equal(np.isinf(result), np.isinf(expected))
                    finite = np.isfinite(expected)
                    assert_close(self, np.where(finite, result, 0), np.where(finite, expected, 0),
                                 term_scale(np.nan_to_num(x, posinf=1), kernel))

    def test_banded_tiles_every_mode_stride_and_dilation(self):
        # Tiny tiles (64 columns, the least) and tiny strips over 3 threads: tiles
        # that read the input in place beside tiles at the borders that fetch a
        # copy, on images just wider than two edge tiles and much wider.
        rng = np.random.default_rng(21)
        with settings.using(band_tile_bytes=64, band_tile_from=0, strip_bytes=4096,
                            min_strip_bytes=4096), forced_threads(3):
            for width in (1, 63, 129, 200, 401):
                for mode in PADDING_MODES:
                    x = rng.standard_normal((2, 23, width))
                    kernel = rng.standard_normal((3, 4))
                    fill = 1.5 if mode == "constant" else 0
                    for stride, dilation, padding in (((1, 1), (1, 1), "same"),
                                                      ((2, 3), (2, 1), (3, 5)),
                                                      ((1, 2), (1, 3), ((0, 2), (7, 0))),
                                                      ((3, 1), (1, 1), 0)):
                        params = dict(stride=stride, dilation=dilation, padding=padding,
                                      padding_mode=mode, fill_value=fill)
                        try:
                            expected = conv2d(x, kernel, method="loops", **params)
                        except ValueError:      # no output, or padding wider than reflect allows
                            continue
                        with self.subTest(width=width, **params):
                            assert_close(self, conv2d(x, kernel, method="banded", **params),
                                         expected, term_scale(x, kernel, fill))

    def test_banded_whole_rows_read_in_place(self):
        # Strips of the whole width whose groups copy their shifted rows from the
        # input itself, each row read as if the rows were one long row (the
        # border cells set after): images of a batch side by side in memory,
        # borders of one value or not, no border above or below (the first and
        # last groups would read before and after the input's memory), kernels
        # with columns of zeros, a view and other dtypes (which are fetched).
        rng = np.random.default_rng(24)
        # (Rows of any width read in place: by default only rows of a few KiB are.)
        with settings.using(band_tile_from=2 ** 30, strip_bytes=4096, min_strip_bytes=4096,
                            in_place_row_bytes=0), forced_threads(3):
            for width in (1, 5, 40, 77):
                for mode in PADDING_MODES:
                    x = rng.standard_normal((3, 29, width))
                    fill = -2.5 if mode == "constant" else 0
                    for kernel_shape, sparse, padding, stride in (
                            ((3, 3), False, "same", 1), ((5, 4), True, (2, 3), (2, 1)),
                            ((3, 7), False, ((0, 0), (3, 3)), 1), ((2, 5), False, 0, 1),
                            ((4, 3), True, ((1, 0), (0, 2)), (3, 1))):
                        kernel = rng.standard_normal(kernel_shape)
                        if sparse:
                            kernel[:, 1] = 0
                        params = dict(stride=stride, padding=padding, padding_mode=mode,
                                      fill_value=fill)
                        try:
                            expected = conv2d(x, kernel, method="loops", **params)
                        except ValueError:      # no output, or padding wider than reflect allows
                            continue
                        with self.subTest(width=width, kernel_shape=kernel_shape, **params):
                            assert_close(self, conv2d(x, kernel, method="banded", **params),
                                         expected, term_scale(x, kernel, fill))
                            if width == 77:
                                view = np.ascontiguousarray(x.transpose(0, 2, 1)).transpose(
                                    0, 2, 1)
                                assert_close(self, conv2d(view, kernel, method="banded",
                                                          **params),
                                             expected, term_scale(x, kernel, fill))
                                low = x.astype(np.float32)
                                assert_close(self, conv2d(low, kernel, method="banded",
                                                          **params),
                                             conv2d(low, kernel, method="loops", **params),
                                             term_scale(x, kernel, fill))

    def test_banded_tiles_read_views_and_other_dtypes(self):
        # The input read in place only where it can be: a transposed view and
        # float32 data computed in float64 are fetched, with the same results.
        rng = np.random.default_rng(22)
        x = rng.standard_normal((300, 180))
        kernel = rng.standard_normal((5, 5))
        with settings.using(band_tile_bytes=64, band_tile_from=0):
            expected = conv2d(x.T, kernel, padding="same", method="loops")
            assert_close(self, conv2d(x.T, kernel, padding="same", method="banded"),
                         expected, term_scale(x, kernel))
            low = x.astype(np.float32)
            assert_close(self, conv2d(low, kernel, padding="same", method="banded"),
                         conv2d(low, kernel, padding="same", method="loops"),
                         term_scale(x, kernel))

    def test_banded_tiles_keep_nan_and_infinity_to_their_windows(self):
        # NaN or infinity in a tile read in place, in an edge tile, beside a kernel
        # column of zeros (left out of the band, 0 * NaN is still NaN), just below
        # a strip's windows (its products read those rows with weight 0), at the
        # image's corner: each reaches exactly the outputs whose window holds it.
        rng = np.random.default_rng(23)
        kernel = rng.random((3, 5))
        sparse = kernel.copy()
        sparse[:, 1] = 0
        places = ((40, 150), (3, 2), (30, 298), (0, 0), (59, 299), (17, 100))
        # Strips cut into tiles (band_tile_from=0), strips fetched whole, and strips
        # of the whole width read in place (rows of any width), the border's rows too.
        for tile_from, row_bytes in ((0, 3 * 2 ** 10), (2 ** 20, 2 ** 20), (2 ** 20, 0)):
            with settings.using(band_tile_bytes=64, band_tile_from=tile_from, strip_bytes=4096,
                                min_strip_bytes=4096, in_place_row_bytes=row_bytes), \
                    np.errstate(invalid="ignore"):
                self._nan_and_infinity_in_their_windows(rng, kernel, sparse, places,
                                                        (tile_from, row_bytes))

    def _nan_and_infinity_in_their_windows(self, rng, kernel, sparse, places, tile_from):
        for place, value in zip(places, (np.nan, np.inf, -np.inf) * 2):
            for k in (kernel, sparse):
                for params in (dict(padding="same"), dict(stride=2, padding=(1, 2),
                                                          padding_mode="circular"),
                               dict(stride=(3, 2), dilation=(1, 2)),
                               dict(padding=2, padding_mode="reflect")):
                    x = rng.random((60, 300))
                    x[place] = value
                    expected = conv2d(x, k, method="loops", **params)
                    result = conv2d(x, k, method="banded", **params)
                    with self.subTest(place=place, value=value, sparse=k is sparse,
                                      tile_from=tile_from, **params):
                        np.testing.assert_array_equal(np.isnan(result),
                                                      np.isnan(expected))
                        np.testing.assert_array_equal(np.isinf(result),
                                                      np.isinf(expected))
                        finite = np.isfinite(expected)
                        assert_close(self, result[finite], expected[finite],
                                     term_scale(np.nan_to_num(x, posinf=1,
                                                              neginf=-1), k))

    def test_banded_tiles_are_small_whatever_the_width(self):
        # The tiles' products stay small: one group's shifted rows within
        # band_tile_bytes, however wide the image; the edge tiles hold the
        # border columns; the interior tiles read no border.
        from convolution.fast import banded
        for width, k in ((1024, 3), (8192, 3), (4096, 11), (300, 5)):
            kernel = np.ones((k, k), np.float32)
            geometry = conv_geometry((64, width), kernel.shape, padding="same")
            tiles = fast.plan("banded", geometry, kernel, 1, np.float32).detail[1]
            band = banded.band(kernel, (1, 1), (1, 1), settings.current().band_rows)
            with self.subTest(width=width, k=k):
                # Untiled exactly where one group's shifted rows of the whole width are small.
                whole = band.matrix.shape[1] * width * 4 <= settings.current().band_tile_from
                self.assertEqual(tiles is None, whole)
                if whole:
                    with settings.using(band_tile_from=0):
                        tiles = fast.plan("banded", geometry, kernel, 1,
                                          np.float32).detail[1]
                self.assertEqual(tiles[0][0], 0)
                self.assertEqual(tiles[-1][1], width)
                self.assertTrue(all(a[1] == b[0] for a, b in zip(tiles, tiles[1:])))
                self.assertLessEqual(max(b - a for a, b in tiles) * band.matrix.shape[1] * 4,
                                     settings.current().band_tile_bytes)
                low, high = banded._inside(band, geometry)
                self.assertEqual((low, high), (k // 2, width - k // 2))
                self.assertTrue(all(a >= low and b <= high for a, b in tiles[1:-1]))

    def test_banded_rows_layout_follows_the_settings(self):
        # The strips' layout is worked out with the plan, once: a settings change
        # gives a plan of its own, whose layout reads in place or not as it says.
        from convolution.fast import banded_rows
        kernel = np.ones((3, 3), np.float32)
        geometry = conv_geometry((64, 300), kernel.shape, 2, 2, padding=2)
        found = fast.plan("banded", geometry, kernel, 1, np.float32).detail[2]
        self.assertIsInstance(found, banded_rows.Layout)
        self.assertTrue(found.in_place)
        with settings.using(in_place_row_bytes=2 ** 20):
            self.assertFalse(fast.plan("banded", geometry, kernel, 1,
                                       np.float32).detail[2].in_place)
        wide = np.ones((11, 11), np.float32)      # 11 shifts a column phase: fetched
        self.assertFalse(fast.plan("banded", conv_geometry((64, 300), wide.shape, 2, 2),
                                   wide, 1, np.float32).detail[2].in_place)

    def test_banded_rows_fetched_blocks_keep_nan_to_their_windows(self):
        # Fetched strips sum each block they fetch (the gate): NaN or infinity
        # in the border rows and columns a block copies, inside, in the rows
        # below the last window that the last group reads with weights 0, with
        # kernels of no weight 0, float32 and float64, stride 2 and dilation 2.
        rng = np.random.default_rng(25)
        with np.errstate(invalid="ignore"), settings.using(strip_bytes=8192,
                                                           min_strip_bytes=8192):
            for dtype, k, mode in ((np.float64, 3, "reflect"), (np.float32, 11, "zeros"),
                                   (np.float64, 5, "circular"), (np.float32, 3, "zeros")):
                kernel = (rng.random((k, k)) + 0.5).astype(dtype)
                for place in ((0, 0), (1, 77), (30, 0), (59, 200), (58, 199), (45, 100)):
                    for value in (np.nan, np.inf):
                        x = rng.random((60, 201)).astype(dtype)
                        x[place] = value
                        params = dict(stride=2, dilation=2, padding=k - 1, padding_mode=mode)
                        expected = conv2d(x, kernel, method="loops", **params)
                        result = conv2d(x, kernel, method="banded", **params)
                        with self.subTest(dtype=dtype, k=k, place=place, value=value):
                            np.testing.assert_array_equal(np.isnan(result), np.isnan(expected))
                            np.testing.assert_array_equal(np.isinf(result), np.isinf(expected))
                            finite = np.isfinite(expected)
                            assert_close(self, result[finite], expected[finite],
                                         term_scale(np.nan_to_num(x, posinf=1), kernel), 8)

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


class TestScratch(unittest.TestCase):
    """No result depends on what the threads' scratch memory held before."""

    def test_results_with_scratch_full_of_nan(self):
        # Every float buffer the arena hands out starts as NaN: a path that multiplies a
        # cell it never wrote (even by a weight 0) or leaves a border cell unset shows it.
        take = Arena.take

        def poisoned(arena, shape, dtype):
            out = take(arena, shape, dtype)
            if np.dtype(dtype).kind == "f":
                out.fill(np.nan)
            return out

        rng = np.random.default_rng(3)
        cases = itertools.product(((61, 1543), (130, 900)), (3, 5), (1, 2), (1, 2),
                                  ("zeros", "reflect"), (np.float32, np.float64),
                                  ("banded", "polyphase", "auto"))
        with mock.patch.object(Arena, "take", poisoned):
            for shape, k, stride, dilation, mode, dtype, method in cases:
                x = rng.standard_normal(shape).astype(dtype)
                kernel = rng.standard_normal((k, k)).astype(dtype)
                kernel[0, 1] = 0        # a weight 0: the NaN gate checks the windows
                params = dict(stride=stride, dilation=dilation, padding="same",
                              padding_mode=mode)
                with self.subTest(shape=shape, k=k, stride=stride, dilation=dilation,
                                  mode=mode, dtype=dtype, method=method):
                    assert_close(self, conv2d(x, kernel, method=method, **params),
                                 conv2d(x, kernel, method="direct", **params),
                                 term_scale(x, kernel))


class TestSeparable(unittest.TestCase):
    """The kernel's rank-1 terms: exact where they can be, accurate or refused elsewhere."""

    def test_rank_terms(self):
        sobel = np.array([[1, 0, -1], [2, 0, -2], [1, 0, -1]])
        (u, v), = separable.rank_terms(sobel)
        np.testing.assert_array_equal(np.outer(u, v), sobel)
        self.assertEqual(u.dtype.kind, "i")
        self.assertIsNone(separable.rank_terms(np.array([[1, 2], [3, 4]])))
        g = np.outer([1.0, 4, 6, 4, 1], [1.0, 2, 1]) / 64
        self.assertEqual(len(separable.rank_terms(g)), 1)
        rng = np.random.default_rng(10)
        k = rng.standard_normal((5, 4))
        terms = separable.rank_terms(k)
        self.assertEqual(len(terms), 4)
        np.testing.assert_allclose(sum(np.outer(u, v) for u, v in terms), k, atol=1e-14)

    def test_nan_and_infinity_stay_in_their_windows(self):
        # Terms without weights 0 (a Gaussian): the results are checked, not the
        # input; a term with zeros (a kernel row of zeros): the input and the
        # column pass. Both do a strip holding NaN or infinity tap by tap.
        rng = np.random.default_rng(11)
        gaussian = np.outer([1.0, 4, 6, 4, 1], [1.0, 2, 3, 2, 1])
        gapped = gaussian.copy()
        gapped[1] = 0
        with settings.using(strip_bytes=4096, min_strip_bytes=4096), \
                np.errstate(invalid="ignore"):
            for kernel in (gaussian, gapped):
                for place, value in (((0, 0), np.nan), ((20, 31), np.inf), ((39, 5), -np.inf)):
                    x = rng.random((40, 60))
                    x[place] = value
                    expected = conv2d(x, kernel, padding="same", method="loops")
                    result = conv2d(x, kernel, padding="same", method="separable")
                    with self.subTest(gapped=kernel is gapped, place=place, value=value):
                        np.testing.assert_array_equal(np.isnan(result), np.isnan(expected))
                        np.testing.assert_array_equal(np.isinf(result), np.isinf(expected))
                        finite = np.isfinite(expected)
                        assert_close(self, result[finite], expected[finite],
                                     term_scale(np.nan_to_num(x, posinf=1, neginf=-1), kernel))

    def test_unpadded_input_read_in_place(self):
        # Unpadded, the column pass reads the input's rows in place: strips of every
        # size (the last one, whose last group reads past the input's end, fetched),
        # batches (a strip's rows past its image are the next image's), column strides
        # and dilations, a width the row pass's blocks overrun, NaN and infinity at the
        # input's corners, kernels with and without weights 0, and a non-contiguous input.
        rng = np.random.default_rng(12)
        gaussian = np.outer([1.0, 4, 6, 4, 1], [1.0, 2, 3, 2, 1])
        gapped = gaussian.copy()
        gapped[1] = 0
        cases = itertools.product((gaussian, gapped), (np.float32, np.complex128),
                                  ((1, 1), (1, 2)), (2 ** 9, 2 ** 12, 2 ** 21))
        with np.errstate(invalid="ignore"):
            for kernel, dtype, (sw, dilation), strip in cases:
                x = rng.random((3, 37, 45)).astype(dtype)
                x[2, -1, -1], x[0, 0, 0], x[1, 20, 30] = np.nan, np.inf, -np.inf
                views = (x, x[:, :, ::-1]) if strip == 2 ** 12 else (x,)
                for data in views:
                    expected = conv2d(data, kernel, (1, sw), dilation, method="loops")
                    with self.subTest(gapped=kernel is gapped, dtype=dtype, sw=sw,
                                      dilation=dilation, strip=strip,
                                      contiguous=data.flags.c_contiguous), \
                            settings.using(strip_bytes=strip, min_strip_bytes=2 ** 9):
                        result = conv2d(data, kernel, (1, sw), dilation, method="separable")
                        np.testing.assert_array_equal(np.isnan(result), np.isnan(expected))
                        np.testing.assert_array_equal(np.isinf(result), np.isinf(expected))
                        finite = np.isfinite(expected)
                        assert_close(self, result[finite], expected[finite],
                                     term_scale(np.nan_to_num(data, posinf=1, neginf=-1),
                                                kernel))

    def test_huge_float32_kernel_stays_accurate(self):
        # Scaled by 1e38, a float32 kernel's singular values overflow inside a
        # float32 SVD; the terms are found on the kernel divided by its
        # largest entry, in float64, and split evenly between u and v.
        rng = np.random.default_rng(17)
        kernel = (rng.random((3, 3)) * 1e38).astype(np.float32)
        x = (rng.random((30, 30)) * 1e-10).astype(np.float32)
        expected = conv2d(x.astype(np.float64), kernel.astype(np.float64), method="loops")
        for method in ("separable", "auto"):
            with self.subTest(method=method):
                result = conv2d(x, kernel, method=method)
                self.assertTrue(np.isfinite(result).all())
                assert_close(self, result, expected.astype(np.float32),
                             term_scale(x.astype(np.float64), kernel.astype(np.float64)))

    def test_kernels_it_refuses(self):
        nan = np.ones((3, 3))
        nan[1, 1] = np.nan
        with self.assertRaisesRegex(ValueError, r"method='separable' could not factor .* NaN"):
            conv2d(np.ones((5, 5)), nan, method="separable")
        if np.finfo(np.longdouble).eps < np.finfo(np.float64).eps:
            with self.assertRaisesRegex(ValueError, r"LAPACK, which does not take"):
                conv2d(np.ones((5, 5), np.longdouble), np.ones((3, 3)), method="separable")


class TestAuto(unittest.TestCase):
    """What 'auto' chooses: what holds on every machine, at every thread count."""

    def choice(self, shape, kernel, **params):
        return choose_method(kernel, conv_geometry(shape, kernel.shape, **params))[0]

    def test_choices_that_hold_at_any_thread_count(self):
        # On one thread and on 16 (pretended): a 9x9 Gaussian never goes to the
        # tap loops (on 16 cores it once took 'polyphase', 12x slower than
        # 'separable'); a 31x31 kernel takes the FFT; small float kernels a
        # matrix product, strided or not.
        rng = np.random.default_rng(11)
        gaussian = np.outer(np.hanning(11), np.hanning(11))[1:-1, 1:-1]
        for n in (1, 16):
            with self.subTest(threads=n), pretend_cores(n):
                for dtype in (np.float32, np.float64):
                    self.assertIn(self.choice((1024, 1024), gaussian.astype(dtype)),
                                  ("separable", "banded"))
                    self.assertEqual(self.choice((1024, 1024), rng.random((31, 31)).astype(dtype)),
                                     "fft")
                    self.assertEqual(self.choice((1024, 1024), rng.random((3, 3)).astype(dtype)),
                                     "banded")
                    self.assertEqual(self.choice((1024, 1024), rng.random((3, 3)).astype(dtype),
                                                 stride=2, dilation=2), "banded")

    def test_the_path_does_not_depend_on_the_threads(self):
        # The work chooses the path; the threads only share it. On 16 cores an
        # 11x11 kernel at 1024² once went to the FFT at 16 threads (2.7x slower
        # than the band products on 4), because the FFT's larger work earned it
        # more threads in the estimates.
        rng = np.random.default_rng(12)
        cases = [((1024, 1024), (k, k), dtype, params)
                 for k in (3, 5, 11, 15, 21, 31) for dtype in (np.float32, np.float64)
                 for params in ({}, {"stride": 2, "dilation": 2})]
        cases += [((4096, 4096), (5, 5), np.float32, {}), ((300, 2000), (1, 41), np.float64, {})]
        for shape, size, dtype, params in cases:
            kernel = rng.random(size).astype(dtype)
            chosen = set()
            for n in (1, 2, 4, 16):
                with pretend_cores(n):
                    chosen.add(self.choice(shape, kernel, **params))
            with self.subTest(shape=shape, kernel=size, dtype=dtype, **params):
                self.assertEqual(len(chosen), 1, chosen)

    def test_integers_keep_exact_paths(self):
        rng = np.random.default_rng(18)
        self.assertIn(self.choice((1024, 1024), rng.integers(-5, 5, (31, 31))),
                      ("direct", "polyphase"))
        self.assertEqual(self.choice((1024, 1024), np.outer(np.arange(1, 12), np.arange(1, 12))),
                         "separable")
        # Integer data with a float kernel: never the FFT, whose error is
        # relative to the largest value in a tile (here 2**63 swamps the 1).
        x = np.zeros((300, 300), np.uint64)
        x[0, 0], x[200, 200] = 2 ** 63 + 2 ** 62, 1
        kernel = np.zeros((31, 31))
        kernel[15, 15] = 1.0
        self.assertEqual(conv2d(x, kernel, padding="same")[200, 200], 1.0)
        with self.assertRaisesRegex(ValueError, r"method='fft' does not take integer data"):
            conv2d(x, kernel, method="fft")

    def test_kernel_checked_before_anything_is_computed_from_it(self):
        # A NaN in the kernel once raised LinAlgError from an SVD 'auto' ran
        # first; longdouble, TypeError. Both now give what 'direct' gives.
        x = np.random.default_rng(19).random((40, 40))
        nan = np.ones((3, 3))
        nan[0, 2] = np.nan
        with np.errstate(invalid="ignore"):
            np.testing.assert_array_equal(conv2d(x, nan), conv2d(x, nan, method="direct"))
        long = x.astype(np.longdouble)
        np.testing.assert_array_equal(conv2d(long, np.ones((3, 3))),
                                      conv2d(long, np.ones((3, 3)), method="direct"))

    def test_fft_kept_from_data_with_a_large_dynamic_range(self):
        # Half the columns scaled by 1e8: the FFT's error (relative to each
        # tile's largest terms) would reach the outputs that see only values
        # below 1 at 1e-8 relative. 'auto' goes elsewhere; on even data it
        # takes the FFT.
        rng = np.random.default_rng(20)
        x = rng.random((600, 600))
        kernel = rng.random((31, 31))
        geometry = conv_geometry(x.shape, kernel.shape)
        self.assertEqual(choose_method(kernel, geometry, images=x[None])[0], "fft")
        x[:, 300:] *= 1e8
        self.assertNotEqual(choose_method(kernel, geometry, images=x[None])[0], "fft")
        small = conv2d(x, kernel)[:, :260]      # windows over columns below 300 only
        # The tap loops in NumPy ('direct', tested against the per-cell loops
        # elsewhere) sum each output from its own window, as the loops do.
        expected = conv2d(x[:, :290], kernel, method="direct")[:, :260]
        assert_close(self, small, expected, term_scale(x[:, :290], kernel))

    def test_fft_kernel_spectra_of_every_phase_and_tile(self):
        # The kernel's spectra transform only the rows that hold taps: kernels of the same
        # shape, another tile size (a setting), a stride (four phases), a complex kernel
        # and one wider than the default tile.
        rng = np.random.default_rng(23)
        x = rng.random((90, 100))
        k = rng.random((9, 9))
        changed = k.copy()
        changed[4, 4] += 1
        for kernel, stride, tile in ((k, 1, 320), (changed, 1, 320), (k, 1, 64), (k, 2, 320),
                                     (k + 1j * changed, 1, 320), (rng.random((70, 70)), 1, 320)):
            with self.subTest(shape=kernel.shape, stride=stride, tile=tile), \
                    settings.using(fft_tile=tile):
                for _ in range(2):
                    assert_close(self, conv2d(x, kernel, stride, method="fft"),
                                 conv2d(x, kernel, stride, method="direct"),
                                 term_scale(x, kernel))

    def test_fft_range_check_takes_every_block(self):
        # The blocks' maxima, half the kernel's span on a side, as the definition says,
        # against the check's reduction along rows first: shapes with rows and columns
        # beyond the last whole block, a block of zeros, a batch, complex data.
        rng = np.random.default_rng(22)
        for shape, kernel_shape, dtype in (((1, 100, 37), (21, 21), np.float64),
                                           ((2, 517, 333), (11, 9), np.float32),
                                           ((1, 64, 64), (31, 31), np.complex128)):
            x = rng.standard_normal(shape).astype(dtype)
            x[:, :12, :12] = 0
            geometry = conv_geometry(shape[1:], kernel_shape)
            bh, bw = (span // 2 + 1 for span in geometry.span)
            rows, cols = shape[1] // bh * bh, shape[2] // bw * bw
            maxima = np.abs(x[:, :rows, :cols]).reshape(
                shape[0], rows // bh, bh, cols // bw, bw).max(axis=(2, 4))
            ratio = np.abs(x).max() / maxima[maxima > 0].min()
            s = settings.current()
            allowed = s.fft_range * np.finfo(dtype).eps / np.finfo(np.float64).eps
            for scale in (0.5, 2.0):       # the bound below the data's ratio, then above it
                with self.subTest(shape=shape, scale=scale), \
                        settings.using(fft_range=s.fft_range * ratio / allowed * scale):
                    self.assertEqual(fast.fft_surprise_free(x, geometry, np.dtype(dtype), 0,
                                                            settings.current()), scale > 1)

    def test_auto_runs_the_plan_it_chose(self):
        kernel = np.random.default_rng(21).random((5, 5)).astype(np.float32)
        geometry = conv_geometry((512, 512), kernel.shape, padding="same")
        method, chosen = choose_method(kernel, geometry)
        self.assertEqual(chosen, fast.plan(method, geometry, kernel))
        calls = []
        spy = fast.PATHS[method]._replace(run=lambda *args: calls.append(args[-1]))
        with mock.patch.dict(fast.PATHS, {method: spy}):
            conv2d(np.ones((512, 512), np.float32), kernel, padding="same")
        self.assertEqual(calls, [chosen])


class TestDriver(unittest.TestCase):
    """Threads, the pool, configuration and BLAS: the driver under conditions users meet."""

    def test_threads_never_exceed_the_cores(self):
        with mock.patch.dict(os.environ, {"CONVOLUTION_THREADS": "4096"}):
            self.assertEqual(driver.threads(), driver.cores())
            with driver.limit_threads(3):
                self.assertEqual(driver.threads(), min(3, driver.cores()))
                with driver.limit_threads(1):
                    self.assertEqual(driver.threads(), 1)
        # The plan does not read the machine's load: the same call plans
        # the same way however busy the machine is.
        with pretend_cores(8), mock.patch.object(os, "getloadavg", lambda: (64.0, 64.0, 64.0)):
            self.assertEqual(driver.threads(), 8)
        with mock.patch.dict(os.environ, {"CONVOLUTION_THREADS": "many"}):
            with self.assertRaisesRegex(ValueError, r"CONVOLUTION_THREADS must be a positive "
                                                    r"integer, got 'many'"):
                driver.threads()

    def test_threads_follow_the_length_of_the_calls(self):
        # 16 cores: calls of a few microseconds stay on one thread (the GIL
        # would pass between threads more often than it saves), calls of a
        # millisecond take every core.
        with pretend_cores(16):
            short = strips.Work(row_bytes=4096, extra_rows=2, row_ns=2000.0, calls=200)
            long = strips.Work(row_bytes=4096, extra_rows=2, row_ns=2e6, calls=4)
            self.assertEqual(strips.plan(1, 1024, 2 ** 24, short).threads, 1)
            self.assertEqual(strips.plan(1, 1024, 2 ** 24, long).threads, 16)
        # The model itself: 10 ms of work in 10,000 calls of 1 us each gains
        # nothing from threads; in 10 calls of 1 ms, 16 threads take 1/16.
        many, few = [[driver.wall_ns(1e7, calls, n) for n in (1, 2, 16)] for calls in (1e4, 10)]
        self.assertGreater(min(many[1:]), many[0])
        self.assertAlmostEqual(few[2] * 16 / few[0], 1, delta=0.05)

    def test_configuration_is_read_at_every_call(self):
        # An arena that wanted 128 KiB is kept while KEEP_BYTES is 1 MiB,
        # given back once it is 64 KiB.
        driver.release_arena()
        kept = []
        for keep_bytes in (2 ** 20, 2 ** 16):
            with settings.using(keep_bytes=keep_bytes):
                plan = strips.Plan([(0,)], 1, 0.0, settings=settings.current())
                arenas = []
                driver.run(lambda arena, task: (arenas.append(arena),
                                                arena.take((2 ** 17,), np.uint8)), plan)
                driver.run(lambda arena, task: arenas.append(arena), plan)
                kept.append(arenas[1] is arenas[0])
        self.assertEqual(kept, [True, False])
        work = strips.Work(row_bytes=2 ** 10, extra_rows=0, row_ns=1.0, calls=1)
        with settings.using(threads=1, min_strip_bytes=2 ** 10):
            with settings.using(strip_bytes=2 ** 16):
                self.assertEqual(len(strips.plan(1, 1024, 2 ** 30, work).tasks), 16)
            with settings.using(strip_bytes=2 ** 18):
                self.assertEqual(len(strips.plan(1, 1024, 2 ** 30, work).tasks), 4)

    def test_a_grown_pool_shuts_the_old_one_down(self):
        old = driver_threads.pool(1)
        self.assertIs(driver_threads.pool(1), old)
        new = driver_threads.pool(driver_threads.pool_size() + 1)
        self.assertIsNot(new, old)
        with self.assertRaisesRegex(RuntimeError, "shutdown"):
            old.submit(int)

    def test_errors_in_strips_reach_the_caller(self):
        def work(arena, n):
            if n == 5:
                raise ZeroDivisionError("strip 5")
        with forced_threads(3):
            with self.assertRaisesRegex(ZeroDivisionError, "strip 5"):
                driver.run(work, strips.Plan([(n,) for n in range(12)], 3, 0.0))

    def test_a_forked_child_does_not_hang(self):
        # The pool's threads do not exist in a child of os.fork(): the child
        # starts its own pool instead of waiting on them forever.
        if not hasattr(os, "fork"):
            self.skipTest("no os.fork on this platform")
        status, out, err = run_python(FORCE_THREADS, """
            import os, time
            assert np.allclose(conv2d(x, k), expected)       # the parent's pool starts
            time.sleep(0.2)                                  # ... and its threads wait for work
            pid = os.fork()
            if pid == 0:
                os._exit(0 if np.allclose(conv2d(x, k), expected) else 1)
            _, status = os.waitpid(pid, 0)
            print("child", os.waitstatus_to_exitcode(status))
        """, timeout=60)
        self.assertEqual((status, out.strip()), (0, "child 0"), err)

    def test_multiprocessing_with_fork_does_not_hang(self):
        if not hasattr(os, "fork"):
            self.skipTest("no os.fork on this platform")
        status, out, err = run_python(FORCE_THREADS, """
            import multiprocessing, time

            def check(seed):
                return bool(np.allclose(conv2d(x, k), expected))

            if __name__ == "__main__":
                conv2d(x, k)
                time.sleep(0.2)       # the pool's threads wait for work when the children fork
                with multiprocessing.get_context("fork").Pool(2) as pool:
                    print(pool.map(check, range(4)))
        """, timeout=60)
        self.assertEqual((status, out.strip()), (0, "[True, True, True, True]"), err)

    def test_calls_from_an_atexit_handler(self):
        # During interpreter shutdown the pool takes no new work: the calling
        # thread does it all.
        status, out, err = run_python(FORCE_THREADS, """
            import atexit

            @atexit.register
            def at_exit():
                print(np.allclose(conv2d(x, k), expected))
        """)
        self.assertEqual((status, out.strip()), (0, "True"), err)

    def test_blas_single_threaded_inside_and_restored_after(self):
        libraries = [lib for lib in blas.libraries() if lib.num_threads is not None]
        if not libraries:
            self.skipTest("threadpoolctl finds no BLAS whose threads it can set")
        import threadpoolctl
        inside = []
        entered, release = threading.Barrier(2), threading.Event()
        before = [lib.num_threads for lib in libraries]

        def call(wait):
            with driver.single_threaded_blas():
                inside.append([lib.num_threads for lib in libraries])
                entered.wait(10)
                if wait:
                    release.wait(10)

        with threadpoolctl.threadpool_limits(2, user_api="blas"):
            outside = [lib.num_threads for lib in libraries]
            if outside == [1] * len(libraries):
                self.skipTest("this BLAS keeps one thread here")
            # Two calls overlap; the one that started first ends first.
            second = threading.Thread(target=call, args=(True,))
            with driver.single_threaded_blas():
                second.start()
                call(False)
            self.assertEqual([lib.num_threads for lib in libraries], [1] * len(libraries))
            release.set()
            second.join(10)
            self.assertEqual([lib.num_threads for lib in libraries], outside)
        self.assertEqual(inside, [[1] * len(libraries)] * 2)
        self.assertEqual([lib.num_threads for lib in libraries], before)


class TestProgress(unittest.TestCase):
    """driver.report_progress: every strip of every path counted once, on any thread count."""

    def test_each_strip_once(self):
        rng = np.random.default_rng(30)
        matrix, kernel = rng.standard_normal((3, 300, 200)), rng.standard_normal((5, 5))
        for method, threads in itertools.product(FAST_METHODS, (1, 4)):
            calls = []
            with self.subTest(method=method, threads=threads), forced_threads(threads):
                with driver.report_progress(lambda done, total: calls.append((done, total))):
                    conv2d(matrix, kernel, method=method)
                total = calls[0][1]
                self.assertGreater(total, 1)
                self.assertEqual(calls, [(done, total) for done in range(total + 1)])
        calls.clear()
        conv2d(matrix, kernel)               # outside the block: nothing reported
        self.assertEqual(calls, [])


class TestMemory(unittest.TestCase):
    """Memory beyond input and output stays within a few strips, not copies of the input."""

    def peak(self, function):
        """Bytes ``function()`` allocates beyond its result, from a cold start.

        Every thread keeps its strips' memory between calls: the pool and
        this thread's arena are dropped first, so that the call pays for all
        the memory it uses.
        """
        driver.release_arena()
        driver_threads.shutdown_pool()
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            result = function()
            return tracemalloc.get_traced_memory()[1] - base - result.nbytes
        finally:
            tracemalloc.stop()

    def test_non_fft_paths_stay_within_three_outputs(self):
        # Whatever the thread count: all threads' strips together stay within
        # the output's size (or 256 KiB a thread on small outputs).
        rng = np.random.default_rng(12)
        x = rng.random((1024, 1024)).astype(np.float32)
        gaussian = np.outer(np.hanning(11), np.hanning(11)).astype(np.float32)
        for method, kernel in (("direct", x[:3, :3]), ("polyphase", x[:11, :11]),
                               ("separable", gaussian), ("banded", x[:3, :3]),
                               ("banded", x[:11, :11])):
            for stride in (1, 2):
                with self.subTest(method=method, kernel=kernel.shape, stride=stride):
                    extra = self.peak(lambda: conv2d(x, kernel, stride, padding="same",
                                                     padding_mode="reflect", method=method))
                    output = (1024 // stride) ** 2 * 4
                    self.assertLess(extra, 3 * output)

    def test_8192_square_float32_with_11x11_kernel_under_1_gb(self):
        # The whole process, input and output included, in a fresh interpreter.
        if sys.platform != "linux":
            self.skipTest("ru_maxrss is in kilobytes on Linux only")
        status, out, err = run_python("""
            import resource, numpy as np, convolution
            x = np.random.default_rng(0).random((8192, 8192), dtype=np.float32)
            k = np.random.default_rng(1).random((11, 11)).astype(np.float32)
            out = convolution.conv2d(x, k, padding='same')
            print(out.shape, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
        """, timeout=300)
        shape, kilobytes = out.rsplit(")", 1)
        self.assertEqual(shape + ")", "(8192, 8192)", err)
        self.assertLess(int(kilobytes) * 1024, 2 ** 30)

    def test_fft_memory_does_not_grow_with_the_image(self):
        # Overlap-save: the FFT's buffers are a few tiles, whatever the image
        # size. On one thread, so that the peak is one tile's buffers (with
        # several, it is as many tiles as happen to be in flight at once).
        rng = np.random.default_rng(13)
        kernel = rng.random((31, 31)).astype(np.float32)
        extra = []
        with driver.limit_threads(1):
            for n in (1024, 2048):
                x = rng.random((n, n)).astype(np.float32)
                extra.append(self.peak(lambda: conv2d(x, kernel, padding="same", method="fft")))
        self.assertLess(extra[1], 1.1 * extra[0])

    def test_fft_memory_grows_at_most_with_the_threads(self):
        rng = np.random.default_rng(13)
        kernel = rng.random((31, 31)).astype(np.float32)
        x = rng.random((1024, 1024)).astype(np.float32)
        with driver.limit_threads(1):
            one = self.peak(lambda: conv2d(x, kernel, padding="same", method="fft"))
        with forced_threads(3):
            three = self.peak(lambda: conv2d(x, kernel, padding="same", method="fft"))
        self.assertLess(three, 3 * one)
