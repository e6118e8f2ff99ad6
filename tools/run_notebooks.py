"""Execute the book's notebooks once, in parallel, and store them in the book's execution cache.

``make book`` and ``make test`` both execute notebooks through this module, so that
the Sphinx build that follows finds every notebook in the cache and executes none.

* **Parallel, without oversubscription.** ``jobs`` notebooks run at once (default: one
  per core). Every kernel starts with its thread pools pinned (torch, BLAS, OpenMP)
  to ``cores // jobs`` threads through its environment, and training loops pin their
  own count (:func:`utils.runtime.train_threads`), so two kernels never fight for the
  same core. A model that two notebooks need is trained once: the cache holds a
  file lock while it trains (:func:`utils.runtime.cached`).
* **Cold or warm.** Each kernel appends what it trained and what it loaded to a log
  (``TFUL_RUN_LOG``). Every run records its wall time, the time it spent waiting for
  another notebook's training, and ``cold_seconds``: the time it would take alone on an
  empty cache (its working time plus the recorded training time of every model it
  loaded). The book's Results page turns these into each notebook's time in a cold run
  of the whole book, which the budgets are checked against.
* **Longest first.** Notebooks are started in order of their cold time in the last
  build (``_build/results.json``), or of their budget when there is none.

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
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
JUPYTER_CACHE = ROOT / "_build" / ".jupyter_cache"
RESULTS = ROOT / "_build" / "results.json"
RUNNER = "tools.run_notebooks"  # recorded in the cache, so the book can tell who executed a notebook


def utils_sha() -> str:
    """A hash of the ``utils`` package's source: outputs made with other code are stale."""
    import hashlib

    h = hashlib.sha256()
    for path in sorted((ROOT / "utils").rglob("*.py")):
        h.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


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


def budget(nb) -> float | None:
    return nb.metadata.get("tful", {}).get("budget_seconds")


@dataclass
class Run:
    """One notebook's execution: the notebook with outputs, an error or None, and timings."""

    path: str
    nb_json: str
    error: tuple[str, str, int] | None  # (summary, trace, failing cell index)
    seconds: float
    events: list[dict] = field(default_factory=list)
    started: float = 0.0  # time.time() when the notebook started

    @property
    def trained(self) -> list[str]:
        return sorted({e["file"] for e in self.events if e["event"] == "trained"})

    @property
    def loaded(self) -> list[str]:
        return sorted({e["file"] for e in self.events if e["event"] == "loaded"} - set(self.trained))

    @property
    def waited_seconds(self) -> float:
        return sum(e.get("waited_seconds", 0.0) for e in self.events)

    @property
    def loaded_train_seconds(self) -> dict[str, float]:
        """For each model it loaded, how long that model took to train."""
        out: dict[str, float] = {}
        for e in self.events:
            if e["event"] == "loaded" and e["file"] in self.loaded:
                out.setdefault(e["file"], float(e.get("train_seconds") or 0.0))
        return out

    @property
    def cold_seconds(self) -> float:
        """Wall time as if this notebook had run alone on an empty cache, training every model it uses."""
        return self.seconds - self.waited_seconds + sum(self.loaded_train_seconds.values())

    @property
    def state(self) -> str:
        """``cold``: trained every model it used; ``warm``: loaded them all; ``mixed``; ``none``: uses none."""
        if self.trained and self.loaded:
            return "mixed"
        return "cold" if self.trained else "warm" if self.loaded else "none"

    def record(self) -> dict:
        """What the cache stores next to the executed notebook (read by the book's Results page)."""
        return {"execution_seconds": round(self.seconds, 2), "runner": RUNNER,
                "cold_seconds": round(self.cold_seconds, 2), "state": self.state,
                "trained": self.trained, "loaded": self.loaded,
                "loaded_train_seconds": {k: round(v, 2) for k, v in self.loaded_train_seconds.items()},
                "waited_seconds": round(self.waited_seconds, 2), "jobs": int(os.environ.get("TFUL_RUN_JOBS", 1)),
                "utils_sha": utils_sha(), "run_id": os.environ.get("TFUL_RUN_ID"),
                "started": self.started, "finished": self.started + self.seconds}


def execute(path: str, timeout: int, env: dict[str, str]) -> Run:
    """Execute one notebook (in a worker process) with nbmake's runner; never raises for cell errors.

    ``env`` is the kernel's whole environment: it replaces the worker's, whatever that inherited.
    """
    os.environ.clear()
    os.environ.update(env)
    # the kernel must draw with its inline backend: a backend chosen by the calling process
    # (e.g. MPLBACKEND=Agg set by a test) would silently drop every figure
    os.environ.pop("MPLBACKEND", None)
    import nbformat
    from nbmake.nb_run import NotebookRun

    with tempfile.NamedTemporaryFile("r", suffix=".jsonl", delete=False) as log:
        os.environ["TFUL_RUN_LOG"] = log.name
    try:
        started, start = time.time(), time.perf_counter()
        result = NotebookRun(Path(path), timeout).execute()
        seconds = time.perf_counter() - start
        events = [json.loads(line) for line in Path(log.name).read_text().splitlines() if line.strip()]
    finally:
        Path(log.name).unlink(missing_ok=True)
    for cell in result.nb.cells:  # nbmake records timestamps; they would change the cache's hash
        cell.metadata.pop("execution", None)
    error = None
    if result.error is not None:
        error = (result.error.summary, result.error.trace, result.error.failing_cell_index)
    return Run(path, nbformat.writes(result.nb), error, seconds, events, started)


def store(run: Run) -> None:
    """Put a successful run into the book's execution cache, keyed by the notebook's source."""
    import nbformat
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    get_cache(JUPYTER_CACHE).cache_notebook_bundle(
        CacheBundleIn(nbformat.reads(run.nb_json, as_version=4), str(Path(run.path).resolve()),
                      data=run.record()),
        check_validity=False, overwrite=True)


def expected_seconds(path: Path) -> float:
    """Cold time of the last build, else the notebook's budget (used to start the longest first)."""
    try:
        last = json.loads(RESULTS.read_text())[path.stem]
        return float(last.get("cold_seconds") or last["seconds"])
    except (OSError, KeyError, TypeError, ValueError):
        import nbformat

        return float(budget(nbformat.read(path, as_version=4)) or 60)


def after(path: Path) -> list[str]:
    """Notebooks (by stem) that must finish before ``path`` starts: ``metadata.tful.after``.

    A chapter lists the chapters that train the shared models it loads, so that it
    does not sit idle on a worker waiting for their file lock.
    """
    import nbformat

    return list(nbformat.read(path, as_version=4).metadata.get("tful", {}).get("after", []))


class Scheduler:
    """Run notebooks on a pool of ``jobs`` processes, longest first, each after the ones it needs.

    ``result(path)`` blocks until that notebook has run. A notebook whose ``after``
    list names a notebook that is not part of this batch does not wait for it.
    """

    def __init__(self, paths: list[Path], *, timeout: int, jobs: int | None = None,
                 extra_env: dict[str, str] | None = None, start_with: int | None = None):
        self.paths = sorted({Path(p).resolve() for p in paths}, key=expected_seconds, reverse=True)
        self.jobs = jobs or default_jobs(len(self.paths))
        self.timeout = timeout
        os.environ["TFUL_RUN_JOBS"] = str(self.jobs)
        os.environ["TFUL_RUN_ID"] = f"{time.time():.3f}"  # one id per batch of notebooks run together
        # The whole environment, as it is now: workers start later (possibly while a unit test has
        # patched os.environ, e.g. a private TFUL_CACHE) and must not inherit such changes.
        self.env = {**os.environ, **kernel_env(self.jobs), "TFUL_RUN_JOBS": str(self.jobs), **(extra_env or {})}
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
            job.add_done_callback(lambda job, path=path: self._finished(path, job))

    def _finished(self, path: Path, job: Future) -> None:
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
    todo, code = [], utils_sha()
    for p in args.notebooks:
        try:
            record = cache.match_cache_notebook(nbformat.read(p, as_version=4))
        except KeyError:
            record = None
        # the cache is keyed by the notebook's source only; outputs made with other utils code are stale
        if record is not None and not args.force and (record.data or {}).get("utils_sha") == code:
            print(f"cached    {p.name}")
        else:
            todo.append(p)
    if not todo:
        return 0
    sched = Scheduler(todo, timeout=args.timeout, jobs=args.jobs)
    print(f"executing {len(todo)} notebooks, {sched.jobs} at a time")
    failed = 0
    for path in sched.paths:
        run = sched.result(path)
        if run.error is None:
            store(run)
            print(f"{run.seconds:7.1f} s  {run.state:5}  {path.name}  (cold {run.cold_seconds:.1f} s)")
        else:
            failed += 1
            print(f"FAILED    {path.name}: {run.error[0]}\n{run.error[1]}", file=sys.stderr)
    print(f"all notebooks: {sched.close():.1f} s wall")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
