"""Auto-checks for the VAE exercises (see :func:`utils.checks.run_check`)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .. import vae
from .core import CheckResult, Spec, defined_by

__all__ = ["check_gaussian_kl", "check_reparameterize"]


def _posterior_case(rng):
    shape = (int(rng.integers(1, 9)), int(rng.integers(1, 17)))
    mu = torch.tensor(rng.normal(scale=2.0, size=shape))
    logvar = torch.tensor(rng.uniform(-6.0, 3.0, size=shape))
    return mu, logvar


def _t(rows) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64)


def _gaussian_kl_spec() -> Spec:
    edges = [
        ("the prior itself: mu = 0, logvar = 0 gives KL = 0", (torch.zeros(2, 3, dtype=torch.float64),
                                                             torch.zeros(2, 3, dtype=torch.float64))),
        ("logvar = 2 and -20 with mu = 0 and 1", (_t([[0.0, 1.0], [0.0, 1.0]]), _t([[2.0, 2.0], [-20.0, -20.0]]))),
        ("a (2, 3) input: one KL per dimension, no sum",
         (_t([[0.5, -1.0, 2.0], [0.0, 3.0, -0.5]]), _t([[0.0, 1.0, -1.0], [0.5, -2.0, 1.5]]))),
    ]
    return Spec("check_gaussian_kl", vae.gaussian_kl, _posterior_case, edge_cases=edges,
                atol=1e-6,
                hint="0.5 * (mu**2 + exp(logvar) - 1 - logvar), element-wise (no sum); "
                     "exp(logvar) is the variance, not the standard deviation.")


@defined_by(_gaussian_kl_spec)
def check_gaussian_kl(student: Callable, *, seed: int | None = None, verbose: bool = True,
                      time_limit: float | None = 10.0) -> CheckResult:
    """Check ``student(mu, logvar) -> KL`` per dimension, KL(N(mu, exp(logvar)) || N(0, 1)).

    Edge cases: the prior itself (KL = 0 everywhere; a missing -1 fails), logvar = 2
    and -20 (treating exp(logvar) as the standard deviation fails), and a (2, 3) input
    whose answer keeps that shape (a sum over dimensions fails). The time limit only
    applies on the main thread of a Unix process.
    """
    return _gaussian_kl_spec().run(student, seed=seed, verbose=verbose, time_limit=time_limit)


def _reparameterize_spec() -> Spec:
    def case(rng):
        mu, logvar = _posterior_case(rng)
        return mu, logvar, torch.tensor(rng.normal(size=tuple(mu.shape)))

    edges = [
        ("eps = 0 gives z = mu",
         (_t([[1.0, -2.0, 0.5]]), _t([[0.0, 1.0, -3.0]]), torch.zeros(1, 3, dtype=torch.float64))),
        ("logvar = log 4, eps = 1 gives z = mu + 2",
         (_t([[1.0, -2.0], [0.0, 3.0]]), torch.full((2, 2), math.log(4.0), dtype=torch.float64),
          torch.ones(2, 2, dtype=torch.float64))),
    ]
    return Spec("check_reparameterize", lambda m, lv, e: vae.reparameterize(m, lv, e),
                case, edge_cases=edges, atol=1e-6,
                hint="z = mu + sigma * eps with sigma = exp(0.5 * logvar) (the square root "
                     "of the variance); use the eps you are given, do not draw new noise.")


@defined_by(_reparameterize_spec)
def check_reparameterize(student: Callable, *, seed: int | None = None, verbose: bool = True,
                         time_limit: float | None = 10.0) -> CheckResult:
    """Check ``student(mu, logvar, eps) -> z``, the reparameterised sample.

    Edge cases: eps = 0 (z = mu), and logvar = log 4 with eps = 1 (z = mu + 2: scaling
    by the variance gives mu + 4); drawing fresh noise instead of using ``eps`` fails
    everywhere. The time limit only applies on the main thread of a Unix process.
    """
    return _reparameterize_spec().run(student, seed=seed, verbose=verbose, time_limit=time_limit)
