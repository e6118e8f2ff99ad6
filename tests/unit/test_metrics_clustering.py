"""Tests for utils.metrics.clustering: Hungarian accuracy and evaluate_clustering."""

import itertools

import numpy as np
import pytest
from sklearn import metrics as skm

from utils.metrics import cluster_accuracy, evaluate_clustering


def _brute_force_accuracy(y_true, y_pred):
    classes, clusters = np.unique(y_true), np.unique(y_pred)
    best = 0
    # try every injective map from clusters to classes (or classes to clusters)
    if len(clusters) <= len(classes):
        for perm in itertools.permutations(classes, len(clusters)):
            m = dict(zip(clusters, perm, strict=True))
            best = max(best, sum(m[p] == t for p, t in zip(y_pred, y_true, strict=True)))
    else:
        for perm in itertools.permutations(clusters, len(classes)):
            m = dict(zip(perm, classes, strict=True))
            best = max(best, sum(m.get(p) == t for p, t in zip(y_pred, y_true, strict=True)))
    return best / len(y_true)


def test_accuracy_is_invariant_to_relabelling():
    y = np.array([0, 0, 1, 1, 2, 2, 2])
    assert cluster_accuracy(y, y) == 1.0
    assert cluster_accuracy(y, (y + 1) % 3) == 1.0
    assert cluster_accuracy(y, np.array([5, 5, 9, 9, 7, 7, 7])) == 1.0


@pytest.mark.parametrize("seed", range(6))
def test_accuracy_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    n_true, n_pred = rng.integers(2, 5, size=2)
    y_true = rng.integers(0, n_true, size=30)
    y_pred = rng.integers(0, n_pred, size=30)
    assert cluster_accuracy(y_true, y_pred) == pytest.approx(_brute_force_accuracy(y_true, y_pred))


def test_more_clusters_than_classes_and_noise():
    # four clusters for two classes: two clusters go unmatched
    assert cluster_accuracy([0, 0, 1, 1], [0, 1, 2, 3]) == 0.5
    # noise -1 is a cluster of its own, matched like any other
    assert cluster_accuracy([0, 0, 1, 1, 2], [1, 1, 0, 0, -1]) == 1.0
    assert cluster_accuracy([0, 0, 1, 1], [-1, -1, -1, -1]) == 0.5


def test_accuracy_accepts_string_and_integral_float_labels():
    assert cluster_accuracy(["a", "a", "b"], [1.0, 1.0, 0.0]) == 1.0


@pytest.mark.parametrize(
    "y_true, y_pred, exc, match",
    [
        ([0, 1, 2], [0, 1], ValueError, "differ in length"),
        ([], [], ValueError, "empty"),
        ([[0, 1]], [[0, 1]], ValueError, "1-D"),
        ([0.0, np.nan], [0, 1], ValueError, "NaN"),
        ([0.5, 1.0], [0, 1], ValueError, "integer"),
        ([0j, 1j], [0, 1], TypeError, "dtype"),
    ],
)
def test_accuracy_bad_input(y_true, y_pred, exc, match):
    with pytest.raises(exc, match=match):
        cluster_accuracy(y_true, y_pred)


def _blobs(seed=0):
    rng = np.random.default_rng(seed)
    centers = np.array([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]])
    y = np.repeat(np.arange(3), 20)
    return centers[y] + rng.normal(size=(60, 2)), y


def test_evaluate_matches_sklearn():
    x, y = _blobs()
    pred = y.copy()
    pred[:3] = 1
    r = evaluate_clustering(x, pred, y)
    assert r["silhouette"] == pytest.approx(skm.silhouette_score(x, pred))
    assert r["calinski_harabasz"] == pytest.approx(skm.calinski_harabasz_score(x, pred))
    assert r["davies_bouldin"] == pytest.approx(skm.davies_bouldin_score(x, pred))
    assert r["ari"] == pytest.approx(skm.adjusted_rand_score(y, pred))
    assert r["nmi"] == pytest.approx(skm.normalized_mutual_info_score(y, pred))
    assert r["acc"] == pytest.approx(57 / 60)
    assert r["n_clusters"] == 3 and r["noise_fraction"] == 0.0


def test_evaluate_without_truth_has_no_external_scores():
    x, y = _blobs()
    r = evaluate_clustering(x, y)
    assert "ari" not in r and r["silhouette"] > 0.5


def test_noise_options():
    x, y = _blobs()
    pred = y.copy()
    pred[:6] = -1
    as_cluster = evaluate_clustering(x, pred, y, noise="cluster")
    excluded = evaluate_clustering(x, pred, y, noise="exclude")
    assert as_cluster["noise_fraction"] == excluded["noise_fraction"] == pytest.approx(0.1)
    assert as_cluster["n_clusters"] == excluded["n_clusters"] == 3
    # dropping the noise leaves a perfect partition of the kept points
    assert excluded["ari"] == pytest.approx(1.0) and excluded["acc"] == 1.0
    assert as_cluster["ari"] < 1.0
    assert as_cluster["acc"] == pytest.approx(54 / 60)


def test_degenerate_partitions_give_nan_internal_scores():
    x, y = _blobs()
    one = evaluate_clustering(x, np.zeros(60, dtype=int), y)
    assert np.isnan(one["silhouette"]) and np.isnan(one["davies_bouldin"])
    assert one["ari"] == pytest.approx(0.0)
    all_noise = evaluate_clustering(x, -np.ones(60, dtype=int), y, noise="exclude")
    assert np.isnan(all_noise["ari"]) and all_noise["noise_fraction"] == 1.0


def test_silhouette_sample_size_is_used():
    x, y = _blobs()
    r = evaluate_clustering(x, y, sample_size=30, random_state=1)
    assert r["silhouette"] == pytest.approx(
        skm.silhouette_score(x, y, sample_size=30, random_state=1))


@pytest.mark.parametrize(
    "features, pred, truth, kw, exc, match",
    [
        (np.zeros((4,)), [0, 0, 1, 1], None, {}, ValueError, "2-D"),
        (np.zeros((0, 2)), [], None, {}, ValueError, "empty"),
        (np.array([[0.0, np.nan], [1, 1], [2, 2]]), [0, 1, 1], None, {}, ValueError, "NaN"),
        (np.zeros((3, 2)), [0, 1], None, {}, ValueError, "labels_pred has 2"),
        (np.zeros((3, 2)), [0, 1, 1], [0, 1], {}, ValueError, "labels_true has 2"),
        (np.zeros((3, 2)), [0, 1, 1], None, {"noise": "drop"}, ValueError, "noise must be"),
        (np.array([["a", "b"]] * 3), [0, 1, 1], None, {}, TypeError, "numeric"),
    ],
)
def test_evaluate_bad_input(features, pred, truth, kw, exc, match):
    with pytest.raises(exc, match=match):
        evaluate_clustering(features, pred, truth, **kw)
