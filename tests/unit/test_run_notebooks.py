"""The notebook runner: its pool, its run records and what ``make book`` prints."""

from __future__ import annotations

import json
import re

import nbformat
import pytest

from tools import run_notebooks, run_record


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


def _cells(path, *sources: str):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nb.cells = [nbformat.v4.new_markdown_cell("# A test notebook")]
    nb.cells += [nbformat.v4.new_code_cell(source) for source in sources]
    nbformat.write(nb, path)
    return path


def test_a_run_records_where_its_models_came_from_and_no_transport_warning(tmp_path, capfd):
    # the kernel logs what utils.models.load and utils.runtime.cached log: a shipped model, one
    # loaded from the cache, one trained now
    events = [{"name": "gan", "file": "gan.safetensors", "event": "shipped", "waited_seconds": 0.0,
               "train_seconds": 1800.0},
              {"name": "vae", "file": "vae-1.pt", "event": "loaded", "waited_seconds": 0.0, "train_seconds": 40.0},
              {"name": "dec", "file": "dec-2.pt", "event": "trained", "waited_seconds": 0.0, "train_seconds": 0.5}]
    path = _cells(tmp_path / "models.ipynb",
                  "from utils import runtime\n" + "\n".join(f"runtime._log_event(**{e!r})" for e in events))
    pool = run_notebooks.Scheduler([path], timeout=120, jobs=1)
    try:
        run = pool.result(path)
    finally:
        pool.close()
    assert run.error is None, run.error
    rec = run.record
    assert [(m.name, m.origin) for m in rec.models] == [("dec", "trained"), ("gan", "shipped"), ("vae", "cache")]
    assert rec.cold_seconds == pytest.approx(rec.working_seconds + 40.0)   # never the shipped GAN's 1800 s
    assert rec.run_id and rec.jobs == 1 and rec.utils_sha == run_record.utils_sha()
    # kernels talk over IPC: ipykernel warns about every kernel on TCP (its stderr is this process's)
    assert "without encryption" not in capfd.readouterr().err


def test_make_book_output_progress_summary_and_a_failure_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(run_notebooks, "JUPYTER_CACHE", tmp_path / "jupyter_cache")
    monkeypatch.setattr(run_notebooks, "REPORTS", tmp_path / "reports")
    monkeypatch.setattr(run_notebooks, "RESULTS", tmp_path / "results.json")
    good = _cells(tmp_path / "good.ipynb", "x = 1")
    bad = _cells(tmp_path / "bad.ipynb", "x = 1", "y = 2\nassert x == 2, f'x is {x}'")
    assert run_notebooks.main([str(good), str(bad), "--jobs", "2"]) == 1
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0] == "executing 2 notebook(s), 2 at a time; a line as each one starts and finishes"
    assert re.search(r"^\[ 0:\d\d\] 0/2 done  started   (good|bad)$", lines[1]), lines[1]
    assert any(re.search(r"\] [12]/2 done  finished  good in \d+\.\d s", line) for line in lines), out
    assert any(re.search(r"\] [12]/2 done  FAILED    bad: cell 3, line 2", line) for line in lines), out
    table = lines[lines.index("") + 1:]
    assert table[0].split() == ["notebook", "result", "seconds", "cold", "warm", "models"]
    assert table[2].split()[:2] + table[2].split()[3:5] == ["bad", "FAILED", "–", "–"]
    assert table[3].split()[:2] == ["good", "ok"] and table[3].split()[-1] == "–"   # no models
    (failure,) = err.splitlines()
    assert failure.startswith("FAILED bad: cell 3, line 2 (assert x == 2, f'x is {x}'): AssertionError: x is 1")
    assert "reports/bad.log" in failure and "x is 1" in (tmp_path / "reports" / "bad.log").read_text()
    # the good notebook is in the cache now, with its run record: it is not executed again
    assert run_notebooks.main([str(good)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "up to date: 1 notebook(s) whose outputs are cached (--force executes them again)"]


def test_longest_first_uses_the_last_builds_cold_time_else_the_budget(tmp_path, monkeypatch):
    results = tmp_path / "results.json"
    monkeypatch.setattr(run_notebooks, "RESULTS", results)
    path = _cells(tmp_path / "nb.ipynb", "x = 1")
    nb = nbformat.read(path, as_version=4)
    nb.metadata["tful"] = {"budget_seconds": 45}
    nbformat.write(nb, path)
    assert run_notebooks.expected_seconds(path) == 45.0                       # no build yet
    record = run_record.Record.from_events(10.0, [{"name": "vae", "file": "vae-1.pt", "event": "loaded",
                                                   "waited_seconds": 2.0, "train_seconds": 30.0}])
    results.write_text(json.dumps({"nb": {"record": record.to_dict()}}))
    assert run_notebooks.expected_seconds(path) == 38.0                       # 10 - 2 + 30
    results.write_text(json.dumps({"nb": {"record": {**record.to_dict(), "models": [{"file": 1}]}}}))
    assert run_notebooks.expected_seconds(path) == 45.0                       # unreadable: the budget
