"""Parameter normalisation and the output-shape formula."""
import itertools
import unittest

import numpy as np

from convolution import conv_output_shape
from convolution.geometry import conv_transpose_geometry, conv_transpose_output_shape

from .common import optional, torch


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


class TestTransposeOutputShape(unittest.TestCase):
    """conv_transpose_output_shape: PyTorch's formula and its rule for output_padding."""

    def test_formula(self):
        # (H - 1) * sh - top - bottom + dh * (kh - 1) + output_padding + 1, by hand.
        self.assertEqual(conv_transpose_output_shape((3, 4), (3, 3)), (5, 6))
        self.assertEqual(conv_transpose_output_shape((3, 4), (3, 2), (2, 3), (1, 2), 1, (1, 2)),
                         (6, 12))
        self.assertEqual(conv_transpose_output_shape((5, 5), (2, 2), padding=((1, 0), (0, 2))),
                         (5, 4))
        # It inverts conv2d's shape: conv2d of the result has the transposed input's shape.
        for h, k, s, d, p in itertools.product((4, 7), (1, 3), (1, 2, 3), (1, 2), (0, 1)):
            out = conv_transpose_output_shape((h, h), (k, k), s, d, p)
            self.assertEqual(conv_output_shape(out, (k, k), s, d, p), (h, h))

    def test_errors(self):
        with self.assertRaisesRegex(ValueError, r"output_padding must be smaller than the "
                                    r"stride or the dilation.*got output_padding \(1, 1\)"):
            conv_transpose_geometry((3, 3), (2, 2), output_padding=1)
        with self.assertRaisesRegex(ValueError, r"output_padding must be an int >= 0"):
            conv_transpose_geometry((3, 3), (2, 2), stride=2, output_padding=-1)
        with self.assertRaisesRegex(TypeError, r"padding of a transposed convolution must be "
                                    r"an int.*got 'same'"):
            conv_transpose_geometry((3, 3), (2, 2), padding="same")
        with self.assertRaisesRegex(ValueError, r"padding \(\(3, 3\), \(3, 3\)\) crops "
                                    r"more than .* would be \(-2, -2\)"):
            conv_transpose_geometry((3, 3), (2, 2), padding=3)

    @unittest.skipIf(torch is None, "torch is not installed")
    def test_agrees_with_torch(self):
        rng = np.random.default_rng(5)
        for _ in range(300):
            h, w, kh, kw = rng.integers(1, 6, size=4)
            s, d, p = rng.integers(1, 4, size=2), rng.integers(1, 4, size=2), rng.integers(0, 3, 2)
            op = rng.integers(0, 3, size=2)
            params = dict(stride=tuple(map(int, s)), dilation=tuple(map(int, d)),
                          padding=tuple(map(int, p)), output_padding=tuple(map(int, op)))
            try:
                expected = tuple(torch.nn.functional.conv_transpose2d(
                    torch.zeros(1, 1, h, w), torch.zeros(1, 1, kh, kw), **params).shape[-2:])
            except RuntimeError:
                expected = None
            if expected is not None and min(expected) < 1:
                expected = None   # PyTorch returns an empty tensor; we refuse
            with self.subTest(shape=(h, w), kernel=(kh, kw), **params):
                try:
                    shape = conv_transpose_output_shape((h, w), (kh, kw), **params)
                except ValueError:
                    shape = None
                self.assertEqual(shape, expected)


class TestResolvePadding(unittest.TestCase):
    """resolve_padding: the border every padding form adds, for any number of axes."""

    def test_hand_worked(self):
        from convolution import resolve_padding

        # n = 5, k = 4, stride 2: 'same' wants 3 outputs, windows to cell 7: 3 more cells.
        self.assertEqual(resolve_padding("same", (5, 5), (4, 4), stride=2), ((1, 2), (1, 2)))
        self.assertEqual(resolve_padding("same", (5, 6), (3, 2)), ((1, 1), (0, 1)))
        self.assertEqual(resolve_padding("full", (5, 5), (4, 2), dilation=(1, 3)),
                         ((3, 3), (3, 3)))
        self.assertEqual(resolve_padding("valid", (1, 5, 5), (4, 4)), ((0, 0), (0, 0)))
        self.assertEqual(resolve_padding(2, (5, 5), (3, 3)), ((2, 2), (2, 2)))
        self.assertEqual(resolve_padding((1, (0, 2)), (5, 5), (3, 3)), ((1, 1), (0, 2)))
        # Other numbers of axes: one (a signal) and three (a volume).
        self.assertEqual(resolve_padding("same", (7,), (2,), dilation=3), ((1, 2),))
        # 8 cells, k = 4, stride 2: 4 outputs, windows to cell 9: 2 more cells, 1 a side.
        self.assertEqual(resolve_padding("same", (2, 9, 8, 7), (3, 4, 2), stride=(1, 2, 3)),
                         ((1, 1), (1, 1), (0, 1)))
        self.assertEqual(resolve_padding(((1, 2), 3, 0), (5, 6, 7), (2, 2, 2)),
                         ((1, 2), (3, 3), (0, 0)))

    def test_agrees_with_the_geometry_and_the_tutorial(self):
        from convolution import reference, resolve_padding
        from convolution.geometry import conv_geometry

        for n, k, s, d in itertools.product(range(1, 9), range(1, 5), range(1, 4), range(1, 3)):
            same = resolve_padding("same", (n, n), (k, k), s, d)
            self.assertEqual(same[0], reference.same_padding(n, k, s, d))
            self.assertEqual(resolve_padding("full", (n, n), (k, k), s, d)[0],
                             reference.full_padding(k, d))
            for padding in ("same", "full", 1, ((0, 2), 1)):
                try:
                    geometry = conv_geometry((n, n), (k, k), s, d, padding)
                except ValueError:
                    continue
                self.assertEqual(resolve_padding(padding, (n, n), (k, k), s, d),
                                 geometry.padding)
            # 'same' gives ceil(n / s) outputs, the tutorial's promise.
            self.assertEqual(conv_geometry((n, n), (k, k), s, d, "same").output_shape[0],
                             -(-n // s))

    def test_errors(self):
        from convolution import resolve_padding

        for padding, error, message in [
                ("half", ValueError, "padding must be one of 'valid', 'same', 'full'"),
                (-1, ValueError, "non-negative"),
                ((1, 2, 3), ValueError, "got 3 values"),
                (1.5, TypeError, "padding must be an int"),
                (((1, 2, 3), 0), ValueError, r"padding must be an int.*\(\(1, 2, 3\), 0\)")]:
            with self.subTest(padding=padding):
                with self.assertRaisesRegex(error, message):
                    resolve_padding(padding, (5, 5), (3, 3))
        with self.assertRaisesRegex(ValueError, "stride must be an int >= 1 or a pair"):
            resolve_padding("same", (5, 5), (3, 3), stride=0)
        with self.assertRaisesRegex(ValueError, "dilation must be an int >= 1 or 3 of them"):
            resolve_padding("same", (5, 5, 5), (3, 3, 3), dilation=(1, 2))
        with self.assertRaisesRegex(ValueError, "input_shape must have at least 3 entries"):
            resolve_padding("same", (5, 5), (3, 3, 3))
        with self.assertRaisesRegex(TypeError, "kernel_shape must be a tuple of ints"):
            resolve_padding("same", (5, 5), 3)


class TestSameWithAnEvenKernel(unittest.TestCase):
    """docs/pictures.md's table: 'same' with an even kernel against scipy.ndimage and scipy.signal."""

    def test_against_scipy(self):
        ndimage, signal = optional("scipy.ndimage"), optional("scipy.signal")
        if ndimage is None or signal is None:
            self.skipTest("SciPy is not installed")
        from convolution import conv2d

        rng = np.random.default_rng(5)
        for (kh, kw), (h, w) in itertools.product([(4, 4), (2, 2), (4, 2), (3, 4), (3, 3)],
                                                  [(6, 7), (9, 5)]):
            with self.subTest(kernel=(kh, kw), input=(h, w)):
                x, k = rng.integers(-4, 5, (h, w)), rng.integers(1, 5, (kh, kw))   # k: no zero kernel
                ours = conv2d(x, k, padding="same", flip=True)
                np.testing.assert_array_equal(ours, ndimage.convolve(x, k, mode="constant"))
                theirs = signal.convolve2d(x, k, "same")
                # One cell off on each axis where the kernel is even: ours[i] is theirs[i + 1].
                dh, dw = 1 - kh % 2, 1 - kw % 2
                np.testing.assert_array_equal(ours[:h - dh, :w - dw], theirs[dh:, dw:])
                if dh or dw:
                    self.assertFalse(np.array_equal(ours, theirs))
                # Of the full convolution, conv2d keeps rows kh // 2 on.
                full = signal.convolve2d(x, k, "full")
                np.testing.assert_array_equal(ours, full[kh // 2:kh // 2 + h, kw // 2:kw // 2 + w])
                correlated = conv2d(x, k, padding="same")
                np.testing.assert_array_equal(correlated, signal.correlate2d(x, k, "same"))
                scipy_correlated = ndimage.correlate(x, k, mode="constant")
                np.testing.assert_array_equal(correlated[:h - dh, :w - dw],
                                              scipy_correlated[dh:, dw:])
