"""Build the book once (warnings are errors) and check the HTML a reader gets.

Run after the notebooks' nbmake tests, the build takes their outputs from the
execution cache rather than running every notebook again.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from bs4 import BeautifulSoup

from tests.helpers import BOOK_BUDGET_SECONDS, BUILD, HTML, NOTEBOOKS, ROOT, budget, toc_files

NB_IDS = [p.name for p in NOTEBOOKS]
DEBRIS = [
    (re.compile(r"Traceback \(most recent call last\)"), "a traceback"),
    (re.compile(r"\b\w*Warning\b"), "a warning"),
    (re.compile(r"\d+%\|"), "a progress bar"),
    (re.compile(r"\d+(\.\d+)?(it/s|s/it)\b"), "a progress bar"),
    (re.compile(r"<[\w.]+ (object )?at 0x[0-9a-f]+>"), "an object's default repr"),
]


@pytest.fixture(scope="session")
def built_book():
    jb = Path(sys.executable).parent / "jupyter-book"
    log = BUILD / "book-build.log"
    log.parent.mkdir(exist_ok=True)
    result = subprocess.run([str(jb), "build", str(ROOT), "-W", "-n", "--keep-going"],
                            cwd=ROOT, capture_output=True, text=True)
    log.write_text(result.stdout + result.stderr)
    assert result.returncode == 0, f"book build failed (full log: {log}):\n" \
        + (result.stdout + result.stderr)[-4000:]
    return HTML


def book_extension():
    """The book's Sphinx extension module (book/_ext/tful_book.py), for its helpers."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("tful_book", ROOT / "book" / "_ext" / "tful_book.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _executed(path: Path):
    """The executed notebook the book rendered, from the execution cache."""
    from jupyter_cache import get_cache

    cache = get_cache(BUILD / ".jupyter_cache")
    record = cache.match_cache_notebook(nbformat.read(path, as_version=4))
    return cache.get_cache_bundle(record.pk).nb


def _page(html_root: Path, stem: str) -> BeautifulSoup:
    path = html_root / "notebooks" / f"{stem}.html"
    assert path.exists(), f"chapter page {path} is missing"
    return BeautifulSoup(path.read_text(), "html.parser")


def test_every_toc_page_is_built(built_book):
    for entry in toc_files():
        assert (built_book / f"{entry}.html").exists(), f"{entry}.html was not built"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NB_IDS)
def test_chapter_has_its_figures(built_book, path):
    executed = _executed(path)
    n_figures = sum("image/png" in out.get("data", {})
                    for cell in executed.cells if cell.cell_type == "code"
                    for out in cell.get("outputs", []))
    assert n_figures >= 1, f"{path.name} produced no figure"
    soup = _page(built_book, path.stem)
    images = [img for img in soup.select("div.cell_output img")]
    assert len(images) == n_figures, f"{path.name}: {n_figures} figures executed, {len(images)} shown"
    for img in images:
        assert (built_book / "notebooks" / img["src"]).resolve().exists(), f"missing image {img['src']}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NB_IDS)
def test_rendered_output_is_clean(built_book, path):
    soup = _page(built_book, path.stem)
    assert not soup.select(".stderr"), f"{path.name}: stderr output is rendered"
    for out in soup.select("div.cell_output"):
        text = out.get_text(" ")
        for pattern, what in DEBRIS:
            assert not pattern.search(text), f"{path.name}: rendered output contains {what}: " \
                f"{pattern.search(text).group(0)!r} in {text[:200]!r}"


def test_no_script_or_style_from_another_host(built_book):
    remote = re.compile(r"^(https?:)?//")
    for page in built_book.rglob("*.html"):
        soup = BeautifulSoup(page.read_text(), "html.parser")
        for tag in soup.find_all("script", src=True):
            assert not remote.match(tag["src"]), f"{page}: script from another host: {tag['src']}"
        for tag in soup.find_all("link", rel="stylesheet"):
            assert not remote.match(tag.get("href", "")), f"{page}: stylesheet from {tag['href']}"


def test_math_renders_from_the_bundled_mathjax(built_book):
    page = built_book / "notebooks" / "01_attention_from_scratch.html"
    soup = BeautifulSoup(page.read_text(), "html.parser")
    srcs = [t["src"] for t in soup.find_all("script", src=True) if "tex-chtml" in t["src"]]
    assert srcs, "the attention chapter does not load MathJax"
    target = (page.parent / srcs[0].split("?")[0]).resolve()
    assert target.exists() and target.is_relative_to(built_book / "mathjax"), target


def test_the_book_build_executed_no_notebook(built_book):
    """The notebooks run once, under the test runner; the Sphinx build only renders them."""
    results = json.loads((BUILD / "results.json").read_text())
    log = (BUILD / "book-build.log").read_text()
    assert "Executing notebook" not in log, "the book build executed a notebook (see _build/book-build.log)"
    for path in NOTEBOOKS:
        assert results[path.stem]["executed_by"] == "tools.run_notebooks", \
            f"{path.stem} was executed by the book build, not by the notebook runner"


def test_results_json_lists_every_notebook(built_book):
    results = json.loads((BUILD / "results.json").read_text())
    cold = book_extension().book_cold_times(results)
    assert cold is not None, "a notebook was not executed by the notebook runner"
    for path in NOTEBOOKS:
        assert path.stem in results, f"{path.stem} missing from results.json"
        entry = results[path.stem]
        assert entry["seconds"] is not None and entry["seconds"] > 0
        assert entry["state"] in ("cold", "warm", "mixed", "none"), entry["state"]
        assert entry["metrics"], f"{path.stem} glued no numeric metric"
        assert 0 < cold[path.stem] <= entry["cold_seconds"] + 0.05  # both from times rounded to 0.01 s
        assert cold[path.stem] <= budget(path), \
            f"{path.stem} takes {cold[path.stem]:.0f} s in a cold book run, over its {budget(path)} s budget"
    # a cold batch (a fresh clone): the wall time of the parallel run; otherwise the time of a
    # cold run one notebook after another, which is longer
    wall = book_extension().book_cold_wall_seconds(results)
    total = wall if wall is not None else sum(cold.values())
    assert total <= BOOK_BUDGET_SECONDS, f"the book takes {total:.0f} s to execute cold, over 10 minutes"


def test_results_page_shows_the_table(built_book):
    soup = BeautifulSoup((built_book / "book" / "results.html").read_text(), "html.parser")
    tables = soup.select("table.results-table")
    assert len(tables) == (3 if (ROOT / "book" / "data" / "sweep.json").exists() else 2)
    text = tables[0].get_text(" ")
    for path in NOTEBOOKS:
        title = json.loads((BUILD / "results.json").read_text())[path.stem]["title"]
        assert title in text, f"{title} is not in the run-time table"
