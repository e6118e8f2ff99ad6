"""Tests for utils.metrics.generative: Fréchet distance, Inception Score, precision/recall,
KID, density and coverage."""

import numpy as np
import pytest
import scipy.linalg
import scipy.stats
import torch
from sklearn.neighbors import NearestNeighbors

from utils.metrics import (
    density_coverage,
    feature_statistics,
    frechet_distance,
    generative_precision_recall,
    inception_score,
    kernel_inception_distance,
)


def _sqrtm_fid(mu1, s1, mu2, s2):
    """The reference implementation of Heusel et al. (scipy sqrtm, real part)."""
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def _random_stats(rng, d=6, n=50):
    a, b = rng.normal(size=(n, d)), rng.normal(1.0, 2.0, size=(n, d)) @ rng.normal(size=(d, d))
    return (*feature_statistics(a), *feature_statistics(b))


def test_feature_statistics_matches_numpy():
    f = np.random.default_rng(0).normal(size=(40, 5))
    mu, sigma = feature_statistics(f)
    np.testing.assert_allclose(mu, f.mean(0))
    np.testing.assert_allclose(sigma, np.cov(f, rowvar=False))
    mu_t, _ = feature_statistics(torch.tensor(f))
    np.testing.assert_allclose(mu_t, mu)


def test_feature_statistics_too_few_samples_says_how_many():
    with pytest.raises(ValueError, match="need at least 6"):
        feature_statistics(np.zeros((5, 5)))
    with pytest.raises(ValueError, match="need at least 2"):
        feature_statistics(np.zeros((1, 5)), allow_singular=True)
    few = np.random.default_rng(0).normal(size=(3, 5))
    mu, sigma = feature_statistics(few, allow_singular=True)
    assert sigma.shape == (5, 5)


@pytest.mark.parametrize("bad, err", [(np.zeros(5), ValueError), (np.zeros((0, 3)), ValueError),
                                      (np.full((10, 2), np.nan), ValueError),
                                      ("abc", TypeError)])
def test_feature_statistics_bad_input(bad, err):
    with pytest.raises(err):
        feature_statistics(bad)


def test_frechet_matches_sqrtm_and_closed_form():
    rng = np.random.default_rng(1)
    stats = _random_stats(rng)
    assert frechet_distance(*stats) == pytest.approx(_sqrtm_fid(*stats), rel=1e-7)
    # 1-D Gaussians: (m1 - m2)^2 + (s1 - s2)^2
    assert frechet_distance([0.0], [[4.0]], [3.0], [[1.0]]) == pytest.approx(9 + 1)


def test_frechet_matches_torchmetrics_formula():
    from torchmetrics.image.fid import _compute_fid

    stats = _random_stats(np.random.default_rng(2))
    ref = float(_compute_fid(*(torch.tensor(s) for s in stats)))
    assert frechet_distance(*stats) == pytest.approx(ref, rel=1e-6)


def test_frechet_identical_is_zero_and_symmetric():
    mu1, s1, mu2, s2 = _random_stats(np.random.default_rng(3))
    assert frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-9)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(frechet_distance(mu2, s2, mu1, s1))


def test_frechet_singular_covariances():
    rng = np.random.default_rng(4)
    low_rank = rng.normal(size=(30, 2)) @ rng.normal(size=(2, 8))  # rank 2 in 8-D
    mu, s = feature_statistics(low_rank)
    value = frechet_distance(mu, s, mu + 1.0, np.zeros((8, 8)))
    assert np.isfinite(value)
    # with a zero covariance the cross term vanishes: ||dmu||^2 + tr(s)
    assert value == pytest.approx(8.0 + np.trace(s))
    assert frechet_distance(mu, s, mu, s) == pytest.approx(0.0, abs=1e-8)


def test_frechet_bad_input():
    mu1, s1, mu2, s2 = _random_stats(np.random.default_rng(5))
    with pytest.raises(ValueError, match="feature sizes differ"):
        frechet_distance(mu1, s1, mu2[:3], s2[:3, :3])
    with pytest.raises(ValueError, match="must be"):
        frechet_distance(mu1, s1[:3], mu2, s2)
    with pytest.raises(ValueError, match="1-D"):
        frechet_distance(s1, s1, mu2, s2)
    with pytest.raises(ValueError, match="NaN"):
        frechet_distance(mu1 * np.nan, s1, mu2, s2)
    with pytest.raises(ValueError, match="symmetric"):
        frechet_distance(mu1, s1 + np.triu(np.ones_like(s1), 1), mu2, s2)


def test_inception_score_extremes_and_formula():
    c = 4
    assert inception_score(np.eye(c)) == pytest.approx(c)
    assert inception_score(np.tile(np.eye(c)[0], (5, 1))) == pytest.approx(1.0)
    p = torch.softmax(torch.randn(20, c, generator=torch.Generator().manual_seed(0)), 1)
    marg = p.mean(0, keepdim=True)
    want = torch.exp(torch.nn.functional.kl_div(marg.log().expand_as(p), p,
                                                reduction="none").sum(1).mean())
    assert inception_score(p) == pytest.approx(float(want), rel=1e-6)


def test_inception_score_matches_scipy_entropy():
    rng = np.random.default_rng(7)
    logits = rng.normal(scale=3.0, size=(30, 10))
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    p[0] = np.eye(10)[3]  # an exactly one-hot row: 0 log 0 = 0
    want = np.exp(np.mean([scipy.stats.entropy(row, p.mean(0)) for row in p]))
    assert inception_score(p) == pytest.approx(float(want), rel=1e-10)


@pytest.mark.parametrize("bad, match", [
    (np.array([[0.5, 0.6]]), "sum to 1"),
    (np.array([[1.5, -0.5]]), "negative"),
    (np.ones(3) / 3, "2-D"),
    (np.array([[np.nan, 1.0]]), "NaN"),
    (np.zeros((0, 3)), "empty"),
])
def test_inception_score_bad_input(bad, match):
    with pytest.raises(ValueError, match=match):
        inception_score(bad)


def test_precision_recall():
    rng = np.random.default_rng(6)
    real = rng.normal(size=(200, 2))
    p, r = generative_precision_recall(real, rng.normal(size=(200, 2)), k=3)
    assert p > 0.8 and r > 0.8
    # a collapsed generator: realistic but no variety
    p, r = generative_precision_recall(real, np.zeros((50, 2)) + 0.01 * rng.normal(size=(50, 2)))
    assert p == 1.0 and r < 0.2
    # far-away samples: neither
    p, r = generative_precision_recall(real, rng.normal(10.0, 1.0, size=(200, 2)))
    assert p == 0.0 and r == 0.0


def test_precision_recall_matches_sklearn_neighbours():
    rng = np.random.default_rng(8)
    real, fake = rng.normal(size=(80, 5)), rng.normal(0.5, 1.2, size=(60, 5))
    k = 3

    def coverage(ref, other):
        # the k-th neighbour of each ref point among the others (n_neighbors includes itself)
        radii = NearestNeighbors(n_neighbors=k + 1).fit(ref).kneighbors(ref)[0][:, k]
        dist, idx = NearestNeighbors(n_neighbors=len(ref)).fit(ref).kneighbors(other)
        return float((dist <= radii[idx] + 1e-12).any(axis=1).mean())

    p, r = generative_precision_recall(real, fake, k=k)
    assert (p, r) == pytest.approx((coverage(real, fake), coverage(fake, real)))
    assert 0.0 < p < r < 1.0  # a wider, shifted fake cloud: it covers the reals, strays beyond


def test_precision_recall_bad_input():
    x = np.zeros((10, 2))
    with pytest.raises(ValueError, match="feature sizes differ"):
        generative_precision_recall(x, np.zeros((10, 3)))
    with pytest.raises(ValueError, match="k=10"):
        generative_precision_recall(x, x, k=10)
    with pytest.raises(ValueError, match="positive int"):
        generative_precision_recall(x, x, k=0)


def test_evaluation_checks_pass_the_reference_and_reject_mistakes(capsys):
    from utils import checks

    assert checks.check_frechet_distance(frechet_distance, seed=0)
    assert checks.check_inception_score(inception_score, seed=0)
    assert "✅" in capsys.readouterr().out

    def fid_without_cross_term(mu1, s1, mu2, s2):  # forgets -2 tr(sqrt(s1 s2))
        return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2))

    def is_without_exp(probs):  # returns the mean KL, not its exponential
        return float(np.log(inception_score(probs)))

    assert not checks.check_frechet_distance(fid_without_cross_term, seed=0)
    assert not checks.check_inception_score(is_without_exp, seed=0)
    out = capsys.readouterr().out
    assert out.count("❌") == 2 and "Hint" in out


def test_kid_matches_torchmetrics_poly_mmd_and_brute_force():
    from torchmetrics.image.kid import poly_mmd

    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(40, 7)), rng.normal(0.3, 1.2, size=(40, 7))
    ours = kernel_inception_distance(real, fake)
    theirs = float(poly_mmd(torch.tensor(real), torch.tensor(fake)))
    assert ours == pytest.approx(theirs, rel=1e-10)
    # unequal sizes: the U-statistic written out with explicit loops
    fake = fake[:25]

    def k(a, b):
        return (a @ b / 7 + 1.0) ** 3

    m, n = len(real), len(fake)
    xx = sum(k(real[i], real[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(fake[i], fake[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(real[i], fake[j]) for i in range(m) for j in range(n)) / (m * n)
    assert kernel_inception_distance(real, fake) == pytest.approx(xx + yy - 2 * xy, rel=1e-10)


def test_kid_is_unbiased_for_equal_distributions():
    # the mean over many pairs of samples from one distribution is ~0 (a biased V-statistic
    # would be clearly positive at these sizes)
    rng = np.random.default_rng(1)
    values = [kernel_inception_distance(rng.normal(size=(30, 5)), rng.normal(size=(20, 5)))
              for _ in range(400)]
    assert abs(np.mean(values)) < 3 * np.std(values) / np.sqrt(len(values))
    assert min(values) < 0 < max(values)
    shifted = kernel_inception_distance(rng.normal(size=(200, 5)), rng.normal(1.0, 1.0, size=(200, 5)))
    assert shifted > 10 * np.std(values)


def test_kid_bad_input():
    x = np.zeros((5, 3))
    with pytest.raises(ValueError, match="feature sizes differ"):
        kernel_inception_distance(x, np.zeros((5, 4)))
    with pytest.raises(ValueError, match="at least 2"):
        kernel_inception_distance(x, np.zeros((1, 3)))
    with pytest.raises(ValueError, match="degree"):
        kernel_inception_distance(x, x, degree=0)


def test_density_coverage_matches_sklearn_neighbours():
    rng = np.random.default_rng(2)
    real, fake = rng.normal(size=(60, 4)), rng.normal(0.5, 1.0, size=(50, 4))
    k = 5
    radii = NearestNeighbors(n_neighbors=k + 1).fit(real).kneighbors(real)[0][:, k]
    dist = NearestNeighbors(n_neighbors=len(real)).fit(real)
    d, idx = dist.kneighbors(fake)                     # distances to every real sample
    inside = np.zeros((len(fake), len(real)), bool)
    np.put_along_axis(inside, idx, d <= radii[idx] + 1e-12, axis=1)
    density, coverage = density_coverage(real, fake, k=k)
    assert density == pytest.approx(inside.sum() / (k * len(fake)))
    assert coverage == pytest.approx(inside.any(0).mean())


def test_density_coverage_hand_example_and_outlier():
    # four real points on a line, k = 1: each ball reaches the nearest neighbour
    real = np.array([[0.0], [1.0], [2.0], [10.0]])     # radii 1, 1, 1, 8
    fake = np.array([[0.5], [6.0]])
    density, coverage = density_coverage(real, fake, k=1)
    # 0.5 lies in the balls of 0 and 1; 6.0 only in the outlier 10's large ball
    assert density == pytest.approx(3 / 2)
    assert coverage == pytest.approx(3 / 4)            # the balls of 0, 1 and 10
    # precision counts 6.0 as fully realistic because of the outlier's ball; its density
    # share is one ball, against two for 0.5
    precision, _ = generative_precision_recall(real, fake, k=1)
    assert precision == 1.0
    assert density_coverage(real, fake[1:], k=1)[0] == pytest.approx(1.0)
    assert density_coverage(real, fake[:1], k=1)[0] == pytest.approx(2.0)


def test_density_coverage_same_distribution_near_one():
    rng = np.random.default_rng(3)
    density, coverage = density_coverage(rng.normal(size=(500, 3)), rng.normal(size=(2000, 3)), k=5)
    assert 0.85 < density < 1.15 and coverage > 0.9


def test_density_coverage_bad_input():
    x = np.zeros((5, 3))
    with pytest.raises(ValueError, match="feature sizes differ"):
        density_coverage(x, np.zeros((5, 4)))
    with pytest.raises(ValueError, match="k=5 needs"):
        density_coverage(x, x, k=5)
    with pytest.raises(ValueError, match="k must be"):
        density_coverage(x, x, k=0)
