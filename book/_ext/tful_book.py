"""Sphinx extension for the book: offline MathJax and the Results page.

* MathJax 3 is copied from the installed ``sphinx-mathjax-offline`` package into
  ``<html>/mathjax/`` (its own folder, not ``_static/``), so math renders offline.
* After every build, each notebook's execution time and its numeric ``glue``
  values are written to ``_build/results.json``; the ``results-table`` directive
  renders the same data on the Results page.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import math
import shutil
from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

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
    out = Path(app.outdir).parent / "results.json"
    out.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")


class results_placeholder(nodes.General, nodes.Element):
    pass


class ResultsTable(SphinxDirective):
    """Placeholder replaced, once every notebook has run, by the results tables."""

    def run(self):
        return [results_placeholder()]


def _table(header: list[str], rows: list[list[nodes.Node | str]], widths: list[int]) -> nodes.table:
    table = nodes.table(classes=["results-table"])
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
            para = nodes.paragraph()
            para += cell if isinstance(cell, nodes.Node) else nodes.Text(cell)
            row += nodes.entry("", para)
        body += row
    return table


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


def fill_results(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    placeholders = list(doctree.findall(results_placeholder))
    if not placeholders:
        return
    results = collect_results(app)

    def link(info: dict) -> nodes.Node:
        ref = nodes.reference("", info["title"], internal=True,
                              refuri=app.builder.get_relative_uri(docname, info["docname"]))
        return ref

    def secs(value) -> str:
        return f"{value:.1f}" if value is not None else "–"

    book_cold = book_cold_times(results) or {}
    timing_rows = [[link(info), secs(info["seconds"]), info["state"], secs(book_cold.get(stem)),
                    secs(info["cold_seconds"]),
                    ", ".join(m.rsplit("-", 1)[0] for m in info["trained"]) or "–"]
                   for stem, info in results.items()]
    total = sum(info["seconds"] or 0.0 for info in results.values())
    cold_total = book_cold_seconds(results)
    timing_rows.append(["all notebooks, one after another", secs(total), "", secs(cold_total), "", ""])
    jobs = sorted({info.get("jobs") for info in results.values()} - {None})
    starts = [info["started"] for info in results.values() if info.get("started")]
    ends = [info["finished"] for info in results.values() if info.get("finished")]
    one_run = len({info.get("run_id") for info in results.values()}) == 1
    wall = (f" They ran {jobs[0]} at a time, in {max(ends) - min(starts):.0f} s of wall time from the "
            "first start to the last finish." if one_run and len(jobs) == 1 and starts and ends else "")
    metric_rows = [[nodes.literal(text=name), f"{value:.4g}", link(info)]
                   for info in results.values() for name, value in sorted(info["metrics"].items())]
    section = [
        nodes.rubric(text="Run time of each notebook (seconds)"),
        nodes.paragraph(text=(
            "Seconds: the execution that produced the page you are reading. State: cold if it "
            "trained the models it uses, warm if it loaded them from the cache, mixed if both, "
            "none if it uses no cached model. In a cold book run: the notebook's time when the "
            "whole book runs from an empty model cache and each shared model is trained once, by "
            "the first chapter that needs it (its working time here, plus the recorded training "
            "time of any model it loaded that no chapter of this build trained); each chapter's "
            "budget and the book's 10 minutes are checked against it. Alone: the time to run "
            "only this notebook on an empty cache, training every model it uses." + wall)),
        _table(["Notebook", "Seconds", "State", "In a cold book run", "Alone, cold", "Trained here"],
               timing_rows, [30, 11, 10, 15, 13, 21]),
        nodes.rubric(text="Headline numbers"),
        _table(["Metric", "Value", "Notebook"], metric_rows, [40, 20, 40]),
    ]
    section += _sweep_section(Path(app.srcdir) / "book" / "data" / "sweep.json", results, link)
    for node in placeholders:
        node.replace_self(section)


def _sweep_section(path: Path, results: dict, link) -> list[nodes.Node]:
    """The spread of every glued number over the sweep's seeds and thread counts (``make sweep``)."""
    if not path.exists():
        return [nodes.rubric(text="Spread over seeds and thread counts"),
                nodes.paragraph(text="No sweep has been recorded yet (run make sweep).")]
    sweep = json.loads(path.read_text())
    m = sweep["machine"]
    runs = ", ".join(f"seed offset {st['seed_offset']} on {st['train_threads']} thread(s)"
                     for st in sweep["settings"])
    stamp = (f"Measured on {m['date']} on {m['cpu']} ({m['cores']} cores), Python {m['python']}, "
             f"torch {m['torch']}, NumPy {m['numpy']}, SciPy {m['scipy']}, scikit-learn "
             f"{m['scikit-learn']}: every chapter that trains, executed from an empty model cache "
             f"with the training seeds shifted and the training threads set as follows: {runs}. "
             "Runs counts the runs that reached each number (a failed assert stops its notebook). "
             f"Notebook runs with a failed assert: {len(sweep['failures'])}.")
    rows = []
    for stem, metrics in sorted(sweep["metrics"].items()):
        info = results.get(stem)
        for name, e in sorted(metrics.items()):
            here = info["metrics"].get(name) if info else None
            rows.append([nodes.literal(text=name), f"{here:.4g}" if here is not None else "–",
                         f"{e['mean']:.4g}", f"{e['min']:.4g}", f"{e['max']:.4g}", str(e["n"]),
                         link(info) if info else stem])
    def still_there(failure: dict) -> bool:
        """Whether the failing line is still in the notebook (the sweep may predate a fix)."""
        line = failure["error"].split("--->", 1)[-1].strip().split(" ", 1)[-1]
        source = Path(path).parent.parent.parent / "notebooks" / f"{failure['notebook']}.ipynb"
        return source.exists() and line in "".join(
            "".join(c["source"]) for c in json.loads(source.read_text())["cells"])

    failed = [nodes.paragraph(text=(
        f"Failed: {f['notebook']} with seed offset {f['seed_offset']} on {f['train_threads']} "
        f"training thread(s), at: {f['error']}"
        + ("" if still_there(f) else " (this assert has been changed since; the notebook no longer "
                                     "contains that line)"))) for f in sweep["failures"]]
    return [nodes.rubric(text="Spread over seeds and thread counts"), nodes.paragraph(text=stamp),
            *failed,
            _table(["Metric", "This build", "Mean", "Min", "Max", "Runs", "Notebook"], rows,
                   [28, 11, 11, 11, 11, 7, 21])]


def always_outdated(app, env, added, changed, removed):
    """The Results page depends on every notebook, so it is rebuilt every time."""
    return [doc for doc in env.found_docs if doc.endswith("results")]


def setup(app: Sphinx):
    app.add_node(results_placeholder)
    app.add_directive("results-table", ResultsTable)
    app.connect("builder-inited", copy_mathjax)
    app.connect("env-get-outdated", always_outdated)
    app.connect("doctree-resolved", fill_results)
    app.connect("build-finished", write_results)
    app.connect("config-inited", use_local_mathjax)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
