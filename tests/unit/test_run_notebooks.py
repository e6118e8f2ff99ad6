"""The notebook pool: kernels see the environment the pool was created with."""

from __future__ import annotations

import nbformat

from tools import run_notebooks


def _notebook(path, expected: str):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nb.cells = [nbformat.v4.new_code_cell(
        f'import os\nassert os.environ.get("TFUL_PROBE") == {expected!r}, os.environ.get("TFUL_PROBE")')]
    nbformat.write(nb, path)
    return path


def test_a_worker_started_later_does_not_inherit_a_patched_environment(tmp_path, monkeypatch):
    # make test starts the pool at collection with one notebook at a time and widens it while a unit
    # test may have patched os.environ (e.g. a private TFUL_CACHE): the second worker starts then
    monkeypatch.setenv("TFUL_PROBE", "at creation")
    paths = [_notebook(tmp_path / f"nb{i}.ipynb", "at creation") for i in range(2)]
    pool = run_notebooks.Scheduler(paths, timeout=120, jobs=2, start_with=1)
    try:
        monkeypatch.setenv("TFUL_PROBE", "patched later")
        assert pool.limit == 1
        pool.widen()
        assert pool.limit == 2
        runs = [pool.result(p) for p in paths]
    finally:
        pool.close()
    assert [r.error for r in runs] == [None, None], [r.error and r.error[0] for r in runs]


def test_cancel_starts_no_more_notebooks(tmp_path):
    # pytest -x stopping in the unit tests must not wait for every notebook to run one by one
    paths = [_notebook(tmp_path / f"nb{i}.ipynb", None) for i in range(3)]
    pool = run_notebooks.Scheduler(paths, timeout=120, jobs=2, start_with=1)
    pool.cancel()
    pool.close()
    started = [p for p in paths if not pool.futures[p.resolve()].cancelled()]
    assert len(started) == 1 and pool.result(started[0]).error is None
