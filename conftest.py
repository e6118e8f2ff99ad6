"""Pytest glue for the notebooks.

``make test`` (plain ``pytest`` too) runs every notebook once, under nbmake. This plugin

* starts the collected notebooks on a pool of processes, one per core
  (:mod:`tools.run_notebooks`: pinned threads in every kernel, a file lock around
  shared training), and lets each nbmake item wait for its own notebook. The pool starts
  as soon as the tests are collected, with one notebook at a time while the unit tests use
  the other core(s), and uses every worker once the first notebook item is reached;
* fails a notebook whose working time (wall time minus any wait for a model another
  notebook was training) exceeds the budget in its metadata
  (``{"tful": {"budget_seconds": N}}``); the book's tests then check each notebook's
  time in a cold book run, which also counts models that were cached before the run;
* stores each successful run of a chapter in ``notebooks/`` (never another notebook,
  e.g. a student's submission) in the book's execution cache (``_build/.jupyter_cache``),
  with its times and whether it trained or loaded its models, so the book build that
  the tests run next renders those outputs and executes nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import nbmake.pytest_items
from nbmake.nb_result import NotebookError, NotebookResult
from nbmake.nb_run import NotebookRun

from tools import run_notebooks, run_record

# Test logs stay free of progress bars, however pytest is started.
os.environ.setdefault("TFUL_NO_PROGRESS", "1")
os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")

_NOTEBOOKS: list[Path] = []
_SCHEDULER: run_notebooks.Scheduler | None = None


def pytest_collection_modifyitems(session, config, items):
    global _SCHEDULER
    _NOTEBOOKS[:] = [Path(item.filename).resolve() for item in items if getattr(item, "nbmake", False)]
    if _NOTEBOOKS and _SCHEDULER is None and not config.option.collectonly:
        first = next(i for i, item in enumerate(items) if getattr(item, "nbmake", False))
        timeout = config.getoption("nbmake_timeout", 600)
        _SCHEDULER = run_notebooks.Scheduler(_NOTEBOOKS, timeout=timeout, start_with=1 if first else None)


def pytest_sessionfinish(session, exitstatus):
    if _SCHEDULER is not None:
        _SCHEDULER.cancel()  # after a full run nothing is pending; after -x or Ctrl-C, don't start more
        _SCHEDULER.close()


class PooledRun(NotebookRun):
    """nbmake's run, served by the shared pool instead of executed here and now."""

    def execute(self) -> NotebookResult:
        global _SCHEDULER
        if _SCHEDULER is None:
            _SCHEDULER = run_notebooks.Scheduler(_NOTEBOOKS or [Path(self.filename)],
                                                 timeout=self.default_timeout)
        _SCHEDULER.widen()
        run = _SCHEDULER.result(Path(self.filename))
        nb = nbformat.reads(run.nb_json, as_version=4)
        if run.error is not None:
            return NotebookResult(nb, NotebookError(*run.error))
        limit = run_record.budget(nb)
        working = run.record.working_seconds  # the book test adds models cached before this run
        if limit is not None and working > limit:
            summary = (f"{Path(self.filename).name} worked {working:.0f} s ({run.record.execution_seconds:.0f} s "
                       f"wall, {run.record.state}), over its {limit:.0f} s budget")
            return NotebookResult(nb, NotebookError(summary, summary, 0))
        if Path(self.filename).resolve().parent == run_notebooks.ROOT / "notebooks":
            run_notebooks.store(run)  # the book's own chapters only, never a submission
        return NotebookResult(nb, None)


nbmake.pytest_items.NotebookRun = PooledRun


def pytest_terminal_summary(terminalreporter):
    """One line when the browser tests could not run (no chromium or chromedriver)."""
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if "test_browser.py" in r.nodeid]
    if skipped:
        from tests.test_browser import SKIP_LINE

        terminalreporter.write_line(SKIP_LINE, yellow=True, bold=True)
