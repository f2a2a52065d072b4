"""The 'fold' paths of conv1d and conv3d (fast/fold1d.py, fast/depth3d.py), against witnesses.

conv1d: the windows of a block read in place across folded rows, for short
and long kernels (rows longer than 128 outputs), strides and dilations, every
chunk size, the same bits on any number of threads. conv3d's ring of slices:
every border mode along depth, strides and dilations along depth, groups of
rows with a short last one, the ring refilled at every seam between strips
(the same bits on any number of threads), each slice laid out once, and
NaN and infinity reaching exactly the outputs whose window holds them.
"""
import itertools
import unittest
import warnings
from unittest import mock

import numpy as np

from convolution import conv1d, conv3d, convnd_loops, settings
from convolution.fast import depth3d as fast_depth3d, fold1d as fast_fold1d
from convolution.padding import PADDING_MODES

from .common import forced_threads

MODES = tuple(PADDING_MODES)


def _counting(function, calls):
    """``function``, appending its second argument (the padded slice) to ``calls``."""
    def wrapper(*args):
        calls.append(args[1])
        return function(*args)
    return wrapper


class TestFolded(unittest.TestCase):

    def test_against_np_correlate(self):
        # Windows that reach into the next folded row (every block of every row), rows made
        # longer than 128 outputs for the kernel's reach, products of one row to many.
        rng = np.random.default_rng(34)
        x = rng.standard_normal((2, 7001))
        for k, stride, dilation in [(2, 1, 1), (7, 1, 1), (9, 1, 1), (31, 1, 1), (101, 1, 1),
                                    (300, 1, 1), (1001, 1, 1), (5, 2, 3), (40, 3, 2)]:
            w = rng.standard_normal(k)
            span = dilation * (k - 1)
            dilated = np.zeros(span + 1)
            dilated[::dilation] = w
            expected = np.stack([np.correlate(signal, dilated, "valid")[::stride]
                                 for signal in x])
            for outputs in (1, 1000, 32768):
                with self.subTest(k=k, stride=stride, dilation=dilation, outputs=outputs), \
                        settings.using(fold_outputs=outputs):
                    got = conv1d(x, w, stride, dilation, method="fold")
                    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)
                    width, row, _ = fast_fold1d._layout(span, stride, settings.current())
                    self.assertGreaterEqual(row * stride, (width - 1) * stride + span + 1)

    def test_threads_give_the_same_bits(self):
        # Strips of whole products, on any number of threads: each output is the same
        # product of the same window, so the same bits (for one size of products).
        rng = np.random.default_rng(35)
        x = rng.standard_normal((3, 20000)).astype(np.float32)[:, ::2]   # strided: converted
        for k, params in [(7, dict(padding="same", padding_mode="reflect")),
                          (101, dict(padding="full", padding_mode="circular")),
                          (31, dict(stride=2, dilation=2))]:
            w = rng.standard_normal(k).astype(np.float32)
            for outputs in (512, 32768):
                with settings.using(threads=1, fold_outputs=outputs):
                    one = conv1d(x, w, method="fold", **params)
                for threads in (2, 3, 16):
                    with self.subTest(k=k, threads=threads, outputs=outputs, **params), \
                            forced_threads(threads), settings.using(min_strip_bytes=1024,
                                                                    fold_outputs=outputs):
                        np.testing.assert_array_equal(conv1d(x, w, method="fold", **params), one)


class TestRing(unittest.TestCase):

    def test_against_loops_along_depth(self):
        # Depth stride and dilation below, at and beyond the kernel's span (slices skipped),
        # every border mode along depth, padding wider than the volume, rows of any height;
        # slices read in place (no border in their rows and columns) or padded a few at a time.
        rng = np.random.default_rng(30)
        x = rng.standard_normal((2, 7, 9, 8))
        cases = itertools.product(((3, 3, 3), (2, 3, 2), (4, 2, 3), (1, 3, 3)),
                                  (1, 2, 5), (1, 2, 3), ((0, 0), (2, 1), (0, 9)))
        for case, (kernel, sd, dd, depth_padding) in enumerate(cases):
            mode = MODES[case % len(MODES)]
            w = rng.standard_normal(kernel)
            params = dict(stride=(sd, 1 + case % 2, 1), dilation=(dd, 1, 1 + case % 3 // 2),
                          padding=(depth_padding, (case % 2, case % 2), (0, case % 3 // 2)))
            fill = -1.5 if mode == "constant" else 0
            try:
                expected = convnd_loops(x, w, padding_mode=mode, fill_value=fill, **params)
            except ValueError:          # the kernel does not fit: nothing to compare
                continue
            for rows in (1, 2, 3):
                with self.subTest(kernel=kernel, mode=mode, rows=rows, **params), \
                        settings.using(depth_rows=rows):
                    got = conv3d(x, w, padding_mode=mode, fill_value=fill, method="fold",
                                 **params)
                    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)

    def test_strips_and_threads_give_the_same_bits(self):
        # Each strip fills its own ring: its seams with the next strip must not show, on any
        # number of threads; the more strips, the more slices fetched again at the seams.
        rng = np.random.default_rng(31)
        x = rng.standard_normal((23, 14, 13)).astype(np.float32)
        for kernel, params in [((3, 3, 3), dict(padding=1, padding_mode="reflect")),
                               ((2, 3, 4), dict(stride=(1, 1, 2), dilation=(3, 1, 1),
                                                padding=((4, 2), 0, 1),
                                                padding_mode="replicate")),
                               ((5, 2, 3), dict(dilation=(2, 1, 1), padding="same",
                                                padding_mode="circular"))]:
            w = rng.standard_normal(kernel).astype(np.float32)
            expected = conv3d(x.astype(np.float64), w.astype(np.float64), method="loops",
                              **params)
            with settings.using(threads=1):
                calls = []
                with mock.patch.object(fast_depth3d, "_fetch",
                                       _counting(fast_depth3d._fetch, calls)):
                    one = conv3d(x, w, method="fold", **params)
                fetched = len(calls)
            np.testing.assert_allclose(one, expected, rtol=1e-4, atol=1e-4)
            for threads in (2, 3, 5, 16):
                with self.subTest(kernel=kernel, threads=threads, **params):
                    calls = []
                    with forced_threads(threads), settings.using(min_strip_bytes=1024), \
                            mock.patch.object(
                            fast_depth3d, "_fetch", _counting(fast_depth3d._fetch, calls)):
                        got = conv3d(x, w, method="fold", **params)
                    np.testing.assert_array_equal(got, one)
                    self.assertGreater(len(calls), fetched)     # there were seams

    def test_each_slice_is_laid_out_once(self):
        # One strip: every padded slice the outputs read is fetched once, whatever the
        # stride and dilation (slices a stride skips are not fetched at all).
        x = np.random.default_rng(32).standard_normal((17, 6, 7))
        for kd, sd, dd in [(3, 1, 1), (3, 2, 1), (2, 1, 3), (3, 2, 2), (2, 5, 1), (4, 1, 2)]:
            w = np.ones((kd, 2, 2))
            calls = []
            with self.subTest(kd=kd, sd=sd, dd=dd), settings.using(threads=1), \
                    mock.patch.object(fast_depth3d, "_fetch",
                                      _counting(fast_depth3d._fetch, calls)):
                out = conv3d(x, w, stride=(sd, 1, 1), dilation=(dd, 1, 1), padding=(2, 0, 0),
                             padding_mode="symmetric", method="fold")
                read = {z * sd + a * dd for z in range(out.shape[0]) for a in range(kd)}
                self.assertEqual(sorted(calls), sorted(read))

    def test_nan_and_infinity_reach_exactly_their_windows(self):
        rng = np.random.default_rng(33)
        x = rng.standard_normal((12, 10, 11))
        x[3, 4, 5], x[7, 0, 10], x[11, 9, 0] = np.nan, np.inf, -np.inf
        for mode, sd, dd in [("zeros", 1, 1), ("replicate", 2, 1), ("reflect", 1, 2),
                             ("circular", 3, 2), ("symmetric", 1, 1)]:
            w = rng.standard_normal((3, 2, 3))
            params = dict(stride=(sd, 1, 1), dilation=(dd, 1, 1), padding=(3, 1, 1),
                          padding_mode=mode)
            with self.subTest(**params), warnings.catch_warnings():
                warnings.simplefilter("error", RuntimeWarning)
                got = conv3d(x, w, method="fold", **params)
                with np.errstate(invalid="ignore"):     # inf - inf in the loops, on purpose
                    expected = convnd_loops(x, w, **params)
                np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
                np.testing.assert_array_equal(np.isposinf(got), np.isposinf(expected))
                np.testing.assert_array_equal(np.isneginf(got), np.isneginf(expected))
                finite = np.isfinite(expected)
                self.assertLess(finite.mean(), 1)
                np.testing.assert_allclose(got[finite], expected[finite], rtol=1e-12,
                                           atol=1e-12)


if __name__ == "__main__":
    unittest.main()
