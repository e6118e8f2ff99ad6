"""Auto-checks for the self-supervised learning exercises (see :func:`utils.checks.run_check`)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from .core import run_check

__all__ = ["check_nt_xent", "check_masked_mse"]


def _pair_case(rng):
    n, d = int(rng.integers(2, 17)), int(rng.integers(2, 17))
    scale = float(rng.uniform(0.5, 20.0))  # unnormalised inputs: the loss must normalise them
    z1 = torch.tensor(rng.normal(scale=scale, size=(n, d)), dtype=torch.float32)
    z2 = torch.tensor(rng.normal(scale=scale, size=(n, d)), dtype=torch.float32)
    return z1, z2, float(rng.choice([0.05, 0.1, 0.3, 1.0]))


def check_nt_xent(student: Callable, **kw) -> bool:
    """Check ``student(z1, z2, temperature) -> scalar`` against the cross-entropy formulation."""
    from ..ssl import nt_xent_reference

    return run_check("NT-Xent", student, nt_xent_reference, _pair_case, atol=1e-4,
                     hint="L2-normalise the 2N rows of cat([z1, z2]), divide the cosine "
                          "similarities by the temperature, exclude each row's similarity with "
                          "itself, and average -log softmax at the other view (row i <-> i+N).",
                     **kw)


def check_masked_mse(student: Callable, **kw) -> bool:
    """Check ``student(pred, target, mask) -> scalar``: the MSE over the hidden patches only."""
    def case(rng):
        b, n, p = int(rng.integers(1, 6)), int(rng.integers(2, 17)), int(rng.integers(1, 17))
        mask = torch.tensor(rng.random((b, n)) < 0.5)
        mask[:, 0] = True  # at least one hidden patch per image
        return (torch.tensor(rng.normal(size=(b, n, p))), torch.tensor(rng.random((b, n, p))),
                mask)

    def ref(pred, target, mask):
        err = ((pred - target) ** 2).mean(-1)
        return (err * mask).sum() / mask.sum()

    return run_check("masked MSE", student, ref, case,
                     hint="average the squared error over each patch's pixels, then average "
                          "over the hidden patches only (mask == True), not over all patches.",
                     **kw)
