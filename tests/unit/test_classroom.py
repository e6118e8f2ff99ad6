"""The classroom package's parts: the one check-call detector, the wire format, the wheel without it."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
import zipfile

import nbformat
import numpy as np
import pytest
import torch

from classroom import answers, grade, student, wire
from tests.helpers import ROOT
from utils import checks
from utils.checks import Unreadable

HELPER_NAMED_CHECK = """def check_row_sums(p):
    return torch.allclose(p.sum(-1), torch.ones_like(p.sum(-1)))


def my_softmax(x):
    e = torch.exp(x - x.amax(-1, keepdim=True))
    p = e / e.sum(-1, keepdim=True)
    assert check_row_sums(p)
    return p


assert checks.check_softmax(my_softmax)
"""
PROFILE_CALLS_A_CHECK = """def my_profile(query, series):
    ok = checks.check_distance_profile(lambda q, s: anomaly.distance_profile(q, s), verbose=False)
    return anomaly.distance_profile(query, series) if ok else None
"""
HELPER_IN_THE_SAME_CELL = """def _row_max(x):
    return x.amax(-1, keepdim=True)


def my_softmax(x):
    e = torch.exp(x - _row_max(x))
    return e / e.sum(-1, keepdim=True)


checks.check_softmax(my_softmax)
check_softmax(my_softmax)
"""


def _kept(source: str) -> str:
    return ast.unparse(answers.strip_check_calls(ast.parse(source)))


def test_only_a_statement_that_is_a_check_call_is_stripped():
    kept = _kept(HELPER_NAMED_CHECK)
    assert "def check_row_sums" in kept and "assert check_row_sums(p)" in kept and "def my_softmax" in kept
    assert "checks.check_softmax" not in kept
    assert "def my_profile" in _kept(PROFILE_CALLS_A_CHECK)
    kept = _kept(HELPER_IN_THE_SAME_CELL)
    assert "def _row_max" in kept and "def my_softmax" in kept and "check_softmax" not in kept
    # an assignment of a check's result, or a check of a name not in ALL_CHECKS, stays
    assert _kept("r = checks.check_softmax(f)\nchecks.check_nothing(f)\n") == \
        "r = checks.check_softmax(f)\nchecks.check_nothing(f)"


def test_check_calls_name_the_function_and_follow_all_checks():
    tree = ast.parse("assert checks.check_softmax(my_softmax)\nutils.checks.check_attention(my_attention, seed=1)\n"
                     "check_layer_norm(my_ln)\nassert checks.check_softmax(lambda x: x)\nassert check_mine(f)\n")
    assert answers.check_calls(tree) == [("check_softmax", "my_softmax"), ("check_attention", "my_attention"),
                                         ("check_layer_norm", "my_ln")]
    assert answers.check_names() == frozenset(checks.ALL_CHECKS)


def _exercise_notebook(solution: str, setup: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(setup),
                nbformat.v4.new_markdown_cell("```{exercise} E\n:label: e1\nDo it.\n```\n"
                                              "```{solution-start} e1\n```\n"),
                nbformat.v4.new_code_cell(solution), nbformat.v4.new_markdown_cell("```{solution-end}\n```")]
    return nb


@pytest.mark.parametrize("solution, setup, function", [
    (HELPER_NAMED_CHECK, "import torch\nfrom utils import checks", "my_softmax"),
    (PROFILE_CALLS_A_CHECK + "\n\nassert checks.check_distance_profile(my_profile)\n",
     "from utils import anomaly, checks", "my_profile"),
    (HELPER_IN_THE_SAME_CELL, "import torch\nfrom utils import checks\nfrom utils.checks import check_softmax",
     "my_softmax"),
], ids=["helper-named-check_", "profile-calls-a-check", "helper-in-the-same-cell"])
def test_the_copier_and_the_grader_keep_these_answers(solution, setup, function, tmp_path):
    a = student.make_assignment(_exercise_notebook(solution, setup), "chapter")
    (ex,) = a.exercises
    assert ex.kind == "auto" and [c["function"] for c in ex.checks] == [function]
    subs = tmp_path / "subs"
    subs.mkdir()
    copy = a.copy
    for cell in copy.cells:
        if cell.metadata.get("tful", {}).get("exercise") == "e1":
            cell.source = solution
    (subs / "ada.ipynb").write_text(nbformat.writes(copy))
    rows = grade.grade(a.to_json(), subs, tmp_path / "out", secret="s", time_limit=20, log=lambda *x: None)
    assert [(r.status, r.points) for r in rows] == [("ok", 2.0)], (tmp_path / "out" / "feedback" / "ada.md").read_text()


def test_reference_uses_are_read_from_the_source():
    setup = "from utils import attention, checks\nfrom utils.metrics import cluster_accuracy as acc"
    only = "def f(x):\n    '''doc'''\n    return attention.softmax(x)\n"
    assert answers.reference_uses(setup, [], [only], "f") == (["utils.attention.softmax"], True)
    mixed = "def g(y, z):\n    s = acc(y, z)\n    return s + 0.0\n"
    uses, alone = answers.reference_uses(setup, [], [mixed], "g")
    assert uses == ["utils.metrics.clustering.cluster_accuracy"] and not alone
    rebound = "def attention(x):\n    return x\n\n\ndef f(x):\n    return attention(x)\n"
    assert answers.reference_uses(setup, [], [rebound], "f") == ([], False)
    assert answers.reference_uses(setup, [], ["def f(x):\n    return checks.check_softmax(x)\n"], "f") == ([], False)


@pytest.mark.parametrize("value", [
    None, True, 3, 2.5, float("nan"), float("-inf"), 1 + 2j, "text", Unreadable("NoneType"),
    np.arange(6.0).reshape(2, 3), np.array(7.0), np.array([1 + 1j, 2]), np.array([True, False]),
    {"value": np.zeros((0, 4)), "grads": [np.ones(2, np.float32)], "tensor": True}, [["value", np.float64(1.5)]],
], ids=repr)
def test_wire_round_trips_what_a_check_reads(value):
    back = wire.decode(wire.encode(value))
    if isinstance(value, dict):
        assert back.keys() == value.keys() and back["grads"][0].dtype == np.float32
        np.testing.assert_array_equal(back["value"], value["value"])
    elif isinstance(value, np.ndarray):
        assert back.dtype == value.dtype and back.shape == value.shape
        np.testing.assert_array_equal(back, value)
    elif isinstance(value, float) and np.isnan(value):
        assert np.isnan(back)
    elif isinstance(value, list):
        assert back == [["value", 1.5]]
    else:
        assert back == value


@pytest.mark.parametrize("data", [
    b"\x80\x04K\x01.",  # a pickle
    b'{"__array__": "|O", "shape": [1], "data": "AAAAAAAAAAA="}',  # an object array
    b'{"__array__": "<f8", "shape": [3], "data": "AAAAAAAAAAA="}',  # data shorter than the shape
    b'{"__reduce__": ["os.system", ["true"]]}',
    b'{"__float__": "1.5"}',
    b"[" * 100000 + b"]" * 100000,
])
def test_wire_refuses_anything_else(data):
    with pytest.raises(wire.WireError):
        wire.decode(data)


def test_wire_cannot_send_objects():
    with pytest.raises(wire.WireError):
        wire.encode({"f": print})
    with pytest.raises(wire.WireError):
        wire.encode(torch.ones(2))  # a check's output turns tensors into arrays first


def test_a_split_check_agrees_with_the_notebook_check():
    """Cases and references in one place, calls in another, judging in a third: the notebook's verdict."""
    def mean_softmax(x):
        e = torch.exp(x - x.mean(-1, keepdim=True))
        return e / e.sum(-1, keepdim=True)

    for student_fn in (mean_softmax, lambda x: torch.softmax(x, -1)):
        spec = checks.check_softmax.spec()
        cases = spec.cases(11)
        outcomes = [wire.decode(wire.encode(list(o)))
                    for o in spec.call_all(student_fn, [args for _, args in cases], 10.0)]
        result = None
        for (case, args), outcome in zip(cases, outcomes, strict=False):
            result = spec.decide(case, tuple(outcome), spec.reference(*args), seed=11, function="f",
                                 time_limit=10.0)
            if result is not None:
                break
        notebook = checks.check_softmax(student_fn, seed=11, verbose=False)
        result = spec.passed(11) if result is None else result
        assert (result.status, result.case) == (notebook.status, notebook.case)
        assert result.message.replace("(f,", "(") == notebook.message.replace("(your_function,", "(").replace(
            "(mean_softmax,", "(")
    assert notebook.status == "ok" and result.status == "ok"


def test_every_check_has_a_spec_of_its_name():
    for name, check in checks.ALL_CHECKS.items():
        spec = check.spec()
        assert spec.name == name and spec.cases(0)


def test_the_student_wheel_holds_utils_only(tmp_path):
    """The wheel handed to students: utils (with its checks and metrics), no classroom, no grader."""
    source = tmp_path / "source"  # a copy: building in the checkout would leave build/ and *.egg-info there
    source.mkdir()
    shutil.copy(ROOT / "pyproject.toml", source)
    for package in ("utils", "classroom"):
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                           str(tmp_path), str(source)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    (path,) = tmp_path.glob("*.whl")
    names = zipfile.ZipFile(path).namelist()
    packages = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert packages == {"utils"}, packages
    assert any(n.startswith("utils/checks/") for n in names) and any(n.startswith("utils/metrics/") for n in names)
    assert not [n for n in names if "grade" in n or "student" in n or "classroom" in n or "sandbox" in n]
    top_level = [n for n in names if n.endswith("top_level.txt")]
    if top_level:
        assert zipfile.ZipFile(path).read(top_level[0]).decode().split() == ["utils"]


def test_assignment_json_is_the_same_format(tmp_path):
    folder = student.write_assignment(ROOT / "notebooks" / "01_attention_from_scratch.ipynb", tmp_path)
    info = json.loads((folder / "assignment.json").read_text())
    assert grade.load_assignment(folder / "assignment.json") == info and info["format"] == 1
