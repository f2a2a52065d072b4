"""plot_conv2d, plot_conv_transpose2d, their animations, the animate and figures commands."""
import itertools
import math
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

import numpy as np

from convolution import (animate_conv2d, animate_conv_transpose2d, conv2d, conv_output_shape,
                         conv_transpose2d, plot_conv2d, plot_conv_transpose2d)
from convolution.pictures import forward, grid as drawing
from convolution.pictures.animation import Animation, frame_steps, write_animation
from convolution.pictures.figures import FIGURES, conv_beside_transpose
from convolution.geometry import conv_geometry, conv_transpose_geometry, spread, window

from .common import (CHILD_SIGNALS, HERE, iio, matplotlib, torch, README_MATRIX, README_KERNEL,
                     README_MAP, run_main, run_command, run_on_a_terminal)
from .common import optional as optional_module


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
    """Role of every input and output cell in frame ``step``, worked out without the pictures' code."""
    (hp, wp), ((top, _), (left, _)) = padded_shape(geometry), geometry.padding
    (h, w), (ho, wo) = geometry.input_shape, geometry.output_shape
    i, j = divmod(step, wo)
    reads = read_cells(geometry, i, j)
    inputs = {(r, c): drawing.READ if (r, c) in reads
              else drawing.INPUT if top <= r < top + h and left <= c < left + w else drawing.PADDING
              for r, c in itertools.product(range(hp), range(wp))}
    outputs = {(r, c): drawing.DONE if r * wo + c < step else
               drawing.CURRENT if r * wo + c == step else drawing.TODO
               for r, c in itertools.product(range(ho), range(wo))}
    return inputs, outputs


def sample_points(geometry, cells, grid):
    """Data points a quarter cell in from each cell's top-left corner, clear of centred labels."""
    x0 = 0 if grid == "input" else padded_shape(geometry)[1] + drawing.GAP
    return points_in(x0, cells)


def points_in(x0, cells):
    """Points a quarter cell in from the top-left corners of ``cells`` of a grid starting at x0."""
    return np.array([(x0 + c + 0.25, r + 0.25) for r, c in cells])


def rendered_colors(fig, points, ax=None):
    """The RGB colours the Agg canvas draws at data ``points`` of ``ax`` (the first Axes)."""
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3].astype(int)
    xy = (ax or fig.axes[0]).transData.transform(points)
    return image[(image.shape[0] - xy[:, 1]).astype(int), xy[:, 0].astype(int)]


def role_rgb(roles):
    return np.array([np.round(np.array(matplotlib.colors.to_rgb(drawing.COLORS[role])) * 255)
                     for role in roles])


def labels_at(ax):
    """The visible Text artists of ``ax`` by their position."""
    return {tuple(text.get_position()): text for text in ax.texts if text.get_visible()}


def weights_drawn(ax, x0):
    """The kernel weights drawn in ``ax``: {(weight, (row, col) of the cell holding it)}.

    A weight '×w' sits in the bottom-right corner of its cell, 0.95 cell from
    the corner of a grid that starts at ``x0``.
    """
    return {(int(text.get_text()[1:]), (round(y - 0.95, 9), round(x - x0 - 0.95, 9)))
            for text in ax.texts if text.get_text().startswith("×")
            for x, y in [text.get_position()]}


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
        rgb = dict(zip(drawing.COLORS, role_rgb(drawing.COLORS)))
        for a, b in itertools.combinations([drawing.INPUT, drawing.PADDING, drawing.READ, drawing.CURRENT,
                                            drawing.DONE], 2):
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
        x0 = 14 + drawing.GAP
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
                        self.assertEqual(labels[(6 + drawing.GAP + j + 0.5, i + 0.5)].get_text(),
                                         str(value))

    def test_kernel_weights_sit_on_their_taps(self):
        kernel = np.array([[11, 12, 13], [21, 22, 23]])
        g = conv_geometry((8, 9), (2, 3), (2, 3), (3, 2), ((1, 0), (0, 2)))
        for step in range(g.output_shape[0] * g.output_shape[1]):
            fig = plot_conv2d((8, 9), (2, 3), (2, 3), (3, 2), ((1, 0), (0, 2)), step=step,
                              kernel=kernel)
            i, j = divmod(step, g.output_shape[1])
            # Every weight (tap a, b is written 10 * (a + 1) + b + 1) in the bottom-right
            # corner of the cell under its tap; a missing or extra label fails.
            self.assertEqual(weights_drawn(fig.axes[0], 0),
                             {(10 * (a + 1) + b + 1, (i * 2 + a * 3, j * 3 + b * 2))
                              for a in range(2) for b in range(3)}, f"step {step}")

    def test_drawn_into_a_given_axes(self):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(10, 4))
        FigureCanvasAgg(fig)
        left, right = fig.subplots(1, 2)
        self.assertIs(plot_conv2d((5, 5), (3, 3), dilation=2, ax=right), fig)
        self.assertEqual(len(left.collections), 0)
        self.assertEqual(len(right.collections), 2)     # the input grid and the output grid
        self.assertAlmostEqual(right.get_xlim()[1] - right.get_xlim()[0], 5 + drawing.GAP + 1 + 0.1)


# The transposed convolution: each picture must show exactly the cells each input cell adds into.
TRANSPOSE_CASES = [
    dict(input_shape=(3, 3), kernel_shape=(3, 3), stride=2, padding=1, output_padding=1),
    dict(input_shape=(2, 3), kernel_shape=(2, 3), stride=(1, 2), dilation=(2, 1),
         padding=((1, 0), (2, 1))),                        # taps land in the crop mid-animation
    dict(input_shape=(3, 2), kernel_shape=(2, 2), stride=3, output_padding=(2, 1)),
    dict(input_shape=(2, 2), kernel_shape=(3, 2), stride=(1, 2), dilation=(2, 3),
         padding=((0, 3), (4, 0)), output_padding=(1, 2)),   # output_padding beyond the crop
    dict(input_shape=(1, 1), kernel_shape=(1, 1)),
]


def transpose_geometry(case):
    return conv_transpose_geometry(case["input_shape"], case["kernel_shape"],
                                   case.get("stride", 1), case.get("dilation", 1),
                                   case.get("padding", 0), case.get("output_padding", 0))


class Scatter:
    """The transposed convolution worked out in the test from its definition, not by the pictures' code.

    Input cell (i, j) times kernel tap (a, b) lands on output cell
    (i*sh + a*dh - top, j*sw + b*dw - left); what falls outside the output is
    dropped; output_padding adds rows and columns at the bottom and right.
    The picture draws the output inside the uncropped result (the canvas):
    output cell (r, c) is canvas cell (r + top, c + left).
    """

    def __init__(self, geometry):
        g = self.g = geometry
        (self.h, self.w), (self.kh, self.kw) = g.input_shape, g.kernel_shape
        (self.sh, self.sw), (self.dh, self.dw) = g.stride, g.dilation
        ((self.top, bottom), (self.left, right)), (oph, opw) = g.padding, g.output_padding
        full = ((self.h - 1) * self.sh + self.dh * (self.kh - 1) + 1,
                (self.w - 1) * self.sw + self.dw * (self.kw - 1) + 1)
        self.out = (full[0] - self.top - bottom + oph, full[1] - self.left - right + opw)
        self.canvas = (max(full[0], self.top + self.out[0]), max(full[1], self.left + self.out[1]))

    def lands(self, i, j):
        """{tap (a, b): output cell (r, c)} for input cell (i, j), cropped or not."""
        return {(a, b): (i * self.sh + a * self.dh - self.top,
                         j * self.sw + b * self.dw - self.left)
                for a in range(self.kh) for b in range(self.kw)}

    def kept(self, r, c):
        return 0 <= r < self.out[0] and 0 <= c < self.out[1]

    def __call__(self, matrix, kernel, upto=None):
        """The result, from the input cells numbered up to ``upto`` (all by default)."""
        out = np.zeros(self.out, dtype=np.result_type(matrix, kernel, np.int64))
        for n, (i, j) in enumerate(itertools.product(range(self.h), range(self.w))):
            if upto is None or n <= upto:
                for (a, b), (r, c) in self.lands(i, j).items():
                    if self.kept(r, c):
                        out[r, c] += matrix[i][j] * kernel[a][b]
        return out

    def first_reach(self):
        """{canvas cell: the number of the first input cell that adds into it}."""
        first = {}
        for n, (i, j) in enumerate(itertools.product(range(self.h), range(self.w))):
            for r, c in self.lands(i, j).values():
                first.setdefault((r + self.top, c + self.left), n)
        return first

    def roles(self, step):
        """Role of every input and canvas cell in frame ``step``."""
        i, j = divmod(step, self.w)
        now = {(r + self.top, c + self.left) for r, c in self.lands(i, j).values()}
        first = self.first_reach()
        inputs = {(r, c): drawing.DONE if r * self.w + c < step else
                  drawing.CURRENT if r * self.w + c == step else drawing.INPUT
                  for r, c in itertools.product(range(self.h), range(self.w))}
        canvas = {}
        for r, c in itertools.product(*map(range, self.canvas)):
            kept = self.kept(r - self.top, c - self.left)
            canvas[r, c] = ((drawing.READ if kept else drawing.DROPPED) if (r, c) in now else
                            drawing.PADDING if not kept else
                            drawing.DONE if first.get((r, c), math.inf) < step else drawing.TODO)
        return inputs, canvas


@unittest.skipIf(matplotlib is None, "matplotlib is not installed")
class TestPlotTranspose(unittest.TestCase):
    """plot_conv_transpose2d: the cells drawn are the cells each input cell adds into."""

    def assert_colors(self, fig, ax, x0, roles, tolerance=2):
        colors = rendered_colors(fig, points_in(x0, roles), ax)
        wrong = [cell for cell, got, want in zip(roles, colors, role_rgb(roles.values()))
                 if np.abs(got - want).max() > tolerance]
        self.assertEqual(wrong, [], "cells drawn in the wrong colour")

    def test_spread_is_the_formula(self):
        for case in TRANSPOSE_CASES:
            g, scatter = transpose_geometry(case), Scatter(transpose_geometry(case))
            self.assertEqual(g.output_shape, scatter.out)
            for i, j in itertools.product(*map(range, g.input_shape)):
                rows, cols = spread(i, j, g.kernel_shape, g.stride, g.dilation, g.padding)
                self.assertEqual({(a, b): (rows[a], cols[b]) for a in range(len(rows))
                                  for b in range(len(cols))}, scatter.lands(i, j))

    def test_rendered_pixels_show_the_cells_written(self):
        for case in TRANSPOSE_CASES:
            scatter = Scatter(transpose_geometry(case))
            n = scatter.h * scatter.w
            for step in sorted({0, n // 3, n // 2, n - 1}):
                fig = plot_conv_transpose2d(**case, step=step)
                inputs, canvas = scatter.roles(step)
                with self.subTest(case=case, step=step):
                    self.assert_colors(fig, fig.axes[0], 0, inputs)
                    self.assert_colors(fig, fig.axes[0], scatter.w + drawing.GAP, canvas)

    def test_every_role_shows(self):
        # The cases above between them draw every role, so the pixel test covers each.
        seen = set()
        for case in TRANSPOSE_CASES:
            scatter = Scatter(transpose_geometry(case))
            for step in range(scatter.h * scatter.w):
                for roles in scatter.roles(step):
                    seen |= set(roles.values())
        self.assertEqual(seen, set(drawing.COLORS))
        rgb = role_rgb([drawing.DROPPED, drawing.READ, drawing.PADDING, drawing.TODO, drawing.DONE])
        for a, b in itertools.combinations(rgb, 2):
            self.assertGreater(np.abs(a - b).max(), 30)

    def test_running_sums_match_the_scatter(self):
        matrix = np.array([[3, -1, 2], [0, 4, -2]])
        kernel = np.array([[1, -2, 5], [2, 0, -1]])
        cases = [dict(input_shape=(2, 3), kernel_shape=(2, 3), stride=(1, 2), dilation=(2, 1),
                      padding=((1, 0), (2, 1))),
                 dict(input_shape=(2, 3), kernel_shape=(2, 3), stride=2, padding=1,
                      output_padding=1)]
        for case in cases:
            scatter = Scatter(transpose_geometry(case))
            x0, first = scatter.w + drawing.GAP, scatter.first_reach()
            for step in range(6):
                fig = plot_conv_transpose2d(**case, step=step, matrix=matrix, kernel=kernel)
                labels = labels_at(fig.axes[0])
                running = scatter(matrix, kernel, upto=step)
                with self.subTest(case=case, step=step):
                    for (r, c), value in np.ndenumerate(running):
                        # Cells reached so far show their running sum; the others nothing.
                        cell = (r + scatter.top, c + scatter.left)
                        label = labels.get((x0 + cell[1] + 0.5, cell[0] + 0.5))
                        self.assertEqual(label and label.get_text(),
                                         str(value) if first.get(cell, 99) <= step else None)
                    for (r, c), value in np.ndenumerate(matrix):
                        self.assertEqual(labels[(c + 0.5, r + 0.5)].get_text(), str(value))
                    # No sum is drawn in the cropped cells.
                    drawn = {(round(y - 0.5), round(x - x0 - 0.5)) for x, y in labels
                             if x > x0 and labels[x, y].get_text().lstrip("-").isdigit()}
                    self.assertEqual({cell for cell in drawn
                                      if not scatter.kept(cell[0] - scatter.top,
                                                          cell[1] - scatter.left)}, set())
            # The last frame: the whole result (the library's conv_transpose2d, once on main).
            np.testing.assert_array_equal(scatter(matrix, kernel), running)
            np.testing.assert_array_equal(
                conv_transpose2d(matrix, kernel, case["stride"], case.get("dilation", 1),
                                      case["padding"], case.get("output_padding", 0)), running)

    @unittest.skipIf(torch is None, "torch is not installed")
    def test_scatter_agrees_with_torch(self):
        # The test's own scatter, the witness above, against PyTorch's conv_transpose2d.
        rng = np.random.default_rng(10)
        for _ in range(40):
            kh, kw, sh, sw, dh, dw = (int(v) for v in rng.integers(1, 4, size=6))
            h, w, ph, pw = (int(v) for v in rng.integers(1, 5, size=4))
            oph, opw = int(rng.integers(max(sh, dh))), int(rng.integers(max(sw, dw)))
            try:
                g = conv_transpose_geometry((h, w), (kh, kw), (sh, sw), (dh, dw), (ph, pw),
                                            (oph, opw))
            except ValueError:
                continue
            matrix = rng.integers(-5, 6, size=(h, w))
            kernel = rng.integers(-5, 6, size=(kh, kw))
            expected = torch.nn.functional.conv_transpose2d(
                torch.tensor(matrix[None, None], dtype=torch.float64),
                torch.tensor(kernel[None, None], dtype=torch.float64), stride=(sh, sw),
                padding=(ph, pw), output_padding=(oph, opw), dilation=(dh, dw))[0, 0].numpy()
            with self.subTest(geometry=g):
                np.testing.assert_array_equal(Scatter(g)(matrix, kernel), expected)
                np.testing.assert_array_equal(
                    conv_transpose2d(matrix, kernel, g.stride, g.dilation, g.padding,
                                          g.output_padding), expected)

    def test_kernel_weights_sit_on_their_taps(self):
        kernel = np.array([[11, 12], [21, 22], [31, 32]])
        case = TRANSPOSE_CASES[3]
        scatter = Scatter(transpose_geometry(case))
        for step in range(4):
            fig = plot_conv_transpose2d(**case, step=step, kernel=kernel)
            lands = scatter.lands(*divmod(step, scatter.w))
            # On the canvas, dropped taps too; a missing or extra label fails.
            self.assertEqual(weights_drawn(fig.axes[0], scatter.w + drawing.GAP),
                             {(kernel[a, b], (r + scatter.top, c + scatter.left))
                              for (a, b), (r, c) in lands.items()}, f"step {step}")

    def test_frames_of_output_and_output_padding(self):
        # The black frame holds the output; dashed vermillion ones the rows and columns
        # output_padding adds, at its bottom and right.
        from matplotlib.colors import to_rgba
        from matplotlib.patches import Rectangle

        for case in TRANSPOSE_CASES:
            scatter = Scatter(transpose_geometry(case))
            ax = plot_conv_transpose2d(**case).axes[0]
            x0, (ho, wo), (top, left) = scatter.w + drawing.GAP, scatter.out, (scatter.top,
                                                                            scatter.left)
            boxes = {color: sorted((p.get_x() - x0, p.get_y(), p.get_width(), p.get_height())
                                   for p in ax.patches if isinstance(p, Rectangle)
                                   and p.get_edgecolor() == to_rgba(color))
                     for color in (drawing.BORDER_COLOR, drawing.EXTRA_COLOR)}
            oph, opw = case.get("output_padding", (0, 0)) if isinstance(
                case.get("output_padding", 0), tuple) else (case.get("output_padding", 0),) * 2
            extra = sorted(([(left, top + ho - oph, wo, oph)] if oph else [])
                           + ([(left + wo - opw, top, opw, ho)] if opw else []))
            with self.subTest(case=case):
                self.assertEqual(boxes[drawing.BORDER_COLOR], [(left, top, wo, ho)])
                self.assertEqual(boxes[drawing.EXTRA_COLOR], extra)

    def test_conv_beside_transpose(self):
        # The README's figure: frame k, output cell k of conv2d and input cell k of the
        # transposed convolution, each drawn as on its own.
        params = FIGURES["transposed.gif"][1]
        fig, show, frames = conv_beside_transpose(**params)
        forward = conv_geometry(params["input_shape"], params["kernel_shape"], params["stride"],
                                1, params["padding"])
        scatter = Scatter(conv_transpose_geometry(forward.output_shape, params["kernel_shape"],
                                                  params["stride"], 1, params["padding"],
                                                  params["output_padding"]))
        self.assertEqual(scatter.out, forward.input_shape)
        self.assertEqual(frames, math.prod(forward.output_shape))
        left, right = fig.axes
        for step in (0, 4, frames - 1):
            show(step)
            inputs, outputs = expected_roles(forward, step)
            with self.subTest(step=step):
                self.assert_colors(fig, left, 0, inputs)
                self.assert_colors(fig, left, padded_shape(forward)[1] + drawing.GAP, outputs)
                inputs, canvas = scatter.roles(step)
                self.assert_colors(fig, right, 0, inputs)
                self.assert_colors(fig, right, scatter.w + drawing.GAP, canvas)
        with self.assertRaisesRegex(ValueError, r"gives \(5, 5\), not \(6, 6\): choose "
                                                r"output_padding"):
            conv_beside_transpose((6, 6), (3, 3), stride=2, padding=1)

    def test_drawn_into_a_given_axes(self):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(10, 4))
        FigureCanvasAgg(fig)
        left, right = fig.subplots(1, 2)
        self.assertIs(plot_conv_transpose2d((2, 2), (3, 3), stride=2, ax=right), fig)
        self.assertEqual(len(left.collections), 0)
        self.assertEqual(len(right.collections), 2)     # the input grid and the output grid
        # 2 input columns, the gap, the 5 columns of the result.
        self.assertAlmostEqual(right.get_xlim()[1] - right.get_xlim()[0], 2 + drawing.GAP + 5 + 0.1)


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

    def test_transposed_errors_are_the_geometry_s(self):
        bad = [dict(stride=0), dict(stride=2.0), dict(padding="same"), dict(padding=-1),
               dict(output_padding=1), dict(stride=2, output_padding=(0, 2)),
               dict(output_padding=-1), dict(padding=5)]
        for kwargs in bad:
            with self.subTest(**kwargs):
                try:
                    conv_transpose_geometry((3, 3), (3, 3), **kwargs)
                except (TypeError, ValueError) as error:
                    expected = error
                else:
                    self.fail("conv_transpose_geometry accepted it")
                with self.assertRaises(type(expected)) as caught:
                    plot_conv_transpose2d((3, 3), (3, 3), **kwargs)
                self.assertEqual(str(caught.exception), str(expected))
                with tempfile.TemporaryDirectory() as folder:
                    with self.assertRaises(type(expected)) as caught:
                        animate_conv_transpose2d((3, 3), (3, 3),
                                                 path=os.path.join(folder, "a.gif"), **kwargs)
                    self.assertEqual(os.listdir(folder), [])
                self.assertEqual(str(caught.exception), str(expected))

    def test_transposed_step_values_and_ax(self):
        with self.assertRaisesRegex(ValueError, r"step must be an input cell number from 0 to 5 "
                                                r"\(input shape \(2, 3\)\), got 6"):
            plot_conv_transpose2d((2, 3), (3, 3), stride=2, step=6)
        with self.assertRaisesRegex(TypeError, r"step must be an int, got 1.0"):
            plot_conv_transpose2d((2, 3), (3, 3), step=1.0)
        with self.assertRaisesRegex(ValueError, r"matrix must have the shape \(2, 3\) given for "
                                                r"it, got shape \(3, 2\)"):
            plot_conv_transpose2d((2, 3), (3, 3), matrix=np.ones((3, 2)))
        with self.assertRaisesRegex(ValueError, r"kernel must have the shape \(3, 3\)"):
            plot_conv_transpose2d((2, 3), (3, 3), kernel=np.ones((2, 2)))
        with self.assertRaisesRegex(TypeError, r"ax must be a matplotlib Axes or None"):
            plot_conv_transpose2d((2, 3), (3, 3), ax=1)
        from matplotlib.figure import Figure

        ax = Figure().subplots()
        with self.assertRaises(ValueError):
            plot_conv_transpose2d((2, 3), (3, 3), step=6, ax=ax)
        self.assertEqual((len(ax.collections), len(ax.texts), ax.get_title()), (0, 0, ""))

    def test_animation_arguments(self):
        cases = [(ValueError, r"path must end in '.gif' or '.mp4', got '.*a.png'", "a.png", {}),
                 (ValueError, r"fps must be a positive number, got 0", "a.gif", dict(fps=0)),
                 (TypeError, r"fps must be a positive number, got '2'", "a.gif", dict(fps="2")),
                 (TypeError, r"fps must be a positive number, got True", "a.gif", dict(fps=True)),
                 (ValueError, r"fps must be a positive number, got nan", "a.gif",
                  dict(fps=float("nan"))),
                 (ValueError, r"dpi must be a positive number, got -1", "a.gif", dict(dpi=-1)),
                 (ValueError, r"max_frames must be a positive int or None, got 0", "a.gif",
                  dict(max_frames=0)),
                 (TypeError, r"max_frames must be a positive int or None, got 2.0", "a.gif",
                  dict(max_frames=2.0)),
                 (TypeError, r"progress must be a function progress\(done, total\) or None, "
                             r"got 'bar'", "a.gif", dict(progress="bar"))]
        for error, pattern, name, kwargs in cases:
            with self.subTest(pattern=pattern), tempfile.TemporaryDirectory() as folder:
                with self.assertRaisesRegex(error, pattern):
                    animate_conv2d((5, 5), (3, 3), path=os.path.join(folder, name), **kwargs)
                with self.assertRaisesRegex(error, pattern):
                    animate_conv_transpose2d((2, 2), (3, 3), path=os.path.join(folder, name),
                                             **kwargs)
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
        self.assertEqual(len(frames), math.prod(g.output_shape))
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


    def test_transposed_frames_show_the_cells_written(self):
        # Every frame of the GIF, against the roles worked out in the test. The GIF's one
        # palette must hold every role's colour exactly, those of the middle frames too
        # (this case drops taps in the cropped columns in frames 2 and 3 only).
        case = dict(input_shape=(2, 3), kernel_shape=(2, 3), stride=(1, 2), dilation=(2, 1),
                    padding=((1, 0), (2, 1)))
        scatter = Scatter(transpose_geometry(case))
        with tempfile.TemporaryDirectory() as folder:
            path = animate_conv_transpose2d(**case, path=os.path.join(folder, "t.gif"), dpi=60)
            frames = iio.imread(path, index=None)[..., :3].astype(int)
        self.assertEqual(len(frames), 6)
        fig = plot_conv_transpose2d(**case)
        fig.canvas.draw()
        to_fraction = fig.axes[0].transData + fig.transFigure.inverted()
        height, width = frames.shape[1:3]
        for step, frame in enumerate(frames):
            for x0, roles in zip((0, scatter.w + drawing.GAP), scatter.roles(step)):
                fx, fy = to_fraction.transform(points_in(x0, roles)).T
                colors = frame[((1 - fy) * height).astype(int), (fx * width).astype(int)]
                wrong = [cell for cell, got, want in zip(roles, colors, role_rgb(roles.values()))
                         if np.abs(got - want).max() > 2]
                with self.subTest(step=step, x0=x0):
                    self.assertEqual(wrong, [])

    def test_max_frames_and_progress(self):
        self.assertEqual(list(frame_steps(4)), [0, 1, 2, 3])
        self.assertEqual(list(frame_steps(4, max_frames=9)), [0, 1, 2, 3])
        self.assertEqual(list(frame_steps(9, max_frames=1)), [0])
        for cells, count in itertools.product((2, 7, 60, 900, 901), (2, 3, 7, 59, 60)):
            steps = frame_steps(cells, count)
            with self.subTest(cells=cells, count=count):
                self.assertEqual(len(steps), min(cells, count))
                self.assertEqual(len(set(steps)), len(steps))
                self.assertEqual((steps[0], steps[-1]), (0, cells - 1))
                self.assertEqual(list(steps), sorted(steps))
                gaps = np.diff(steps)
                self.assertLessEqual(gaps.max() - gaps.min(), 1)        # as even as can be
        calls = []
        with tempfile.TemporaryDirectory() as folder:
            path = animate_conv2d((6, 6), (2, 2), path=os.path.join(folder, "a.gif"),
                                  max_frames=4, progress=lambda *a: calls.append(a))
            self.assertEqual(iio.imread(path, index=None).shape[0], 4)
            path = animate_conv_transpose2d((3, 4), (2, 2), path=os.path.join(folder, "t.gif"),
                                            max_frames=5)
            self.assertEqual(iio.imread(path, index=None).shape[0], 5)
        self.assertEqual(calls, [(1, 4), (2, 4), (3, 4), (4, 4)])

    def test_interrupted_animation_writes_nothing(self):
        # Ctrl-C while the frames are drawn, the first one included: the KeyboardInterrupt
        # comes out as it is (matplotlib's writer.saving() turned an interruption before the
        # first frame into IndexError: list index out of range), and no file is written.
        picture = forward.conv2d_picture((4, 4), (3, 3), 1, 1, 0, "zeros", 0, None, None, None)
        for stop in (0, 1, 3):
            def show(step):
                if step == stop:
                    raise KeyboardInterrupt
                picture.show(step)

            with self.subTest(stop=stop), tempfile.TemporaryDirectory() as folder:
                with self.assertRaises(KeyboardInterrupt):
                    write_animation(os.path.join(folder, "a.gif"), picture.ax.figure, show,
                                    [1, 0, 2, 3])
                self.assertEqual(os.listdir(folder), [])


@unittest.skipIf(matplotlib is None or iio is None, "matplotlib or imageio is not installed")
class TestAnimateCommandLine(unittest.TestCase):
    """python -m convolution animate: writes the file, or one line on stderr and status 2."""

    def test_writes_the_animation(self):
        with tempfile.TemporaryDirectory() as folder:
            result = run_command("animate", "out.gif", "--input", "5x6", "--kernel", "2x3",
                                 "--stride", "2", "--dilation", "1x2", "--padding", "1x0x2x1",
                                 "--padding-mode", "symmetric", "--fps", "4", cwd=folder)
            # No progress line: stderr is not a terminal.
            self.assertEqual((result.returncode, result.stderr), (0, ""))
            self.assertEqual(result.stdout, "writing out.gif: 9 frames, one per output cell\n"
                                            "wrote out.gif\n")
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
            # An error in the options comes first: it is the one to fix, --force or not.
            self.assertEqual(run_main("animate", path, "--input", "0x4", "--kernel", "3x3"),
                             (2, "convolution: error: --input must not have an empty axis, "
                                 "got (0, 4)\n"))
            self.assertEqual(Path(path).read_bytes(), b"keep")
            self.assertEqual(run_main("animate", path, "--input", "4x4", "--kernel", "3x3",
                                      "--force"), (0, ""))
            self.assertEqual(iio.imread(path, index=None).shape[0], 4)

    def test_bad_input_in_a_new_process(self):
        with tempfile.TemporaryDirectory() as folder:
            result = run_command("animate", "out.gif", "--input", "5x5", "--kernel", "3x3",
                                 "--stride", "0", cwd=folder)
            self.assertEqual(result.returncode, 2)
            self.assertEqual(result.stderr, "convolution: error: --stride must "
                                            "be an int >= 1 or a pair of them, got 0\n")
            self.assertEqual(os.listdir(folder), [])

    def test_bad_input(self):
        cases = [(["--input", "5by5"], "argument --input: expected HxW (two whole numbers) or "
                                       "a file of numbers (.npy or text), got '5by5'"),
                 (["--input", "5"], "argument --input: expected HxW"),
                 (["--input", "0x5"], "error: --input must not have an empty axis, got (0, 5)"),
                 (["--kernel", "9x9"], "kernel of shape (9, 9) with --dilation (1, 1) spans"),
                 (["--dilation", "2.5"], "argument --dilation: expected N or HxW with whole numbers, got "
                                          "'2.5'"),
                 (["--padding", "-1"], "padding must be non-negative, got -1"),
                 (["--padding", "1x2x3"], "argument --padding: expected valid, same, full, N, HxW or "
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

    def test_transposed(self):
        with tempfile.TemporaryDirectory() as folder:
            result = run_command("animate", "up.gif", "--input", "3x2", "--kernel", "3x3",
                                 "--stride", "2", "--padding", "1x0x1x1", "--transposed",
                                 "--output-padding", "1x0", "--max-frames", "5", cwd=folder)
            self.assertEqual((result.returncode, result.stderr), (0, ""))
            self.assertEqual(result.stdout, "writing up.gif: 5 frames, for 5 of the 6 input "
                                            "cells\nwrote up.gif\n")
            self.assertEqual(os.listdir(folder), ["up.gif"])
            self.assertEqual(iio.imread(os.path.join(folder, "up.gif"), index=None).shape[0], 5)
        cases = [(["--padding", "same"], "padding of a transposed convolution must be an int, "
                                         "a pair (pad_h, pad_w) or a pair of pairs"),
                 (["--padding-mode", "reflect"], "--padding-mode reflect does not apply with "
                                                 "--transposed"),
                 (["--output-padding", "2"], "--output-padding must be smaller than the stride "
                                             "or the dilation on its axis"),
                 (["--padding", "4"], "crops more than the transposed convolution produces")]
        with tempfile.TemporaryDirectory() as folder:
            out = os.path.join(folder, "out.gif")
            for extra, message in cases:
                status, stderr = run_main("animate", out, "--input", "2x2", "--kernel", "3x3",
                                          "--stride", "2", "--transposed", *extra)
                with self.subTest(extra=extra):
                    self.assertEqual((status, stderr.count("\n")), (2, 1), stderr)
                    self.assertIn(message, stderr)
                    self.assertEqual(os.listdir(folder), [])
            status, stderr = run_main("animate", out, "--input", "4x4", "--kernel", "3x3",
                                      "--stride", "2", "--output-padding", "1")
            self.assertEqual((status, stderr), (2, "convolution: error: --output-padding "
                                                   "applies only with --transposed\n"))
            status, stderr = run_main("animate", out, "--input", "4x4", "--kernel", "3x3",
                                      "--max-frames", "0")
            self.assertEqual((status, stderr.count("\n")), (2, 1))
            self.assertIn("argument --max-frames: expected a whole number >= 1, got '0'", stderr)
            self.assertEqual(os.listdir(folder), [])

    def start(self, folder, *extra):
        """``animate`` of 144 frames in a new process; its first line of stdout, read."""
        env = dict(os.environ, PYTHONPATH=str(HERE))
        process = subprocess.Popen(
            [sys.executable, "-m", "convolution", "animate", "out.gif", "--input", "12x12",
             "--kernel", "3x3", "--padding", "same", *extra], cwd=folder, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **CHILD_SIGNALS)
        return process, process.stdout.readline()

    def test_ctrl_c_at_any_time(self):
        # SIGINT from the moment the command says what it will draw (matplotlib is still
        # being imported) to well into the frames: one line, status 130, nothing left behind.
        for delay in (0, 0.05, 0.2, 0.5, 1.0, 2.0):
            with tempfile.TemporaryDirectory() as folder:
                process, first = self.start(folder)
                self.assertEqual(first, "writing out.gif: 144 frames, one per output cell "
                                        "(--max-frames N draws fewer)\n")
                time.sleep(delay)
                process.send_signal(signal.SIGINT)
                stdout, stderr = process.communicate(timeout=60)
                with self.subTest(delay=delay):
                    self.assertEqual((process.returncode, stderr, stdout),
                                     (130, "convolution: interrupted\n", ""))
                    self.assertEqual(os.listdir(folder), [])

    def test_progress_on_a_terminal(self):
        # stderr a terminal: a tqdm bar of the frames, 'saving' once all are drawn, cleared.
        with tempfile.TemporaryDirectory() as folder:
            status, stdout, shown = run_on_a_terminal("animate", "out.gif", "--input", "3x3",
                                                      "--kernel", "2x2", cwd=folder)
            self.assertEqual(status, 0)
            self.assertEqual(stdout, "writing out.gif: 4 frames, one per output cell\n"
                                     "wrote out.gif\n")
        self.assertTrue(shown.startswith("\rdrawing:   0%"), shown)
        self.assertRegex(shown, r"\rdrawing: 100%.* 4/4 .*saving\]")
        self.assertTrue(shown.endswith("\r" + " " * 79 + "\r"), shown)

    def test_missing_option(self):
        status, stderr = run_main("animate", "out.gif", "--input", "5x5")
        self.assertEqual((status, stderr), (2, "convolution: error: the following arguments are "
                                               "required: --kernel (see 'convolution animate "
                                               "--help')\n"))


@unittest.skipIf(matplotlib is None, "matplotlib is not installed")
class TestShownInANotebook(unittest.TestCase):
    """Figures show as PNG and animations play as the value of a cell; nothing else opens."""

    def test_figure_has_a_png_repr(self):
        from matplotlib._pylab_helpers import Gcf

        before = Gcf.get_num_fig_managers()
        fig = plot_conv2d((5, 5), (3, 3), stride=2)
        png = fig._repr_png_()
        self.assertTrue(png.startswith(b"\x89PNG\r\n\x1a\n"))
        width, height = np.frombuffer(png[16:24], ">u4")
        self.assertEqual((width, height), tuple(np.round(fig.get_size_inches() * fig.dpi)))
        self.assertEqual(Gcf.get_num_fig_managers(), before)   # no pyplot window
        fig = plot_conv_transpose2d((2, 2), (3, 3), stride=2)
        self.assertTrue(fig._repr_png_().startswith(b"\x89PNG"))
        # Still a Figure in every other way, pickled and unpickled too.
        copy = pickle.loads(pickle.dumps(fig))
        self.assertEqual(copy.axes[0].get_title(), fig.axes[0].get_title())
        self.assertTrue(copy._repr_png_().startswith(b"\x89PNG"))

    def test_ipython_shows_the_png(self):
        IPython = optional_module("IPython")
        if IPython is None:
            self.skipTest("IPython is not installed")
        from IPython.core.formatters import DisplayFormatter

        data, _ = DisplayFormatter().format(plot_conv2d((4, 4), (2, 2)))
        self.assertIn("image/png", data)
        data, _ = DisplayFormatter().format(animate_conv2d((3, 3), (2, 2)))
        self.assertIn("text/html", data)

    def test_animation_plays_inline_and_writes_nothing(self):
        with tempfile.TemporaryDirectory() as folder:
            old = os.getcwd()
            os.chdir(folder)
            try:
                animation = animate_conv2d((5, 5), (3, 3), stride=2)
                html = animation._repr_html_()
            finally:
                os.chdir(old)
            self.assertEqual(os.listdir(folder), [])
        self.assertIsInstance(animation, Animation)
        self.assertEqual(animation.frames, 4)
        self.assertIn("<script", html)
        self.assertEqual(html.count("data:image/png;base64,"), 4)
        self.assertIs(animation._repr_html_(), html)          # drawn once
        self.assertEqual(repr(animation), "<Animation of conv2d, input (5, 5), kernel (3, 3): "
                                          "4 frames at 2 fps>")
        transposed = animate_conv_transpose2d((2, 3), (3, 3), stride=2, max_frames=4)
        self.assertEqual(transposed._repr_html_().count("data:image/png;base64,"), 4)

    def test_animation_save(self):
        animation = animate_conv2d((4, 4), (3, 3), padding=1, fps=4, max_frames=5)
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "a.gif")
            self.assertEqual(animation.save(path), path)
            frames = iio.imread(path, index=None) if iio is not None else None
            if frames is not None:
                self.assertEqual(frames.shape[0], 5)
            with self.assertRaisesRegex(ValueError, "path must end in '.gif' or '.mp4'"):
                animation.save(os.path.join(folder, "a.png"))
            self.assertEqual(sorted(os.listdir(folder)), ["a.gif"])
        with self.assertRaisesRegex(TypeError, "path must be a str or os.PathLike, got None"):
            write_animation(None, animation.figure, animation.show, [0])


@unittest.skipIf(matplotlib is None, "matplotlib is not installed")
class TestArraysInPlaceOfShapes(unittest.TestCase):
    """plot_conv2d(matrix, kernel) and animate_conv2d(matrix, kernel): values and sums."""

    matrix = np.array([[1, 2, 0, 3], [0, 1, 3, 1], [2, 2, 1, 0]])
    kernel = np.array([[1, 0], [0, -1]])

    def texts(self, fig):
        return sorted(text.get_text() for text in fig.axes[0].texts)

    def test_same_picture_as_with_keywords(self):
        for plot, args in ((plot_conv2d, dict(stride=(1, 2), padding=1, step=3)),
                           (plot_conv_transpose2d, dict(stride=2, step=5))):
            with self.subTest(plot=plot.__name__):
                by_values = plot(self.matrix, self.kernel, **args)
                by_keywords = plot(self.matrix.shape, self.kernel.shape, matrix=self.matrix,
                                   kernel=self.kernel, **args)
                self.assertEqual(self.texts(by_values), self.texts(by_keywords))
                self.assertEqual(by_values.axes[0].get_title(), by_keywords.axes[0].get_title())

    def test_the_sums_are_drawn(self):
        fig = plot_conv2d(self.matrix, self.kernel, step=5)
        sums = conv2d(self.matrix, self.kernel)
        # 1*1 + 3*(-1) at output cell (1, 2): the title names it; every sum is written.
        self.assertIn(f"output cell (1, 2) of 2×3 · sum of weight × value over the blue cells "
                      f"= {sums[1, 2]}", fig.axes[0].get_title())
        texts = self.texts(fig)
        for value in sums.ravel():
            self.assertIn(str(value), texts)
        # A nested list is values too, and a shape mixed with values works.
        self.assertEqual(self.texts(plot_conv2d(self.matrix.tolist(), self.kernel.tolist(),
                                                step=5)), texts)
        mixed = plot_conv2d(self.matrix, (2, 2), step=5)
        self.assertIn("3", self.texts(mixed))
        animation = animate_conv2d(self.matrix, self.kernel)
        self.assertEqual(animation.frames, 6)

    def test_errors(self):
        with self.assertRaisesRegex(TypeError, "matrix given twice: as values in place of "
                                               "input_shape, and as matrix="):
            plot_conv2d(self.matrix, (2, 2), matrix=self.matrix)
        with self.assertRaisesRegex(TypeError, "kernel given twice"):
            animate_conv2d((3, 4), self.kernel, kernel=self.kernel)
        with self.assertRaisesRegex(ValueError, r"matrix must have 2 dimensions \(H, W\) to "
                                                r"be drawn, got shape \(2, 3, 4\)"):
            plot_conv2d(np.ones((2, 3, 4)), (2, 2))
        with self.assertRaisesRegex(ValueError, "ragged|same length|inhomogeneous"):
            plot_conv2d([[1, 2], [3]], (1, 1))
        # A flat sequence is still a shape, and its errors are the shape's.
        with self.assertRaisesRegex(TypeError, "input_shape must be a tuple of ints"):
            plot_conv2d((5.0, 5), (3, 3))


@unittest.skipIf(matplotlib is None or iio is None, "matplotlib or imageio is not installed")
class TestAnimateValuesFromFiles(unittest.TestCase):
    """convolution animate --input FILE --kernel FILE: the values and the sums."""

    def test_files(self):
        with tempfile.TemporaryDirectory() as folder:
            values = os.path.join(folder, "values.txt")
            with open(values, "w") as file:
                file.write("# the input\n1 2 0\n0, 1, 3\n2 2 1\n")
            kernel = os.path.join(folder, "kernel.npy")
            np.save(kernel, np.array([[1, 0], [0, -1]]))
            out = os.path.join(folder, "sums.gif")
            self.assertEqual(run_main("animate", out, "--input", values, "--kernel", kernel),
                             (0, ""))
            self.assertEqual(iio.imread(out, index=None).shape[0], 4)
            out2 = os.path.join(folder, "shape.gif")
            self.assertEqual(run_main("animate", out2, "--input", values, "--kernel", "2x2",
                                      "--transposed", "--stride", "2"), (0, ""))
            self.assertEqual(iio.imread(out2, index=None).shape[0], 9)

    def test_bad_files(self):
        with tempfile.TemporaryDirectory() as folder:
            bad = os.path.join(folder, "bad.txt")
            with open(bad, "w") as file:
                file.write("1 a\n")
            ragged = os.path.join(folder, "ragged.txt")
            with open(ragged, "w") as file:
                file.write("1 2\n3\n")
            out = os.path.join(folder, "a.gif")
            for args, message in [
                    (("--input", bad, "--kernel", "2x2"),
                     f"--input: file {bad!r}, line 1: 'a' is not a number"),
                    (("--input", "3x3", "--kernel", ragged),
                     f"--kernel: file {ragged!r} must have as many numbers on every line"),
                    (("--input", os.path.join(folder, "none.txt"), "--kernel", "2x2"),
                     "argument --input: expected HxW (two whole numbers) or a file of numbers")]:
                with self.subTest(args=args):
                    status, stderr = run_main("animate", out, *args)
                    self.assertEqual(status, 2)
                    self.assertIn(message, stderr)
                    self.assertEqual(stderr.count("\n"), 1)
            self.assertEqual(sorted(os.listdir(folder)), ["bad.txt", "ragged.txt"])


class TestPicturesAreOptional(unittest.TestCase):
    """matplotlib is needed only when a picture is drawn."""

    def run_python(self, code):
        env = dict(os.environ, PYTHONPATH=str(HERE))
        return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                              text=True, timeout=60)

    def test_import_costs_numpy_only(self):
        result = self.run_python("import sys, convolution; print(sorted({m.split('.')[0] for m "
                                 "in sys.modules} & {'matplotlib', 'PIL', 'imageio', 'IPython', "
                                 "'ipywidgets', 'traitlets', 'scipy', 'torch', 'dask'}))")
        self.assertEqual(result.stdout, "[]\n", result.stderr)

    def test_explore_without_ipywidgets(self):
        result = self.run_python("import sys; sys.modules['ipywidgets'] = None\n"
                                 "import convolution\n"
                                 "try:\n    convolution.explore()\n"
                                 "except ImportError as error:\n    print(error)")
        self.assertEqual(result.stdout, "explore() needs ipywidgets in Jupyter: pip install "
                                        "ipywidgets (or run 'convolution explore' for a "
                                        "window)\n", result.stderr)

    def test_without_matplotlib(self):
        # sys.modules[name] = None makes `import name` fail as if it were not installed.
        result = self.run_python(
            "import sys; sys.modules['matplotlib'] = None\n"
            "from convolution.cli import main\n"
            "sys.exit(main(['animate', 'never.gif', '--input', '3x3', '--kernel', '2x2']))")
        self.assertEqual((result.returncode, result.stderr),
                         (2, "convolution: error: the pictures need "
                             "matplotlib: pip install matplotlib\n"))

    def test_figures_without_matplotlib_make_no_folder(self):
        with tempfile.TemporaryDirectory() as folder:
            result = self.run_python(
                "import os, sys; sys.modules['matplotlib'] = None\n"
                "from convolution.cli import main\n"
                f"os.chdir({folder!r})\n"
                "sys.exit(main(['figures', 'new']))")
            self.assertEqual((result.returncode, result.stderr),
                             (2, "convolution: error: the pictures need "
                                 "matplotlib: pip install matplotlib\n"))
            self.assertEqual(os.listdir(folder), [])


@unittest.skipIf(matplotlib is None or iio is None, "matplotlib or imageio is not installed")
class TestReadmeFigures(unittest.TestCase):
    """python -m convolution figures, and the figures the README shows."""

    def check_figure(self, path, arguments):
        frames = iio.imread(path, index=None)
        if path.endswith(".png"):
            frames = frames[None]
        else:
            # One frame per output cell of the (forward) convolution; for the figure of the
            # transposed convolution beside it, as many input cells.
            h_out, w_out = conv_output_shape(
                arguments["input_shape"], arguments["kernel_shape"], arguments.get("stride", 1),
                arguments.get("dilation", 1), arguments.get("padding", 0))
            self.assertEqual(frames.shape[0], h_out * w_out)
            self.assertLess(os.path.getsize(path), 300_000)
        # Not blank: every frame has its orange cell and blue ones, a few hundred pixels each.
        for role in (drawing.CURRENT, drawing.READ):
            pixels = (frames[..., :3] == role_rgb([role])[0]).all(-1).sum(axis=(1, 2))
            self.assertGreater(pixels.min(), 300, f"too little {drawing.COLORS[role]} in {path}")

    def test_figures_command(self):
        with tempfile.TemporaryDirectory() as folder:
            self.assertEqual(run_main("figures", folder), (0, ""))
            self.assertEqual(sorted(os.listdir(folder)), sorted(FIGURES))
            for name, (_, arguments) in FIGURES.items():
                with self.subTest(name=name):
                    self.check_figure(os.path.join(folder, name), arguments)

    def test_figures_are_shown(self):
        # Every figure in the README or a page of docs/ (the README's text is the lead's:
        # a new figure is shown in docs/ until it is placed there).
        pages = [HERE / "README.md", *sorted((HERE / "docs").glob("*.md"))]
        text = "\n".join(page.read_text(encoding="utf-8") for page in pages)
        self.assertLessEqual(set(FIGURES), set(os.listdir(HERE / "files")))
        for name, (_, arguments) in FIGURES.items():
            with self.subTest(name=name):
                self.assertTrue(f"(files/{name})" in text or f"(../files/{name})" in text,
                                f"neither the README nor docs/ shows {name}")
                self.check_figure(str(HERE / "files" / name), arguments)
        self.assertTrue("convolution figures" in text,
                        "README does not say how to regenerate the figures")
