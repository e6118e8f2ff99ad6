"""Auto-checks for the evaluation exercises (see :func:`utils.checks.run_check`)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..metrics.generative import frechet_distance, inception_score
from .core import CheckResult, Spec, _mismatch, _type_name, as_float, defined_by

__all__ = ["check_frechet_distance", "check_inception_score"]


def _stats(x):
    d = x.shape[1]
    return x.mean(0), np.cov(x, rowvar=False).reshape(d, d)


def _stats_case(rng):
    d = int(rng.integers(1, 9))
    n = d + int(rng.integers(2, 30))
    a = rng.normal(size=(n, d)) @ rng.normal(size=(d, d))
    b = rng.normal(loc=rng.normal(size=d), size=(n, d)) @ rng.normal(size=(d, d))
    if rng.random() < 0.3:  # a rank-deficient covariance, as with dead ReLU features
        b[:, 0] = 0.0
    return *_stats(a), *_stats(b)


def _frechet_edges():
    # 3 samples in 8 dimensions: covariances of rank 2, whose products have eigenvalues
    # that come out as about -1e-16 instead of 0; a square root must clip them
    rng = np.random.default_rng(18)
    a, b = rng.normal(size=(3, 8)), rng.normal(size=(3, 8)) + 1.0
    full = rng.normal(size=(40, 4)) @ rng.normal(size=(4, 4))
    dead = rng.normal(size=(30, 4))
    dead[:, 1] = 0.0
    return [
        ("singular covariances, 3 samples in 8 dimensions (n < d)", (*_stats(a), *_stats(b))),
        ("identical singular sets (n < d): distance 0", (*_stats(a), *_stats(a))),
        ("identical full-rank sets: distance 0", (*_stats(full), *_stats(full))),
        ("a dead feature (a zero row and column in one covariance)", (*_stats(full), *_stats(dead))),
        ("one dimension: (x - y)^2 + (s1 - s2)^2 in standard deviations",
         (np.array([1.0]), np.array([[4.0]]), np.array([-1.0]), np.array([[1.0]]))),
    ]


def _scalar_mismatch(got, want, atol: float, rtol: float):
    """Compare a float answer (read by :func:`as_float`)."""
    if not isinstance(got, float):
        return f"your function returned a {_type_name(got)}, not a number"
    return _mismatch(got, want, atol, rtol)


def _frechet_distance_spec() -> Spec:
    return Spec("check_frechet_distance", frechet_distance, _stats_case,
                edge_cases=_frechet_edges(),
                output=as_float, compare=lambda got, want: _scalar_mismatch(got, want, 1e-4, 1e-4),
                hint="||mu1 - mu2||^2 + tr(sigma1) + tr(sigma2) - 2 tr(sqrtm(sigma1 @ sigma2)); "
                     "keep only the real part of scipy.linalg.sqrtm, or take square roots of "
                     "eigenvalues clipped at 0, so a singular covariance does not give NaN.")


@defined_by(_frechet_distance_spec)
def check_frechet_distance(student: Callable, *, seed: int | None = None, verbose: bool = True,
                           time_limit: float | None = 10.0) -> CheckResult:
    """Check ``student(mu1, sigma1, mu2, sigma2) -> float``, the squared Fréchet distance.

    Edge cases: singular covariances from 3 samples in 8 dimensions (an unclipped square
    root of tiny negative eigenvalues gives NaN), identical singular and full-rank sets
    (distance about 0, within 1e-4), a dead feature, and one dimension (a missing cross
    term, or a mean difference not squared, fails). The time limit only
    applies on the main thread of a Unix process.
    """
    return _frechet_distance_spec().run(student, seed=seed, verbose=verbose, time_limit=time_limit)


def _inception_edges():
    eye = np.eye(4)
    return [
        ("one-hot probabilities, 4 classes used equally: IS = 4", (np.repeat(eye, 2, axis=0),)),
        ("uniform probabilities: IS = 1", (np.full((5, 3), 1 / 3),)),
        ("the same one-hot prediction for every sample: IS = 1", (np.tile(eye[2], (6, 1)),)),
        ("a class nobody predicts (a zero column)",
         (np.array([[0.7, 0.3, 0.0], [0.2, 0.8, 0.0], [0.5, 0.5, 0.0], [1.0, 0.0, 0.0]]),)),
    ]


def _inception_score_spec() -> Spec:
    def case(rng):
        n, c = int(rng.integers(2, 50)), int(rng.integers(2, 11))
        logits = rng.normal(scale=rng.uniform(0.5, 5.0), size=(n, c))
        p = np.exp(logits - logits.max(1, keepdims=True))
        return (p / p.sum(1, keepdims=True),)

    return Spec("check_inception_score", inception_score, case,
                edge_cases=_inception_edges(),
                output=as_float, compare=lambda got, want: _scalar_mismatch(got, want, 1e-8, 1e-5),
                hint="p_y = probs.mean(0) (over the samples); KL of each row to p_y summed "
                     "over classes, with 0 * log 0 = 0 (np.where(probs > 0, ..., 0)); exp "
                     "of the mean KL.")


@defined_by(_inception_score_spec)
def check_inception_score(student: Callable, *, seed: int | None = None, verbose: bool = True,
                          time_limit: float | None = 10.0) -> CheckResult:
    """Check ``student(probs) -> float``, the Inception Score of ``(N, C)`` probabilities.

    Edge cases: one-hot probabilities (IS = C; 0 log 0 must count as 0, not NaN),
    uniform probabilities (IS = 1), one class for every sample (IS = 1), and a class
    nobody predicts. The time limit only applies on the main thread of a Unix process.
    """
    return _inception_score_spec().run(student, seed=seed, verbose=verbose, time_limit=time_limit)
