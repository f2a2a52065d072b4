"""The filter command, end to end in a subprocess."""
import concurrent.futures
import contextlib
import io
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import unittest
import warnings
from pathlib import Path
from unittest import mock

import numpy as np

from convolution import apply_filter_to_image, conv_output_shape, gaussian_kernel
from convolution.__main__ import main
from convolution.kernels import KERNELS

from .common import HERE, iio, SAMPLE_PHOTO


@unittest.skipIf(iio is None, "imageio is not installed")
class TestCommandLine(unittest.TestCase):
    """`python -m convolution`, end to end in a subprocess: results and every bad input."""

    def setUp(self):
        self.folder = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.folder)
        rng = np.random.default_rng(10)
        self.rgb = rng.integers(0, 256, size=(20, 30, 3), dtype=np.uint8)
        iio.imwrite(self.folder / "in.png", self.rgb)
        self.input = self.folder / "in.png"
        self.input_bytes = self.input.read_bytes()

    def run_cli(self, *args):
        env = dict(os.environ, PYTHONPATH=str(HERE))
        return subprocess.run([sys.executable, "-m", "convolution", *map(str, args)],
                              cwd=self.folder, env=env, capture_output=True, text=True,
                              timeout=120)

    def assert_succeeds(self, *args):
        done = self.run_cli(*args)
        self.assertEqual((done.returncode, done.stderr), (0, ""))
        return done

    def assert_fail(self, *cases):
        """Each case ``(message, *args)`` exits 2 with one line on stderr; no file is touched.

        The runs change nothing, so they run side by side, and the folder is
        compared before and after all of them: no OUTPUT and no temporary file
        appeared, and INPUT and every other file kept their bytes.
        """
        def snapshot():
            return {path.name: path.read_bytes() if path.is_file() else None
                    for path in self.folder.iterdir()}

        before = snapshot()
        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
            runs = list(pool.map(lambda case: self.run_cli(*case[1:]), cases))
        for (message, *args), done in zip(cases, runs):
            with self.subTest(args=args):
                self.assertEqual(done.returncode, 2, done.stderr)
                self.assertEqual(done.stdout, "")
                self.assertEqual(done.stderr.count("\n"), 1, done.stderr)
                self.assertTrue(done.stderr.startswith("convolution: error: "), done.stderr)
                self.assertNotIn("Traceback", done.stderr)
                self.assertRegex(done.stderr, message)
        self.assertEqual(snapshot(), before)
        self.assertEqual(self.input.read_bytes(), self.input_bytes)

    def test_filter_the_sample_photo(self):
        shutil.copy(SAMPLE_PHOTO, self.folder / "photo.jpg")
        done = self.assert_succeeds("filter", "photo.jpg", "blurred.png")
        self.assertEqual(done.stdout, "wrote blurred.png (600 x 512, 3 channels, uint8)\n")
        written = iio.imread(self.folder / "blurred.png")
        photo = iio.imread(self.folder / "photo.jpg")
        self.assertEqual((written.shape, written.dtype), (photo.shape, photo.dtype))
        np.testing.assert_array_equal(written, apply_filter_to_image(photo, "gaussian"))

    def test_options_reach_the_library(self):
        self.assert_succeeds("filter", "in.png", "out.png", "--kernel", "gaussian", "--size",
                             "3x7", "--sigma", "1.5", "--stride", "2x3", "--dilation", "2",
                             "--padding", "full", "--padding-mode", "constant",
                             "--fill-value", "255")
        expected = apply_filter_to_image(self.rgb, gaussian_kernel((3, 7), 1.5), stride=(2, 3),
                                         dilation=2, padding="full", padding_mode="constant",
                                         fill_value=255)
        written = iio.imread(self.folder / "out.png")
        self.assertEqual(written.shape[:2], conv_output_shape((20, 30), (3, 7), (2, 3), 2, "full"))
        np.testing.assert_array_equal(written, expected)
        self.assert_succeeds("filter", "in.png", "valid.png", "--kernel", "box", "--padding",
                             "valid", "--size", "4")
        self.assertEqual(iio.imread(self.folder / "valid.png").shape, (17, 27, 3))
        self.assert_succeeds("filter", "in.png", "pad.png", "--kernel", "box", "--padding",
                             "1x0", "--size", "3")
        self.assertEqual(iio.imread(self.folder / "pad.png").shape, (20, 28, 3))

    def test_kernel_files(self):
        kernel = np.array([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]])
        np.save(self.folder / "k.npy", kernel)
        (self.folder / "k.txt").write_text("1 -2 0.5\n0 3 -1\n")
        expected = apply_filter_to_image(self.rgb, kernel)
        for name in ("k.npy", "k.txt"):
            with self.subTest(kernel=name):
                self.assert_succeeds("filter", "in.png", f"{name}.png", "--kernel", name)
                np.testing.assert_array_equal(iio.imread(self.folder / f"{name}.png"), expected)

    def test_dtypes_and_channels_are_kept(self):
        rgba = np.dstack([self.rgb, np.arange(30, dtype=np.uint8)[None, :].repeat(20, 0) * 8])
        grey16 = self.rgb[..., 0].astype(np.uint16) * 257
        iio.imwrite(self.folder / "rgba.png", rgba)
        iio.imwrite(self.folder / "grey16.png", grey16)
        with warnings.catch_warnings():   # imageio's TIFF writer warns about its future
            warnings.simplefilter("ignore", DeprecationWarning)
            iio.imwrite(self.folder / "float.tif", self.rgb / np.float32(255))
        cases = [("rgba.png", "rgba_out.png", rgba, "4 channels, uint8"),
                 ("grey16.png", "grey16_out.png", grey16, "1 channel, uint16"),
                 ("float.tif", "float_out.tif", self.rgb / np.float32(255), "3 channels, float32")]
        for source, target, image, description in cases:
            with self.subTest(image=source):
                done = self.assert_succeeds("filter", source, target, "--kernel", "sharpen")
                self.assertEqual(done.stdout,
                                 f"wrote {target} ({image.shape[0]} x {image.shape[1]}, "
                                 f"{description})\n")
                written = iio.imread(self.folder / target)
                self.assertEqual(written.dtype, image.dtype)
                np.testing.assert_array_equal(written, apply_filter_to_image(image, "sharpen"))

    def test_one_bit_images_become_8_bit(self):
        iio.imwrite(self.folder / "bits.png", self.rgb[..., 0] > 127)
        self.assert_succeeds("filter", "bits.png", "out.png", "--kernel", "identity")
        written = iio.imread(self.folder / "out.png")
        self.assertEqual(written.dtype, np.uint8)
        np.testing.assert_array_equal(written, np.where(self.rgb[..., 0] > 127, 255, 0))

    def test_force_overwrites_and_keeps_permissions(self):
        target = self.folder / "out.png"
        target.write_bytes(b"old")
        target.chmod(0o640)
        self.assert_fail((r"OUTPUT 'out.png' exists; pass --force to overwrite it",
                          "filter", "in.png", "out.png"))
        self.assert_succeeds("filter", "in.png", "out.png", "--force")
        self.assertEqual(stat.S_IMODE(target.stat().st_mode), 0o640)
        np.testing.assert_array_equal(iio.imread(target),
                                      apply_filter_to_image(self.rgb, "gaussian"))
        self.assertEqual(sorted(p.name for p in self.folder.iterdir()), ["in.png", "out.png"])

    def test_new_files_get_the_umask_permissions(self):
        self.assert_succeeds("filter", "in.png", "out.png")   # not mkstemp's 0o600
        umask = os.umask(0)
        os.umask(umask)
        self.assertEqual(stat.S_IMODE((self.folder / "out.png").stat().st_mode),
                         0o666 & ~umask)

    def test_bad_paths(self):
        (self.folder / "sub").mkdir()
        (self.folder / "link.png").symlink_to("in.png")
        os.link(self.folder / "in.png", self.folder / "hard.png")
        (self.folder / "text.png").write_text("not an image\n")
        same = r"OUTPUT '.*' is the same file as INPUT 'in.png'; write the result to another file"
        self.assert_fail(
            (r"INPUT 'nothere.png' does not exist", "filter", "nothere.png", "out.png"),
            (r"INPUT 'sub' is a folder, not an image file", "filter", "sub", "out.png"),
            (r"cannot read INPUT 'text.png' as an image", "filter", "text.png", "out.png"),
            (r"cannot write OUTPUT 'nofolder/out.png': folder .*nofolder' does not exist",
             "filter", "in.png", "nofolder/out.png"),
            (r"OUTPUT 'sub' is a folder; give a file name", "filter", "in.png", "sub"),
            # The same file under other names: the path itself, relative, absolute, through
            # '..', a symbolic link and a hard link; --force does not change that.
            *[(same, "filter", "in.png", spelling, *force)
              for spelling in ("in.png", "./in.png", "sub/../in.png", self.folder / "in.png",
                               "link.png", "hard.png")
              for force in ((), ("--force",))],
            (r"OUTPUT 'link.png' is the same file as INPUT 'hard.png'",
             "filter", "hard.png", "link.png", "--force"))

    def test_bad_formats(self):
        iio.imwrite(self.folder / "rgba.png", np.dstack([self.rgb, self.rgb[..., :1]]))
        iio.imwrite(self.folder / "rgb16.tif", self.rgb.astype(np.uint16) * 257)
        iio.imwrite(self.folder / "anim.gif", np.stack([self.rgb, 255 - self.rgb]))
        self.assert_fail(
            (r"OUTPUT 'out' has no extension", "filter", "in.png", "out"),
            (r"cannot write OUTPUT 'out.xyz': imageio knows no image format '.xyz'",
             "filter", "in.png", "out.xyz"),
            # These fail inside imageio's writer, after the temporary file was made.
            (r"cannot write OUTPUT 'out.jpg': imageio could not save a uint16 image with 3 "
             r"channels as .jpg .*; .tif holds every dtype", "filter", "rgb16.tif", "out.jpg"),
            (r"could not save a uint8 image with 4 channels as .jpg",
             "filter", "rgba.png", "out.jpg"),
            (r"INPUT 'anim.gif' holds 2 frames", "filter", "anim.gif", "out.png"))

    def test_bad_kernels_and_parameters(self):
        (self.folder / "ragged.txt").write_text("1 2\n3\n")
        (self.folder / "words.txt").write_text("a b\nc d\n")
        (self.folder / "empty.txt").write_text("")
        (self.folder / "nan.txt").write_text("1 nan\n1 1\n")
        np.save(self.folder / "flat.npy", np.ones(3))
        np.save(self.folder / "k.npy", np.ones((2, 2)))
        (self.folder / "fake.npy").write_bytes(b"1 2\n3 4\n")
        (self.folder / "cut.npy").write_bytes((self.folder / "k.npy").read_bytes()[:40])
        cases = [
            (r"unknown kernel 'blur': not a kernel name \(identity, box, gaussian, .*\) nor a "
             r"file", "--kernel", "blur"),
            (r"cannot read kernel file 'ragged.txt'", "--kernel", "ragged.txt"),
            (r"cannot read kernel file 'words.txt'", "--kernel", "words.txt"),
            (r"kernel file 'empty.txt' must hold a 2-D array of finite numbers",
             "--kernel", "empty.txt"),
            (r"kernel file 'nan.txt' must hold a 2-D array", "--kernel", "nan.txt"),
            (r"kernel file 'flat.npy' must hold a 2-D array .*got shape \(3,\)",
             "--kernel", "flat.npy"),
            (r"kernel file 'fake.npy' is not a NumPy .npy file", "--kernel", "fake.npy"),
            (r"cannot read kernel file 'cut.npy'", "--kernel", "cut.npy"),
            (r"--size applies to library kernels, not to the kernel file 'k.npy'",
             "--kernel", "k.npy", "--size", "3"),
            (r"kernel 'sharpen' takes no parameters, got size=5", "--kernel", "sharpen",
             "--size", "5"),
            (r"kernel 'box' takes only size, got sigma=2.0", "--kernel", "box", "--sigma", "2"),
            (r"size must be an int >= 1 or a pair of them, got 0", "--size", "0"),
            (r"sigma must be None, a positive finite number .*got -1.0", "--sigma", "-1"),
            (r"sigma must be .*got nan", "--sigma", "nan"),
            (r"stride must be an int >= 1 or a pair of them, got \(0, 2\)", "--stride", "0x2"),
            (r"dilation must be an int >= 1 .*got -1", "--dilation", "-1"),
            (r"padding must be non-negative, got -1", "--padding", "-1"),
            (r"fill_value is used only with padding_mode='constant'", "--fill-value", "3"),
            (r"spans \(101, 101\) cells, more than the padded input \(20, 30\) holds",
             "--padding", "valid", "--dilation", "25"),
            # argparse's own errors, on one line too.
            (r"argument --size: expected N or HxW with whole numbers, got 'big' \(see "
             r"'convolution filter --help'\)", "--size", "big"),
            (r"argument --sigma: expected S or SHxSW with numbers, got '1x2x3'", "--sigma",
             "1x2x3"),
            (r"argument --padding: expected same, valid, full, N, HxW or TOPxBOTTOMxLEFTxRIGHT, "
             "got 'half'",
             "--padding", "half"),
            (r"argument --padding-mode: invalid choice: 'mirror'", "--padding-mode", "mirror"),
            (r"argument --fill-value: expected a number, got 'white'", "--fill-value", "white"),
            (r"unrecognized arguments: --colour", "--colour"),
        ]
        self.assert_fail(*[(message, "filter", "in.png", "out.png", *options)
                           for message, *options in cases])

    def test_usage_errors(self):
        self.assert_fail(
            (r"the following arguments are required: COMMAND \(see 'convolution --help'\)",),
            (r"argument COMMAND: invalid choice: 'blur'", "blur", "in.png"),
            (r"the following arguments are required: INPUT, OUTPUT", "filter"))

    def test_help(self):
        done = self.assert_succeeds("--help")
        self.assertIn("filter", done.stdout)
        self.assertIn("examples:", done.stdout)
        done = self.assert_succeeds("filter", "--help")
        for name in KERNELS:
            self.assertIn(f"\n  {name} ", done.stdout)
        for option in ("--kernel", "--size", "--sigma", "--stride", "--dilation", "--padding",
                       "--padding-mode", "--fill-value", "--filter-alpha", "--force"):
            self.assertIn(option, done.stdout)
        self.assertIn("convolution filter photo.jpg blurred.jpg", done.stdout)

    def test_interrupted_write_leaves_nothing_behind(self):
        # In-process, to interrupt at the worst moment: inside imageio's write.
        def interrupt(path, *args, **kwargs):
            Path(path).write_bytes(b"half an image")
            raise KeyboardInterrupt
        stderr = io.StringIO()
        with mock.patch("imageio.v3.imwrite", side_effect=interrupt), \
                contextlib.redirect_stderr(stderr):
            status = main(["filter", str(self.input), str(self.folder / "out.png")])
        self.assertEqual(status, 130)
        self.assertEqual(stderr.getvalue(), "convolution: interrupted\n")
        self.assertEqual([p.name for p in self.folder.iterdir()], ["in.png"])
        self.assertEqual(self.input.read_bytes(), self.input_bytes)

    def test_without_imageio_one_line_says_what_to_install(self):
        stderr = io.StringIO()
        with mock.patch.dict(sys.modules, {"imageio": None, "imageio.v3": None}), \
                contextlib.redirect_stderr(stderr):
            status = main(["filter", str(self.input), str(self.folder / "out.png")])
        self.assertEqual(status, 2)
        self.assertEqual(stderr.getvalue(), "convolution: error: reading and writing images "
                                            "needs imageio: pip install imageio\n")
        self.assertEqual([p.name for p in self.folder.iterdir()], ["in.png"])
