"""What runs in the sandbox for one exercise of one submission: the student's code, then their function.

:func:`run_job` runs the chapter's setup imports (from the assignment), the definitions of the
student's earlier answer cells, and this answer cell without its check calls, then calls the
student's function on each case's inputs with :meth:`utils.checks.Spec.call_all`. It returns
only what the student's code produced: outcomes (output data, or an exception's type and
message), whether the function exists, and notes on lines that raised. It never sees a
reference answer, a seed or the secret, and nothing it returns is a status: the grader judges.
"""

from __future__ import annotations

import ast

from .answers import definitions, strip_check_calls

__all__ = ["run_job"]

MAX_NOTES = 10


def _line(err: BaseException) -> str:
    from utils.checks.core import _one_line

    return f"{type(err).__name__}: {_one_line(err, 300)}"


def run_job(job: dict) -> dict:
    """Run ``job`` (label, setup, before, cells, checks with their inputs, check_seconds); return plain data."""
    from utils.checks import ALL_CHECKS

    names = frozenset(ALL_CHECKS)
    specs = {c["check"]: ALL_CHECKS[c["check"]].spec() for c in job["checks"]}  # before the student's code runs
    ns: dict = {"__name__": "__main__"}
    notes: list[str] = []
    try:
        exec(compile(job["setup"], "<chapter setup>", "exec"), ns)
    except BaseException as err:
        return {"setup_error": _line(err)}
    for source in job["before"]:
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for stmt in definitions(strip_check_calls(tree, names)):
            try:
                exec(compile(ast.Module([stmt], []), "<earlier answer>", "exec"), ns)
            except BaseException:
                pass
    for source in job["cells"]:
        try:
            tree = ast.parse(source)
        except SyntaxError as err:
            return {"syntax_error": f"line {err.lineno}: {err.msg}"}
        for stmt in strip_check_calls(tree, names).body:
            try:
                exec(compile(ast.Module([stmt], []), f"<answer {job['label']}>", "exec"), ns)
            except BaseException as err:
                if len(notes) < MAX_NOTES:
                    notes.append(f"line {stmt.lineno} of your answer raised {_line(err)}")
    results = []
    for c in job["checks"]:
        fn = ns.get(c["function"])
        if not callable(fn):
            results.append({"defined": False, "outcomes": []})
            continue
        outcomes = specs[c["check"]].call_all(fn, c["inputs"], job["check_seconds"])
        results.append({"defined": True, "outcomes": [list(o) for o in outcomes]})
    return {"checks": results, "notes": notes}
