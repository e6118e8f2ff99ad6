"""Auto-checks for the cross-modal contrastive learning exercises (see :func:`utils.checks.run_check`)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from .core import CheckResult, Spec, _as_array, _mismatch, _one_line, as_data, defined_by

__all__ = ["check_info_nce"]


def _unit_rows(rng, n: int, d: int) -> torch.Tensor:
    x = rng.normal(size=(n, d))
    return torch.tensor(x / np.linalg.norm(x, axis=1, keepdims=True))


def _info_nce_edges():
    rng = np.random.default_rng(1101)
    a = _unit_rows(rng, 4, 3)
    # b[i] = a[i] nudged, and one column crowded: row-wise and column-wise losses differ a lot
    b = a + torch.tensor(rng.normal(scale=0.3, size=(4, 3)))
    b[0] = a[1]
    b = b / b.norm(dim=1, keepdim=True)
    # float32 pairs with cosines near 1: at scale 100, exp(logit) overflows float32 unless the
    # largest logit is subtracted first (as log-softmax and cross_entropy do)
    a32 = _unit_rows(rng, 6, 5)
    b32 = a32 + torch.tensor(rng.normal(scale=0.05, size=(6, 5)))
    a32, b32 = a32.float(), (b32 / b32.norm(dim=1, keepdim=True)).float()
    return [
        ("4 pairs, scale 10, a requires grad: the loss must be a tensor that backpropagates",
         (a.clone().requires_grad_(True), b, torch.tensor(10.0))),
        ("4 pairs, scale 10: code->text and text->code losses differ", (a, b, torch.tensor(10.0))),
        ("float32, scale 100: exp overflows unless the largest logit is subtracted",
         (a32, b32, torch.tensor(100.0))),
        ("6 pairs, scale 100 (temperature 0.01)", (_unit_rows(rng, 6, 5), _unit_rows(rng, 6, 5),
                                                   torch.tensor(100.0))),
        ("one pair: the loss is 0", (_unit_rows(rng, 1, 4), _unit_rows(rng, 1, 4), torch.tensor(5.0))),
        ("8 identical embeddings: the loss is log 8", (torch.ones(8, 2) / 2**0.5, torch.ones(8, 2) / 2**0.5,
                                                       torch.tensor(20.0))),
    ]


def _leaves(loss: torch.Tensor) -> list[torch.Tensor]:
    """The leaf tensors that ``loss`` was computed from (those that would receive a ``.grad``)."""
    seen, stack, leaves = set(), [loss.grad_fn], []
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        if hasattr(fn, "variable"):
            leaves.append(fn.variable)
        stack.extend(next_fn for next_fn, _ in fn.next_functions)
    return leaves


def _loss_data(loss) -> dict:
    """What the check needs to know of a returned loss: its value, and whether and how it backpropagates.

    Runs beside the student's code; the gradients travel as arrays, and :func:`_compare_loss`
    judges them.
    """
    data = {"value": as_data(loss), "tensor": torch.is_tensor(loss), "graph": False, "leaves": 0,
            "grads": [], "grad_error": ""}
    if torch.is_tensor(loss) and loss.grad_fn is not None:
        data["graph"] = True
        leaves = _leaves(loss)
        data["leaves"] = len(leaves)
        if leaves:
            try:
                grads = torch.autograd.grad(loss, leaves, allow_unused=True)
                data["grads"] = [as_data(g) for g in grads if g is not None]
            except RuntimeError as err:  # e.g. a loss that is not a scalar
                data["grad_error"] = _one_line(err)
    return data


def _compare_loss(got: dict, want) -> str | None:
    if want.requires_grad:
        if not got["tensor"] or not got["graph"]:
            return ("your loss carries no gradient (a Python float, .item() or .detach()), so "
                    "it cannot train anything: return the torch tensor itself")
        if not got["leaves"]:
            return "your loss does not depend on the embeddings a and b"
        if got["grad_error"]:
            return f"the gradient of your loss cannot be computed ({got['grad_error']})"
        if any(not np.isfinite(_as_array(g)).all() for g in got["grads"]):
            return "the gradient of your loss contains NaN or inf"
        want = want.detach()
    return _mismatch(got["value"], want, atol=1e-6, rtol=1e-4)


def _info_nce_spec() -> Spec:
    from ..clip import info_nce

    def case(rng):
        n, d = int(rng.integers(2, 17)), int(rng.integers(2, 17))
        return _unit_rows(rng, n, d), _unit_rows(rng, n, d), torch.tensor(float(rng.uniform(1, 100)))

    return Spec("check_info_nce", info_nce, case, edge_cases=_info_nce_edges(),
                output=_loss_data, compare=_compare_loss,
                hint="logits = logit_scale * a @ b.T; the targets are the diagonal "
                     "(torch.arange(N)); average the cross-entropy of the rows and that of "
                     "the columns (logits.T), each a mean over the N pairs.")


@defined_by(_info_nce_spec)
def check_info_nce(student: Callable, *, seed: int | None = None, verbose: bool = True,
                   time_limit: float | None = 10.0) -> CheckResult:
    """Check ``student(a, b, logit_scale) -> scalar``, CLIP's symmetric InfoNCE loss.

    ``a`` and ``b`` are ``(N, D)`` unit-length rows (row ``i`` of each is a pair) and
    ``logit_scale`` is :math:`1/\\tau`. Edge cases: an input that requires a gradient (a
    float, ``.item()`` or ``.detach()`` fails: the loss must backpropagate), pairs whose two
    directions differ (one direction only fails), float32 at scale 100 (``exp`` without
    subtracting the largest logit overflows), scale 100 (leaving the temperature out fails),
    one pair (loss 0), and identical embeddings (loss log N; a sum over pairs instead of a
    mean fails). The time limit only applies on the main thread of a Unix process.
    """
    return _info_nce_spec().run(student, seed=seed, verbose=verbose, time_limit=time_limit)
