"""conv2d: hand-computed maps, the reference loops, outside oracles, dtypes and errors."""
import itertools
import re
import unittest
import warnings

import numpy as np

from convolution import conv2d
from convolution.fast import METHODS as FAST_METHODS, choose_method
from convolution.reference import conv2d_loops
from convolution.geometry import conv_geometry

from .common import (scipy_signal, torch, M, K3, K2, K23, README_MATRIX, README_KERNEL,
                     README_MAP, exact_methods, assert_close, term_scale, compare_with_loops)


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
        with self.assertRaisesRegex(ValueError, "kernel holds values above 2\\*\\*63 - 1"):
            conv2d(np.ones((3, 3), np.uint8), np.full((1, 1), 2 ** 64 - 1, dtype=np.uint64))
        # The largest value int64 holds is kept, to the last unit.
        largest = conv2d(np.full((3, 3), 2 ** 63 - 1, dtype=np.uint64), [[1]])
        self.assertEqual(largest.dtype, np.int64)
        self.assertTrue((largest == 2 ** 63 - 1).all())

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
        # A large kernel on a large image is a case for the FFT or the band,
        # both of which would spread a NaN; it must still reach only the
        # outputs whose window holds it.
        x = np.random.default_rng(1).random((300, 300))
        x[150, 150] = np.nan
        kernel = np.random.default_rng(2).random((25, 25))
        self.assertIn(choose_method(kernel, conv_geometry((300, 300), (25, 25)))[0],
                      ("fft", "banded"))
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
                # Containers that have a length but are not a pair, and 0-d arrays that
                # are not integers: each named, never taken for (1, 2) or NumPy's error.
                for bad in (b"\x01\x02", {1, 2}, {1: 1, 2: 2}, np.array(2.0), np.array(True),
                            [np.float64(1), 2]):
                    self.check(TypeError, rf"{name} must be an int >= 1 or a pair of them, "
                               rf"got {re.escape(repr(bad))}", self.x, self.k, **{name: bad})
                np.testing.assert_array_equal(conv2d(self.x, self.k, **{name: np.array(2)}),
                                              conv2d(self.x, self.k, **{name: 2}))

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
        for bad in (np.array(1.0), b"\x01\x02", {1, 2}, ((1, 2), b"\x00\x01")):
            self.check(TypeError, rf"padding must be .*got {re.escape(repr(bad))}",
                       self.x, self.k, padding=bad)

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
        # Integer data: a fill value int64 cannot hold is refused by name, not by
        # NumPy's "cannot convert float NaN to integer" or an OverflowError.
        for bad in (np.nan, np.inf, -np.inf, 2 ** 63, -2 ** 63 - 1, 1e20, 1 + 0j):
            self.check(ValueError, rf"fill_value must be an integer within int64's range .*"
                       rf"got {re.escape(repr(bad))}", np.ones((4, 4), np.uint8), [[1]],
                       padding=1, padding_mode="constant", fill_value=bad)
        for edge in (2 ** 63 - 1, -2 ** 63, 3.0):
            self.assertEqual(conv2d(np.ones((2, 2), int), [[1]], padding=1,
                                    padding_mode="constant", fill_value=edge)[0, 0], edge)

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
        self.check(ValueError, r"kernel must be 2-D \(kh, kw\) or 4-D \(C_out, C_in / groups, "
                   r"kh, kw\) and not empty, got shape \(3,\)", self.x, [1, 2, 3])
        self.check(ValueError, r"kernel must be 2-D .*got shape \(1, 3, 3\)", self.x,
                   np.ones((1, 3, 3)))
        self.check(ValueError, r"kernel must be 2-D .*got shape \(0, 3\)", self.x,
                   np.ones((0, 3)))
        self.check(TypeError, r"kernel must hold numbers .*got dtype <U1", self.x, [["a"]])

    def test_kernel_does_not_fit(self):
        self.check(ValueError, r"spans \(5, 7\) cells, more than the padded input \(6, 6\) "
                   r"holds; the output shape would be \(2, 0\)", self.x, self.k, dilation=(2, 3))
        self.check(ValueError, r"output shape would be \(0, 6\)", np.ones((2, 8)), np.ones((3, 3)))

    def test_results_no_array_can_hold_are_refused_by_name(self):
        # NumPy's own "Maximum allowed dimension exceeded" would name no parameter.
        from convolution import conv2d_backward, conv_transpose2d
        huge = 2 ** 70
        x, k = np.ones((3, 3)), np.ones((2, 2))
        for call, message in [
                (lambda: conv_transpose2d(x, k, stride=(huge, 1)),
                 r"stride \(1180591620717411303424, 1\) and dilation \(1, 1\) make an output "
                 r"of shape \(2361183241434822606850, 4\), more than an array holds \(2\*\*59 "
                 r"cells\); use a smaller stride or dilation$"),
                (lambda: conv_transpose2d(x, k, dilation=(1, huge)),
                 r"stride \(1, 1\) and dilation \(1, 1180591620717411303424\) make an output"),
                (lambda: conv_transpose2d(x, k, stride=2 ** 30), r"stride \(1073741824, "),
                (lambda: conv2d(x, k, padding=(huge, 1)),
                 r"padding \(1180591620717411303424, 1\) pads the input to shape "
                 r"\(2361183241434822606851, 5\), more than an array holds \(2\*\*59 "
                 r"cells\); use less padding$"),
                (lambda: conv2d(x, k, dilation=huge, padding="full"),
                 r"padding 'full' with dilation \(1180591620717411303424, 11805916207174113"
                 r"03424\) pads .* use less padding or dilation$"),
                (lambda: conv2d_backward(np.ones((1, 1)), x, k, stride=huge,
                                         padding=((0, huge), 0)),
                 r"padding \(\(0, 1180591620717411303424\), 0\) pads")]:
            with self.subTest(message=message):
                with self.assertRaisesRegex(ValueError, message):
                    call()

    def test_bad_parameters_are_refused_by_name(self):
        # Every value must be refused with an error that names the parameter; a value
        # accepted, or refused by an AssertionError or IndexError, fails the test.
        rng = np.random.default_rng(0)
        bad = [-1, 2.5, "x", None, (1,), (1, 2, 3), ((1,), 1), True, np.array([1, 2, 3]),
               ((1, 2), (3, -4))]
        cases = [(name, value) for name in ("stride", "dilation", "padding") for value in bad]
        # 0 and a pair of pairs are padding, but no stride or dilation.
        cases += [(name, value) for name in ("stride", "dilation")
                  for value in (0, [[1, 2], [3, 4]])]
        for name, value in cases:
            with self.subTest(name=name, value=value):
                with self.assertRaises((ValueError, TypeError)) as caught:
                    conv2d(rng.random((7, 7)), np.ones((2, 2)), **{name: value})
                self.assertIn(name, str(caught.exception))
