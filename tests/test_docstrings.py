"""The Examples sections of the docstrings run and print what they say."""

import doctest
import importlib
import pkgutil

import pytest

import skdeepcluster

MODULES = sorted(
    name
    for _, name, _ in pkgutil.walk_packages(skdeepcluster.__path__, prefix="skdeepcluster.")
)


@pytest.mark.parametrize("module_name", MODULES)
def test_docstring_examples(module_name):
    module = importlib.import_module(module_name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS, report=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} docstring examples failed in {module_name}"
