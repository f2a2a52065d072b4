"""The examples in the docstrings of every module, the README and docs/*.md, run as doctests."""
import doctest
import importlib
import pkgutil
import re
import unittest

import numpy as np

import convolution

from .common import HERE, matplotlib


def load_tests(loader, tests, pattern):
    """Add the docstring examples of every module and the README's examples."""
    for module in pkgutil.walk_packages(convolution.__path__, "convolution."):
        if module.name.startswith("convolution.pictures") and matplotlib is None:
            continue    # their examples draw figures
        tests.addTests(doctest.DocTestSuite(importlib.import_module(module.name)))
    tests.addTests(doctest.DocTestSuite(convolution))
    for page in [HERE / "README.md", *sorted((HERE / "docs").glob("*.md"))]:
        tests.addTests(doctest.DocFileSuite(str(page), module_relative=False,
                                            globs={"np": np}))
    return tests


class TestPackaging(unittest.TestCase):
    def test_every_subpackage_is_installed(self):
        # `pip install .` installs only the packages pyproject.toml lists: a folder left out
        # imports from the repository but not from an installed copy.
        listed = re.search(r"^packages\s*=\s*\[(.*?)\]", (HERE / "pyproject.toml").read_text(),
                           re.MULTILINE | re.DOTALL)
        self.assertIsNotNone(listed, "pyproject.toml lists no packages")
        listed = set(re.findall(r'"([\w.]+)"', listed.group(1)))
        folders = {".".join(path.parent.relative_to(HERE).parts)
                   for path in (HERE / "convolution").rglob("__init__.py")}
        self.assertEqual(folders, listed)
