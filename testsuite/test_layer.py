"""The CNN layer: conv2d with 4-D kernels, conv_transpose2d, conv2d_backward, the tutorial.

Witnesses, each independent of the others: the tutorial's loops (and its
arithmetic against the shared shape helpers), PyTorch's conv2d,
conv_transpose2d and autograd on random cases, the adjoint identity and
central finite differences, and exact integer arithmetic.
"""
import itertools
import os
import re
import subprocess
import sys
import tracemalloc
import unittest
import warnings

import numpy as np

from convolution import (conv2d, conv2d_backward, conv2d_backward_loops, conv2d_layer_loops,
                         conv2d_loops, conv2d_slices, conv_output_shape, conv_transpose2d,
                         conv_transpose2d_loops, conv_transpose_output_shape, reference,
                         reference_layers, settings)
from convolution.padding import PADDING_MODES, pad, pad_adjoint, source_map
from convolution.geometry import tap, window

from .common import HERE, forced_threads, optional, torch

sklearn = optional("sklearn")

#: Border modes as F.pad names them (torch has no 'symmetric').
TORCH_MODES = {"zeros": "constant", "constant": "constant", "reflect": "reflect",
               "replicate": "replicate", "circular": "circular"}


def random_layer(rng, transposed=False, small=False):
    """Random arguments of a layer: channels, groups, batch or none, every parameter form.

    Returns ``(matrix, kernel, bias, params)``; ``params`` holds stride,
    dilation, padding (pair of pairs), groups and, for the transposed
    convolution, output_padding, else padding_mode and fill_value.
    """
    groups = int(rng.choice([1, 1, 2, 3]))
    per_in, per_out = (int(v) for v in rng.integers(1, 3 if small else 4, size=2))
    depthwise = rng.random() < 0.2
    if depthwise:
        per_in = 1
    in_channels, out_channels = groups * per_in, groups * per_out
    kh, kw = (int(v) for v in rng.integers(1, 4, size=2))
    stride = tuple(int(v) for v in rng.integers(1, 4, size=2))
    dilation = tuple(int(v) for v in rng.integers(1, 3, size=2))
    padding = tuple(tuple(int(v) for v in rng.integers(0, 3, size=2)) for _ in range(2))
    span_h, span_w = dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1
    h = int(rng.integers(max(span_h - 2, 1), span_h + (5 if small else 9)))
    w = int(rng.integers(max(span_w - 2, 1), span_w + (5 if small else 9)))
    batch = () if rng.random() < 0.25 else (int(rng.integers(1, 4)),)
    matrix = rng.standard_normal(batch + (in_channels, h, w))
    if transposed:
        kernel = rng.standard_normal((in_channels, per_out, kh, kw))
        extra = tuple(int(rng.integers(0, max(s, d))) for s, d in zip(stride, dilation))
        params = dict(stride=stride, dilation=dilation, padding=padding, output_padding=extra,
                      groups=groups)
    else:
        kernel = rng.standard_normal((out_channels, per_in, kh, kw))
        mode = list(PADDING_MODES)[rng.integers(len(PADDING_MODES))]
        params = dict(stride=stride, dilation=dilation, padding=padding, padding_mode=mode,
                      fill_value=float(rng.integers(-3, 4)) if mode == "constant" else 0,
                      groups=groups)
    bias = rng.standard_normal(out_channels) if rng.random() < 0.7 else None
    return matrix, kernel, bias, params


def fits(matrix, kernel, params):
    """Whether the shapes work out: the kernel fits the padded input, or the crop leaves cells."""
    try:
        if "output_padding" in params:
            conv_transpose_output_shape(matrix.shape, kernel.shape[-2:], params["stride"],
                                        params["dilation"], params["padding"],
                                        params["output_padding"])
        else:
            conv_output_shape(matrix.shape, kernel.shape[-2:], params["stride"],
                              params["dilation"], params["padding"])
    except ValueError:
        return False
    return True


def random_layers(seed, count, transposed=False, small=False, accept=lambda *case: True):
    """``count`` random layers whose shapes work out (and that ``accept`` takes)."""
    rng = np.random.default_rng(seed)
    while count:
        case = random_layer(rng, transposed, small)
        if fits(case[0], case[1], case[3]) and accept(*case):
            count -= 1
            yield case


def scale(matrix, kernel, bias=None, fill_value=0):
    """The size of the terms each output sums: its rounding errors are relative to it."""
    biggest = max(float(np.abs(matrix).max()), abs(fill_value))
    return float(np.abs(kernel).sum() * biggest + (0 if bias is None else np.abs(bias).max()))


def assert_close(test, actual, expected, size, ulps=64):
    test.assertEqual(actual.shape, expected.shape)
    if actual.dtype.kind in "iub":
        np.testing.assert_array_equal(actual, expected)
    else:
        tolerance = ulps * np.finfo(actual.dtype).eps * max(size, 1.0)
        np.testing.assert_allclose(actual, expected, rtol=0, atol=tolerance)


class TestTutorialArithmetic(unittest.TestCase):
    """The tutorial's own index arithmetic against the shared helpers' (geometry.py, padding.py)."""

    def test_output_size_is_the_shared_formula(self):
        for size, k, s, d, top, bottom in itertools.product(range(1, 9), range(1, 4), range(1, 4),
                                                            range(1, 3), range(3), range(3)):
            padded = size + top + bottom
            if d * (k - 1) + 1 > padded:
                continue
            with self.subTest(size=size, k=k, s=s, d=d, padding=(top, bottom)):
                self.assertEqual(reference.output_size(padded, k, s, d),
                                 conv_output_shape((size, size), (k, k), s, d,
                                                   ((top, bottom), (top, bottom)))[0])

    def test_transposed_size_is_the_shared_formula(self):
        for size, k, s, d, top, bottom in itertools.product(range(1, 6), range(1, 4), range(1, 4),
                                                            range(1, 3), range(3), range(3)):
            for extra in range(max(s, d)):
                out = reference_layers.transposed_size(size, k, s, d) - top - bottom + extra
                if out < 1:
                    continue
                with self.subTest(size=size, k=k, s=s, d=d, padding=(top, bottom), extra=extra):
                    self.assertEqual(out, conv_transpose_output_shape(
                        (size, size), (k, k), s, d, ((top, bottom), (top, bottom)), extra)[0])

    def test_loops_read_the_cells_of_window_and_tap(self):
        # With a one-hot kernel at tap (a, b), output (i, j) is the id of the one padded
        # cell the loops' formula i*sh + a*dh, j*sw + b*dw reads: the cell that
        # geometry.window(i, j) puts at (a, b) and geometry.tap(a, b) puts at (i, j).
        rng = np.random.default_rng(1)
        for _ in range(60):
            (kh, kw), stride, dilation = rng.integers(1, 4, 2), rng.integers(1, 4, 2), \
                rng.integers(1, 3, 2)
            stride, dilation = tuple(map(int, stride)), tuple(map(int, dilation))
            padding = tuple(tuple(int(v) for v in rng.integers(0, 3, 2)) for _ in range(2))
            shape = tuple(int(n) * (k + 1) for n, k in zip(rng.integers(2, 5, 2), (kh, kw)))
            ids = np.arange(np.prod(shape)).reshape(shape)
            padded = pad(ids, padding, "reflect")
            out_shape = conv_output_shape(shape, (kh, kw), stride, dilation, padding)
            for a, b in itertools.product(range(kh), range(kw)):
                one_hot = np.zeros((kh, kw), int)
                one_hot[a, b] = 1
                result = conv2d_loops(ids, one_hot, stride, dilation, padding, "reflect")
                with self.subTest(kernel=(kh, kw), stride=stride, dilation=dilation, tap=(a, b)):
                    np.testing.assert_array_equal(
                        result, padded[tap(a, b, out_shape, stride, dilation)])
                    for i, j in [(0, 0), (out_shape[0] - 1, out_shape[1] - 1)]:
                        self.assertEqual(result[i, j],
                                         padded[window(i, j, (kh, kw), stride, dilation)][a, b])

    def test_tutorial_pad_and_fold_are_the_shared_ones(self):
        rng = np.random.default_rng(2)
        for _ in range(200):
            size = int(rng.integers(1, 6))
            before, after = (int(v) for v in rng.integers(0, 9, 2))
            mode = list(PADDING_MODES)[rng.integers(len(PADDING_MODES))]
            x = rng.integers(-9, 9, size=(2, 3, size))
            fill = 4 if mode == "constant" else 0
            with self.subTest(size=size, padding=(before, after), mode=mode):
                widths = ((0, 0), (before, after))
                np.testing.assert_array_equal(reference.pad(x, widths, mode, fill),
                                              pad(x, widths, mode, fill))
                # The tutorial's fold pads arange with fill -1: padding.source_map.
                source = reference.pad(np.arange(size)[np.newaxis], ((0, 0), (before, after)),
                                       mode, -1)[0]
                np.testing.assert_array_equal(source, source_map(size, before, after, mode))

    def test_slices_equal_loops(self):
        rng = np.random.default_rng(3)
        for _ in range(100):
            x = rng.integers(-20, 20, size=(2, int(rng.integers(3, 10)), int(rng.integers(3, 10))))
            k = rng.integers(-4, 5, size=tuple(rng.integers(1, 4, 2)))
            params = dict(stride=tuple(map(int, rng.integers(1, 4, 2))),
                          dilation=tuple(map(int, rng.integers(1, 3, 2))),
                          padding=tuple(tuple(map(int, rng.integers(0, 3, 2))) for _ in range(2)),
                          padding_mode=list(PADDING_MODES)[rng.integers(len(PADDING_MODES))])
            try:
                expected = conv2d_loops(x, k, **params)
            except ValueError:
                continue
            with self.subTest(**params):
                np.testing.assert_array_equal(conv2d_slices(x, k, **params), expected)

    def test_called_as_conv2d_is(self):
        # Ints, lists, NumPy integers and the padding strings, as conv2d takes them.
        x = np.arange(49).reshape(7, 7)
        expected = conv2d(x, [[1, 2], [3, 4]], stride=2, dilation=(1, 2), padding="same")
        for function in (conv2d_loops, conv2d_slices):
            with self.subTest(function=function.__name__):
                np.testing.assert_array_equal(
                    function(x.tolist(), [[1, 2], [3, 4]], stride=np.int64(2), dilation=[1, 2],
                             padding="same"), expected)
                np.testing.assert_array_equal(function(x, [[1]], stride=2), x[::2, ::2])
                with self.assertRaisesRegex(TypeError, r"stride must be an int >= 1 .*got 2.0"):
                    function(x, [[1]], stride=2.0)
                with self.assertRaisesRegex(ValueError, r"padding must be one of 'valid'"):
                    function(x, [[1]], padding="middle")
                with self.assertRaisesRegex(ValueError, r"padding_mode must be one of"):
                    function(x, [[1]], padding_mode="mirror")
                with self.assertRaisesRegex(ValueError, r"kernel must be 2-D \(kh, kw\)"):
                    function(x, np.ones((1, 1, 2, 2)))
        with self.assertRaisesRegex(ValueError, r"kernel must be 4-D"):
            conv2d_layer_loops(x[np.newaxis], [[1]])

    def test_method_loops_runs_the_tutorial(self):
        rng = np.random.default_rng(4)
        for matrix, kernel, bias, params in random_layers(5, 20, small=True):
            with self.subTest(shape=matrix.shape, kernel=kernel.shape, **params):
                np.testing.assert_array_equal(
                    conv2d(matrix, kernel, bias=bias, method="loops", **params),
                    conv2d_layer_loops(matrix, kernel, bias=bias, **params))
                grad = rng.standard_normal(conv2d(matrix, kernel, **params).shape)
                for ours, tutorial in zip(conv2d_backward(grad, matrix, kernel, method="loops",
                                                          **params),
                                          conv2d_backward_loops(grad, matrix, kernel, **params)):
                    np.testing.assert_array_equal(ours, tutorial)
        for matrix, kernel, bias, params in random_layers(6, 20, transposed=True, small=True):
            with self.subTest(shape=matrix.shape, kernel=kernel.shape, **params):
                np.testing.assert_array_equal(
                    conv_transpose2d(matrix, kernel, bias=bias, method="loops", **params),
                    conv_transpose2d_loops(matrix, kernel, bias=bias, **params))


@unittest.skipIf(torch is None, "torch is not installed")
class TestTorchOracle(unittest.TestCase):
    """PyTorch's conv2d, conv_transpose2d and autograd, on hundreds of random layers.

    Asymmetric padding and the border modes go through F.pad (torch's conv2d
    pads symmetrically with zeros only); 'symmetric' has no torch equivalent,
    and torch's 'reflect' and 'circular' refuse padding wider than the input.
    """

    CASES = 300

    @staticmethod
    def torch_accepts(matrix, kernel, bias, params):
        mode = params.get("padding_mode", "zeros")
        if mode not in TORCH_MODES:
            return False
        widest = max(max(p) for p in params["padding"])
        return not (mode in ("reflect", "circular") and widest >= min(matrix.shape[-2:]))

    @staticmethod
    def torch_padded(x, params):
        (top, bottom), (left, right) = params["padding"]
        mode = params["padding_mode"]
        batched = x if x.dim() == 4 else x[None]
        padded = torch.nn.functional.pad(batched, (left, right, top, bottom),
                                         mode=TORCH_MODES[mode], value=params["fill_value"]
                                         if mode == "constant" else None)
        return padded if x.dim() == 4 else padded[0]

    def torch_conv2d(self, x, k, b, params):
        return torch.nn.functional.conv2d(self.torch_padded(x, params), k, b,
                                          stride=params["stride"], dilation=params["dilation"],
                                          groups=params["groups"])

    def test_conv2d(self):
        checked = 0
        for matrix, kernel, bias, params in random_layers(10, self.CASES,
                                                          accept=self.torch_accepts):
            theirs = self.torch_conv2d(torch.from_numpy(matrix), torch.from_numpy(kernel),
                                       None if bias is None else torch.from_numpy(bias), params)
            with self.subTest(shape=matrix.shape, kernel=kernel.shape, **params):
                ours = conv2d(matrix, kernel, bias=bias, **params)
                assert_close(self, ours, theirs.numpy(),
                             scale(matrix, kernel, bias, params["fill_value"]))
            checked += 1
        self.assertEqual(checked, self.CASES)

    def test_conv2d_float32(self):
        for matrix, kernel, bias, params in random_layers(11, 60, accept=self.torch_accepts):
            matrix, kernel = matrix.astype(np.float32), kernel.astype(np.float32)
            bias = None if bias is None else bias.astype(np.float32)
            theirs = self.torch_conv2d(torch.from_numpy(matrix), torch.from_numpy(kernel),
                                       None if bias is None else torch.from_numpy(bias), params)
            with self.subTest(shape=matrix.shape, kernel=kernel.shape, **params):
                ours = conv2d(matrix, kernel, bias=bias, **params)
                self.assertEqual(ours.dtype, np.float32)
                assert_close(self, ours, theirs.numpy(),
                             scale(matrix, kernel, bias, params["fill_value"]))

    def test_conv_transpose2d(self):
        checked = 0
        for matrix, kernel, bias, params in random_layers(12, self.CASES, transposed=True):
            (top, bottom), (left, right) = params["padding"]
            # torch crops the same amount from both ends; crop the rest by hand.
            low = (min(top, bottom), min(left, right))
            theirs = torch.nn.functional.conv_transpose2d(
                torch.from_numpy(matrix), torch.from_numpy(kernel),
                None if bias is None else torch.from_numpy(bias), stride=params["stride"],
                padding=low, output_padding=params["output_padding"], groups=params["groups"],
                dilation=params["dilation"]).numpy()
            theirs = theirs[..., top - low[0]:theirs.shape[-2] - (bottom - low[0]),
                            left - low[1]:theirs.shape[-1] - (right - low[1])]
            with self.subTest(shape=matrix.shape, kernel=kernel.shape, **params):
                ours = conv_transpose2d(matrix, kernel, bias=bias, **params)
                assert_close(self, ours, theirs, scale(matrix, kernel, bias))
            checked += 1
        self.assertEqual(checked, self.CASES)

    def test_conv_transpose2d_symmetric_padding(self):
        # torch's own padding argument, ints and pairs, where it can express it.
        rng = np.random.default_rng(13)
        for _ in range(100):
            x = rng.standard_normal((2, 4, *rng.integers(2, 7, 2)))
            k = rng.standard_normal((4, 3, *rng.integers(1, 5, 2)))
            stride, dilation = tuple(map(int, rng.integers(1, 4, 2))), int(rng.integers(1, 3))
            padding = int(rng.integers(0, 3))
            extra = tuple(int(rng.integers(0, max(s, dilation))) for s in stride)
            try:
                theirs = torch.nn.functional.conv_transpose2d(
                    torch.from_numpy(x), torch.from_numpy(k), None, stride, padding, extra,
                    1, dilation).numpy()
            except RuntimeError:
                continue
            if 0 in theirs.shape:
                continue
            with self.subTest(stride=stride, dilation=dilation, padding=padding, extra=extra):
                assert_close(self, conv_transpose2d(x, k, stride, dilation, padding, extra),
                             theirs, scale(x, k))

    def test_autograd(self):
        checked = 0
        rng = np.random.default_rng(14)
        for matrix, kernel, bias, params in random_layers(15, self.CASES,
                                                          accept=self.torch_accepts):
            x = torch.from_numpy(matrix).requires_grad_()
            k = torch.from_numpy(kernel).requires_grad_()
            b = torch.from_numpy(bias if bias is not None else np.zeros(len(kernel)))
            b.requires_grad_()
            out = self.torch_conv2d(x, k, b, params)
            grad = rng.standard_normal(tuple(out.shape))
            out.backward(torch.from_numpy(grad))
            with self.subTest(shape=matrix.shape, kernel=kernel.shape, **params):
                grad_x, grad_k, grad_b = conv2d_backward(grad, matrix, kernel, **params)
                assert_close(self, grad_x, x.grad.numpy(), scale(grad, kernel))
                assert_close(self, grad_k, k.grad.numpy(),
                             float(np.abs(grad).sum() * np.abs(matrix).max()) + 1)
                assert_close(self, grad_b, b.grad.numpy(), float(np.abs(grad).sum()))
            checked += 1
        self.assertEqual(checked, self.CASES)

    def test_infinite_weights(self):
        # conv2d gathers (an infinite weight times a zero of the border is NaN);
        # conv_transpose2d and the input's gradient scatter (it is not): as PyTorch.
        rng = np.random.default_rng(18)
        for case, (x, k, bias, params) in enumerate(random_layers(19, 60, transposed=True)):
            k.flat[rng.integers(k.size)] = (np.inf, -np.inf, np.nan)[case % 3]
            (top, bottom), (left, right) = params["padding"]
            params["padding"] = (top, left)      # torch's symmetric padding
            try:
                theirs = torch.nn.functional.conv_transpose2d(
                    torch.from_numpy(x), torch.from_numpy(k), None, params["stride"], (top, left),
                    params["output_padding"], params["groups"], params["dilation"]).numpy()
            except RuntimeError:
                continue
            if 0 in theirs.shape:
                continue
            with self.subTest(case=case, **params), np.errstate(invalid="ignore"):
                ours = conv_transpose2d(x, k, **params)
                np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
                np.testing.assert_allclose(ours[~np.isnan(ours)], theirs[~np.isnan(theirs)])
        x = np.ones((1, 1, 4, 4))
        k = np.ones((1, 1, 2, 2))
        k[0, 0, 0, 0] = np.inf
        tx, tk = (torch.from_numpy(a).requires_grad_() for a in (x, k))
        out = torch.nn.functional.conv2d(tx, tk, padding=1)
        out.backward(torch.ones_like(out))
        with np.errstate(invalid="ignore"):
            np.testing.assert_array_equal(conv2d(x, k, padding=1), out.detach().numpy())
            np.testing.assert_array_equal(conv2d_backward(np.ones((1, 1, 5, 5)), x, k,
                                                          padding=1)[0], tx.grad.numpy())

    def test_complex_gradients_are_torch_conjugated(self):
        rng = np.random.default_rng(17)
        x = rng.standard_normal((2, 4, 7, 6)) + 1j * rng.standard_normal((2, 4, 7, 6))
        k = rng.standard_normal((6, 2, 3, 2)) + 1j * rng.standard_normal((6, 2, 3, 2))
        grad = rng.standard_normal((2, 6, 3, 5)) + 1j * rng.standard_normal((2, 6, 3, 5))
        tx, tk = (torch.from_numpy(a).requires_grad_() for a in (x, k))
        out = torch.nn.functional.conv2d(tx, tk, stride=(2, 1), groups=2)
        assert_close(self, conv2d(x, k, stride=(2, 1), groups=2), out.detach().numpy(),
                     scale(x, k))
        out.backward(torch.from_numpy(grad))
        grad_x, grad_k, _ = conv2d_backward(grad, x.conj(), k.conj(), stride=(2, 1), groups=2)
        assert_close(self, grad_x, tx.grad.numpy(), scale(grad, k))
        assert_close(self, grad_k, tk.grad.numpy(), scale(grad, x))

    def test_same_padding_and_depthwise(self):
        rng = np.random.default_rng(16)
        for count, multiplier, (kh, kw), dilation in itertools.product(
                (1, 3, 8), (1, 2), ((3, 3), (2, 5)), (1, 2)):
            x = rng.standard_normal((2, count, 11, 9))
            k = rng.standard_normal((count * multiplier, 1, kh, kw))
            with warnings.catch_warnings():   # torch warns that it copies for even kernels
                warnings.simplefilter("ignore", UserWarning)
                theirs = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(k),
                                                    dilation=dilation, padding="same",
                                                    groups=count).numpy()
            with self.subTest(channels=count, multiplier=multiplier, kernel=(kh, kw)):
                assert_close(self, conv2d(x, k, dilation=dilation, padding="same",
                                          groups=count), theirs, scale(x, k))


class TestIdentities(unittest.TestCase):
    """Without torch: the adjoint identity and finite differences, every border mode."""

    def test_adjoint_identity_exact(self):
        # Integers are exact, so both sides must be equal, not close. conv2d with a
        # border of copies is still linear in x; with a fill value it is affine, so
        # conv2d(x) - conv2d(0) is the linear part.
        rng = np.random.default_rng(20)
        for case in range(120):
            matrix, kernel, _, params = random_layer(rng, small=True)
            if not fits(matrix, kernel, params):
                continue
            params["fill_value"] = int(params["fill_value"])
            x = rng.integers(-9, 10, size=matrix.shape)
            k = rng.integers(-9, 10, size=kernel.shape)
            y = rng.integers(-9, 10, size=conv2d(x, k, **params).shape)
            linear = conv2d(x, k, **params) - conv2d(np.zeros_like(x), k, **params)
            with self.subTest(case=case, shape=x.shape, kernel=k.shape, **params):
                back = conv2d_backward(y, x, k, **params)[0]
                self.assertEqual(back.dtype, np.int64)
                self.assertEqual(int(np.sum(linear * y)), int(np.sum(x * back)))
                # conv_transpose2d with the same border is that gradient, every border.
                transposed = self.transpose(y, k, x.shape, params)
                np.testing.assert_array_equal(transposed, back)

    def test_pad_adjoint(self):
        # sum(pad(x) * g) == sum(x * pad_adjoint(g)), exactly on integers, with
        # padding up to three times wider than the input (the pattern repeats).
        rng = np.random.default_rng(26)
        for _ in range(300):
            x = rng.integers(-9, 10, size=(2,) + tuple(rng.integers(1, 5, size=2)))
            padding = tuple(tuple(int(v) for v in rng.integers(0, 12, size=2)) for _ in range(2))
            mode = list(PADDING_MODES)[rng.integers(len(PADDING_MODES))]
            padded = pad(x, padding, mode, 7 if mode == "constant" else 0)
            linear = padded - pad(np.zeros_like(x), padding, mode, 7 if mode == "constant" else 0)
            g = rng.integers(-9, 10, size=padded.shape)
            with self.subTest(shape=x.shape, padding=padding, mode=mode):
                folded = pad_adjoint(g, padding, mode)
                self.assertEqual(folded.shape, x.shape)
                self.assertEqual(int(np.sum(linear * g)), int(np.sum(x * folded)))

    @staticmethod
    def transpose(y, k, shape, params):
        """conv_transpose2d of y, with the output_padding that gives ``shape``.

        The rows (columns) of the padded input below the last window, which
        no output reads: ``(padded - span) % stride``.
        """
        extra = tuple((n + sum(p) - d * (kk - 1) - 1) % s for n, p, kk, s, d in zip(
            shape[-2:], params["padding"], k.shape[-2:], params["stride"], params["dilation"]))
        return conv_transpose2d(y, k, params["stride"], params["dilation"], params["padding"],
                                extra, groups=params["groups"],
                                padding_mode=params["padding_mode"])

    def test_adjoint_identity_float(self):
        rng = np.random.default_rng(21)
        for case, (x, k, _, params) in enumerate(random_layers(22, 80)):
            params["fill_value"] = 0      # every border, each linear then
            y = rng.standard_normal(conv2d(x, k, **params).shape)
            with self.subTest(case=case, shape=x.shape, kernel=k.shape, **params):
                lhs = np.sum(conv2d(x, k, **params) * y)
                rhs = np.sum(x * self.transpose(y, k, x.shape, params))
                self.assertAlmostEqual(lhs, rhs, delta=1e-12 * np.abs(x).sum()
                                       * np.abs(k).sum() * np.abs(y).max() + 1e-300)

    def test_finite_differences(self):
        # loss = sum(sin(conv2d(x, k, bias=b))): a nonlinear loss, whose gradient
        # with respect to conv2d's output is cos(out). Central differences of
        # float64 on every border mode and a constant fill.
        rng = np.random.default_rng(23)
        step = 1e-6
        for mode in PADDING_MODES:
            fill = 1.5 if mode == "constant" else 0
            for groups, stride, dilation in ((1, 1, 1), (2, (2, 1), (1, 2))):
                x = rng.standard_normal((2, 2 * groups, 6, 5))
                k = rng.standard_normal((2 * groups, 2, 3, 2))
                b = rng.standard_normal(2 * groups)
                params = dict(stride=stride, dilation=dilation, padding=((2, 1), (0, 3)),
                              padding_mode=mode, fill_value=fill, groups=groups)

                def loss(x, k, b):
                    return np.sum(np.sin(conv2d(x, k, bias=b, **params)))

                grads = conv2d_backward(np.cos(conv2d(x, k, bias=b, **params)), x, k, **params)
                for name, array, grad in zip(("x", "k", "b"), (x, k, b), grads):
                    for index in [tuple(rng.integers(0, n) for n in array.shape)
                                  for _ in range(12)]:
                        plus, minus = array.copy(), array.copy()
                        plus[index] += step
                        minus[index] -= step
                        args_plus = [plus if a is array else a for a in (x, k, b)]
                        args_minus = [minus if a is array else a for a in (x, k, b)]
                        numeric = (loss(*args_plus) - loss(*args_minus)) / (2 * step)
                        with self.subTest(mode=mode, groups=groups, wrt=name, index=index):
                            self.assertAlmostEqual(grad[index], numeric, delta=1e-6)

    def test_transposed_is_spread_then_flipped_convolution(self):
        # The third face: spread the input with stride - 1 zeros between cells,
        # pad by dilation * (k - 1) - padding (plus output_padding at the end),
        # and convolve with the flipped kernel.
        for x, k, _, params in random_layers(25, 80, transposed=True, small=True):
            (sh, sw), (dh, dw) = params["stride"], params["dilation"]
            (kh, kw), groups = k.shape[-2:], params["groups"]
            reach = (dh * (kh - 1), dw * (kw - 1))
            if any(p > r for pair, r in zip(params["padding"], reach) for p in pair):
                continue      # padding beyond the kernel's reach: a crop, not a convolution
            spread = np.zeros(x.shape[:-2] + ((x.shape[-2] - 1) * sh + 1,
                                              (x.shape[-1] - 1) * sw + 1))
            spread[..., ::sh, ::sw] = x
            # (C_in, C_out / g, kh, kw) as conv2d's (C_out, C_in / g, kh, kw), group by group.
            c_in, per_out = k.shape[:2]
            forward = k.reshape(groups, c_in // groups, per_out, kh, kw).transpose(
                0, 2, 1, 3, 4).reshape(groups * per_out, c_in // groups, kh, kw)
            padding = tuple((r - before, r - after + extra) for (before, after), r, extra
                            in zip(params["padding"], reach, params["output_padding"]))
            with self.subTest(shape=x.shape, kernel=k.shape, **params):
                expected = conv2d(spread, forward, dilation=params["dilation"], padding=padding,
                                  flip=True, groups=groups)
                assert_close(self, conv_transpose2d(x, k, **params), expected, scale(x, k))


class TestFastPathsAgainstLoops(unittest.TestCase):
    """Every fast path of the layer against the tutorial's loops."""

    def check_all(self, seed, count, methods):
        rng = np.random.default_rng(seed)
        for matrix, kernel, bias, params in random_layers(seed, count, small=True):
            expected = conv2d_layer_loops(matrix, kernel, bias=bias, **params)
            grad = rng.standard_normal(expected.shape)
            expected_grads = conv2d_backward_loops(grad, matrix, kernel, **params)
            size = scale(matrix, kernel, bias, params["fill_value"])
            for method in methods:
                with self.subTest(method=method, shape=matrix.shape, kernel=kernel.shape,
                                  **params):
                    assert_close(self, conv2d(matrix, kernel, bias=bias, method=method, **params),
                                 expected, size)
            with self.subTest(shape=matrix.shape, kernel=kernel.shape, **params):
                for ours, theirs, size in zip(conv2d_backward(grad, matrix, kernel, **params),
                                              expected_grads,
                                              (scale(grad, kernel), scale(grad, matrix) * 100,
                                               np.abs(grad).sum())):
                    assert_close(self, ours, theirs, size)
        for matrix, kernel, bias, params in random_layers(seed + 1, count, transposed=True,
                                                          small=True):
            with self.subTest(transposed=True, shape=matrix.shape, kernel=kernel.shape,
                              **params):
                assert_close(self, conv_transpose2d(matrix, kernel, bias=bias, **params),
                             conv_transpose2d_loops(matrix, kernel, bias=bias, **params),
                             scale(matrix, kernel, bias))

    def test_random_layers(self):
        self.check_all(30, 60, ("auto", "matmul"))

    def test_engine_paths_per_pair_of_channels(self):
        self.check_all(32, 12, ("direct", "polyphase", "separable", "fft"))

    def test_many_strips_and_threads(self):
        # Tiny strips cut even small layers into many pieces, shared by 3 threads:
        # every seam must be invisible, the scatter's and the kernel gradient's too.
        with settings.using(strip_bytes=512, min_strip_bytes=512), forced_threads(3):
            self.check_all(34, 40, ("auto",))

    def test_stacks_of_taps(self):
        # Taps stacked into one product a few at a time (several products, some of a
        # single tap read in place, others copied one above the other), all in one,
        # and every tap a product of its own.
        for depth, channels_alone in ((3, 256), (5, 256), (2 ** 20, 256), (1024, 2)):
            with settings.using(stack_depth=depth, stack_channels=channels_alone):
                self.check_all(36, 12, ("auto",))

    def test_integers_are_exact(self):
        rng = np.random.default_rng(36)
        for matrix, kernel, bias, params in random_layers(37, 40, small=True):
            x = rng.integers(-50, 50, size=matrix.shape).astype(np.int16)
            k = rng.integers(-9, 10, size=kernel.shape).astype(np.int8)
            b = None if bias is None else rng.integers(-100, 100, size=bias.shape)
            params["fill_value"] = int(params["fill_value"])
            expected = conv2d_layer_loops(x, k, bias=b, **params)
            self.assertEqual(expected.dtype, np.int64)
            grad = rng.integers(-9, 10, size=expected.shape)
            with self.subTest(shape=x.shape, kernel=k.shape, **params):
                result = conv2d(x, k, bias=b, **params)
                self.assertEqual(result.dtype, np.int64)
                np.testing.assert_array_equal(result, expected)
                for ours, theirs in zip(conv2d_backward(grad, x, k, **params),
                                        conv2d_backward_loops(grad, x, k, **params)):
                    self.assertEqual(ours.dtype, np.int64)
                    np.testing.assert_array_equal(ours, theirs)
        # Beyond float64's 53 bits: 2**53 + 1 survives only in int64.
        x = np.full((1, 2, 3, 3), 2 ** 52, np.int64)
        x[0, 1] = 1
        k = np.ones((1, 2, 1, 1), np.int64)
        self.assertEqual(int(conv2d(x, k, bias=[2 ** 52])[0, 0, 0, 0]), 2 ** 53 + 1)
        self.assertEqual(int(conv_transpose2d(x, k.reshape(2, 1, 1, 1))[0, 0, 0, 0]),
                         2 ** 52 + 1)

    def test_kernel_gradient_does_not_depend_on_the_threads_schedule(self):
        rng = np.random.default_rng(38)
        x, k = rng.standard_normal((3, 8, 40, 40)), rng.standard_normal((8, 8, 3, 3))
        grad = rng.standard_normal((3, 8, 38, 38))
        with settings.using(strip_bytes=4096, min_strip_bytes=4096), forced_threads(3):
            first = conv2d_backward(grad, x, k)[1]
            for _ in range(5):
                np.testing.assert_array_equal(conv2d_backward(grad, x, k)[1], first)

    def test_nan_and_inf_stay_where_they_belong(self):
        # An infinite input cell read by no window with a nonzero weight... is read
        # with zero weights by others: NaN exactly where the loops give NaN.
        x = np.zeros((1, 2, 7, 7))
        x[0, 0, 3, 3] = np.inf
        x[0, 1, 0, 6] = np.nan
        k = np.ones((2, 2, 2, 2))
        k[1, 0] = 0
        grad = np.ones((1, 2, 3, 3))
        with np.errstate(invalid="ignore"):
            for ours, theirs in [(conv2d(x, k, stride=2), conv2d_layer_loops(x, k, stride=2)),
                                 *zip(conv2d_backward(grad, x, k, stride=2),
                                      conv2d_backward_loops(grad, x, k, stride=2))]:
                np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
                np.testing.assert_array_equal(np.isinf(ours), np.isinf(theirs))
                finite = np.isfinite(theirs)
                np.testing.assert_allclose(ours[finite], theirs[finite])

    def test_infinite_weights_are_scattered(self):
        # The gather the fast path uses would multiply an infinite weight by the
        # zeros beyond the input's edges (NaN); the loops' scatter adds nothing there.
        rng = np.random.default_rng(39)
        for case, (x, k, bias, params) in enumerate(random_layers(40, 30, transposed=True,
                                                                  small=True)):
            k.flat[rng.integers(k.size)] = (np.inf, -np.inf, np.nan)[case % 3]
            with self.subTest(case=case, **params), np.errstate(invalid="ignore"):
                ours = conv_transpose2d(x, k, bias=bias, **params)
                theirs = conv_transpose2d_loops(x, k, bias=bias, **params)
                np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
                np.testing.assert_allclose(ours[~np.isnan(ours)], theirs[~np.isnan(theirs)])

    def test_memory_stays_within_the_output(self):
        # Beyond input and output, the layer's buffers are strips: a fraction of
        # the output, not an im2col copy (kh * kw times the input).
        x = np.ones((2, 16, 96, 96), np.float32)
        k = np.ones((16, 16, 3, 3), np.float32)
        conv2d(x, k, padding=1)    # warm up: the threads' arenas, the pool
        tracemalloc.start()
        try:
            out = conv2d(x, k, padding=1)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        self.assertLess(peak, 2.2 * out.nbytes)

    def test_memory_of_deep_layers_within_three_outputs(self):
        # 256 channels on 14 x 14: the kernel is 1.5 times the output. Beyond input and
        # output, 'matmul' keeps one copy of it (its taps' weights side by side) and
        # strips; Winograd's keeps its transform (16 or 36 cells a pair of channels, for
        # F(2 x 2) or F(4 x 4)) and strips, together within 3 outputs.
        from .test_operations import peak_beyond_result
        rng = np.random.default_rng(41)
        x = rng.standard_normal((8, 256, 14, 14)).astype(np.float32)
        k = rng.standard_normal((256, 256, 3, 3)).astype(np.float32)
        for method, outputs, kept in (("matmul", None, 0), ("winograd", 2, 16),
                                      ("winograd", 4, 36)):
            for threads in (1, 2):
                with self.subTest(method=method, outputs=outputs, threads=threads), \
                        forced_threads(threads), settings.using(winograd_outputs=outputs):
                    peak = peak_beyond_result(lambda: conv2d(x, k, padding=1, method=method))
                    self.assertLess(peak - kept * 256 * 256 * 4 / x.nbytes, 3.0)


class TestTwoDKernels(unittest.TestCase):
    """A 2-D kernel keeps its meaning in every function: leading axes are a batch."""

    def test_bias_is_a_scalar(self):
        x = np.arange(30.0).reshape(5, 6)
        k = np.array([[1.0, -2.0], [0.5, 3.0]])
        for method in ("auto", "loops", "direct", "fft", "matmul"):
            with self.subTest(method=method):
                np.testing.assert_allclose(conv2d(x, k, bias=2.5, method=method),
                                           conv2d(x, k) + 2.5)

    def test_transposed_and_backward_keep_the_batch(self):
        rng = np.random.default_rng(40)
        x = rng.integers(-9, 10, size=(2, 3, 6, 7))
        k = rng.integers(-9, 10, size=(3, 2))
        out = conv2d(x, k, stride=2, padding=1, padding_mode="circular")
        y = rng.integers(-9, 10, size=out.shape)
        grad_x, grad_k, grad_b = conv2d_backward(y, x, k, stride=2, padding=1,
                                                 padding_mode="circular")
        self.assertEqual((grad_x.shape, grad_k.shape, np.shape(grad_b)), (x.shape, k.shape, ()))
        self.assertEqual(int(grad_b), int(y.sum()))
        layer = conv2d_backward(y.reshape(6, 1, *y.shape[-2:]), x.reshape(6, 1, 6, 7),
                                k[np.newaxis, np.newaxis], stride=2, padding=1,
                                padding_mode="circular")
        np.testing.assert_array_equal(grad_x, layer[0].reshape(x.shape))
        np.testing.assert_array_equal(grad_k, layer[1][0, 0])
        transposed = conv_transpose2d(y, k, stride=2, padding=1, bias=3)
        self.assertEqual(transposed.shape, (2, 3) + conv_transpose_output_shape(
            y.shape, k.shape, 2, 1, 1))
        np.testing.assert_array_equal(
            transposed, conv_transpose2d(y.reshape(6, 1, *y.shape[-2:]),
                                         k[np.newaxis, np.newaxis], stride=2, padding=1,
                                         bias=[3]).reshape(transposed.shape))

    def test_matmul_path_with_a_2d_kernel(self):
        rng = np.random.default_rng(41)
        x, k = rng.integers(-9, 10, size=(4, 9, 8)), rng.integers(-9, 10, size=(2, 3))
        np.testing.assert_array_equal(conv2d(x, k, 2, 1, "same", method="matmul"),
                                      conv2d(x, k, 2, 1, "same"))

    def test_flip_flips_every_kernel_of_a_layer(self):
        rng = np.random.default_rng(42)
        x, k = rng.integers(-9, 10, size=(2, 4, 6, 6)), rng.integers(-9, 10, size=(6, 2, 3, 2))
        np.testing.assert_array_equal(conv2d(x, k, groups=2, flip=True),
                                      conv2d(x, k[..., ::-1, ::-1], groups=2))


class TestDtypes(unittest.TestCase):
    """The result dtypes of the layer, with and without bias."""

    def test_dtypes(self):
        k4 = np.ones((2, 3, 2, 2))
        cases = [  # matrix, kernel, bias, expected
            (np.float32, np.float32, None, np.float32),
            (np.float32, np.float32, 0.5, np.float32),          # a Python float is weak
            (np.float32, np.float32, np.float32, np.float32),
            (np.float32, np.float32, np.float64, np.float64),
            (np.uint8, np.int8, None, np.int64),
            (np.uint8, np.int8, np.int32, np.int64),
            (np.int64, np.int64, np.float32, np.float64),
            (bool, bool, None, np.int64),
            (np.float16, np.float16, None, np.float16),
            (np.float32, np.complex64, None, np.complex64),
        ]
        for matrix_dtype, kernel_dtype, bias, expected in cases:
            if isinstance(bias, type):
                bias_value = np.ones(2, bias)
            else:
                bias_value = None if bias is None else [bias, bias]
            with self.subTest(matrix=matrix_dtype, kernel=kernel_dtype, bias=bias):
                x = np.ones((3, 5, 5), matrix_dtype)
                k = k4.astype(kernel_dtype)
                if bias == 0.5:   # a list of Python floats is an array; a scalar bias is weak
                    out = conv2d(x[0], k[0, 0], bias=0.5)
                else:
                    out = conv2d(x, k, bias=bias_value)
                    self.assertEqual(conv_transpose2d(x, k.reshape(3, 2, 2, 2),
                                                      bias=bias_value).dtype, expected)
                self.assertEqual(out.dtype, expected)
            with self.subTest(backward=True, matrix=matrix_dtype, kernel=kernel_dtype):
                x = np.ones((3, 5, 5), matrix_dtype)
                grads = conv2d_backward(np.ones((2, 4, 4), matrix_dtype), x,
                                        k4.astype(kernel_dtype))
                expected = np.int64 if {np.dtype(matrix_dtype).kind, np.dtype(kernel_dtype).kind
                                        } <= set("biu") else np.result_type(matrix_dtype,
                                                                            kernel_dtype)
                self.assertEqual([g.dtype for g in grads], [np.dtype(expected)] * 3)

    def test_no_overflow_in_small_integers(self):
        x = np.full((1, 4, 4, 4), 255, np.uint8)
        k = np.full((1, 4, 3, 3), 127, np.int8)
        np.testing.assert_array_equal(conv2d(x, k), np.full((1, 1, 2, 2), 36 * 255 * 127))


class TestErrors(unittest.TestCase):
    """Every bad input of the layer: the exception type and a fragment of its message."""

    x = np.ones((2, 4, 6, 6))
    k = np.ones((6, 2, 3, 3))

    def check(self, error, pattern, function, *args, **kwargs):
        with self.assertRaisesRegex(error, pattern):
            function(*args, **kwargs)

    def test_kernel_rank(self):
        for bad in (np.ones((2, 3, 3)), np.ones((1, 1, 1, 3, 3)), np.ones(3)):
            self.check(ValueError, r"kernel must be 2-D \(kh, kw\) or 4-D \(C_out, C_in / groups, "
                       rf"kh, kw\) and not empty, got shape {re.escape(str(bad.shape))}",
                       conv2d, self.x, bad)
            self.check(ValueError, r"kernel must be 2-D \(kh, kw\) or 4-D \(C_in, C_out / groups, "
                       rf"kh, kw\) and not empty, got shape {re.escape(str(bad.shape))}",
                       conv_transpose2d, self.x, bad)
            self.check(ValueError, r"kernel must be 2-D .* or 4-D", conv2d_backward,
                       np.ones((2, 6, 4, 4)), self.x, bad)
        self.check(ValueError, r"kernel must be .*not empty, got shape \(0, 2, 3, 3\)", conv2d,
                   self.x, np.ones((0, 2, 3, 3)))

    def test_matrix_rank_and_channels(self):
        self.check(ValueError, r"matrix must be 4-D \(N, C_in, H, W\) or 3-D \(C_in, H, W\) with "
                   r"a 4-D kernel, got shape \(6, 6\)", conv2d, np.ones((6, 6)), self.k)
        self.check(ValueError, r"matrix must be 4-D .*got shape \(1, 2, 4, 6, 6\)", conv2d,
                   np.ones((1, 2, 4, 6, 6)), self.k)
        self.check(ValueError, r"matrix has 4 channels \(axis -3 of shape \(2, 4, 6, 6\)\), but "
                   r"kernel of shape \(6, 3, 3, 3\) with groups=1 expects groups \* "
                   r"kernel.shape\[1\] = 3", conv2d, self.x, np.ones((6, 3, 3, 3)))
        self.check(ValueError, r"matrix has 4 channels .*with groups=2 expects .* = 2", conv2d,
                   self.x, np.ones((6, 1, 3, 3)), groups=2)
        self.check(ValueError, r"matrix has 4 channels .*expects kernel.shape\[0\] = 3",
                   conv_transpose2d, self.x, np.ones((3, 2, 3, 3)))
        self.check(ValueError, r"matrix has 4 channels", conv2d_backward, np.ones((2, 6, 4, 4)),
                   self.x, np.ones((6, 3, 3, 3)))

    def test_groups(self):
        self.check(ValueError, r"groups=4 must divide the output channels, C_out = "
                   r"kernel.shape\[0\] = 6", conv2d, self.x, np.ones((6, 1, 3, 3)), groups=4)
        self.check(ValueError, r"groups=3 must divide the input channels, C_in = "
                   r"kernel.shape\[0\] = 4", conv_transpose2d, self.x, np.ones((4, 2, 3, 3)),
                   groups=3)
        for bad in (0, -1):
            self.check(ValueError, rf"groups must be an int >= 1, got {bad}", conv2d, self.x,
                       self.k, groups=bad)
        for bad in (2.0, "2", None, True):
            self.check(TypeError, rf"groups must be an int >= 1, got {re.escape(repr(bad))}",
                       conv2d, self.x, self.k, groups=bad)
        for function in (conv2d, conv_transpose2d):
            self.check(ValueError, r"groups must be 1 with a 2-D kernel .*got groups=2 with "
                       r"kernel of shape \(3, 3\)", function, self.x, np.ones((3, 3)), groups=2)
        np.testing.assert_array_equal(conv2d(self.x, self.k, groups=np.int64(2)),
                                      conv2d(self.x, self.k, groups=2))

    def test_bias(self):
        self.check(ValueError, r"bias must have shape \(6,\), one value per output channel, "
                   r"got shape \(4,\)", conv2d, self.x, self.k, groups=2, bias=np.ones(4))
        self.check(ValueError, r"bias must have shape \(6,\).*got shape \(\)", conv2d, self.x,
                   self.k, groups=2, bias=1.0)
        self.check(ValueError, r"bias must have shape \(12,\).*got shape \(6,\)",
                   conv_transpose2d, self.x, np.ones((4, 6, 3, 3)), groups=2, bias=np.ones(6))
        self.check(ValueError, r"bias must be a scalar with a 2-D kernel, got shape \(2,\)",
                   conv2d, self.x, np.ones((3, 3)), bias=[1, 2])
        self.check(TypeError, r"bias must hold numbers .*got dtype <U1", conv2d, self.x,
                   self.k, groups=2, bias=list("abcdef"))

    def test_transposed_parameters(self):
        self.check(ValueError, r"output_padding must be smaller than the stride or the dilation "
                   r"on its axis, got output_padding \(1, 1\)", conv_transpose2d, self.x,
                   np.ones((4, 2, 3, 3)), output_padding=1)
        self.check(TypeError, r"padding of a transposed convolution must be an int.*got 'same'",
                   conv_transpose2d, self.x, np.ones((4, 2, 3, 3)), padding="same")
        self.check(ValueError, r"padding \(\(9, 9\), \(9, 9\)\) crops more than", conv_transpose2d,
                   self.x, np.ones((4, 2, 3, 3)), padding=9)
        self.check(ValueError, r"method must be one of 'auto', 'loops', got 'fft'",
                   conv_transpose2d, self.x, np.ones((4, 2, 3, 3)), method="fft")
        self.check(TypeError, r"stride must be an int >= 1 .*got 1.5", conv_transpose2d, self.x,
                   np.ones((4, 2, 3, 3)), stride=1.5)
        self.check(ValueError, r"matrix must have at least 2 dimensions", conv_transpose2d,
                   np.ones(5), np.ones((3, 3)))

    def test_backward_arguments(self):
        self.check(ValueError, r"grad_output must have the shape of conv2d's result, "
                   r"\(2, 6, 4, 4\) for matrix of shape \(2, 4, 6, 6\) and kernel of shape "
                   r"\(6, 2, 3, 3\), got \(2, 6, 4, 5\)", conv2d_backward, np.ones((2, 6, 4, 5)),
                   self.x, self.k, groups=2)
        self.check(ValueError, r"grad_output must have the shape .*\(4, 4\) .*got \(6, 6\)",
                   conv2d_backward, np.ones((6, 6)), np.ones((6, 6)), np.ones((3, 3)))
        self.check(TypeError, r"grad_output must hold numbers", conv2d_backward,
                   [["a"]], np.ones((3, 3)), np.ones((3, 3)))
        self.check(ValueError, r"padding_mode must be one of", conv2d_backward,
                   np.ones((4, 4)), np.ones((6, 6)), np.ones((3, 3)), padding_mode="mirror")
        self.check(ValueError, r"method must be one of 'auto', 'loops', got 'matmul'",
                   conv2d_backward, np.ones((4, 4)), np.ones((6, 6)), np.ones((3, 3)),
                   method="matmul")
        self.check(ValueError, r"spans \(5, 5\) cells, more than the padded input",
                   conv2d_backward, np.ones((1, 1)), np.ones((4, 4)), np.ones((3, 3)),
                   dilation=2)


def run_example(name, *args):
    """``python examples/NAME ARGS`` in a new process: (exit status, stdout, stderr)."""
    env = dict(os.environ, PYTHONPATH=str(HERE))
    result = subprocess.run([sys.executable, str(HERE / "examples" / name), *args], env=env,
                            capture_output=True, text=True, timeout=300)
    return result.returncode, result.stdout, result.stderr


class TestExamples(unittest.TestCase):
    """The training examples, run small, in a new process."""

    def test_edge_detector_learns_sobel(self):
        status, out, err = run_example("train_edge_detector.py", "--size", "24", "--images", "4",
                                       "--steps", "150")
        self.assertEqual(status, 0, err)
        losses = [float(v) for v in re.findall(r"loss ([0-9.eE+-]+)", out)]
        self.assertGreater(len(losses), 2)
        self.assertLess(losses[-1], 1e-3 * losses[0])
        self.assertIn("sobel_x", out)
        self.assertRegex(out, r"largest difference from sobel_x: [0-9.eE+-]+")
        difference = float(re.search(r"largest difference from sobel_x: ([0-9.eE+-]+)",
                                     out).group(1))
        self.assertLess(difference, 0.05)

    @unittest.skipIf(sklearn is None, "scikit-learn is not installed")
    def test_digits(self):
        status, out, err = run_example("train_digits.py", "--epochs", "3", "--channels", "4")
        self.assertEqual(status, 0, err)
        accuracy = float(re.search(r"test accuracy ([0-9.]+) on", out).group(1))
        self.assertGreater(accuracy, 0.8)

    def test_digits_without_scikit_learn(self):
        # With scikit-learn hidden, the example says what it needs and stops, status 0.
        script = ("import runpy, sys; sys.modules['sklearn'] = None; sys.argv = ['x']; "
                  f"runpy.run_path({str(HERE / 'examples' / 'train_digits.py')!r}, "
                  "run_name='__main__')")
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                                env=dict(os.environ, PYTHONPATH=str(HERE)), timeout=120)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("needs scikit-learn", result.stderr)
        self.assertEqual(result.stdout, "")


if __name__ == "__main__":
    unittest.main()
