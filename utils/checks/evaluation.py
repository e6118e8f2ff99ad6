"""Auto-checks for the evaluation exercises (see :func:`utils.checks.run_check`)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..metrics.generative import frechet_distance, inception_score
from .core import run_check

__all__ = ["check_frechet_distance", "check_inception_score"]


def _stats_case(rng):
    d = int(rng.integers(1, 9))
    n = d + int(rng.integers(2, 30))
    a = rng.normal(size=(n, d)) @ rng.normal(size=(d, d))
    b = rng.normal(loc=rng.normal(size=d), size=(n, d)) @ rng.normal(size=(d, d))
    if rng.random() < 0.3:  # a rank-deficient covariance, as with dead ReLU features
        b[:, 0] = 0.0
    return a.mean(0), np.cov(a, rowvar=False).reshape(d, d), b.mean(0), \
        np.cov(b, rowvar=False).reshape(d, d)


def check_frechet_distance(student: Callable, **kw) -> bool:
    """Check ``student(mu1, sigma1, mu2, sigma2) -> float``, the squared Fréchet distance."""
    def compare(got, want):
        return bool(np.isfinite(float(got)) and np.isclose(float(got), want, rtol=1e-4, atol=1e-4))

    return run_check("Fréchet distance", student, frechet_distance, _stats_case, compare=compare,
                     hint="||mu1 - mu2||^2 + tr(sigma1) + tr(sigma2) - 2 tr(sqrtm(sigma1 @ sigma2)); "
                          "keep only the real part of scipy.linalg.sqrtm, and make sure a singular "
                          "covariance does not give NaN.", **kw)


def check_inception_score(student: Callable, **kw) -> bool:
    """Check ``student(probs) -> float``, the Inception Score of ``(N, C)`` probabilities."""
    def case(rng):
        n, c = int(rng.integers(2, 50)), int(rng.integers(2, 11))
        logits = rng.normal(scale=rng.uniform(0.5, 5.0), size=(n, c))
        p = np.exp(logits - logits.max(1, keepdims=True))
        return (p / p.sum(1, keepdims=True),)

    def compare(got, want):
        return bool(np.isclose(float(got), want, rtol=1e-5))

    return run_check("Inception Score", student, inception_score, case, compare=compare,
                     hint="p_y = probs.mean(0); KL of each row to p_y summed over classes; "
                          "exp of the mean KL.", **kw)
