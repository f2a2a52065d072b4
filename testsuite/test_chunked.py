"""conv2d and apply_filter_to_image on Dask arrays: lazy, chunk by chunk, equal to in memory.

The witness is the in-memory function on the whole array (itself tested
against the reference loops, SciPy, PyTorch and OpenCV in the other modules):
integers must match exactly, floats to rounding, images of integers exactly
for a given method (see `TestImages`). Every result is also checked block by
block against the chunks it declares.
"""
import itertools
import os
import re
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

import numpy as np

from convolution import PADDING_MODES, apply_filter_to_image, chunked, conv2d, driver, get_kernel

from .common import HERE, assert_close, optional, pretend_cores, term_scale

dask = optional("dask")
da = optional("dask.array")
distributed = optional("distributed")

# Chunkings of a 13 x 17 input: regular, ragged, and smaller than every kernel below.
CHUNKINGS = ((5, 6), ((3, 1, 5, 4), (9, 8)), (1, 2), (13, 17))
PADDINGS = ("same", "full", ((0, 3), (4, 1)), 20, "valid")


def computed(test, result):
    """``result`` computed, after checking that each block has the shape ``.chunks`` declares."""
    blocks = result.to_delayed()
    values = iter(dask.compute(*blocks.ravel(), scheduler="sync"))
    computed_blocks = np.empty(blocks.shape, dtype=object)
    for index in np.ndindex(blocks.shape):
        block = computed_blocks[index] = next(values)
        test.assertEqual(block.shape, tuple(c[i] for c, i in zip(result.chunks, index)), index)
    return np.block(computed_blocks.tolist())


def check(test, func, array, chunks, kernel, **params):
    """``func`` on ``array`` cut into ``chunks`` against ``func`` on ``array``; the lazy result."""
    expected = func(array, kernel, **params)
    result = func(da.from_array(array, chunks=chunks), kernel, **params)
    test.assertIsInstance(result, da.Array)
    test.assertEqual((result.shape, result.dtype), (expected.shape, expected.dtype))
    actual = computed(test, result)
    weights = get_kernel(kernel) if isinstance(kernel, str) else np.asarray(kernel)
    assert_close(test, actual, expected, term_scale(array, weights, params.get("fill_value", 0)))
    return result


@unittest.skipIf(da is None, "dask is not installed")
class TestConv2d(unittest.TestCase):
    """conv2d on a Dask array equals conv2d on the NumPy array."""

    def test_every_mode_padding_and_chunking(self):
        rng = np.random.default_rng(11)
        matrix = rng.integers(-50, 50, (13, 17))
        kernel = rng.integers(-5, 6, (3, 4))
        for mode, padding, chunks in itertools.product(PADDING_MODES, PADDINGS, CHUNKINGS):
            fill = -7 if mode == "constant" else 0
            with self.subTest(mode=mode, padding=padding, chunks=chunks):
                check(self, conv2d, matrix, chunks, kernel, stride=(2, 1), dilation=(1, 2),
                      padding=padding, padding_mode=mode, fill_value=fill)

    def test_random_cases(self):
        # Strides and dilations per axis, 'same' with stride and even kernels, padding wider
        # than the input, batch axes, kernels larger than the chunks, flipped kernels.
        rng = np.random.default_rng(12)
        checked = 0
        while checked < 60:
            kh, kw = (int(v) for v in rng.integers(1, 6, 2))
            dilation = tuple(int(v) for v in rng.integers(1, 3, 2))
            stride = tuple(int(v) for v in rng.integers(1, 5, 2))
            padding = ("valid", "same", "full", tuple(int(v) for v in rng.integers(0, 4, 2)),
                       tuple(tuple(int(v) for v in p) for p in rng.integers(0, 30, (2, 2))),
                       )[rng.integers(5)]
            mode = list(PADDING_MODES)[rng.integers(len(PADDING_MODES))]
            batch = tuple(int(v) for v in rng.integers(1, 4, rng.integers(0, 3)))
            shape = batch + tuple(int(v) for v in rng.integers(1, 25, 2))
            matrix = rng.integers(-99, 99, shape).astype(rng.choice([np.int8, np.int32, np.uint8]))
            kernel = rng.integers(-5, 6, (kh, kw))
            params = dict(stride=stride, dilation=dilation, padding=padding, padding_mode=mode,
                          fill_value=int(rng.integers(-9, 9)) if mode == "constant" else 0,
                          flip=bool(rng.integers(2)))
            try:
                conv2d(np.zeros(shape), kernel, **params)
            except ValueError:
                continue    # the kernel does not fit
            chunks = tuple(int(rng.integers(1, n + 1)) for n in shape)
            with self.subTest(shape=shape, chunks=chunks, kernel=kernel.shape, **params):
                check(self, conv2d, matrix, chunks, kernel, **params)
            checked += 1

    def test_floats_to_rounding(self):
        rng = np.random.default_rng(13)
        for dtype, mode, padding in itertools.product((np.float32, np.float64),
                                                      ("reflect", "constant"), ("same", 4)):
            matrix = rng.standard_normal((2, 40, 33)).astype(dtype)
            kernel = rng.standard_normal((5, 4)).astype(dtype)
            with self.subTest(dtype=dtype, mode=mode, padding=padding):
                check(self, conv2d, matrix, (1, 9, 7), kernel, stride=(1, 2), padding=padding,
                      padding_mode=mode, fill_value=0.5 if mode == "constant" else 0)

    def test_floats_to_the_bit_on_the_tap_paths(self):
        # 'direct' and 'polyphase' add tap by tap, in one order whatever the chunk: the same
        # bits (docs/large-images.md). The paths through BLAS agree to rounding only.
        rng = np.random.default_rng(14)
        matrix = rng.standard_normal((13, 17))
        kernel = np.outer(rng.standard_normal(3), rng.standard_normal(4))     # rank 1
        for method, padding, chunks, stride in itertools.product(
                ("direct", "polyphase", "separable", "banded"), ("full", "same", 4),
                (1, (5, 6), (3, 17)), (1, (2, 3))):
            with self.subTest(method=method, padding=padding, chunks=chunks, stride=stride):
                params = dict(padding=padding, stride=stride, padding_mode="reflect",
                              method=method)
                expected = conv2d(matrix, kernel, **params)
                actual = computed(self, conv2d(da.from_array(matrix, chunks=chunks), kernel,
                                               **params))
                if method in ("direct", "polyphase"):
                    np.testing.assert_array_equal(actual, expected)
                else:
                    assert_close(self, actual, expected, term_scale(matrix, kernel, 0))

    def test_dtypes_as_in_memory(self):
        # Integers and bools accumulate in int64; float32 stays float32.
        for dtype in (np.bool_, np.uint8, np.int16, np.float32):
            kernel = np.ones((2, 2), np.int8)
            result = conv2d(da.ones((6, 6), dtype=dtype, chunks=3), kernel)
            self.assertEqual(result.dtype, conv2d(np.ones((6, 6), dtype), kernel).dtype)
            self.assertEqual(result.compute().dtype, result.dtype)

    def test_result_chunks(self):
        matrix = da.zeros((3, 12, 12), dtype=int, chunks=(1, 4, 6))
        same = conv2d(matrix, np.ones((3, 3), int), padding="same")
        self.assertEqual(same.chunks, matrix.chunks)    # 'same' at stride 1: the input's chunks
        strided = conv2d(matrix, np.ones((3, 3), int), stride=(2, 3), padding="same")
        self.assertEqual(strided.chunks, ((1, 1, 1), (2, 2, 2), (2, 2)))
        # A kernel wider than the chunks: they merge until each holds the halo.
        merged = conv2d(da.zeros((12, 12), dtype=int, chunks=1), np.ones((5, 5), int),
                        dilation=2, padding="same")
        self.assertEqual(merged.chunks, ((1, 4, 4, 3),) * 2)

    def test_fill_outside_the_input_dtype(self):
        # conv2d adds a fill of 1000 to int8 data in int64, in memory and per chunk; had the
        # chunks been padded in int8, it would have wrapped round to -24.
        matrix = np.random.default_rng(18).integers(-128, 128, (20, 20)).astype(np.int8)
        params = dict(padding=2, padding_mode="constant")
        check(self, conv2d, matrix, 5, np.ones((3, 3), int), fill_value=1000, **params)
        self.assertFalse(np.array_equal(conv2d(matrix, np.ones((3, 3), int), fill_value=1000,
                                               **params),
                                        conv2d(matrix, np.ones((3, 3), int), fill_value=-24,
                                               **params)))

    def test_halos_are_copies(self):
        # A view would keep its whole input chunk in memory until the output chunk runs.
        chunk = np.arange(30).reshape(5, 6)
        for region, repeats in [((slice(0, 2), slice(None)), []),
                                ((slice(4, 1, -1), slice(5, 6)), []),
                                ((slice(0, 1), slice(0, 6)), [(0, 3)])]:
            piece = chunked._gather(chunk, region, repeats)
            self.assertFalse(np.shares_memory(piece, chunk))
            expected = np.repeat(chunk[region], 3, axis=0) if repeats else chunk[region]
            np.testing.assert_array_equal(piece, expected)

    def test_one_output_cell(self):
        rng = np.random.default_rng(14)
        matrix, kernel = rng.integers(0, 9, (5, 6)), rng.integers(0, 9, (5, 6))
        for chunks in ((1, 1), (2, 3), (5, 6)):
            result = check(self, conv2d, matrix, chunks, kernel)
            self.assertEqual(result.chunks, ((1,), (1,)))
        # Fill only: the one window lies in the padding above the input.
        check(self, conv2d, matrix[:1, :1], 1, kernel[:1, :1], stride=9, padding=((3, 0), (0, 0)),
              padding_mode="constant", fill_value=4)

    def test_lazy(self):
        reads = []

        def source(block_info=None):
            reads.append(block_info[None]["chunk-location"])
            return np.ones([stop - start for start, stop in block_info[None]["array-location"]])

        matrix = da.map_blocks(source, chunks=((4, 4), (5, 5)), dtype=float,
                               meta=np.empty((0, 0)))
        result = conv2d(matrix, np.ones((3, 3)), padding="same", padding_mode="circular")
        image = apply_filter_to_image(matrix, "gaussian", padding_mode="symmetric")
        self.assertIsInstance(result, da.Array)
        self.assertIsInstance(image, da.Array)
        self.assertEqual(reads, [])
        self.assertEqual(result.compute(scheduler="sync").sum(), 9 * 80)
        self.assertEqual(sorted(set(reads)), [(0, 0), (0, 1), (1, 0), (1, 1)])
        np.testing.assert_allclose(image.compute(scheduler="sync"), 1)

    def test_errors_at_call_time_as_in_memory(self):
        lazy, eager = da.zeros((2, 6, 7), chunks=3), np.zeros((2, 6, 7))
        for kernel, params in [(np.ones((2, 2)), dict(stride=0)),
                               (np.ones((2, 2)), dict(padding="half")),
                               (np.ones((2, 2)), dict(padding_mode="wrap")),
                               (np.ones((2, 2)), dict(fill_value=1)),
                               (np.ones((2, 2)), dict(method="fastest")),
                               (np.ones((9, 2)), {}),
                               ([[1, 2], [3]], {}),
                               (np.ones(3), {}),
                               (np.ones((4, 3, 2, 2)), {}),            # C_in is 2, not 3
                               (np.ones((4, 2, 2, 2)), dict(groups=2)),
                               (np.ones((4, 2, 2, 2)), dict(bias=np.ones(3)))]:
            with self.subTest(params=params):
                with self.assertRaises((TypeError, ValueError)) as in_memory:
                    conv2d(eager, kernel, **params)
                with self.assertRaises(type(in_memory.exception)) as chunked_error:
                    conv2d(lazy, kernel, **params)
                self.assertEqual(str(chunked_error.exception), str(in_memory.exception))
        for array, kernel in ((da.zeros(5), np.ones((1, 1))), (da.zeros((0, 4)), np.ones((1, 1))),
                              (da.zeros((6, 7)), np.ones((4, 2, 1, 1)))):
            with self.subTest(shape=array.shape, kernel=kernel.shape):
                with self.assertRaises(ValueError) as in_memory:
                    conv2d(np.zeros(array.shape), kernel)
                with self.assertRaises(ValueError) as chunked_error:
                    conv2d(array, kernel)
                self.assertEqual(str(chunked_error.exception), str(in_memory.exception))
                self.assertIn(str(array.shape), str(in_memory.exception))
        unknown = lazy[0][lazy[0, :, 0] == 0]     # rows chosen by value: sizes unknown
        with self.assertRaisesRegex(ValueError, r"matrix must have known chunk sizes, got a "
                                                r"Dask array of shape \(nan, 7\)"):
            conv2d(unknown, np.ones((2, 2)))
        with self.assertRaisesRegex(ValueError, "image must have shape .* got shape "
                                                r"\(6, 7, 2, 2\)"):
            apply_filter_to_image(da.zeros((6, 7, 2, 2)), "box")

    def test_each_chunk_on_one_thread(self):
        seen = []

        def record(block, kernel, **params):
            seen.append(driver.threads())
            return conv2d(block, kernel, **params)

        with pretend_cores(8):      # whatever this machine has: the driver may use 8 threads
            matrix = da.ones((40, 40), chunks=10)
            result = chunked.convolve(record, matrix, np.ones((3, 3)), 1, 1, "same", "zeros", 0)
            self.assertEqual(seen, [8])      # the one-cell check at call time, outside Dask
            seen.clear()
            result.compute(scheduler="threads")
            self.assertEqual(seen, [1] * 16)
            self.assertEqual(driver.threads(), 8)

    def test_layers(self):
        # 4-D kernels (C_out, C_in / groups, kh, kw) with bias and groups: the input channels
        # are made one chunk, the output has C_out in one chunk, the batch keeps its chunks.
        rng = np.random.default_rng(15)
        matrix = rng.integers(-9, 9, (3, 4, 20, 18))
        for kernel, params in [(rng.integers(-3, 4, (6, 2, 3, 2)),
                                dict(stride=(2, 1), padding="same", padding_mode="reflect",
                                     groups=2, bias=np.arange(6))),
                               (rng.integers(-3, 4, (5, 4, 2, 3)),
                                dict(dilation=(2, 1), padding="full", padding_mode="circular")),
                               (rng.integers(-3, 4, (4, 1, 3, 3)),
                                dict(padding=((0, 3), (2, 1)), groups=4))]:
            for array, chunks in ((matrix, (2, 1, 7, 5)), (matrix[0], (3, 6, 18))):
                with self.subTest(shape=array.shape, kernel=kernel.shape, **params):
                    result = check(self, conv2d, array, chunks, kernel, **params)
                    self.assertEqual(result.chunks[-3], (kernel.shape[0],))
                    self.assertEqual(result.chunks[:-3], ((2, 1),) if array.ndim == 4 else ())
        floats = rng.standard_normal((2, 3, 30, 25)).astype(np.float32)
        check(self, conv2d, floats, (1, 1, 8, 8), rng.standard_normal((4, 3, 3, 3)).astype(
            np.float32), padding="same", bias=np.ones(4, np.float32))


@unittest.skipIf(da is None, "dask is not installed")
class TestImages(unittest.TestCase):
    """apply_filter_to_image on a Dask image equals it on the NumPy image.

    Exactly with a given ``method``. With 'auto' each chunk may take another
    path than the whole image (the choice depends on the size and on the
    threads), whose float sums differ in the last bits, so that a value
    within rounding of a half may round the other way: one grey level.
    """

    def setUp(self):
        self.rng = np.random.default_rng(16)

    def test_rgb_uint8(self):
        image = self.rng.integers(0, 256, (37, 45, 3), dtype=np.uint8)
        for kernel, params in [("gaussian", {}), ("sharpen", {}),    # sharpen saturates
                               ("box", dict(stride=2, padding_mode="circular")),
                               (self.rng.standard_normal((4, 3)), dict(padding="full"))]:
            for chunks in ((10, 9, 1), (3, 45, 2), (37, 45, 3)):
                with self.subTest(kernel=kernel, chunks=chunks, **params):
                    result = check(self, apply_filter_to_image, image, chunks, kernel,
                                   method="direct", **params)
                    self.assertEqual(result.chunks[2], (3,))    # channels never split

    def test_rgba_and_grey(self):
        rgba = self.rng.integers(0, 256, (24, 31, 4), dtype=np.uint8)
        for filter_alpha, mode, stride in itertools.product((False, True), PADDING_MODES, (1, 3)):
            fill = 200 if mode == "constant" else 0
            with self.subTest(filter_alpha=filter_alpha, mode=mode, stride=stride):
                check(self, apply_filter_to_image, rgba, (7, 8, 3), "gaussian", stride=stride,
                      padding_mode=mode, fill_value=fill, filter_alpha=filter_alpha,
                      method="direct")
        grey = self.rng.integers(0, 2 ** 16, (30, 20), dtype=np.uint16)
        check(self, apply_filter_to_image, grey, (4, 6), "laplacian", dilation=(2, 1),
              method="direct")
        floats = self.rng.random((30, 20, 2)).astype(np.float32)
        check(self, apply_filter_to_image, floats, 8, "emboss")

    def test_auto_within_one_level(self):
        image = self.rng.integers(0, 256, (300, 200, 3), dtype=np.uint8)
        for kernel in ("gaussian", self.rng.standard_normal((9, 9))):
            with self.subTest(kernel=kernel if isinstance(kernel, str) else kernel.shape):
                result = apply_filter_to_image(da.from_array(image, chunks=(64, 50, 3)), kernel)
                expected = apply_filter_to_image(image, kernel)
                difference = np.abs(computed(self, result).astype(int) - expected)
                self.assertLessEqual(difference.max(), 1)
                self.assertLess(np.count_nonzero(difference), difference.size / 1000)

    def test_named_kernels_take_their_parameters(self):
        image = self.rng.integers(0, 256, (20, 17, 3), dtype=np.uint8)
        result = apply_filter_to_image(da.from_array(image, chunks=(8, 9, 3)), "gaussian",
                                       size=(5, 3), sigma=2, method="direct")
        expected = apply_filter_to_image(image, get_kernel("gaussian", size=(5, 3), sigma=2),
                                         method="direct")
        np.testing.assert_array_equal(computed(self, result), expected)

    def test_a_kernel_of_zeros_on_transparency(self):
        rgba = self.rng.integers(0, 256, (12, 10, 4), dtype=np.uint8)
        for filter_alpha in (False, True):
            with self.subTest(filter_alpha=filter_alpha):
                check(self, apply_filter_to_image, rgba, (5, 4, 4), np.zeros((3, 3)),
                      filter_alpha=filter_alpha)

    def test_fill_the_dtype_cannot_hold(self):
        # Refused at call time, as in memory.
        image = da.zeros((20, 20), dtype=np.uint8, chunks=5)
        with self.assertRaisesRegex(ValueError, "fill_value must be a whole number from 0 to "
                                                "255 for an image of dtype uint8, got 300"):
            apply_filter_to_image(image, "box", padding_mode="constant", fill_value=300)


@unittest.skipIf(da is None or distributed is None, "dask.distributed is not installed")
class TestLocalCluster(unittest.TestCase):
    """The same results from two worker processes of a real scheduler."""

    def test_two_worker_processes(self):
        rng = np.random.default_rng(17)
        matrix = rng.integers(-99, 99, (2, 64, 48))
        image = rng.integers(0, 256, (64, 48, 3), dtype=np.uint8)
        with tempfile.TemporaryDirectory() as scratch, \
                dask.config.set({"temporary-directory": scratch}), \
                distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                         dashboard_address=None) as cluster, \
                distributed.Client(cluster) as client:
            lazy = conv2d(da.from_array(matrix, chunks=(1, 16, 16)), np.arange(9).reshape(3, 3),
                          stride=(1, 2), padding="same", padding_mode="reflect")
            picture = apply_filter_to_image(da.from_array(image, chunks=(20, 20, 1)), "gaussian",
                                            method="direct")
            result, filtered = client.compute([lazy, picture], sync=True)
            workers = client.run(os.getpid)
        np.testing.assert_array_equal(result, conv2d(matrix, np.arange(9).reshape(3, 3),
                                                     stride=(1, 2), padding="same",
                                                     padding_mode="reflect"))
        np.testing.assert_array_equal(filtered, apply_filter_to_image(image, "gaussian",
                                                                      method="direct"))
        self.assertEqual(len(set(workers.values()) - {os.getpid()}), 2)


class TestImportCost(unittest.TestCase):

    def test_numpy_callers_never_import_dask(self):
        code = ("import sys, numpy as np\n"
                "from convolution import conv2d, apply_filter_to_image\n"
                "conv2d(np.ones((5, 5)), np.ones((2, 2)))\n"
                "apply_filter_to_image(np.ones((5, 5, 3), np.uint8), 'gaussian')\n"
                "print(sorted({m.split('.')[0] for m in sys.modules} & {'dask', 'distributed'}))")
        result = subprocess.run([sys.executable, "-c", code], cwd=HERE, capture_output=True,
                                text=True, timeout=120)
        self.assertEqual(result.stdout, "[]\n", result.stderr)


@unittest.skipIf(da is None or distributed is None, "dask.distributed is not installed")
class TestLargeImageExample(unittest.TestCase):
    """examples/large_image.py, small: its output is right and nothing else is left behind."""

    def test_small_run(self):
        with tempfile.TemporaryDirectory() as work, tempfile.TemporaryDirectory() as tmp:
            output = Path(work) / "blurred.npy"
            env = dict(os.environ, TMPDIR=tmp, PYTHONPATH=str(HERE))
            result = subprocess.run(
                [sys.executable, str(HERE / "examples" / "large_image.py"), "--size", "1000x900",
                 "--chunk", "256", "--memory-limit", "300MB", "--output", str(output)],
                cwd=work, env=env, capture_output=True, text=True, timeout=300)
            self.assertEqual(result.returncode, 0, result.stderr)
            self.assertRegex(result.stdout, r"peak worker memory")
            self.assertEqual(os.listdir(work), ["blurred.npy"])
            self.assertEqual(os.listdir(tmp), [])
            sys.path.insert(0, str(HERE / "examples"))
            try:
                import large_image
            finally:
                sys.path.remove(str(HERE / "examples"))
            rows, cols = np.mgrid[:1000, :900]
            expected = apply_filter_to_image(large_image.picture(rows, cols), large_image.KERNEL)
            np.testing.assert_allclose(np.load(output), expected, rtol=0, atol=1e-5)


@unittest.skipIf(da is None, "dask is not installed")
class TestDocsPage(unittest.TestCase):
    """The Python blocks of docs/large-images.md run (its ``diff`` block is not Python)."""

    def test_examples_run(self):
        page = (HERE / "docs" / "large-images.md").read_text()
        blocks = re.findall(r"```python\n(.*?)```", page, flags=re.DOTALL)
        self.assertTrue(blocks)
        for block in blocks:
            exec(compile(block, "docs/large-images.md", "exec"), {})
