r"""Metrics for generative models: Fréchet distance, Inception Score, precision/recall, KID,
density and coverage.

All of them work on *features* or *class probabilities* from some fixed network;
:mod:`utils.feature_net` supplies a digits classifier that plays Inception's role.

The Fréchet distance between Gaussians :math:`\mathcal N(\mu_1,\Sigma_1)` and
:math:`\mathcal N(\mu_2,\Sigma_2)` is

.. math::
    d^2 = \lVert \mu_1-\mu_2 \rVert^2 + \operatorname{Tr}\!\big(\Sigma_1 + \Sigma_2
          - 2\,(\Sigma_1\Sigma_2)^{1/2}\big),

the squared 2-Wasserstein distance between the two Gaussians (Dowson and Landau 1982).
:math:`\Sigma_1\Sigma_2` is not symmetric, so a general matrix square root
(``scipy.linalg.sqrtm``), which warns on singular input and may return a complex
array whose round-off imaginary parts must be discarded.
We use instead that
:math:`\operatorname{Tr}(\Sigma_1\Sigma_2)^{1/2} = \operatorname{Tr}(A\,\Sigma_2\,A)^{1/2}`
with :math:`A=\Sigma_1^{1/2}`: both square roots are of *symmetric* positive
semi-definite matrices, computed from ``eigh`` with round-off negatives clipped
to zero (unclipped, they would give NaN). The result is real by construction,
also for singular covariances.

Two sample-based alternatives: the unbiased kernel inception distance (KID,
Bińkowski et al. 2018), and density and coverage (Naeem et al. 2020), which
count k-NN balls around real samples and are robust to a few outlying real
samples with very large balls.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = [
    "feature_statistics",
    "frechet_distance",
    "inception_score",
    "generative_precision_recall",
    "kernel_inception_distance",
    "density_coverage",
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


def _real_fake_k(real_features, fake_features, k) -> tuple[np.ndarray, np.ndarray]:
    """The two feature sets as float64 arrays of one width, after checking ``k`` is a positive int."""
    real = _features_2d(real_features, "real_features")
    fake = _features_2d(fake_features, "fake_features")
    if real.shape[1] != fake.shape[1]:
        raise ValueError(
            f"feature sizes differ: real has {real.shape[1]}, fake has {fake.shape[1]}"
        )
    if not isinstance(k, int | np.integer) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    return real, fake


def generative_precision_recall(real_features, fake_features, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall of Kynkäänniemi et al. (2019), with k-NN balls.

    Each real sample gets a ball whose radius is the distance to its k-th nearest
    real neighbour; *precision* is the share of fake samples inside at least one
    real ball (are samples realistic?). *Recall* swaps the roles (is the real
    variety covered?). Returns ``(precision, recall)``, each in ``[0, 1]``.
    """
    real, fake = _real_fake_k(real_features, fake_features, k)
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


def _pairwise_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.clip(sq, 0.0, None))


def kernel_inception_distance(real_features, fake_features, *, degree: int = 3,
                              gamma: float | None = None, coef: float = 1.0) -> float:
    r"""Unbiased squared MMD with the polynomial kernel of KID (Bińkowski et al. 2018).

    :math:`k(x, y) = (\gamma\, x^\top y + c)^{d}` with :math:`\gamma = 1/\text{features}`,
    :math:`c = 1`, :math:`d = 3` by default. For ``m`` real and ``n`` fake samples

    .. math::
        \widehat{\mathrm{MMD}}^2 = \frac{\sum_{i\ne j} k(x_i, x_j)}{m(m-1)}
        + \frac{\sum_{i\ne j} k(y_i, y_j)}{n(n-1)} - \frac{2\sum_{i,j} k(x_i, y_j)}{mn},

    an unbiased estimate whatever ``m`` and ``n`` (it can be slightly negative when
    the two distributions are equal). Computed on all samples at once, in float64.
    """
    real = _features_2d(real_features, "real_features")
    fake = _features_2d(fake_features, "fake_features")
    if real.shape[1] != fake.shape[1]:
        raise ValueError(
            f"feature sizes differ: real has {real.shape[1]}, fake has {fake.shape[1]}"
        )
    if len(real) < 2 or len(fake) < 2:
        raise ValueError(f"need at least 2 samples per set, got {len(real)} real and {len(fake)} fake")
    if not isinstance(degree, int | np.integer) or isinstance(degree, bool) or degree < 1:
        raise ValueError(f"degree must be a positive int, got {degree!r}")
    g = 1.0 / real.shape[1] if gamma is None else float(gamma)
    if not g > 0 or not coef >= 0:
        raise ValueError(f"gamma must be positive and coef non-negative, got {gamma!r}, {coef!r}")

    def kernel(a, b):
        return (g * (a @ b.T) + coef) ** degree

    m, n = len(real), len(fake)
    k_rr, k_ff, k_rf = kernel(real, real), kernel(fake, fake), kernel(real, fake)
    within_r = (k_rr.sum() - np.trace(k_rr)) / (m * (m - 1))
    within_f = (k_ff.sum() - np.trace(k_ff)) / (n * (n - 1))
    return float(within_r + within_f - 2.0 * k_rf.mean())


def density_coverage(real_features, fake_features, k: int = 5) -> tuple[float, float]:
    r"""Density and coverage of Naeem et al. (2020), with the k-NN balls of the real samples.

    Each real sample :math:`x_i` gets a ball :math:`B_i` whose radius is the distance to
    its ``k``-th nearest real neighbour. *Density* counts, per fake sample, how many
    balls contain it, :math:`\frac{1}{kn}\sum_j \sum_i 1[y_j \in B_i]` (1 on average
    for fake samples from the real distribution; it can exceed 1). *Coverage* is the
    share of real balls that contain at least one fake sample, in ``[0, 1]``. Unlike
    precision, one outlying real sample with a huge ball adds at most ``1/k`` to a fake
    sample's density, and coverage never uses the fake samples' own balls.
    Returns ``(density, coverage)``.
    """
    real, fake = _real_fake_k(real_features, fake_features, k)
    if k >= len(real):
        raise ValueError(f"k={k} needs more than k real samples, got {len(real)}")
    # k-th neighbour radius; column 0 of the sorted self-distances is the point itself
    radii = np.sort(_pairwise_distances(real, real), axis=1)[:, k]
    inside = _pairwise_distances(fake, real) <= radii[None, :]       # (n_fake, n_real)
    density = float(inside.sum() / (k * len(fake)))
    coverage = float(inside.any(axis=0).mean())
    return density, coverage
