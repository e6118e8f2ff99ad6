"""Auto-checks for the deep-clustering (DEC) exercises (see :func:`utils.checks.run_check`)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from .core import CheckResult, Spec, defined_by

__all__ = ["check_soft_assignment", "check_target_distribution"]


def _soft_assignment_edges():
    rng = np.random.default_rng(606)
    z, mu = torch.tensor(rng.normal(size=(5, 3))), torch.tensor(rng.normal(size=(3, 3)))
    far = torch.tensor([[60.0, 0.0], [0.0, -80.0]])                  # squared distances ~1e4
    far_mu = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0]])
    return [
        ("alpha = 1, 5 points and 3 centroids", (z, mu, 1.0)),
        ("alpha = 2: the exponent is -(alpha + 1) / 2 = -1.5", (z, mu, 2.0)),
        ("alpha = 0.5, a single point", (z[:1], mu, 0.5)),
        ("points far from every centroid (squared distances ~1e4)", (far, far_mu, 1.0)),
    ]


def _soft_assignment_spec() -> Spec:
    from ..dec import soft_assignment

    def case(rng):
        n, k, d = int(rng.integers(1, 20)), int(rng.integers(2, 8)), int(rng.integers(1, 9))
        return (torch.tensor(rng.normal(size=(n, d))), torch.tensor(rng.normal(size=(k, d))),
                float(rng.choice([0.5, 1.0, 2.0])))

    return Spec("check_soft_assignment", soft_assignment, case,
                edge_cases=_soft_assignment_edges(),
                hint="q_ij is proportional to (1 + ||z_i - mu_j||^2 / alpha) ** "
                     "(-(alpha + 1) / 2) with the *squared* distance; normalise each row "
                     "(dim=1) to sum to 1.")


@defined_by(_soft_assignment_spec)
def check_soft_assignment(student: Callable, *, seed: int | None = None, verbose: bool = True,
                          time_limit: float | None = 10.0) -> CheckResult:
    """Check ``student(z, centroids, alpha) -> q`` (Student-t soft assignments, rows sum to 1).

    Edge cases: alpha = 1, alpha = 2 and alpha = 0.5 (an exponent fixed at -1 fails), a
    single point, and points far from every centroid (a Gaussian kernel, or distances
    not squared, fails). The time limit only applies on the main thread of a Unix process.
    """
    return _soft_assignment_spec().run(student, seed=seed, verbose=verbose, time_limit=time_limit)


def _target_edges():
    uneven = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.6, 0.4], [0.2, 0.8]],
                          dtype=torch.float64)
    three = torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]], dtype=torch.float64)
    return [
        ("clusters of very different sizes (column sums 3.2 and 1.8)", (uneven,)),
        ("N = 2 points, K = 3 clusters", (three,)),
        ("uniform q: p is uniform too", (torch.full((4, 3), 1 / 3, dtype=torch.float64),)),
    ]


def _target_distribution_spec() -> Spec:
    from ..dec import target_distribution

    def case(rng):
        n, k = int(rng.integers(2, 30)), int(rng.integers(2, 8))
        logits = torch.tensor(rng.normal(scale=2.0, size=(n, k)))
        return (torch.softmax(logits, dim=1),)

    return Spec("check_target_distribution", target_distribution, case,
                edge_cases=_target_edges(),
                hint="square q, divide each column by its cluster frequency f_j = q[:, j].sum() "
                     "(a sum over the points, dim=0), then renormalise each row to sum to 1.")


@defined_by(_target_distribution_spec)
def check_target_distribution(student: Callable, *, seed: int | None = None, verbose: bool = True,
                              time_limit: float | None = 10.0) -> CheckResult:
    """Check ``student(q) -> p``, DEC's sharpened target distribution.

    Edge cases: clusters of very different sizes (forgetting the division by the
    cluster frequency, or dividing by the row sum, fails), N < K (normalising the
    columns instead of the rows fails), and a uniform q. The time limit only applies
    on the main thread of a Unix process.
    """
    return _target_distribution_spec().run(student, seed=seed, verbose=verbose, time_limit=time_limit)
