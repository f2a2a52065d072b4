"""The filter command, end to end in a subprocess: results, bad input, interruptions, precision."""
import argparse
import concurrent.futures
import contextlib
import importlib.util
import io
import re
import os
import shutil
import signal
import stat
import struct
import subprocess
import sys
import tempfile
import time
import unittest
import warnings
import zlib
from pathlib import Path
from unittest import mock

import numpy as np

import convolution
from convolution import apply_filter_to_image, conv_output_shape, gaussian_kernel, cli
from convolution.cli import commands, options
from convolution.cli.files import STOP_SIGNALS
from convolution.images.kernels import KERNELS
from convolution.shapes import PADDING_STRINGS

from .common import (CHILD_SIGNALS, cv2, forced_threads, HERE, iio, run_on_a_terminal,
                     SAMPLE_PHOTO, terminal_signals)


def png_bytes(image):
    """A PNG file holding ``image`` (uint8 or uint16; 1 to 4 channels), made from the spec.

    An encoder of our own, so that tests can make 16-bit colour PNGs (which
    imageio cannot write) and inputs without imageio: the signature, an IHDR
    chunk (width, height, bit depth, colour type, then compression, filter and
    interlace methods 0), one IDAT chunk of zlib-compressed rows, each led by
    filter type 0 (none), big-endian samples, and an IEND chunk.
    """
    image = np.asarray(image)
    channels = 1 if image.ndim == 2 else image.shape[2]
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    height, width = image.shape[:2]
    rows = image.astype(image.dtype.newbyteorder(">")).reshape(height, -1).view(np.uint8)
    raw = np.hstack([np.zeros((height, 1), np.uint8), rows]).tobytes()

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))

    header = struct.pack(">IIBBBBB", width, height, 8 * image.dtype.itemsize, colour_type,
                         0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 1))
            + chunk(b"IEND", b""))


def run_in_process(*args):
    """``main(args)`` in this process: (exit status, stdout, stderr)."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        status = cli.main([str(arg) for arg in args])
    return status, stdout.getvalue(), stderr.getvalue()


class CommandLineTest(unittest.TestCase):
    """A folder with in.png (written by `png_bytes`, so without imageio) and the ways to run."""

    def setUp(self):
        self.folder = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.folder)
        signals = terminal_signals()       # whatever signals the suite inherited ignored
        signals.__enter__()
        self.addCleanup(signals.__exit__, None, None, None)
        rng = np.random.default_rng(10)
        self.rgb = rng.integers(0, 256, size=(20, 30, 3), dtype=np.uint8)
        self.input = self.folder / "in.png"
        self.input.write_bytes(png_bytes(self.rgb))
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

    def succeeds_here(self, *args):
        """``main(args)`` in this process, run from the folder (faster than a new process)."""
        here = os.getcwd()
        os.chdir(self.folder)
        try:
            status, stdout, stderr = run_in_process(*args)
        finally:
            os.chdir(here)
        self.assertEqual((status, stderr), (0, ""))
        return stdout

    def snapshot(self):
        return {path.name: path.read_bytes() if path.is_file() else None
                for path in self.folder.iterdir()}

    def assert_fail(self, *cases):
        """Each case ``(message, *args)`` exits 2 with one line on stderr; no file is touched.

        The runs change nothing, so they run side by side, and the folder is
        compared before and after all of them: no OUTPUT and no temporary file
        appeared, and INPUT and every other file kept their bytes.
        """
        before = self.snapshot()
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
        self.assertEqual(self.snapshot(), before)
        self.assertEqual(self.input.read_bytes(), self.input_bytes)


class TestCommandLineErrors(CommandLineTest):
    """Bad input found before any image is read or written: these need no imageio."""

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
        # Every form --padding takes, in its usage line.
        self.assertIn(f"--padding {'|'.join(PADDING_STRINGS)}|N|HxW|TxBxLxR", done.stdout)
        done = self.assert_succeeds("--version")
        self.assertEqual(done.stdout, f"convolution {convolution.__version__}\n")
        self.assertRegex(convolution.__version__, r"^\d+\.\d+\.\d+")

    def test_bad_paths(self):
        (self.folder / "sub").mkdir()
        os.mkfifo(self.folder / "fifo")   # which a reader would wait on for ever
        (self.folder / "link.png").symlink_to("in.png")
        os.link(self.folder / "in.png", self.folder / "hard.png")
        same = r"OUTPUT '.*' is the same file as INPUT 'in.png'; write the result to another file"
        self.assert_fail(
            (r"INPUT 'nothere.png' does not exist", "filter", "nothere.png", "out.png"),
            (r"INPUT 'sub' is a folder, not an image file", "filter", "sub", "out.png"),
            (r"INPUT 'fifo' is not a regular file \(a pipe, a device or a socket\)",
             "filter", "fifo", "out.png"),
            (r"cannot write OUTPUT 'nofolder/out.png': folder .*nofolder' does not exist",
             "filter", "in.png", "nofolder/out.png"),
            (r"OUTPUT 'sub' is a folder; give a file name", "filter", "in.png", "sub"),
            (r"OUTPUT 'out' has no extension", "filter", "in.png", "out"),
            # The same file under other names: the path itself, relative, absolute, through
            # '..', a symbolic link and a hard link; --force does not change that.
            *[(same, "filter", "in.png", spelling, *force)
              for spelling in ("in.png", "./in.png", "sub/../in.png", self.folder / "in.png",
                               "link.png", "hard.png")
              for force in ((), ("--force",))],
            (r"OUTPUT 'link.png' is the same file as INPUT 'hard.png'",
             "filter", "hard.png", "link.png", "--force"))

    def test_bad_kernels(self):
        files = {"ragged.txt": "1 2\n3\n", "words.txt": "# a comment\n1 b\n", "empty.txt": "",
                 "blank.txt": "\n  \n# nothing\n", "nan.txt": "1 nan\n1 1\n",
                 "inf.txt": "1, inf\n"}
        for name, text in files.items():
            (self.folder / name).write_text(text)
        (self.folder / "binary.txt").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
        np.save(self.folder / "flat.npy", np.ones(3))
        np.save(self.folder / "complex.npy", np.ones((2, 2), complex))
        np.save(self.folder / "k.npy", np.ones((2, 2)))
        (self.folder / "fake.npy").write_bytes(b"1 2\n3 4\n")
        (self.folder / "cut.npy").write_bytes((self.folder / "k.npy").read_bytes()[:40])
        cases = [
            (r"unknown kernel 'blur': not a kernel name \(identity, box, gaussian, .*\) nor a "
             r"file", "--kernel", "blur"),
            (r"kernel file 'ragged.txt' must have as many numbers on every line: line 1 has 2, "
             r"line 2 has 1$", "--kernel", "ragged.txt"),
            (r"kernel file 'words.txt', line 2: 'b' is not a number$", "--kernel", "words.txt"),
            (r"kernel file 'empty.txt' holds no numbers$", "--kernel", "empty.txt"),
            (r"kernel file 'blank.txt' holds no numbers$", "--kernel", "blank.txt"),
            (r"kernel file 'binary.txt' is not text: give a text file of numbers or a .npy "
             r"file$", "--kernel", "binary.txt"),
            (r"kernel file 'nan.txt' must hold finite numbers, got NaN or infinity$",
             "--kernel", "nan.txt"),
            (r"kernel file 'inf.txt' must hold finite numbers", "--kernel", "inf.txt"),
            (r"kernel file 'flat.npy' must be 2-D \(kh, kw\) and not empty, got shape \(3,\)$",
             "--kernel", "flat.npy"),
            (r"kernel file 'complex.npy' must hold numbers \(bool, integer or float\), got dtype "
             r"complex128$", "--kernel", "complex.npy"),
            (r"kernel file 'fake.npy' is not a NumPy .npy file", "--kernel", "fake.npy"),
            (r"cannot read kernel file 'cut.npy': EOF", "--kernel", "cut.npy"),
            (r"--size applies to library kernels, not to the kernel file 'k.npy'",
             "--kernel", "k.npy", "--size", "3"),
            (r"kernel 'sharpen' takes no parameters, got --size 5$", "--kernel", "sharpen",
             "--size", "5"),
            (r"kernel 'box' takes only size, got --sigma 2.0$", "--kernel", "box", "--sigma",
             "2"),
            (r"error: --size must be an int >= 1 or a pair of them, got 0", "--size", "0"),
            (r"error: --size must give a kernel of at most 16777216 cells", "--size",
             "1000000000"),
            (r"error: --sigma must be None, a positive finite number .*got -1.0", "--sigma",
             "-1"),
            (r"error: --sigma must be .*got nan", "--sigma", "nan"),
            (r"error: --sigma must be .*got \(1.0, inf\)", "--sigma", "1xinf"),
            # argparse's own errors, on one line too.
            (r"argument --size: expected N or HxW with whole numbers, got 'big' \(see "
             r"'convolution filter --help'\)", "--size", "big"),
            (r"argument --size: expected N or HxW with whole numbers, got '2.5'", "--size",
             "2.5"),
            (r"argument --sigma: expected S or SHxSW with numbers, got '1x2x3'", "--sigma",
             "1x2x3"),
            (r"argument --padding: expected valid, same, full, N, HxW or TOPxBOTTOMxLEFTxRIGHT, "
             r"got 'half'", "--padding", "half"),
            (r"argument --padding: expected .*got '1x2x3'", "--padding", "1x2x3"),
            (r"argument --padding-mode: invalid choice: 'mirror'", "--padding-mode", "mirror"),
            (r"argument --fill-value: expected a number, got 'white'", "--fill-value", "white"),
            (r"unrecognized arguments: --colour", "--colour"),
        ]
        # The same errors whether OUTPUT exists or not: the options come first.
        (self.folder / "old.png").write_bytes(b"old")
        self.assert_fail(*[(message, "filter", "in.png", output, *options)
                           for message, *options in cases for output in ("out.png", "old.png")])

    def test_argument_types(self):
        self.assertEqual((options._ints("5"), options._ints("3X5")), (5, (3, 5)))
        self.assertEqual((options._floats("1e-200"), options._floats("1x2.5")),
                         (1e-200, (1.0, 2.5)))
        self.assertEqual(options._pair("3x5"), (3, 5))
        self.assertEqual(options._padding("1x2x3x4"), ((1, 2), (3, 4)))
        self.assertEqual((options._padding("2"), options._padding("1x0")), (2, (1, 0)))
        for name in PADDING_STRINGS:     # the names come from shapes.py, not from a list here
            self.assertEqual(options._padding(name), name)
        for parse, text in ((options._pair, "3"), (options._pair, "3x4x5"),
                            (options._ints, "1x2x3"), (options._ints, ""),
                            (options._floats, "x"), (options._padding, "1x2x3")):
            with self.subTest(parse=parse, text=text), \
                    self.assertRaises(argparse.ArgumentTypeError):
                parse(text)

    def test_without_imageio_one_line_says_what_to_install(self):
        with mock.patch.dict(sys.modules, {"imageio": None, "imageio.v3": None}):
            status, _, stderr = run_in_process("filter", self.input, self.folder / "out.png")
        self.assertEqual(status, 2)
        self.assertEqual(stderr, "convolution: error: reading and writing images needs "
                                 "imageio: pip install imageio\n")
        self.assertEqual([p.name for p in self.folder.iterdir()], ["in.png"])


@unittest.skipIf(iio is None, "imageio is not installed")
class TestCommandLineImages(CommandLineTest):
    """Images read, filtered and written, with every dtype, channel count and format."""

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

    def test_progress_on_a_terminal(self):
        # stderr a terminal: a tqdm bar of the strips filtered, complete at the end, cleared;
        # the file is the same as without (stderr a pipe: no bar, see assert_succeeds).
        shutil.copy(SAMPLE_PHOTO, self.folder / "photo.jpg")
        status, stdout, shown = run_on_a_terminal("filter", "photo.jpg", "out.png",
                                                  "--kernel", "sharpen", cwd=self.folder)
        self.assertEqual((status, stdout), (0, "wrote out.png (600 x 512, 3 channels, uint8)\n"))
        self.assertTrue(shown.startswith("\rfiltering:   0%"), shown)
        self.assertRegex(shown, r"\rfiltering: 100%.* (\d+)/\1 ")
        self.assertTrue(shown.endswith("\r" + " " * 79 + "\r"), shown)
        self.assert_succeeds("filter", "photo.jpg", "piped.png", "--kernel", "sharpen")
        self.assertEqual((self.folder / "out.png").read_bytes(),
                         (self.folder / "piped.png").read_bytes())

    def test_tiny_sigma_is_the_identity(self):
        # 1e-200 squared underflows to 0: this was a ZeroDivisionError and a traceback.
        done = self.assert_succeeds("filter", "in.png", "out.png", "--sigma", "1e-200")
        self.assertEqual(done.stdout, "wrote out.png (20 x 30, 3 channels, uint8)\n")
        np.testing.assert_array_equal(iio.imread(self.folder / "out.png"), self.rgb)

    def test_kernel_files(self):
        kernel = np.array([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]])
        np.save(self.folder / "k.npy", kernel)
        texts = {"k.txt": "1 -2 0.5\n0 3 -1\n", "commas.txt": "1,-2,0.5\n0, 3, -1\n",
                 "mixed.txt": "# a kernel\n1, -2  0.5   # first row\n\n0 ,3,-1\n"}
        for name, text in texts.items():
            (self.folder / name).write_text(text)
        expected = apply_filter_to_image(self.rgb, kernel)
        for name in ("k.npy", *texts):
            with self.subTest(kernel=name):
                self.succeeds_here("filter", "in.png", f"{name}.png", "--kernel", name)
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

    def test_one_pixel_images(self):
        for channels in ((), (2,), (3,), (4,)):
            with self.subTest(channels=channels):
                pixel = np.full((1, 1) + channels, 77, np.uint8)
                (self.folder / "dot.png").write_bytes(png_bytes(pixel))
                self.succeeds_here("filter", "dot.png", "dot_out.png", "--force")
                np.testing.assert_array_equal(iio.imread(self.folder / "dot_out.png"), pixel)

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

    def test_files_that_are_not_images(self):
        (self.folder / "fake.png").write_text("not an image\n")
        (self.folder / "empty.png").write_bytes(b"")
        (self.folder / "cut.png").write_bytes(self.input_bytes[:60])
        (self.folder / "fake.jpg").write_text("hi\n")
        self.assert_fail(
            # imageio's own message would list plugins to install, which would not help.
            (r"^convolution: error: cannot read INPUT 'fake.png': not an image file: none of "
             r"imageio's readers recognises its contents\n$", "filter", "fake.png", "out.png"),
            (r"cannot read INPUT 'empty.png': the file is empty$", "filter", "empty.png",
             "out.png"),
            (r"cannot read INPUT 'cut.png': not an image, or a damaged one",
             "filter", "cut.png", "out.png"),
            (r"cannot read INPUT 'fake.jpg': not an image, or a damaged one$",
             "filter", "fake.jpg", "out.png"))

    def test_formats_that_cannot_hold_the_image(self):
        rgba = np.dstack([self.rgb, self.rgb[..., :1]])
        (self.folder / "rgba.png").write_bytes(png_bytes(rgba))
        grey16 = self.rgb[..., 0].astype(np.uint16) * 257
        (self.folder / "grey16.png").write_bytes(png_bytes(grey16))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            iio.imwrite(self.folder / "rgb16.tif", self.rgb.astype(np.uint16) * 257)
            iio.imwrite(self.folder / "five.tif", np.dstack([self.rgb, self.rgb[..., :2]]))
            iio.imwrite(self.folder / "signed.tif", self.rgb[..., 0].astype(np.int16) - 128)
        iio.imwrite(self.folder / "anim.gif", np.stack([self.rgb, 255 - self.rgb]))
        self.assert_fail(
            (r"cannot write OUTPUT 'out.xyz': imageio knows no image format '.xyz'",
             "filter", "in.png", "out.xyz"),
            # These fail inside imageio's writer, after the temporary file was made.
            (r"cannot write OUTPUT 'out.jpg': imageio could not save a uint16 image with 3 "
             r"channels as .jpg .*; .tif holds every dtype$", "filter", "rgb16.tif", "out.jpg"),
            (r"could not save a uint8 image with 4 channels as .jpg",
             "filter", "rgba.png", "out.jpg"),
            # These were written, silently losing alpha, bits or values: each file is read
            # back before it is renamed into place.
            (r"cannot write OUTPUT 'out.bmp': a .bmp file would hold this uint8 image with 4 "
             r"channels as a uint8 image with 3 channels; .tif holds every dtype$",
             "filter", "rgba.png", "out.bmp"),
            (r"a .gif file would hold this uint8 image with 4 channels as a uint8 image with 3",
             "filter", "rgba.png", "out.gif"),
            (r"a .webp file would hold this uint16 image with 1 channel as a uint8 image with "
             r"1 channel", "filter", "grey16.png", "out.webp"),
            (r"a .pgm file changes the values of this int16 image with 1 channel",
             "filter", "signed.tif", "out.pgm", "--kernel", "identity"),
            # Not 5 frames of 30 x 20 images, as imageio would guess.
            (r"cannot write OUTPUT 'out.png': a .png file holds at most 4 channels \(grey, "
             r"grey \+ alpha, RGB, RGBA\), this image has 5; .tif holds any number$",
             "filter", "five.tif", "out.png"),
            (r"INPUT 'anim.gif' holds 2 frames", "filter", "anim.gif", "out.png"))
        # What the formats can hold goes through: grey in a GIF's palette, 16-bit grey in a
        # PGM (read back as int32 with the same values), five channels in a TIFF.
        (self.folder / "grey.png").write_bytes(png_bytes(self.rgb[..., 0]))
        for source, target in (("grey.png", "grey.gif"), ("grey16.png", "grey16.pgm"),
                               ("five.tif", "five_out.tif")):
            with self.subTest(target=target):
                self.succeeds_here("filter", source, target, "--kernel", "identity")

    def test_bad_parameters(self):
        # Named by their options, and reported whether OUTPUT exists or not (it is the last
        # thing checked: an error in the options is the one to fix, --force or not).
        (self.folder / "old.png").write_bytes(b"old")
        self.assert_fail(*[(message, "filter", "in.png", output, *options)
                           for message, *options in [
            (r"error: --stride must be an int >= 1 or a pair of them, got \(0, 2\)$",
             "--stride", "0x2"),
            (r"error: --dilation must be an int >= 1 .*got -1$", "--dilation", "-1"),
            (r"error: --padding must be non-negative, got -1$", "--padding", "-1"),
            (r"error: --fill-value is used only with --padding-mode constant, got --fill-value "
             r"3 with --padding-mode reflect$", "--fill-value", "3"),
            (r"error: --fill-value must be a whole number from 0 to 255 for an image of dtype "
             r"uint8, got 300$", "--padding-mode", "constant", "--fill-value", "300"),
            (r"error: --fill-value must be a whole number from 0 to 255 .*got nan$",
             "--padding-mode", "constant", "--fill-value", "nan"),
            (r"error: --fill-value must be .*got -inf$", "--padding-mode", "constant",
             "--fill-value=-inf"),
            (r"kernel of shape \(5, 5\) with --dilation \(25, 25\) spans \(101, 101\) cells, "
             r"more than the padded input \(20, 30\) holds",
             "--padding", "valid", "--dilation", "25"),
            (r"error: --padding 1180591620717411303424 pads the input to shape "
             r"\(2361183241434822606868, 2361183241434822606878\), more than an array holds",
             "--padding", str(2 ** 70))]
            for output in ("out.png", "old.png")])

    def test_out_of_memory_is_one_line(self):
        # As --dilation 100000 on a 20 x 30 picture once did (the padded input, 596 GiB).
        error = MemoryError("Unable to allocate 596. GiB for an array with shape (1, 400020, "
                            "400030) and data type float32")
        with mock.patch.object(commands, "apply_filter_to_image", side_effect=error):
            status, stdout, stderr = run_in_process("filter", self.input,
                                                    self.folder / "out.png")
        self.assertEqual((status, stdout), (2, ""))
        self.assertEqual(stderr, f"convolution: error: out of memory: {error}\n")
        self.assertEqual([p.name for p in self.folder.iterdir()], ["in.png"])

    def test_interrupted_write_leaves_nothing_behind(self):
        # In-process, to interrupt at the worst moment: inside imageio's write.
        def interrupt(path, *args, **kwargs):
            Path(path).write_bytes(b"half an image")
            raise KeyboardInterrupt
        with mock.patch("imageio.v3.imwrite", side_effect=interrupt):
            status, _, stderr = run_in_process("filter", self.input, self.folder / "out.png")
        self.assertEqual(status, 130)
        self.assertEqual(stderr, "convolution: interrupted\n")
        self.assertEqual([p.name for p in self.folder.iterdir()], ["in.png"])
        self.assertEqual(self.input.read_bytes(), self.input_bytes)

    def test_stop_signals_inside_the_write_leave_nothing_behind(self):
        # In-process: the signal arrives while imageio writes the temporary file.
        def stop(path, *args, **kwargs):
            Path(path).write_bytes(b"half an image")
            os.kill(os.getpid(), signum)
            time.sleep(10)   # the handler interrupts the sleep
            self.fail("the signal did not stop the write")

        for signum in STOP_SIGNALS:
            with self.subTest(signal=signal.Signals(signum).name):
                before = signal.getsignal(signum)
                with mock.patch("imageio.v3.imwrite", side_effect=stop):
                    status, _, stderr = run_in_process("filter", self.input,
                                                       self.folder / "out.png")
                self.assertEqual(status, 128 + signum)
                self.assertEqual(stderr,
                                 f"convolution: stopped by {signal.Signals(signum).name}\n")
                self.assertEqual([p.name for p in self.folder.iterdir()], ["in.png"])
                self.assertEqual(signal.getsignal(signum), before)   # put back afterwards

    def test_an_interruption_a_library_swallows_or_wraps_still_stops(self):
        # Python 3.11 turns a KeyboardInterrupt raised while a class is created into a
        # RuntimeError (seen when Ctrl-C lands in matplotlib's first import); other code
        # catches it and carries on. Either way the run is interrupted, and says so.
        def wrapped(path, *args, **kwargs):
            Path(path).write_bytes(b"half an image")
            try:
                signal.raise_signal(signal.SIGINT)
            except KeyboardInterrupt as error:
                raise RuntimeError("Error calling __set_name__") from error

        def swallowed(path, *args, **kwargs):
            try:
                signal.raise_signal(signal.SIGINT)
            except KeyboardInterrupt:
                pass
            Path(path).write_bytes(png_bytes(np.zeros((2, 2), np.uint8)))

        for write in (wrapped, swallowed):
            with self.subTest(write=write.__name__):
                with mock.patch("imageio.v3.imwrite", side_effect=write):
                    status, _, stderr = run_in_process("filter", self.input,
                                                       self.folder / "out.png")
                self.assertEqual((status, stderr), (130, "convolution: interrupted\n"))
                self.assertEqual([p.name for p in self.folder.iterdir()], ["in.png"])
                self.assertIs(signal.getsignal(signal.SIGINT), signal.default_int_handler)

    @unittest.skipUnless(hasattr(signal, "SIGTERM") and os.name == "posix", "POSIX signals")
    def test_sigterm_mid_write_leaves_nothing_behind(self):
        # A real process, killed while its temporary file exists: random pixels make a PNG
        # that takes a second or so to compress, and the folder is watched for the file.
        big = np.random.default_rng(1).integers(0, 256, size=(2000, 2000, 3), dtype=np.uint8)
        (self.folder / "big.png").write_bytes(png_bytes(big))
        before = self.snapshot()
        env = dict(os.environ, PYTHONPATH=str(HERE))
        process = subprocess.Popen(
            [sys.executable, "-m", "convolution", "filter", "big.png", "out.png", "--kernel",
             "identity"], cwd=self.folder, env=env, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, **CHILD_SIGNALS)
        deadline = time.monotonic() + 60
        temporary = []
        while not temporary and process.poll() is None and time.monotonic() < deadline:
            temporary = [p.name for p in self.folder.iterdir() if p.name.startswith(".out.")]
            time.sleep(0.001)
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=60)
        self.assertTrue(temporary, "the write ended before its temporary file was seen")
        self.assertEqual((process.returncode, stdout, stderr),
                         (143, "", "convolution: stopped by SIGTERM\n"))
        self.assertEqual(self.snapshot(), before)


@unittest.skipIf(iio is None or cv2 is None, "imageio or OpenCV is not installed")
class TestReadmeCommands(unittest.TestCase):
    """The README's commands write to out/; the pictures under files/ come from a script."""

    def test_commands_never_write_under_files(self):
        text = (HERE / "README.md").read_text()
        blocks = re.findall(r"```sh\n(.*?)```", text, re.S)
        commands = [line.split("#")[0].split() for block in blocks for line in block.splitlines()]
        writes = [(words[words.index("convolution") + 1:]) for words in commands
                  if "convolution" in words]
        outputs = [args[2] if args[0] == "filter" else args[1] for args in writes
                   if args and args[0] in ("filter", "animate") and "--help" not in args]
        self.assertGreaterEqual(len(outputs), 6)
        for output in outputs:
            with self.subTest(output=output):
                self.assertTrue(output.startswith("out/"), output)

    def test_the_filtered_photos_are_remade_to_the_bit(self):
        # files/make_photos.py with 1 and 4 threads: the committed pictures, pixel for pixel
        # once through the same JPEG encoder (imageio's Pillow).
        spec = importlib.util.spec_from_file_location("make_photos",
                                                      HERE / "files" / "make_photos.py")
        make_photos = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(make_photos)
        photo = iio.imread(SAMPLE_PHOTO)
        for threads in (1, 4):
            with forced_threads(threads):
                pictures = make_photos.filtered(photo)
            self.assertEqual(len(pictures), 3)
            for name, picture in pictures.items():
                with self.subTest(name=name, threads=threads):
                    committed = iio.imread(HERE / "files" / name)
                    encoded = iio.imwrite("<bytes>", picture, extension=".jpg")
                    np.testing.assert_array_equal(iio.imread(encoded), committed)
                    self.assertIn(f"(files/{name})", (HERE / "README.md").read_text())


class TestSixteenBitPNG(CommandLineTest):
    """16-bit colour PNGs, which imageio reads as 8-bit: read and written whole with OpenCV."""

    def setUp(self):
        super().setUp()
        rng = np.random.default_rng(13)
        self.images = {channels: rng.integers(0, 65536, size=(12, 17, channels),
                                              dtype=np.uint16) for channels in (2, 3, 4)}
        for channels, image in self.images.items():
            (self.folder / f"c{channels}.png").write_bytes(png_bytes(image))

    def read_tif(self, name):
        return iio.imread(self.folder / name)

    @unittest.skipIf(cv2 is None, "OpenCV (opencv-python-headless) is not installed")
    def test_all_16_bits_are_read_and_written(self):
        for channels, image in self.images.items():
            with self.subTest(channels=channels):
                stdout = self.succeeds_here("filter", f"c{channels}.png", f"c{channels}.tif",
                                            "--kernel", "identity")
                self.assertEqual(stdout, f"wrote c{channels}.tif (12 x 17, {channels} "
                                         f"channels, uint16)\n")
                np.testing.assert_array_equal(self.read_tif(f"c{channels}.tif"), image)
        for channels in (3, 4):
            with self.subTest(channels=channels, output="png"):
                self.succeeds_here("filter", f"c{channels}.png", f"out{channels}.png",
                                   "--kernel", "box")
                written = cv2.imread(str(self.folder / f"out{channels}.png"),
                                     cv2.IMREAD_UNCHANGED)[..., [2, 1, 0, 3][:channels]]
                np.testing.assert_array_equal(written,
                                              apply_filter_to_image(self.images[channels], "box"))

    @unittest.skipIf(cv2 is None, "OpenCV (opencv-python-headless) is not installed")
    def test_a_png_made_by_another_encoder(self):
        # libpng (through OpenCV) filters its rows, unlike png_bytes.
        ramp = (np.arange(40 * 50 * 3).reshape(40, 50, 3) * 37 % 65536).astype(np.uint16)
        cv2.imwrite(str(self.folder / "ramp.png"), ramp[..., ::-1])
        self.succeeds_here("filter", "ramp.png", "ramp.tif", "--kernel", "identity")
        np.testing.assert_array_equal(self.read_tif("ramp.tif"), ramp)

    @unittest.skipIf(cv2 is None, "OpenCV (opencv-python-headless) is not installed")
    def test_grey_and_alpha_cannot_be_written_as_png(self):
        self.assert_fail((r"cannot write OUTPUT 'out.png': imageio cannot write a 16-bit PNG "
                          r"with 2 channels; write .tif, which holds every dtype$",
                          "filter", "c2.png", "out.png"))

    def test_without_opencv_one_line_says_why_and_what_to_do(self):
        before = self.snapshot()
        with mock.patch.dict(sys.modules, {"cv2": None}):
            status, stdout, stderr = run_in_process("filter", self.folder / "c3.png",
                                                    self.folder / "out.tif")
            self.assertEqual((status, stdout), (2, ""))
            self.assertRegex(stderr, r"^convolution: error: INPUT '.*c3.png' is a 16-bit RGB "
                                     r"PNG, which imageio would read as 8-bit: install OpenCV "
                                     r"to read all 16 bits \(pip install "
                                     r"opencv-python-headless\), or convert it to a 16-bit "
                                     r"TIFF first\n$")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                iio.imwrite(self.folder / "rgb16.tif", self.images[3])
            before = self.snapshot()
            status, stdout, stderr = run_in_process("filter", self.folder / "rgb16.tif",
                                                    self.folder / "out.png")
            self.assertEqual((status, stdout), (2, ""))
            self.assertRegex(stderr, r"^convolution: error: cannot write OUTPUT '.*out.png': "
                                     r"imageio cannot write a 16-bit PNG with 3 channels; "
                                     r"install OpenCV to write them .*, or write .tif")
        self.assertEqual(self.snapshot(), before)
