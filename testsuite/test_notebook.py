"""The teaching notebook, executed in a real Jupyter kernel, and its outputs read back."""
import os
import subprocess
import tempfile
import unittest
from unittest import mock

from .common import HERE, matplotlib, optional

nbclient = optional("nbclient")
nbformat = optional("nbformat")
ipykernel = optional("ipykernel")
ipywidgets = optional("ipywidgets")

NOTEBOOK = HERE / "examples" / "learning_convolution.ipynb"


@unittest.skipIf(None in (nbclient, nbformat, ipykernel, ipywidgets, matplotlib),
                 "nbclient, nbformat, ipykernel, ipywidgets or matplotlib is not installed")
class TestNotebook(unittest.TestCase):
    """examples/learning_convolution.ipynb runs top to bottom in a fresh kernel."""

    @classmethod
    def setUpClass(cls):
        cls.notebook = nbformat.read(NOTEBOOK, as_version=4)
        paths = [str(HERE)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        # The kernel imports this checkout, runs with the backend Jupyter gives it (no
        # MPLBACKEND from the test run) and starts in an empty folder.
        environment = {"PYTHONPATH": os.pathsep.join(paths)}
        with tempfile.TemporaryDirectory() as folder, \
                mock.patch.dict(os.environ, environment):
            os.environ.pop("MPLBACKEND", None)
            nbclient.NotebookClient(cls.notebook, timeout=600, kernel_name="python3",
                                    resources={"metadata": {"path": folder}}
                                    ).execute(stderr=subprocess.DEVNULL)   # its start-up notes
            cls.written = os.listdir(folder)

    def outputs(self):
        for cell in self.notebook.cells:
            if cell.cell_type == "code":
                yield cell, cell.outputs

    def test_no_errors_and_every_cell_shows_something(self):
        for cell, outputs in self.outputs():
            with self.subTest(cell=cell.source[:60]):
                self.assertFalse([o for o in outputs if o.output_type == "error"])
                self.assertFalse([o for o in outputs if o.get("name") == "stderr"])
                if not cell.source.startswith(("import", "from")):
                    self.assertTrue(outputs, "no output")
        self.assertEqual(self.written, [])      # nothing written: every picture is inline

    def result(self, start):
        """The data of the result of the first cell whose source starts with ``start``."""
        cell = next(cell for cell, _ in self.outputs() if cell.source.startswith(start))
        results = [o for o in cell.outputs if o.output_type == "execute_result"]
        self.assertEqual(len(results), 1, cell.source)
        return results[0].data

    def test_pictures_are_png(self):
        data = self.result("plot_conv2d(image, kernel, step=5)")
        self.assertTrue(data["image/png"].startswith("iVBORw0KGgo"))    # base64 of \x89PNG
        self.assertIn("PictureFigure", data["text/plain"])

    def test_animations_play(self):
        for start, frames in (("animate_conv2d(image, kernel)", 6),
                              ("animate_conv2d((5, 5), (3, 3), stride=2)", 4),
                              ("animate_conv_transpose2d((3, 3)", 9)):
            with self.subTest(cell=start):
                html = self.result(start)["text/html"]
                self.assertIn("<script", html)
                self.assertEqual(html.count("data:image/png;base64,"), frames)

    def test_results_a_learner_traces(self):
        self.assertEqual(self.result("image = np.array")["text/plain"],
                         "array([[ 0, -1, -1],\n       [-2,  0,  3]])")
        self.assertEqual(self.result('resolve_padding("same"')["text/plain"],
                         "((1, 2), (1, 2))")
        self.assertEqual(self.result("conv_output_shape((5, 5), (3, 3), stride=2)")
                         ["text/plain"], "(2, 2)")

    def test_the_explorer_is_a_widget(self):
        data = self.result("explore(")
        self.assertIn("application/vnd.jupyter.widget-view+json", data)
        self.assertIn("conv2d(x, k, stride=2, padding='same')", data["text/plain"])

    def test_the_stored_notebook_is_clean(self):
        stored = nbformat.read(NOTEBOOK, as_version=4)
        nbformat.validate(stored)
        for cell in stored.cells:
            if cell.cell_type == "code":
                self.assertEqual((cell.outputs, cell.execution_count), ([], None))
