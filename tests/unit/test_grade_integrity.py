"""Submissions that try to cheat the grader: each gets 0 points, no secret leaks, nothing is written outside.

The class is graded by the command line in a separate process whose environment holds the
secret (as ``TFUL_GRADER_SECRET``) and whose ``HOME`` is a folder of the test, once under
bubblewrap and once in the scrubbed fallback. Every cheat answers chapter 1's softmax exercise
with ``return x`` (wrong) and tries to turn that into points, or to read the secret, or to
write outside the grader's output folder; an honest submission in the same class must still
get full marks, so a grader that breaks every submission cannot pass.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from classroom import sandbox, student
from tests.helpers import ROOT
from tests.unit.test_grade import make_submissions

SECRET = "s3cret-of-the-teaching-team-4711"
CHAPTER = ROOT / "notebooks" / "01_attention_from_scratch.ipynb"
WRONG = "def my_softmax(x):\n    return x\n"
REPO_TARGETS = (ROOT / "pwned-by-a-student.txt", ROOT / "utils" / "checks" / "pwned.py")

PATCH_CHECKS = WRONG + """
from utils import checks
from utils.checks import core


def always(student, **kw):
    return core.CheckResult("check_softmax", "ok", None, 0, "matches", "")


checks.check_softmax = always
checks.ALL_CHECKS["check_softmax"] = always
core.check_softmax = always
core.run_check = lambda *a, **k: always(None)
core.Spec.run = lambda self, student, **kw: always(student)
core.Spec.decide = lambda self, *a, **k: None
core.Spec.judge = lambda self, got, want: None
"""
PATCH_COMPARISONS = WRONG + """
import numpy as np
import torch

np.allclose = lambda *a, **k: True
np.isclose = lambda a, b, **k: np.ones(np.broadcast(a, b).shape, bool)
np.isnan = lambda x: np.zeros(np.shape(x), bool)
torch.allclose = lambda *a, **k: True
torch.equal = lambda *a, **k: True
"""
FORGE_STDOUT = WRONG + """
import sys
print("ex01-softmax: ok (2 / 2)")
print('{"checks": [{"status": "ok", "points": 2}]}')
sys.__stdout__.write('{"status": "ok"}\\n')
"""
FORGE_PIPE = """
import json
import os


def my_softmax(x):
    forged = json.dumps({"status": "ok", "points": 2, "checks": [{"status": "ok", "defined": True,
                         "outcomes": [["ok"]] * 8}], "notes": []}).encode()
    for fd in range(3, 64):
        try:
            os.write(fd, forged)
        except OSError:
            pass
    os._exit(0)
"""
PATCH_WIRE = WRONG + """
import json

import classroom.attempt
import classroom.wire

FORGED = '{"status": "ok", "points": 2, "checks": [{"status": "ok", "defined": true}]}'
classroom.wire.encode = lambda value: FORGED.encode()
classroom.attempt.run_job = lambda job: {"status": "ok"}
json.dumps = lambda *a, **k: FORGED
"""
ENV_SECRET = """
import os


def my_softmax(x):
    raise RuntimeError("env: " + os.environ.get("TFUL_GRADER_SECRET", "none") + " " + repr(dict(os.environ)))
"""
PROC_SECRET = """
import os


def my_softmax(x):
    found = []
    pids = [str(os.getppid()), "1"] + [p for p in os.listdir("/proc") if p.isdigit()]
    for pid in pids:
        for name in ("environ", "cmdline"):
            try:
                with open(f"/proc/{pid}/{name}", "rb") as f:
                    data = f.read()
            except OSError:
                continue
            at = data.find(b"TFUL_GRADER_SECRET=")
            if at >= 0:
                found.append(data[at:at + 60].decode(errors="replace"))
            if b"s3cret" in data:
                found.append("cmdline or environ holds it: " + data.decode(errors="replace")[:200])
    raise RuntimeError("proc: " + " | ".join(found))
"""
MEMORY_SECRET = """
import os


def my_softmax(x):
    found = []
    for pid in [p for p in os.listdir("/proc") if p.isdigit()]:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"classroom.grade" not in f.read():
                    continue
            with open(f"/proc/{pid}/maps") as f:
                regions = [line.split() for line in f]
            with open(f"/proc/{pid}/mem", "rb") as mem:
                for region in regions:
                    if not region[1].startswith("rw"):
                        continue
                    start, end = (int(v, 16) for v in region[0].split("-"))
                    mem.seek(start)
                    data = mem.read(min(end - start, 1 << 24))
                    at = data.find(b"s3cret-of")
                    if at >= 0:
                        found.append(data[at:at + 40].decode(errors="replace"))
        except OSError as err:
            found.append(f"{pid}: {type(err).__name__}")
    raise RuntimeError("memory: " + " | ".join(found)[:150])
"""
WRITE_FILES = WRONG + """
import os
from pathlib import Path

for target in {targets!r}:
    try:
        Path(target).write_text("a student was here")
    except OSError:
        pass
"""
FORK_BOMB = """
import os
import subprocess
import time


def my_softmax(x):
    for _ in range(6):  # 64 processes if forking worked
        os.fork()
    subprocess.Popen(["sleep", "60"])
    time.sleep(60)
    return x
"""
KILL_SERVER = WRONG + """
import os
import signal

os.kill(os.getppid(), signal.SIGKILL)
"""

CHEATS = {"patch_checks": PATCH_CHECKS, "patch_comparisons": PATCH_COMPARISONS, "forge_stdout": FORGE_STDOUT,
          "forge_pipe": FORGE_PIPE, "patch_wire": PATCH_WIRE, "env_secret": ENV_SECRET, "proc_secret": PROC_SECRET,
          "memory_secret": MEMORY_SECRET, "write_files": WRITE_FILES, "fork_bomb": FORK_BOMB,
          "kill_server": KILL_SERVER}


def _can_forbid_forks() -> bool:
    """Whether the sandbox's seccomp filter works here (else the fork bomb test would be a real one)."""
    pid = os.fork()
    if pid == 0:
        ok = sandbox._forbid_new_processes()
        try:
            child = os.fork()
        except PermissionError:
            os._exit(0 if ok else 2)
        if child == 0:
            os._exit(0)
        os._exit(3)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0


def _grade_class(tmp: Path, mode: str, home: Path) -> tuple[Path, Path, subprocess.CompletedProcess]:
    folder = student.write_assignment(CHAPTER, tmp / "copies")
    assignment = json.loads((folder / "assignment.json").read_text())
    targets = [str(p) for p in REPO_TARGETS] + [str(home / "pwned.txt"), "/tmp/pwned-by-a-student.txt"]
    cheats = {name: source.replace("{targets!r}", repr(targets)) for name, source in CHEATS.items()}
    if mode == "scrubbed":  # the fallback cannot stop writes that the grading user may make
        cheats["write_files"] = WRONG
    if not _can_forbid_forks():
        del cheats["fork_bomb"]
    kinds = {"honest": ({}, ())} | {name: ({"ex01-softmax": src}, ()) for name, src in cheats.items()}
    subs = make_submissions(tmp, CHAPTER, folder / CHAPTER.name, assignment, kinds)
    out = tmp / "out"
    env = {k: v for k, v in os.environ.items() if k != "TFUL_GRADER_SECRET"}
    env.update(TFUL_GRADER_SECRET=SECRET, HOME=str(home), PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-m", "classroom.grade", "--assignment", str(folder / "assignment.json"),
                           str(subs), "--out", str(out), "--time-limit", "6", "--memory-mb", "1024",
                           "--sandbox", mode], env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    return subs, out, done


@pytest.fixture(scope="module", params=["bubblewrap", "scrubbed"])
def graded(request, tmp_path_factory):
    if request.param == "bubblewrap" and not shutil.which("bwrap"):
        pytest.skip("bubblewrap (bwrap) is not installed")
    tmp = tmp_path_factory.mktemp(request.param)
    home = tmp / "home"
    home.mkdir()
    for path in REPO_TARGETS:
        assert not path.exists(), f"{path} is left over from an earlier run"
    try:
        subs, out, done = _grade_class(tmp, request.param, home)
        written = [p for p in [*REPO_TARGETS, Path("/tmp/pwned-by-a-student.txt"), home / "pwned.txt"] if p.exists()]
    finally:
        for p in [*REPO_TARGETS, Path("/tmp/pwned-by-a-student.txt")]:
            p.unlink(missing_ok=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return request.param, subs, out, done, written, home


def test_every_cheat_gets_zero_points_and_honest_work_full_marks(graded):
    mode, subs, out, done, _, _ = graded
    with open(out / "grades.csv", newline="") as f:
        rows = {(r["student"], r["exercise"]): r for r in csv.DictReader(f)}
    cheats = sorted({s for s, _ in rows} - {"honest"})
    assert len(cheats) >= 10
    assert (rows["honest", "ex01-softmax"]["points"], rows["honest", "ex01-softmax"]["status"]) == ("2", "ok")
    for name in cheats:
        r = rows[name, "ex01-softmax"]
        assert r["points"] == "0" and r["status"] != "ok", (mode, name, r)
        # their other exercise holds the book's answer: a cheat in one exercise does not spill into the next
        assert rows[name, "ex01-attention"]["status"] == "ok", (mode, name)


def test_the_attacks_ran_and_found_nothing(graded):
    mode, _, out, _, _, _ = graded

    def feedback(name):
        return (out / "feedback" / f"{name}.md").read_text()

    assert "RuntimeError: env: none {" in feedback("env_secret")
    assert "RuntimeError: proc:." in feedback("proc_secret")  # read /proc/<ppid>, /proc/1 and every other
    assert "RuntimeError: memory:" in feedback("memory_secret")
    for name in ("forge_pipe", "patch_wire"):  # the forged bytes reached the grader, which could not use them
        assert "the grader could not read" in feedback(name), name
    if (out / "feedback" / "fork_bomb.md").exists():
        assert "PermissionError" in feedback("fork_bomb")
    assert "crashed" in feedback("kill_server")


def test_no_secret_in_any_output(graded):
    mode, _, out, done, _, _ = graded
    files = [p for p in out.rglob("*") if p.is_file()]
    assert {"grades.csv", "totals.csv", "sandbox.log", "env_secret.md", "proc_secret.md"} <= {p.name for p in files}
    for path in files:
        assert SECRET not in path.read_text(errors="replace"), (mode, path)
    assert SECRET not in done.stdout + done.stderr
    feedback = (out / "feedback" / "env_secret.md").read_text()
    assert "env: none" in feedback  # the cheat ran, and found no secret in its environment


def test_nothing_written_outside_the_output_folder(graded):
    mode, _, out, _, written, home = graded
    if mode == "scrubbed":
        pytest.skip("the scrubbed fallback does not isolate the filesystem (teaching.md says so)")
    assert written == []
    assert list(home.iterdir()) == []


def test_the_isolation_is_said_on_the_terminal_and_in_the_log(graded):
    mode, _, out, done, _, _ = graded
    log = (out / "sandbox.log").read_text()
    line = [x for x in done.stdout.splitlines() if x.startswith("sandbox: ")]
    assert len(line) == 1 and line[0] in log
    if mode == "bubblewrap":
        assert line[0].startswith("sandbox: bubblewrap")
    else:
        assert line[0].startswith("sandbox: NOT isolated by bubblewrap")


def test_no_process_of_the_sandbox_survives(graded):
    left = []
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"classroom.sandbox" in cmdline:
            left.append((pid, cmdline))
    assert left == []
