"""Tests for utils.clustering: reductions, methods and the comparison runner."""

import numpy as np
import pytest

from utils.clustering import METHODS, cluster, compare, reduce


def _blobs(n_per=30, seed=0):
    rng = np.random.default_rng(seed)
    centers = np.array([[0.0, 0.0, 0.0], [8.0, 0.0, 0.0], [0.0, 8.0, 0.0]])
    y = np.repeat(np.arange(3), n_per)
    return (centers[y] + rng.normal(size=(len(y), 3))).astype(np.float32), y


@pytest.mark.parametrize("method", METHODS)
def test_every_method_finds_well_separated_blobs(method):
    from sklearn.metrics import adjusted_rand_score

    x, y = _blobs()
    kw = {"eps": 2.0, "min_samples": 5} if method == "dbscan" else {}
    if method == "hdbscan":
        kw = {"min_cluster_size": 10}
    if method == "spectral":
        kw = {"n_neighbors": 40}  # a connected graph (the blobs are far apart)
    pred = cluster(x, method, 3, **kw)
    assert pred.shape == y.shape and pred.dtype == np.int64
    assert adjusted_rand_score(y, pred) > 0.9


def test_method_defaults_can_be_overridden():
    x, y = _blobs()
    assert np.array_equal(cluster(x, "kmeans", 3, n_init=1), cluster(x, "kmeans", 3, n_init=1))
    assert cluster(x, "gmm", 3, n_init=1, covariance_type="diag").shape == y.shape


def test_methods_are_deterministic():
    x, _ = _blobs()
    for method in ("kmeans", "gmm", "spectral"):
        kw = {"n_neighbors": 40} if method == "spectral" else {}
        assert np.array_equal(cluster(x, method, 3, seed=1, **kw), cluster(x, method, 3, seed=1, **kw))


@pytest.mark.parametrize("how, shape", [("pca", (90, 2)), ("umap", (90, 2)), ("tsne", (90, 2))])
def test_reductions(how, shape):
    x, _ = _blobs()
    kw = {"n_neighbors": 10} if how == "umap" else {}
    if how == "tsne":
        kw = {"perplexity": 10.0, "max_iter": 250}
    z = reduce(x, how, n_components=2, **kw)
    assert z.shape == shape and np.isfinite(z).all()
    assert np.allclose(z, reduce(x, how, n_components=2, **kw))  # deterministic


def test_compare_table():
    x, y = _blobs()
    df, details = compare({"raw": x, "noisy": x + 0.5}, y, n_clusters=3,
                          methods=["kmeans", "ward", "pca+kmeans", "hdbscan"],
                          reduce_params={"pca": {"n_components": 2}},
                          params={"hdbscan": {"min_cluster_size": 10}}, return_details=True)
    assert len(df) == 8
    assert list(df.columns[:3]) == ["representation", "method", "clusters"]
    assert {"ari", "nmi", "acc", "silhouette", "calinski_harabasz", "davies_bouldin", "seconds",
            "noise_fraction"} <= set(df.columns)
    assert (df.loc[df.method == "kmeans", "ari"] > 0.9).all()
    assert (df["seconds"] >= 0).all()
    # labels and reductions are kept for reuse
    assert np.array_equal(details["labels"]["raw", "kmeans"], cluster(x, "kmeans", 3))
    assert details["reduced"]["noisy", "pca"].shape == (90, 2)
    assert set(details["labels"]) == {(r, m) for r in ("raw", "noisy")
                                      for m in ("kmeans", "ward", "pca+kmeans", "hdbscan")}
    assert len(df.sort_values("ari").round(3)) == 8  # a plain DataFrame


def test_compare_per_representation_methods_and_no_truth():
    x, _ = _blobs()
    df = compare({"a": x, "b": x[:, :2]}, methods={"a": ["kmeans"], "b": ["ward", "gmm"]}, n_clusters=3)
    assert df[["representation", "method"]].values.tolist() == [["a", "kmeans"], ["b", "ward"], ["b", "gmm"]]
    assert "ari" not in df.columns


def test_compare_noise_option_is_passed_on():
    x, y = _blobs()
    x = np.vstack([x, [[40.0, 40.0, 40.0]]]).astype(np.float32)  # one far outlier
    y = np.append(y, 0)
    kw = {"params": {"dbscan": {"eps": 2.0, "min_samples": 5}}, "methods": ["dbscan"]}
    as_cluster = compare({"x": x}, y, noise="cluster", **kw).iloc[0]
    excluded = compare({"x": x}, y, noise="exclude", **kw).iloc[0]
    assert as_cluster["noise_fraction"] > 0
    assert excluded["ari"] >= as_cluster["ari"]


@pytest.mark.parametrize("kwargs, exc, match", [
    ({"x": np.zeros((0, 3)), "method": "kmeans", "n_clusters": 2}, ValueError, "empty"),
    ({"x": np.zeros(5), "method": "kmeans", "n_clusters": 2}, ValueError, "2-D"),
    ({"x": np.array([[0.0], [np.nan]]), "method": "kmeans", "n_clusters": 1}, ValueError, "NaN"),
    ({"x": np.zeros((5, 2)), "method": "kmeans", "n_clusters": 6}, ValueError, "larger than"),
    ({"x": np.zeros((5, 2)), "method": "kmeans", "n_clusters": None}, ValueError, "n_clusters"),
    ({"x": np.zeros((5, 2)), "method": "kmedoids", "n_clusters": 2}, ValueError, "unknown method"),
    ({"x": np.zeros((5, 2)), "method": "spectral", "n_clusters": 2}, ValueError, "n_neighbors"),
    ({"x": np.array([["a"], ["b"]]), "method": "kmeans", "n_clusters": 1}, TypeError, "numeric"),
])
def test_cluster_bad_input(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        cluster(kwargs.pop("x"), **kwargs)


@pytest.mark.parametrize("how, kw, match", [
    ("svd", {}, "unknown reduction"),
    ("pca", {"n_components": 10}, "n_components"),
    ("umap", {}, "n_neighbors"),
    ("tsne", {}, "perplexity"),
])
def test_reduce_bad_input(how, kw, match):
    with pytest.raises(ValueError, match=match):
        reduce(np.random.default_rng(0).normal(size=(8, 3)), how, **kw)


@pytest.mark.parametrize("reps, kw, match", [
    ({}, {}, "representations is empty"),
    ({"a": np.zeros((4, 2)), "b": np.zeros((5, 2))}, {}, "number of rows"),
    ({"a": np.zeros((4, 2))}, {"methods": "kmeans"}, "non-empty list"),
    ({"a": np.zeros((4, 2))}, {"methods": []}, "non-empty list"),
    ({"a": np.zeros((4, 2))}, {"methods": {"zz": ["kmeans"]}}, "unknown representations"),
    ({"a": np.zeros((4, 2))}, {"methods": ["svd+kmeans"]}, "unknown reduction"),
    ({"a": np.zeros((4, 2))}, {"methods": ["pca+kmedoids"]}, "unknown method"),
    ({"a": np.zeros((4, 2))}, {"labels_true": [0, 1]}, "labels_true has 2"),
])
def test_compare_bad_input(reps, kw, match):
    with pytest.raises(ValueError, match=match):
        compare(reps, n_clusters=2, **kw)


def test_clustering_checks_pass_the_reference_and_catch_mistakes(capsys):
    from scipy.spatial.distance import cdist

    from utils import checks
    from utils.metrics import cluster_accuracy
    from utils.pretrained import mean_pool

    def silhouette_point(x, labels, i):
        d = cdist(x[i:i + 1], x)[0]
        own = labels == labels[i]
        if own.sum() == 1:
            return 0.0
        a = d[own].sum() / (own.sum() - 1)
        b = min(d[labels == c].mean() for c in np.unique(labels) if c != labels[i])
        return (b - a) / max(a, b)

    assert checks.check_mean_pooling(mean_pool, seed=0)
    assert checks.check_cluster_accuracy(cluster_accuracy, seed=0)
    assert checks.check_silhouette_point(silhouette_point, seed=0)
    assert not checks.check_mean_pooling(lambda h, m: h.mean(1), seed=0)
    assert not checks.check_cluster_accuracy(lambda a, b: float(np.mean(a == b)), seed=0)
    # the classic slip: dividing by the cluster size instead of size - 1
    assert not checks.check_silhouette_point(
        lambda x, lab, i: silhouette_point(x, lab, i) * 0.9, seed=0)
    assert "❌" in capsys.readouterr().out
