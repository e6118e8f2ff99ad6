import nbformat
import pytest

from tests.helpers import NOTEBOOKS
from utils.student import main, student_copy


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
    copy = nbformat.read(tmp_path / path.name, as_version=4)
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
