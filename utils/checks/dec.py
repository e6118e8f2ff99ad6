"""Auto-checks for the deep-clustering (DEC) exercises (see :func:`utils.checks.run_check`)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from .core import run_check

__all__ = ["check_soft_assignment", "check_target_distribution"]


def check_soft_assignment(student: Callable, **kw) -> bool:
    """Check ``student(z, centroids, alpha) -> q`` (Student-t soft assignments, rows sum to 1)."""
    from ..dec import soft_assignment

    def case(rng):
        n, k, d = int(rng.integers(1, 20)), int(rng.integers(2, 8)), int(rng.integers(1, 9))
        return (torch.tensor(rng.normal(size=(n, d))), torch.tensor(rng.normal(size=(k, d))),
                float(rng.choice([0.5, 1.0, 2.0])))

    return run_check("soft assignment", student, soft_assignment, case,
                     hint="q_ij is proportional to (1 + ||z_i - mu_j||^2 / alpha) ** "
                          "(-(alpha + 1) / 2); normalise each row to sum to 1.", **kw)


def check_target_distribution(student: Callable, **kw) -> bool:
    """Check ``student(q) -> p``, DEC's sharpened target distribution."""
    from ..dec import target_distribution

    def case(rng):
        n, k = int(rng.integers(2, 30)), int(rng.integers(2, 8))
        logits = torch.tensor(rng.normal(scale=2.0, size=(n, k)))
        return (torch.softmax(logits, dim=1),)

    return run_check("target distribution", student, target_distribution, case,
                     hint="square q, divide each column by its cluster frequency f_j = q[:, j].sum(), "
                          "then renormalise each row to sum to 1.", **kw)
