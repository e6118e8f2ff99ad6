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

from tests.helpers import BUILD, HTML, NOTEBOOKS, ROOT, book_extension, budget, toc_files
from tools import run_record

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
    records = run_record.records(results)
    cold = run_record.book_cold_times(records)
    assert cold is not None, "a notebook was not executed by the notebook runner"
    for path in NOTEBOOKS:
        assert path.stem in results, f"{path.stem} missing from results.json"
        entry, record = results[path.stem], records[path.stem]
        assert entry["seconds"] is not None and entry["seconds"] > 0
        assert record.state in ("cold", "warm", "mixed", "none"), record.state
        assert entry["metrics"], f"{path.stem} glued no numeric metric"
        assert 0 < cold[path.stem] <= record.cold_seconds + 0.05  # both from times rounded to 0.01 s
        assert cold[path.stem] <= budget(path), \
            f"{path.stem} takes {cold[path.stem]:.0f} s in a cold book run, over its {budget(path)} s budget"
    # a cold batch (a fresh clone): the wall time of the parallel run; otherwise the time of a
    # cold run one notebook after another, which is longer
    wall = run_record.book_cold_wall_seconds(records)
    total = wall if wall is not None else sum(cold.values())
    assert total <= run_record.BOOK_BUDGET_SECONDS, \
        f"the book takes {total:.0f} s to execute cold, over its {run_record.BOOK_BUDGET_SECONDS} s budget"


def _results_page(html_root: Path) -> BeautifulSoup:
    return BeautifulSoup((html_root / "book" / "results.html").read_text(), "html.parser")


def test_every_headline_number_is_in_the_build(built_book):
    """A headline whose chapter was not built, or whose glue name the chapter lost, fails here."""
    ext = book_extension("tful_headlines")
    results = json.loads((BUILD / "results.json").read_text())
    for h in ext.load_headlines(ROOT / ext.HEADLINES):
        assert h.chapter in results, (f"book/data/headlines.yml lists {h.chapter}/{h.glue}, but "
                                      f"{h.chapter} is not in this build (not in _toc.yml, or not executed)")
        metrics = results[h.chapter]["metrics"]
        assert h.glue in metrics, f"{h.chapter} glued no number named {h.glue!r} (book/data/headlines.yml)"
        for b in h.baselines:
            if b.glue is not None:
                other = results.get(b.chapter or h.chapter, {}).get("metrics", {})
                assert b.glue in other, f"{h.glue}: baseline {b.glue!r} is not glued by {b.chapter or h.chapter}"
        for bar in h.bars:   # the notebook asserted it, so the table must agree
            threshold = bar.value(metrics.get)
            assert bar.holds(metrics[h.glue], threshold), \
                f"{h.glue} = {metrics[h.glue]} does not satisfy its bar {bar.op} {bar.bar} = {threshold}: " \
                "book/data/headlines.yml disagrees with the notebook's assert"


def test_results_page_headline_tables(built_book):
    ext = book_extension("tful_headlines")
    headlines = ext.load_headlines(ROOT / ext.HEADLINES)
    soup = _results_page(built_book)
    tables = soup.select("table.results-headlines")
    assert len(tables) == len({h.chapter for h in headlines}), "one headline table per chapter"
    rows = [row for t in tables for row in t.select("tbody tr")]
    assert len(rows) == len(headlines), f"{len(rows)} rows in the headline tables, {len(headlines)} headlines"
    for row, h in zip(rows, headlines, strict=True):
        text = row.get_text(" ")
        assert h.glue in text and h.label in text and h.description[:40] in text, text[:200]
    first = soup.select_one("table")
    assert "results-headlines" in first["class"], "the headline table must come first on the page"


def test_results_page_figures(built_book):
    import matplotlib.image

    soup = _results_page(built_book)
    srcs = [img["src"] for img in soup.select("img.results-figure")]
    assert [Path(s).name for s in srcs] == ["results-headlines.png", "results-times.png"], srcs
    for src in srcs:
        path = (built_book / "book" / src).resolve()
        assert path.exists() and path.is_relative_to(built_book / "_images"), f"missing image {src}"
        img = matplotlib.image.imread(path)
        assert img.shape[2] == 3 or img[..., 3].min() == 1.0, f"{path.name} is partly transparent"
        assert (img[0, 0, :3] == 1.0).all(), f"{path.name}: background not white (dark mode)"
    log = (BUILD / "book-build.log").read_text()
    assert "Results page figure" not in log, "drawing the Results page's figures raised a warning"


def test_results_page_timing(built_book):
    results = json.loads((BUILD / "results.json").read_text())
    records = run_record.records(results)
    table = _results_page(built_book).select_one("table.results-timing")
    text = table.get_text(" ")
    for path in NOTEBOOKS:
        entry, record = results[path.stem], records[path.stem]
        assert entry["title"] in text, f"{entry['title']} is not in the run-time table"
        assert record is not None, (f"{path.stem}: executed by {entry['executed_by']}, without the notebook "
                                    "runner's run record, so it has no cold or warm time")
        assert 0 <= record.warm_seconds <= record.cold_seconds + 0.05
        row = next(r for r in table.select("tbody tr") if entry["title"] in r.get_text(" "))
        for line in record.origin_lines():   # where its models came from: shipped, cache, trained now
            assert line in row.get_text(" "), f"{path.stem}: {line!r} is not in its row of the run-time table"
    assert "derived" in text or not any(r.trained for r in records.values())


def test_results_page_long_lists_are_collapsed(built_book):
    soup = _results_page(built_book)
    every = soup.select_one("table.results-all")
    assert every is not None and every.find_parent("details") is not None, "the full list is not collapsed"
    results = json.loads((BUILD / "results.json").read_text())
    n = sum(len(info["metrics"]) for info in results.values())
    assert len(every.select("tbody tr")) == n
    if (ROOT / "book" / "data" / "sweep.json").exists():
        assert soup.select_one("table.results-sweep-headlines").find_parent("details") is None
        assert soup.select_one("table.results-sweep").find_parent("details") is not None
