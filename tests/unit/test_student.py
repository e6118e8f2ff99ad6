import hashlib
import json

import nbformat
import pytest

from classroom.student import POINTS_AUTO, POINTS_MANUAL, main, make_assignment, student_copy, write_assignment
from tests.helpers import NOTEBOOKS


def _nb(*cells):
    nb = nbformat.v4.new_notebook()
    for kind, src in cells:
        nb.cells.append(nbformat.v4.new_markdown_cell(src) if kind == "md" else nbformat.v4.new_code_cell(src))
    return nb


def test_solution_blocks_become_answer_cells():
    nb = _nb(
        ("md", "# 1. T"),
        ("code", "x = 1"),
        ("md", "```{exercise} E\n:label: e1\nDo it.\n```\n```{solution-start} e1\n:class: dropdown\n```\n"),
        ("code", "secret = 42"),
        ("md", "Explanation of the answer.\n\n```{solution-end}\n```\n\nAfter text."),
    )
    copy = student_copy(nb)
    text = "\n".join(c.source for c in copy.cells)
    assert "secret" not in text and "Explanation" not in text and "solution-" not in text
    assert "Do it." in text and "After text." in text and "x = 1" in text
    assert [c.cell_type for c in copy.cells] == ["markdown", "code", "markdown", "code", "markdown"]
    assert copy.cells[3].source.startswith("# Your answer")


def test_unbalanced_solution_is_an_error():
    nb = _nb(("md", "```{solution-start} e1\n:class: dropdown\n```\n"), ("code", "y = 2"))
    with pytest.raises(ValueError, match="no matching"):
        student_copy(nb)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_book_chapters_have_student_copies(path, tmp_path):
    main([str(path), "--out", str(tmp_path)])
    original = nbformat.read(path, as_version=4)
    copy = nbformat.read(tmp_path / path.stem / path.name, as_version=4)
    text = "\n".join(c.source for c in copy.cells)
    assert "{solution-start}" not in text and "{solution-end}" not in text
    assert text.count("{exercise}") == "\n".join(c.source for c in original.cells).count("{exercise}")
    inside, hidden = False, []
    for cell in original.cells:
        if cell.cell_type == "markdown":
            last = max(cell.source.rfind("{solution-start}"), cell.source.rfind("{solution-end}"))
            if last >= 0:
                inside = cell.source.startswith("{solution-start}", last)
        elif inside:
            hidden.append(cell.source)
    assert hidden, f"{path.name} has no solution code"
    copy_code = [c.source for c in copy.cells if c.cell_type == "code"]
    assert not set(hidden) & set(copy_code), "solution code leaked into the student copy"


def _solutions(path):
    """label -> the book's solution code, from the chapter notebook."""
    import re
    nb = nbformat.read(path, as_version=4)
    found, label = {}, None
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            events = [(m.start(), m.group(1)) for m in re.finditer(r"\{solution-start\} (\S+)", cell.source)]
            events += [(m.start(), None) for m in re.finditer(r"\{solution-end\}", cell.source)]
            if events:
                label = max(events)[1]  # the last marker decides
        elif label:
            found[label] = found.get(label, "") + cell.source + "\n"
    return found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_answer_cells_are_tagged_and_auto_exercises_have_stubs(path):
    a = make_assignment(nbformat.read(path, as_version=4), path.stem)
    tagged = {c.metadata["tful"]["exercise"]: c for c in a.copy.cells if "exercise" in c.metadata.get("tful", {})}
    assert list(tagged) == [e.label for e in a.exercises]
    assert any(e.kind == "auto" for e in a.exercises), f"{path.name} has no auto-checked exercise"
    for e in a.exercises:
        cell = tagged[e.label]
        assert cell.source == e.stub
        if e.kind == "auto":
            for c in e.checks:
                assert f"def {c['function']}(" in cell.source
                assert f"assert checks.{c['check']}({c['function']})" in cell.source
            assert "raise NotImplementedError" in cell.source
            assert e.points == POINTS_AUTO
        else:
            assert e.points == POINTS_MANUAL and cell.source.startswith("# Your answer")


def test_stub_keeps_the_signature():
    nb = _nb(("md", "```{solution-start} e1\n```\n"),
             ("code", "def f(x, *ys, k=2, **kw):\n    return x\n\nassert checks.check_softmax(f)"),
             ("md", "```{solution-end}\n```"))
    stub = make_assignment(nb).exercises[0].stub
    assert "def f(x, *ys, k=2, **kw):\n    raise NotImplementedError" in stub


def test_unfinished_copy_fails_loudly_and_a_finished_one_passes():
    path = NOTEBOOKS[0]
    a = make_assignment(nbformat.read(path, as_version=4), path.stem)
    book = _solutions(path)
    for e in (e for e in a.exercises if e.kind == "auto"):
        ns = {}
        exec(a.setup, ns)
        with pytest.raises(AssertionError):
            exec(e.stub, ns)  # the stub as handed out: the check's assert fails
        asserts = e.stub[e.stub.index("\nassert "):]
        ns = {}
        exec(a.setup, ns)
        exec(book[e.label] + asserts, ns)  # the book's answer passes the copy's own asserts


def test_points_can_be_overridden():
    nb = _nb(("md", "```{solution-start} e1\n```\n"),
             ("code", "def f(x):\n    return x\n\nassert checks.check_softmax(f)"),
             ("md", "```{solution-end}\n```\n```{solution-start} e2\n```\n"), ("code", "x = 1"),
             ("md", "```{solution-end}\n```"))
    nb.cells[1].metadata["tful"] = {"points": 5}
    nb.cells[3].metadata["tful"] = {"points": 3}
    points = {e.label: (e.kind, e.points) for e in make_assignment(nb).exercises}
    assert points == {"e1": ("auto", 5), "e2": ("manual", 3)}


def test_copies_are_deterministic(tmp_path):
    path = NOTEBOOKS[0]
    first = write_assignment(path, tmp_path / "a")
    second = write_assignment(path, tmp_path / "b")
    for name in (path.name, "assignment.json"):
        assert (first / name).read_bytes() == (second / name).read_bytes()
    info = json.loads((first / "assignment.json").read_text())
    assert info["chapter"] == path.stem
    assert info["copy_sha256"] == hashlib.sha256((first / path.name).read_bytes()).hexdigest()
    assert info["source_commit"] is None or len(info["source_commit"]) == 40
    ex = {e["label"]: e for e in info["exercises"]}
    assert ex["ex01-softmax"]["checks"] == [{"check": "check_softmax", "function": "my_softmax"}]
    assert ex["ex01-softmax"]["kind"] == "auto" and ex["ex01-permutation"]["kind"] == "manual"
    ids = [c["id"] for c in json.loads((first / path.name).read_text())["cells"]]
    assert len(ids) == len(set(ids))
