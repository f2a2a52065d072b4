"""plot_conv2d, animate_conv2d, the animate and figures commands."""
import itertools
import os
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

import numpy as np

from convolution import animate_conv2d, conv2d, conv_output_shape, plot, plot_conv2d
from convolution.__main__ import FIGURES
from convolution.shapes import conv_geometry, window

from .common import (HERE, iio, matplotlib, README_MATRIX, README_KERNEL, README_MAP, run_main,
                     run_command)


# Unusual parameters: each picture must show exactly the cells conv2d reads.
PICTURE_CASES = [
    dict(input_shape=(7, 8), kernel_shape=(2, 2), stride=3),
    dict(input_shape=(7, 9), kernel_shape=(3, 3), dilation=(2, 3)),
    dict(input_shape=(4, 5), kernel_shape=(2, 3), padding=((0, 2), (3, 1))),
    dict(input_shape=(5, 6), kernel_shape=(4, 4), stride=2, padding="same"),
    dict(input_shape=(2, 3), kernel_shape=(2, 2), stride=(2, 3), padding=(3, 4),
         padding_mode="reflect"),          # padding wider than the input
    dict(input_shape=(3, 4), kernel_shape=(3, 2), stride=(2, 1), dilation=(1, 2),
         padding="full", padding_mode="circular",
         matrix=np.arange(12).reshape(3, 4) - 5, kernel=[[1, -2], [3, 0], [-1, 4]]),
]


def read_cells(geometry, i, j):
    """The padded cells output cell (i, j) reads, from the formula i*sh + a*dh, j*sw + b*dw."""
    (kh, kw), (sh, sw), (dh, dw) = geometry.kernel_shape, geometry.stride, geometry.dilation
    return {(i * sh + a * dh, j * sw + b * dw) for a in range(kh) for b in range(kw)}


def padded_shape(geometry):
    (h, w), ((top, bottom), (left, right)) = geometry.input_shape, geometry.padding
    return h + top + bottom, w + left + right


def expected_roles(geometry, step):
    """Role of every input and output cell in frame ``step``, worked out without plot.py."""
    (hp, wp), ((top, _), (left, _)) = padded_shape(geometry), geometry.padding
    (h, w), (ho, wo) = geometry.input_shape, geometry.output_shape
    i, j = divmod(step, wo)
    reads = read_cells(geometry, i, j)
    inputs = {(r, c): plot.READ if (r, c) in reads
              else plot.INPUT if top <= r < top + h and left <= c < left + w else plot.PADDING
              for r, c in itertools.product(range(hp), range(wp))}
    outputs = {(r, c): plot.DONE if r * wo + c < step else
               plot.CURRENT if r * wo + c == step else plot.TODO
               for r, c in itertools.product(range(ho), range(wo))}
    return inputs, outputs


def sample_points(geometry, cells, grid):
    """Data points a quarter cell in from each cell's top-left corner, clear of centred labels."""
    x0 = 0 if grid == "input" else padded_shape(geometry)[1] + plot.GAP
    return np.array([(x0 + c + 0.25, r + 0.25) for r, c in cells])


def rendered_colors(fig, points):
    """The RGB colours the Agg canvas draws at data ``points`` of the figure's Axes."""
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3].astype(int)
    xy = fig.axes[0].transData.transform(points)
    return image[(image.shape[0] - xy[:, 1]).astype(int), xy[:, 0].astype(int)]


def role_rgb(roles):
    return np.array([np.round(np.array(matplotlib.colors.to_rgb(plot.COLORS[role])) * 255)
                     for role in roles])


def labels_at(ax):
    """The visible Text artists of ``ax`` by their position."""
    return {tuple(text.get_position()): text for text in ax.texts if text.get_visible()}


@unittest.skipIf(matplotlib is None, "matplotlib is not installed")
class TestPlot(unittest.TestCase):
    """plot_conv2d: the cells drawn are the cells conv2d reads."""

    def test_window_is_the_formula(self):
        # The helper both the loops and the pictures use, against the formula.
        for case in PICTURE_CASES:
            g = conv_geometry(case["input_shape"], case["kernel_shape"], case.get("stride", 1),
                              case.get("dilation", 1), case.get("padding", 0))
            hp, wp = padded_shape(g)
            for i, j in itertools.product(*map(range, g.output_shape)):
                rows, cols = window(i, j, g.kernel_shape, g.stride, g.dilation)
                self.assertEqual(set(itertools.product(range(hp)[rows], range(wp)[cols])),
                                 read_cells(g, i, j))

    def test_rendered_pixels_show_the_cells_read(self):
        for case in PICTURE_CASES:
            g = conv_geometry(case["input_shape"], case["kernel_shape"], case.get("stride", 1),
                              case.get("dilation", 1), case.get("padding", 0))
            n = g.output_shape[0] * g.output_shape[1]
            for step in sorted({0, n // 3, n // 2, n - 1}):
                fig = plot_conv2d(**case, step=step)
                inputs, outputs = expected_roles(g, step)
                for grid, roles in (("input", inputs), ("output", outputs)):
                    with self.subTest(case=case, step=step, grid=grid):
                        colors = rendered_colors(fig, sample_points(g, roles, grid))
                        expected = role_rgb(roles.values())
                        wrong = [cell for cell, got, want in zip(roles, colors, expected)
                                 if np.abs(got - want).max() > 2]
                        self.assertEqual(wrong, [], "cells drawn in the wrong colour")

    def test_roles_have_distinct_colors(self):
        # Otherwise the pixel test could not tell a read cell from an unread one.
        rgb = dict(zip(plot.COLORS, role_rgb(plot.COLORS)))
        for a, b in itertools.combinations([plot.INPUT, plot.PADDING, plot.READ, plot.CURRENT,
                                            plot.DONE], 2):
            self.assertGreater(np.abs(rgb[a] - rgb[b]).max(), 30, (a, b))

    def test_padded_cell_drawn_unlike_an_input_cell(self):
        g = conv_geometry((4, 4), (2, 2), padding=1)
        fig = plot_conv2d((4, 4), (2, 2), padding=1, step=0, matrix=np.full((4, 4), 5))
        # Cell (4, 4) is an input cell, (5, 5) a padded one; the kernel reads neither.
        padded_rgb, input_rgb = rendered_colors(fig, sample_points(g, [(5, 5), (4, 4)], "input"))
        self.assertGreater(np.abs(padded_rgb - input_rgb).max(), 30)
        labels = labels_at(fig.axes[0])
        padded_label, input_label = labels[(5.5, 5.5)], labels[(4.5, 4.5)]
        self.assertEqual((padded_label.get_text(), input_label.get_text()), ("0", "5"))
        self.assertEqual((padded_label.get_style(), input_label.get_style()),
                         ("italic", "normal"))

    def test_padded_cells_name_the_cell_they_copy(self):
        fig = plot_conv2d((4, 4), (3, 3), stride=2, padding=2, padding_mode="reflect")
        labels = labels_at(fig.axes[0])
        shown = np.array([[labels[(c + 0.5, r + 0.5)].get_text() for c in range(8)]
                          for r in range(8)])
        # Reflection of rows/columns 0..3 about the edge cell: 2 1 | 0 1 2 3 | 2 1.
        mirror = [2, 1, 0, 1, 2, 3, 2, 1]
        np.testing.assert_array_equal(shown, [[str(4 * r + c) for c in mirror] for r in mirror])
        # Zeros copy no cell: no labels in the grids without values.
        fig = plot_conv2d((4, 4), (3, 3), padding=2)
        self.assertFalse(any(x % 1 == 0.5 and y % 1 == 0.5 for x, y in labels_at(fig.axes[0])))

    def test_values_and_sums_match_conv2d(self):
        matrix, kernel, expected = README_MATRIX, README_KERNEL.tolist(), README_MAP
        fig = plot_conv2d((9, 14), (5, 5), (2, 1), (1, 2), step=8, matrix=matrix, kernel=kernel)
        ax = fig.axes[0]
        labels = labels_at(ax)
        for (r, c), value in np.ndenumerate(matrix):
            self.assertEqual(labels[(c + 0.5, r + 0.5)].get_text(), str(value))
        x0 = 14 + plot.GAP
        for (i, j), value in np.ndenumerate(expected):
            label = labels.get((x0 + j + 0.5, i + 0.5))
            # Cells up to the current one (number 8) show their sums; later ones are blank.
            self.assertEqual(label and label.get_text(), str(value) if i * 6 + j <= 8 else None)
        self.assertTrue(ax.get_title().endswith("(1, 2) of 3×6 · sum of weight × value over "
                                                "the blue cells = 78"), ax.get_title())

    def test_values_of_padded_cells_follow_the_mode(self):
        matrix = np.arange(20).reshape(4, 5)
        kernel = np.array([[2, -1], [0, 3]])
        for mode, np_mode in (("constant", "constant"), ("symmetric", "symmetric"),
                              ("replicate", "edge")):
            fill = 7 if mode == "constant" else 0
            fig = plot_conv2d((4, 5), (2, 2), 2, 1, ((1, 2), (0, 1)), padding_mode=mode,
                              fill_value=fill, step=5, matrix=matrix, kernel=kernel)
            labels = labels_at(fig.axes[0])
            padded = np.pad(matrix, ((1, 2), (0, 1)), np_mode,
                            **({"constant_values": 7} if mode == "constant" else {}))
            with self.subTest(padding_mode=mode):
                for (r, c), value in np.ndenumerate(padded):
                    self.assertEqual(labels[(c + 0.5, r + 0.5)].get_text(), str(value))
                sums = conv2d(matrix, kernel, 2, 1, ((1, 2), (0, 1)), padding_mode=mode,
                              fill_value=fill)
                for (i, j), value in np.ndenumerate(sums[:2]):   # cells 0..5 of 3 x 3
                    if i * 3 + j <= 5:
                        self.assertEqual(labels[(6 + plot.GAP + j + 0.5, i + 0.5)].get_text(),
                                         str(value))

    def test_kernel_weights_sit_on_their_taps(self):
        kernel = np.array([[11, 12, 13], [21, 22, 23]])
        g = conv_geometry((8, 9), (2, 3), (2, 3), (3, 2), ((1, 0), (0, 2)))
        for step in range(g.output_shape[0] * g.output_shape[1]):
            fig = plot_conv2d((8, 9), (2, 3), (2, 3), (3, 2), ((1, 0), (0, 2)), step=step,
                              kernel=kernel)
            i, j = divmod(step, g.output_shape[1])
            for text in fig.axes[0].texts:
                if text.get_text().startswith("×"):
                    a, b = divmod(int(text.get_text()[1:]), 10)
                    x, y = text.get_position()
                    # Bottom-right corner of the cell under tap (a - 1, b - 1).
                    self.assertEqual((round(y - 0.95, 9), round(x - 0.95, 9)),
                                     (i * 2 + (a - 1) * 3, j * 3 + (b - 1) * 2))

    def test_drawn_into_a_given_axes(self):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(10, 4))
        FigureCanvasAgg(fig)
        left, right = fig.subplots(1, 2)
        self.assertIs(plot_conv2d((5, 5), (3, 3), dilation=2, ax=right), fig)
        self.assertEqual(len(left.collections), 0)
        self.assertEqual(len(right.collections), 2)     # the input grid and the output grid
        self.assertAlmostEqual(right.get_xlim()[1] - right.get_xlim()[0], 5 + plot.GAP + 1 + 0.1)


@unittest.skipIf(matplotlib is None, "matplotlib is not installed")
class TestPlotErrors(unittest.TestCase):
    """Bad arguments: conv2d's errors for conv2d's parameters, the rule for the others."""

    def test_same_errors_as_conv2d(self):
        bad = [dict(stride=0), dict(stride=2.0), dict(dilation=(1, -2)), dict(dilation=(2, 3)),
               dict(padding=-1), dict(padding="middle"), dict(padding=(1, 1, 1)),
               dict(padding_mode="mirror"), dict(padding=1, fill_value=3)]
        for kwargs in bad:
            with self.subTest(**kwargs):
                try:
                    conv2d(np.ones((6, 6)), np.ones((3, 3)), **kwargs)
                except (TypeError, ValueError) as error:
                    expected = error
                else:
                    self.fail("conv2d accepted it")
                with self.assertRaises(type(expected)) as caught:
                    plot_conv2d((6, 6), (3, 3), **kwargs)
                self.assertEqual(str(caught.exception), str(expected))
                with tempfile.TemporaryDirectory() as folder, \
                        self.assertRaises(type(expected)) as caught:
                    animate_conv2d((6, 6), (3, 3), path=os.path.join(folder, "a.gif"), **kwargs)
                self.assertEqual(str(caught.exception), str(expected))

    def test_step(self):
        with self.assertRaisesRegex(ValueError, r"step must be an output cell number from 0 to "
                                                r"3 \(output shape \(2, 2\)\), got 4"):
            plot_conv2d((5, 5), (3, 3), stride=2, step=4)
        with self.assertRaisesRegex(ValueError, r"step must be .*got -1"):
            plot_conv2d((5, 5), (3, 3), stride=2, step=-1)
        for step in (1.0, True, "1"):
            with self.assertRaisesRegex(TypeError, rf"step must be an int, got {step!r}"):
                plot_conv2d((5, 5), (3, 3), stride=2, step=step)
        title = plot_conv2d((5, 5), (3, 3), stride=2, step=np.int64(3)).axes[0].get_title()
        self.assertIn("output cell (1, 1) of 2×2", title)

    def test_matrix_and_kernel(self):
        with self.assertRaisesRegex(ValueError, r"matrix must have the shape \(5, 5\) given for "
                                                r"it, got shape \(4, 5\)"):
            plot_conv2d((5, 5), (3, 3), matrix=np.ones((4, 5)))
        with self.assertRaisesRegex(ValueError, r"matrix must .*got shape \(2, 5, 5\)"):
            plot_conv2d((5, 5), (3, 3), matrix=np.ones((2, 5, 5)))
        with self.assertRaisesRegex(ValueError, r"kernel must have the shape \(3, 3\) given for "
                                                r"it, got shape \(3, 2\)"):
            plot_conv2d((5, 5), (3, 3), kernel=np.ones((3, 2)))
        with self.assertRaisesRegex(TypeError, r"matrix must hold numbers"):
            plot_conv2d((1, 2), (1, 1), matrix=[["a", "b"]])

    def test_ax(self):
        with self.assertRaisesRegex(TypeError, r"ax must be a matplotlib Axes or None, "
                                               r"got 'left'"):
            plot_conv2d((5, 5), (3, 3), ax="left")
        # Every argument is checked before drawing: a bad one leaves the Axes untouched.
        from matplotlib.figure import Figure

        ax = Figure().subplots()
        for kwargs in (dict(step=4), dict(kernel=np.ones((2, 2))), dict(stride=0)):
            with self.subTest(**kwargs), self.assertRaises(ValueError):
                plot_conv2d((5, 5), (3, 3), stride=kwargs.pop("stride", 2), ax=ax, **kwargs)
            self.assertEqual((len(ax.collections), len(ax.texts), ax.get_title()), (0, 0, ""))

    def test_animation_arguments(self):
        cases = [(ValueError, r"path must end in '.gif' or '.mp4', got '.*a.png'", "a.png", {}),
                 (ValueError, r"fps must be a positive number, got 0", "a.gif", dict(fps=0)),
                 (TypeError, r"fps must be a positive number, got '2'", "a.gif", dict(fps="2")),
                 (TypeError, r"fps must be a positive number, got True", "a.gif", dict(fps=True)),
                 (ValueError, r"fps must be a positive number, got nan", "a.gif",
                  dict(fps=float("nan"))),
                 (ValueError, r"dpi must be a positive number, got -1", "a.gif", dict(dpi=-1))]
        for error, pattern, name, kwargs in cases:
            with self.subTest(pattern=pattern), tempfile.TemporaryDirectory() as folder:
                with self.assertRaisesRegex(error, pattern):
                    animate_conv2d((5, 5), (3, 3), path=os.path.join(folder, name), **kwargs)
                self.assertEqual(os.listdir(folder), [])

    def test_mp4_needs_ffmpeg(self):
        from matplotlib import animation

        if animation.writers.is_available("ffmpeg"):
            self.skipTest("ffmpeg is installed")
        with tempfile.TemporaryDirectory() as folder:
            with self.assertRaisesRegex(FileNotFoundError, r"'.mp4' needs ffmpeg, which is not"):
                animate_conv2d((5, 5), (3, 3), path=os.path.join(folder, "a.mp4"))
            self.assertEqual(os.listdir(folder), [])


@unittest.skipIf(matplotlib is None or iio is None, "matplotlib or imageio is not installed")
class TestAnimation(unittest.TestCase):
    """animate_conv2d: one frame per output cell, each showing the cells read."""

    def test_one_frame_per_output_cell(self):
        for args, kwargs in [(((5, 6), (4, 4), 2, 1, "same"), {}),
                             (((3, 4), (2, 3)), dict(padding=((0, 1), (2, 0)))),
                             (((1, 1), (1, 1)), {}),
                             (((3, 7), (2, 2), (1, 3), (1, 2), "full"),
                              dict(padding_mode="circular", fps=5))]:
            with self.subTest(args=args, kwargs=kwargs), tempfile.TemporaryDirectory() as folder:
                path = os.path.join(folder, "a.gif")
                self.assertEqual(animate_conv2d(*args, path=path, **kwargs), path)
                h_out, w_out = conv_output_shape(*args[:2], *args[2:],
                                                 **{k: v for k, v in kwargs.items()
                                                    if k == "padding"})
                self.assertEqual(iio.imread(path, index=None).shape[0], h_out * w_out)

    def test_frames_show_the_cells_read(self):
        # GIF colours are quantised to a palette: compare with a tolerance.
        case = dict(input_shape=(2, 3), kernel_shape=(2, 2), stride=(2, 3), dilation=(1, 2),
                    padding=(3, 4), padding_mode="reflect")
        g = conv_geometry(case["input_shape"], case["kernel_shape"], case["stride"],
                          case["dilation"], case["padding"])
        with tempfile.TemporaryDirectory() as folder:
            path = animate_conv2d(**case, path=os.path.join(folder, "a.gif"), dpi=60)
            frames = iio.imread(path, index=None)[..., :3].astype(int)
        fig = plot_conv2d(**case)
        fig.canvas.draw()
        to_fraction = fig.axes[0].transData + fig.transFigure.inverted()
        height, width = frames.shape[1:3]
        for step, frame in enumerate(frames):
            inputs, outputs = expected_roles(g, step)
            for grid, roles in (("input", inputs), ("output", outputs)):
                fx, fy = to_fraction.transform(sample_points(g, roles, grid)).T
                colors = frame[((1 - fy) * height).astype(int), (fx * width).astype(int)]
                wrong = [cell for cell, got, want in zip(roles, colors, role_rgb(roles.values()))
                         if np.abs(got - want).max() > 12]
                with self.subTest(step=step, grid=grid):
                    self.assertEqual(wrong, [])


@unittest.skipIf(matplotlib is None or iio is None, "matplotlib or imageio is not installed")
class TestAnimateCommandLine(unittest.TestCase):
    """python -m convolution animate: writes the file, or one line on stderr and status 2."""

    def test_writes_the_animation(self):
        with tempfile.TemporaryDirectory() as folder:
            result = run_command("animate", "out.gif", "--input", "5x6", "--kernel", "2x3",
                                 "--stride", "2", "--dilation", "1x2", "--padding", "1x0x2x1",
                                 "--padding-mode", "symmetric", "--fps", "4", cwd=folder)
            self.assertEqual((result.returncode, result.stderr), (0, ""))
            self.assertEqual(result.stdout, "wrote out.gif\n")
            self.assertEqual(os.listdir(folder), ["out.gif"])    # no temporary file left
            h_out, w_out = conv_output_shape((5, 6), (2, 3), 2, (1, 2), ((1, 0), (2, 1)))
            path = os.path.join(folder, "out.gif")
            self.assertEqual(iio.imread(path, index=None).shape[0], h_out * w_out)
            self.assertEqual(iio.immeta(path)["duration"], 250)      # 4 frames per second
            umask = os.umask(0)
            os.umask(umask)
            self.assertEqual(os.stat(path).st_mode & 0o777, 0o666 & ~umask)

    def test_refuses_to_overwrite_without_force(self):
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "out.gif")
            Path(path).write_bytes(b"keep")
            result = run_command("animate", "out.gif", "--input", "4x4", "--kernel", "3x3",
                                 cwd=folder)
            self.assertEqual(result.returncode, 2)
            self.assertEqual(result.stderr, "convolution: error: OUTPUT 'out.gif' "
                                            "exists; pass --force to overwrite it\n")
            self.assertEqual(Path(path).read_bytes(), b"keep")
            self.assertEqual(run_main("animate", path, "--input", "4x4", "--kernel", "3x3",
                                      "--force"), (0, ""))
            self.assertEqual(iio.imread(path, index=None).shape[0], 4)

    def test_bad_input_in_a_new_process(self):
        with tempfile.TemporaryDirectory() as folder:
            result = run_command("animate", "out.gif", "--input", "5x5", "--kernel", "3x3",
                                 "--stride", "0", cwd=folder)
            self.assertEqual(result.returncode, 2)
            self.assertEqual(result.stderr, "convolution: error: stride must "
                                            "be an int >= 1 or a pair of them, got 0\n")
            self.assertEqual(os.listdir(folder), [])

    def test_bad_input(self):
        cases = [(["--input", "5by5"], "argument --input: expected HxW, two whole numbers, got '5by5'"),
                 (["--input", "5"], "argument --input: expected HxW"),
                 (["--kernel", "9x9"], "kernel of shape (9, 9) with dilation (1, 1) spans"),
                 (["--dilation", "2.5"], "argument --dilation: expected N or HxW with whole numbers, got "
                                          "'2.5'"),
                 (["--padding", "-1"], "padding must be non-negative, got -1"),
                 (["--padding", "1x2x3"], "argument --padding: expected same, valid, full, N, HxW or "
                                          "TOPxBOTTOMxLEFTxRIGHT, got '1x2x3'"),
                 (["--padding", "middle"], "argument --padding: expected"),
                 (["--padding-mode", "mirror"], "argument --padding-mode: invalid choice: 'mirror'"),
                 (["--fps", "0"], "argument --fps: expected a positive number, got '0'"),
                 (["--fps", "x"], "argument --fps: expected a number, got 'x'"),
                 (["--output-name", "x"], "unrecognized arguments: --output-name x")]
        with tempfile.TemporaryDirectory() as folder:
            out = os.path.join(folder, "out.gif")
            os.mkdir(os.path.join(folder, "a.gif"))     # a folder named like an animation
            for extra, message in cases:
                args = ["animate", out, "--input", "5x5", "--kernel", "3x3"]
                for k in range(len(extra) // 2):   # the case's options replace the defaults
                    if extra[2 * k] in args:
                        del args[args.index(extra[2 * k]):args.index(extra[2 * k]) + 2]
                status, stderr = run_main(*args, *extra)
                with self.subTest(extra=extra):
                    self.assertEqual(status, 2)
                    self.assertEqual(stderr.count("\n"), 1, stderr)
                    self.assertIn(message, stderr)
                    self.assertEqual(os.listdir(folder), ["a.gif"])
            for output, message in ((os.path.join(folder, "out.png"), "OUTPUT must end in "
                                     ".gif or .mp4, got '"),
                                    (os.path.join(folder, "no", "out.gif"), "folder "),
                                    (os.path.join(folder, "a.gif"), "is a folder; give a file "
                                                                      "name")):
                status, stderr = run_main("animate", output, "--input", "5x5", "--kernel", "3x3")
                with self.subTest(output=output):
                    self.assertEqual((status, stderr.count("\n")), (2, 1))
                    self.assertIn(message, stderr)
                    self.assertEqual(os.listdir(folder), ["a.gif"])
                    self.assertEqual(os.listdir(os.path.join(folder, "a.gif")), [])

    def test_missing_option(self):
        status, stderr = run_main("animate", "out.gif", "--input", "5x5")
        self.assertEqual((status, stderr), (2, "convolution: error: the following arguments are "
                                               "required: --kernel (see 'convolution animate "
                                               "--help')\n"))


class TestPicturesAreOptional(unittest.TestCase):
    """matplotlib is needed only when a picture is drawn."""

    def run_python(self, code):
        env = dict(os.environ, PYTHONPATH=str(HERE))
        return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                              text=True, timeout=60)

    def test_import_costs_numpy_only(self):
        result = self.run_python("import sys, convolution; print(sorted({m.split('.')[0] for m "
                                 "in sys.modules} & {'matplotlib', 'PIL', 'imageio'}))")
        self.assertEqual(result.stdout, "[]\n", result.stderr)

    def test_without_matplotlib(self):
        # sys.modules[name] = None makes `import name` fail as if it were not installed.
        result = self.run_python(
            "import sys; sys.modules['matplotlib'] = None\n"
            "from convolution.__main__ import main\n"
            "sys.exit(main(['animate', 'never.gif', '--input', '3x3', '--kernel', '2x2']))")
        self.assertEqual((result.returncode, result.stderr),
                         (2, "convolution: error: the pictures need "
                             "matplotlib: pip install matplotlib\n"))


@unittest.skipIf(matplotlib is None or iio is None, "matplotlib or imageio is not installed")
class TestReadmeFigures(unittest.TestCase):
    """python -m convolution figures, and the figures the README shows."""

    def check_figure(self, path, arguments):
        if path.endswith(".png"):
            self.assertEqual(iio.imread(path).ndim, 3)
            return
        h_out, w_out = conv_output_shape(
            arguments["input_shape"], arguments["kernel_shape"], arguments.get("stride", 1),
            arguments.get("dilation", 1), arguments.get("padding", 0))
        self.assertEqual(iio.imread(path, index=None).shape[0], h_out * w_out)
        self.assertLess(os.path.getsize(path), 300_000)

    def test_figures_command(self):
        with tempfile.TemporaryDirectory() as folder:
            self.assertEqual(run_main("figures", folder), (0, ""))
            self.assertEqual(sorted(os.listdir(folder)), sorted(FIGURES))
            for name, arguments in FIGURES.items():
                with self.subTest(name=name):
                    self.check_figure(os.path.join(folder, name), arguments)

    def test_readme_shows_every_figure(self):
        readme = (HERE / "README.md").read_text(encoding="utf-8")
        self.assertLessEqual(set(FIGURES), set(os.listdir(HERE / "files")))
        for name, arguments in FIGURES.items():
            with self.subTest(name=name):
                self.assertTrue(f"(files/{name})" in readme, f"README does not show {name}")
                self.check_figure(str(HERE / "files" / name), arguments)
        self.assertTrue("convolution figures" in readme,
                        "README does not say how to regenerate the figures")
