"""Scoring, in the grader's own process: the cases and reference answers, and the verdict on the outputs.

For each check of an exercise, :func:`plan` draws the cases from the grader's seed
(:meth:`utils.checks.Spec.cases`) and computes the reference answers; only the cases' inputs
go into the job that the sandbox runs. :func:`verdict` then judges the outputs that came back
(:meth:`utils.checks.Spec.decide`, case by case, as a check in a notebook does). Nothing in
the sandbox's reply is a status: a reply that is not a list of outcomes of the expected form
is an error, and ``ok`` needs an output that matches the reference on every case.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .assignment import grader_seed

__all__ = ["Row", "Planned", "plan", "verdict", "apply", "STATUSES", "IMPORT_SLACK"]

STATUSES = ("ok", "wrong", "error", "timeout", "missing", "not_attempted", "unreadable", "manual")
IMPORT_SLACK = 3.0  # seconds of an exercise's limit that its checks do not get (setup imports, the answer cell)
MAX_TEXT = 300


@dataclass
class Row:
    """One student's result on one exercise."""

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


@dataclass
class Planned:
    """One check of one exercise, as the grader prepared it: its spec, seed, cases and reference answers."""

    check: str
    function: str
    seed: int
    spec: object
    cases: list
    wants: list


def check_seconds(time_limit: float, n_checks: int) -> float:
    """The time limit of each check of an exercise with ``n_checks`` checks and ``time_limit`` in all."""
    return max(1.0, (time_limit - min(IMPORT_SLACK, time_limit / 2)) / n_checks)


def plan(assignment: dict, exercise: dict, secret: str) -> list[Planned]:
    """The cases and reference answers of each check of ``exercise``."""
    from utils.checks import ALL_CHECKS

    planned = []
    for c in exercise["checks"]:
        spec = ALL_CHECKS[c["check"]].spec()
        seed = grader_seed(assignment, exercise["label"], c["check"], secret)
        cases = spec.cases(seed)
        wants = [spec.reference(*args) for _, args in cases]
        planned.append(Planned(c["check"], c["function"], seed, spec, cases, wants))
    return planned


def job(exercise: dict, setup: str, before: list[str], cells: list[str], planned: list[Planned],
        seconds: float) -> dict:
    """What the sandbox gets: the code to run and the cases' inputs, nothing else."""
    return {"label": exercise["label"], "setup": setup, "before": list(before), "cells": list(cells),
            "check_seconds": seconds,
            "checks": [{"check": p.check, "function": p.function, "inputs": [args for _, args in p.cases]}
                       for p in planned]}


def _result(p: Planned, status: str, message: str, case: str | None = None) -> dict:
    return {"check": p.check, "function": p.function, "status": status, "message": message, "hint": "",
            "case": case, "seed": p.seed}


def _outcome(raw) -> tuple | None:
    """A well-formed outcome (see ``utils.checks.OUTCOMES``) from the reply, else ``None``."""
    if not isinstance(raw, list) or not raw or not isinstance(raw[0], str):
        return None
    kind = raw[0]
    if kind == "value" and len(raw) == 2:
        return ("value", raw[1])
    if kind == "raised" and len(raw) == 3 and all(isinstance(x, str) for x in raw[1:]):
        return ("raised", raw[1][:100], raw[2][:MAX_TEXT])
    if kind in ("not_implemented", "timeout") and len(raw) == 1:
        return (kind,)
    return None


def verdict(p: Planned, reply, check_seconds: float) -> dict:
    """Judge one check's part of the sandbox's reply: the result as a dict (status, message, hint, case, seed)."""
    if not isinstance(reply, dict) or not isinstance(reply.get("outcomes"), list):
        return _result(p, "error", "the grader could not read what your code returned")
    if reply.get("defined") is not True:
        return _result(p, "error", f"your answer does not define the function `{p.function}`")
    outcomes = reply["outcomes"]
    for i, ((case, _), want) in enumerate(zip(p.cases, p.wants, strict=True)):
        rerun = f"Seed {p.seed}; re-run with checks.{p.check}({p.function}, seed={p.seed})."
        if i >= len(outcomes):
            return _result(p, "error", f"{case}: no output of your function came back. {rerun}", case)
        outcome = _outcome(outcomes[i])
        if outcome is None:
            return _result(p, "error", f"{case}: the grader could not read your function's output. {rerun}", case)
        try:
            res = p.spec.decide(case, outcome, want, seed=p.seed, function=p.function, time_limit=check_seconds)
        except Exception as err:  # data the check cannot read (e.g. forged by the student's code)
            return _result(p, "wrong", f"{case}: the check could not read your function's output "
                                       f"({type(err).__name__}). {rerun}", case)
        if res is not None:
            return {"check": p.check, "function": p.function, "status": res.status, "message": res.message,
                    "hint": res.hint, "case": res.case, "seed": p.seed}
    res = p.spec.passed(p.seed)
    return {"check": p.check, "function": p.function, "status": "ok", "message": res.message, "hint": res.hint,
            "case": None, "seed": p.seed}


def _exercise_status(statuses: list[str]) -> str:
    bad = [s for s in statuses if s != "ok"]
    return bad[0] if bad else "ok"


def apply(row: Row, planned: list[Planned], reply, problem: str, seconds: dict) -> None:
    """Fill ``row`` from the sandbox's reply (decoded, or ``None``) and ``problem`` (``""``, timeout, crashed)."""
    limit, per_check = seconds["exercise"], seconds["check"]
    if problem or not isinstance(reply, dict):
        if problem == "timeout":
            status, message = "timeout", f"stopped after the exercise's limit of {limit:g} s"
        else:
            status, message = "error", problem or "the grader could not read what your code returned"
        row.checks = [_result(p, status, message) for p in planned]
    elif "setup_error" in reply or "syntax_error" in reply:
        if "syntax_error" in reply:
            message = f"your answer is not valid Python: {str(reply['syntax_error'])[:MAX_TEXT]}"
        else:
            message = f"the chapter's setup imports failed: {str(reply['setup_error'])[:MAX_TEXT]}"
        row.checks = [_result(p, "error", message) for p in planned]
    else:
        parts = reply.get("checks")
        parts = parts if isinstance(parts, list) and len(parts) == len(planned) else [None] * len(planned)
        row.checks = [verdict(p, part, per_check) for p, part in zip(planned, parts, strict=True)]
        notes = reply.get("notes")
        row.notes = [str(n)[:MAX_TEXT] for n in notes[:10]] if isinstance(notes, list) else []
    statuses = [c["status"] if c["status"] in STATUSES else "error" for c in row.checks]
    row.status = _exercise_status(statuses)
    row.points = row.max_points * statuses.count("ok") / len(statuses)
    if row.uses:
        row.flag = "calls_reference"
