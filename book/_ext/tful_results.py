"""A build's results: each notebook's title, run time, run record and glued numbers.

They come from this build (myst-nb's execution data and glue files) and from the run record
the notebook runner stored in the execution cache (:mod:`tools.run_record`). After every
HTML build they are written to ``_build/results.json``, one entry per notebook::

    {"title", "docname", "seconds", "succeeded", "metrics": {glue name: number},
     "executed_by": "tools.run_notebooks" or "jupyter-book",
     "record": the run record (None without one), "book_cold_seconds"}
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from sphinx.application import Sphinx

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:   # the build's own tools (tools/) are not an installed package
    sys.path.insert(0, str(ROOT))

from tools import run_record  # noqa: E402

EXECUTED_BY_BOOK = "jupyter-book"


def _cache_data(app: Sphinx, docname: str) -> dict | None:
    """What the execution cache stored beside ``docname``'s executed notebook, if anything."""
    import nbformat
    from jupyter_cache import get_cache

    cache_path = app.env.mystnb_config.execution_cache_path
    if not cache_path:
        return None
    cache_path = Path(app.srcdir) / cache_path  # an absolute path stays as it is
    try:
        nb = nbformat.read(app.env.doc2path(docname), as_version=4)
        match = get_cache(cache_path).match_cache_notebook(nb)
    except (KeyError, OSError, ValueError):
        return None
    return dict(match.data or {})


def collect_results(app: Sphinx) -> dict[str, dict]:
    """``{notebook: entry}`` for every notebook of this build (see the module's docstring)."""
    from myst_nb.sphinx_ import NbMetadataCollector

    env = app.env
    execute_dir = Path(app.outdir).parent / "jupyter_execute"
    results: dict[str, dict] = {}
    for docname, data in sorted(NbMetadataCollector.get_doc_data(env).items()):
        exec_data = data.get("exec_data")
        if not exec_data:
            continue
        glue_file = execute_dir / f"{docname}.glue.json"
        metrics = run_record.glue_file_numbers(json.loads(glue_file.read_text())) if glue_file.exists() else {}
        title = env.titles.get(docname)
        # Only the notebook runner writes a run record; a notebook the book build executed
        # itself (``jupyter-book build`` on its own, with a stale cache) has none.
        record = run_record.Record.from_dict(_cache_data(app, docname))
        results[Path(docname).name] = {
            "title": title.astext() if title is not None else docname,
            "docname": docname,
            "seconds": exec_data.get("runtime"),
            "succeeded": exec_data.get("succeeded"),
            "metrics": metrics,
            "executed_by": run_record.RUNNER if record is not None else EXECUTED_BY_BOOK,
            "record": record.to_dict() if record is not None else None,
        }
    return results


def write_results(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    results = collect_results(app)
    cold = run_record.book_cold_times(run_record.records(results)) or {}
    for stem, info in results.items():
        info["book_cold_seconds"] = None if stem not in cold else round(cold[stem], 2)
    out = Path(app.outdir).parent / "results.json"
    out.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
