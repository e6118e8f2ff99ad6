"""Pytest glue for the notebooks.

``make test`` runs every notebook once, under nbmake. This plugin

* fails a notebook that exceeds the time budget in its metadata
  (``{"tful": {"budget_seconds": N}}``), and
* stores each successfully executed notebook in the book's execution cache
  (``_build/.jupyter_cache``, the one ``_config.yml`` names), with its run time,

so the book build that the tests run next renders those outputs instead of
executing every notebook a second time.
"""

from __future__ import annotations

import time
from pathlib import Path

import nbmake.pytest_items
from nbmake.nb_result import NotebookError, NotebookResult
from nbmake.nb_run import NotebookRun

ROOT = Path(__file__).resolve().parent
JUPYTER_CACHE = ROOT / "_build" / ".jupyter_cache"


def notebook_budget(nb) -> float | None:
    return nb.metadata.get("tful", {}).get("budget_seconds")


class BudgetedCachingRun(NotebookRun):
    def execute(self) -> NotebookResult:
        start = time.perf_counter()
        result = super().execute()
        seconds = time.perf_counter() - start
        if result.error is not None:
            return result
        budget = notebook_budget(result.nb)
        if budget is not None and seconds > budget:
            summary = f"{Path(self.filename).name} took {seconds:.0f} s, over its {budget} s budget"
            return NotebookResult(result.nb, NotebookError(summary, summary, 0))
        from jupyter_cache import get_cache
        from jupyter_cache.base import CacheBundleIn

        get_cache(JUPYTER_CACHE).cache_notebook_bundle(
            CacheBundleIn(result.nb, str(Path(self.filename).resolve()),
                          data={"execution_seconds": seconds}),
            check_validity=False, overwrite=True,
        )
        return result


nbmake.pytest_items.NotebookRun = BudgetedCachingRun
