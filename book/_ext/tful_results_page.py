"""The Results page (``book/results.md``): one directive per section, filled once every notebook has run.

Each ``{results-<section>}`` directive leaves a placeholder; when the page's doctree is
resolved, :class:`_Page` replaces it with that section's tables and figures, drawn from this
build's results (:mod:`tful_results`), the headline table (:mod:`tful_headlines`) and the
sweep (``book/data/sweep.json``).
"""

from __future__ import annotations

import json
import posixpath
from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective
from tful_figures import _draw, plot_headlines, plot_times
from tful_headlines import HEADLINES, Resolved, bar_text, load_headlines, resolve_headlines
from tful_results import collect_results, run_record

logger = logging.getLogger(__name__)

SWEEP = Path("book") / "data" / "sweep.json"


class results_placeholder(nodes.General, nodes.Element):
    pass


SECTIONS = ("headlines", "headline-figure", "timing", "sweep", "sweep-all", "all")


class ResultsSection(SphinxDirective):
    """``{results-<section>}``: replaced, once every notebook has run, by that section's content."""

    def run(self):
        return [results_placeholder(section=self.name.removeprefix("results-"))]


def _cell(content) -> list[nodes.Node]:
    if isinstance(content, list):
        return content
    para = nodes.paragraph()
    para += content if isinstance(content, nodes.Node) else nodes.Text(content)
    return [para]


def _table(header: list[str], rows: list[list], widths: list[int], cls: str) -> nodes.table:
    # colwidths-given: the HTML writer keeps the relative widths instead of laying out by content
    table = nodes.table(classes=["results-table", cls, "colwidths-given"])
    group = nodes.tgroup(cols=len(header))
    table += group
    for w in widths:
        group += nodes.colspec(colwidth=w)
    head = nodes.thead()
    group += head
    head += nodes.row("", *(nodes.entry("", nodes.paragraph(text=h)) for h in header))
    body = nodes.tbody()
    group += body
    for cells in rows:
        row = nodes.row()
        for cell in cells:
            row += nodes.entry("", *_cell(cell))
        body += row
    return table


def _secs(value) -> str:
    return f"{value:.1f}" if value is not None else "–"


class _Page:
    """Everything the Results page shows, from one build."""

    def __init__(self, app: Sphinx, docname: str):
        self.app, self.docname = app, docname
        self.results = collect_results(app)
        srcdir = Path(app.srcdir)
        sweep_path = srcdir / SWEEP
        self.sweep = json.loads(sweep_path.read_text()) if sweep_path.exists() else None
        self.sweep_path = sweep_path
        self.headlines = load_headlines(srcdir / HEADLINES)
        self.resolved = resolve_headlines(self.headlines, self.results, self.sweep)
        self.images = Path(app.outdir) / "_images"

    def link(self, stem_or_info, text: str | None = None) -> nodes.Node:
        info = self.results.get(stem_or_info) if isinstance(stem_or_info, str) else stem_or_info
        if info is None:
            return nodes.Text(text or stem_or_info)
        return nodes.reference("", text or info["title"], internal=True,
                               refuri=self.app.builder.get_relative_uri(self.docname, info["docname"]))

    def image(self, name: str, alt: str) -> nodes.image:
        uri = posixpath.relpath(f"_images/{name}", posixpath.dirname(self.docname) or ".")
        # drawn into the output directly: '?' tells the builder not to look for it among the sources
        return nodes.image(uri=uri, alt=alt, candidates={"?": uri}, classes=["results-figure"])

    # -- sections --

    def headlines_section(self) -> list[nodes.Node]:
        for r in self.resolved:
            for m in r.missing:
                logger.warning(f"headline {r.headline.chapter}/{r.headline.glue} "
                               f"({HEADLINES}): {m}", location=self.docname)
        chapters: dict[str, list[Resolved]] = {}
        for r in self.resolved:
            chapters.setdefault(r.headline.chapter, []).append(r)
        out: list[nodes.Node] = []
        for stem, group in chapters.items():
            rows = []
            for r in group:
                h = r.headline
                number = [nodes.paragraph("", "", nodes.strong(text=h.label)),
                          nodes.paragraph(text=h.description),
                          nodes.paragraph("", "", nodes.literal(text=h.glue))]
                bars = [nodes.paragraph(text=bar_text(h, b, v)) for b, v in r.bars]
                if not bars:
                    bars = [nodes.paragraph(text="none: reported, not asserted")]
                base = [nodes.paragraph(text=f"{b.label}: {h.show(v)}" if b.text is None
                                        else f"{b.label} ({b.text})")
                        for b, v in r.baselines] or [nodes.paragraph(text="–")]
                rows.append([number, h.show(r.value), bars, base])
            out += [nodes.rubric("", "", self.link(stem, group[0].title)),
                    _table(["Number: what it measures", "Value", "Bar (asserted)", "Compared with"],
                           rows, [50, 10, 18, 22], "results-headlines")]
        return out

    def headline_figure_section(self) -> list[nodes.Node]:
        shown = [r for r in self.resolved if r.value is not None]
        if not shown:
            return [nodes.paragraph(text="No headline number is in this build.")]
        self.images.mkdir(parents=True, exist_ok=True)
        _draw(plot_headlines, shown, self.images / "results-headlines.png")
        return [self.image("results-headlines.png",
                           "Each headline number (blue dot) against its bars (red dashed lines; the "
                           "shaded side fails the assert) and its baselines (grey diamonds)")]

    def timing_section(self) -> list[nodes.Node]:
        results = self.results
        recs = run_record.records(results)
        book_cold = run_record.book_cold_times(recs) or {}
        chart, rows = [], []
        for stem, info in results.items():
            rec = recs[stem]
            chart.append({"title": _short_title(info["title"]), "seconds": info["seconds"],
                          "book_cold": book_cold.get(stem), "cold": rec and rec.cold_seconds,
                          "warm": rec and rec.warm_seconds, "warm_derived": bool(rec and rec.warm_derived),
                          "budget": self.budget(info["docname"])})
            warm = "–" if rec is None else f"{rec.warm_seconds:.1f}" + (" (derived)" if rec.warm_derived else "")
            rows.append([self.link(info), _secs(info["seconds"]), rec.state if rec else "unknown",
                         _secs(book_cold.get(stem)), _secs(rec and rec.cold_seconds), warm, _origins(rec)])
        self.images.mkdir(parents=True, exist_ok=True)
        _draw(plot_times, chart, self.images / "results-times.png")
        total = sum(info["seconds"] or 0.0 for info in results.values())
        rows.append(["all notebooks, one after another", _secs(total), "",
                     _secs(run_record.book_cold_seconds(recs)), "", "", ""])
        recorded = [r for r in recs.values() if r is not None]
        jobs = {r.jobs for r in recorded}
        wall = ""
        if recorded and len(recorded) == len(recs) and len({r.run_id for r in recorded}) == 1 and len(jobs) == 1:
            seconds = max(r.finished for r in recorded) - min(r.started for r in recorded)
            wall = (f" They ran {jobs.pop()} at a time, in {seconds:.0f} s of wall time from the first start "
                    "to the last finish.")
        unrecorded = [results[stem]["title"] for stem, r in recs.items() if r is None]
        stale = (" Executed by the book build itself, without a run record (so no cold or warm time): "
                 + "; ".join(unrecorded) + "." if unrecorded else "")
        minutes = f"{run_record.BOOK_BUDGET_SECONDS / 60:g}"
        return [
            self.image("results-times.png", "Seconds per notebook: cold, warm and the budget"),
            nodes.paragraph(text=(
                "Cold, in a book run (dark bars): the notebook's time when the whole book runs from an empty "
                "model cache and each shared model is trained once, by the first chapter that needs it; each "
                f"chapter's budget (black tick) is checked against it, and the book's {minutes} minutes against "
                "the wall time of a cold parallel run (or else the sum of the dark bars). Cold, alone (middle"
                " bars): the time to run only this notebook on an empty model cache, training every model it "
                "loads from the cache. Both are computed from this build's run records: the notebook's "
                "working time (wall time minus any wait for a model another notebook was training) plus the "
                "recorded training time of the models it loaded from the cache. A shipped model comes with "
                "the repository: loading it costs the same in every run, and its long training is never "
                "added. Warm (light bars): the time with every model it uses already cached. For a notebook "
                "that trained nothing in this build, warm is measured (its working time); for one that "
                "trained models, it is derived, not measured: its working time minus the recorded training "
                "time of the models it trained (hatched bars, 'derived' in the table). Working times are this"
                " build's, on the machine that built the book, with the notebooks sharing its cores; training"
                " times are those recorded when each model was trained, in this build or an earlier one."
                + wall + stale)),
            nodes.paragraph(text=(
                "In the table, Seconds is the execution that produced the page you are reading. "
                "State, of the model cache: cold if the notebook trained the cached models it uses, warm "
                "if it loaded them from the cache, mixed if both, none if it uses no cached model. "
                "Models lists where each model the notebook used came from: shipped (the repository's "
                "checkpoints, trained by make checkpoints), from the cache (trained by an earlier run), "
                "or trained now (by this run, into the cache).")),
            _table(["Notebook", "Seconds", "State", "In a cold book run", "Alone, cold", "Warm", "Models"],
                   rows, [24, 8, 8, 11, 9, 11, 29], "results-timing"),
        ]

    def budget(self, docname: str) -> float | None:
        try:
            return run_record.budget(self.app.env.doc2path(docname))
        except (OSError, ValueError) as err:
            logger.warning(f"Results page: no budget for {docname}: {err}", location=self.docname)
            return None

    def sweep_section(self) -> list[nodes.Node]:
        if self.sweep is None:
            return [nodes.paragraph(text="No sweep has been recorded yet (run make sweep).")]
        sweep = self.sweep
        m = sweep["machine"]
        runs = ", ".join(f"seed offset {st['seed_offset']} on {st['train_threads']} thread(s)"
                         for st in sweep["settings"])
        stamp = (f"Measured on {m['date']} on {m['cpu']} ({m['cores']} cores), Python {m['python']}, "
                 f"torch {m['torch']}, NumPy {m['numpy']}, SciPy {m['scipy']}, scikit-learn "
                 f"{m['scikit-learn']}: every chapter that trains, executed from an empty model cache "
                 f"with the training seeds shifted and the training threads set as follows: {runs}. "
                 "Runs counts the runs that reached each number (a failed assert stops its notebook). "
                 "Chapters 1 and 2 train nothing and are not swept; a chapter missing from the table "
                 "was not in this sweep. Commits swept: "
                 + ", ".join(sorted({st["commit"][:7] for st in sweep["settings"] if st.get("commit")}))
                 + f". Notebook runs with a failed assert: {len(sweep['failures'])}.")
        rows, unswept = [], []
        for r in self.resolved:
            h, e = r.headline, r.spread
            if e is None:
                if r.title not in unswept:
                    unswept.append(r.title)
                continue
            rows.append([nodes.strong(text=h.label), self.link(h.chapter, h.chapter.split("_", 1)[0].lstrip("0")),
                         h.show(r.value), h.show(e["mean"]), h.show(e["min"]), h.show(e["max"]), str(e["n"])])
        failed = [nodes.paragraph(text=(
            f"Failed: {f['notebook']} with seed offset {f['seed_offset']} on {f['train_threads']} "
            f"training thread(s), at: {f['error']}"
            + ("" if self._still_there(f) else " (this assert has been changed since; the notebook no "
                                               "longer contains that line)"))) for f in sweep["failures"]]
        not_swept = ([nodes.paragraph(text="Not in the sweep: " + "; ".join(unswept) + ".")] if unswept else [])
        return [nodes.paragraph(text=stamp), *not_swept,
                _table(["Number", "Chapter", "This build", "Mean", "Min", "Max", "Runs"], rows,
                       [34, 10, 12, 11, 11, 11, 8], "results-sweep-headlines"),
                *failed]

    def _still_there(self, failure: dict) -> bool:
        """Whether the failing line is still in the notebook (the sweep may predate a fix)."""
        line = failure["error"].split("--->", 1)[-1].strip().split(" ", 1)[-1]
        source = Path(self.app.srcdir) / "notebooks" / f"{failure['notebook']}.ipynb"
        return source.exists() and line in "".join(
            "".join(c["source"]) for c in json.loads(source.read_text())["cells"])

    def sweep_all_section(self) -> list[nodes.Node]:
        if self.sweep is None:
            return [nodes.paragraph(text="No sweep has been recorded yet (run make sweep).")]
        rows = []
        for stem, metrics in sorted(self.sweep["metrics"].items()):
            info = self.results.get(stem)
            for name, e in sorted(metrics.items()):
                here = info["metrics"].get(name) if info else None
                rows.append([nodes.literal(text=name), f"{here:.4g}" if here is not None else "–",
                             f"{e['mean']:.4g}", f"{e['min']:.4g}", f"{e['max']:.4g}", str(e["n"]),
                             self.link(stem, _short_title(info["title"]) if info else stem)])
        return [_table(["Metric", "This build", "Mean", "Min", "Max", "Runs", "Notebook"], rows,
                       [28, 11, 11, 11, 11, 7, 21], "results-sweep")]

    def all_section(self) -> list[nodes.Node]:
        described = {(h.chapter, h.glue): h.label for h in self.headlines}
        rows = [[nodes.literal(text=name), f"{value:.4g}", described.get((stem, name), ""),
                 self.link(stem, _short_title(info["title"]))]
                for stem, info in self.results.items() for name, value in sorted(info["metrics"].items())]
        return [_table(["Glue name", "Value", "Headline", "Notebook"], rows, [40, 14, 22, 24], "results-all")]


def _short_title(title: str) -> str:
    return title if len(title) <= 36 else title[:35].rstrip() + "…"


def _origins(rec: run_record.Record | None) -> list[nodes.Node] | str:
    """A paragraph per origin of the notebook's models, e.g. ``shipped: gan, vae`` and ``trained now: dec``."""
    if rec is None or not rec.models:
        return "–"
    return [nodes.paragraph(text=line) for line in rec.origin_lines()]


def fill_results(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    placeholders = list(doctree.findall(results_placeholder))
    if not placeholders:
        return
    page = _Page(app, docname)
    for node in placeholders:
        section = node["section"]
        node.replace_self(getattr(page, f"{section.replace('-', '_')}_section")())


def always_outdated(app, env, added, changed, removed):
    """The Results page depends on every notebook, so it is rebuilt every time."""
    return [doc for doc in env.found_docs if doc.endswith("results")]

