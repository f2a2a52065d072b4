"""Winograd's layers (fast/winograd.py, F(2 x 2, 3 x 3); fast/winograd4.py, F(4 x 4, 3 x 3)).

Witnesses, for both tile sizes (``Settings.winograd_outputs``): the tutorial's
layer loops on random 3 x 3 layers at stride 1 (groups, border modes, padding
per side, bias, odd and even sizes, images of one cell), cut into strips over
threads; PyTorch's conv2d on float32 layers; float64 sums for the rounding
error of float32; NaN and infinity where the loops put them; memory; and the
planner, which takes the path for many channels and leaves it for few.
"""
import itertools
import unittest

import numpy as np

from convolution import (PADDING_MODES, conv2d, conv2d_backward, conv2d_backward_loops,
                         conv2d_layer_loops, settings)
from convolution.fast import operations, winograd, winograd4
from convolution.geometry import conv_geometry

from .common import forced_threads, torch
from .test_layer import assert_close, scale
from .test_operations import peak_beyond_result


def random_case(rng, dtype=np.float64):
    """A random 3 x 3 layer at stride 1: ``(matrix, kernel, bias, params)``."""
    groups = int(rng.choice([1, 1, 2, 3]))
    per_in, per_out = (int(v) for v in rng.integers(1, 5, size=2))
    padding = tuple(tuple(int(v) for v in rng.integers(0, 3, size=2)) for _ in range(2))
    (top, bottom), (left, right) = padding
    h = int(rng.integers(max(1, 3 - top - bottom), 12))
    w = int(rng.integers(max(1, 3 - left - right), 12))
    mode = list(PADDING_MODES)[rng.integers(len(PADDING_MODES))]
    if mode in ("reflect", "symmetric", "circular"):       # np.pad repeats these; keep it simple
        h, w = max(h, 3), max(w, 3)
    matrix = rng.standard_normal((int(rng.integers(1, 4)), groups * per_in, h, w)).astype(dtype)
    kernel = rng.standard_normal((groups * per_out, per_in, 3, 3)).astype(dtype)
    bias = rng.standard_normal(groups * per_out).astype(dtype) if rng.random() < 0.7 else None
    params = dict(padding=padding, padding_mode=mode, groups=groups,
                  fill_value=float(rng.integers(-3, 4)) if mode == "constant" else 0)
    return matrix, kernel, bias, params


#: Both tile sizes: F(2 x 2, 3 x 3) and F(4 x 4, 3 x 3).
TILES = (2, 4)


class TestAgainstLoops(unittest.TestCase):

    def check(self, seed, count, dtype=np.float64):
        for outputs in TILES:
            rng = np.random.default_rng(seed)
            for _ in range(count):
                matrix, kernel, bias, params = random_case(rng, dtype)
                expected = conv2d_layer_loops(
                    matrix.astype(np.float64), kernel.astype(np.float64),
                    bias=None if bias is None else bias.astype(np.float64), **params)
                with self.subTest(outputs=outputs, shape=matrix.shape, kernel=kernel.shape,
                                  **params), settings.using(winograd_outputs=outputs):
                    ours = conv2d(matrix, kernel, bias=bias, method="winograd", **params)
                    self.assertEqual(ours.dtype, dtype)
                    assert_close(self, ours, expected.astype(dtype),
                                 scale(matrix, kernel, bias, params["fill_value"]), ulps=16)

    def test_random_layers_float64(self):
        self.check(70, 80)

    def test_random_layers_float32(self):
        self.check(71, 60, np.float32)

    def test_many_strips_and_threads(self):
        # Strips of one row of tiles (two or four output rows), several to an image and
        # some of one image: the
        # seams between them must not show.
        with settings.using(winograd_strip_bytes=0, strip_bytes=512, min_strip_bytes=512), \
                forced_threads(3):
            self.check(72, 40)

    def test_float32_takes_the_larger_tiles_only_when_asked(self):
        # F(4 x 4)'s float32 rounding is some twenty times the direct sums': by default
        # float32 keeps to F(2 x 2), on the layer where float64 takes F(4 x 4) as faster.
        x = np.zeros((8, 64, 56, 56), np.float32)
        geometry = conv_geometry(x.shape[-2:], (3, 3), padding=1)
        for dtype, asked, expected in ((np.float32, None, 2), (np.float32, 4, 4),
                                       (np.float64, None, 4), (np.float64, 2, 2)):
            with self.subTest(dtype=dtype, asked=asked), \
                    settings.using(winograd_outputs=asked):
                chosen = winograd.plan(x, (64, 64, 3, 3), geometry, 1, "zeros", 0, dtype,
                                       settings.current())
                self.assertEqual(chosen.detail.outputs, expected)

    def test_strips_of_several_images(self):
        # Whole images, several to a strip: one product spans them all.
        rng = np.random.default_rng(73)
        x, k, b = rng.standard_normal((7, 6, 5, 9)), rng.standard_normal((4, 6, 3, 3)), \
            rng.standard_normal(4)
        geometry = conv_geometry(x.shape, (3, 3), padding=1)
        for outputs in TILES:
            with self.subTest(outputs=outputs), settings.using(winograd_outputs=outputs):
                chosen = winograd.plan(x, k.shape, geometry, 1, "zeros", 0, np.float64,
                                       settings.current())
                self.assertEqual(chosen.detail.outputs, outputs)
                self.assertGreater(max(task[0].stop - task[0].start for task in chosen.tasks), 1)
                assert_close(self, conv2d(x, k, bias=b, padding=1, method="winograd"),
                             conv2d_layer_loops(x, k, bias=b, padding=1), scale(x, k, b),
                             ulps=16)

    @np.errstate(invalid="ignore")      # the loops' own inf - inf and inf * 0
    def test_nan_and_inf_land_where_the_loops_put_them(self):
        # The transforms would spread them over a tile (and meet inf - inf as NaN);
        # the strips holding them are redone by the direct sums.
        rng = np.random.default_rng(74)
        x, k = rng.standard_normal((3, 4, 20, 13)), rng.standard_normal((5, 4, 3, 3))
        x[0, 1, 5, 5] = np.nan
        x[1, 2, 0, 3] = np.inf
        x[2, 0, 19, 12] = -np.inf
        for strip_bytes, outputs in itertools.product((2 ** 22, 512), TILES):
            with self.subTest(strip_bytes=strip_bytes, outputs=outputs), settings.using(
                    winograd_strip_bytes=0, strip_bytes=strip_bytes, min_strip_bytes=512,
                    winograd_outputs=outputs):
                ours = conv2d(x, k, padding=1, method="winograd")
                theirs = conv2d_layer_loops(x, k, padding=1)
                np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
                np.testing.assert_array_equal(np.isposinf(ours), np.isposinf(theirs))
                np.testing.assert_array_equal(np.isneginf(ours), np.isneginf(theirs))
                finite = np.isfinite(theirs)
                assert_close(self, ours[finite], theirs[finite],
                             scale(np.where(np.isfinite(x), x, 0), k))

    def test_overflow_in_the_transforms_is_redone(self):
        # Finite inputs whose transform overflows float32 (d0 - d2 of two values near its
        # largest); every output's own window stays finite.
        x = np.zeros((1, 1, 6, 6), np.float32)
        x[0, 0, 0, 0], x[0, 0, 2, 0] = 3e38, -3e38
        k = np.zeros((1, 1, 3, 3), np.float32)
        k[0, 0, 1, 1] = 1
        for outputs in TILES:
            with self.subTest(outputs=outputs), settings.using(winograd_outputs=outputs):
                ours = conv2d(x, k, padding=1, method="winograd")
                np.testing.assert_array_equal(ours, conv2d_layer_loops(x, k, padding=1))

    @np.errstate(invalid="ignore")
    def test_infinite_weights_go_to_the_direct_sums(self):
        rng = np.random.default_rng(75)
        x, k = rng.standard_normal((2, 3, 7, 8)), rng.standard_normal((2, 3, 3, 3))
        k[1, 2, 0, 1] = np.inf
        ours = conv2d(x, k, padding=1, method="winograd")
        theirs = conv2d_layer_loops(x, k, padding=1)
        np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
        np.testing.assert_array_equal(np.isinf(ours), np.isinf(theirs))

    def test_memory_stays_within_three_times_the_output(self):
        # Beyond input, output and the kernel's transform ((outputs + 2) ** 2 cells a pair
        # of channels): the strips of every thread.
        rng = np.random.default_rng(82)
        cases = (((1, 64, 56, 56), 1), ((2, 64, 40, 40), 2), ((2, 128, 28, 28), 4))
        for (shape, threads), outputs in itertools.product(cases, TILES):
            x = rng.standard_normal(shape).astype(np.float32)
            k = rng.standard_normal((shape[1], shape[1], 3, 3)).astype(np.float32)
            transform = (outputs + 2) ** 2 * shape[1] ** 2 * 4
            output = x.nbytes
            with self.subTest(shape=shape, threads=threads, outputs=outputs), \
                    forced_threads(threads), settings.using(winograd_outputs=outputs):
                peak = peak_beyond_result(lambda: conv2d(x, k, padding=1, method="winograd"))
                self.assertLess(peak - transform / output, 3.0)

    def test_kernel_transform_of_the_larger_tiles(self):
        rng = np.random.default_rng(83)
        k = rng.standard_normal((6, 2, 3, 3))
        g = np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
                      [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]])
        u = winograd4.kernel_transform(k, groups=3)
        self.assertEqual(u.shape, (6, 6, 3, 2, 2))
        np.testing.assert_allclose(u.reshape(6, 6, 6, 2),
                                   np.einsum("ka,oiab,lb->kloi", g, k, g), rtol=1e-13, atol=1e-15)

    def test_float32_rounding_error_against_float64(self):
        # The largest error, in units of float32's precision times the largest sum of the
        # magnitudes of an output's terms: measured 0.55 for F(2 x 2) here (the direct
        # sums of 'matmul' 1.5), 10.4 for F(4 x 4), whose transforms' coefficients reach 8.
        rng = np.random.default_rng(84)
        x = rng.standard_normal((2, 32, 24, 20)).astype(np.float32)
        k = rng.standard_normal((16, 32, 3, 3)).astype(np.float32)
        exact = conv2d_layer_loops(x.astype(np.float64), k.astype(np.float64), padding=1)
        terms = conv2d_layer_loops(np.abs(x).astype(np.float64), np.abs(k).astype(np.float64),
                                   padding=1).max()
        for outputs, bound in ((2, 2), (4, 32)):
            with self.subTest(outputs=outputs), settings.using(winograd_outputs=outputs):
                ours = conv2d(x, k, padding=1, method="winograd")
                error = np.abs(ours - exact).max() / (np.finfo(np.float32).eps * terms)
                self.assertLess(error, bound)

    def test_kernel_transform(self):
        rng = np.random.default_rng(76)
        k = rng.standard_normal((6, 2, 3, 3))
        g = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]])
        u = winograd.kernel_transform(k, groups=3)
        self.assertEqual(u.shape, (4, 4, 3, 2, 2))
        np.testing.assert_allclose(u.reshape(4, 4, 6, 2),
                                   np.einsum("ka,oiab,lb->kloi", g, k, g), rtol=1e-15)


class TestLimits(unittest.TestCase):

    def test_refuses_what_it_does_not_compute(self):
        rng = np.random.default_rng(77)
        x = rng.standard_normal((1, 2, 9, 9))
        for kernel, params, message in (
                (rng.standard_normal((2, 2, 5, 5)), {}, r"3 x 3 kernels, got \(5, 5\)"),
                (rng.standard_normal((2, 2, 3, 3)), dict(stride=2), r"stride 1 and dilation 1"),
                (rng.standard_normal((2, 2, 3, 3)), dict(dilation=2), r"stride 1 and dilation 1"),
        ):
            with self.subTest(message=message):
                with self.assertRaisesRegex(ValueError, message):
                    conv2d(x, kernel, method="winograd", **params)
        with self.assertRaisesRegex(ValueError, "float32 or float64, got int64"):
            conv2d(x.astype(int), np.ones((2, 2, 3, 3), int), method="winograd")

    def test_a_tile_size_it_does_not_have_is_refused(self):
        with self.assertRaisesRegex(ValueError, r"winograd_outputs must be None, 2 or 4, got 3"):
            with settings.using(winograd_outputs=3):
                pass

    def test_a_2d_kernel_is_a_layer_of_one_channel(self):
        rng = np.random.default_rng(78)
        x, k = rng.standard_normal((3, 10, 11)), rng.standard_normal((3, 3))
        np.testing.assert_allclose(conv2d(x, k, padding=1, method="winograd"),
                                   conv2d(x, k, padding=1, method="loops"), atol=1e-13)

    def test_integers_keep_the_exact_sums(self):
        rng = np.random.default_rng(79)
        x = rng.integers(-100, 100, (2, 32, 12, 12))
        k = rng.integers(-9, 10, (32, 32, 3, 3))
        geometry = conv_geometry(x.shape, (3, 3), padding=1)
        self.assertEqual(operations.plan_layer(x, k, geometry, 1, "zeros", 0, x.dtype)[0],
                         "matmul")
        np.testing.assert_array_equal(conv2d(x, k, padding=1),
                                      conv2d_layer_loops(x, k, padding=1))


class TestKernelGradient(unittest.TestCase):
    """The kernel's gradient by F(3 x 3, 2 x 2) (fast/winograd_gradient.py) against the loops."""

    def test_random_layers(self):
        rng = np.random.default_rng(85)
        for case in range(40):
            dtype = (np.float64, np.float32)[case % 2]
            matrix, kernel, _, params = random_case(rng, dtype)
            geometry = conv_geometry(matrix.shape, (3, 3), padding=params["padding"])
            grad = rng.standard_normal((matrix.shape[0], kernel.shape[0])
                                       + geometry.output_shape).astype(dtype)
            expected = conv2d_backward_loops(grad.astype(np.float64), matrix.astype(np.float64),
                                             kernel.astype(np.float64), **params)[1]
            strips = dict(winograd_strip_bytes=0, strip_bytes=512, min_strip_bytes=512) \
                if case % 4 < 2 else {}
            with self.subTest(case=case, shape=matrix.shape, kernel=kernel.shape, **params), \
                    settings.using(**strips), forced_threads(1 + case % 3):
                ours = operations.kernel_gradient(
                    grad, matrix, kernel.shape, geometry, params["groups"],
                    params["padding_mode"], params["fill_value"], np.dtype(dtype),
                    method="winograd")
                self.assertEqual(ours.dtype, dtype)
                assert_close(self, ours, expected.astype(dtype),
                             scale(grad, np.where(np.isfinite(matrix), matrix, 0),
                                   fill_value=params["fill_value"]), ulps=16)

    @np.errstate(invalid="ignore")
    def test_nan_and_inf_go_to_the_taps(self):
        # Winograd's sums spread a NaN or an infinity over whole tiles and meet infinities
        # as NaN: its result is then not all finite, and 'auto' computes it again by the
        # taps, which multiply exactly the cells each tap met, as the loops (test_layer.py).
        rng = np.random.default_rng(86)
        x, k = rng.standard_normal((2, 32, 24, 24)), rng.standard_normal((32, 32, 3, 3))
        x[1, 3, 4, 4] = np.inf
        x[0, 7, 23, 0] = np.nan
        y = rng.standard_normal((2, 32, 24, 24))
        geometry = conv_geometry(x.shape, (3, 3), padding=1)
        run = (y, x, k.shape, geometry, 1, "zeros", 0, x.dtype)
        self.assertFalse(np.isfinite(operations.kernel_gradient(*run, method="winograd")).all())
        theirs = operations.kernel_gradient(*run, method="taps")
        self.assertTrue(np.isnan(theirs).any())
        with settings.using(threads=1):
            ours = conv2d_backward(y, x, k, padding=1)[1]
        np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
        np.testing.assert_array_equal(np.isinf(ours), np.isinf(theirs))


class TestPlanner(unittest.TestCase):
    """'auto' weighs the path against the stacked products by their estimates."""

    def how(self, shape, out_channels, groups=1, **params):
        x = np.zeros(shape, np.float32)
        k = np.zeros((out_channels, shape[1] // groups, 3, 3), np.float32)
        geometry = conv_geometry(x.shape, (3, 3), padding=1, **params)
        return operations.plan_layer(x, k, geometry, groups, "zeros", 0, np.float32)[0]

    def test_many_channels_take_it_few_do_not(self):
        for threads in (1, 2):
            with self.subTest(threads=threads), settings.using(cores=threads, threads=threads):
                self.assertEqual(self.how((8, 64, 56, 56), 64), "winograd")
                self.assertEqual(self.how((8, 128, 28, 28), 128), "winograd")
        for threads in (1, 16):
            with self.subTest(threads=threads), settings.using(cores=threads, threads=threads):
                # Few channels: the transforms cost more than the products they save.
                self.assertEqual(self.how((8, 3, 56, 56), 64), "matmul")
                self.assertEqual(self.how((8, 64, 56, 56), 64, groups=32), "matmul")
                # Not a layer it takes.
                self.assertEqual(self.how((8, 64, 56, 56), 64, stride=2), "matmul")


@unittest.skipIf(torch is None, "needs PyTorch")
class TestTorchOracle(unittest.TestCase):

    def test_float32_layers(self):
        rng = np.random.default_rng(80)
        for case in range(30):
            groups = int(rng.choice([1, 2, 4]))
            x = rng.standard_normal((int(rng.integers(1, 4)), 8 * groups, int(rng.integers(3, 30)),
                                     int(rng.integers(3, 30)))).astype(np.float32)
            k = rng.standard_normal((4 * groups, 8, 3, 3)).astype(np.float32)
            b = rng.standard_normal(4 * groups).astype(np.float32)
            padding = int(rng.integers(0, 3))
            theirs = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(k),
                                                torch.from_numpy(b), padding=padding,
                                                groups=groups).numpy()
            with self.subTest(shape=x.shape, groups=groups, padding=padding):
                ours = conv2d(x, k, bias=b, padding=padding, groups=groups, method="winograd")
                assert_close(self, ours, theirs, scale(x, k, b))

    def test_the_benchmark_layer_and_its_gradients(self):
        rng = np.random.default_rng(81)
        x = rng.standard_normal((2, 64, 56, 56)).astype(np.float32)
        k = rng.standard_normal((64, 64, 3, 3)).astype(np.float32)
        b = rng.standard_normal(64).astype(np.float32)
        grad = rng.standard_normal((2, 64, 56, 56)).astype(np.float32)
        leaves = [torch.from_numpy(a).requires_grad_() for a in (x, k, b)]
        out = torch.nn.functional.conv2d(*leaves, padding=1)
        out.backward(torch.from_numpy(grad))
        assert_close(self, conv2d(x, k, bias=b, padding=1), out.detach().numpy(),
                     scale(x, k, b))
        ours = conv2d_backward(grad, x, k, padding=1)
        for mine, leaf, size in zip(ours, leaves, (scale(grad, k), scale(grad, x) * 100,
                                                   np.abs(grad).sum())):
            assert_close(self, mine, leaf.grad.numpy(), size)


if __name__ == "__main__":
    unittest.main()
