"""Every operation through one planner: the layer, the transposed convolution, the gradients.

What 'auto' chooses for a layer at any thread count, the transposed
convolution by stride phases (never over a zero-spread input) and with every
border mode, the kernel's gradient through the FFT, and the values and
memory that the paths promise at the edges of the float range.
"""
import tracemalloc
import unittest
from unittest import mock

import numpy as np

from convolution import (PADDING_MODES, conv2d, conv2d_backward, conv2d_backward_loops,
                         conv_transpose2d, driver, fast)
from convolution.driver import pool
from convolution.fast import operations
from convolution.geometry import conv_geometry

from .common import pretend_cores


def peak_beyond_result(function):
    """Bytes ``function()`` allocates beyond its result(s), in units of the result, from cold."""
    driver.release_arena()
    pool.shutdown_pool()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        result = function()
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    results = result if isinstance(result, tuple) else (result,)
    size = sum(np.asarray(part).nbytes for part in results)
    return (peak - size) / size


class TestRegistry(unittest.TestCase):

    def test_every_path_says_whether_it_sums_channels(self):
        self.assertEqual(fast.METHODS, ("direct", "polyphase", "banded", "separable", "fft"))
        self.assertEqual([name for name, path in fast.PATHS.items() if path.channels],
                         ["matmul"])


class TestLayerPlanner(unittest.TestCase):
    """'auto' on a layer weighs the stacked products against a 2-D path per pair."""

    def how(self, x, k, **params):
        geometry = conv_geometry(x.shape, k.shape[-2:], **params)
        how, chosen = operations.plan_layer(x, k, geometry, 1, "zeros", 0, k.dtype)
        return how if how != "pairs" else f"pairs of {chosen}"

    def test_choices_that_hold_at_any_thread_count(self):
        rng = np.random.default_rng(50)
        for n in (1, 16):
            with self.subTest(threads=n), pretend_cores(n):
                # Few channels, a large kernel: the FFT per pair, not 961 products.
                self.assertEqual(self.how(rng.random((1, 1, 512, 512), np.float32),
                                          rng.random((2, 1, 31, 31), np.float32)),
                                 "pairs of fft")
                # Many channels, a small kernel: the stacked products.
                self.assertEqual(self.how(rng.random((2, 32, 32, 32), np.float32),
                                          rng.random((32, 32, 3, 3), np.float32)), "matmul")

    def test_the_fft_is_kept_from_channels_it_would_spoil(self):
        # The first channel's data suit the FFT; the second holds NaN: each pair then
        # chooses for itself, and the NaN stays where its windows are.
        rng = np.random.default_rng(59)
        x, k = rng.random((1, 2, 300, 300)), rng.random((2, 2, 31, 31))
        x[0, 1, 150, 150] = np.nan
        geometry = conv_geometry(x.shape, k.shape[-2:])
        self.assertEqual(operations.plan_layer(x, k, geometry, 1, "zeros", 0, k.dtype),
                         ("pairs", "auto"))
        result = conv2d(x, k)
        self.assertEqual(int(np.isnan(result[0, 0]).sum()), 31 * 31)

    def test_pairs_agree_with_the_products(self):
        rng = np.random.default_rng(51)
        x, k = rng.random((2, 2, 96, 96)), rng.random((4, 1, 21, 21))
        for params in (dict(groups=2, padding="same", padding_mode="reflect"),
                       dict(groups=1, stride=2, dilation=2)):
            kernel = k if params["groups"] == 2 else rng.random((4, 2, 21, 21))
            with self.subTest(**params):
                np.testing.assert_allclose(conv2d(x, kernel, bias=[1, 2, 3, 4], **params),
                                           conv2d(x, kernel, bias=[1, 2, 3, 4], method="matmul",
                                                  **params), rtol=1e-11, atol=1e-11)


class TestTransposed(unittest.TestCase):

    def test_by_stride_phases_not_over_a_spread_input(self):
        # Each correlation it makes reads cells of the input itself (at most its size),
        # never the (H - 1) * stride + 1 rows of an input spread out with zeros.
        rng = np.random.default_rng(52)
        x, k = rng.random((20, 24)), rng.random((5, 5))
        seen = []
        real = operations.convolve

        def spy(matrix, kernel, *args, **kwargs):
            seen.append((matrix.shape, kernel.shape))
            return real(matrix, kernel, *args, **kwargs)

        with mock.patch.object(operations, "convolve", spy):
            result = conv_transpose2d(x, k, stride=3)
        np.testing.assert_allclose(result, conv_transpose2d(x, k, stride=3, method="loops"),
                                   atol=1e-12)
        self.assertEqual(len(seen), 9)               # one per output phase
        for shape, kernel in seen:
            self.assertLessEqual(shape[-2:], x.shape)
            self.assertLessEqual(kernel, (2, 2))     # the taps that land on the phase only

    def test_every_border_mode_is_the_adjoint_of_conv2d(self):
        rng = np.random.default_rng(53)
        for case in range(60):
            mode = list(PADDING_MODES)[case % len(PADDING_MODES)]
            stride, dilation = tuple(rng.integers(1, 4, 2)), tuple(rng.integers(1, 3, 2))
            padding = tuple(int(p) for p in rng.integers(0, 4, 2))
            x = rng.integers(-9, 10, size=(2, 3) + tuple(rng.integers(8, 16, 2)))
            k = rng.integers(-9, 10, size=(4, 3) + tuple(rng.integers(1, 5, 2)))
            forward = conv2d(x, k, stride, dilation, padding, padding_mode=mode)
            y = rng.integers(-9, 10, size=forward.shape)
            extra = tuple((n + 2 * p - d * (kk - 1) - 1) % s for n, p, kk, s, d in
                          zip(x.shape[-2:], padding, k.shape[-2:], stride, dilation))
            kernel = k      # conv2d's (C_out, C_in, ...) is conv_transpose2d's (C_in, C_out, ...)
            with self.subTest(mode=mode, stride=stride, dilation=dilation, padding=padding):
                back = conv_transpose2d(y, kernel, stride, dilation, padding, extra,
                                        padding_mode=mode)
                self.assertEqual(back.shape, x.shape)
                self.assertEqual(int(np.sum(forward * y)), int(np.sum(x * back)))
                np.testing.assert_array_equal(
                    back, conv_transpose2d(y, kernel, stride, dilation, padding, extra,
                                           padding_mode=mode, method="loops"))
                np.testing.assert_array_equal(
                    back, conv2d_backward(y, x, k, stride, dilation, padding,
                                          padding_mode=mode)[0])

    def test_bias_is_added_after_the_fold(self):
        y, k = np.ones((4, 4)), np.ones((3, 3))
        back = conv_transpose2d(y, k, padding=1, padding_mode="replicate", bias=10)
        np.testing.assert_array_equal(
            back, conv_transpose2d(y, k, padding=1, padding_mode="replicate") + 10)

    def test_unknown_border(self):
        with self.assertRaisesRegex(ValueError, r"padding_mode must be one of .*'reflect'"):
            conv_transpose2d(np.ones((3, 3)), np.ones((2, 2)), padding_mode="mirror")


class TestKernelGradient(unittest.TestCase):

    def test_large_kernels_through_the_fft_agree_with_the_loops(self):
        rng = np.random.default_rng(54)
        x, k = rng.random((1, 2, 90, 80)), rng.random((2, 2, 15, 13))
        for params in (dict(), dict(stride=2, dilation=(1, 2), padding=3, padding_mode="circular")):
            y = rng.standard_normal(conv2d(x, k, **params).shape)
            with self.subTest(**params):
                ours, theirs = conv2d_backward(y, x, k, **params), conv2d_backward_loops(
                    y, x, k, **params)
                for a, b in zip(ours, theirs):
                    np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)

    def test_data_that_is_not_finite_stays_off_the_fft(self):
        x = np.ones((1, 1, 64, 64))
        x[0, 0, 10, 10] = np.inf
        k = np.ones((1, 1, 15, 15))
        y = np.ones((1, 1, 50, 50))
        with np.errstate(invalid="ignore"):
            ours = conv2d_backward(y, x, k)[1]
            theirs = conv2d_backward_loops(y, x, k)[1]
        np.testing.assert_array_equal(np.isinf(ours), np.isinf(theirs))
        self.assertFalse(np.isnan(ours).any())


class TestFloatRange(unittest.TestCase):
    """Large finite data: the results every other path gives, not NaN."""

    def test_fft_scales_large_data(self):
        rng = np.random.default_rng(55)
        k = rng.uniform(0, 1, (31, 31))
        k /= k.sum()
        for method in ("auto", "fft"):
            with self.subTest(method=method):
                result = conv2d(np.full((100, 100), 1e306), k, method=method)
                np.testing.assert_allclose(result, 1e306, rtol=1e-12)
                edge = conv2d(np.full((200, 200), 1e304), k, padding="same", method=method)
                np.testing.assert_allclose(edge, conv2d(np.full((200, 200), 1e304), k,
                                                        padding="same", method="direct"),
                                           rtol=1e-12)

    def test_separable_overflow_is_infinity(self):
        x = np.full((20, 20), 3e38, np.float32)
        with np.errstate(over="ignore"):
            result = conv2d(x, np.ones((2, 2), np.float32), method="separable")
        self.assertTrue(np.isposinf(result).all())


class TestMemory(unittest.TestCase):
    """Beyond input and output, within 3 times the output's size (not FFT), with room to spare.

    The bounds below are tighter than that promise: a float32 result computed
    whole before its rounding to float16, a fold of the border that copied the
    whole gradient, data converted to float64 whole took 3.0, 2.9 and 2.4
    times the output here (this measure, one thread per core).
    """

    def test_float16_result_is_rounded_block_by_block(self):
        x = np.random.default_rng(56).random((2048, 2048)).astype(np.float16)
        k = np.random.default_rng(57).random((3, 3)).astype(np.float16)
        for method in ("auto", "direct"):
            with self.subTest(method=method):
                self.assertLess(peak_beyond_result(lambda: conv2d(x, k, method=method)), 1.5)

    def test_backward_with_a_border_of_copies(self):
        rng = np.random.default_rng(58)
        x, y = (rng.random((8, 16, 64, 64)).astype(np.float32) for _ in range(2))
        k = rng.random((16, 16, 3, 3)).astype(np.float32)
        self.assertLess(peak_beyond_result(
            lambda: conv2d_backward(y, x, k, padding=1, padding_mode="reflect")), 2.5)
        # float32 data with a float64 kernel: the data are not copied into float64 whole.
        self.assertLess(peak_beyond_result(
            lambda: conv2d_backward(y, x, k.astype(np.float64), padding=1)), 1.5)


if __name__ == "__main__":
    unittest.main()
