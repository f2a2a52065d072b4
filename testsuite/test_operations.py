"""Every operation through one planner: the layer, the transposed convolution, the gradients.

What 'auto' chooses for a layer at any thread count, the transposed
convolution by stride phases (never over a zero-spread input) and with every
border mode, the kernel's gradient through the FFT, and the values and
memory that the paths promise at the edges of the float range.
"""
import itertools
import tracemalloc
import unittest
from unittest import mock

import numpy as np

from convolution import (PADDING_MODES, conv2d, conv2d_backward, conv2d_backward_loops,
                         conv_transpose2d, conv_transpose2d_loops, driver, fast, settings)
from convolution.driver import pool
from convolution.fast import operations, subpixel
from convolution.geometry import conv_geometry, conv_transpose_geometry

from .common import forced_threads, pretend_cores
from .test_layer import assert_close, scale


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
                         ["matmul", "winograd"])
        self.assertEqual(fast.CHANNEL_METHODS, ("matmul", "winograd"))


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
                # Many channels, a small kernel: the stacked products; 3 x 3, Winograd's
                # (1.2 to 1.4 times faster on this layer, one thread).
                self.assertEqual(self.how(rng.random((2, 32, 32, 32), np.float32),
                                          rng.random((32, 32, 5, 5), np.float32)), "matmul")
                self.assertEqual(self.how(rng.random((2, 32, 32, 32), np.float32),
                                          rng.random((32, 32, 3, 3), np.float32)), "winograd")

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
        # (Integers: exact sums, which the band product of all phases does not take.)
        rng = np.random.default_rng(52)
        x, k = rng.integers(-9, 10, (20, 24)), rng.integers(-9, 10, (5, 5))
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

    def test_stride_one_is_one_correlation(self):
        # At stride 1: one 2-D call over the input itself, the kernel reversed, the padding
        # 'full' less the crop, as conv2d(x, k, padding='full', flip=True) when nothing is
        # cropped; with a crop, dilation and output_padding, the loops' sums (integers: exact).
        rng = np.random.default_rng(53)
        x, k = rng.integers(-9, 10, (17, 20)), rng.integers(-9, 10, (4, 5))
        seen = []
        real = operations.convolve

        def spy(matrix, kernel, geometry, *args, **kwargs):
            seen.append((matrix.shape[-2:], geometry.padding))
            return real(matrix, kernel, geometry, *args, **kwargs)

        with mock.patch.object(operations, "convolve", spy):
            full = conv_transpose2d(x, k)
            cropped = conv_transpose2d(x, k, dilation=2, padding=(1, (2, 3)), output_padding=1)
        np.testing.assert_array_equal(full, conv2d(x, k, padding="full", flip=True))
        np.testing.assert_array_equal(cropped, conv_transpose2d(
            x, k, dilation=2, padding=(1, (2, 3)), output_padding=1, method="loops"))
        self.assertEqual(seen, [(x.shape, ((3, 3), (4, 4))), (x.shape, ((5, 6), (6, 6)))])
        # A crop past the kernel's span: phases, which crop the input, agree with the loops.
        for padding in ((4, 0), (0, (0, 6))):
            np.testing.assert_array_equal(conv_transpose2d(x, k, padding=padding),
                                          conv_transpose2d(x, k, padding=padding,
                                                           method="loops"))

    def test_floats_take_every_phase_in_one_product(self):
        # Finite floats at a stride above 1: the band product of all phases, which
        # reads the input itself, its rows once per column shift; no correlation per phase.
        rng = np.random.default_rng(60)
        x, k = rng.random((40, 48)), rng.random((5, 5))
        geometry = conv_transpose_geometry(x.shape, k.shape, 3)
        self.assertEqual(operations.transpose_route(x[None, None], k[None, None], geometry, 1,
                                                    x.dtype)[0], "subpixel")
        with mock.patch.object(operations, "convolve", side_effect=AssertionError), \
                mock.patch.object(subpixel, "run", wraps=subpixel.run) as run:
            result = conv_transpose2d(x, k, stride=3)
        self.assertEqual(run.call_count, 1)
        np.testing.assert_allclose(result, conv_transpose2d(x, k, stride=3, method="loops"),
                                   rtol=1e-12, atol=1e-12)

    def test_the_route_is_the_same_at_any_thread_count(self):
        # The work decides between the band product and the phases' correlations.
        rng = np.random.default_rng(66)
        for x_shape, k_shape, stride, padding in (((1, 1, 512, 512), (1, 1, 31, 31), 2, 0),
                                                  ((1, 1, 256, 256), (1, 1, 63, 63), 2, 0),
                                                  ((4, 64, 32, 32), (64, 64, 3, 3), 2, 1),
                                                  ((8, 64, 16, 16), (64, 32, 4, 4), 2, 1)):
            x, k = rng.random(x_shape, np.float32), rng.random(k_shape, np.float32)
            geometry = conv_transpose_geometry(x.shape, k.shape[-2:], stride, 1, padding)
            routes = set()
            for n in (1, 2, 4, 16):
                with pretend_cores(n):
                    routes.add(operations.transpose_route(x, k, geometry, 1, x.dtype)[0])
            with self.subTest(x=x_shape, k=k_shape):
                self.assertEqual(len(routes), 1, routes)

    def test_data_that_is_not_finite_stays_off_the_band(self):
        # The band's zeros would spread a NaN onto the other phases' cells: the phases'
        # own correlations take such data, and a NaN reaches the cells its taps land on.
        rng = np.random.default_rng(61)
        x, k = rng.random((1, 2, 30, 30)), rng.random((2, 3, 4, 5))
        x[0, 1, 7, 9], x[0, 0, 20, 3] = np.nan, np.inf
        with np.errstate(invalid="ignore"):
            ours = conv_transpose2d(x, k, stride=2, padding=1)
            theirs = conv_transpose2d(x, k, stride=2, padding=1, method="loops")
        np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
        np.testing.assert_array_equal(np.isinf(ours), np.isinf(theirs))
        finite = np.isfinite(theirs)
        np.testing.assert_allclose(ours[finite], theirs[finite], rtol=1e-12, atol=1e-12)

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


class TestSubpixel(unittest.TestCase):
    """The band product of every stride phase (``fast/subpixel.py``) against the loops."""

    @staticmethod
    def random_case(rng):
        groups = int(rng.choice([1, 1, 2, 3]))
        per_in, per_out = (int(v) for v in rng.integers(1, 4, 2))
        stride, dilation, kernel, size = (tuple(int(v) for v in rng.integers(1, top, 2))
                                          for top in (4, 4, 7, 12))
        extra = tuple(int(rng.integers(0, max(s, d))) for s, d in zip(stride, dilation))
        full = [(n - 1) * s + d * (k - 1) + 1 + e
                for n, s, d, k, e in zip(size, stride, dilation, kernel, extra)]
        padding = tuple(tuple(int(v) for v in rng.integers(0, max(1, f // 2), 2)) for f in full)
        x = rng.standard_normal((int(rng.integers(1, 3)), groups * per_in) + size)
        k = rng.standard_normal((groups * per_in, per_out) + kernel)
        bias = rng.standard_normal(groups * per_out) if rng.random() < 0.5 else None
        return x, k, bias, dict(stride=stride, dilation=dilation, padding=padding,
                                output_padding=extra, groups=groups)

    def test_against_the_loops(self):
        # Strides 1 to 3 on each axis, dilations (some sharing a factor with the stride:
        # phases no tap reaches), crops past whole blocks, output_padding, groups, bias;
        # strips of a few rows on four threads and whole images on one.
        rng = np.random.default_rng(62)
        with mock.patch.object(subpixel, "_by_rows", wraps=subpixel._by_rows) as by_rows:
            self.check_cases(rng)
        # Bands multiplied as they are, and transposed: both.
        self.assertEqual({subpixel._by_rows(*call.args) for call in by_rows.call_args_list},
                         {True, False})

    def check_cases(self, rng):
        for case in range(150):
            x, k, bias, params = self.random_case(rng)
            dtype = np.float32 if case % 3 == 0 else np.float64     # units of 4 and 8 bytes
            x, k = x.astype(dtype), k.astype(dtype)
            bias = None if bias is None else bias.astype(dtype)
            geometry = conv_transpose_geometry(x.shape, k.shape[-2:], params["stride"],
                                               params["dilation"], params["padding"],
                                               params["output_padding"])
            expected = conv_transpose2d_loops(x, k, bias=bias, **params)
            for cores, strip in ((4, 2 ** 10), (1, 2 ** 22)):
                with self.subTest(case=case, cores=cores, **params), forced_threads(cores), \
                        settings.using(strip_bytes=strip, min_strip_bytes=2 ** 8):
                    chosen = subpixel.plan(x.shape, k.shape, geometry, params["groups"],
                                           x.dtype, settings.current())
                    out = np.full(expected.shape, np.nan, dtype)
                    subpixel.run(x, k, geometry, params["groups"], x.dtype, bias, out, chosen)
                    tolerance = 1e-5 if dtype == np.float32 else 1e-12
                    np.testing.assert_allclose(out, expected, rtol=tolerance, atol=tolerance)

    def test_wide_rows_in_tiles(self):
        # Transposed products of at most 64 block columns each, whatever the width: the
        # tiles' seams, and a last tile partly beyond the output.
        rng = np.random.default_rng(65)
        for case in range(12):
            stride = (int(rng.integers(1, 3)), int(rng.integers(2, 5)))
            x = rng.standard_normal((1, 2, int(rng.integers(3, 9)), int(rng.integers(70, 200))))
            k = rng.standard_normal((2, 1, int(rng.integers(1, 6)), int(rng.integers(1, 8))))
            padding = ((0, 0), tuple(int(v) for v in rng.integers(0, 4, 2)))
            geometry = conv_transpose_geometry(x.shape, k.shape[-2:], stride, 1, padding)
            with self.subTest(case=case, stride=stride, shape=x.shape, kernel=k.shape), \
                    settings.using(band_tile_bytes=2 ** 8):
                chosen = subpixel.plan(x.shape, k.shape, geometry, 1, x.dtype, settings.current())
                out = np.full((1, 1) + geometry.output_shape, np.nan)
                subpixel.run(x, k, geometry, 1, x.dtype, None, out, chosen)
                np.testing.assert_allclose(out, conv_transpose2d_loops(x, k, stride,
                                                                       padding=padding),
                                           rtol=1e-12, atol=1e-12)

    def test_the_adjoint_identity(self):
        # sum(conv2d(x, k) * y) == sum(x * conv_transpose2d(y, k)), float32 and float64.
        rng = np.random.default_rng(63)
        for case in range(40):
            stride, dilation = tuple(rng.integers(2, 4, 2)), tuple(rng.integers(1, 3, 2))
            padding = tuple(int(p) for p in rng.integers(0, 3, 2))
            dtype = (np.float32, np.float64)[case % 2]
            x = rng.standard_normal((2, 4) + tuple(rng.integers(9, 30, 2))).astype(dtype)
            k = rng.standard_normal((6, 4) + tuple(rng.integers(1, 6, 2))).astype(dtype)
            forward = conv2d(x, k, stride, dilation, padding)
            y = rng.standard_normal(forward.shape).astype(dtype)
            extra = tuple((n + 2 * p - d * (kk - 1) - 1) % s for n, p, kk, s, d in
                          zip(x.shape[-2:], padding, k.shape[-2:], stride, dilation))
            with self.subTest(case=case, stride=stride, dilation=dilation, padding=padding):
                back = conv_transpose2d(y, k, stride, dilation, padding, extra)
                self.assertEqual(back.shape, x.shape)
                lhs, rhs = np.sum(forward * y, dtype=np.float64), np.sum(x * back,
                                                                          dtype=np.float64)
                tolerance = 1e-4 if dtype == np.float32 else 1e-11
                self.assertLess(abs(lhs - rhs), tolerance * np.sum(np.abs(forward * y)))

    def test_every_border_mode_through_the_band(self):
        # Float data at stride 2: the band product, its border folded back as conv2d's
        # adjoint; the same as the phases' correlations on integers would give, and the loops.
        rng = np.random.default_rng(67)
        for case, mode in enumerate(PADDING_MODES):
            x = rng.standard_normal((1, 2, 13, 10))
            k = rng.standard_normal((3, 2, 4, 3))
            params = dict(stride=2, dilation=(1, 2), padding=(2, 1))
            forward = conv2d(x, k, padding_mode=mode, **params)
            y = rng.standard_normal(forward.shape)
            extra = (1, 1)
            with self.subTest(mode=mode), mock.patch.object(
                    subpixel, "run", wraps=subpixel.run) as run:
                back = conv_transpose2d(y, k, output_padding=extra, padding_mode=mode, **params)
                self.assertEqual(run.call_count, 1)
                self.assertEqual(back.shape, x.shape)
                np.testing.assert_allclose(
                    back, conv_transpose2d(y, k, output_padding=extra, padding_mode=mode,
                                           method="loops", **params), rtol=1e-12, atol=1e-12)
                self.assertAlmostEqual(float(np.sum(forward * y)), float(np.sum(x * back)),
                                       places=9)

    def test_memory_within_the_output(self):
        rng = np.random.default_rng(64)
        x = rng.random((1, 8, 256, 256)).astype(np.float32)
        k = rng.random((8, 4, 5, 5)).astype(np.float32)
        self.assertLess(peak_beyond_result(lambda: conv_transpose2d(x, k, stride=2)), 1.0)


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


    def test_every_path_agrees_with_the_loops(self):
        # Each path by name against the loops: kernels up to 15 wide (several copies and
        # views of 'shifts'), every border, stride, dilation and group, real and complex,
        # in strips of every size on three threads.
        rng = np.random.default_rng(60)
        cases = 0
        while cases < 24:
            groups = int(rng.choice([1, 2]))
            per_in, per_out, batch = (int(v) for v in rng.integers(1, 3, size=3))
            kh, kw = (int(v) for v in rng.integers(1, 16, size=2))
            stride, dilation = (tuple(int(v) for v in rng.integers(1, 3, size=2))
                                for _ in range(2))
            padding = tuple(tuple(int(v) for v in rng.integers(0, 4, size=2)) for _ in range(2))
            mode = list(PADDING_MODES)[rng.integers(len(PADDING_MODES))]
            fill = 1.5 if mode == "constant" else 0
            h, w = (d * (k - 1) + 1 + int(rng.integers(0, 12)) for d, k in zip(dilation, (kh, kw)))
            dtype = (np.float32, np.float64, np.complex128)[cases % 3]
            x = rng.standard_normal((batch, groups * per_in, h, w)).astype(dtype)
            k = np.zeros((groups * per_out, per_in, kh, kw), dtype)
            geometry = conv_geometry(x.shape, (kh, kw), stride, dilation, padding)
            grad = rng.standard_normal((batch, groups * per_out) + geometry.output_shape).astype(
                dtype)
            params = dict(stride=stride, dilation=dilation, padding=padding, padding_mode=mode,
                          fill_value=fill, groups=groups)
            expected = conv2d_backward_loops(grad, x, k, **params)[1]
            cases += 1
            for method, strip in itertools.product(fast.GRADIENT_PATHS, (512, 2 ** 21)):
                if method == "fft" and dtype == np.complex128:
                    continue
                if method == "winograd":        # 3 x 3 at stride 1 only: test_winograd.py
                    continue
                with self.subTest(method=method, strip=strip, x=x.shape, k=k.shape, **params), \
                        settings.using(strip_bytes=strip, min_strip_bytes=512), \
                        forced_threads(3):
                    ours = operations.kernel_gradient(grad, x, k.shape, geometry, groups, mode,
                                                      fill, np.dtype(dtype), method=method)
                    assert_close(self, ours, expected, scale(grad, x, fill_value=fill))

    def test_shifts_read_unpadded_input_in_place(self):
        # No padding, stride 1: the input's own rows, strip by strip; the last strip,
        # whose products read a few cells past the rows it needs, from a copy.
        rng = np.random.default_rng(61)
        for k, dilation, strip in itertools.product((3, 7, 14), (1, 2), (512, 4096, 2 ** 21)):
            x = rng.standard_normal((2, 1, 40, 37)).astype(np.float32)
            geometry = conv_geometry(x.shape, (k, k), 1, dilation, 0)
            grad = rng.standard_normal((2, 1) + geometry.output_shape).astype(np.float32)
            kernel = np.zeros((1, 1, k, k), np.float32)
            with self.subTest(k=k, dilation=dilation, strip=strip), \
                    settings.using(strip_bytes=strip, min_strip_bytes=512):
                ours = operations.kernel_gradient(grad, x, kernel.shape, geometry, 1, "zeros", 0,
                                                  np.dtype(np.float32), method="shifts")
                assert_close(self, ours, conv2d_backward_loops(grad, x, kernel,
                                                               dilation=dilation)[1],
                             scale(grad, x))

    def test_shifts_do_not_depend_on_the_threads_schedule(self):
        rng = np.random.default_rng(62)
        x, grad = rng.standard_normal((60, 70)), rng.standard_normal((60, 70))
        k = rng.standard_normal((9, 9))
        with settings.using(strip_bytes=4096, min_strip_bytes=4096), forced_threads(3):
            first = conv2d_backward(grad, x, k, padding="same", padding_mode="reflect")[1]
            for _ in range(5):
                np.testing.assert_array_equal(
                    conv2d_backward(grad, x, k, padding="same", padding_mode="reflect")[1], first)

    def test_data_that_is_not_finite_take_the_taps(self):
        # 'shifts' multiplies the cells beyond each row's last output by zeros too: 0 * inf
        # is NaN where the loops add nothing. Its result is then not finite, and the taps,
        # which multiply exactly the cells each tap met, compute it again.
        x = np.ones((12, 12))
        x[5, 11] = np.inf       # met by the last column of taps only, with positive weights
        x[0, 0] = np.nan        # met by tap (0, 0) only
        grad = np.ones((10, 10))
        with np.errstate(invalid="ignore"):
            ours = conv2d_backward(grad, x, np.ones((3, 3)))[1]
            theirs = conv2d_backward(grad, x, np.ones((3, 3)), method="loops")[1]
        np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
        np.testing.assert_array_equal(np.isposinf(ours), np.isposinf(theirs))
        np.testing.assert_array_equal(ours[np.isfinite(theirs)], theirs[np.isfinite(theirs)])
        self.assertEqual(int(np.isnan(theirs).sum()), 1)

    def test_fft_leaves_data_beyond_its_accuracy(self):
        # A gradient large only where the input is small: every tap's terms are far below
        # the norms the FFT's error scales with. 'fft' refuses; 'auto' takes another path.
        x = np.ones((80, 80))
        x[:40] = 1e8
        grad = np.zeros((66, 66))
        grad[45:] = 1
        k = np.ones((15, 15))
        geometry = conv_geometry(x.shape, k.shape)
        with self.assertRaisesRegex(ValueError, r"method='fft' does not take these data"):
            operations.kernel_gradient(grad[None, None], x[None, None], (1, 1, 15, 15),
                                       geometry, 1, "zeros", 0, np.dtype(np.float64),
                                       method="fft")
        np.testing.assert_allclose(conv2d_backward(grad, x, k)[1],
                                   conv2d_backward(grad, x, k, method="loops")[1], rtol=1e-12)

    def test_fft_plan_follows_the_settings(self):
        # Cached on the shapes and the settings: a price changed in a block is seen there,
        # and the plan made before is seen again after it.
        x, geometry = np.ones((1, 1, 64, 64)), conv_geometry((64, 64), (15, 15))
        plan = lambda: fast.GRADIENT_PATHS["fft"].plan(x, (1, 1, 15, 15), geometry, 1, "zeros",
                                                        0, np.dtype(np.float64),
                                                        settings.current())
        before = plan()
        with settings.using(fft_ns=2 * settings.current().fft_ns):
            inside = plan()
            self.assertIs(inside.settings, settings.current())
        self.assertGreater(inside.ns, before.ns)
        self.assertEqual(plan(), before)
        # Spectra of 8 pairs, 0.6 MB: more than 8 times the data, within what a thread keeps.
        wide = conv_geometry((64, 64), (45, 45))
        spectra = lambda: fast.GRADIENT_PATHS["fft"].plan(
            x, (8, 1, 45, 45), wide, 1, "zeros", 0, np.dtype(np.float64), settings.current())
        spectra()
        with settings.using(keep_bytes=0), self.assertRaisesRegex(ValueError, "spectra"):
            spectra()

    def test_the_plans_follow_the_work(self):
        # One pair of channels: the shifted copies for a small kernel, the FFT for a large
        # one; a layer of many channels: the taps' products, Winograd's for 3 x 3 (the
        # benchmark's layer, on one thread or two; on four the taps' more strips share the
        # threads better); integers: the taps alone.
        rng = np.random.default_rng(63)
        cases = (((1, 1, 256, 256), (1, 1, 3, 3), np.float32, "shifts"),
                 ((1, 1, 256, 256), (1, 1, 45, 45), np.float32, "fft"),
                 ((8, 32, 32, 32), (32, 32, 5, 5), np.float32, "taps"),
                 ((8, 64, 56, 56), (64, 64, 3, 3), np.float32, "winograd"),
                 ((1, 1, 64, 64), (1, 1, 5, 5), np.int64, "taps"))
        for threads in (1, 2, 4):
            for shape, kernel_shape, dtype, name in cases:
                if name == "winograd" and threads > 2:
                    continue
                x = rng.random(shape).astype(dtype)
                geometry = conv_geometry(shape, kernel_shape[2:])
                with self.subTest(threads=threads, x=shape, k=kernel_shape), \
                        pretend_cores(threads):
                    plans = operations.kernel_gradient_plans(x, kernel_shape, geometry, 1,
                                                             "zeros", 0, np.dtype(dtype))
                    self.assertEqual(plans[0][0], name)
                    if dtype == np.int64:
                        self.assertEqual([n for n, _ in plans], ["taps"])
    def test_large_gradients_side_by_side(self):
        # On two threads or more, each gradient of a large kernel on threads of its own
        # (the kernel's on one), with the sums of one after the other; small ones, and one
        # thread, one after the other. The rule reads the work, not the machine.
        rng = np.random.default_rng(64)
        x = rng.random((1, 1, 512, 512)).astype(np.float32)
        small, large = rng.random((1, 1, 3, 3)), rng.random((1, 1, 31, 31))
        for kernel, threads, expected in ((large, 2, True), (large, 4, True), (large, 1, False),
                                          (small, 4, False)):
            kernel = kernel.astype(np.float32)
            geometry = conv_geometry(x.shape, kernel.shape[2:], padding="same")
            with self.subTest(k=kernel.shape, threads=threads), pretend_cores(threads):
                self.assertIs(operations.gradients_side_by_side(
                    x, kernel, geometry, 1, "circular", 0, np.dtype(np.float32)), expected)
        y = rng.standard_normal(x.shape).astype(np.float32)
        with pretend_cores(2), mock.patch.object(operations, "side_by_side",
                                                 wraps=operations.side_by_side) as apart:
            ours = conv2d_backward(y, x, large, padding="same", padding_mode="circular")
        self.assertEqual(apart.call_count, 1)
        with mock.patch.object(operations, "gradients_side_by_side", return_value=False):
            alone = conv2d_backward(y, x, large, padding="same", padding_mode="circular")
        for a, b in zip(ours, alone):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-3 * np.abs(b).max())


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
        # One pair of channels: the kernel's gradient by shifted copies takes strips, a
        # fraction of the output's gradient (here the size of its result, with it).
        x2, y2 = (rng.random((1, 1, 256, 256)).astype(np.float32) for _ in range(2))
        geometry = conv_geometry(x2.shape, (9, 9), padding="same")
        self.assertLess(peak_beyond_result(lambda: (operations.kernel_gradient(
            y2, x2, (1, 1, 9, 9), geometry, 1, "reflect", 0, np.dtype(np.float32)), y2)), 0.5)
        # float32 data with a float64 kernel: the data are not copied into float64 whole.
        self.assertLess(peak_beyond_result(
            lambda: conv2d_backward(y, x, k.astype(np.float64), padding=1)), 1.5)


if __name__ == "__main__":
    unittest.main()
