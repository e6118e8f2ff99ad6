"""Clustering methods side by side: one runner, one tidy table.

:func:`compare` runs several methods on several representations of the same
points and returns a pandas DataFrame with one row per (representation, method):
the clusters found, the noise fraction, the external scores (ARI, NMI,
Hungarian-matched accuracy) if true labels are given, the internal scores, and
the wall-clock seconds.

A method name may carry a reduction prefix: ``"umap+hdbscan"`` first maps the
representation with UMAP, then clusters the result. Each reduction is computed
once per representation and shared by the methods that use it; its time is
added to each of those rows. Internal scores are always computed in the
representation's *own* space (before any reduction), so rows of one
representation can be compared with each other.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping, Sequence

import numpy as np

from . import runtime
from .metrics.clustering import evaluate_clustering

__all__ = ["REDUCERS", "METHODS", "reduce", "cluster", "compare"]

REDUCERS = ("pca", "umap", "tsne")
METHODS = ("kmeans", "gmm", "ward", "spectral", "dbscan", "hdbscan")
_NEEDS_K = {"kmeans", "gmm", "ward", "spectral"}


def _features(x, name: str = "features") -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, n_features), got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} is empty: shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"{name} must be numeric, got dtype {arr.dtype}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contain NaN or infinite values")
    return arr.astype(np.float32, copy=False)


def _one_openmp_thread(fn):
    """Run ``fn`` on one thread (torch, BLAS and OpenMP, through :func:`utils.runtime.threads`).

    scikit-learn's OpenMP loops (k-means, t-SNE) were several times *slower* with two
    threads than with one on the book's 2-core machine (threads spinning while they wait),
    on data of this size one thread is fast, and a fixed count gives the same clusters on
    every machine. The limit is lifted on return.
    """
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with runtime.threads(1):
            return fn(*args, **kwargs)

    return wrapper


@_one_openmp_thread
def reduce(x, how: str, *, n_components: int | None = None, seed: int = 0, **params) -> np.ndarray:
    """Map ``x`` to fewer dimensions with ``"pca"``, ``"umap"`` or ``"tsne"``.

    Defaults: PCA to 30 dimensions; UMAP to 10 dimensions with ``n_neighbors=30`` and
    ``min_dist=0`` (settings that favour clustering over pretty pictures); t-SNE to 2,
    initialised by PCA, with 500 iterations (half sklearn's default, to save time).
    UMAP runs with ``n_jobs=1`` and a fixed ``random_state``, so it is deterministic.
    Extra ``params`` go to the estimator.
    """
    x = _features(x)
    if how == "pca":
        from sklearn.decomposition import PCA

        k = n_components or 30
        if k > min(x.shape):
            raise ValueError(f"PCA n_components={k} > min(n_samples, n_features)={min(x.shape)}")
        return PCA(k, random_state=seed, **params).fit_transform(x)
    if how == "umap":
        from umap import UMAP

        kw = {"n_neighbors": 30, "min_dist": 0.0, **params}
        if kw["n_neighbors"] >= len(x):
            raise ValueError(f"UMAP n_neighbors={kw['n_neighbors']} needs more than "
                             f"{len(x)} points")
        return UMAP(n_components=n_components or 10, random_state=seed, n_jobs=1,
                    **kw).fit_transform(x)
    if how == "tsne":
        from sklearn.manifold import TSNE

        kw = {"perplexity": 30.0, "init": "pca", "max_iter": 500, **params}
        if kw["perplexity"] >= len(x):
            raise ValueError(f"t-SNE perplexity={kw['perplexity']} must be < n_samples={len(x)}")
        return TSNE(n_components=n_components or 2, random_state=seed, **kw).fit_transform(x)
    raise ValueError(f"unknown reduction {how!r}; choose from {REDUCERS}")


@_one_openmp_thread
def cluster(x, method: str, n_clusters: int | None = None, *, seed: int = 0,
            **params) -> np.ndarray:
    """Cluster the rows of ``x``; return integer labels (``-1`` marks noise).

    ``kmeans`` (10 restarts), ``gmm`` (full covariances, one k-means start), ``ward``
    (agglomerative, Ward linkage) and ``spectral`` (a 15-nearest-neighbour graph)
    need ``n_clusters``. ``dbscan`` needs ``eps`` (default 0.5) and ``hdbscan``
    takes ``min_cluster_size`` (default 15); both find the number of clusters
    themselves and may leave points as noise. Extra ``params`` go to the estimator.
    """
    from sklearn import cluster as skc
    from sklearn.mixture import GaussianMixture

    x = _features(x)
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {METHODS}")
    if method in _NEEDS_K:
        if not isinstance(n_clusters, int | np.integer) or n_clusters < 1:
            raise ValueError(f"{method} needs n_clusters as a positive int, got {n_clusters!r}")
        if n_clusters > len(x):
            raise ValueError(f"n_clusters={n_clusters} is larger than the {len(x)} points")
    if method == "kmeans":
        est = skc.KMeans(n_clusters, random_state=seed, **{"n_init": 10, **params})
    elif method == "gmm":
        kw = {"covariance_type": "full", "n_init": 1, "reg_covar": 1e-3, **params}
        return GaussianMixture(n_clusters, random_state=seed, **kw).fit(x).predict(x)
    elif method == "ward":
        est = skc.AgglomerativeClustering(n_clusters, linkage="ward", **params)
    elif method == "spectral":
        kw = {"affinity": "nearest_neighbors", "n_neighbors": 15,
              "assign_labels": "cluster_qr", **params}
        if kw.get("affinity") == "nearest_neighbors" and kw["n_neighbors"] >= len(x):
            raise ValueError(f"spectral n_neighbors={kw['n_neighbors']} needs more than "
                             f"{len(x)} points")
        est = skc.SpectralClustering(n_clusters, random_state=seed, **kw)
    elif method == "dbscan":
        est = skc.DBSCAN(**{"eps": 0.5, "min_samples": 10, **params})
    else:
        est = skc.HDBSCAN(**{"min_cluster_size": 15, "copy": True, **params})
    return np.asarray(est.fit_predict(x), dtype=np.int64)


def _parse(name: str) -> tuple[str | None, str]:
    reduction, _, method = name.rpartition("+")
    if reduction and reduction not in REDUCERS:
        raise ValueError(f"unknown reduction {reduction!r} in {name!r}; choose from {REDUCERS}")
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r} in {name!r}; choose from {METHODS}")
    return reduction or None, method


def compare(representations: Mapping[str, np.ndarray], labels_true=None, *,
            methods: Sequence[str] | Mapping[str, Sequence[str]] = ("kmeans", "ward", "gmm"),
            n_clusters: int | None = None,
            seed: int = 0, noise: str = "cluster", params: Mapping[str, dict] | None = None,
            reduce_params: Mapping[str, dict] | None = None,
            sample_size: int | None = None, return_details: bool = False):
    """Run every method on every representation; return one tidy DataFrame.

    ``representations`` maps a name to an ``(n, d)`` array (same ``n`` for all).
    ``methods`` are names from ``METHODS``, optionally prefixed by a reduction
    (``"umap+hdbscan"``, ``"tsne+kmeans"``), run on every representation; or a mapping
    from representation name to its own list (to skip costly runs). ``params`` maps a method name (with
    its prefix, e.g. ``"umap+hdbscan"``, or without, e.g. ``"dbscan"``) to extra
    keyword arguments; ``reduce_params`` does the same for reductions. ``noise``
    is passed to :func:`utils.metrics.evaluate_clustering`.

    Columns: ``representation``, ``method``, ``clusters`` (found, noise excluded),
    ``noise_fraction``, ``ari``, ``nmi``, ``acc`` (with ``labels_true``),
    ``silhouette``, ``calinski_harabasz``, ``davies_bouldin``, ``seconds``.
    With ``return_details=True`` the result is ``(frame, details)``, where
    ``details["labels"][(representation, method)]`` holds each predicted labelling and
    ``details["reduced"][(representation, reduction)]`` each reduced array, for reuse.
    """
    import pandas as pd

    if not representations:
        raise ValueError("representations is empty: pass at least one named feature array")
    feats = {name: _features(x, f"representation {name!r}") for name, x in
             representations.items()}
    if isinstance(methods, Mapping):
        unknown = set(methods) - set(feats)
        if unknown:
            raise ValueError(f"methods names unknown representations: {sorted(unknown)}")
        plan = {rep: list(methods.get(rep, ())) for rep in feats}
    else:
        plan = {rep: methods for rep in feats}
    if any(isinstance(m, str) for m in plan.values()) or not any(plan.values()):
        raise ValueError("methods must be a non-empty list of method names (or a mapping "
                         "from representation to such a list)")
    parsed = {rep: [(m, *_parse(m)) for m in ms] for rep, ms in plan.items()}
    sizes = {len(x) for x in feats.values()}
    if len(sizes) != 1:
        raise ValueError(f"representations differ in their number of rows: "
                         f"{ {k: len(v) for k, v in feats.items()} }")
    n = sizes.pop()
    if labels_true is not None and len(labels_true) != n:
        raise ValueError(f"labels_true has {len(labels_true)} labels for {n} points")
    params = dict(params or {})
    reduce_params = dict(reduce_params or {})
    rows, all_labels, all_reduced = [], {}, {}
    for rep, x in feats.items():
        reduced: dict[str, tuple[np.ndarray, float]] = {}
        for full, reduction, method in parsed[rep]:
            z, t_reduce = x, 0.0
            if reduction is not None:
                if reduction not in reduced:
                    t0 = time.perf_counter()
                    out = reduce(x, reduction, seed=seed, **reduce_params.get(reduction, {}))
                    reduced[reduction] = (out, time.perf_counter() - t0)
                z, t_reduce = reduced[reduction]
            kw = params.get(full, params.get(method, {}))
            t0 = time.perf_counter()
            pred = cluster(z, method, n_clusters, seed=seed, **kw)
            seconds = time.perf_counter() - t0 + t_reduce
            scores = evaluate_clustering(x, pred, labels_true, noise=noise,
                                         sample_size=sample_size, random_state=seed)
            all_labels[rep, full] = pred
            rows.append({"representation": rep, "method": full,
                         "clusters": scores.pop("n_clusters"), **scores, "seconds": seconds})
        all_reduced.update({(rep, how): z for how, (z, _) in reduced.items()})
    cols = ["representation", "method", "clusters", "noise_fraction", "ari", "nmi", "acc",
            "silhouette", "calinski_harabasz", "davies_bouldin", "seconds"]
    df = pd.DataFrame(rows)
    df = df[[c for c in cols if c in df.columns]]
    if return_details:
        return df, {"labels": all_labels, "reduced": all_reduced}
    return df
