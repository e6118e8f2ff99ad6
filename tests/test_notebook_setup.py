"""Every chapter says how to install the book's package when it is missing (locally or in Colab)."""

from __future__ import annotations

import ast
import re
import subprocess
import sys

import pytest

from tests.helpers import NOTEBOOKS, ROOT, load_notebook

NB_IDS = [p.name for p in NOTEBOOKS]


def first_code_cell(path) -> str:
    cells = [c for c in load_notebook(path)["cells"] if c["cell_type"] == "code"]
    assert cells, f"{path.name} has no code cell"
    return "".join(cells[0]["source"])


def guard(source: str) -> str:
    """The statements of the first cell up to and including the check for ``utils``."""
    tree = ast.parse(source)
    for i, node in enumerate(tree.body):
        if isinstance(node, ast.If) and 'find_spec("utils")' in ast.unparse(node.test).replace("'", '"'):
            return "\n".join(ast.unparse(n) for n in tree.body[: i + 1])
    raise AssertionError('no `if importlib.util.find_spec("utils") is None: raise ...` in the first code cell')


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NB_IDS)
def test_first_cell_explains_a_missing_utils(path):
    source = first_code_cell(path)
    checked = guard(source)
    tree = ast.parse(source)
    first_use = min((n.lineno for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)
                     and any(m == "utils" or m.startswith("utils.")
                             for m in ([a.name for a in n.names] if isinstance(n, ast.Import) else [n.module or ""]))),
                    default=None)
    guard_end = next(n.end_lineno for n in tree.body if isinstance(n, ast.If))
    assert first_use is None or guard_end < first_use, "the check comes before the first import of utils"
    # nothing but the standard library may be imported before the check (Colab lacks some packages)
    before = [n for n in tree.body if n.end_lineno <= guard_end and isinstance(n, ast.Import | ast.ImportFrom)]
    assert all(a.name.split(".")[0] in sys.stdlib_module_names for n in before for a in n.names), checked


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NB_IDS)
def test_missing_utils_gives_the_install_instructions(path, tmp_path):
    # a bare interpreter (-I: no user site, -S: no site-packages) has no utils
    result = subprocess.run([sys.executable, "-I", "-S", "-c", guard(first_code_cell(path))],
                            cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("ModuleNotFoundError: "), result.stderr
    for needed in ("make venv", "Colab", "%pip install", "git+", "restart", "Setup"):
        assert needed in message, f"the message does not mention {needed!r}: {message}"


def test_guard_passes_where_utils_is_installed():
    source = guard(first_code_cell(NOTEBOOKS[0]))
    result = subprocess.run([sys.executable, "-c", source], cwd=ROOT / "notebooks", capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_setup_page_explains_colab_and_the_repository_switch():
    text = (ROOT / "book" / "setup.md").read_text()
    assert re.search(r"%pip install .*git\+", text), "the pip line for Colab"
    assert "repository.url" in text and "Colab" in text and "Binder" in text


def test_package_dependencies_carry_the_pins_of_requirements():
    import tomllib

    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[name.lower()] = version
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert declared, "pyproject.toml declares what the notebooks need (for pip install git+...)"
    for requirement in declared:
        name, _, version = requirement.partition("==")
        assert pins.get(name.lower()) == version, f"{requirement} differs from requirements.txt"
    assert "torch" in {d.partition("==")[0] for d in declared}
