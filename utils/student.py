"""Student copies: a chapter with its exercise solutions removed.

Solutions sit between a ``{solution-start}`` and a ``{solution-end}`` directive (see
CONTRIBUTING.md). A student copy keeps everything else, and puts an empty code cell
where each solution was, for the student's answer. Run it as::

    python -m utils.student notebooks/*.ipynb --out _build/student
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import nbformat

__all__ = ["student_copy", "main"]

START = re.compile(r"```\{solution-start\}[^\n]*\n(?::[^\n]*\n)*```[ \t]*\n?")
END = re.compile(r"```\{solution-end\}[^\n]*\n```[ \t]*\n?")
PLACEHOLDER = "# Your answer here.\n"


def student_copy(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Return a copy of ``nb`` with every solution block replaced by an empty code cell."""
    out = nbformat.v4.new_notebook(metadata=dict(nb.metadata))
    inside = False
    for cell in nb.cells:
        text = cell.source if isinstance(cell.source, str) else "".join(cell.source)
        if cell.cell_type != "markdown":
            if not inside:
                out.cells.append(_clean(cell))
            continue
        pieces, rest = [], text
        while True:
            if not inside:
                m = START.search(rest)
                if m is None:
                    pieces.append(rest)
                    break
                pieces.append(rest[: m.start()])
                rest, inside = rest[m.end():], True
            else:
                m = END.search(rest)
                if m is None:
                    break  # the whole remainder belongs to the solution
                rest, inside = rest[m.end():], False
                pieces.append("\0")  # where the answer cell goes
        for i, piece in enumerate("".join(pieces).split("\0")):
            if i > 0:
                out.cells.append(nbformat.v4.new_code_cell(PLACEHOLDER))
            if piece.strip():
                out.cells.append(nbformat.v4.new_markdown_cell(piece.strip("\n")))
    if inside:
        raise ValueError("a {solution-start} has no matching {solution-end}")
    return out


def _clean(cell: nbformat.NotebookNode) -> nbformat.NotebookNode:
    if cell.cell_type == "code":
        return nbformat.v4.new_code_cell(cell.source, metadata=dict(cell.metadata))
    return cell


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write student copies of chapter notebooks.")
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True, help="folder for the copies")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for path in args.notebooks:
        copy = student_copy(nbformat.read(path, as_version=4))
        nbformat.write(copy, args.out / path.name)
        print(f"{path} -> {args.out / path.name}")


if __name__ == "__main__":
    main()
