"""Execute the book's notebooks once, in parallel, and store them in the book's execution cache.

``make book`` and ``make test`` both execute notebooks through this module, so that
the Sphinx build that follows finds every notebook in the cache and executes none.

* **Parallel, without oversubscription.** ``jobs`` notebooks run at once (default: one
  per core). Every kernel starts with its thread pools pinned (torch, BLAS, OpenMP)
  to ``cores // jobs`` threads through its environment, and training loops pin their
  own count (:func:`utils.runtime.train_threads`), so two kernels never fight for the
  same core. A model that two notebooks need is trained once: the cache holds a
  file lock while it trains (:func:`utils.runtime.cached`). Kernels talk to the runner
  over IPC sockets in a private folder, not over TCP.
* **A run record.** Each kernel logs every model it gets and where from (shipped, the
  cache, or trained now) to ``TFUL_RUN_LOG``; the run's :class:`tools.run_record.Record`
  (wall time, waits, models, cold and warm times) is stored in the cache beside the
  executed notebook, and the book's Results page reads it back.
* **Longest first.** Notebooks are started in order of their cold time in the last
  build (``_build/results.json``), or of their budget when there is none.
* **What it prints.** A line as each notebook starts and finishes (how many are done and
  what still runs), a failed notebook's cell and error in one line (its full traceback in
  ``_build/reports/``), and a summary table at the end.

Run ``python -m tools.run_notebooks notebooks/*.ipynb`` to execute and cache them.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tools.run_record import Record, budget, failure_line, plain, read_events, tful_metadata, utils_sha

ROOT = Path(__file__).resolve().parent.parent
JUPYTER_CACHE = ROOT / "_build" / ".jupyter_cache"
RESULTS = ROOT / "_build" / "results.json"
REPORTS = ROOT / "_build" / "reports"  # full tracebacks of failed notebooks


def default_jobs(n_notebooks: int) -> int:
    """``$TFUL_JOBS``, else one notebook per core (at most the number of notebooks)."""
    env = os.environ.get("TFUL_JOBS", "").strip()
    if env:
        if not env.isdigit() or int(env) < 1:
            raise ValueError(f"$TFUL_JOBS must be a positive integer, got {env!r}")
        return int(env)
    return max(1, min(os.cpu_count() or 1, n_notebooks))


def kernel_env(jobs: int) -> dict[str, str]:
    """Environment of every kernel: pinned thread pools, no progress bars."""
    per_kernel = str(max(1, (os.cpu_count() or 1) // jobs))
    return {"TFUL_THREADS": per_kernel, "OMP_NUM_THREADS": per_kernel, "MKL_NUM_THREADS": per_kernel,
            "OPENBLAS_NUM_THREADS": per_kernel, "TFUL_NO_PROGRESS": "1",
            "PYDEVD_DISABLE_FILE_VALIDATION": "1"}


@dataclass
class Run:
    """One notebook's execution: the notebook with outputs, an error or None, and its run record."""

    path: str
    nb_json: str
    error: tuple[str, str, int] | None  # (summary, trace, failing cell index), as nbmake's NotebookError
    record: Record

    @property
    def name(self) -> str:
        return Path(self.path).stem

    def failure(self) -> str:
        """The failure in one line: cell, line and error."""
        return "" if self.error is None else failure_line(*self.error)


def execute(path: str, timeout: int, env: dict[str, str]) -> Run:
    """Execute one notebook (in a worker process); never raises for an error in a cell.

    ``env`` is the kernel's whole environment: it replaces the worker's, whatever that inherited.
    The kernel talks to this process over IPC (Unix sockets in a private folder), not TCP.
    """
    os.environ.clear()
    os.environ.update(env)
    # the kernel must draw with its inline backend: a backend chosen by the calling process
    # (e.g. MPLBACKEND=Agg set by a test) would silently drop every figure
    os.environ.pop("MPLBACKEND", None)
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
    from traitlets.config import Config

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
    current = [-1]  # index of the cell running now

    def on_cell_start(cell, cell_index):
        current[0] = cell_index

    code = utils_sha()
    with tempfile.TemporaryDirectory(prefix="tful-kernel-") as private:
        config = Config()
        config.KernelManager.transport = "ipc"
        config.KernelManager.ip = str(Path(private) / "kernel")  # sockets kernel-1, kernel-2, …
        log = Path(private) / "run-log.jsonl"
        os.environ["TFUL_RUN_LOG"] = str(log)
        client = NotebookClient(nb, timeout=timeout, config=config, on_cell_start=on_cell_start,
                                record_timing=False,  # timestamps would change the cache's hash
                                kernel_name=nb.metadata.get("kernelspec", {}).get("name", "python3"))
        error = None
        started, start = time.time(), time.perf_counter()
        try:
            client.execute(cwd=str(Path(path).parent))
        except CellExecutionError as err:  # its text holds the cell's source and the traceback
            error = (": ".join(filter(None, [err.ename, err.evalue])), str(err), current[0])
        except (CellTimeoutError, DeadKernelError) as err:
            message = str(err).strip() or type(err).__name__
            error = (f"{type(err).__name__}: {message.splitlines()[0]}", message, current[0])
        seconds = time.perf_counter() - start
        events = read_events(log) if log.exists() else []
    record = Record.from_events(seconds, events, started=started, jobs=int(env.get("TFUL_RUN_JOBS", 1)),
                                run_id=env.get("TFUL_RUN_ID"), utils_sha=code)
    return Run(path, nbformat.writes(nb), error, record)


def store(run: Run) -> None:
    """Put a successful run into the book's execution cache, keyed by the notebook's source."""
    import nbformat
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    get_cache(JUPYTER_CACHE).cache_notebook_bundle(
        CacheBundleIn(nbformat.reads(run.nb_json, as_version=4), str(Path(run.path).resolve()),
                      data=run.record.to_dict()),
        check_validity=False, overwrite=True)


def expected_seconds(path: Path) -> float:
    """Cold time of the last build, else the notebook's budget (used to start the longest first)."""
    try:
        record = Record.from_dict(json.loads(RESULTS.read_text())[path.stem]["record"])
    except (OSError, KeyError, TypeError, ValueError):  # no build yet, or one by another version
        record = None
    return record.cold_seconds if record is not None else budget(path) or 60.0


def after(path: Path) -> list[str]:
    """Notebooks (by stem) that must finish before ``path`` starts: ``metadata.tful.after``.

    A chapter lists the chapters that train the shared models it loads, so that it
    does not sit idle on a worker waiting for their file lock.
    """
    return list(tful_metadata(path).get("after", []))


class Scheduler:
    """Run notebooks on a pool of ``jobs`` processes, longest first, each after the ones it needs.

    ``result(path)`` blocks until that notebook has run. A notebook whose ``after``
    list names a notebook that is not part of this batch does not wait for it.
    """

    def __init__(self, paths: list[Path], *, timeout: int, jobs: int | None = None,
                 extra_env: dict[str, str] | None = None, start_with: int | None = None,
                 on_start: Callable[[Path], None] | None = None,
                 on_finish: Callable[[Path, Future], None] | None = None):
        self.paths = sorted({Path(p).resolve() for p in paths}, key=expected_seconds, reverse=True)
        self.jobs = jobs or default_jobs(len(self.paths))
        self.timeout = timeout
        self.on_start, self.on_finish = on_start, on_finish
        # The whole environment, as it is now: workers start later (possibly while a unit test has
        # patched os.environ, e.g. a private TFUL_CACHE) and must not inherit such changes.
        # TFUL_RUN_ID: one id per batch of notebooks run together (see the run record).
        self.env = {**os.environ, **kernel_env(self.jobs), "TFUL_RUN_JOBS": str(self.jobs),
                    "TFUL_RUN_ID": f"{time.time():.3f}", **(extra_env or {})}
        stems = {p.stem for p in self.paths}
        self.needs = {p: {s for s in after(p) if s in stems} for p in self.paths}
        self.done: set[str] = set()
        self.pending = list(self.paths)
        self.running = 0
        # at most ``limit`` notebooks at once; ``start_with`` < jobs leaves cores to other work
        # (pytest's unit tests) until ``widen()`` is called
        self.limit = min(self.jobs, start_with or self.jobs)
        self.lock = threading.Lock()
        self.futures: dict[Path, Future] = {p: Future() for p in self.paths}
        self.pool = ProcessPoolExecutor(self.jobs, mp_context=multiprocessing.get_context("spawn"))
        self.started = time.perf_counter()
        with self.lock:
            self._fill()

    def _fill(self) -> None:
        """Start ready notebooks (all they need has finished) while a worker is free. Holds the lock."""
        while self.running < self.limit:
            ready = [p for p in self.pending if self.needs[p] <= self.done]
            if not ready and self.pending and self.running == 0:
                ready = self.pending[:1]  # a cycle or a failed dependency: run anyway, the lock copes
            if not ready:
                return
            path = ready[0]  # pending is sorted longest first
            self.pending.remove(path)
            self.running += 1
            job = self.pool.submit(execute, str(path), self.timeout, self.env)
            if self.on_start is not None:
                self.on_start(path)
            job.add_done_callback(lambda job, path=path: self._finished(path, job))

    def _finished(self, path: Path, job: Future) -> None:
        try:
            if self.on_finish is not None:
                self.on_finish(path, job)
        finally:  # a failing report must not leave the batch waiting for this notebook forever
            with self.lock:
                self.running -= 1
                self.done.add(path.stem)
                self._fill()
            if job.exception() is not None:
                self.futures[path].set_exception(job.exception())
            else:
                self.futures[path].set_result(job.result())

    def widen(self) -> None:
        """Use every worker from now on."""
        with self.lock:
            self.limit = self.jobs
            self._fill()

    def result(self, path: Path) -> Run:
        return self.futures[Path(path).resolve()].result()

    def cancel(self) -> None:
        """Start no more notebooks (e.g. pytest stopped early); those already running finish."""
        with self.lock:
            dropped, self.pending = self.pending, []
        for path in dropped:
            self.futures[path].cancel()

    def close(self) -> float:
        for future in self.futures.values():
            if not future.cancelled():
                future.exception()  # wait for every notebook that was started
        self.pool.shutdown(wait=True)
        return time.perf_counter() - self.started


class Progress:
    """What ``make book`` prints while notebooks run: a line as each one starts and finishes.

    Each line starts with the time since the start and how many notebooks are done, and a
    finished line names what still runs, so a long wait always says what it waits for.
    """

    def __init__(self, total: int, out=None):
        self.total, self.out = total, out or sys.stdout
        self.done = 0
        self.running: list[str] = []
        self.start = time.perf_counter()
        self.lock = threading.Lock()

    def _line(self, text: str) -> None:
        elapsed = int(time.perf_counter() - self.start)
        print(f"[{elapsed // 60:2d}:{elapsed % 60:02d}] {self.done:{len(str(self.total))}d}/{self.total} done  {text}",
              file=self.out, flush=True)

    def started(self, path: Path) -> None:
        with self.lock:
            self.running.append(path.stem)
            self._line(f"started   {path.stem}")

    def finished(self, path: Path, job: Future) -> None:
        with self.lock:
            self.running.remove(path.stem)
            self.done += 1
            if job.exception() is not None:
                what = f"CRASHED   {path.stem}: {type(job.exception()).__name__}: {job.exception()}"
            else:
                run = job.result()
                what = (f"finished  {path.stem} in {run.record.execution_seconds:.1f} s" if run.error is None
                        else f"FAILED    {path.stem}: {run.failure()}")
            self._line(what + (f"  (running: {', '.join(self.running)})" if self.running else ""))


def report(run: Run) -> Path:
    """Write a failed run's full traceback to ``_build/reports/<notebook>.log``; returns the path."""
    REPORTS.mkdir(parents=True, exist_ok=True)
    path = REPORTS / f"{run.name}.log"
    path.write_text(f"{run.path}: {run.failure()}\n\n{plain(run.error[1])}\n")
    return path


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it is inside it (shorter to read)."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def summary_table(runs: list[Run], cached: list[Path]) -> str:
    """The table printed at the end: each notebook's result, times and models."""
    header = ["notebook", "result", "seconds", "cold", "warm", "models"]
    rows = []
    for run in runs:
        r = run.record
        if run.error is None:
            times = [f"{r.cold_seconds:.1f}", f"{r.warm_seconds:.1f}" + ("*" if r.warm_derived else "")]
        else:  # it stopped early: its times say nothing about a whole run
            times = ["–", "–"]
        rows.append([run.name, "ok" if run.error is None else "FAILED", f"{r.execution_seconds:.1f}", *times,
                     r.origins_text()])
    rows += [[p.stem, "cached", "", "", "", "(outputs from an earlier run)"] for p in cached]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    align = ["<", "<", ">", ">", ">", "<"]
    lines = ["  ".join(f"{cell:{a}{w}}" for cell, a, w in zip(row, align, widths, strict=True)).rstrip()
             for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--jobs", type=int, default=None, help="notebooks at once (default: one per core)")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    parser.add_argument("--force", action="store_true", help="execute even the notebooks already cached")
    args = parser.parse_args(argv)
    missing = [p for p in args.notebooks if not p.exists()]
    if missing:
        parser.error(f"no such notebook: {missing[0]}")
    import nbformat
    from jupyter_cache import get_cache

    cache = get_cache(JUPYTER_CACHE)
    todo, cached = [], []
    for p in args.notebooks:
        try:
            match = cache.match_cache_notebook(nbformat.read(p, as_version=4))
        except KeyError:
            match = None
        # the cache is keyed by the notebook's source only: outputs made with other utils code, or
        # recorded by another version of this runner, are stale
        record = Record.from_dict(match.data) if match is not None else None
        if record is not None and record.is_current() and not args.force:
            cached.append(p)
        else:
            todo.append(p)
    if cached:
        print(f"up to date: {len(cached)} notebook(s) whose outputs are cached (--force executes them again)")
    if not todo:
        return 0
    jobs = args.jobs or default_jobs(len(todo))
    print(f"executing {len(todo)} notebook(s), {jobs} at a time; a line as each one starts and finishes",
          flush=True)
    progress = Progress(len(todo))
    sched = Scheduler(todo, timeout=args.timeout, jobs=jobs, on_start=progress.started,
                      on_finish=progress.finished)
    runs, crashed = [], []
    for path in sched.paths:
        try:
            run = sched.result(path)
        except Exception as err:  # the worker itself failed (no kernel, say): reported below
            crashed.append(f"CRASHED {path.stem}: {type(err).__name__}: {err}")
            continue
        runs.append(run)
        if run.error is None:
            store(run)
    wall = sched.close()
    failed = [run for run in runs if run.error is not None]
    print("\n" + summary_table(sorted(runs, key=lambda r: r.name), cached))
    print(f"{len(runs)} notebook(s) executed in {wall:.1f} s of wall time. Cold: alone on an empty model "
          "cache; warm: with its cached models there (*: derived, as it trained them)")
    for run in failed:
        print(f"FAILED {run.name}: {run.failure()}  (full traceback: {_shown(report(run))})", file=sys.stderr)
    for line in crashed:
        print(line, file=sys.stderr)
    failed += crashed
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
