"""Parameter normalisation and the output-shape formula."""
import itertools
import unittest

import numpy as np

from convolution import conv_output_shape


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
