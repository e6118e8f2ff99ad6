"""Grade a folder of submitted student copies: points, statuses, feedback and CSV files.

::

    TFUL_GRADER_SECRET=... python -m classroom.grade \\
        --assignment _build/student/01_attention_from_scratch/assignment.json submissions/ --out grades/

``--assignment`` is an ``assignment.json`` written by :mod:`classroom.student`, or the chapter
notebook itself. For each ``*.ipynb`` in the submissions folder (the student is the file stem)
and each exercise, the grader

1. finds the answer cells by ``metadata.tful.exercise`` (none: ``missing``; still the stub:
   ``not_attempted``; the file is not a notebook: ``unreadable`` for every exercise);
2. draws each check's cases from the grader's seed and computes the reference answers, in its
   own process (:mod:`classroom.scoring`);
3. in a fresh process of the sandbox (:mod:`classroom.sandbox`) runs the chapter's setup
   imports (from the assignment, not the submission), the definitions of the student's earlier
   answer cells, and this answer cell without its check calls, then calls the student's
   function on the cases' inputs (:mod:`classroom.attempt`), and gets back only the outputs;
4. judges the outputs against the reference answers in its own process: ``ok``, ``wrong``,
   ``error``, ``timeout`` or ``not_attempted``.

Exercises without a check are ``manual``: their points stay empty until you fill in
``rubric.csv`` and grade again with ``--manual rubric.csv``.

Grader seeds are derived from the assignment and a secret (``--secret``, else the environment
variable ``TFUL_GRADER_SECRET``, which is safer: a command line is visible to every process on
the machine; else the module constant ``DEFAULT_SECRET``, which is public: set your own), so
students cannot know the random cases in advance, and grading is
reproducible: the same folder graded twice gives identical ``grades.csv``, ``rubric.csv`` and
feedback files.

Outputs in ``--out``: ``grades.csv`` (one row per student and exercise), ``totals.csv``,
``rubric.csv`` (manual exercises to fill in), ``feedback/<student>.md``, ``timings.csv`` (the
only file with times in it) and ``sandbox.log`` (how the submissions were isolated).
"""

from __future__ import annotations

import argparse
import ast
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from . import answers, reports, scoring, wire
from .assignment import DEFAULT_SECRET, grader_seed, load_assignment
from .sandbox import ISOLATIONS, MEMORY_MB, TIME_LIMIT, Sandbox
from .scoring import STATUSES, Row

__all__ = ["grade", "main", "load_assignment", "grader_seed", "DEFAULT_SECRET", "STATUSES", "TIME_LIMIT",
           "MEMORY_MB", "GRADES_FIELDS"]

GRADES_FIELDS = reports.GRADES_FIELDS


def _preload(setup: str) -> list[str]:
    mods = []
    for node in ast.parse(setup).body:
        if isinstance(node, ast.Import):
            mods += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            mods.append(node.module)
            mods += [f"{node.module}.{a.name}" for a in node.names]  # submodules; others are ignored
    return list(dict.fromkeys(mods))


def grade(assignment: dict, submissions: Path, out: Path, *, secret: str, manual: Path | None = None,
          time_limit: float = TIME_LIMIT, memory_mb: float = MEMORY_MB, jobs: int = 1,
          preload: tuple[str, ...] = (), isolation: str = "auto", log=print) -> list[Row]:
    """Grade every ``*.ipynb`` in ``submissions``; write the CSV, feedback and log files to ``out``.

    ``preload`` adds modules for the sandbox's fork server to import once (it already imports
    torch, numpy, :mod:`utils.checks` and the chapter's imports). ``isolation`` is ``"auto"``
    (bubblewrap where it starts, else the scrubbed fallback, said on the terminal and in
    ``sandbox.log``), ``"bubblewrap"`` or ``"scrubbed"``.
    """
    submissions, out = Path(submissions), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "sandbox.log").write_text("")
    exercises = assignment["exercises"]
    manual_marks = reports.read_rubric(manual, assignment) if manual else {}
    paths = sorted(submissions.glob("*.ipynb"))
    rows: dict[tuple[str, str], Row] = {}
    pending: list[tuple[Row, dict, list[str], list[str]]] = []
    for path in paths:
        student = path.stem
        nb = answers.read_notebook(path)
        cells_of = answers.answer_cells(nb) if nb is not None else {}
        before: list[str] = []
        for ex in exercises:
            label, cells = ex["label"], cells_of.get(ex["label"])
            row = Row(student, label, 0.0, ex["points"], "")
            rows[student, label] = row
            if nb is None:
                row.status = "unreadable"
            elif ex["kind"] == "manual":
                row.status, row.points = "manual", None
                mark = manual_marks.get((student, label))
                if mark:
                    row.points, row.comment = mark
                row.flag = "missing" if cells is None else (
                    "placeholder" if answers.only_comments("\n".join(cells)) else "")
            elif cells is None:
                row.status = "missing"
            elif answers.is_untouched(cells, ex["stub"]):
                row.status = "not_attempted"
            else:
                pending.append((row, ex, list(before), cells))
            before += cells or []
    started = time.perf_counter()
    if pending:
        import torch

        from utils import checks  # noqa: F401  (imported here, not timed as grading)

        sandbox = Sandbox(_preload(assignment["setup"]) + list(preload), isolation=isolation,
                          log=out / "sandbox.log")
        warm = sandbox.start()
        log(sandbox.description)
        log(f"fork server ready in {warm:.1f} s (preloaded the chapter's imports)")
        started = time.perf_counter()

        def work(item):
            row, ex, before, cells = item
            per_check = scoring.check_seconds(time_limit, len(ex["checks"]))
            planned = scoring.plan(assignment, ex, secret)
            job = scoring.job(ex, assignment["setup"], before, cells, planned, per_check)
            data, problem, row.seconds = sandbox.run(job, seconds=time_limit, memory_mb=memory_mb)
            reply = None
            if not problem:
                try:
                    reply = wire.decode(data)
                except wire.WireError:
                    problem = "the grader could not read what your code returned"
            alone = []
            for p in planned:
                uses, only = answers.reference_uses(assignment["setup"], before, cells, p.function)
                row.uses += [u for u in uses if u not in row.uses]
                alone.append(only)
            row.only_reference = bool(row.uses) and all(alone)
            scoring.apply(row, planned, reply, problem, {"exercise": time_limit, "check": per_check})

        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # the references are small: threads that wait for each other only cost time
        try:
            with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
                list(pool.map(work, pending))
        finally:
            torch.set_num_threads(threads)
            sandbox.close()
    elapsed = time.perf_counter() - started
    ordered = [rows[k] for k in sorted(rows)]
    reports.write_outputs(ordered, assignment, out, secret_is_default=(secret == DEFAULT_SECRET))
    n = len(paths)
    if n:
        log(f"graded {n} submission(s) in {elapsed:.1f} s after start-up: {elapsed / n:.2f} s per submission "
            f"({len(pending)} exercise processes, {jobs} at a time)")
    return ordered


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Grade submitted student copies of a chapter.")
    parser.add_argument("submissions", type=Path, help="folder of submitted .ipynb files")
    parser.add_argument("--assignment", type=Path, required=True,
                        help="assignment.json from `python -m classroom.student`, or the chapter notebook")
    parser.add_argument("--out", type=Path, required=True, help="folder for grades.csv and feedback/")
    parser.add_argument("--manual", type=Path, help="a filled-in rubric.csv with points for manual exercises")
    parser.add_argument("--secret", default=None,
                        help="derives the grader's seeds; prefer $TFUL_GRADER_SECRET (a command line is visible "
                             "to every process on the machine)")
    parser.add_argument("--time-limit", type=float, default=TIME_LIMIT,
                        help=f"seconds of wall clock per exercise, imports included (default {TIME_LIMIT:g})")
    parser.add_argument("--memory-mb", type=float, default=MEMORY_MB,
                        help=f"memory an exercise may allocate, in MB (default {MEMORY_MB})")
    parser.add_argument("--jobs", type=int, default=1, help="exercises graded at the same time (default 1)")
    parser.add_argument("--sandbox", choices=ISOLATIONS, default="auto",
                        help="auto: bubblewrap where it starts, else scrubbed children (default auto)")
    args = parser.parse_args(argv)
    if not args.submissions.is_dir():
        parser.error(f"{args.submissions} is not a folder")
    secret = args.secret or os.environ.get("TFUL_GRADER_SECRET") or DEFAULT_SECRET
    assignment = load_assignment(args.assignment)
    rows = grade(assignment, args.submissions, args.out, secret=secret, manual=args.manual,
                 time_limit=args.time_limit, memory_mb=args.memory_mb, jobs=args.jobs, isolation=args.sandbox)
    counts = {s: sum(r.status == s for r in rows) for s in STATUSES}
    print("statuses: " + ", ".join(f"{s} {n}" for s, n in counts.items() if n))
    print(f"wrote {args.out / 'grades.csv'}, totals.csv, rubric.csv, timings.csv, sandbox.log and feedback/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
