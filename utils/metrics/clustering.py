"""Clustering metrics: Hungarian-matched accuracy and one function for all the usual scores.

Internal metrics judge a partition from the features alone (silhouette,
Calinski-Harabasz, Davies-Bouldin); external metrics compare it with hidden true
labels (ARI, NMI, accuracy after matching clusters to classes).

Density-based methods (DBSCAN, HDBSCAN) mark some points as *noise* with the
label ``-1``. :func:`evaluate_clustering` makes the choice explicit:

* ``noise="cluster"`` (default): ``-1`` is one more cluster. Every point is
  scored, so a method cannot look good by discarding the hard points.
* ``noise="exclude"``: noise points are dropped before scoring. The scores then
  describe only the points the method kept; read them next to ``noise_fraction``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["cluster_accuracy", "evaluate_clustering"]

_NOISE_OPTIONS = ("cluster", "exclude")


def _labels(y, name: str) -> np.ndarray:
    """Validate a 1-D label vector (integers or strings, no NaN)."""
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise ValueError(f"{name} contains NaN or infinite labels")
        if not np.all(arr == np.round(arr)):
            raise ValueError(f"{name} must hold integer labels, got non-integer floats")
        arr = arr.astype(np.int64)
    elif arr.dtype.kind not in "iubUSO":
        raise TypeError(f"{name} must hold integer or string labels, got dtype {arr.dtype}")
    return arr


def cluster_accuracy(y_true, y_pred) -> float:
    """Accuracy after the best one-to-one matching of clusters to classes.

    Builds the contingency table ``C[k, c]`` (points of cluster ``k`` in class
    ``c``) and finds the matching that maximises the matched counts with the
    Hungarian algorithm (:func:`scipy.optimize.linear_sum_assignment`). Works when
    the numbers of clusters and classes differ: unmatched clusters count as
    wrong. A noise label such as ``-1`` is treated as a cluster of its own.

    Raises ``ValueError`` if the two vectors differ in length or are empty.
    """
    from scipy.optimize import linear_sum_assignment

    yt = _labels(y_true, "y_true")
    yp = _labels(y_pred, "y_pred")
    if len(yt) != len(yp):
        raise ValueError(f"y_true and y_pred differ in length: {len(yt)} vs {len(yp)}")
    _, ti = np.unique(yt, return_inverse=True)
    _, pi = np.unique(yp, return_inverse=True)
    table = np.zeros((pi.max() + 1, ti.max() + 1), dtype=np.int64)
    np.add.at(table, (pi, ti), 1)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(table[rows, cols].sum() / len(yt))


def evaluate_clustering(features, labels_pred, labels_true=None, *, noise: str = "cluster",
                        sample_size: int | None = None, random_state: int = 0) -> dict:
    """Internal and (if ``labels_true`` is given) external scores of one partition.

    Returns a dict with ``n_clusters`` (clusters other than noise), ``noise_fraction``,
    ``silhouette`` (higher is better, in [-1, 1]), ``calinski_harabasz`` (higher is
    better), ``davies_bouldin`` (lower is better) and, with true labels, ``ari``,
    ``nmi`` and ``acc`` (Hungarian-matched accuracy).

    ``noise`` says how points labelled ``-1`` are scored: ``"cluster"`` keeps them
    as one more cluster, ``"exclude"`` drops them (see the module docstring).
    Internal scores are NaN when fewer than two clusters, or as many clusters as
    points, remain. ``sample_size`` subsamples the silhouette (O(n^2) memory).
    """
    from sklearn import metrics as skm

    if noise not in _NOISE_OPTIONS:
        raise ValueError(f"noise must be one of {_NOISE_OPTIONS}, got {noise!r}")
    x = np.asarray(features)
    if x.ndim != 2:
        raise ValueError(f"features must be 2-D (n_samples, n_features), got shape {x.shape}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"features is empty: shape {x.shape}")
    if not np.issubdtype(x.dtype, np.number):
        raise TypeError(f"features must be numeric, got dtype {x.dtype}")
    if not np.isfinite(x).all():
        raise ValueError("features contain NaN or infinite values")
    yp = _labels(labels_pred, "labels_pred")
    if len(yp) != len(x):
        raise ValueError(f"labels_pred has {len(yp)} labels for {len(x)} feature rows")
    yt = None
    if labels_true is not None:
        yt = _labels(labels_true, "labels_true")
        if len(yt) != len(x):
            raise ValueError(f"labels_true has {len(yt)} labels for {len(x)} feature rows")

    is_noise = (yp == -1) if yp.dtype.kind in "iu" else np.zeros(len(yp), dtype=bool)
    out: dict[str, float] = {
        "n_clusters": int(len(np.unique(yp[~is_noise]))),
        "noise_fraction": float(is_noise.mean()),
    }
    keep = ~is_noise if noise == "exclude" else np.ones(len(yp), dtype=bool)
    xk, ypk = x[keep], yp[keep]
    n_labels = len(np.unique(ypk)) if len(ypk) else 0
    if 2 <= n_labels <= len(ypk) - 1:
        size = sample_size if sample_size is not None and sample_size < len(ypk) else None
        out["silhouette"] = float(skm.silhouette_score(xk, ypk, sample_size=size,
                                                       random_state=random_state))
        out["calinski_harabasz"] = float(skm.calinski_harabasz_score(xk, ypk))
        out["davies_bouldin"] = float(skm.davies_bouldin_score(xk, ypk))
    else:
        out.update(silhouette=float("nan"), calinski_harabasz=float("nan"),
                   davies_bouldin=float("nan"))
    if yt is not None:
        ytk = yt[keep]
        if len(ytk) == 0:
            out.update(ari=float("nan"), nmi=float("nan"), acc=float("nan"))
        else:
            out["ari"] = float(skm.adjusted_rand_score(ytk, ypk))
            out["nmi"] = float(skm.normalized_mutual_info_score(ytk, ypk))
            out["acc"] = cluster_accuracy(ytk, ypk)
    return out
