r"""Metrics for generative models: Fréchet distance, Inception Score, precision/recall.

All three work on *features* or *class probabilities* from some fixed network;
:mod:`utils.feature_net` supplies a digits classifier that plays Inception's role.

The Fréchet distance between Gaussians :math:`\mathcal N(\mu_1,\Sigma_1)` and
:math:`\mathcal N(\mu_2,\Sigma_2)` is

.. math::
    d^2 = \lVert \mu_1-\mu_2 \rVert^2 + \operatorname{Tr}\!\big(\Sigma_1 + \Sigma_2
          - 2\,(\Sigma_1\Sigma_2)^{1/2}\big).

Numerical care: :math:`\Sigma_1\Sigma_2` is not symmetric, so a general matrix
square root (``scipy.linalg.sqrtm``) can return complex values or fail when a
covariance is singular. We use instead that
:math:`\operatorname{Tr}(\Sigma_1\Sigma_2)^{1/2} = \operatorname{Tr}(A\,\Sigma_2\,A)^{1/2}`
with :math:`A=\Sigma_1^{1/2}`: both square roots are of *symmetric* positive
semi-definite matrices, computed from ``eigh`` with round-off negatives clipped
to zero. That is exact for singular covariances and never produces imaginary parts.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = [
    "feature_statistics",
    "frechet_distance",
    "inception_score",
    "generative_precision_recall",
]


def _as_float64(x, name: str) -> np.ndarray:
    if torch.is_tensor(x):
        x = x.detach().cpu().double().numpy()
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(
            f"{name} must be a numeric array or tensor, got {type(x).__name__}"
        ) from None
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _features_2d(x, name: str) -> np.ndarray:
    arr = _as_float64(x, name)
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D (n_samples, n_features) array, got shape {arr.shape}"
        )
    return arr


def feature_statistics(features, *, allow_singular: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(d,)`` and unbiased covariance ``(d, d)`` of ``(n, d)`` features, in float64.

    A full-rank ``d x d`` covariance needs at least ``d + 1`` samples; with fewer
    it is singular and the Fréchet distance is badly biased, so that raises a
    ``ValueError`` unless ``allow_singular=True`` (which still needs 2 samples).
    """
    f = _features_2d(features, "features")
    n, d = f.shape
    needed = 2 if allow_singular else d + 1
    if n < needed:
        why = ("a covariance" if allow_singular
               else f"a full-rank {d}x{d} covariance (or pass allow_singular=True)")
        raise ValueError(f"too few samples: got {n}, need at least {needed} for {why}")
    mu = f.mean(axis=0)
    centred = f - mu
    sigma = centred.T @ centred / (n - 1)
    return mu, sigma


def _psd_sqrt(m: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix via ``eigh`` (negatives clipped to 0)."""
    w, v = np.linalg.eigh((m + m.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    r"""Squared Fréchet distance between two Gaussians :math:`\mathcal N(\mu_i,\Sigma_i)`.

    Robust to singular covariances: the trace of :math:`(\Sigma_1\Sigma_2)^{1/2}` is
    computed as the trace of :math:`(A\Sigma_2A)^{1/2}`, :math:`A=\Sigma_1^{1/2}`,
    with symmetric eigen-decompositions only (see the module docstring). The
    result is clipped at 0 (round-off can give about ``-1e-12`` for equal inputs).
    """
    mu1, mu2 = _as_float64(mu1, "mu1"), _as_float64(mu2, "mu2")
    sigma1, sigma2 = _as_float64(sigma1, "sigma1"), _as_float64(sigma2, "sigma2")
    for name, mu in (("mu1", mu1), ("mu2", mu2)):
        if mu.ndim != 1:
            raise ValueError(f"{name} must be a 1-D mean vector, got shape {mu.shape}")
    if mu1.shape != mu2.shape:
        raise ValueError(f"feature sizes differ: mu1 has {mu1.shape[0]}, mu2 has {mu2.shape[0]}")
    d = mu1.shape[0]
    for name, s in (("sigma1", sigma1), ("sigma2", sigma2)):
        if s.shape != (d, d):
            raise ValueError(f"{name} must be ({d}, {d}) to match the means, got shape {s.shape}")
        scale = max(1.0, float(np.abs(s).max()))
        if not np.allclose(s, s.T, atol=1e-6 * scale):
            raise ValueError(f"{name} is not symmetric, so it is not a covariance matrix")
    a = _psd_sqrt(sigma1)
    middle = a @ sigma2 @ a
    w = np.linalg.eigvalsh((middle + middle.T) / 2)
    tr_covmean = float(np.sqrt(np.clip(w, 0.0, None)).sum())
    diff = mu1 - mu2
    value = float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_covmean)
    return max(value, 0.0)


def inception_score(probs) -> float:
    r"""Inception Score of ``(N, C)`` class probabilities.

    :math:`\mathrm{IS}=\exp\big(\mathbb E_x\,\mathrm{KL}(p(y\mid x)\,\|\,p(y))\big)`.

    It lies in ``[1, C]``: 1 when every sample gets the same prediction, ``C`` when
    each sample is confidently one class and the classes are used equally.
    Rows must be probabilities (non-negative, summing to 1); pass softmax outputs,
    not logits.
    """
    p = _as_float64(probs, "probs")
    if p.ndim != 2 or p.shape[1] < 2:
        raise ValueError(
            f"probs must be a 2-D (n_samples, n_classes >= 2) array, got shape {p.shape}"
        )
    if (p < 0).any():
        raise ValueError("probs has negative entries; pass probabilities (softmax), not logits")
    sums = p.sum(axis=1)
    if not np.allclose(sums, 1.0, atol=1e-4):
        worst = float(sums[np.argmax(np.abs(sums - 1.0))])
        raise ValueError(f"each row of probs must sum to 1 (a row sums to {worst:.6g}); "
                         "pass probabilities (softmax), not logits")
    p = p / sums[:, None]
    marginal = p.mean(axis=0, keepdims=True)
    # x log(x / m) with the convention 0 log 0 = 0; m > 0 wherever x > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * (np.log(p) - np.log(marginal)), 0.0)
    return float(np.exp(terms.sum(axis=1).mean()))


def generative_precision_recall(real_features, fake_features, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall of Kynkäänniemi et al. (2019), with k-NN balls.

    Each real sample gets a ball whose radius is the distance to its k-th nearest
    real neighbour; *precision* is the share of fake samples inside at least one
    real ball (are samples realistic?). *Recall* swaps the roles (is the real
    variety covered?). Returns ``(precision, recall)``, each in ``[0, 1]``.
    """
    real = _features_2d(real_features, "real_features")
    fake = _features_2d(fake_features, "fake_features")
    if real.shape[1] != fake.shape[1]:
        raise ValueError(
            f"feature sizes differ: real has {real.shape[1]}, fake has {fake.shape[1]}"
        )
    if not isinstance(k, int | np.integer) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    if k >= min(len(real), len(fake)):
        raise ValueError(f"k={k} needs more than k samples in each set, got "
                         f"{len(real)} real and {len(fake)} fake")

    def dists(a, b):
        sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
        return np.sqrt(np.clip(sq, 0.0, None))

    def coverage(ref, other):
        # k-th neighbour radius; column 0 of the sorted self-distances is the point itself
        radii = np.sort(dists(ref, ref), axis=1)[:, k]
        return float((dists(other, ref) <= radii[None, :]).any(axis=1).mean())

    return coverage(real, fake), coverage(fake, real)
