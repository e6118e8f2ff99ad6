"""Auto-checks for exercises: a student's function against the reference.

:func:`run_check` runs a function first on fixed *edge cases*, the inputs the
exercise is about (rows spread over 1000 for a softmax, a singleton cluster for a
silhouette...), then on random cases drawn from a seed (a fresh one when none is
given). It stops at the first case that fails and returns a :class:`CheckResult`:
its ``status`` is ``"ok"``, ``"wrong"`` (wrong value, NaN, shape or type),
``"error"`` (the function raised), ``"not_attempted"`` (it raised
``NotImplementedError``) or ``"timeout"``. The result is truthy only when it
passed, so ``assert checks.check_softmax(my_softmax)`` works in a notebook. With
``verbose`` a check prints one line, a pass or the failing case, the seed, a re-run
call and a hint. To add a check, give :func:`run_check` a case generator, edge
cases, the reference and a hint, and list the check in its module's ``__all__``.
"""

from __future__ import annotations

import copy
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from .. import transformer

__all__ = ["CheckResult", "STATUSES", "OUTCOMES", "Spec", "Unreadable", "as_data", "as_float", "defined_by",
           "run_check", "check_softmax", "check_attention",
           "check_sinusoidal_encoding", "check_layer_norm"]

STATUSES = ("ok", "wrong", "error", "not_attempted", "timeout")


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check; truthy only when ``status == "ok"``.

    ``case`` names the case that decided a failure (``"edge: ..."`` or ``"random case
    i of n"``; ``None`` on a pass), ``seed`` is the seed of the random cases, and
    ``message`` is one line without the ✅/❌ mark.
    """

    check: str
    status: str
    case: str | None
    seed: int
    message: str
    hint: str

    @property
    def passed(self) -> bool:
        return self.status == "ok"

    def __bool__(self) -> bool:
        return self.passed

    @property
    def line(self) -> str:
        """The line a verbose check prints."""
        if self.passed:
            return f"✅ {self.check}: {self.message}"
        return f"❌ {self.check}: {self.message} Hint: {self.hint}"


class _Timeout(BaseException):
    """Raised by the alarm; a BaseException so a student's ``except Exception`` cannot swallow it."""


@contextmanager
def _time_limit(seconds: float | None) -> Iterator[bool]:
    """Raise :class:`_Timeout` after ``seconds`` of wall time; yields whether a limit is active.

    Uses ``SIGALRM``, so it only works on the main thread of a Unix process (a Jupyter
    kernel, a pytest run); elsewhere it yields ``False`` and sets no limit. A timer that
    was already running is restored afterwards with the time it had left.
    """
    usable = (seconds is not None and seconds > 0 and hasattr(signal, "setitimer")
              and threading.current_thread() is threading.main_thread())
    if not usable:
        yield False
        return

    def on_alarm(signum, frame):
        raise _Timeout

    old_handler = signal.signal(signal.SIGALRM, on_alarm)
    old_delay, old_interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    start = time.monotonic()
    try:
        yield True
    finally:
        try:
            signal.setitimer(signal.ITIMER_REAL, 0)
        finally:
            signal.signal(signal.SIGALRM, signal.SIG_DFL if old_handler is None else old_handler)
            if old_delay > 0:
                left = max(old_delay - (time.monotonic() - start), 1e-3)
                signal.setitimer(signal.ITIMER_REAL, left, old_interval)


@dataclass(frozen=True)
class Unreadable:
    """An output that is not a number array, known only by its type's name (``"NoneType"``, ``"str"``)."""

    type_name: str


def _type_name(x) -> str:
    return x.type_name if isinstance(x, Unreadable) else type(x).__name__


def _as_array(x) -> np.ndarray:
    """A float (or complex) numpy array from a tensor, array, list or number; raises on anything else."""
    if isinstance(x, Unreadable):
        raise TypeError(f"cannot read a number array from {x.type_name}")
    if torch.is_tensor(x):
        x = x.detach().cpu()
        x = x.to(torch.float64) if not (x.is_complex() or x.dtype == torch.float64) else x
        return x.numpy()
    a = np.asarray(x)
    if a.dtype == object or a.dtype.kind not in "biufc":
        raise TypeError(f"cannot read a number array from {type(x).__name__}")
    return a if a.dtype.kind == "c" else a.astype(np.float64)


def as_data(x) -> np.ndarray | Unreadable:
    """A :class:`Spec`'s default ``output``: ``x`` as a float (or complex) array, else :class:`Unreadable`."""
    try:
        return np.array(_as_array(x))  # a copy that owns its memory, whatever x shares it with
    except Exception:  # anything a student's object does while being read makes it unreadable
        return Unreadable(type(x).__name__)


def as_float(x) -> float | Unreadable:
    """A :class:`Spec`'s ``output`` for a scalar answer: ``float(x)`` (a 0-d or one-element array is fine)."""
    try:
        return float(x)
    except Exception:
        return Unreadable(type(x).__name__)


def _mismatch(got, want, atol: float, rtol: float) -> str | None:
    """``None`` if ``got`` matches ``want``, else a short description of the difference.

    NaN or inf where the reference is finite is always a mismatch, as is a complex
    value with a non-negligible imaginary part.
    """
    try:
        g = _as_array(got)
    except (TypeError, ValueError, RuntimeError):
        return f"your function returned a {_type_name(got)}, not a number or an array"
    w = _as_array(want)
    if g.shape != w.shape:
        return f"your output has shape {tuple(g.shape)}, the answer has shape {tuple(w.shape)}"
    if g.dtype.kind == "c":
        if np.abs(g.imag).max(initial=0.0) > atol:
            return "your output has a non-zero imaginary part (keep only the real part)"
        g = g.real
    finite = np.isfinite(w)
    if np.isnan(g[finite]).any():
        return "your output contains NaN"
    if np.isinf(g[finite]).any():
        return "your output contains inf"
    if np.allclose(g, w, atol=atol, rtol=rtol, equal_nan=False):
        return None
    if g.size == 1:
        return f"you returned {g.item():.6g}, the answer is {w.item():.6g}"
    err = np.abs(g - w)
    err[~finite] = np.where(g[~finite] == w[~finite], 0.0, np.inf)
    at = np.unravel_index(int(np.argmax(err)), err.shape)
    return (f"largest difference {float(err[at]):.3g} at index {tuple(int(i) for i in at)} "
            f"(yours {g[at]:.6g}, answer {w[at]:.6g})")


def _one_line(text, limit: int = 160) -> str:
    try:
        text = " ".join(str(text).split())
    except Exception:  # an exception whose str() raises
        text = "(a message that cannot be printed)"
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _student_name(student: Callable) -> str:
    name = getattr(student, "__name__", "")
    return name if isinstance(name, str) and name.isidentifier() else "your_function"


OUTCOMES = ("value", "raised", "not_implemented", "timeout")
"""The kinds of :meth:`Spec.call` outcome: ``("value", data)``, ``("raised", type name, message)``,
``("not_implemented",)`` and ``("timeout",)``."""


@dataclass(frozen=True)
class Spec:
    """What a check is made of: its cases, its reference, how it reads and judges an output.

    A check runs in three steps, which the grader runs in two processes: :meth:`cases` and
    the ``reference`` answers (trusted: the grader's seed is secret), :meth:`call` of the
    student's function on each case's inputs (beside the student's code, which may do
    anything), and :meth:`judge` of the outputs it returns (trusted again).
    :meth:`run` does all three in one process, which is what a notebook's ``check_x(f)``
    does. ``output(returned)`` turns what the student's function returned into plain data
    (numpy arrays, floats, :class:`Unreadable`, dicts and lists of those), the only thing
    the judging step sees; ``compare(data, want)`` returns ``None`` when they match, else a
    description of the difference (default: :func:`as_data` and an ``allclose`` with
    ``atol``/``rtol`` on equal shapes that rejects NaN and inf where the reference is finite).
    """

    name: str
    reference: Callable
    make_case: Callable
    hint: str
    edge_cases: Sequence[tuple[str, tuple]] = ()
    n_cases: int = 5
    atol: float = 1e-5
    rtol: float = 1e-4
    compare: Callable | None = None
    output: Callable = as_data

    def cases(self, seed: int) -> list[tuple[str, tuple]]:
        """``(label, args)`` of every case in order: the edge cases, then ``n_cases`` drawn from ``seed``."""
        rng = np.random.default_rng(seed)
        found = [(f"edge: {label}", args) for label, args in self.edge_cases]
        return found + [(f"random case {i + 1} of {self.n_cases}", self.make_case(rng))
                        for i in range(self.n_cases)]

    def call(self, student: Callable, args: tuple) -> tuple:
        """Call ``student`` on a deep copy of ``args``: its outcome (see ``OUTCOMES``), never an ``Exception``."""
        try:
            return ("value", self.output(student(*copy.deepcopy(args))))
        except NotImplementedError:
            return ("not_implemented",)
        except Exception as err:  # a student's bug is reported, not raised
            return ("raised", _type_name(err), _one_line(err))

    def call_all(self, student: Callable, inputs: Sequence[tuple], time_limit: float | None = 10.0) -> list[tuple]:
        """The outcomes of ``student`` on ``inputs`` in order, up to the first that is not a value.

        This is the part of a check that runs beside the student's code; ``time_limit``
        covers all the calls, as in :meth:`run`.
        """
        outcomes: list[tuple] = []
        try:
            with _time_limit(time_limit):
                for args in inputs:
                    outcomes.append(self.call(student, args))
                    if outcomes[-1][0] != "value":
                        break
        except _Timeout:
            outcomes.append(("timeout",))
        return outcomes

    def judge(self, got, want) -> str | None:
        """``None`` when the output data ``got`` matches the reference answer ``want``, else the difference."""
        if self.compare is not None:
            return self.compare(got, want)
        return _mismatch(got, want, self.atol, self.rtol)

    def decide(self, case: str, outcome: tuple, want, *, seed: int, function: str,
               time_limit: float | None) -> CheckResult | None:
        """The result that ``outcome`` of ``case`` decides (a failure), or ``None`` when the case passed."""
        rerun = f"Seed {seed}; re-run with checks.{self.name}({function}, seed={seed})."
        kind = outcome[0]
        if kind == "value":
            problem = self.judge(outcome[1], want)
            return None if problem is None else self._result("wrong", case, seed, f"{case}: {problem}. {rerun}")
        if kind == "not_implemented":
            return self._result("not_attempted", case, seed,
                                f"not implemented yet ({case} raised NotImplementedError). {rerun}")
        if kind == "raised":
            return self._result("error", case, seed, f"{case}: your function raised {outcome[1]}: {outcome[2]}. "
                                f"{rerun}")
        if kind == "timeout":
            limit = f"{time_limit:g} s" if time_limit else "time"
            return self._result("timeout", case, seed, f"{case}: still running when the {limit} limit for the "
                                f"whole check ran out. {rerun}")
        raise ValueError(f"{self.name}: unknown outcome {kind!r}")

    def passed(self, seed: int) -> CheckResult:
        """The result of a function that matched every case."""
        return self._result("ok", None, seed, f"matches the reference on {len(self.edge_cases)} edge cases and "
                            f"{self.n_cases} random cases (seed {seed}).")

    def _result(self, status: str, case: str | None, seed: int, message: str) -> CheckResult:
        return CheckResult(check=self.name, status=status, case=case, seed=seed, message=message, hint=self.hint)

    def run(self, student: Callable, *, seed: int | None = None, verbose: bool = True,
            time_limit: float | None = 10.0) -> CheckResult:
        """Make the cases, call ``student`` on each and judge it, stopping at the first failure.

        ``seed`` draws the random cases (a fresh random seed when ``None``). ``time_limit``
        (seconds, for the whole check; ``None`` for none) is enforced with ``SIGALRM`` only
        on the main thread of a Unix process; elsewhere there is no limit. Prints
        :attr:`CheckResult.line` when ``verbose``, nothing otherwise.
        """
        if not callable(student):
            raise TypeError(f"{self.name}: pass your function itself, got {type(student).__name__}")
        seed = random.SystemRandom().randrange(2**31) if seed is None else int(seed)
        function = _student_name(student)
        rng = np.random.default_rng(seed)
        labelled = [(f"edge: {label}", lambda args=args: args) for label, args in self.edge_cases]
        labelled += [(f"random case {i + 1} of {self.n_cases}", lambda: self.make_case(rng))
                     for i in range(self.n_cases)]
        res, case = None, None
        try:
            with _time_limit(time_limit):
                for case, make in labelled:
                    args = make()
                    want = self.reference(*args)
                    res = self.decide(case, self.call(student, args), want, seed=seed, function=function,
                                      time_limit=time_limit)
                    if res is not None:
                        break
        except _Timeout:
            res = self.decide(case, ("timeout",), None, seed=seed, function=function, time_limit=time_limit)
        if res is None:
            res = self.passed(seed)
        if verbose:
            print(res.line)
        return res


def defined_by(make_spec: Callable[[], Spec]) -> Callable:
    """Decorate a check function with the :class:`Spec` it runs, as ``check.spec()``.

    The grader reads it from :data:`utils.checks.ALL_CHECKS` to run the check's steps apart.
    """
    def attach(check: Callable) -> Callable:
        check.spec = make_spec
        return check
    return attach


def run_check(name: str, student: Callable, reference: Callable, make_case: Callable, *,
              hint: str, edge_cases: Sequence[tuple[str, tuple]] = (), n_cases: int = 5,
              atol: float = 1e-5, rtol: float = 1e-4, seed: int | None = None,
              verbose: bool = True, time_limit: float | None = 10.0,
              compare: Callable | None = None, output: Callable | None = None) -> CheckResult:
    """Compare ``student(*args)`` with ``reference(*args)``: edge cases first, then random ones.

    A shortcut for ``Spec(...).run(student, ...)`` (see :class:`Spec`). ``edge_cases`` is a
    list of ``(label, args)``; ``make_case(rng)`` gets a ``numpy.random.Generator`` seeded
    with ``seed`` (a fresh random seed when ``None``) and returns the argument tuple of one
    of the ``n_cases`` random cases. The student gets a deep copy of the arguments, so
    changing them in place does no harm. ``output(returned)`` picks the value to compare
    (default: as is), which :func:`as_data` then reads; ``compare`` is the spec's ``compare``.
    """
    probe = as_data if output is None else (lambda returned: as_data(output(returned)))
    spec = Spec(name, reference, make_case, hint, tuple(edge_cases), n_cases, atol, rtol, compare, probe)
    return spec.run(student, seed=seed, verbose=verbose, time_limit=time_limit)


# ---------------------------------------------------------------------------------------------
# Part I: attention and the Transformer block


def _t(rows) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64)


def _scores_case(rng):
    shape = tuple(int(s) for s in rng.integers(1, 5, size=2)) + (int(rng.integers(2, 9)),)
    # rows offset by up to 1000: exp() overflows unless the row maximum is subtracted first
    offset = rng.uniform(-1000, 1000, size=shape[:-1] + (1,))
    return (torch.tensor(rng.normal(scale=3.0, size=shape) + offset),)


def _softmax_edges():
    near = 1e-3
    return [
        # max - mean > 709 in every row but the last, so exp overflows even in float64
        ("rows spread over 1000", (_t([[-1000.0, 0.0, 500.0, 1000.0], [0.0, 0.0, 0.0, 1000.0],
                                        [1.0, 2.0, 3.0, 4.0]]),)),
        # exp overflows (+1000) or underflows to 0/0 (-1000) unless a per-row constant is removed
        ("near-constant rows at +-1000 and 0", (_t([[1000.0, 1000.0, 1000.0 + near, 1000.0],
                                                     [-1000.0, -1000.0 + near, -1000.0, -1000.0],
                                                     [0.0, 0.0, 0.0, near]]),)),
        # one row at -1000 and one at +1000: a maximum over the whole tensor is not enough
        ("a (2, 3, 5) batch, rows offset by -1000 and +1000",
         (_t(np.arange(30.0).reshape(2, 3, 5) % 7 + np.array([-1000.0, 1000.0])[:, None, None]),)),
    ]


def _softmax_spec() -> Spec:
    return Spec("check_softmax", lambda x: torch.softmax(x, -1), _scores_case,
                edge_cases=_softmax_edges(),
                hint="subtract each row's maximum (x.amax(-1, keepdim=True)), not its mean, "
                     "before exp, then divide by the row sum (keepdim=True keeps the shapes "
                     "aligned).")


@defined_by(_softmax_spec)
def check_softmax(student: Callable, *, seed: int | None = None, verbose: bool = True,
                  time_limit: float | None = 10.0) -> CheckResult:
    """Check a softmax over the last axis, on rows spread over 1000 that overflow ``exp``.

    Edge cases: rows spread over 1000 (subtracting the row mean, or nothing, overflows),
    near-constant rows at +-1000, and a 3-D batch with rows at -1000 and +1000.
    The time limit only applies on the main thread of a Unix process.
    """
    return _softmax_spec().run(student, seed=seed, verbose=verbose, time_limit=time_limit)


def _qkv_case(rng):
    b, lq, lk, d, dv = (int(v) for v in rng.integers(1, 7, size=5))
    q, k, v = (torch.tensor(rng.normal(size=s)) for s in ((b, lq, d), (b, lk, d), (b, lk, dv)))
    mask = torch.tensor(rng.random((lq, lk)) > 0.3)
    mask[:, 0] = True  # every query sees at least one key
    return q, k, v, mask


def _attention_edges():
    rng = np.random.default_rng(101)

    def qkv(b, lq, lk, d, dv, scale=1.0):
        return tuple(torch.tensor(rng.normal(scale=scale, size=s))
                     for s in ((b, lq, d), (b, lk, d), (b, lk, dv)))

    one_key = torch.zeros(3, 4, dtype=torch.bool)
    one_key[0, 2] = one_key[1, 0] = True          # queries 0 and 1 each see a single key
    one_key[2] = True
    return [
        ("lq=3, lk=4, d=5, dv=2 and a query that may attend to one key only",
         (*qkv(2, 3, 4, 5, 2), one_key)),
        ("causal mask (True = may attend), d_k = 64", (*qkv(1, 5, 5, 64, 3), torch.ones(5, 5).tril().bool())),
        ("d_k = 16 with large scores: the 1/sqrt(d_k) scaling matters",
         (*qkv(2, 4, 6, 16, 3, scale=2.0), torch.ones(4, 6, dtype=torch.bool))),
    ]


def _attention_spec() -> Spec:
    import torch.nn.functional as F

    def ref(q, k, v, mask):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)

    return Spec("check_attention", ref, _qkv_case, edge_cases=_attention_edges(),
                output=lambda out: as_data(out[0] if isinstance(out, tuple) else out),
                hint="scores = q @ k.transpose(-2, -1) / sqrt(d_k); set scores to -inf where "
                     "mask is False (masked_fill(~mask, -inf)); softmax over the last axis; "
                     "multiply by v.")


@defined_by(_attention_spec)
def check_attention(student: Callable, *, seed: int | None = None, verbose: bool = True,
                    time_limit: float | None = 10.0) -> CheckResult:
    """Check ``student(q, k, v, mask) -> output`` against torch's SDPA (True = may attend).

    A returned ``(output, weights)`` tuple is accepted. Edge cases: a query that sees
    one key only (a mask applied by multiplication, or inverted, fails), a causal mask
    with d_k = 64, and large scores where the 1/sqrt(d_k) scaling matters.
    The time limit only applies on the main thread of a Unix process.
    """
    return _attention_spec().run(student, seed=seed, verbose=verbose, time_limit=time_limit)


def _sinusoidal_encoding_spec() -> Spec:
    def case(rng):
        return int(rng.integers(1, 64)), 2 * int(rng.integers(1, 33))

    return Spec("check_sinusoidal_encoding", transformer.sinusoidal_positional_encoding,
                case, atol=1e-4,
                edge_cases=[("one position, d_model = 2", (1, 2)),
                            ("8 positions, d_model = 6: sin/cos pairs share a frequency", (8, 6)),
                            ("200 positions, d_model = 64", (200, 64))],
                hint="even columns 2i hold sin(p / 10000**(2i/d)), odd columns 2i+1 hold "
                     "cos of the same angle (interleaved, not all sines then all cosines).")


@defined_by(_sinusoidal_encoding_spec)
def check_sinusoidal_encoding(student: Callable, *, seed: int | None = None, verbose: bool = True,
                              time_limit: float | None = 10.0) -> CheckResult:
    """Check ``student(n_positions, d_model) -> (n_positions, d_model)`` sinusoidal table.

    Edge cases: one position with d_model = 2 (sin and cos swapped fails), d_model = 6
    (columns 2i and 2i+1 share one frequency; 10000**(j/d) per column fails, as does
    putting all sines before all cosines), and 200 positions with d_model = 64.
    The time limit only applies on the main thread of a Unix process.
    """
    return _sinusoidal_encoding_spec().run(student, seed=seed, verbose=verbose, time_limit=time_limit)


def _layer_norm_edges():
    rng = np.random.default_rng(202)
    d = 6

    def params():
        return torch.tensor(rng.normal(size=d)), torch.tensor(rng.normal(size=d))

    tiny = torch.tensor(3.0 + 1e-3 * rng.normal(size=(4, d)))           # variance ~1e-6 < eps
    const = torch.tensor(np.array([[2.0] * d, [-7.5] * d]))            # variance exactly 0
    three = torch.tensor(rng.normal(0.0, 2.0, size=(2, 4, 3)))          # d = 3
    small = torch.tensor(rng.normal(0.0, 0.1, size=(3, d)))             # variance ~0.01 < eps = 0.1
    return [
        ("tokens with variance ~1e-6, eps = 1e-5", (tiny, *params(), 1e-5)),
        ("constant tokens (variance 0)", (const, *params(), 1e-5)),
        ("d = 3, where the unbiased variance is 1.5 times the biased one",
         (three, torch.tensor(rng.normal(size=3)), torch.tensor(rng.normal(size=3)), 1e-5)),
        ("eps = 0.1, larger than the variance: use the eps argument", (small, *params(), 0.1)),
    ]


def _layer_norm_spec() -> Spec:
    import torch.nn.functional as F

    def case(rng):
        shape = tuple(int(s) for s in rng.integers(1, 6, size=2)) + (int(rng.integers(2, 17)),)
        d = shape[-1]
        return (torch.tensor(rng.normal(3.0, 5.0, size=shape)), torch.tensor(rng.normal(size=d)),
                torch.tensor(rng.normal(size=d)), 1e-5)

    def ref(x, gamma, beta, eps):
        return F.layer_norm(x, (x.shape[-1],), gamma, beta, eps)

    return Spec("check_layer_norm", ref, case, edge_cases=_layer_norm_edges(),
                hint="normalise each token by its own mean and *biased* variance "
                     "(unbiased=False), divide by sqrt(var + eps) with eps inside the square "
                     "root, then scale by gamma and shift by beta.")


@defined_by(_layer_norm_spec)
def check_layer_norm(student: Callable, *, seed: int | None = None, verbose: bool = True,
                     time_limit: float | None = 10.0) -> CheckResult:
    """Check ``student(x, gamma, beta, eps) -> y``, a LayerNorm over the last axis.

    Edge cases: tokens with variance ~1e-6 (eps outside the square root fails),
    constant tokens (no eps gives NaN), d = 3 (the unbiased variance fails), and
    eps = 0.1 (a hard-coded eps fails). The time limit only applies on the main
    thread of a Unix process.
    """
    return _layer_norm_spec().run(student, seed=seed, verbose=verbose, time_limit=time_limit)
