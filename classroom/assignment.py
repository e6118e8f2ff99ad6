"""Loading an assignment, and the grader's seeds derived from it and the secret."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

__all__ = ["load_assignment", "grader_seed", "DEFAULT_SECRET", "FORMAT"]

DEFAULT_SECRET = "tful-public-default-secret"  # public: set TFUL_GRADER_SECRET for a real class
FORMAT = 1  # version of assignment.json


def load_assignment(path: Path) -> dict:
    """Read an ``assignment.json`` written by :mod:`classroom.student`, or build it from a chapter notebook."""
    path = Path(path)
    if path.suffix == ".ipynb":
        import nbformat

        from . import student

        a = student.make_assignment(nbformat.read(path, as_version=4), path.stem)
        return a.to_json(student.source_commit(path))
    info = json.loads(path.read_text())
    if info.get("format") != FORMAT:
        raise ValueError(f"{path}: unknown assignment format {info.get('format')!r} (expected {FORMAT})")
    return info


def grader_seed(assignment: dict, label: str, check: str, secret: str) -> int:
    """The seed of ``check`` for exercise ``label``: fixed by the assignment and the secret.

    The same for every student, so everyone is graded on the same cases.
    """
    key = "\0".join([secret, assignment["chapter"], assignment["copy_sha256"], label, check])
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") % 2**31
