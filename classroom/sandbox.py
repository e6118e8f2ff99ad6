"""The sandbox: a fork server that runs each exercise of each submission in a fresh process.

The grader starts one server per run, ``python -m classroom.sandbox``, which imports torch,
numpy, :mod:`utils.checks` and the chapter's imports once and then forks a child per exercise
(a fresh Python would pay 11-14 s of imports each time). The server is started

- **under bubblewrap** (``bwrap``) where it exists and starts: a read-only view of the system
  and of the Python installation and the book's packages only (no home directory, no
  repository checkout beyond ``utils/`` and ``classroom/``), a private ``/tmp``, no network,
  and its own PID namespace, so no process of the grader is visible;
- otherwise **scrubbed**, which the grader says in one line on the terminal and in
  ``sandbox.log``: the same server without bubblewrap, still with a scrubbed environment, the
  grader's process made unreadable to others (``PR_SET_DUMPABLE``), and, when grading as root,
  children without capabilities. It does not stop a submission from reading or writing files
  the grading user may read or write.

Either way the server is started with an environment that holds no secret, and it is never
sent one: a job holds the student's code and the cases' inputs, never a seed or an answer.
Each child gets its own fresh temporary directory (deleted, with everything else in the
server's temporary root, when it ends), wall-clock, CPU, memory and file-size limits, and a
seccomp filter (x86-64 and arm64) that refuses to create processes, so a fork bomb only
fails. The grader hands each child its job and reads its result through two pipes of its own
(passed to the server as file descriptors): the server never sees either.
"""

from __future__ import annotations

import ctypes
import io
import json
import os
import pickle
import platform
import resource
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from pathlib import Path

__all__ = ["Sandbox", "SandboxError", "TIME_LIMIT", "MEMORY_MB", "BASE_PRELOAD", "ISOLATIONS", "bwrap_command",
           "serve"]

TIME_LIMIT = 15.0  # seconds of wall clock per exercise, imports included
MEMORY_MB = 2048  # address space an exercise may add on top of the preloaded modules
FILE_MB = 64  # the largest file an exercise may write (in its own temporary directory)
BASE_PRELOAD = ("numpy", "torch", "utils.checks", "classroom.attempt", "classroom.wire")
ISOLATIONS = ("auto", "bubblewrap", "scrubbed")
KEPT_VARIABLES = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ")  # the only variables a child inherits
START_SECONDS = 300.0  # for the server's imports, on a busy machine
MAX_MESSAGE = 1 << 16

PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS, PR_SET_SECUREBITS = 1, 4, 38, 28
PR_CAPBSET_DROP, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 24, 22, 2


class SandboxError(RuntimeError):
    """The sandbox could not be started."""


# --------------------------------------------------------------------------- the grader's side

def _package_roots() -> list[str]:
    import classroom
    import utils

    return list(dict.fromkeys(str(Path(m.__file__).resolve().parent.parent) for m in (utils, classroom)))


def _environment(home: str) -> dict[str, str]:
    env = {k: os.environ[k] for k in KEPT_VARIABLES if k in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.update(HOME=home, TMPDIR=home, PYTHONPATH=os.pathsep.join(_package_roots()), PYTHONDONTWRITEBYTECODE="1",
               PYTHONNOUSERSITE="1", MPLBACKEND="Agg", TFUL_NO_PROGRESS="1", OMP_NUM_THREADS="1",
               MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    return env


def _python_paths() -> list[str]:
    """What the server needs to see: the Python installation, its site-packages, and the two packages."""
    import classroom
    import utils

    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    paths |= {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    paths |= {p for p in sys.path if p and "site-packages" in p}
    paths |= {str(Path(m.__file__).resolve().parent) for m in (utils, classroom)}
    paths.add(str(Path(sys.executable).resolve().parent))
    found = sorted(p for p in paths if os.path.isdir(p))
    # a path inside another one is already there
    return [p for p in found if not any(p != q and p.startswith(q.rstrip("/") + "/") for q in found)]


def bwrap_command(bwrap: str, env: dict[str, str]) -> list[str]:
    """The bubblewrap command line that starts the server (everything read-only but a private ``/tmp``)."""
    cmd = [bwrap, "--die-with-parent", "--new-session", "--unshare-all", "--clearenv",
           "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
    for top in ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc"):
        if os.path.islink(top):
            cmd += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            cmd += ["--ro-bind", top, top]
    for secret_file in ("/etc/shadow", "/etc/gshadow", "/etc/sudoers"):
        if os.path.exists(secret_file):
            cmd += ["--ro-bind", "/dev/null", secret_file]
    for path in _python_paths():
        cmd += ["--ro-bind", path, path]
    for key, value in env.items():
        cmd += ["--setenv", key, value]
    return cmd + ["--chdir", "/tmp", "--", sys.executable, "-s", "-m", "classroom.sandbox"]


def _send(sock: socket.socket, message: dict, fds: tuple[int, ...] = ()) -> None:
    socket.send_fds(sock, [json.dumps(message).encode()], list(fds))


class Sandbox:
    """The grader's handle on the fork server: :meth:`start` it, :meth:`run` jobs (from several threads), :meth:`close`.

    ``isolation`` is ``"auto"`` (bubblewrap where it starts, else the scrubbed fallback),
    ``"bubblewrap"`` (fail without it) or ``"scrubbed"``. ``log`` is a file that gets the
    isolation line and the server's own error output.
    """

    def __init__(self, preload: list[str], *, isolation: str = "auto", log: Path | None = None):
        if isolation not in ISOLATIONS:
            raise ValueError(f"isolation must be one of {ISOLATIONS}, got {isolation!r}")
        self.preload = list(dict.fromkeys([*BASE_PRELOAD, *preload]))
        self.isolation = isolation
        self.log = Path(log) if log else None
        self.mode = ""  # "bubblewrap" or "scrubbed" once started
        self.description = ""
        self._proc: subprocess.Popen | None = None
        self._sock: socket.socket | None = None
        self._root: str | None = None
        self._next = 0
        self._replies: dict[int, dict] = {}
        self._cond = threading.Condition()
        self._send_lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._generation = 0
        self._busy = 0
        self._solo = False

    # ---- starting and stopping

    def start(self) -> float:
        """Start the server; return the seconds it took. Sets ``mode`` and ``description``."""
        t = time.perf_counter()
        reason = ""
        bwrap = shutil.which("bwrap") if sys.platform.startswith("linux") else None
        if self.isolation in ("auto", "bubblewrap"):
            if bwrap is None:
                reason = "bubblewrap (bwrap) is not installed" if sys.platform.startswith("linux") else \
                    f"bubblewrap does not exist on {sys.platform}"
            else:
                try:
                    self._launch("bubblewrap", bwrap)
                except SandboxError as err:
                    reason = f"bubblewrap did not start ({err})"
            if reason and self.isolation == "bubblewrap":
                raise SandboxError(reason)
        if self.mode == "":
            self._launch("scrubbed", None)
        if self.mode == "bubblewrap":
            self.description = ("sandbox: bubblewrap (read-only filesystem, private /tmp per exercise, no network, "
                                "own PID namespace, no secret in the environment)")
        else:
            self.description = (f"sandbox: NOT isolated by bubblewrap: {reason or 'scrubbed mode was asked for'}; "
                                "falling back to scrubbed children (no secret in their environment, the grader's "
                                "process unreadable, no new processes), which can still read and write the "
                                "grading user's files")
        self._write_log(self.description)
        return time.perf_counter() - t

    def _write_log(self, line: str) -> None:
        if self.log is not None:
            with open(self.log, "a") as f:
                f.write(line + "\n")

    def _launch(self, mode: str, bwrap: str | None) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._root = tempfile.mkdtemp(prefix="tful-sandbox-") if mode == "scrubbed" else None
        env = _environment(self._root or "/tmp")
        err = open(self.log, "a") if self.log is not None else subprocess.DEVNULL  # noqa: SIM115
        try:
            if mode == "bubblewrap":
                cmd = bwrap_command(bwrap, env)
                # bwrap itself gets the scrubbed environment too: it is PID 1 of the sandbox,
                # and its /proc/1/environ is readable from inside
                proc = subprocess.Popen(cmd, stdin=theirs, stdout=subprocess.DEVNULL, stderr=err, env=env,
                                        close_fds=True, cwd="/")
            else:
                _make_undumpable()
                proc = subprocess.Popen([sys.executable, "-s", "-m", "classroom.sandbox"], stdin=theirs,
                                        stdout=subprocess.DEVNULL, stderr=err, env=env, close_fds=True,
                                        cwd=self._root, start_new_session=True)
        finally:
            theirs.close()
            if err is not subprocess.DEVNULL:
                err.close()
        ours.settimeout(START_SECONDS)
        try:
            _send(ours, {"preload": self.preload, "root": self._root or "/tmp",
                         "drop_capabilities": mode == "scrubbed" and os.geteuid() == 0})
            ready = json.loads(ours.recv(MAX_MESSAGE) or b"{}")
        except (OSError, ValueError) as e:
            ready = {"error": f"{type(e).__name__}: {e}"}
        if not ready.get("ready"):
            proc.kill()
            proc.wait()
            ours.close()
            if self._root:
                shutil.rmtree(self._root, ignore_errors=True)
            why = ready.get("error") or f"exit code {proc.returncode}" + (f"; see {self.log}" if self.log else "")
            raise SandboxError(why)
        ours.settimeout(None)
        self._proc, self._sock, self.mode = proc, ours, mode
        self._generation += 1
        threading.Thread(target=self._read_replies, args=(ours, self._generation), daemon=True).start()

    def close(self) -> None:
        """Stop the server and remove its temporary root."""
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)  # wakes the reply thread; the server reads the end
            except OSError:
                pass
            self._sock.close()
        if self._proc is not None:
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._root:
            shutil.rmtree(self._root, ignore_errors=True)
        self._proc = self._sock = self._root = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _restart(self, generation: int) -> None:
        with self._start_lock:
            if self._generation != generation:
                return  # another thread restarted it already
            self._write_log("the sandbox's server stopped (a submission may have killed it); restarting it")
            if self._proc is not None:
                self._proc.kill()
                self._proc.wait()
            if self._root:
                shutil.rmtree(self._root, ignore_errors=True)
            self._launch(self.mode, shutil.which("bwrap") if self.mode == "bubblewrap" else None)

    def _read_replies(self, sock: socket.socket, generation: int) -> None:
        while True:
            try:
                data = sock.recv(MAX_MESSAGE)
                reply = json.loads(data) if data else None
            except (OSError, ValueError):
                reply = None
            with self._cond:
                if reply is None:
                    self._replies[("dead", generation)] = {}
                    self._cond.notify_all()
                    return
                self._replies[reply["id"]] = reply
                self._cond.notify_all()

    # ---- running jobs

    def run(self, job: dict, *, seconds: float, memory_mb: float) -> tuple[bytes, str, float]:
        """Run ``job`` in a fresh child: ``(the bytes it wrote, problem, seconds)``.

        ``problem`` is ``""``, ``"timeout"`` or ``"crashed: ..."``. A job that crashed, or
        whose server stopped, is run once more alone (no other job at the same time), so
        that one submission cannot spoil another's grade by killing processes.
        """
        t = time.perf_counter()
        data, problem = self._run_once(job, seconds, memory_mb, solo=False)
        if problem.startswith("crashed"):
            data, problem = self._run_once(job, seconds, memory_mb, solo=True)
        return data, problem, time.perf_counter() - t

    def _run_once(self, job: dict, seconds: float, memory_mb: float, *, solo: bool) -> tuple[bytes, str]:
        with self._cond:
            while self._solo or (solo and self._busy):
                self._cond.wait()
            self._busy += 1
            self._solo = solo
            generation = self._generation
            self._next += 1
            ident = self._next
        try:
            return self._exchange(ident, generation, job, seconds, memory_mb)
        finally:
            with self._cond:
                self._busy -= 1
                if solo:
                    self._solo = False
                self._cond.notify_all()

    def _exchange(self, ident: int, generation: int, job: dict, seconds: float, memory_mb: float):
        job_r, job_w = os.pipe()
        res_r, res_w = os.pipe()
        try:
            with self._send_lock:
                _send(self._sock, {"id": ident, "seconds": seconds, "memory_mb": memory_mb}, (job_r, res_w))
        except OSError:
            for fd in (job_r, job_w, res_r, res_w):
                os.close(fd)
            self._restart(generation)
            return b"", "crashed: the sandbox's server had stopped"
        os.close(job_r)
        os.close(res_w)
        try:
            with open(job_w, "wb") as f:
                f.write(pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL))
        except OSError:
            pass  # the child died before it read its job: its exit status says why
        chunks, size, deadline = [], 0, time.monotonic() + seconds + 10.0
        with open(res_r, "rb", buffering=0) as f:
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([f], [], [], left)[0]:
                    break
                chunk = f.read(1 << 16)
                if not chunk:
                    break
                size += len(chunk)
                if size <= MAX_RESULT:
                    chunks.append(chunk)
        with self._cond:
            while ident not in self._replies and ("dead", generation) not in self._replies \
                    and time.monotonic() < deadline:
                self._cond.wait(timeout=max(0.0, deadline - time.monotonic()))
            reply = self._replies.pop(ident, None)
        if reply is None:
            self._restart(generation)
            return b"", "crashed: the sandbox's server stopped while the exercise ran"
        if reply.get("timeout"):
            return b"", "timeout"
        if reply.get("exit") != 0:
            how = f"signal {reply['signal']}" if reply.get("signal") else f"exit code {reply.get('exit')}"
            return b"", f"crashed: the process died ({how}; memory limit?)"
        if size > MAX_RESULT:
            return b"", f"crashed: the exercise's output was larger than {MAX_RESULT} bytes"
        return b"".join(chunks), ""


MAX_RESULT = 64 * 2**20


# --------------------------------------------------------------------------- inside: the server

def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _make_undumpable() -> None:
    """No other process of this user may read this process's memory or ``/proc/<pid>/environ``."""
    if sys.platform.startswith("linux"):
        _libc().prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)


def _drop_capabilities() -> None:
    """Root without any capability, for good (also across ``exec``), so ``PR_SET_DUMPABLE`` protects the grader."""
    libc = _libc()
    libc.prctl(PR_SET_SECUREBITS, 0x2F, 0, 0, 0)  # NOROOT, NO_SETUID_FIXUP, KEEP_CAPS_LOCKED, each locked
    for cap in range(64):
        libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                    ("inheritable", ctypes.c_uint32)]

    if libc.capset(ctypes.byref(Header(0x20080522, 0)), (Data * 2)()) != 0:
        raise OSError(ctypes.get_errno(), "capset failed")


def _seccomp_program() -> bytes | None:
    """A seccomp filter refusing ``fork``, ``vfork`` and any ``clone`` but a thread's; ``None`` off x86-64/arm64."""
    machine = platform.machine().lower()
    if machine in ("x86_64", "amd64"):
        arch, forks, clone = 0xC000003E, (57, 58), 56
    elif machine in ("aarch64", "arm64"):
        arch, forks, clone = 0xC00000B7, (), 220
    else:
        return None
    ld, jeq, jge, jset, ret = 0x20, 0x15, 0x35, 0x45, 0x06
    allow, eperm, enosys = 0x7FFF0000, 0x00050000 | 1, 0x00050000 | 38
    prog: list[tuple] = [(ld, 0, 0, 4), (jeq, 1, 0, arch), (ret, 0, 0, eperm), (ld, 0, 0, 0),
                         (jge, "eperm", 0, 0x40000000)]
    prog += [(jeq, "eperm", 0, nr) for nr in forks]
    prog += [(jeq, "enosys", 0, 435),  # clone3: its flags cannot be read; the C library falls back to clone
             (jeq, 0, "allow", clone),
             (ld, 0, 0, 16),  # clone's flags
             (jset, "allow", "eperm", 0x00010000),  # CLONE_THREAD
             ("allow", ret, allow), ("eperm", ret, eperm), ("enosys", ret, enosys)]
    labels = {p[0]: i for i, p in enumerate(prog) if isinstance(p[0], str)}
    out = []
    for i, p in enumerate(prog):
        if isinstance(p[0], str):
            out.append(struct.pack("HBBI", p[1], 0, 0, p[2]))
            continue
        code, jt, jf, k = p
        jt = labels[jt] - i - 1 if isinstance(jt, str) else jt
        jf = labels[jf] - i - 1 if isinstance(jf, str) else jf
        out.append(struct.pack("HBBI", code, jt, jf, k))
    return b"".join(out)


def _forbid_new_processes() -> bool:
    """Install :func:`_seccomp_program`; whether it is in place."""
    program = _seccomp_program()
    if program is None:
        return False
    libc = _libc()
    buf = ctypes.create_string_buffer(program)

    class Prog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    prog = Prog(len(program) // 8, ctypes.cast(buf, ctypes.c_void_p))
    return libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) == 0


def _limit_resources(memory_mb: float, seconds: float) -> None:
    try:
        with open("/proc/self/status") as f:
            vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
        cap = vm + int(memory_mb * 2**20)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    except (OSError, ValueError, StopIteration):
        pass  # no /proc (not Linux): the wall-clock limit still applies
    cpu = int(seconds) + 2
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    size = FILE_MB * 2**20
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _read_all(fd: int) -> bytes:
    with open(fd, "rb") as f:
        return f.read()


def _child(job_fd: int, result_fd: int, home: str, limits: dict, drop_capabilities: bool) -> None:
    """A fresh process for one exercise: its job in, limits on, the student's code run, outputs out."""
    status = 1
    try:
        os.setpgid(0, 0)
        _libc().prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        job = pickle.loads(_read_all(job_fd))
        os.dup2(result_fd, 3)
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.closerange(4, 65536)  # the server's socket, other pipes: only the result pipe is left
        sys.stdout = sys.stderr = io.StringIO()
        os.chdir(home)
        os.environ.update(HOME=home, TMPDIR=home)
        tempfile.tempdir = home
        if drop_capabilities:
            _drop_capabilities()
        _limit_resources(limits["memory_mb"], limits["seconds"])
        _forbid_new_processes()
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(1)
        from . import attempt, wire

        try:
            data = wire.encode(attempt.run_job(job))
        except wire.WireError as err:
            data = wire.encode({"wire_error": str(err)})
        with open(3, "wb") as out:
            out.write(data)
        status = 0
    finally:
        os._exit(status)  # do not wait for threads the student (or a timed-out check) left running


def _clear(root: str, keep: set[str]) -> None:
    """Delete everything in ``root`` but the directories of running jobs."""
    for name in os.listdir(root):
        if name not in keep:
            path = os.path.join(root, name)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                try:
                    os.unlink(path)
                except OSError:
                    pass


def serve(control_fd: int = 0) -> None:
    """The server's loop: read a job request (with its two pipes), fork its child, report how it ended."""
    sock = socket.socket(fileno=control_fd)
    config = json.loads(sock.recv(MAX_MESSAGE))
    import importlib

    for name in config["preload"]:
        try:
            importlib.import_module(name)
        except ImportError:
            pass  # a chapter import the grader cannot preload is imported by the child instead
    root = config["root"]
    _make_undumpable()
    _send(sock, {"ready": True, "pid": os.getpid()})
    running: dict[int, dict] = {}  # pid -> {"id", "deadline", "home", "timeout", "pidfd"}
    while True:
        now = time.monotonic()
        # a child's pidfd becomes readable when it exits; without pidfds, look every 10 ms
        wait = 0.2 if all(r["pidfd"] is not None for r in running.values()) else 0.01
        timeout = min([wait] + [max(0.0, r["deadline"] - now) for r in running.values()])
        watched = [sock] + [r["pidfd"] for r in running.values() if r["pidfd"] is not None]
        ready = select.select(watched, [], [], timeout)[0]
        if sock in ready:
            try:
                message, fds, _, _ = socket.recv_fds(sock, MAX_MESSAGE, 2)
            except OSError:
                message, fds = b"", []
            if not message:  # the grader closed the socket: stop
                for pid in running:
                    _kill(pid)
                return
            request = json.loads(message)
            home = os.path.join(root, f"job-{request['id']}")
            os.mkdir(home, 0o700)
            pid = os.fork()
            if pid == 0:
                sock.close()
                _child(fds[0], fds[1], home, request, config.get("drop_capabilities", False))
            for fd in fds:
                os.close(fd)
            running[pid] = {"id": request["id"], "deadline": time.monotonic() + request["seconds"],
                            "home": home, "timeout": False, "pidfd": _pidfd(pid)}
        now = time.monotonic()
        for pid, r in running.items():
            if not r["timeout"] and now >= r["deadline"]:
                r["timeout"] = True
                _kill(pid)
        while running:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            r = running.pop(pid, None)
            if r is None:
                continue
            if r["pidfd"] is not None:
                os.close(r["pidfd"])
            _kill(pid)  # anything left in its process group
            _clear(root, {os.path.basename(x["home"]) for x in running.values()})
            _send(sock, {"id": r["id"], "timeout": r["timeout"],
                         "exit": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
                         "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None})


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _kill(pid: int) -> None:
    for target in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
        try:
            target()
        except (ProcessLookupError, PermissionError):
            pass


if __name__ == "__main__":
    serve()
