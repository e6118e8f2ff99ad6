"""Auto-checks for exercises: a student's function against the reference on fresh random cases.

Every check prints one clear line, a pass or a hint, and returns ``True``/``False``.
Cases are drawn with a fresh seed each call, so hard-coding an answer cannot pass.
To add a check, give :func:`run_check` a case generator, the reference and a hint.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import numpy as np
import torch

from .. import transformer

__all__ = ["run_check", "check_softmax", "check_attention", "check_sinusoidal_encoding",
           "check_layer_norm"]


def _close(a, b, atol: float) -> bool:
    a = a.detach().cpu().numpy() if torch.is_tensor(a) else np.asarray(a, dtype=float)
    b = b.detach().cpu().numpy() if torch.is_tensor(b) else np.asarray(b, dtype=float)
    return a.shape == b.shape and bool(np.allclose(a, b, atol=atol, rtol=1e-4, equal_nan=False))


def run_check(name: str, student: Callable, reference: Callable, make_case: Callable,
              *, hint: str, n_cases: int = 5, atol: float = 1e-5, seed: int | None = None,
              compare: Callable | None = None) -> bool:
    """Compare ``student(*case)`` with ``reference(*case)`` on ``n_cases`` random cases.

    ``make_case(rng)`` gets a ``numpy.random.Generator`` and returns the argument
    tuple. ``compare(got, want)`` defaults to an ``allclose`` on equal shapes.
    """
    if not callable(student):
        raise TypeError(f"{name}: pass your function itself, got {type(student).__name__}")
    seed = random.SystemRandom().randrange(2**31) if seed is None else seed
    rng = np.random.default_rng(seed)
    compare = compare or (lambda got, want: _close(got, want, atol))
    for i in range(n_cases):
        case = make_case(rng)
        want = reference(*case)
        try:
            got = student(*case)
        except NotImplementedError:
            print(f"❌ {name}: not implemented yet. Hint: {hint}")
            return False
        except Exception as err:  # a student's bug is reported, not raised
            print(f"❌ {name}: your function raised {type(err).__name__}: {err}. Hint: {hint}")
            return False
        if not compare(got, want):
            shape = getattr(got, "shape", type(got).__name__)
            print(f"❌ {name}: case {i + 1} of {n_cases} differs from the reference "
                  f"(your output: {shape}). Hint: {hint}")
            return False
    print(f"✅ {name}: matches the reference on {n_cases} random cases.")
    return True


def _scores_case(rng):
    shape = tuple(int(s) for s in rng.integers(1, 5, size=2)) + (int(rng.integers(2, 9)),)
    # rows offset by up to 1000: exp() overflows unless the row maximum is subtracted first
    offset = rng.uniform(-1000, 1000, size=shape[:-1] + (1,))
    return (torch.tensor(rng.normal(scale=3.0, size=shape) + offset),)


def check_softmax(student: Callable, **kw) -> bool:
    """Check a softmax over the last axis, including large scores that overflow ``exp``."""
    return run_check("softmax", student, lambda x: torch.softmax(x, -1), _scores_case,
                     hint="subtract the row maximum before exp, then divide by the row sum "
                          "(keepdim=True keeps the shapes aligned).", **kw)


def _qkv_case(rng):
    b, lq, lk, d, dv = (int(v) for v in rng.integers(1, 7, size=5))
    q, k, v = (torch.tensor(rng.normal(size=s)) for s in ((b, lq, d), (b, lk, d), (b, lk, dv)))
    mask = torch.tensor(rng.random((lq, lk)) > 0.3)
    mask[:, 0] = True  # every query sees at least one key
    return q, k, v, mask


def check_attention(student: Callable, **kw) -> bool:
    """Check ``student(q, k, v, mask) -> output`` against torch's SDPA (True = may attend)."""
    import torch.nn.functional as F

    def ref(q, k, v, mask):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)

    def student_out(q, k, v, mask):
        out = student(q, k, v, mask)
        return out[0] if isinstance(out, tuple) else out

    return run_check("attention", student_out, ref, _qkv_case,
                     hint="scores = q @ k.transpose(-2, -1) / sqrt(d_k); set scores to -inf where "
                          "mask is False; softmax over the last axis; multiply by v.", **kw)


def check_sinusoidal_encoding(student: Callable, **kw) -> bool:
    """Check ``student(n_positions, d_model) -> (n_positions, d_model)`` sinusoidal table."""
    def case(rng):
        return int(rng.integers(1, 64)), 2 * int(rng.integers(1, 33))

    return run_check("sinusoidal encoding", student, transformer.sinusoidal_positional_encoding,
                     case, atol=1e-4,
                     hint="even columns 2i hold sin(p / 10000**(2i/d)), odd columns 2i+1 hold "
                          "cos of the same angle.", **kw)


def check_layer_norm(student: Callable, **kw) -> bool:
    """Check ``student(x, gamma, beta, eps) -> y``, a LayerNorm over the last axis."""
    import torch.nn.functional as F

    def case(rng):
        shape = tuple(int(s) for s in rng.integers(1, 6, size=2)) + (int(rng.integers(2, 17)),)
        d = shape[-1]
        return (torch.tensor(rng.normal(3.0, 5.0, size=shape)), torch.tensor(rng.normal(size=d)),
                torch.tensor(rng.normal(size=d)), 1e-5)

    def ref(x, gamma, beta, eps):
        return F.layer_norm(x, (x.shape[-1],), gamma, beta, eps)

    return run_check("layer norm", student, ref, case,
                     hint="normalise each token by its own mean and *biased* variance "
                          "(unbiased=False), add eps inside the square root, then scale and shift.",
                     **kw)

