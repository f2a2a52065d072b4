"""The benchmark commands run to the end on small settings, and write nothing unasked.

They are the project's evidence for its speed claims, so a change that
breaks them (a renamed internal they reach for) must fail here, not in
front of a reader who runs them.
"""
import os
import subprocess
import sys
import tempfile
import unittest

from .common import HERE, torch


def run(script, *args):
    """Run ``benchmarks/<script>`` from an empty folder; (completed process, files left there)."""
    with tempfile.TemporaryDirectory() as folder:
        env = dict(os.environ, CONVOLUTION_THREADS="2")
        done = subprocess.run([sys.executable, str(HERE / "benchmarks" / script), *args],
                              cwd=folder, env=env, capture_output=True, text=True, timeout=300)
        return done, os.listdir(folder)


class TestBenchmarks(unittest.TestCase):

    def test_run_py(self):
        # Tiny images, one round, the peers installed here: every contender's result is
        # checked against ours before it is timed, so a wrong path fails the run too.
        done, left = run("run.py", "--sizes", "64", "--repeats", "1", "--threads", "1,2",
                         "--no-paths")
        self.assertEqual(done.returncode, 0, done.stderr[-2000:])
        self.assertIn("auto", done.stdout)
        self.assertRegex(done.stdout, r"\[(ok|NO)\] 2 thread\(s\): faster than")
        self.assertEqual(left, [])

    def test_size_sweep(self):
        # Through run.py's flag, on small sizes: OpenCV's results are checked against
        # ours before they are timed, and every case's growth is checked.
        done, left = run("run.py", "--sweep", "--sizes", "64", "96", "--repeats", "1",
                         "--threads", "1")
        self.assertEqual(done.returncode, 0, done.stderr[-2000:])
        self.assertRegex(done.stdout, r"11x11 +float64 +1 +96 ")
        self.assertRegex(done.stdout, r"\[(ok|NO)\] 5x5 float32 1 thread\(s\): cost per output")
        self.assertEqual(left, [])

    def test_run_py_writes_where_asked(self):
        with tempfile.TemporaryDirectory() as folder:
            target = os.path.join(folder, "table.md")
            done = subprocess.run([sys.executable, str(HERE / "benchmarks" / "run.py"), "--sizes",
                                   "64", "--repeats", "1", "--threads", "1", "--no-paths",
                                   "--markdown", target], cwd=folder, capture_output=True,
                                  text=True, timeout=300)
            self.assertEqual(done.returncode, 0, done.stderr[-2000:])
            with open(target) as table:
                self.assertTrue(table.read().startswith("| case | size | dtype |"))

    def test_nd_py(self):
        # Small sizes, one round: each contender is checked against ours before it is timed.
        done, left = run("nd.py", "--quick", "--rounds", "1")
        self.assertEqual(done.returncode, 0, done.stderr[-2000:])
        self.assertIn("3-D float32", done.stdout)
        self.assertRegex(done.stdout, r"targets met: \d+ of \d+")
        self.assertEqual(left, [])

    @unittest.skipIf(torch is None, "benchmarks/layer.py compares with PyTorch")
    def test_layer_py(self):
        done, left = run("layer.py", "--quick", "--rounds", "1")
        self.assertEqual(done.returncode, 0, done.stderr[-2000:])
        self.assertIn("layer forward", done.stdout)
        self.assertIn("ours, BLAS threads not limited", done.stdout)
        self.assertEqual(left, [])


if __name__ == "__main__":
    unittest.main()
