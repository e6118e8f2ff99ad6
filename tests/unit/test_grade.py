"""The grader end to end: a fake class for chapters 1, 2 and 5, built from the real student copies."""

from __future__ import annotations

import copy
import csv
import json
import time
from pathlib import Path

import nbformat
import pytest

from classroom import grade, student
from tests.helpers import ROOT

CHAPTERS = {1: "01_attention_from_scratch", 2: "02_transformer_encoder", 5: "05_clustering_and_metrics"}
TIME_LIMIT = 4.0  # seconds per exercise; the book's default is grade.TIME_LIMIT
MEMORY_MB = 1024
SECRET = "test-secret"

# The mistakes the checks' edge cases exist for, and a few other kinds of submission.
MEAN_SOFTMAX = """def my_softmax(x):
    e = torch.exp(x - x.mean(dim=-1, keepdim=True))
    return e / e.sum(dim=-1, keepdim=True)


assert checks.check_softmax(my_softmax)"""
RAISES = "def my_attention(q, k, v, mask):\n    return q @ k  # wrong shapes: raises\n"
LOOPS = "while True:\n    pass\n"
HOG = "def my_softmax(x):\n    waste = bytearray(3 * 2**30)\n    return x\n"
CALLS_BOOK = "def my_softmax(x):\n    return attention.softmax(x)\n"
EPS_OUTSIDE = """def my_layer_norm(x, gamma, beta, eps):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return gamma * (x - mu) / (torch.sqrt(var) + eps) + beta"""
PE_OFF_BY_ONE = """def my_positional_encoding(n_positions, d_model):
    p = torch.arange(1, n_positions + 1, dtype=torch.float64)[:, None]
    freq = torch.exp(-math.log(10000.0) * torch.arange(0, d_model, 2) / d_model)
    pe = torch.zeros(n_positions, d_model, dtype=torch.float64)
    pe[:, 0::2], pe[:, 1::2] = torch.sin(p * freq), torch.cos(p * freq)
    return pe.float()"""
SILHOUETTE_NAN = """def my_silhouette_point(x, labels, i):
    d = np.linalg.norm(x - x[i], axis=1)
    own = labels == labels[i]
    a = d[own].sum() / (own.sum() - 1)
    b = min(d[labels == c].mean() for c in np.unique(labels) if c != labels[i])
    return (b - a) / max(a, b)"""
SILHOUETTE_OFF_BY_ONE = """def my_silhouette_point(x, labels, i):
    d = np.linalg.norm(x - x[i], axis=1)
    own = labels == labels[i]
    if own.sum() == 1:
        return 0.0
    a = d[own].sum() / own.sum()
    b = min(d[labels == c].mean() for c in np.unique(labels) if c != labels[i])
    return (b - a) / max(a, b)"""
ACCURACY_CALLS_BOOK = "def brute_force_accuracy(y_true, y_pred):\n    return cluster_accuracy(y_true, y_pred)\n"

# student -> ({exercise: answer source}, exercises whose answer cell is deleted); "BOOK" = the solution
CLASSES = {
    1: {"book": ({}, ()),
        "mean_softmax": ({"ex01-softmax": MEAN_SOFTMAX}, ()),
        "raises": ({"ex01-attention": RAISES}, ()),
        "loops": ({"ex01-softmax": LOOPS}, ()),
        "hog": ({"ex01-softmax": HOG}, ()),
        "calls_book": ({"ex01-softmax": CALLS_BOOK}, ()),
        "deleted": ({}, ("ex01-attention",)),
        "untouched": (None, ())},
    2: {"book": ({}, ()),
        "eps_outside": ({"ex02-layernorm": EPS_OUTSIDE}, ()),
        "off_by_one": ({"ex02-sinusoidal": PE_OFF_BY_ONE}, ())},
    5: {"book": ({}, ()),
        "singleton_nan": ({"ex05-silhouette-point": SILHOUETTE_NAN}, ()),
        "off_by_one": ({"ex05-silhouette-point": SILHOUETTE_OFF_BY_ONE}, ()),
        "calls_book": ({"ex05-accuracy": ACCURACY_CALLS_BOOK}, ())},
}

# (student, exercise) -> (points, status, flag) for the auto-checked exercises
EXPECTED = {
    1: {("book", "ex01-attention"): ("2", "ok", ""), ("book", "ex01-softmax"): ("2", "ok", ""),
        ("calls_book", "ex01-attention"): ("2", "ok", ""),
        ("calls_book", "ex01-softmax"): ("2", "ok", "calls_reference"),
        ("deleted", "ex01-attention"): ("0", "missing", ""), ("deleted", "ex01-softmax"): ("2", "ok", ""),
        ("hog", "ex01-attention"): ("2", "ok", ""), ("hog", "ex01-softmax"): ("0", "error", ""),
        ("loops", "ex01-attention"): ("2", "ok", ""), ("loops", "ex01-softmax"): ("0", "timeout", ""),
        ("mean_softmax", "ex01-attention"): ("2", "ok", ""),
        ("mean_softmax", "ex01-softmax"): ("0", "wrong", ""),
        ("raises", "ex01-attention"): ("0", "error", ""), ("raises", "ex01-softmax"): ("2", "ok", ""),
        ("untouched", "ex01-attention"): ("0", "not_attempted", ""),
        ("untouched", "ex01-softmax"): ("0", "not_attempted", "")},
    2: {("book", "ex02-layernorm"): ("2", "ok", ""), ("book", "ex02-sinusoidal"): ("2", "ok", ""),
        ("eps_outside", "ex02-layernorm"): ("0", "wrong", ""),
        ("eps_outside", "ex02-sinusoidal"): ("2", "ok", ""),
        ("off_by_one", "ex02-layernorm"): ("2", "ok", ""),
        ("off_by_one", "ex02-sinusoidal"): ("0", "wrong", "")},
    5: {("book", "ex05-accuracy"): ("2", "ok", ""), ("book", "ex05-silhouette-point"): ("2", "ok", ""),
        ("calls_book", "ex05-accuracy"): ("2", "ok", "calls_reference"),
        ("calls_book", "ex05-silhouette-point"): ("2", "ok", ""),
        ("off_by_one", "ex05-accuracy"): ("2", "ok", ""),
        ("off_by_one", "ex05-silhouette-point"): ("0", "wrong", ""),
        ("singleton_nan", "ex05-accuracy"): ("2", "ok", ""),
        ("singleton_nan", "ex05-silhouette-point"): ("0", "wrong", "")},
}


def solutions(path: Path) -> dict[str, str]:
    """The book's solution code of each exercise, as a student would paste it in."""
    nb = nbformat.read(path, as_version=4)
    found, label = {}, None
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            events = [(m.start(), m.group(1)) for m in student.START.finditer(cell.source)]
            events += [(m.start(), None) for m in student.END.finditer(cell.source)]
            if events:
                label = max(events)[1]  # the last marker decides
        elif label and cell.cell_type == "code":
            found[label] = found.get(label, "") + cell.source + "\n"
    return found


def make_submissions(folder: Path, chapter: Path, copy_path: Path, assignment: dict, kinds: dict) -> Path:
    subs = folder / "submissions"
    subs.mkdir()
    book = solutions(chapter)
    fresh = json.loads(copy_path.read_text())
    auto = {e["label"] for e in assignment["exercises"] if e["kind"] == "auto"}
    for name, (answers, deleted) in kinds.items():
        nb = copy.deepcopy(fresh)
        if answers is not None:
            cells = []
            for cell in nb["cells"]:
                label = cell["metadata"].get("tful", {}).get("exercise")
                if label in deleted:
                    continue
                if label in answers:
                    cell["source"] = answers[label]
                elif label in auto:
                    cell["source"] = book[label]
                cells.append(cell)
            nb["cells"] = cells
        (subs / f"{name}.ipynb").write_text(json.dumps(nb, indent=1))
    if "untouched" in kinds:
        (subs / "corrupt.ipynb").write_text('{"cells": [ this is not a notebook')
    return subs


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def preload():
    setups = [student.make_assignment(nbformat.read(ROOT / "notebooks" / f"{c}.ipynb", as_version=4)).setup
              for c in CHAPTERS.values()]
    # one fork server per process: give it every chapter's imports on the first call
    return tuple(m for s in setups for m in grade._preload(s))


@pytest.fixture(scope="module")
def fake_class(tmp_path_factory, preload):
    """chapter number -> (assignment, submissions folder, output folder, seconds taken)."""
    runs = {}
    for number, name in CHAPTERS.items():
        root = tmp_path_factory.mktemp(f"class{number}")
        chapter = ROOT / "notebooks" / f"{name}.ipynb"
        folder = student.write_assignment(chapter, root / "copies")
        assignment = grade.load_assignment(folder / "assignment.json")
        subs = make_submissions(root, chapter, folder / f"{name}.ipynb", assignment, CLASSES[number])
        t = time.perf_counter()
        grade.grade(assignment, subs, root / "out", secret=SECRET, time_limit=TIME_LIMIT,
                    memory_mb=MEMORY_MB, jobs=2, preload=preload, log=lambda *a: None)
        runs[number] = (assignment, subs, root / "out", time.perf_counter() - t)
    return runs


@pytest.mark.parametrize("number", CHAPTERS)
def test_grades(fake_class, number):
    assignment, subs, out, _ = fake_class[number]
    rows = read_csv(out / "grades.csv")
    assert list(rows[0]) == list(grade.GRADES_FIELDS)
    keys = [(r["student"], r["exercise"]) for r in rows]
    assert keys == sorted(keys)
    auto = {(r["student"], r["exercise"]): (r["points"], r["status"], r["flag"]) for r in rows
            if r["status"] not in ("manual", "unreadable")}
    assert auto == EXPECTED[number]
    manual = {e["label"] for e in assignment["exercises"] if e["kind"] == "manual"}
    for r in rows:
        if r["exercise"] in manual and r["student"] != "corrupt":
            assert (r["status"], r["points"]) == ("manual", "")
    rubric = read_csv(out / "rubric.csv")
    assert {(r["student"], r["exercise"]) for r in rubric} == {
        (s, e) for s in CLASSES[number] for e in manual}


def test_unreadable_file_gets_a_row_per_exercise(fake_class):
    assignment, _, out, _ = fake_class[1]
    rows = [r for r in read_csv(out / "grades.csv") if r["student"] == "corrupt"]
    assert [r["exercise"] for r in rows] == sorted(e["label"] for e in assignment["exercises"])
    assert {(r["status"], r["points"]) for r in rows} == {("unreadable", "0")}


def test_timeout_is_bounded_and_others_still_graded(fake_class):
    _, _, out, _ = fake_class[1]
    times = {(r["student"], r["exercise"]): float(r["seconds"]) for r in read_csv(out / "timings.csv")}
    assert times["loops", "ex01-softmax"] < TIME_LIMIT + 5
    assert times["loops", "ex01-attention"] < TIME_LIMIT


def test_feedback(fake_class):
    _, _, out, _ = fake_class[1]
    text = (out / "feedback" / "mean_softmax.md").read_text()
    assert "## ex01-softmax: wrong (0 / 2)" in text and "Hint:" in text
    seed = grade.grader_seed(fake_class[1][0], "ex01-softmax", "check_softmax", SECRET)
    assert f"checks.check_softmax(my_softmax, seed={seed})" in text
    assert "only calls the book's own reference (`utils.attention.softmax`)" in \
        (out / "feedback" / "calls_book.md").read_text()
    assert "could not be read" in (out / "feedback" / "corrupt.md").read_text()
    assert "answer cell of this exercise was deleted" in (out / "feedback" / "deleted.md").read_text()
    csv_text = (out / "grades.csv").read_text()
    assert str(out) not in csv_text and "seconds" not in csv_text


def test_grader_seeds_depend_on_the_secret(fake_class):
    a = fake_class[1][0]
    assert grade.grader_seed(a, "ex01-softmax", "check_softmax", "x") != \
        grade.grader_seed(a, "ex01-softmax", "check_softmax", "y")
    assert grade.grader_seed(a, "ex01-softmax", "check_softmax", "x") == \
        grade.grader_seed(a, "ex01-softmax", "check_softmax", "x")


def test_grading_twice_is_identical_and_manual_points_merge(fake_class, tmp_path, capsys):
    assignment, subs, out, _ = fake_class[2]
    copy_json = tmp_path / "assignment.json"
    copy_json.write_text(json.dumps(assignment))
    again = tmp_path / "again"
    # the command line, reading the same assignment
    assert grade.main([str(subs), "--assignment", str(copy_json), "--out", str(again),
                       "--secret", SECRET, "--time-limit", str(TIME_LIMIT), "--memory-mb", str(MEMORY_MB)]) == 0
    for name in ("grades.csv", "totals.csv", "rubric.csv", "feedback/book.md", "feedback/eps_outside.md"):
        assert (again / name).read_bytes() == (out / name).read_bytes(), name
    # fill in the rubric, grade again with --manual
    rubric = read_csv(again / "rubric.csv")
    for r in rubric:
        r["points"], r["comment"] = ("1", "Clear derivation.") if r["student"] == "book" else ("0.5", "")
    with open(tmp_path / "filled.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rubric[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rubric)
    grade.grade(assignment, subs, tmp_path / "merged", secret=SECRET, manual=tmp_path / "filled.csv",
                time_limit=TIME_LIMIT, memory_mb=MEMORY_MB, log=lambda *a: None)
    rows = {(r["student"], r["exercise"]): r for r in read_csv(tmp_path / "merged" / "grades.csv")}
    assert rows["book", "ex02-rotation"]["points"] == "1"
    assert rows["eps_outside", "ex02-params"]["points"] == "0.5"
    totals = {r["student"]: r for r in read_csv(tmp_path / "merged" / "totals.csv")}
    assert (totals["book"]["points"], totals["book"]["max_points"], totals["book"]["manual_pending"]) == \
        ("6", "6", "0")
    assert "Clear derivation." in (tmp_path / "merged" / "feedback" / "book.md").read_text()


def test_a_rubric_for_an_auto_exercise_is_refused(fake_class, tmp_path):
    assignment, subs, _, _ = fake_class[2]
    (tmp_path / "bad.csv").write_text("student,exercise,points\nbook,ex02-layernorm,2\n")
    with pytest.raises(ValueError, match="not a manual exercise"):
        grade.grade(assignment, subs, tmp_path / "o", secret=SECRET, manual=tmp_path / "bad.csv")
