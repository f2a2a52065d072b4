"""The test suite: ``python -m unittest tests.py`` runs all of it.

The tests live in the package ``testsuite``, one module per concern (its
``__init__.py`` lists them); this file gathers every ``testsuite/test_*.py``.
One module alone: ``python -m unittest testsuite.test_engine``.
"""
import importlib
import pkgutil

import testsuite


def load_tests(loader, tests, pattern):
    for module in sorted(pkgutil.iter_modules(testsuite.__path__), key=lambda m: m.name):
        if module.name.startswith("test_"):
            tests.addTests(loader.loadTestsFromModule(
                importlib.import_module(f"testsuite.{module.name}")))
    return tests
