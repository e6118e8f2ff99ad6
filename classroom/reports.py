"""The grader's files: ``grades.csv``, ``totals.csv``, ``rubric.csv``, ``timings.csv`` and ``feedback/<student>.md``.

Also reads a filled-in ``rubric.csv`` back (:func:`read_rubric`). Every file but
``timings.csv`` depends only on the submissions, the assignment and the secret, so grading
the same folder twice gives identical files.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from .scoring import Row

__all__ = ["read_rubric", "write_outputs", "feedback", "GRADES_FIELDS", "VERDICTS"]

GRADES_FIELDS = ("student", "exercise", "points", "max_points", "status", "flag")


def _fmt(x) -> str:
    if x is None:
        return ""
    x = round(float(x), 2)
    return str(int(x)) if x == int(x) else f"{x:g}"


def read_rubric(path: Path, assignment: dict) -> dict:
    """``(student, exercise) -> (points, comment)`` from a filled-in ``rubric.csv``; checks labels and ranges."""
    kinds = {e["label"]: e for e in assignment["exercises"]}
    marks = {}
    with open(path, newline="") as f:
        for line in csv.DictReader(f):
            label, points = line.get("exercise", ""), (line.get("points") or "").strip()
            if not points:
                continue
            ex = kinds.get(label)
            if ex is None or ex["kind"] != "manual":
                raise ValueError(f"{path}: {label!r} is not a manual exercise of {assignment['chapter']}")
            value = float(points)
            if not 0 <= value <= ex["points"]:
                raise ValueError(f"{path}: {line['student']} {label}: {value} is outside 0..{ex['points']}")
            marks[line["student"], label] = (value, (line.get("comment") or "").strip())
    return marks


def _write_csv(path: Path, fields, rows) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(fields)
        w.writerows(rows)


def write_outputs(rows: list[Row], assignment: dict, out: Path, *, secret_is_default: bool) -> None:
    """Write every file into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    _write_csv(out / "grades.csv", GRADES_FIELDS,
               [(r.student, r.exercise, _fmt(r.points), _fmt(r.max_points), r.status, r.flag) for r in rows])
    _write_csv(out / "timings.csv", ("student", "exercise", "seconds"),
               [(r.student, r.exercise, f"{r.seconds:.3f}") for r in rows])
    _write_csv(out / "rubric.csv", ("student", "exercise", "points", "max_points", "answer", "comment"),
               [(r.student, r.exercise, _fmt(r.points), _fmt(r.max_points), r.flag or "answered", r.comment)
                for r in rows if r.status == "manual"])
    students = sorted({r.student for r in rows})
    totals = []
    for s in students:
        mine = [r for r in rows if r.student == s]
        pending = sum(1 for r in mine if r.points is None)
        totals.append((s, _fmt(sum(r.points or 0 for r in mine)), _fmt(sum(r.max_points for r in mine)),
                       pending))
    _write_csv(out / "totals.csv", ("student", "points", "max_points", "manual_pending"), totals)
    folder = out / "feedback"
    folder.mkdir(exist_ok=True)
    for s in students:
        (folder / f"{s}.md").write_text(feedback(s, [r for r in rows if r.student == s], assignment))
    if secret_is_default:
        print("note: graded with the public default secret; set TFUL_GRADER_SECRET for a real class",
              file=sys.stderr)


VERDICTS = {
    "ok": "passed every case",
    "wrong": "gave a wrong answer",
    "error": "raised an error",
    "timeout": "ran out of time",
    "missing": "the answer cell is missing",
    "not_attempted": "not attempted yet",
    "unreadable": "the file could not be read as a notebook",
    "manual": "graded by hand",
}


def feedback(student: str, rows: list[Row], assignment: dict) -> str:
    """The feedback file of ``student``, in Markdown."""
    auto = [r for r in rows if r.status != "manual"]
    lines = [f"# Feedback: {assignment['chapter']}, {student}", ""]
    got, best = sum(r.points or 0 for r in auto), sum(r.max_points for r in auto)
    lines.append(f"Auto-checked exercises: **{_fmt(got)} / {_fmt(best)}** points.")
    man = [r for r in rows if r.status == "manual"]
    if man:
        done = [r for r in man if r.points is not None]
        lines.append(f"Exercises graded by hand: {len(man)} ({_fmt(sum(r.max_points for r in man))} points; "
                     f"{len(done)} graded so far).")
    lines.append("")
    if any(r.status == "unreadable" for r in rows):
        lines += ["Your file could not be read as a Jupyter notebook (it is not valid notebook JSON). "
                  "Save the notebook from Jupyter and submit the `.ipynb` file again.", ""]
    for r in rows:
        points = "not graded yet" if r.points is None else f"{_fmt(r.points)} / {_fmt(r.max_points)}"
        lines += [f"## {r.exercise}: {r.status} ({points})", ""]
        if r.status == "missing":
            lines += ["The answer cell of this exercise was deleted. The grader runs only the cells that "
                      "came with the copy (they carry `metadata.tful.exercise`): write your answer in the "
                      "answer cell below the exercise.", ""]
        elif r.status == "not_attempted" and not r.checks:
            lines += ["The answer cell still holds the stub it came with.", ""]
        elif r.status == "manual":
            if r.comment:
                lines += [f"Comment: {r.comment}", ""]
            continue
        for c in r.checks:
            call = f"checks.{c['check']}({c['function']}, seed={c['seed']})"
            lines.append(f"- `{c['check']}({c['function']})`: {VERDICTS.get(c['status'], c['status'])}.")
            if c["status"] != "ok":
                message = c.get("message") or ""
                if message:
                    lines.append(f"  {message}")
                if c.get("case") not in (None, "") and str(c["case"]) not in message:
                    lines.append(f"  Failing case: {c['case']}")
                if c.get("hint"):
                    lines.append(f"  Hint: {c['hint']}")
                lines.append(f"  Reproduce in your notebook with the grader's seed {c['seed']}: `{call}`")
        if r.notes:
            lines.append("")
            lines.append("Notes on running your answer cell (the grader runs only the chapter's imports "
                         "and your answer cells, not the rest of the chapter):")
            lines += [f"- {n}" for n in r.notes]
        if r.uses:
            lines.append("")
            what = ", ".join(f"`{u}`" for u in r.uses)
            if r.only_reference:
                lines.append(f"**Flagged:** your function only calls the book's own reference ({what}). "
                             "The exercise asks you to write it yourself; your instructor will review it.")
            else:
                lines.append(f"**Flagged:** your function calls the book's reference code ({what}); "
                             "your instructor will review it.")
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"

