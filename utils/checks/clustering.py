"""Auto-checks for the feature-extraction and clustering exercises (see :func:`utils.checks.run_check`)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from .core import CheckResult, Spec, defined_by

__all__ = ["check_mean_pooling", "check_cluster_accuracy", "check_silhouette_point"]


def _pooling_edges():
    rng = np.random.default_rng(404)

    def tokens(mask):
        mask = torch.tensor(mask, dtype=torch.long)
        h = torch.tensor(rng.normal(size=tuple(mask.shape) + (3,)), dtype=torch.float32)
        return torch.where(mask.bool()[..., None], h, torch.full_like(h, 100.0)), mask

    def ordinary_padding(mask):  # padding that looks like real tokens: only the mask tells them apart
        mask = torch.tensor(mask, dtype=torch.long)
        return torch.tensor(rng.normal(size=tuple(mask.shape) + (3,)), dtype=torch.float32), mask

    return [
        ("texts of 1, 3 and 5 real tokens, padding holding 100",
         tokens([[1, 0, 0, 0, 0], [1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])),
        ("padding vectors that look like real tokens", ordinary_padding([[1, 1, 0, 0], [1, 0, 0, 0]])),
        ("a mask with holes (padding not only at the end)", tokens([[1, 0, 1, 1, 0], [0, 1, 1, 0, 1]])),
        ("no padding at all", tokens([[1, 1, 1, 1], [1, 1, 1, 1]])),
    ]


def _mean_pooling_spec() -> Spec:
    from ..pretrained import mean_pool

    def case(rng):
        b, length, d = int(rng.integers(1, 5)), int(rng.integers(2, 9)), int(rng.integers(1, 7))
        lengths = rng.integers(1, length + 1, size=b)  # every text keeps at least one token
        mask = torch.tensor(np.arange(length)[None, :] < lengths[:, None], dtype=torch.long)
        # padding positions hold large values of random size: they change the answer unless masked out
        h = torch.tensor(rng.normal(size=(b, length, d)), dtype=torch.float32)
        pad = torch.tensor(rng.uniform(20, 200, size=(b, length, d)), dtype=torch.float32)
        h = torch.where(mask.bool()[..., None], h, pad)
        return h, mask

    return Spec("check_mean_pooling", mean_pool, case, edge_cases=_pooling_edges(),
                atol=1e-5,
                hint="multiply the token vectors by mask[..., None], sum over the token axis, "
                     "then divide by each text's number of real tokens mask.sum(1, "
                     "keepdim=True).")


@defined_by(_mean_pooling_spec)
def check_mean_pooling(student: Callable, *, seed: int | None = None, verbose: bool = True,
                       time_limit: float | None = 10.0) -> CheckResult:
    """Check ``student(token_embeddings, attention_mask) -> (B, D)``, a masked mean over tokens.

    Edge cases: texts of different lengths with padding holding 100 (no mask, or
    dividing by L or by the batch's token count, fails), padding that looks like real
    tokens (dropping tokens by their value fails), a mask with holes (slicing
    the first ``length`` tokens fails) and no padding. The time limit only applies
    on the main thread of a Unix process.
    """
    return _mean_pooling_spec().run(student, seed=seed, verbose=verbose, time_limit=time_limit)


def _accuracy_edges():
    a = np.array
    return [
        ("a perfect labelling under other cluster names",
         (a([0, 0, 1, 1, 1, 2, 2]), a([5, 5, 3, 3, 3, 4, 4]))),
        ("every label wrong, but a relabelling of the classes (accuracy 1)",
         (a([0, 0, 1, 1, 2, 2, 2]), a([1, 1, 2, 2, 0, 0, 0]))),
        ("an all-wrong labelling: every cluster mixes the classes evenly",
         (a([0, 1, 2, 0, 1, 2]), a([0, 0, 0, 1, 1, 1]))),
        # the best one-to-one map uses 2 of the 4 clusters: 4 of 8, not 8 of 8 by majority vote
        ("more clusters (4) than classes (2)",
         (a([0, 0, 0, 0, 1, 1, 1, 1]), a([0, 0, 1, 1, 2, 2, 3, 3]))),
        ("more classes (4) than clusters (2), labels not starting at 0",
         (a([3, 3, 5, 5, 7, 7, 9, 9]), a([10, 10, 10, 20, 20, 20, 20, 10]))),
        # -1 is a cluster of its own: matched to class 2 here, and the noise points count in n
        ("noise label -1", (a([0, 0, 0, 1, 1, 1, 2, 2, 2, 2]), a([0, 0, -1, 1, 1, -1, -1, -1, -1, 0]))),
        # table [[3, 2], [2, 0]]: taking the largest cell first gives 3 of 7, the best map 4 of 7
        ("a greedy matching (largest cell first) is not the best one",
         (a([0, 0, 0, 1, 1, 0, 0]), a([0, 0, 0, 0, 0, 1, 1]))),
        # indexing a table by the label value puts -1 into the last row (cluster 2): 2 of 6, not 4 of 6
        ("noise label -1 next to the largest cluster label",
         (a([0, 0, 1, 1, 2, 2]), a([-1, -1, 2, 2, 2, 2]))),
    ]


def _cluster_accuracy_spec() -> Spec:
    from ..metrics.clustering import cluster_accuracy

    def case(rng):
        n, n_classes, n_clusters = int(rng.integers(5, 60)), int(rng.integers(2, 6)), \
            int(rng.integers(2, 7))
        y_true = rng.integers(0, n_classes, size=n)
        # a noisy relabelling of the truth, with some noise points (-1)
        perm = rng.permutation(max(n_classes, n_clusters))[:n_classes] % n_clusters
        y_pred = np.where(rng.random(n) < 0.7, perm[y_true], rng.integers(-1, n_clusters, size=n))
        return y_true, y_pred

    return Spec("check_cluster_accuracy", cluster_accuracy, case,
                edge_cases=_accuracy_edges(), atol=1e-9,
                hint="build the table C[k, c] of points in cluster k and class c, find the "
                     "one-to-one matching of clusters to classes with the largest matched "
                     "count (itertools.permutations, or scipy.optimize.linear_sum_assignment("
                     "C, maximize=True)), and divide it by n, noise points included. Treat -1 "
                     "as an ordinary cluster label.")


@defined_by(_cluster_accuracy_spec)
def check_cluster_accuracy(student: Callable, *, seed: int | None = None, verbose: bool = True,
                           time_limit: float | None = 10.0) -> CheckResult:
    """Check ``student(y_true, y_pred) -> float``, accuracy after the best one-to-one matching.

    Edge cases: a perfect labelling under other names, a labelling whose every label is
    a wrong name (accuracy 1 after matching, 0 without), an all-wrong (evenly mixed)
    labelling, more clusters than classes (a many-to-one majority vote fails), more
    classes than clusters, the noise label -1 (dropping noise points fails) and a table
    on which a greedy matching (largest cell first) is not optimal. At most
    7 distinct labels, so brute force over permutations is fine. The time limit only
    applies on the main thread of a Unix process.
    """
    return _cluster_accuracy_spec().run(student, seed=seed, verbose=verbose, time_limit=time_limit)


def _silhouette_edges():
    a = np.array
    # point 0 has two exact duplicates: a = 0, so s = 1 (excluding "itself" with d > 0 fails)
    ties = a([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [3.0, 4.0], [3.0, 5.0], [-6.0, 0.0], [-6.0, 1.0]])
    # the nearest single point (cluster 1) is not in the nearest cluster on average (cluster 2)
    far = a([[0.0], [0.4], [1.0], [100.0], [-5.0], [-5.5], [-4.5]])
    return [
        ("point 0 alone in its cluster (s = 0)",
         (a([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [5.0, 5.0], [5.0, 6.0]]), a([0, 1, 1, 2, 2]), 0)),
        ("a point whose cluster is all ties (duplicates of it: a = 0, s = 1)",
         (ties, a([0, 0, 0, 1, 1, 2, 2]), 0)),
        ("b is the smallest *mean* distance to another cluster, labels 3, 7, 9",
         (far, a([3, 3, 7, 7, 9, 9, 9]), 0)),
        ("a cluster of two points (a divides by size - 1 = 1)",
         (a([[0.0], [2.0], [5.0], [6.0], [7.0]]), a([0, 0, 1, 1, 1]), 1)),
        # one duplicate and one other point: a = (0 + 2) / 2 = 1, not 2
        ("a cluster with one duplicate of point i and one other point",
         (a([[0.0, 0.0], [0.0, 0.0], [2.0, 0.0], [10.0, 0.0], [11.0, 0.0]]), a([0, 0, 0, 1, 1]), 0)),
        # a = 10 > b = 1.5: s = (b - a) / a = -0.85, so dividing by b (or 1 - a / b) fails
        ("a point closer to another cluster than to its own (s < 0)",
         (a([[0.0], [10.0], [1.0], [2.0]]), a([0, 0, 1, 1]), 0)),
        # nearest by mean distance: cluster 2 (3.25); nearest by centroid: cluster 1 (centroid 0)
        ("the nearest cluster by mean distance is not the one with the nearest centroid",
         (a([[0.0], [1.0], [-10.0], [10.0], [3.0], [3.5]]), a([0, 0, 1, 1, 2, 2]), 0)),
        # the singleton cluster 1 is the nearest other cluster of point 0: b = 2, s = 0.5
        ("the nearest other cluster is a singleton",
         (a([[0.0], [1.0], [2.0], [10.0], [11.0]]), a([0, 0, 1, 2, 2]), 0)),
    ]


def _silhouette_point_spec() -> Spec:
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

    return Spec("check_silhouette_point", reference, case,
                edge_cases=_silhouette_edges(), atol=1e-8,
                hint="a = mean distance to the *other* points of its own cluster (divide by "
                     "size - 1; exclude point i by index, not by distance 0), b = the smallest "
                     "mean distance to the points of another cluster, s = (b - a) / max(a, b); "
                     "a point alone in its cluster has s = 0.")


@defined_by(_silhouette_point_spec)
def check_silhouette_point(student: Callable, *, seed: int | None = None, verbose: bool = True,
                           time_limit: float | None = 10.0) -> CheckResult:
    """Check ``student(x, labels, i) -> float``, the silhouette of point ``i`` (Euclidean).

    Edge cases: a point alone in its cluster (s = 0, not NaN), a point whose cluster is
    all exact duplicates of it (a = 0, s = 1), a nearest point that is not in the
    nearest cluster on average with labels 3, 7, 9, a two-point cluster (dividing
    by the cluster size instead of size - 1 fails), a cluster holding one duplicate of
    the point and one other point (excluding the point by distance 0 fails) and a
    negative silhouette (dividing by ``b`` instead of ``max(a, b)`` fails). The time limit only applies on the
    main thread of a Unix process.
    """
    return _silhouette_point_spec().run(student, seed=seed, verbose=verbose, time_limit=time_limit)
