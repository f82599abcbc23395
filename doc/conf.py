"""Sphinx configuration: ``pip install -e ".[docs]" && sphinx-build doc doc/_build``."""

import skdeepcluster

project = "skdeepcluster"
release = version = skdeepcluster.__version__
extensions = ["sphinx.ext.autodoc", "sphinx.ext.autosummary", "numpydoc", "sphinx.ext.doctest"]
autosummary_generate = True
numpydoc_show_class_members = False
html_theme = "alabaster"
exclude_patterns = ["_build"]
