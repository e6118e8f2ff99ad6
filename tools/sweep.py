"""``make sweep``: re-run every chapter that trains a model over seeds and thread counts.

Each setting executes the notebooks from an empty model cache of its own, with

* ``TFUL_SEED_OFFSET`` = 0, 1, 2: every training seed shifted (:func:`utils.runtime.training_seed`);
* ``TFUL_TRAIN_THREADS`` = 1, 2, 4: the threads every training loop pins
  (:func:`utils.runtime.train_threads`; 1 is the book's default).

By default the design is a cross: the three seeds on one thread, then 2 and 4 threads on
the first seed (five settings); ``--design grid`` runs all nine combinations.

Every glued number of every run is collected, and ``book/data/sweep.json`` gets the
mean, min and max of each, stamped with the date, the CPU and the library versions.
A notebook whose asserts fail in some setting is listed under ``failures``: an
assert must hold across the whole sweep. It is not part of ``make test`` (it takes
five runs for the cross design; on 2 cores the recorded runs took 5 to 37 minutes each, the
longest on a machine shared with other work: see ``wall_seconds`` in ``book/data/sweep.json``).

Usage: ``python -m tools.sweep [--seeds 0 1 2] [--threads 1 2 4] [notebooks ...]``
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tools.run_notebooks import ROOT, Scheduler
from tools.run_record import arrow_line, glued_numbers, plain

OUT = ROOT / "book" / "data" / "sweep.json"
#: Chapters 1 and 2 train nothing that the book asserts on; the rest do.
DEFAULT_NOTEBOOKS = sorted(p for p in (ROOT / "notebooks").glob("*.ipynb") if p.name[:2] not in ("01", "02"))


def machine() -> dict:
    import numpy
    import scipy
    import sklearn
    import torch

    from utils.checkpoints import machine_facts

    cpu = machine_facts()["cpu"]
    try:
        import subprocess

        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None
    return {"date": datetime.date.today().isoformat(), "commit": commit, "cpu": cpu, "cores": os.cpu_count(),
            "python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__,
            "scipy": scipy.__version__, "scikit-learn": sklearn.__version__}


def run_setting(paths: list[Path], seed_offset: int, threads: int, timeout: int, jobs: int) -> dict:
    import nbformat

    with tempfile.TemporaryDirectory(prefix="tful-sweep-") as cache:
        env = {"TFUL_SEED_OFFSET": str(seed_offset), "TFUL_TRAIN_THREADS": str(threads), "TFUL_CACHE": cache}
        start = time.perf_counter()
        sched = Scheduler(paths, timeout=timeout, jobs=jobs, extra_env=env)
        runs = {p.stem: sched.result(p) for p in sched.paths}
        wall = sched.close()
    out = {"seed_offset": seed_offset, "train_threads": threads, "jobs": jobs, "wall_seconds": round(wall, 1),
           "commit": machine()["commit"], "notebooks": {}}
    for stem, run in runs.items():
        nb = nbformat.reads(run.nb_json, as_version=4)
        error = None
        if run.error:  # the failing line (IPython marks it with an arrow), without colour codes
            error = f"{plain(run.error[0])} at {arrow_line(run.error[1]) or '?'}"
        out["notebooks"][stem] = {"passed": run.error is None, "error": error,
                                  "seconds": round(run.record.execution_seconds, 1), "metrics": glued_numbers(nb)}
    print(f"seed offset {seed_offset}, {threads} training threads: {time.perf_counter() - start:.0f} s, "
          f"failed: {[s for s, r in out['notebooks'].items() if not r['passed']] or 'none'}", flush=True)
    return out


def summarise(settings: list[dict]) -> dict:
    table: dict[str, dict[str, dict]] = {}
    for setting in settings:
        for stem, nb in setting["notebooks"].items():
            for name, value in nb["metrics"].items():
                table.setdefault(stem, {}).setdefault(name, {"values": []})["values"].append(value)
    for metrics in table.values():
        for entry in metrics.values():
            v = entry.pop("values")
            entry.update(n=len(v), mean=statistics.fmean(v), min=min(v), max=max(v))
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seed offsets")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2, 4], help="training thread counts")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="notebooks at once (the results do not depend on it, only the time)")
    parser.add_argument("--design", choices=["cross", "grid"], default="cross",
                        help="cross: every seed on the first thread count, then every other thread count on "
                             "the first seed; grid: every seed on every thread count")
    parser.add_argument("--append", action="store_true", help="add to the settings already in --out")
    parser.add_argument("--rerun", action="store_true",
                        help="with --append: run the given notebooks again in settings --out already has, "
                             "replacing their results there (after fixing a notebook that failed)")
    args = parser.parse_args(argv)
    paths = [p.resolve() for p in args.notebooks] or DEFAULT_NOTEBOOKS
    if args.design == "grid":
        plan = [(s, t) for t in args.threads for s in args.seeds]
    else:
        plan = [(s, args.threads[0]) for s in args.seeds] + [(args.seeds[0], t) for t in args.threads[1:]]
    settings = json.loads(args.out.read_text())["runs"] if args.append and args.out.exists() else []
    done = {(st["seed_offset"], st["train_threads"]) for st in settings}
    for seed, threads in plan:
        if (seed, threads) in done and not args.rerun:
            continue
        new = run_setting(paths, seed, threads, args.timeout, max(1, min(args.jobs, len(paths))))
        old = next((st for st in settings if (st["seed_offset"], st["train_threads"]) == (seed, threads)), None)
        if old is None:
            settings.append(new)
        else:               # the other notebooks keep their results; the setting records the rerun's commit
            old["notebooks"].update(new["notebooks"])
            old["commit"] = new["commit"]
        write(args, paths, settings)  # after every setting, so a long sweep can be inspected
    return 1 if any(not nb["passed"] for st in settings for nb in st["notebooks"].values()) else 0


def write(args, paths: list[Path], settings: list[dict]) -> None:
    failures = [{"notebook": stem, "seed_offset": st["seed_offset"], "train_threads": st["train_threads"],
                 "error": nb["error"]}
                for st in settings for stem, nb in st["notebooks"].items() if not nb["passed"]]
    report = {"machine": machine(), "seed_offsets": sorted({st["seed_offset"] for st in settings}),
              "train_threads": sorted({st["train_threads"] for st in settings}),
              "notebooks": sorted({stem for st in settings for stem in st["notebooks"]}), "failures": failures,
              "settings": [{k: v for k, v in st.items() if k != "notebooks"}
                           | {"seconds": {s: nb["seconds"] for s, nb in st["notebooks"].items()}}
                           for st in settings],
              "metrics": summarise(settings), "runs": settings}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
    print(f"wrote {args.out} ({len(settings)} settings, {len(failures)} failed notebook runs)", flush=True)


if __name__ == "__main__":
    sys.exit(main())
