"""apply_filter_to_image, the kernel library and agreement with OpenCV."""
import itertools
import math
import re
import unittest
import warnings

import numpy as np

from convolution import (apply_filter_to_image, box_kernel, conv2d, conv_output_shape,
                         gaussian_kernel, get_kernel)
from convolution.images.kernels import KERNELS, identity_kernel, motion_blur_kernel
from convolution.padding import PADDING_MODES
from convolution.geometry import conv_geometry

from .common import cv2, iio, matplotlib, SAMPLE_PHOTO


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


def alpha_weighted_by_hand(image, kernel, stride=1, dilation=1, padding="same",
                           padding_mode="reflect", fill_value=0, filter_alpha=False):
    """What apply_filter_to_image must return for an integer (H, W, C) image with alpha last.

    A second witness, one output cell at a time in float64, from the rule in
    the docstring: with a = alpha / max, the kernel split into its positive
    weights p and negative weights n (w = p - n, sums P and N), the colour is
    P * avg_p - N * avg_n, avg_p = sum(p * a * colour) / sum(p * a) and
    avg_n likewise. A part that sees no visible pixel takes the other's
    average; a window with none at all keeps the colour of its centre pixel.
    """
    opaque = np.iinfo(image.dtype).max
    kernel = np.asarray(kernel, np.float64)
    g = conv_geometry(image.shape[:2], kernel.shape, stride, dilation, padding)
    (kh, kw), (sh, sw), (dh, dw) = g.kernel_shape, g.stride, g.dilation
    widths = tuple(g.padding) + ((0, 0),)
    mode = PADDING_MODES[padding_mode]
    extra = dict(constant_values=fill_value) if mode == "constant" else {}
    padded = np.pad(image.astype(np.float64), widths, mode=mode, **extra)
    parts = [np.maximum(kernel, 0), np.maximum(-kernel, 0)]
    out = np.zeros(g.output_shape + image.shape[2:])
    for i in range(g.output_shape[0]):
        for j in range(g.output_shape[1]):
            window = padded[i * sh:i * sh + dh * (kh - 1) + 1:dh,
                            j * sw:j * sw + dw * (kw - 1) + 1:dw]      # (kh, kw, C)
            colour, a = window[..., :-1], np.clip(window[..., -1] / opaque, 0, 1)
            averages = [np.einsum("ab,abc->c", part * a, colour) / (part * a).sum()
                        if (part * a).sum() > 1e-9 else None for part in parts]
            centre = padded[i * sh + (dh * (kh - 1)) // 2, j * sw + (dw * (kw - 1)) // 2]
            if all(average is None for average in averages):
                out[i, j, :-1] = centre[:-1]
            else:
                p, n = (average if average is not None else other
                        for average, other in zip(averages, averages[::-1]))
                out[i, j, :-1] = parts[0].sum() * p - parts[1].sum() * n
            out[i, j, -1] = (kernel * a).sum() * opaque if filter_alpha else centre[-1]
    return np.clip(np.rint(out), 0, opaque).astype(image.dtype)


def assert_within_one_level(test, ours, expected):
    """Same shape and dtype, every value within 1 of the other."""
    test.assertEqual((ours.shape, ours.dtype), (expected.shape, expected.dtype))
    test.assertLessEqual(np.abs(ours.astype(np.int64) - expected).max(), 1)


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

    def test_rgba_keeps_alpha_or_filters_it(self):
        result = apply_filter_to_image(self.rgba, self.kernel)
        np.testing.assert_array_equal(result[..., 3], self.rgba[..., 3])
        filtered = apply_filter_to_image(self.rgba, self.kernel, filter_alpha=True)
        np.testing.assert_array_equal(filtered[..., 3],
                                      filter_by_hand(self.rgba[..., 3], self.kernel))
        self.assertFalse((filtered[..., 3] == self.rgba[..., 3]).all())
        # filter_alpha decides alpha only: the colour is the same either way.
        np.testing.assert_array_equal(filtered[..., :3], result[..., :3])

    def test_alpha_follows_stride_and_padding(self):
        image = np.random.default_rng(5).integers(0, 256, size=(7, 9, 4), dtype=np.uint8)
        alpha = image[..., 3]
        # 5 x 5, stride (2, 3), 'same': 4 x 3 outputs; total padding 3*2 + 5 - 7 = 4 rows
        # (2 on top) and 2*3 + 5 - 9 = 2 columns (1 on the left). Each window's centre is
        # 2 cells in, so output (i, j) sits on input row 2i + 2 - 2, column 3j + 2 - 1.
        result = apply_filter_to_image(image, "gaussian", stride=(2, 3))
        np.testing.assert_array_equal(result[..., 3], alpha[0::2, 1::3])
        assert_within_one_level(self, result, alpha_weighted_by_hand(image, get_kernel("gaussian"),
                                                                     stride=(2, 3)))
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

    def test_named_kernels_take_their_parameters(self):
        for name, params in [("gaussian", dict(size=9)), ("gaussian", dict(size=(3, 7), sigma=2)),
                             ("box", dict(size=2)), ("motion_blur", dict(size=(1, 5))),
                             ("identity", dict(size=4))]:
            with self.subTest(kernel=name, **params):
                np.testing.assert_array_equal(
                    apply_filter_to_image(self.rgb, name, **params),
                    apply_filter_to_image(self.rgb, get_kernel(name, **params)))
        for kernel, params, message in [
                ("sharpen", dict(size=5), r"kernel 'sharpen' takes no parameters, got size=5"),
                ("box", dict(sigma=1), r"kernel 'box' takes only size, got sigma=1"),
                (np.ones((2, 2)), dict(size=3), r"kernel parameters \(size=3\) apply to a "
                                                r"kernel name, not to an array kernel")]:
            with self.subTest(kernel=kernel, **params):
                with self.assertRaisesRegex(TypeError, message):
                    apply_filter_to_image(self.rgb, kernel, **params)

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

    def test_fill_value_must_be_a_value_of_the_dtype(self):
        # Pictures are computed in float, so conv2d would take any number; the border is
        # made of pixels, alpha included, and must hold values the picture can.
        constant = dict(padding_mode="constant", padding="full")
        refused = [(np.uint8, v) for v in (np.nan, np.inf, -np.inf, -1, 256, 300, 2.5, 1e20,
                                           2 ** 64, 1j, np.float64(255.5))]
        refused += [(np.uint16, 70000), (np.int8, -129), (np.int16, 2 ** 15),
                    (np.uint64, 2 ** 64), (np.float16, 1e6), (np.float32, 1e39),
                    (np.float32, 10 ** 400), (np.float64, 1j)]
        for dtype, value in refused:
            for channels in ((), (4,)):
                with self.subTest(dtype=dtype, value=value, channels=channels):
                    image = np.full((3, 3) + channels, 100, dtype)
                    with self.assertRaisesRegex(ValueError, r"fill_value must be .* got "
                                                            + re.escape(repr(value))):
                        apply_filter_to_image(image, "box", fill_value=value, **constant)
        with self.assertRaisesRegex(ValueError, r"fill_value must be a whole number from 0 to "
                                                r"255 for an image of dtype uint8, got nan"):
            apply_filter_to_image(self.rgba, "box", fill_value=np.nan, **constant)
        accepted = [(np.uint8, 255), (np.uint8, 255.0), (np.uint8, np.uint8(7)), (np.int8, -128),
                    (np.uint16, 65535), (np.uint64, 2 ** 53), (np.float16, 65504.0),
                    (np.float32, np.nan), (np.float64, -np.inf)]
        # The largest uint64 is accepted too, though float64 arithmetic rounds it.
        apply_filter_to_image(np.ones((2, 2), np.uint64), "box", fill_value=2 ** 64 - 1,
                              **constant)
        for dtype, value in accepted:
            with self.subTest(dtype=dtype, value=value):
                image = np.full((3, 3, 4), 1, dtype)
                # A 1 x 1 identity with a border of one: the border is the fill value in every
                # channel, alpha included, and the picture is unchanged.
                result = apply_filter_to_image(image, [[1.0]], fill_value=value,
                                               padding_mode="constant", padding=1)
                np.testing.assert_array_equal(result[1:-1, 1:-1], image)
                np.testing.assert_array_equal(result[0, 0], np.array([value] * 4, dtype))

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
            (TypeError, r"kernel must hold numbers \(bool, integer or float\), got dtype "
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


class TestAlpha(unittest.TestCase):
    """Grey + alpha and RGBA: colour weighted by alpha, so that what is invisible does not bleed."""

    KERNELS = {"gaussian": get_kernel("gaussian"), "box 2x3": box_kernel((2, 3)),
               "sharpen": get_kernel("sharpen"), "emboss": get_kernel("emboss"),
               "laplacian": get_kernel("laplacian"), "sobel_x": get_kernel("sobel_x"),
               "ones 3x3 (sum 9)": np.ones((3, 3)), "minus box (sum -1)": -box_kernel(3),
               "random": np.random.default_rng(11).normal(size=(3, 4))}

    def setUp(self):
        rng = np.random.default_rng(12)
        self.rgba = rng.integers(0, 256, size=(9, 11, 4), dtype=np.uint8)
        # Some transparent and some opaque pixels among the partly transparent ones.
        self.rgba[..., 3] = np.where(rng.random((9, 11)) < 0.3, 0, self.rgba[..., 3])
        self.rgba[..., 3] = np.where(rng.random((9, 11)) < 0.2, 255, self.rgba[..., 3])

    def test_against_the_rules_one_cell_at_a_time(self):
        cases = [{}, dict(filter_alpha=True), dict(stride=2, dilation=(1, 2)),
                 dict(padding="full", padding_mode="zeros"),
                 dict(padding="valid", padding_mode="constant", fill_value=255),
                 dict(padding=((2, 0), (1, 3)), padding_mode="constant", fill_value=90,
                      filter_alpha=True),
                 dict(padding_mode="circular"), dict(padding_mode="symmetric", stride=(1, 3))]
        for name, kernel in self.KERNELS.items():
            for params in cases:
                with self.subTest(kernel=name, **params):
                    for image in (self.rgba, self.rgba.astype(np.uint16) * 257):
                        assert_within_one_level(
                            self, apply_filter_to_image(image, kernel, **params),
                            alpha_weighted_by_hand(image, kernel, **params))

    def test_invisible_colour_counts_for_nothing(self):
        # Whatever colour the transparent pixels hold, every pixel with something visible
        # in its window comes out the same: blur and sharpen alike.
        image = self.rgba.copy()
        image[:5, :5, 3] = 0             # with some fully transparent windows
        other = image.copy()
        transparent = image[..., 3] == 0
        other[transparent, :3] = 255 - image[transparent, :3]
        for name in ("gaussian", "sharpen", "box 2x3", "random"):
            with self.subTest(kernel=name):
                kernel = self.KERNELS[name]
                ours = apply_filter_to_image(image, kernel, filter_alpha=True)
                theirs = apply_filter_to_image(other, kernel, filter_alpha=True)
                visible = ours[..., 3] > 0
                self.assertGreater(visible.sum(), 20)
                np.testing.assert_array_equal(ours[visible], theirs[visible])
                # Where nothing is visible, the hidden colours are kept as they were.
                self.assertTrue((ours[~visible] != theirs[~visible]).any())

    def test_a_flat_colour_stays_flat_whatever_the_alpha(self):
        # The dark rim: a flat colour next to transparent black must not darken. The
        # plain filter would mix in the black; weighting by alpha leaves the colour, times
        # the sum of the kernel's weights (0 for differences, 9 for a 3 x 3 of ones).
        image = self.rgba.copy()
        image[..., :3] = (37, 100, 135)
        image[image[..., 3] == 0, :3] = 0
        for name, kernel in self.KERNELS.items():
            # Filtered alpha is 0 everywhere for kernels whose weights do not sum above 0.
            for filter_alpha in (False, True) if kernel.sum() > 0 else (False,):
                with self.subTest(kernel=name, filter_alpha=filter_alpha):
                    result = apply_filter_to_image(image, kernel, filter_alpha=filter_alpha)
                    expected = np.clip(np.rint(np.array([37, 100, 135]) * kernel.sum()), 0, 255)
                    visible = result[..., 3] > 0 if filter_alpha else image[..., 3] > 0
                    self.assertGreater(visible.sum(), 20)
                    np.testing.assert_array_equal(result[visible][:, :3],
                                                  np.broadcast_to(expected, (visible.sum(), 3)))

    def test_opaque_pictures_are_filtered_as_without_alpha(self):
        opaque = self.rgba.copy()
        opaque[..., 3] = 255
        # One pixel barely transparent, far from the others' windows, takes the weighted
        # form everywhere: in opaque windows it is the plain filter, up to rounding.
        almost = opaque.copy()
        almost[0, 0, 3] = 254
        far = np.ones((9, 11), bool)
        far[:3, :4] = False
        for name, kernel in self.KERNELS.items():
            with self.subTest(kernel=name):
                plain = apply_filter_to_image(opaque[..., :3], kernel)
                np.testing.assert_array_equal(apply_filter_to_image(opaque, kernel)[..., :3],
                                              plain)
                weighted = apply_filter_to_image(almost, kernel)[..., :3]
                self.assertLessEqual(np.abs(weighted[far].astype(int) - plain[far]).max(), 1)

    def test_fully_transparent_windows_keep_their_colour(self):
        # Nothing visible to average: the hidden colour stays as it was, neither blurred
        # nor made up; with a stride or padding, it is the colour at the window's centre.
        clear = self.rgba.copy()
        clear[..., 3] = 0
        for name in ("gaussian", "sharpen", "laplacian"):
            for filter_alpha in (False, True):
                with self.subTest(kernel=name, filter_alpha=filter_alpha):
                    result = apply_filter_to_image(clear, name, filter_alpha=filter_alpha)
                    np.testing.assert_array_equal(result, clear)
        result = apply_filter_to_image(clear, "gaussian", stride=(2, 3))
        np.testing.assert_array_equal(result, clear[0::2, 1::3])     # as alpha, see above

    def test_a_kernel_of_zeros_gives_colour_0(self):
        # No part of the kernel to average with: the plain filter's answer, as when opaque.
        half = np.zeros((4, 4, 4), np.uint8)
        half[..., :3], half[..., 3] = 77, 128
        greys = np.zeros((5, 6, 2), np.uint16)
        greys[..., 0], greys[1:, :, 1] = 999, 40000
        floats = np.zeros((4, 5, 4), np.float32)
        floats[..., :3], floats[..., 3] = 0.7, 0.5
        for image in (half, greys, floats, self.rgba):
            for filter_alpha, params in itertools.product(
                    (False, True), ({}, dict(stride=2, padding_mode="constant", fill_value=9))):
                with self.subTest(dtype=image.dtype, channels=image.shape[2],
                                  filter_alpha=filter_alpha, **params):
                    result = apply_filter_to_image(image, np.zeros((3, 3)),
                                                   filter_alpha=filter_alpha, **params)
                    kept = apply_filter_to_image(image, identity_kernel(3), **params)
                    self.assertEqual((result.shape, result.dtype), (kept.shape, image.dtype))
                    np.testing.assert_array_equal(result[..., :-1], 0)
                    np.testing.assert_array_equal(result[..., -1],
                                                  0 if filter_alpha else kept[..., -1])

    def test_sharpen_and_laplacian_by_hand(self):
        # 3 x 3 pictures, 'valid': one output, for the centre. Neighbours colour 10, centre
        # 20, all opaque unless said. The plain sharpen is 5 * 20 - 4 * 10 = 60.
        def centre(alphas, kernel, black=()):
            image = np.full((3, 3, 4), 10, np.uint8)
            image[1, 1, :3] = 20
            image[..., 3] = alphas
            for cell in black:
                image[cell][:3] = 0        # transparent black, as logo2.png holds
            with warnings.catch_warnings():
                warnings.simplefilter("error")     # no division by 0, no overflow
                return apply_filter_to_image(image, kernel, padding="valid")[0, 0].tolist()

        opaque = np.full((3, 3), 255)
        # A nearly transparent centre: sum(w * a) = 5 * 5/255 - 4 = -3.9 would be a divisor
        # near 0 or below it; each sign's weights average the colour under them instead:
        # 5 * 20 - 4 * 10 = 60, whatever the centre's alpha.
        for alpha in (1, 5, 205, 255):
            with self.subTest(centre_alpha=alpha):
                alphas = opaque.copy()
                alphas[1, 1] = alpha
                self.assertEqual(centre(alphas, "sharpen"), [60, 60, 60, alpha])
        # A transparent black neighbour: the plain filter gives 100 - 30 - 0 = 70 (a bright
        # rim); the visible neighbours average 10: 5 * 20 - 4 * 10 = 60.
        alphas = opaque.copy()
        alphas[0, 1] = 0
        self.assertEqual(centre(alphas, "sharpen", black=[(0, 1)]), [60, 60, 60, 255])
        # A transparent centre takes the colour of the visible pixels around it:
        # 5 * 10 - 4 * 10 = 10 (the plain filter: 5 * 0 - 40 -> 0).
        alphas = opaque.copy()
        alphas[1, 1] = 0
        self.assertEqual(centre(alphas, "sharpen", black=[(1, 1)]), [10, 10, 10, 0])
        # The laplacian, weights summing to 0: 4 * (average of the visible neighbours) -
        # 4 * centre = 4 * 10 - 4 * 20 < 0 -> 0; with centre 10 and neighbours 20 (one of
        # them transparent black): 4 * 20 - 4 * 10 = 40, where the plain filter gives 20.
        self.assertEqual(centre(opaque, "laplacian"), [0, 0, 0, 255])
        image = np.full((3, 3, 4), 20, np.uint8)
        image[1, 1, :3] = 10
        image[..., 3] = 255
        image[0, 1] = 0
        self.assertEqual(apply_filter_to_image(image, "laplacian", padding="valid")[0, 0].tolist(),
                         [40, 40, 40, 255])

    def test_grey_and_alpha_follows_the_same_rules(self):
        grey_alpha = self.rgba[..., 2:]
        as_rgba = grey_alpha[..., [0, 0, 0, 1]]
        for name in ("gaussian", "sharpen", "laplacian"):
            for filter_alpha in (False, True):
                with self.subTest(kernel=name, filter_alpha=filter_alpha):
                    result = apply_filter_to_image(grey_alpha, name, filter_alpha=filter_alpha)
                    np.testing.assert_array_equal(
                        result, apply_filter_to_image(as_rgba, name,
                                                      filter_alpha=filter_alpha)[..., 2:])

    def test_zero_padding_is_transparent(self):
        # Outside an RGBA picture, zero padding is transparent black: a blur fades the edge
        # out (with filter_alpha) instead of darkening it.
        image = np.zeros((6, 6, 4), np.uint8)
        image[...] = (200, 100, 50, 255)
        result = apply_filter_to_image(image, "box", padding_mode="zeros", filter_alpha=True)
        np.testing.assert_array_equal(result[..., :3], np.broadcast_to((200, 100, 50), (6, 6, 3)))
        self.assertEqual(result[0, 0, 3], 113)           # 4 of 9 cells: 255 * 4 / 9 = 113.3
        self.assertEqual(result[0, 2, 3], 170)           # 6 of 9
        self.assertEqual(result[2, 2, 3], 255)

    def test_constant_padding_fills_every_channel_alike(self):
        # RGBA filled with 100, 'full' 3 x 3 box, border 255 in every channel, alpha
        # included. The corner window holds 1 pixel (100, alpha 100/255) and 8 border
        # pixels (255, opaque): alpha (100 + 8 * 255) / 9 = 237.8 -> 238, colour
        # (100 * 100/255 + 8 * 255) / (100/255 + 8) = 247.8 -> 248.
        image = np.full((4, 4, 4), 100, np.uint8)
        params = dict(padding="full", padding_mode="constant", fill_value=255)
        result = apply_filter_to_image(image, "box", filter_alpha=True, **params)
        np.testing.assert_array_equal(result[0, 0], [248, 248, 248, 238])
        kept = apply_filter_to_image(image, "box", **params)
        np.testing.assert_array_equal(kept[0, 0], [248, 248, 248, 255])   # the border's own
        np.testing.assert_array_equal(kept[2:-2, 2:-2, 3], 100)

    @unittest.skipIf(matplotlib is None or iio is None, "matplotlib or imageio is not installed")
    def test_matplotlib_logo_has_no_dark_rim(self):
        # logo2.png: transparent pixels are RGB 0. Blurred with a 9 x 9 Gaussian (sigma 3),
        # the opaque pixels within 2 px of transparency went from mean RGB (29, 94, 131) to
        # (20, 66, 93) when colour was filtered as it is.
        from matplotlib import cbook
        from scipy import ndimage
        logo = iio.imread(cbook.get_sample_data("logo2.png", asfileobj=False))
        alpha = logo[..., 3]
        transparent = alpha == 0
        self.assertTrue((logo[transparent, :3] == 0).all())
        rim = (alpha == 255) & ndimage.binary_dilation(transparent, iterations=2)
        before = logo[rim, :3].mean(0)
        kernel = gaussian_kernel(9, 3)
        for filter_alpha in (False, True):
            with self.subTest(filter_alpha=filter_alpha):
                blurred = apply_filter_to_image(logo, kernel, filter_alpha=filter_alpha)
                self.assertLess(np.abs(blurred[rim, :3].mean(0) - before).max(), 3)
        # The new soft edge, where alpha was 0 and is now partly opaque, takes the colour
        # of the edge it comes from, not a darker one.
        soft = transparent & (blurred[..., 3] > 0) & (blurred[..., 3] < 255)
        self.assertGreater(soft.sum(), 5000)
        self.assertLess(np.abs(blurred[soft, :3].mean(0) - before).max(), 8)


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

    def test_gaussian_tiny_and_huge_sigma(self):
        # Any positive finite sigma gives a kernel: in the limit sigma -> 0 all the weight
        # goes to the middle cell (odd sizes) or half to each of the two middle cells (even
        # sizes, whose middle is between them); sigma -> infinity gives the box.
        with warnings.catch_warnings():
            warnings.simplefilter("error")      # no overflow or division warnings either
            for sigma in (0.01, 0.02, 1e-5, 1e-160, 1e-200, 5e-324):
                with self.subTest(sigma=sigma):
                    np.testing.assert_array_equal(gaussian_kernel(3, sigma), identity_kernel(3))
                    np.testing.assert_array_equal(gaussian_kernel(1, sigma), [[1.0]])
                    np.testing.assert_array_equal(gaussian_kernel(2, sigma), np.full((2, 2), .25))
                    np.testing.assert_array_equal(gaussian_kernel((4, 5), sigma)[:, 2],
                                                  [0, 0.5, 0.5, 0])
                    np.testing.assert_allclose(gaussian_kernel((4, 5), (None, sigma))[:, 2],
                                               gaussian_kernel((4, 1))[:, 0], rtol=1e-15)
            for sigma in (1e200, 1e308, 10 ** 300):
                with self.subTest(sigma=sigma):
                    np.testing.assert_allclose(gaussian_kernel((3, 4), sigma), box_kernel((3, 4)),
                                               rtol=1e-15)
        # Just above the limit the kernel is still the curve's samples: at sigma 0.1 the
        # neighbours of the centre weigh exp(-50) = 1.9e-22 of it.
        kernel = gaussian_kernel((1, 3), 0.1)
        self.assertAlmostEqual(kernel[0, 0] / kernel[0, 1], math.exp(-50), delta=1e-30)
        # 0.01 was all NaN for even sizes (0 / 0), 1e-200 a ZeroDivisionError.
        self.assertTrue(np.isfinite(gaussian_kernel(2, 0.01)).all())

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
            # Too large to make, refused before anything is allocated (each size here is
            # cheap to fail on without the check: 134 MB, or np.zeros refusing at once).
            (ValueError, r"size must give a kernel of at most 16777216 cells \(4096 x 4096\), "
                         r"got 1000000000, which gives 1000000000000000000 cells$", "identity",
             dict(size=10 ** 9)),
            (ValueError, r"size must give .*got \(4097, 4096\)", "box", dict(size=(4097, 4096))),
            (ValueError, r"size must give .*got \(1, 16777217\)", "gaussian",
             dict(size=(1, 2 ** 24 + 1))),
            (ValueError, r"size must give .*got 1000000000", "motion_blur", dict(size=10 ** 9)),
            (ValueError, r"sigma must be None, a positive finite number or a pair of them, "
                         r"got 0", "gaussian", dict(sigma=0)),
            (ValueError, r"sigma must be .*got -1.5", "gaussian", dict(sigma=-1.5)),
            (ValueError, r"sigma must be .*got nan", "gaussian", dict(sigma=float("nan"))),
            (ValueError, r"sigma must be .*got inf", "gaussian", dict(sigma=math.inf)),
            (ValueError, r"sigma must be .*got 1000000", "gaussian", dict(sigma=10 ** 400)),
            (ValueError, r"sigma must be .*got \(1.0, 0.0\)", "gaussian", dict(sigma=(1.0, 0.0))),
            (TypeError, r"sigma must be .*got '1'", "gaussian", dict(sigma="1")),
            (TypeError, r"sigma must be .*got True", "gaussian", dict(sigma=True)),
            (ValueError, r"sigma must be .*got 3 values", "gaussian", dict(sigma=(1, 2, 3))),
        ]
        for error, message, name, params in cases:
            with self.subTest(message=message):
                with self.assertRaisesRegex(error, message):
                    get_kernel(name, **params)
        self.assertEqual(get_kernel("box", size=(1, 2 ** 24)).shape, (1, 2 ** 24))  # the most


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
