"""Grade a folder of submitted student copies: points, statuses, feedback and CSV files.

::

    python -m utils.grade --assignment _build/student/01_attention_from_scratch/assignment.json \\
        submissions/ --out grades/

``--assignment`` is an ``assignment.json`` written by :mod:`utils.student`, or the chapter
notebook itself. For each ``*.ipynb`` in the submissions folder (the student is the file stem)
and each exercise, the grader

1. finds the answer cells by ``metadata.tful.exercise`` (none: ``missing``; still the stub:
   ``not_attempted``; the file is not a notebook: ``unreadable`` for every exercise);
2. in a fresh subprocess (forked from a server that has preloaded torch, numpy and the
   chapter's imports; wall-clock and memory limits via ``resource.setrlimit``) runs the
   chapter's setup imports (from the assignment, not the submission), the definitions of
   the student's earlier answer cells, then this answer cell with every ``checks.check_…``
   statement removed;
3. calls the check named by the assignment on the function named by the assignment,
   ``ALL_CHECKS[check](namespace[function], seed=<grader seed>, verbose=False)``, and takes
   its status (``ok``, ``wrong``, ``error``, ``timeout``, ``not_attempted``).

Exercises without a check are ``manual``: their points stay empty until you fill in
``rubric.csv`` and grade again with ``--manual rubric.csv``.

Grader seeds are derived from the assignment and a secret (``--secret``, else the environment
variable ``TFUL_GRADER_SECRET``, else the module constant ``DEFAULT_SECRET``, which is public: set your own),
so students cannot know the random cases in advance, and grading is reproducible: the same
folder graded twice gives identical ``grades.csv``, ``rubric.csv`` and feedback files.

Outputs in ``--out``: ``grades.csv`` (one row per student and exercise), ``totals.csv``,
``rubric.csv`` (manual exercises to fill in), ``feedback/<student>.md`` and ``timings.csv``
(the only file with times in it).
"""

from __future__ import annotations

import argparse
import ast
import csv
import hashlib
import io
import json
import multiprocessing
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["grade", "load_assignment", "grader_seed", "main", "DEFAULT_SECRET", "STATUSES"]

DEFAULT_SECRET = "tful-public-default-secret"  # public: set TFUL_GRADER_SECRET for a real class
STATUSES = ("ok", "wrong", "error", "timeout", "missing", "not_attempted", "unreadable", "manual")
TIME_LIMIT = 15.0  # seconds of wall clock per exercise, imports included
IMPORT_SLACK = 3.0  # of which the check does not get these (setup imports, the answer cell)
MEMORY_MB = 2048  # address space an exercise may add on top of the preloaded modules
BASE_PRELOAD = ("numpy", "torch", "utils.checks")
GRADES_FIELDS = ("student", "exercise", "points", "max_points", "status", "flag")


# --------------------------------------------------------------------------- the assignment

def load_assignment(path: Path) -> dict:
    """Read an ``assignment.json``, or build it from a chapter notebook."""
    path = Path(path)
    if path.suffix == ".ipynb":
        import nbformat

        from . import student

        a = student.make_assignment(nbformat.read(path, as_version=4), path.stem)
        return a.to_json(student.source_commit(path))
    info = json.loads(path.read_text())
    if info.get("format") != 1:
        raise ValueError(f"{path}: unknown assignment format {info.get('format')!r}")
    return info


def grader_seed(assignment: dict, label: str, check: str, secret: str) -> int:
    """The seed of ``check`` for exercise ``label``: fixed by the assignment and the secret.

    The same for every student, so everyone is graded on the same cases.
    """
    key = "\0".join([secret, assignment["chapter"], assignment["copy_sha256"], label, check])
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") % 2**31


# --------------------------------------------------------------------------- reading answers

def _is_check_call(node: ast.AST) -> bool:
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call):
            f = sub.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            if name.startswith("check_") or name == "run_check":
                return True
    return False


def strip_checks(source: str) -> str:
    """``source`` without its top-level statements that call a check (``assert checks.check_x(f)``)."""
    tree = ast.parse(source)
    tree.body = [node for node in tree.body if not _is_check_call(node)]
    return ast.unparse(tree)


def _normalise(source: str) -> str:
    lines = [line.rstrip() for line in source.strip().splitlines()]
    return "\n".join(line for line in lines if line)


def _only_comments(source: str) -> bool:
    return all(not line.strip() or line.strip().startswith("#") for line in source.splitlines())


def _answers(nb) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for cell in nb.get("cells", []):
        meta = cell.get("metadata", {}).get("tful", {})
        label = meta.get("exercise") if isinstance(meta, dict) else None
        if cell.get("cell_type") == "code" and isinstance(label, str):
            src = cell.get("source", "")
            found.setdefault(label, []).append(src if isinstance(src, str) else "".join(src))
    return found


def _read_notebook(path: Path):
    import nbformat

    try:
        nb = nbformat.reads(path.read_text(encoding="utf-8"), as_version=4)
    except Exception:  # not JSON, not a notebook, not UTF-8: the file cannot be graded
        return None
    return nb if isinstance(nb.get("cells"), list) else None


# --------------------------------------------------------------------------- the subprocess

def _limit_resources(memory_mb: float, seconds: float) -> None:
    import resource

    try:
        with open("/proc/self/status") as f:
            vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
        cap = vm + int(memory_mb * 2**20)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    except (OSError, ValueError, StopIteration):
        pass  # no /proc (not Linux): the wall-clock limit still applies
    cpu = int(seconds) + 2
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))


def _definitions(tree: ast.Module) -> list[ast.stmt]:
    """Imports, functions, classes and literal constants: what later answers may reuse."""
    keep = []
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom | ast.FunctionDef | ast.AsyncFunctionDef
                      | ast.ClassDef):
            keep.append(node)
        elif isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
            try:
                ast.literal_eval(node.value)
                keep.append(node)
            except ValueError:
                pass
    return keep


def _dotted(node: ast.AST) -> list[str] | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return [node.id] + parts[::-1]
    return None


def _book_name(obj) -> str | None:
    """``utils.x.f`` if ``obj`` comes from the book's package (not its checks), else ``None``."""
    import types

    if isinstance(obj, types.ModuleType):
        return None
    module = getattr(obj, "__module__", None) or ""
    if module != "utils" and not module.startswith("utils."):
        return None
    if module.startswith("utils.checks") or module.startswith("utils.grade"):
        return None
    return f"{module}.{getattr(obj, '__qualname__', type(obj).__name__)}"


def _reference_uses(trees: list[ast.Module], function: str, ns: dict) -> tuple[list[str], bool]:
    """The book's functions that the student's ``function`` calls, and whether it does nothing else."""
    node = None
    for tree in trees:
        for stmt in tree.body:
            if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef) and stmt.name == function:
                node = stmt
    if node is None:
        return [], False
    local = {a.arg for a in ast.walk(node.args) if isinstance(a, ast.arg)}
    local |= {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}

    def resolve(expr):
        chain = _dotted(expr)
        if not chain or chain[0] in local or chain[0] not in ns:
            return None
        obj = ns[chain[0]]
        for part in chain[1:]:
            try:
                obj = getattr(obj, part)
            except Exception:
                return None
        return _book_name(obj)

    uses = []
    for call in ast.walk(node):
        if isinstance(call, ast.Call):
            name = resolve(call.func)
            if name and name not in uses:
                uses.append(name)
    body = node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # a docstring
    only = (len(body) == 1 and isinstance(body[0], ast.Return) and isinstance(body[0].value, ast.Call)
            and resolve(body[0].value.func) is not None)
    return uses, only


def _describe(value) -> str | int | None:
    if value is None or isinstance(value, int | str):
        return value
    text = repr(value)
    return text if len(text) <= 300 else text[:297] + "..."


def _grade_in_child(job: dict) -> dict:
    """Run the setup, the earlier definitions and this answer; call the checks. Runs in the child."""
    ns: dict = {"__name__": "__main__"}
    notes: list[str] = []

    def fail(status, message):
        return {"checks": [{"status": status, "message": message, "hint": "", "case": None,
                            "seed": c["seed"]} for c in job["checks"]], "notes": notes, "uses": [],
                "only_reference": False}

    try:
        exec(compile(job["setup"], "<chapter setup>", "exec"), ns)
    except BaseException as err:
        return fail("error", f"the chapter's setup imports failed: {type(err).__name__}: {err}")
    for source in job["before"]:
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for stmt in _definitions(tree):
            try:
                exec(compile(ast.Module([stmt], []), "<earlier answer>", "exec"), ns)
            except BaseException:
                pass
    trees = []
    for source in job["cells"]:
        try:
            tree = ast.parse(source)
        except SyntaxError as err:
            return fail("error", f"your answer is not valid Python: line {err.lineno}: {err.msg}")
        tree.body = [node for node in tree.body if not _is_check_call(node)]
        trees.append(tree)
        for stmt in tree.body:
            try:
                exec(compile(ast.Module([stmt], []), f"<answer {job['label']}>", "exec"), ns)
            except BaseException as err:
                notes.append(f"line {stmt.lineno} of your answer raised {type(err).__name__}: {err}")
    from utils import checks

    registry = getattr(checks, "ALL_CHECKS", None) or {
        name: getattr(checks, name) for name in dir(checks) if name.startswith("check_")}
    results, uses, only = [], [], True
    for c in job["checks"]:
        fn = ns.get(c["function"])
        if not callable(fn):
            results.append({"status": "error", "hint": "", "case": None, "seed": c["seed"],
                            "message": f"your answer does not define the function `{c['function']}`"})
            only = False
            continue
        used, alone = _reference_uses(trees, c["function"], ns)
        uses += [u for u in used if u not in uses]
        only = only and alone
        try:
            res = registry[c["check"]](fn, seed=c["seed"], verbose=False, time_limit=job["check_seconds"])
        except BaseException as err:  # a check must not raise; if it does, say so
            results.append({"status": "error", "hint": "", "case": None, "seed": c["seed"],
                            "message": f"the check raised {type(err).__name__}: {err}"})
            continue
        if isinstance(res, bool):  # a check from before CheckResult
            res = {"status": "ok" if res else "wrong", "message": "", "hint": "", "case": None}
        else:
            res = {k: getattr(res, k, None) for k in ("status", "message", "hint", "case")}
        res["seed"] = c["seed"]
        res = {k: (_describe(v) if k == "case" else v) for k, v in res.items()}
        results.append(res)
    return {"checks": results, "notes": notes, "uses": uses, "only_reference": bool(uses) and only}


def _child(conn, job: dict) -> None:
    """Entry point of an exercise's process: limits, silence, grade, send the result, exit."""
    result = None
    try:
        _limit_resources(job["memory_mb"], job["seconds"])
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        sys.stdout = sys.stderr = io.StringIO()
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(1)
        result = _grade_in_child(job)
    except BaseException as err:
        result = {"checks": [{"status": "error", "message": f"{type(err).__name__}: {err}", "hint": "",
                              "case": None, "seed": c["seed"]} for c in job["checks"]],
                  "notes": [], "uses": [], "only_reference": False}
    finally:
        try:
            conn.send(result)
            conn.close()
        finally:
            os._exit(0)  # do not wait for threads the student (or a timed-out check) left running


# --------------------------------------------------------------------------- the parent

@dataclass
class Row:
    student: str
    exercise: str
    points: float | None
    max_points: float
    status: str
    flag: str = ""
    checks: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    uses: list = field(default_factory=list)
    only_reference: bool = False
    seconds: float = 0.0
    comment: str = ""


class Runner:
    """Runs exercise jobs in subprocesses forked from a server with the chapter's imports preloaded."""

    def __init__(self, preload: list[str]):
        os.environ.setdefault("MPLBACKEND", "Agg")
        os.environ.setdefault("TFUL_NO_PROGRESS", "1")
        self.ctx = multiprocessing.get_context("forkserver")
        self.ctx.set_forkserver_preload(preload)

    def warm_up(self) -> float:
        t = time.perf_counter()
        p = self.ctx.Process(target=_noop)
        p.start()
        p.join()
        return time.perf_counter() - t

    def run(self, job: dict) -> tuple[dict | None, str, float]:
        """(result or None, "" / "timeout" / "crashed: ...", seconds)."""
        receive, send = self.ctx.Pipe(duplex=False)
        t = time.perf_counter()
        p = self.ctx.Process(target=_child, args=(send, job), daemon=True)
        p.start()
        send.close()
        result, problem = None, ""
        try:
            if receive.poll(job["seconds"]):
                result = receive.recv()
            else:
                problem = "timeout"
        except (EOFError, OSError):
            problem = "crashed"
        finally:
            if problem:
                p.kill()
            p.join()
            receive.close()
        seconds = time.perf_counter() - t
        if problem == "crashed":
            problem = f"crashed: the process died (exit code {p.exitcode}; memory limit?)"
        return result, problem, seconds


def _noop() -> None:
    pass


def _preload(setup: str) -> list[str]:
    mods = list(BASE_PRELOAD)
    for node in ast.parse(setup).body:
        if isinstance(node, ast.Import):
            mods += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            mods.append(node.module)
            mods += [f"{node.module}.{a.name}" for a in node.names]  # submodules; others are ignored
    return list(dict.fromkeys(mods))


def _fmt(x) -> str:
    if x is None:
        return ""
    x = round(float(x), 2)
    return str(int(x)) if x == int(x) else f"{x:g}"


def _exercise_status(statuses: list[str]) -> str:
    bad = [s for s in statuses if s != "ok"]
    return bad[0] if bad else "ok"


def grade(assignment: dict, submissions: Path, out: Path, *, secret: str, manual: Path | None = None,
          time_limit: float = TIME_LIMIT, memory_mb: float = MEMORY_MB, jobs: int = 1,
          preload: tuple[str, ...] = (), log=print) -> list[Row]:
    """Grade every ``*.ipynb`` in ``submissions``; write the CSV and feedback files to ``out``.

    ``preload`` adds modules for the fork server to import once (it already preloads torch,
    numpy, :mod:`utils.checks` and the chapter's imports). The fork server is started once per
    process, so a process that grades several chapters should preload all their imports with
    the first call.
    """
    submissions, out = Path(submissions), Path(out)
    exercises = assignment["exercises"]
    manual_marks = _read_rubric(manual, assignment) if manual else {}
    paths = sorted(submissions.glob("*.ipynb"))
    rows: dict[tuple[str, str], Row] = {}
    pending: list[tuple[Row, dict]] = []
    for path in paths:
        student = path.stem
        nb = _read_notebook(path)
        answers = _answers(nb) if nb is not None else {}
        before: list[str] = []
        for ex in exercises:
            label, cells = ex["label"], answers.get(ex["label"])
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
                    "placeholder" if _only_comments("\n".join(cells)) else "")
            elif cells is None:
                row.status = "missing"
            elif _normalise("\n".join(cells)) == _normalise(ex["stub"]) or _only_comments("\n".join(cells)):
                row.status = "not_attempted"
            else:
                n = len(ex["checks"])
                check_seconds = max(1.0, (time_limit - min(IMPORT_SLACK, time_limit / 2)) / n)
                pending.append((row, {
                    "label": label, "setup": assignment["setup"], "before": list(before), "cells": cells,
                    "checks": [{**c, "seed": grader_seed(assignment, label, c["check"], secret)}
                               for c in ex["checks"]],
                    "seconds": time_limit, "check_seconds": check_seconds, "memory_mb": memory_mb}))
            before += cells or []
    started = time.perf_counter()
    if pending:
        runner = Runner(_preload(assignment["setup"]) + list(preload))
        warm = runner.warm_up()
        log(f"fork server ready in {warm:.1f} s (preloaded the chapter's imports)")
        started = time.perf_counter()

        def work(item):
            row, job = item
            result, problem, row.seconds = runner.run(job)
            _apply(row, job, result, problem)

        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            list(pool.map(work, pending))
    elapsed = time.perf_counter() - started
    ordered = [rows[k] for k in sorted(rows)]
    _write_outputs(ordered, assignment, out, secret_is_default=(secret == DEFAULT_SECRET))
    n = len(paths)
    if n:
        log(f"graded {n} submission(s) in {elapsed:.1f} s after start-up: {elapsed / n:.2f} s per submission "
            f"({len(pending)} exercise processes, {jobs} at a time)")
    return ordered


def _apply(row: Row, job: dict, result: dict | None, problem: str) -> None:
    if result is None:
        status = "timeout" if problem == "timeout" else "error"
        message = (f"stopped after the exercise's limit of {job['seconds']:g} s" if status == "timeout"
                   else problem)
        row.checks = [{"check": c["check"], "function": c["function"], "status": status,
                       "message": message, "hint": "", "case": None, "seed": c["seed"]}
                      for c in job["checks"]]
    else:
        row.checks = [{"check": c["check"], "function": c["function"], **r}
                      for c, r in zip(job["checks"], result["checks"], strict=True)]
        row.notes, row.uses, row.only_reference = result["notes"], result["uses"], result["only_reference"]
    statuses = [c["status"] if c["status"] in STATUSES else "error" for c in row.checks]
    row.status = _exercise_status(statuses)
    row.points = row.max_points * statuses.count("ok") / len(statuses)
    if row.uses:
        row.flag = "calls_reference"


# --------------------------------------------------------------------------- outputs

def _read_rubric(path: Path, assignment: dict) -> dict:
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


def _write_outputs(rows: list[Row], assignment: dict, out: Path, *, secret_is_default: bool) -> None:
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
    feedback = out / "feedback"
    feedback.mkdir(exist_ok=True)
    for s in students:
        (feedback / f"{s}.md").write_text(_feedback(s, [r for r in rows if r.student == s], assignment))
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


def _feedback(student: str, rows: list[Row], assignment: dict) -> str:
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


# --------------------------------------------------------------------------- command line

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Grade submitted student copies of a chapter.")
    parser.add_argument("submissions", type=Path, help="folder of submitted .ipynb files")
    parser.add_argument("--assignment", type=Path, required=True,
                        help="assignment.json from `python -m utils.student`, or the chapter notebook")
    parser.add_argument("--out", type=Path, required=True, help="folder for grades.csv and feedback/")
    parser.add_argument("--manual", type=Path, help="a filled-in rubric.csv with points for manual exercises")
    parser.add_argument("--secret", default=os.environ.get("TFUL_GRADER_SECRET", DEFAULT_SECRET),
                        help="derives the grader's seeds (default: $TFUL_GRADER_SECRET)")
    parser.add_argument("--time-limit", type=float, default=TIME_LIMIT,
                        help=f"seconds of wall clock per exercise, imports included (default {TIME_LIMIT:g})")
    parser.add_argument("--memory-mb", type=float, default=MEMORY_MB,
                        help=f"memory an exercise may allocate, in MB (default {MEMORY_MB})")
    parser.add_argument("--jobs", type=int, default=1, help="exercises graded at the same time (default 1)")
    args = parser.parse_args(argv)
    if not args.submissions.is_dir():
        parser.error(f"{args.submissions} is not a folder")
    assignment = load_assignment(args.assignment)
    rows = grade(assignment, args.submissions, args.out, secret=args.secret, manual=args.manual,
                 time_limit=args.time_limit, memory_mb=args.memory_mb, jobs=args.jobs)
    counts = {s: sum(r.status == s for r in rows) for s in STATUSES}
    print("statuses: " + ", ".join(f"{s} {n}" for s, n in counts.items() if n))
    print(f"wrote {args.out / 'grades.csv'}, totals.csv, rubric.csv, timings.csv and feedback/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
