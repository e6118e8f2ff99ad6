"""Auto-checks for the VAE exercises (see :func:`utils.checks.run_check`)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from .. import vae
from .core import run_check

__all__ = ["check_gaussian_kl", "check_reparameterize"]


def _posterior_case(rng):
    shape = (int(rng.integers(1, 9)), int(rng.integers(1, 17)))
    mu = torch.tensor(rng.normal(scale=2.0, size=shape))
    logvar = torch.tensor(rng.uniform(-6.0, 3.0, size=shape))
    return mu, logvar


def check_gaussian_kl(student: Callable, **kw) -> bool:
    """Check ``student(mu, logvar) -> KL`` per dimension, KL(N(mu, exp(logvar)) || N(0, 1))."""
    return run_check("Gaussian KL", student, vae.gaussian_kl, _posterior_case, atol=1e-6,
                     hint="0.5 * (mu**2 + exp(logvar) - 1 - logvar), element-wise (no sum); "
                          "exp(logvar) is the variance, not the standard deviation.", **kw)


def check_reparameterize(student: Callable, **kw) -> bool:
    """Check ``student(mu, logvar, eps) -> z``, the reparameterised sample."""
    def case(rng):
        mu, logvar = _posterior_case(rng)
        return mu, logvar, torch.tensor(rng.normal(size=tuple(mu.shape)))

    return run_check("reparameterisation", student, lambda m, lv, e: vae.reparameterize(m, lv, e),
                     case, atol=1e-6,
                     hint="z = mu + sigma * eps with sigma = exp(0.5 * logvar) (the square root "
                          "of the variance).", **kw)
