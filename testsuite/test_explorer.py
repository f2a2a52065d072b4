"""The explorer: its settings, its formula and calls, and both front ends driven by their controls."""
import random
import unittest
from unittest import mock

import numpy as np

from convolution import conv2d, conv_transpose2d
from convolution.pictures.explorer import CONTROLS, Explorer

from .common import matplotlib, optional, run_main, torch

ipywidgets = optional("ipywidgets")


def random_settings(rng, layers=True):
    """Settings drawn from every control's range: small inputs, so that many fit."""
    settings = {}
    for control in CONTROLS:
        if control.name == "step":
            continue
        if control.choices is not None:
            settings[control.name] = rng.choice(control.choices)
        elif isinstance(control.default, bool):
            settings[control.name] = rng.random() < 0.4
        else:
            high = 9 if control.name in ("height", "width") else control.high
            settings[control.name] = rng.randint(control.low, high)
    if not layers or rng.random() < 0.5:
        settings.update(in_channels=1, out_channels=1, groups=1)
    if rng.random() < 0.5:
        settings.update(transposed=False)
    return settings


def run(code, namespace):
    """Run ``code``'s lines; return the value of its last line."""
    *lines, last = code.split("\n")
    exec("\n".join(lines), namespace)
    return eval(last, namespace)


def described(rng, count, **fixed):
    """``count`` explorers with random settings that describe a convolution."""
    found = []
    while len(found) < count:
        explorer = Explorer()
        view = explorer.set(**{**random_settings(rng), **fixed})
        if view.error is None:
            found.append((explorer, view))
    return found


class TestExplorer(unittest.TestCase):
    """What the settings mean: geometry, formula, calls; errors named."""

    def test_same_with_an_even_kernel_at_stride_2(self):
        explorer = Explorer(height=5, width=5, kernel_height=4, kernel_width=4, stride_height=2,
                            stride_width=2, padding_height="same", padding_width="same")
        view = explorer.view()
        self.assertEqual(view.geometry.padding, ((1, 2), (1, 2)))
        self.assertEqual(view.geometry.output_shape, (3, 3))
        self.assertIn("'same' on H: ceil(5 / 2) = 3 outputs, total = max((3 − 1)·2 + "
                      "1·(4 − 1) + 1 − 5, 0) = 3: top 1, bottom 2", view.formula)
        self.assertIn("= floor((5 + 1 + 2 − 1·(4 − 1) − 1) / 2) + 1 = 3", view.formula)
        self.assertEqual(view.call.splitlines()[-1], "conv2d(x, k, stride=2, padding='same')")
        self.assertEqual(view.cells, 9)

    def test_padding_per_axis(self):
        # 'full' on the rows, numbers on the columns: the call gives the resolved pairs.
        explorer = Explorer(height=4, width=6, kernel_height=3, kernel_width=2,
                            padding_height="full", pad_left=0, pad_right=3)
        self.assertEqual(explorer.padding(), ((2, 2), (0, 3)))
        self.assertIn("'full' on H: top = bottom = dh·(kh − 1) = 1·(3 − 1) = 2",
                      explorer.view().formula)
        self.assertEqual(explorer.view().call.splitlines()[-1],
                         "conv2d(x, k, padding=((2, 2), (0, 3)))")

    def test_transposed(self):
        view = Explorer(height=3, width=3, stride_height=2, stride_width=2, pad_top=1,
                        pad_bottom=1, pad_left=1, pad_right=1, transposed=True,
                        output_padding_height=1, output_padding_width=1).view()
        self.assertEqual(view.geometry.output_shape, (6, 6))
        self.assertIn("= (3 − 1)·2 − 1 − 1 + 1·(3 − 1) + 1 + 1 = 6", view.formula)
        self.assertEqual(view.call.splitlines()[-1],
                         "conv_transpose2d(x, k, stride=2, padding=1, output_padding=1)")
        self.assertEqual(view.cells, 9)      # one frame per input cell

    def test_layer_and_groups(self):
        view = Explorer(in_channels=4, out_channels=2, groups=2).view()
        self.assertEqual(view.call.splitlines()[1],
                         "w = np.random.default_rng(1).integers(-1, 3, (2, 2, 3, 3))")
        self.assertEqual(view.call.splitlines()[-1], "conv2d(x, w, groups=2)")
        self.assertIn("output channels 0 read input channels 0–1; output channels 1 read "
                      "input channels 2–3", view.channels)

    def test_the_calls_compute_what_the_geometry_says(self):
        rng = random.Random(17)
        for explorer, view in described(rng, 60):
            with self.subTest(settings=explorer.settings):
                namespace = dict(np=np, conv2d=conv2d, conv_transpose2d=conv_transpose2d)
                result = run(view.call, namespace)
                self.assertEqual(result.shape[-2:], view.geometry.output_shape)
                x, w = explorer.arrays()
                np.testing.assert_array_equal(namespace["x"], x)
                # The formula's numbers give the geometry's output shape.
                sizes = [int(line.rsplit("=", 1)[1]) for line in view.formula.splitlines()
                         if line.lstrip().startswith("=")]
                self.assertEqual(tuple(sizes), view.geometry.output_shape)

    @unittest.skipIf(torch is None, "PyTorch is not installed")
    def test_the_pytorch_code_gives_the_same_result(self):
        rng = random.Random(3)
        for explorer, view in described(rng, 80):
            with self.subTest(settings=explorer.settings, torch=view.torch_call):
                namespace = dict(np=np, conv2d=conv2d, conv_transpose2d=conv_transpose2d)
                ours = run(view.call, namespace)
                theirs = run(view.torch_call, namespace).numpy()
                np.testing.assert_allclose(theirs, ours, atol=1e-9)

    def test_step_is_kept_inside_the_cells(self):
        explorer = Explorer(height=6, width=6, step=15)
        self.assertEqual(explorer.settings["step"], 15)
        explorer.set(height=3)              # 1 x 4 outputs now
        self.assertEqual(explorer.settings["step"], 3)

    def test_settings_that_describe_no_convolution(self):
        for settings, message in [
                (dict(height=2, kernel_height=5), "spans"),
                (dict(in_channels=3, groups=2), "groups must divide in_channels"),
                (dict(transposed=True, padding_width="same"), "choose numbers"),
                (dict(transposed=True, stride_height=2, output_padding_height=2),
                 "output_padding")]:
            with self.subTest(settings=settings):
                view = Explorer(**settings).view()
                self.assertIsNone(view.geometry)
                self.assertIn(message, view.error)
                self.assertEqual(view.cells, 0)

    def test_errors(self):
        for settings, error, message in [
                (dict(size=3), TypeError, "unknown setting 'size'; the settings are height"),
                (dict(height=33), ValueError, "height must be from 1 to 32, got 33"),
                (dict(height=2.0), TypeError, "height must be an int, got 2.0"),
                (dict(stride_width=True), TypeError, "stride_width must be an int"),
                (dict(flip=1), TypeError, "flip must be True or False, got 1"),
                (dict(padding_height="half"), ValueError, "padding_height must be one of"),
                (dict(padding_mode="mirror"), ValueError, "padding_mode must be one of")]:
            with self.subTest(settings=settings):
                with self.assertRaisesRegex(error, message):
                    Explorer(**settings)
        self.assertEqual(Explorer(height=np.int64(7)).settings["height"], 7)


@unittest.skipIf(matplotlib is None, "matplotlib is not installed")
class TestExplorerPicture(unittest.TestCase):
    """The picture an explorer draws: the geometry's, labelled, with flip and layers."""

    def texts(self, picture):
        return [text.get_text() for text in picture.ax.texts]

    def test_flip_draws_the_kernel_turned_round(self):
        explorer = Explorer(height=4, width=4, kernel_height=2, kernel_width=2)
        _, k = explorer.arrays()
        plain = explorer.picture()
        explorer.set(flip=True)
        flipped = explorer.picture()
        weights = [t for t in self.texts(plain) if t.startswith("×")]
        self.assertEqual(weights, [f"×{v}" for v in k.ravel()])
        self.assertEqual([t for t in self.texts(flipped) if t.startswith("×")],
                         [f"×{v}" for v in k[::-1, ::-1].ravel()])
        # The sums drawn are conv2d's with flip=True.
        x, _ = explorer.arrays()
        out = conv2d(x, k, flip=True)
        self.assertIn(str(out[-1, -1]), self.texts(flipped))

    def test_input_and_output_are_labelled(self):
        for settings in (dict(), dict(transposed=True, stride_height=2), dict(pad_top=2)):
            with self.subTest(settings=settings):
                texts = self.texts(Explorer(**settings).picture())
                self.assertTrue(any(t.startswith("input") for t in texts), texts)
                self.assertTrue(any(t.startswith("output") for t in texts), texts)

    def test_channels_picture(self):
        for c_in, c_out, groups in ((4, 4, 2), (4, 2, 1), (2, 4, 2), (3, 3, 3)):
            with self.subTest(c_in=c_in, c_out=c_out, groups=groups):
                ax = Explorer(in_channels=c_in, out_channels=c_out, groups=groups
                              ).channels_picture()
                lines = [line for line in ax.lines if line.get_gid() == "read"]
                self.assertEqual(len(lines), c_out * c_in // groups)
                # Each line joins an input channel (left, y = i + 0.5) of the output
                # channel's group to that output channel (right).
                for line in lines:
                    (_, _), (i, o) = line.get_xdata(), np.array(line.get_ydata()) - 0.5
                    self.assertEqual(int(i) // (c_in // groups), int(o) // (c_out // groups))
                bold = [line for line in lines if line.get_linewidth() == 3]
                self.assertEqual([list(line.get_ydata()) for line in bold], [[0.5, 0.5]])
        with self.assertRaisesRegex(ValueError, "groups must divide"):
            Explorer(in_channels=3, groups=2).channels_picture()

    def test_a_large_input(self):
        picture = Explorer(height=32, width=32, padding_height="same",
                           padding_width="same", values=False, step=1023).picture()
        self.assertIn("output cell (31, 31) of 32×32", picture.ax.get_title())


@unittest.skipIf(matplotlib is None or ipywidgets is None, "matplotlib or ipywidgets is absent")
class TestNotebookExplorer(unittest.TestCase):
    """explore(): the ipywidgets, driven in this process as a user drags them."""

    def setUp(self):
        from convolution import explore

        self.explorer = explore(height=6, width=6)

    def test_controls_redraw_and_rewrite(self):
        e = self.explorer
        first, text = e.image.value, e.text.value
        self.assertTrue(bytes(first).startswith(b"\x89PNG"))
        self.assertIn("conv2d(x, k)</pre>", text)
        e.controls["stride_height"].value = 2
        self.assertNotEqual(e.image.value, first)
        self.assertIn("conv2d(x, k, stride=(2, 1))", e.text.value)
        self.assertIn("F.conv2d(xt, wt, stride=(2, 1))[0, 0]", e.text.value)
        self.assertIn("= floor((6 + 0 + 0 − 1·(3 − 1) − 1) / 2) + 1 = 2", e.text.value)
        self.assertEqual(e.controls["step"].max, 2 * 4 - 1)
        picture, before = e._picture, e.image.value
        e.controls["step"].value = 5
        self.assertIs(e._picture, picture)     # only repainted
        self.assertNotEqual(e.image.value, before)
        self.assertIn("output cell (1, 1) of 2×4", picture.ax.get_title())
        # 6 rows, k = 3, stride 2: 'same' wants 3 outputs, windows to row 6: one more row.
        e.controls["padding_height"].value = "same"
        self.assertIn("padding=((0, 1), (0, 0))", e.text.value)

    def test_channels_are_drawn_for_a_layer(self):
        e = self.explorer
        self.assertEqual((bytes(e.channels_image.value), e.channels_image.layout.display),
                         (b"", "none"))
        e.controls["in_channels"].value = 4
        self.assertTrue(bytes(e.channels_image.value).startswith(b"\x89PNG"))
        e.controls["groups"].value = 2           # 1 output channel: groups do not divide it
        self.assertEqual(bytes(e.channels_image.value), b"")
        self.assertIn("groups must divide in_channels and out_channels", e.text.value)
        e.controls["out_channels"].value = 2
        self.assertTrue(bytes(e.channels_image.value).startswith(b"\x89PNG"))
        self.assertIsNone(e.channels_image.layout.display)
        self.assertIn("conv2d(x, w, groups=2)", e.text.value)
        self.assertIn("output channels 0 read input channels 0–1; output channels 1 read "
                      "input channels 2–3", e.text.value)
        e.controls["groups"].value = 1
        e.controls["in_channels"].value = 1
        self.assertIsNone(e.channels_image.layout.display)      # 2 output channels: a layer
        e.controls["out_channels"].value = 1
        self.assertEqual(e.channels_image.layout.display, "none")

    def test_step_follows_a_smaller_output(self):
        e = self.explorer
        e.controls["step"].value = 15
        e.controls["height"].value = 3           # 1 x 4 outputs
        self.assertEqual((e.controls["step"].value, e.controls["step"].max), (3, 3))
        self.assertEqual(e.explorer.settings["step"], 3)

    def test_transposed_and_errors(self):
        e = self.explorer
        e.controls["transposed"].value = True
        self.assertIn("conv_transpose2d(x, k)", e.text.value)
        self.assertIn("F.conv_transpose2d(xt, wt)[0, 0]", e.text.value)
        e.controls["kernel_height"].value = 7
        e.controls["transposed"].value = False      # a 7-row kernel on 6 rows
        self.assertEqual(bytes(e.image.value), b"")
        self.assertIn("more than the padded input", e.text.value)
        e.controls["pad_top"].value = 1
        self.assertTrue(bytes(e.image.value).startswith(b"\x89PNG"))

    def test_shows_itself_as_a_widget(self):
        bundle = self.explorer._repr_mimebundle_()
        self.assertIn("application/vnd.jupyter.widget-view+json", bundle)


@unittest.skipIf(matplotlib is None, "matplotlib is not installed")
class TestWindowExplorer(unittest.TestCase):
    """explore_window(): matplotlib's widgets under Agg, driven as a user clicks them."""

    def setUp(self):
        from convolution import explore_window

        self.window = explore_window(show=False, height=7, width=7)

    def tearDown(self):
        import matplotlib.pyplot as plt

        plt.close(self.window.figure)

    def test_controls_redraw_and_rewrite(self):
        w = self.window
        self.assertIn("conv2d(x, k)\n", w.text.get_text())
        w.sliders["stride_height"].set_val(2)
        w.sliders["kernel_height"].set_val(4)
        w.menus["padding_height"].set_active(w.menus["padding_height"].labels.index(
            next(label for label in w.menus["padding_height"].labels
                 if label.get_text() == "same")))
        text = w.text.get_text()
        self.assertIn("conv2d(x, k, stride=(2, 1), padding=((1, 2), (0, 0)))", text)
        self.assertIn("xt = F.pad(xt, (0, 0, 1, 2))", text)
        self.assertIn("padding top 1, bottom 2, left 0, right 0", w.ax.get_title())
        self.assertEqual(w.sliders["step"].valmax, 4 * 5 - 1)
        w.sliders["step"].set_val(19)
        self.assertIn("output cell (3, 4) of 4×5", w.ax.get_title())

    def test_switches(self):
        w = self.window
        labels = [label.get_text() for label in w.switches.labels]
        w.switches.set_active(labels.index("flip (true convolution)"))
        self.assertIn("conv2d(x, k, flip=True)", w.text.get_text())
        self.assertIn("wt.flip(-2, -1)", w.text.get_text())
        w.switches.set_active(labels.index("transposed"))
        self.assertIn("conv_transpose2d(x, k)", w.text.get_text())
        self.assertIn("input cell (0, 0) of 7×7", w.ax.get_title())
        self.assertEqual(w.sliders["step"].valmax, 48)

    def test_channels(self):
        w = self.window
        self.assertEqual(len(w.channels_ax.lines), 0)
        w.sliders["out_channels"].set_val(4)
        w.sliders["in_channels"].set_val(2)
        w.sliders["groups"].set_val(2)
        self.assertEqual(len([line for line in w.channels_ax.lines
                              if line.get_gid() == "read"]), 4)
        self.assertIn("conv2d(x, w, groups=2)", w.text.get_text())

    def test_an_error_is_drawn(self):
        w = self.window
        w.sliders["kernel_width"].set_val(7)
        w.sliders["width"].set_val(3)
        self.assertEqual(w.text.get_text(), "")
        self.assertTrue(any("more than the padded input" in t.get_text().replace("\n", " ")
                            for t in w.ax.texts))

    def test_command_without_a_display(self):
        status, stderr = run_main("explore", "--input", "5x5")
        self.assertEqual(status, 2)
        self.assertRegex(stderr, r"^convolution: error: the explorer's window needs a display,"
                                 r" and matplotlib's backend is 'agg'.*explore\(\) instead\n$")

    def test_command_opens_the_window(self):
        import matplotlib.pyplot as plt

        shown = []

        def show():
            shown.append([text.get_text() for text in plt.gcf().texts])
            plt.close(plt.gcf())

        with mock.patch("matplotlib.get_backend", return_value="tkagg"), \
                mock.patch("matplotlib.pyplot.show", show):
            self.assertEqual(run_main("explore", "--input", "8x6", "--stride", "2"), (0, ""))
        self.assertEqual(len(shown), 1)
        self.assertIn("conv2d(x, k, stride=2)", "\n".join(shown[0]))
        self.assertIn("= floor((8 + 0 + 0 − 1·(3 − 1) − 1) / 2) + 1 = 3", "\n".join(shown[0]))

    def test_command_errors(self):
        for args, message in [(("--input", "40x5"), "--input must be from 1 to 32, got 40"),
                              (("--kernel", "0"), "--kernel must be from 1 to 7, got 0"),
                              (("--stride", "2x9"), "--stride must be from 1 to 4, got 9")]:
            with self.subTest(args=args):
                self.assertEqual(run_main("explore", *args),
                                 (2, f"convolution: error: {message}\n"))
