"""The book renders its mathematics offline, with MathJax 3 from the installed package.

MathJax is copied from ``sphinx-mathjax-offline`` into ``<html>/mathjax/`` (its own folder,
not ``_static/``), and every page loads it from there.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

from sphinx.application import Sphinx

MATHJAX_DIR = "mathjax"


def _mathjax_source() -> Path:
    spec = importlib.util.find_spec("sphinx-mathjax-offline")
    if spec is None or spec.origin is None:
        raise RuntimeError("MathJax is bundled from the PyPI package sphinx-mathjax-offline; "
                           "install the requirements (make book does this)")
    return Path(spec.origin).parent / "static" / "mathjax"


def copy_mathjax(app: Sphinx) -> None:
    if app.builder.format != "html":
        return
    target = Path(app.outdir) / MATHJAX_DIR
    if not (target / "tex-chtml.js").exists():
        shutil.copytree(_mathjax_source(), target, dirs_exist_ok=True)


def use_local_mathjax(app: Sphinx, config) -> None:
    # Sphinx prefixes a relative script path with _static/; step out of it.
    config.mathjax_path = f"../{MATHJAX_DIR}/tex-chtml.js"

