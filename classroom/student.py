"""Student copies: a chapter with its exercise solutions removed, plus its ``assignment.json``.

Solutions sit between a ``{solution-start} <label>`` and a ``{solution-end}`` directive (see
CONTRIBUTING.md). A student copy keeps everything else and puts one **answer cell** where each
solution was. Every answer cell carries ``metadata.tful.exercise = "<label>"``, which is how
the grader (:mod:`classroom.grade`) finds it again in a submission.

* An **auto-checked** exercise is one whose solution has a statement that is a check call,
  ``assert checks.check_x(my_f)`` (see :func:`classroom.answers.check_call`).
  Its answer cell is pre-filled with a stub of ``my_f`` (same name and signature as the
  solution's ``def``, body ``raise NotImplementedError``) followed by
  ``assert checks.check_x(my_f)``: an unfinished copy fails loudly, a finished one passes.
* Any other exercise is **manual** (graded by hand); its answer cell holds a placeholder.

Points: 2 for an auto-checked exercise, 1 for a manual one, unless the solution's first code
cell has ``metadata.tful.points``.

Copies are deterministic: the same chapter gives a byte-identical copy (cell ids are derived
from the source). Run it as::

    python -m classroom.student notebooks/01_attention_from_scratch.ipynb --out _build/student

which writes ``_build/student/01_attention_from_scratch/01_attention_from_scratch.ipynb`` and,
next to it, ``assignment.json`` (chapter, source commit, SHA-256 of the copy, and per exercise
its label, points, kind, and for auto-checked ones the check and function names).
"""

from __future__ import annotations

import argparse
import ast
import copy as _copy
import hashlib
import json
import re
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat

from .answers import check_calls
from .assignment import FORMAT

__all__ = ["Exercise", "Assignment", "student_copy", "make_assignment", "write_assignment",
           "setup_imports", "source_commit", "main", "POINTS_AUTO", "POINTS_MANUAL"]

START = re.compile(r"```\{solution-start\}[ \t]*(\S*)[^\n]*\n(?::[^\n]*\n)*```[ \t]*\n?")
END = re.compile(r"```\{solution-end\}[^\n]*\n```[ \t]*\n?")
PLACEHOLDER = "# Your answer here."
STUB_HEADER = "# Your answer here: replace each `raise NotImplementedError` with your code.\n"
POINTS_AUTO = 2
POINTS_MANUAL = 1


@dataclass(frozen=True)
class Exercise:
    """One exercise of a chapter, as the grader sees it."""

    label: str
    points: float
    kind: str  # "auto" or "manual"
    checks: tuple[dict, ...] = ()  # ({"check": "check_softmax", "function": "my_softmax"}, ...)
    stub: str = PLACEHOLDER  # the answer cell's source in a fresh copy


@dataclass
class Assignment:
    """A chapter's student copy and what the grader needs to know about it."""

    chapter: str
    copy: nbformat.NotebookNode
    exercises: list[Exercise] = field(default_factory=list)
    setup: str = ""  # the import statements of the chapter's setup cell

    def copy_bytes(self) -> bytes:
        return (nbformat.writes(self.copy) + "\n").encode()

    def to_json(self, source_commit: str | None = None) -> dict:
        return {
            "format": FORMAT,
            "chapter": self.chapter,
            "notebook": f"{self.chapter}.ipynb",
            "source_commit": source_commit,
            "copy_sha256": hashlib.sha256(self.copy_bytes()).hexdigest(),
            "max_points": sum(e.points for e in self.exercises),
            "setup": self.setup,
            "exercises": [{**asdict(e), "checks": list(e.checks)} for e in self.exercises],
        }


def _source(cell) -> str:
    return cell.source if isinstance(cell.source, str) else "".join(cell.source)


def _parse(code: str) -> ast.Module | None:
    """Parse a code cell, ignoring IPython magics and shell lines; ``None`` if it is not Python."""
    lines = [("pass" if line.lstrip().startswith(("%", "!")) else line) for line in code.splitlines()]
    try:
        return ast.parse("\n".join(lines))
    except SyntaxError:
        return None


def setup_imports(nb: nbformat.NotebookNode) -> str:
    """The import statements of the chapter's setup cell (its first code cell)."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            tree = _parse(_source(cell))
            if tree is None:
                return ""
            return "\n".join(ast.unparse(node) for node in tree.body
                             if isinstance(node, ast.Import | ast.ImportFrom)) + "\n"
    return ""


def _stub(code_cells: list[str], calls: list[tuple[str, str]]) -> str:
    defs = {}
    for code in code_cells:
        tree = _parse(code)
        for node in (tree.body if tree else []):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                defs[node.name] = node
    parts, seen = [STUB_HEADER], set()
    for _, function in calls:
        if function in seen:
            continue
        seen.add(function)
        node = defs.get(function)
        args = ast.unparse(node.args) if node is not None else "*args, **kwargs"
        parts.append(f"def {function}({args}):\n    raise NotImplementedError\n\n\n")
    parts += [f"assert checks.{check}({function})\n" for check, function in calls]
    return "".join(parts).rstrip("\n")


def _exercise(label: str, code_cells: list, calls_cells: list[str]) -> Exercise:
    points = None
    if code_cells:
        points = code_cells[0].metadata.get("tful", {}).get("points")
    calls = []
    for code in calls_cells:
        tree = _parse(code)
        calls += [c for c in (check_calls(tree) if tree else []) if c not in calls]
    if calls:
        return Exercise(label, POINTS_AUTO if points is None else points, "auto",
                        tuple({"check": c, "function": f} for c, f in calls), _stub(calls_cells, calls))
    return Exercise(label, POINTS_MANUAL if points is None else points, "manual")


def _answer_cell(ex: Exercise) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(ex.stub, metadata={"tful": {"exercise": ex.label}})
    cell.id = _cell_id("answer", ex.label)
    return cell


def _cell_id(*parts) -> str:
    return hashlib.sha256("\0".join(map(str, parts)).encode()).hexdigest()[:16]


def make_assignment(nb: nbformat.NotebookNode, chapter: str = "chapter") -> Assignment:
    """Return the student copy of ``nb`` and its exercises.

    Every solution block becomes one answer cell tagged ``metadata.tful.exercise``; the
    exercise statements and the rest of the chapter stay. Cell ids are derived from the
    source, so the copy is deterministic.
    """
    out = nbformat.v4.new_notebook(metadata=_copy.deepcopy(dict(nb.metadata)))
    exercises: list[Exercise] = []
    inside, label, code_cells = False, "", []
    for cell in nb.cells:
        text = _source(cell)
        if cell.cell_type != "markdown":
            if inside:
                if cell.cell_type == "code":
                    code_cells.append(cell)
            else:
                out.cells.append(_clean(cell))
            continue
        pieces, rest, changed = [], text, False
        while True:
            if not inside:
                m = START.search(rest)
                if m is None:
                    pieces.append(rest)
                    break
                pieces.append(rest[: m.start()])
                rest, inside, changed = rest[m.end():], True, True
                label, code_cells = m.group(1) or f"exercise-{len(exercises) + 1}", []
            else:
                m = END.search(rest)
                if m is None:
                    break  # the whole remainder belongs to the solution
                rest, inside = rest[m.end():], False
                ex = _exercise(label, code_cells, [_source(c) for c in code_cells])
                exercises.append(ex)
                pieces.append(ex)  # where the answer cell goes
        if not changed and len(pieces) == 1:
            out.cells.append(_clean(cell))
            continue
        text_piece = ""
        for piece in pieces + [None]:
            if isinstance(piece, str):
                text_piece += piece
                continue
            if text_piece.strip():
                md = nbformat.v4.new_markdown_cell(text_piece.strip("\n"))
                md.id = _cell_id("markdown", cell.get("id", ""), len(out.cells), md.source)
                out.cells.append(md)
            text_piece = ""
            if piece is not None:
                out.cells.append(_answer_cell(piece))
    if inside:
        raise ValueError("a {solution-start} has no matching {solution-end}")
    labels = [e.label for e in exercises]
    if len(set(labels)) != len(labels):
        raise ValueError(f"duplicate exercise labels in {chapter}: {labels}")
    _unique_ids(out)
    return Assignment(chapter, out, exercises, setup_imports(nb))


def student_copy(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Return a copy of ``nb`` with every solution block replaced by an answer cell."""
    return make_assignment(nb).copy


def _clean(cell: nbformat.NotebookNode) -> nbformat.NotebookNode:
    cell = _copy.deepcopy(cell)
    if cell.cell_type == "code":
        cell.outputs, cell.execution_count = [], None
    if not cell.get("id"):
        cell.id = _cell_id(cell.cell_type, _source(cell))
    return cell


def _unique_ids(nb) -> None:
    seen = set()
    for i, cell in enumerate(nb.cells):
        if cell.id in seen:
            cell.id = _cell_id("dup", i, cell.id)
        seen.add(cell.id)


def source_commit(path: Path) -> str | None:
    """``git rev-parse HEAD`` of the repository holding ``path``, or ``None``."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(path).resolve().parent,
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def write_assignment(path: Path, out: Path) -> Path:
    """Write ``out/<chapter>/<chapter>.ipynb`` and ``out/<chapter>/assignment.json``; return the folder."""
    path = Path(path)
    assignment = make_assignment(nbformat.read(path, as_version=4), path.stem)
    folder = Path(out) / path.stem
    folder.mkdir(parents=True, exist_ok=True)
    (folder / path.name).write_bytes(assignment.copy_bytes())
    info = assignment.to_json(source_commit(path))
    (folder / "assignment.json").write_text(json.dumps(info, indent=1, ensure_ascii=False) + "\n")
    return folder


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write student copies of chapter notebooks.")
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True,
                        help="folder for the copies: one sub-folder per chapter")
    args = parser.parse_args(argv)
    for path in args.notebooks:
        folder = write_assignment(path, args.out)
        print(f"{path} -> {folder / path.name} (+ assignment.json)")


if __name__ == "__main__":
    main()
