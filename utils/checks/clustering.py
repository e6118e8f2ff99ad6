"""Auto-checks for the feature-extraction and clustering exercises (see :func:`utils.checks.run_check`)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from .core import run_check

__all__ = ["check_mean_pooling", "check_cluster_accuracy", "check_silhouette_point"]


def check_mean_pooling(student: Callable, **kw) -> bool:
    """Check ``student(token_embeddings, attention_mask) -> (B, D)``, a masked mean over tokens."""
    from ..pretrained import mean_pool

    def case(rng):
        b, length, d = int(rng.integers(1, 5)), int(rng.integers(2, 9)), int(rng.integers(1, 7))
        lengths = rng.integers(1, length + 1, size=b)  # every text keeps at least one token
        mask = torch.tensor(np.arange(length)[None, :] < lengths[:, None], dtype=torch.long)
        # padding positions hold large values: they change the answer unless masked out
        h = torch.tensor(rng.normal(size=(b, length, d)), dtype=torch.float32)
        h = torch.where(mask.bool()[..., None], h, torch.full_like(h, 100.0))
        return h, mask

    return run_check("mean pooling", student, mean_pool, case, atol=1e-5,
                     hint="multiply the token vectors by mask[..., None], sum over the token axis, "
                          "then divide by the number of real tokens mask.sum(1, keepdim=True).",
                     **kw)


def check_cluster_accuracy(student: Callable, **kw) -> bool:
    """Check ``student(y_true, y_pred) -> float``, accuracy after Hungarian matching."""
    from ..metrics.clustering import cluster_accuracy

    def case(rng):
        n, n_classes, n_clusters = int(rng.integers(5, 60)), int(rng.integers(2, 6)), \
            int(rng.integers(2, 7))
        y_true = rng.integers(0, n_classes, size=n)
        # a noisy relabelling of the truth, with some noise points (-1)
        perm = rng.permutation(max(n_classes, n_clusters))[:n_classes] % n_clusters
        y_pred = np.where(rng.random(n) < 0.7, perm[y_true], rng.integers(-1, n_clusters, size=n))
        return y_true, y_pred

    return run_check("cluster accuracy", student, cluster_accuracy, case, atol=1e-9,
                     hint="build the table C[k, c] of points in cluster k and class c, call "
                          "scipy.optimize.linear_sum_assignment(C, maximize=True), and divide the "
                          "matched counts by n. Treat -1 as an ordinary cluster label.", **kw)


def check_silhouette_point(student: Callable, **kw) -> bool:
    """Check ``student(x, labels, i) -> float``, the silhouette of point ``i`` (Euclidean)."""
    from sklearn.metrics import silhouette_samples

    def case(rng):
        n, d, k = int(rng.integers(6, 40)), int(rng.integers(1, 5)), int(rng.integers(2, 5))
        labels = np.concatenate([np.arange(k), rng.integers(0, k, size=n - k)])
        x = rng.normal(size=(n, d)) + 3.0 * labels[:, None]
        if rng.random() < 0.3:  # sometimes a point alone in its cluster: s = 0 by convention
            labels[0] = k
        return x, labels, int(rng.integers(0, n))

    def reference(x, labels, i):
        return float(silhouette_samples(x, labels)[i])

    return run_check("silhouette of one point", student, reference, case, atol=1e-8,
                     hint="a = mean distance to the *other* points of its own cluster, b = the "
                          "smallest mean distance to the points of another cluster, s = (b - a) / "
                          "max(a, b); a point alone in its cluster has s = 0.", **kw)
