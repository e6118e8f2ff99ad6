"""Sphinx extension for the book: offline MathJax and the Results page.

* MathJax 3 is copied from the installed ``sphinx-mathjax-offline`` package into
  ``<html>/mathjax/`` (its own folder, not ``_static/``), so math renders offline.
* After every build, each notebook's execution time and its numeric ``glue``
  values are written to ``_build/results.json``.
* The Results page (``book/results.md``) is made of ``results-<section>`` directives,
  filled from the same data once every notebook has been read: the headline numbers
  listed in ``book/data/headlines.yml`` (a table and a figure of each number against
  its asserted bars and baselines), cold and warm time per notebook, the spread over
  the seed and thread sweep (``book/data/sweep.json``) and every glued number.
  Figures are drawn with matplotlib into the build's ``_images/``.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import math
import operator
import os
import posixpath
import re
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)

MATHJAX_DIR = "mathjax"
RUNNER = "tools.run_notebooks"  # what the notebook runner writes into the execution cache


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


def _number(glue_output: dict) -> float | None:
    text = glue_output.get("data", {}).get("text/plain")
    if text is None:
        return None
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
        try:  # numpy scalars print as np.float64(0.9)
            value = ast.literal_eval(text.strip().split("(", 1)[1].rstrip(")"))
        except (ValueError, SyntaxError, IndexError):
            return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _run_record(app: Sphinx, docname: str) -> dict:
    """What the execution cache recorded about the run that produced ``docname``'s outputs."""
    import nbformat
    from jupyter_cache import get_cache

    cache_path = app.env.mystnb_config.execution_cache_path
    if not cache_path:
        return {}
    cache_path = Path(app.srcdir) / cache_path  # an absolute path stays as it is
    try:
        nb = nbformat.read(app.env.doc2path(docname), as_version=4)
        record = get_cache(cache_path).match_cache_notebook(nb)
    except (KeyError, OSError, ValueError):
        return {}
    return dict(record.data or {})


def collect_results(app: Sphinx) -> dict[str, dict]:
    """``{notebook: {"title", "seconds", "cold_seconds", "state", "metrics", ...}}`` from this build."""
    from myst_nb.sphinx_ import NbMetadataCollector

    env = app.env
    execute_dir = Path(app.outdir).parent / "jupyter_execute"
    results: dict[str, dict] = {}
    for docname, data in sorted(NbMetadataCollector.get_doc_data(env).items()):
        exec_data = data.get("exec_data")
        if not exec_data:
            continue
        metrics = {}
        glue_file = execute_dir / f"{docname}.glue.json"
        if glue_file.exists():
            for key, output in json.loads(glue_file.read_text()).items():
                value = _number(output)
                if value is not None:
                    metrics[key] = value
        title = env.titles.get(docname)
        run = _run_record(app, docname)
        by_runner = run.get("runner") == RUNNER
        results[Path(docname).name] = {
            "title": title.astext() if title is not None else docname,
            "docname": docname,
            "seconds": exec_data.get("runtime"),
            # Only the notebook runner records cold/warm; a notebook the book build executed
            # itself (``jupyter-book build`` on its own, with a stale cache) says so.
            "executed_by": RUNNER if by_runner else "jupyter-book",
            "state": run.get("state") if by_runner else "unknown",
            "cold_seconds": run.get("cold_seconds") if by_runner else None,
            "trained": run.get("trained", []),
            "loaded": run.get("loaded", []),
            "loaded_train_seconds": run.get("loaded_train_seconds", {}),
            "waited_seconds": run.get("waited_seconds"),
            "jobs": run.get("jobs"),
            "run_id": run.get("run_id"),
            "started": run.get("started"),
            "finished": run.get("finished"),
            "succeeded": exec_data.get("succeeded"),
            "metrics": metrics,
        }
    return results


def write_results(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    results = collect_results(app)
    cache = os.environ.get("TFUL_CACHE")
    warm = warm_times(results, Path(cache) if cache else Path(app.srcdir) / ".cache")
    for stem, info in results.items():
        info["warm_seconds"], info["warm_derived"] = warm[stem] if warm[stem] else (None, None)
    out = Path(app.outdir).parent / "results.json"
    out.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")


def book_cold_times(results: dict) -> dict[str, float] | None:
    """Each notebook's seconds in a run of the whole book from an empty model cache.

    Its working time in this build (wall time minus any wait for a model another
    notebook was training), plus the training time of every model it loaded that no
    notebook of this build trained (the model was cached already), charged to the
    first notebook, in chapter order, that loaded it. Each model counts once, so
    the sum is the time to execute the whole book, one notebook after another, from
    an empty cache. ``None`` if a notebook was not executed by the notebook runner.
    """
    if any(info.get("executed_by") != RUNNER for info in results.values()):
        return None
    trained = {m for info in results.values() for m in info["trained"]}
    charged: set[str] = set()
    times = {}
    for stem in sorted(results):
        info = results[stem]
        extra = 0.0
        for model, seconds in sorted(info["loaded_train_seconds"].items()):
            if model not in trained and model not in charged:
                charged.add(model)
                extra += seconds
        times[stem] = info["seconds"] - (info["waited_seconds"] or 0.0) + extra
    return times


def book_cold_wall_seconds(results: dict) -> float | None:
    """Wall time of this build's execution if it ran every notebook in one batch from an empty cache.

    That is the time a reader waits for ``make book`` on a fresh clone. ``None`` when the
    notebooks ran in several batches or some model was cached before the batch started.
    """
    if any(info.get("executed_by") != RUNNER for info in results.values()):
        return None
    if len({info.get("run_id") for info in results.values()}) != 1:
        return None
    trained = {m for info in results.values() for m in info["trained"]}
    if any(m not in trained for info in results.values() for m in info["loaded"]):
        return None
    return max(info["finished"] for info in results.values()) - min(info["started"] for info in results.values())


def book_cold_seconds(results: dict) -> float | None:
    """Seconds to execute every notebook one after another from an empty model cache."""
    times = book_cold_times(results)
    return None if times is None else sum(times.values())


# ---------------------------------------------------------------------------------------------
# Headline numbers: book/data/headlines.yml
# ---------------------------------------------------------------------------------------------

HEADLINES = Path("book") / "data" / "headlines.yml"
SWEEP = Path("book") / "data" / "sweep.json"
OPS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}
OP_TEXT = {">": ">", ">=": "≥", "<": "<", "<=": "≤"}
LABEL_MAX = 24
_NUMBER = re.compile(r"^\d+(\.\d+)?(e[+-]?\d+)?$")
_RELATIVE = re.compile(r"^(?:(?P<factor>\d+(?:\.\d+)?)\s*\*\s*)?(?P<name>[A-Za-z_]\w*)"
                       r"(?:\s*(?P<sign>[+-])\s*(?P<offset>\d+(?:\.\d+)?(?:e[+-]?\d+)?))?$")
_ROW_KEYS = {"chapter", "glue", "label", "description", "format", "unit", "scale", "bars", "baselines"}
_BAR_KEYS = {"op", "bar", "assert"}
_BASELINE_KEYS = {"label", "glue", "chapter", "value", "text"}


@dataclass(frozen=True)
class Bar:
    """One assert on a headline number: ``number <op> <bar>``."""

    op: str
    bar: str            #: as written in the assert ("0.80"), or "name", "name + 0.1", "3 * name"
    assert_text: str    #: the assert statement, exactly as in the notebook
    factor: float = 1.0
    name: str | None = None    #: the other glued number it compares with, if any
    offset: float = 0.0        #: signed

    def value(self, lookup) -> float | None:
        """The threshold; ``lookup(name)`` gives a glued number of the chapter (or None)."""
        if self.name is None:
            return float(self.bar)
        other = lookup(self.name)
        return None if other is None else self.factor * other + self.offset

    def holds(self, number: float, threshold: float) -> bool:
        return OPS[self.op](number, threshold)


@dataclass(frozen=True)
class Baseline:
    """What a headline number is compared with: another glued number, a fixed value or a text."""

    label: str
    glue: str | None = None
    chapter: str | None = None   #: the notebook that glues it; None: the headline's own
    value: float | None = None
    text: str | None = None


@dataclass(frozen=True)
class Headline:
    chapter: str
    glue: str
    label: str
    description: str
    format: str
    unit: str = ""
    scale: str = "linear"
    bars: tuple[Bar, ...] = ()
    baselines: tuple[Baseline, ...] = ()

    def show(self, value: float | None) -> str:
        return "–" if value is None else f"{value:{self.format}}{self.unit}"


def parse_bar(op: str, bar: str, assert_text: str, where: str) -> Bar:
    if op not in OPS:
        raise ValueError(f"{where}: op must be one of {sorted(OPS)}, got {op!r}")
    if not isinstance(bar, str) or not bar.strip():
        raise ValueError(f"{where}: bar must be a non-empty string (quote numbers: \"0.80\"), got {bar!r}")
    if not isinstance(assert_text, str) or not assert_text.startswith("assert "):
        raise ValueError(f"{where}: assert must be the notebook's assert statement, got {assert_text!r}")
    text = bar.strip()
    if _NUMBER.match(text):
        return Bar(op, text, assert_text)
    m = _RELATIVE.match(text)
    if m is None:
        raise ValueError(f"{where}: bar must be a number, 'name', 'name + 0.1', 'name - 0.1' or "
                         f"'3 * name', got {bar!r}")
    offset = float(m["offset"] or 0.0) * (-1.0 if m["sign"] == "-" else 1.0)
    return Bar(op, text, assert_text, float(m["factor"] or 1.0), m["name"], offset)


def _check_keys(entry, allowed: set[str], where: str) -> None:
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(entry).__name__}")
    unknown = set(entry) - allowed
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {sorted(unknown)}; allowed: {sorted(allowed)}")


def load_headlines(path: Path) -> list[Headline]:
    """The headline table, validated: a mistake in it is an error naming the entry and field."""
    import yaml

    entries = yaml.safe_load(Path(path).read_text())
    if not isinstance(entries, list):
        raise ValueError(f"{path}: expected a list of entries, got {type(entries).__name__}")
    rows: list[Headline] = []
    seen: set[tuple[str, str]] = set()
    for i, e in enumerate(entries):
        where = f"{path}: entry {i + 1}"
        _check_keys(e, _ROW_KEYS, where)
        for key in ("chapter", "glue", "label", "description", "format"):
            if not isinstance(e.get(key), str) or not e[key].strip():
                raise ValueError(f"{where}: {key} must be a non-empty string, got {e.get(key)!r}")
        where = f"{path}: {e['chapter']}/{e['glue']}"
        if (e["chapter"], e["glue"]) in seen:
            raise ValueError(f"{where}: listed twice")
        seen.add((e["chapter"], e["glue"]))
        if len(e["label"]) > LABEL_MAX:
            raise ValueError(f"{where}: label {e['label']!r} is longer than {LABEL_MAX} characters")
        try:
            format(1.0, e["format"])
        except ValueError:
            raise ValueError(f"{where}: format {e['format']!r} is not a float format spec") from None
        if e.get("scale", "linear") not in ("linear", "log"):
            raise ValueError(f"{where}: scale must be 'linear' or 'log', got {e['scale']!r}")
        baselines = []
        for j, b in enumerate(e.get("baselines") or []):
            bw = f"{where}: baseline {j + 1}"
            _check_keys(b, _BASELINE_KEYS, bw)
            if not isinstance(b.get("label"), str) or not b["label"].strip():
                raise ValueError(f"{bw}: label must be a non-empty string")
            if len(b["label"]) > LABEL_MAX and b.get("text") is None:   # a row label of the figure
                raise ValueError(f"{bw}: label {b['label']!r} is longer than {LABEL_MAX} characters")
            given = [k for k in ("glue", "value", "text") if b.get(k) is not None]
            if len(given) != 1:
                raise ValueError(f"{bw}: give exactly one of glue, value, text; got {given}")
            if "chapter" in b and "glue" not in b:
                raise ValueError(f"{bw}: chapter is only for a glue baseline")
            if "value" in b and (isinstance(b["value"], bool) or not isinstance(b["value"], int | float)):
                raise ValueError(f"{bw}: value must be a number, got {b['value']!r}")
            baselines.append(Baseline(b["label"], b.get("glue"), b.get("chapter"),
                                      None if b.get("value") is None else float(b["value"]), b.get("text")))
        bars = []
        for j, b in enumerate(e.get("bars") or []):
            bw = f"{where}: bar {j + 1}"
            _check_keys(b, _BAR_KEYS, bw)
            bar = parse_bar(b.get("op"), b.get("bar"), b.get("assert"), bw)
            if bar.name is not None and not any(bl.glue == bar.name and bl.chapter is None for bl in baselines):
                raise ValueError(f"{bw}: {bar.name!r} must also be a baseline of this entry "
                                 "(a glued number of the same chapter), so that it has a label")
            bars.append(bar)
        rows.append(Headline(e["chapter"], e["glue"], e["label"], " ".join(e["description"].split()),
                             e["format"], e.get("unit", ""), e.get("scale", "linear"),
                             tuple(bars), tuple(baselines)))
    return rows


def bar_text(h: Headline, bar: Bar, value: float | None) -> str:
    """``≥ 0.80`` as written in the assert, or ``> raw pixels + 0.1 (0.766)`` for a comparison."""
    if bar.name is None:
        return f"{OP_TEXT[bar.op]} {bar.bar}"
    label = next(b.label for b in h.baselines if b.glue == bar.name and b.chapter is None)
    return f"{OP_TEXT[bar.op]} {bar.bar.replace(bar.name, label)} ({h.show(value)})"


@dataclass
class Resolved:
    """A headline with its numbers from one build (None where the build lacks them)."""

    headline: Headline
    title: str
    docname: str | None
    value: float | None
    bars: list[tuple[Bar, float | None]]
    baselines: list[tuple[Baseline, float | None]]
    spread: dict | None   #: the sweep's {"mean", "min", "max", "n"}, if recorded
    missing: list[str]    #: what the build lacks, as sentences


def resolve_headlines(headlines: list[Headline], results: dict, sweep: dict | None = None) -> list[Resolved]:
    """Look up every headline's value, bars and baselines in ``results`` (see :func:`collect_results`)."""
    out = []
    for h in headlines:
        info = results.get(h.chapter)
        missing = []

        def lookup(name: str, chapter: str | None = None, *, h=h, missing=missing) -> float | None:
            stem = chapter or h.chapter
            if stem not in results:
                missing.append(f"{stem} is not in this build, so {name!r} is missing")
                return None
            value = results[stem]["metrics"].get(name)
            if value is None:
                missing.append(f"{stem} glues no number named {name!r}")
            return value

        value = lookup(h.glue)
        bars = [(b, b.value(lookup)) for b in h.bars]
        baselines = [(b, b.value if b.glue is None else lookup(b.glue, b.chapter)) for b in h.baselines]
        spread = ((sweep or {}).get("metrics", {}).get(h.chapter, {}).get(h.glue))
        out.append(Resolved(h, info["title"] if info else h.chapter, info["docname"] if info else None,
                            value, bars, baselines, spread, sorted(set(missing))))
    return out


# ---------------------------------------------------------------------------------------------
# Warm times
# ---------------------------------------------------------------------------------------------

def model_train_seconds(results: dict, cache_dir: Path | None = None) -> dict[str, float]:
    """Recorded training time of each cached model file that some notebook of this build used.

    From this build's run records (a notebook that loaded a model records how long it took
    to train), else from the model's side-car in the model cache (``<name>-<hash>.json``,
    written when it was trained).
    """
    seconds: dict[str, float] = {}
    for info in results.values():
        for model, s in (info.get("loaded_train_seconds") or {}).items():
            seconds.setdefault(model, float(s))
    if cache_dir is not None:
        for info in results.values():
            for model in info.get("trained") or []:
                meta = Path(cache_dir) / Path(model).with_suffix(".json").name
                if model not in seconds and meta.exists():
                    try:
                        s = json.loads(meta.read_text()).get("train_seconds")
                    except (OSError, ValueError):
                        continue
                    if isinstance(s, int | float):
                        seconds[model] = float(s)
    return seconds


def warm_times(results: dict, cache_dir: Path | None = None) -> dict[str, tuple[float, bool] | None]:
    """Each notebook's seconds with every model it uses already cached: ``(seconds, derived)``.

    A run that trained nothing (state warm or none) measured it: its wall time minus any wait
    for a model another notebook was training. For a run that trained models, it is derived:
    that working time minus the recorded training time of every model it trained. ``None``
    when the run was not recorded by the notebook runner or a training time is unknown.
    """
    train = model_train_seconds(results, cache_dir)
    out: dict[str, tuple[float, bool] | None] = {}
    for stem, info in results.items():
        if info.get("executed_by") != RUNNER or info.get("seconds") is None:
            out[stem] = None
            continue
        working = info["seconds"] - (info.get("waited_seconds") or 0.0)
        trained = info.get("trained") or []
        if not trained:
            out[stem] = (working, False)
        elif all(m in train for m in trained):
            out[stem] = (max(working - sum(train[m] for m in trained), 0.0), True)
        else:
            out[stem] = None
    return out


# ---------------------------------------------------------------------------------------------
# Figures (matplotlib, drawn without pyplot, opaque white background)
# ---------------------------------------------------------------------------------------------

BAR_RED = "#b2182b"
VALUE_BLUE = "#2166ac"


def _limits(xs: list[float], log: bool) -> tuple[float, float]:
    if log:
        pos = [x for x in xs if x > 0]
        if not pos:
            return 1e-3, 1.0
        lo, hi = min(pos) / 4, max(pos) * 4
        if hi / lo < 1e3:   # at least three decades, so that the axis has major ticks
            widen = math.sqrt(1e3 / (hi / lo))
            lo, hi = lo / widen, hi * widen
        return lo, hi
    lo, hi = min(xs), max(xs)
    pad = 0.15 * (hi - lo) if hi > lo else 0.1 * (abs(hi) or 1.0)
    return lo - pad, hi + pad


def _panel(ax, row: Resolved) -> None:
    h = row.headline
    log = h.scale == "log"
    points = [("measured", row.value)] + [(b.label, v) for b, v in row.baselines if v is not None]
    thresholds = [(b, v) for b, v in row.bars if v is not None]
    xs = [v for _, v in points if v is not None] + [v for _, v in thresholds]
    if row.spread:
        xs += [row.spread["min"], row.spread["max"]]
    if not xs:
        ax.set_axis_off()
        return
    lo, hi = _limits(xs, log)
    if log:
        from matplotlib.ticker import LogLocator, NullLocator

        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(numticks=6))
        ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlim(lo, hi)
    n = len(points)
    ax.set_ylim(n - 0.4, -0.6)
    for b, v in thresholds:   # the side that would fail the assert, shaded
        fail = (lo, v) if b.op in (">", ">=") else (v, hi)
        ax.axvspan(*fail, color=BAR_RED, alpha=0.09, lw=0)
        ax.axvline(v, color=BAR_RED, ls="--", lw=1.3)
    if row.spread and row.spread.get("n", 0) > 1:
        ax.hlines(0, row.spread["min"], row.spread["max"], color=VALUE_BLUE, lw=6, alpha=0.3,
                  label="sweep range")
    for i, (_, v) in enumerate(points):
        if v is None:
            continue
        x, marker = (v, "o" if i == 0 else "D")
        if log and v <= 0:
            x, marker = lo, "<"
        ax.plot([x], [i], marker=marker, ms=8 if i == 0 else 6, ls="none",
                color=VALUE_BLUE if i == 0 else "0.45", zorder=3)
        text = "0" if (log and v <= 0) else h.show(v)
        ax.annotate(text, (x, i), xytext=(0, 6), textcoords="offset points", ha="center",
                    va="bottom", fontsize=7.5, color=VALUE_BLUE if i == 0 else "0.3")
    ax.set_yticks(range(n), [p for p, _ in points], fontsize=8)
    ax.tick_params(axis="x", labelsize=7.5)
    ax.tick_params(axis="y", length=0)
    ax.grid(axis="x", color="0.9", lw=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    title = h.label if row.bars else f"{h.label} (not asserted)"
    ax.set_title(title, fontsize=9, loc="left")


def plot_headlines(rows: list[Resolved], path: Path, columns: int = 2) -> None:
    """Small multiples: each headline number against its bars and baselines, a block per chapter.

    Laid out by hand in inches (a fixed room for the row labels left of each panel), which is
    much faster than matplotlib's constrained layout for this many axes.
    """
    from matplotlib.figure import Figure

    chapters: dict[str, list[Resolved]] = {}
    for r in rows:
        chapters.setdefault(r.headline.chapter, []).append(r)
    width, labels, gap, top = 9.5, 1.7, 0.25, 0.4   # inches
    panel_w = (width - columns * labels - (columns - 1) * gap - 0.15) / columns
    title_h, panel_title_h, ticks_h = 0.28, 0.25, 0.33
    layout = []   # (kind, y from the top in inches, payload)
    y = top
    for group in chapters.values():
        layout.append(("title", y, group[0].title))
        y += title_h
        for i in range(0, len(group), columns):
            line = group[i:i + columns]
            axis_h = 0.22 * max(1 + len(r.baselines) for r in line) + 0.1
            layout.append(("line", y + panel_title_h, (line, axis_h)))
            y += panel_title_h + axis_h + ticks_h
    height = y + 0.05
    fig = Figure(figsize=(width, height), facecolor="white")
    for kind, y0, payload in layout:
        if kind == "title":
            fig.text(0.1 / width, 1 - (y0 + 0.05) / height, payload, ha="left", va="top",
                     fontsize=10.5, fontweight="bold")
            continue
        line, axis_h = payload
        for j, row in enumerate(line):
            left = labels + j * (panel_w + labels + gap)
            ax = fig.add_axes((left / width, 1 - (y0 + axis_h) / height, panel_w / width, axis_h / height))
            _panel(ax, row)
    fig.legend(handles=_headline_legend(), loc="upper center", ncols=5, fontsize=8, frameon=False)
    fig.savefig(path, dpi=100, facecolor="white", transparent=False)


def _headline_legend() -> list:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    return [Line2D([], [], marker="o", ls="none", color=VALUE_BLUE, ms=7, label="this build"),
            Patch(color=VALUE_BLUE, alpha=0.3, label="range over the sweep"),
            Line2D([], [], marker="D", ls="none", color="0.45", ms=5, label="baseline"),
            Line2D([], [], ls="--", color=BAR_RED, label="bar (assert)"),
            Patch(color=BAR_RED, alpha=0.09, label="would fail the assert")]


def plot_times(rows: list[dict], path: Path) -> None:
    """Horizontal bars: each notebook's cold seconds (in a book run, alone) and warm seconds, and its budget.

    ``rows``: dicts with title, seconds, book_cold, cold, warm, warm_derived, budget (None: unknown).
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    n = len(rows)
    fig = Figure(figsize=(9.5, 1.7 + 0.55 * n), facecolor="white", layout="constrained")
    ax = fig.subplots()
    h = 0.27
    styles = {"book_cold": ({"color": VALUE_BLUE}, -h),
              "cold": ({"color": "#4393c3"}, 0.0),
              "warm": ({"color": "#b8d8eb"}, h)}
    for i, r in enumerate(rows):
        for key, (style, dy) in styles.items():
            if r[key] is None:
                continue
            kw = dict(style)
            if key == "warm" and r["warm_derived"]:
                kw.update(hatch="///", edgecolor="#4393c3", lw=0.0)
            ax.barh(i + dy, r[key], h, **kw)
            ax.text(r[key], i + dy, f" {r[key]:.0f}", va="center", fontsize=7)
        if r["cold"] is None and r["seconds"] is not None:   # no run record: only this build's time
            ax.barh(i, r["seconds"], h, color="0.7")
            ax.text(r["seconds"], i, f" {r['seconds']:.0f}", va="center", fontsize=7)
        if r["budget"] is not None:
            ax.plot([r["budget"]] * 2, [i - 0.45, i + 0.45], color="black", lw=1.5)
    ax.set_yticks(range(n), [r["title"] for r in rows], fontsize=8.5)
    ax.set_ylim(n - 0.5, -0.5)
    ax.set_xlabel("seconds", fontsize=9)
    ax.tick_params(axis="x", labelsize=8)
    ax.grid(axis="x", color="0.9", lw=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    handles = [Patch(color=VALUE_BLUE, label="cold, in a book run from an empty model cache"),
               Patch(color="#4393c3", label="cold, alone: training every model it uses"),
               Patch(color="#b8d8eb", label="warm: every model cached (measured)"),
               Patch(facecolor="#b8d8eb", edgecolor="#4393c3", hatch="///", lw=0.0,
                     label="warm, derived: working time minus recorded training time"),
               Patch(color="black", label="budget (for the cold book run)")]
    if any(r["cold"] is None and r["seconds"] is not None for r in rows):
        handles.append(Patch(color="0.7", label="this build's time (no run record: neither cold nor warm)"))
    fig.legend(handles=handles, fontsize=8, loc="outside lower center", ncols=2, frameon=False)
    fig.savefig(path, dpi=100, facecolor="white", transparent=False)


def _draw(plot, *args) -> None:
    """Run a plotting function; any warning it raises becomes a Sphinx warning (an error under -W)."""
    import matplotlib

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with matplotlib.rc_context({"font.family": "DejaVu Sans", "svg.fonttype": "none"}):
            plot(*args)
    for w in caught:
        logger.warning(f"Results page figure: {w.category.__name__}: {w.message}")


# ---------------------------------------------------------------------------------------------
# The Results page: one directive per section, filled once every notebook has been read
# ---------------------------------------------------------------------------------------------

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
        cache = os.environ.get("TFUL_CACHE")
        self.model_cache = Path(cache) if cache else srcdir / ".cache"
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
        book_cold = book_cold_times(results) or {}
        warm = warm_times(results, self.model_cache)
        chart = []
        for stem, info in results.items():
            w = warm.get(stem)
            chart.append({"title": _short_title(info["title"]), "seconds": info["seconds"],
                          "book_cold": book_cold.get(stem), "cold": info["cold_seconds"],
                          "warm": w[0] if w else None,
                          "warm_derived": bool(w and w[1]), "budget": _budget(self.app, info["docname"])})
        self.images.mkdir(parents=True, exist_ok=True)
        _draw(plot_times, chart, self.images / "results-times.png")

        def warm_text(stem):
            w = warm.get(stem)
            return "–" if w is None else f"{w[0]:.1f}" + (" (derived)" if w[1] else "")

        rows = [[self.link(info), _secs(info["seconds"]), info["state"], _secs(book_cold.get(stem)),
                 _secs(info["cold_seconds"]), warm_text(stem),
                 ", ".join(m.rsplit("-", 1)[0] for m in info["trained"]) or "–"]
                for stem, info in results.items()]
        total = sum(info["seconds"] or 0.0 for info in results.values())
        rows.append(["all notebooks, one after another", _secs(total), "", _secs(book_cold_seconds(results)),
                     "", "", ""])
        jobs = sorted({info.get("jobs") for info in results.values()} - {None})
        starts = [info["started"] for info in results.values() if info.get("started")]
        ends = [info["finished"] for info in results.values() if info.get("finished")]
        one_run = len({info.get("run_id") for info in results.values()}) == 1
        wall = (f" They ran {jobs[0]} at a time, in {max(ends) - min(starts):.0f} s of wall time from the "
                "first start to the last finish." if one_run and len(jobs) == 1 and starts and ends else "")
        unrecorded = [info["title"] for info in results.values() if info["executed_by"] != RUNNER]
        stale = (" Executed by the book build itself, without a run record (so no cold or warm time): "
                 + "; ".join(unrecorded) + "." if unrecorded else "")
        return [
            self.image("results-times.png", "Seconds per notebook: cold, warm and the budget"),
            nodes.paragraph(text=(
                "Cold, in a book run (dark bars): the notebook's time when the whole book runs from an "
                "empty model cache and each shared model is trained once, by the first chapter that "
                "needs it; each chapter's budget (black tick) is checked against it, and the book's 10 "
                "minutes against the wall time of a cold parallel run (or else the sum of the dark "
                "bars). Cold, alone (middle bars): the time to run only this notebook on an empty "
                "model cache, training every model it uses. Both are computed from this build's run "
                "records: the notebook's working time (wall time minus any wait for a model another "
                "notebook was training) plus the recorded training time of the models it loaded. "
                "Warm (light bars): the time with every model it uses already cached. For a notebook "
                "that trained nothing in this build, warm is measured (its working time); for one that "
                "trained models, it is derived, not measured: its working time minus the recorded "
                "training time of the models it trained (hatched bars, 'derived' in the table). Working "
                "times are this build's, on the machine that built the book, with the notebooks sharing "
                "its cores; training times are those recorded when each model was trained, in this "
                "build or an earlier one." + wall + stale)),
            nodes.paragraph(text=(
                "In the table, Seconds is the execution that produced the page you are reading. "
                "State: cold if it trained the models it uses, warm if it loaded them from the cache, "
                "mixed if both, none if it uses no cached model.")),
            _table(["Notebook", "Seconds", "State", "In a cold book run", "Alone, cold", "Warm",
                    "Trained here"], rows, [26, 9, 8, 12, 10, 13, 22], "results-timing"),
        ]

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


def _budget(app: Sphinx, docname: str) -> float | None:
    import nbformat

    try:
        nb = nbformat.read(app.env.doc2path(docname), as_version=4)
    except (OSError, ValueError):
        return None
    return nb.metadata.get("tful", {}).get("budget_seconds")


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
