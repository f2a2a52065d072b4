"""The examples in the docstrings of every module, the README and docs/*.md, run as doctests."""
import doctest
import importlib
import pkgutil

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
