"""Sphinx extension for the book: offline MathJax and the Results page.

The entry point that ``_config.yml`` registers; each concept lives in its own module here:

* :mod:`tful_mathjax`: MathJax 3 copied from the installed ``sphinx-mathjax-offline``
  package into ``<html>/mathjax/``, so that math renders offline.
* :mod:`tful_results`: each notebook's run time, run record (:mod:`tools.run_record`: which
  models it used and from where, its cold and warm times) and numeric ``glue`` values,
  written to ``_build/results.json`` after every build.
* :mod:`tful_headlines`: the headline numbers of ``book/data/headlines.yml``, validated and
  looked up in a build.
* :mod:`tful_figures`: the Results page's figures, drawn with matplotlib into ``_images/``.
* :mod:`tful_results_page`: the Results page (``book/results.md``), made of
  ``results-<section>`` directives filled once every notebook has been read: the headline
  numbers, cold and warm time and the models' origin per notebook, the spread over the seed
  and thread sweep (``book/data/sweep.json``) and every glued number.
"""

from __future__ import annotations

from sphinx.application import Sphinx
from tful_mathjax import copy_mathjax, use_local_mathjax
from tful_results import write_results
from tful_results_page import SECTIONS, ResultsSection, always_outdated, fill_results, results_placeholder


def setup(app: Sphinx):
    app.add_node(results_placeholder)
    for section in SECTIONS:
        app.add_directive(f"results-{section}", ResultsSection)
    app.connect("builder-inited", copy_mathjax)
    app.connect("env-get-outdated", always_outdated)
    app.connect("doctree-resolved", fill_results)
    app.connect("build-finished", write_results)
    app.connect("config-inited", use_local_mathjax)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
