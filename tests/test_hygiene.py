"""Repository hygiene: clean notebooks, a complete table of contents, exercises, lint."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.helpers import NOTEBOOKS, ROOT, budget, load_notebook, toc_files

NB_IDS = [p.name for p in NOTEBOOKS]


def _cells(path, kind=None):
    cells = load_notebook(path)["cells"]
    return [c for c in cells if kind is None or c["cell_type"] == kind]


def _text(cell) -> str:
    return "".join(cell["source"])


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 2


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NB_IDS)
def test_notebook_has_no_outputs(path):
    dirty = [i for i, c in enumerate(_cells(path, "code")) if c.get("outputs") or c.get("execution_count")]
    assert not dirty, f"{path.name}: code cells {dirty} carry outputs; clear them before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NB_IDS)
def test_notebook_is_in_toc(path):
    assert f"notebooks/{path.stem}" in toc_files(), f"{path.name} is missing from _toc.yml"


def test_toc_entries_exist():
    for entry in toc_files():
        candidates = [ROOT / f"{entry}{ext}" for ext in (".md", ".ipynb")]
        assert any(c.exists() for c in candidates), f"_toc.yml lists {entry}, which does not exist"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NB_IDS)
def test_chapter_structure(path):
    md = "\n".join(_text(c) for c in _cells(path, "markdown"))
    assert re.search(r"^# \d+\. ", md, re.M), f"{path.name}: first heading must be '# N. Title'"
    assert "What you will learn" in md, f"{path.name}: no 'What you will learn' section"
    assert re.search(r"^## Summary", md, re.M), f"{path.name}: no '## Summary' section"
    assert re.search(r"^## Exercises", md, re.M), f"{path.name}: no '## Exercises' section"
    exercises = re.findall(r"```\{exercise\}.*\n:label: (\S+)", md)
    solutions = re.findall(r"```\{solution-start\} (\S+)", md)
    assert len(exercises) >= 3, f"{path.name}: {len(exercises)} exercises, at least 3 needed"
    assert set(exercises) == set(solutions), f"{path.name}: exercises without solutions: " \
        f"{sorted(set(exercises) - set(solutions))}"
    assert md.count("{solution-start}") == md.count("{solution-end}"), f"{path.name}: unbalanced solutions"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NB_IDS)
def test_chapter_has_an_auto_checked_exercise(path):
    code = "\n".join(_text(c) for c in _cells(path, "code"))
    calls = re.findall(r"^.*checks\.check_\w+\(.*$", code, re.M)
    assert calls, f"{path.name}: no utils.checks auto-check is called"
    # a check returns a result instead of raising: without assert, a wrong solution runs on
    unasserted = [line.strip() for line in calls if not re.match(r"\s*assert checks\.check_\w+\(", line)]
    assert not unasserted, f"{path.name}: write `assert checks.check_...(...)`, not {unasserted}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NB_IDS)
def test_notebook_metadata(path):
    nb = load_notebook(path)
    assert nb["metadata"].get("kernelspec", {}).get("name") == "python3"
    limit = 60 if path.name[:2] in ("01", "02") else 180
    assert 0 < budget(path) <= limit, f"{path.name}: budget must be in (0, {limit}] seconds"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NB_IDS)
def test_notebook_runs_after_existing_chapters(path):
    after = load_notebook(path)["metadata"]["tful"].get("after", [])
    stems = [p.stem for p in NOTEBOOKS]
    for stem in after:
        assert stem in stems, f"{path.name}: metadata.tful.after names {stem!r}, which is not a chapter"
        assert stems.index(stem) < stems.index(path.stem), f"{path.name} must come after {stem}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NB_IDS)
def test_notebook_does_not_hack_sys_path(path):
    code = "\n".join(_text(c) for c in _cells(path, "code"))
    assert "sys.path" not in code, f"{path.name}: install utils (pip install -e .) instead of sys.path"


def test_exercise_labels_are_unique_across_the_book():
    labels = []
    for path in NOTEBOOKS:
        md = "\n".join(_text(c) for c in _cells(path, "markdown"))
        labels += re.findall(r":label: (\S+)", md)
    dupes = {lab for lab in labels if labels.count(lab) > 1}
    assert not dupes, f"duplicate labels: {sorted(dupes)}"


def test_ruff_is_clean():
    ruff = [sys.executable, "-m", "ruff", "check", "--no-cache", str(ROOT)]
    result = subprocess.run(ruff, capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_package_ships_every_subpackage():
    """A wheel of utils (what teaching.md tells instructors to hand out) holds checks and metrics too."""
    import tomllib

    from setuptools import find_packages

    find = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    shipped = set(find_packages(str(ROOT), include=find["include"]))
    on_disk = {str(p.parent.relative_to(ROOT)).replace("/", ".") for p in (ROOT / "utils").rglob("__init__.py")}
    assert on_disk <= shipped, f"not packaged: {sorted(on_disk - shipped)}"
