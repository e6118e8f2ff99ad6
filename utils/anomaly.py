r"""Anomaly detection in one time series: windows, point scores, the matrix profile, the UCR rule.

A detector scores *subsequences* (windows of ``m`` points); :func:`scores_to_points`
maps those scores back to time points, where the labels live. Two ways to judge
point scores:

* :func:`ucr_hit`, the UCR Anomaly Archive's rule: the single top-scoring point
  counts as correct when it lies in the labelled region widened by ``tolerance``
  points on each side;
* :func:`auc_pr`, the area under the precision-recall curve of the point labels
  (scikit-learn's average precision), which needs no threshold.

The matrix profile (Yeh et al., 2016) holds, for every subsequence, the
z-normalised Euclidean distance to its nearest neighbour elsewhere in the series;
its maximum, the *discord*, is the subsequence least like any other.
:func:`distance_profile` computes one row from sliding dot products and
:func:`matrix_profile` all rows with the STOMP update of those dot products.
"""

from __future__ import annotations

import math

import numpy as np

from .data import sliding_windows

__all__ = ["check_series", "subsequences", "scores_to_points", "distance_profile",
           "matrix_profile", "anomaly_region", "ucr_hit", "auc_pr"]


def check_series(series, name: str = "series") -> np.ndarray:
    """The one series validator: a non-empty, finite, real 1-D array, returned as float64.

    Raises ``TypeError`` for non-numeric input and ``ValueError`` for another number
    of dimensions, an empty series, or NaN and infinite values (naming the first one).
    """
    if hasattr(series, "detach"):
        series = series.detach().cpu().numpy()
    a = np.asarray(series)
    if a.dtype == object or a.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {a.dtype}")
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one channel), got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"{name} is empty")
    bad = ~np.isfinite(a)
    if bad.any():
        raise ValueError(f"{name} has {int(bad.sum())} NaN or infinite values "
                         f"(the first at index {int(np.argmax(bad))})")
    return a.astype(np.float64)


def _is_int(v) -> bool:
    return isinstance(v, int | np.integer) and not isinstance(v, bool | np.bool_)


def _window(m, length: int, name: str = "window") -> int:
    if not _is_int(m) or m < 1:
        raise ValueError(f"{name} must be a positive int, got {m!r}")
    if m > length:
        raise ValueError(f"{name}={m} is longer than the series ({length} points)")
    return int(m)


def subsequences(series, m: int, stride: int = 1) -> np.ndarray:
    """All windows of ``m`` points, every ``stride`` points: ``(n_windows, m)`` (a read-only view).

    ``n_windows = (len(series) - m) // stride + 1``; a tail shorter than a stride is
    dropped, as in :func:`utils.data.sliding_windows`.
    """
    x = check_series(series)
    m = _window(m, len(x))
    stride = _window(stride, len(x), "stride")
    return sliding_windows(x, m, stride)


def scores_to_points(window_scores, m: int, length: int, stride: int = 1) -> np.ndarray:
    """Spread window scores over time: each point gets the mean score of the windows covering it.

    Window ``k`` covers points ``k * stride`` to ``k * stride + m - 1``. Points after
    the last window (a tail shorter than a stride) take the last window's score.
    """
    s = check_series(window_scores, "window_scores")
    if not _is_int(length) or length < 1:
        raise ValueError(f"length must be a positive int, got {length!r}")
    m = _window(m, int(length))
    stride = _window(stride, int(length), "stride")
    expected = (length - m) // stride + 1
    if len(s) != expected:
        raise ValueError(f"{len(s)} window scores, but a series of {length} points has "
                         f"{expected} windows of {m} with stride {stride}")
    total, count = np.zeros(length), np.zeros(length)
    for offset in range(m):  # add each window's score to its offset-th point, for every offset
        idx = np.arange(expected) * stride + offset
        np.add.at(total, idx, s)
        np.add.at(count, idx, 1.0)
    last = (expected - 1) * stride + m
    total[last:], count[last:] = s[-1], 1.0
    return total / count


def _mean_std(x: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    w = sliding_windows(x, m, 1)
    return w.mean(1), w.std(1)


def _z_distance(qt: np.ndarray, m: int, mu_q, sd_q, mu_t: np.ndarray, sd_t: np.ndarray) -> np.ndarray:
    """z-normalised Euclidean distances from dot products: sqrt(2m (1 - corr)), corr clipped to [-1, 1]."""
    corr = (qt - m * mu_q * mu_t) / (m * sd_q * sd_t)
    return np.sqrt(2.0 * m * (1.0 - np.clip(corr, -1.0, 1.0)))


def _constant_check(sd: np.ndarray, scale: float, what: str) -> None:
    """Raise if a window's standard deviation is at rounding level next to ``scale``, the data's magnitude."""
    flat = sd <= 1e-12 * max(scale, np.finfo(float).tiny)
    if flat.any():
        raise ValueError(f"{what} has a constant subsequence at index {int(np.argmax(flat))}: "
                         "its z-normalised distance is undefined")


def distance_profile(query, series) -> np.ndarray:
    r"""z-normalised Euclidean distance from ``query`` (``m`` points) to every subsequence of ``series``.

    With the dot products :math:`QT_j = \sum_k q_k t_{j+k}` (one sliding dot product),
    :math:`d_j = \sqrt{2m\,(1 - (QT_j - m\mu_q\mu_j)/(m\sigma_q\sigma_j))}`; standard
    deviations are population ones (``ddof=0``). Returns ``len(series) - m + 1`` values.
    The query and the series are centred first (distances do not change), so a large
    offset such as 1e6 costs no precision in :math:`QT_j - m\mu_q\mu_j`.
    """
    q = check_series(query, "query")
    t = check_series(series)
    if len(q) < 2:
        raise ValueError(f"len(query) must be >= 2 (a z-normalised window needs a spread), got {len(q)}")
    m = _window(len(q), len(t), "len(query)")
    q_scale, t_scale = float(np.abs(q).max()), float(np.abs(t).max())
    q, t = q - q.mean(), t - t.mean()
    mu_t, sd_t = _mean_std(t, m)
    _constant_check(np.array([q.std()]), q_scale, "query")
    _constant_check(sd_t, t_scale, "series")
    qt = np.correlate(t, q, mode="valid")
    return _z_distance(qt, m, q.mean(), q.std(), mu_t, sd_t)


def matrix_profile(series, m: int, exclusion: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Self-join matrix profile: for each subsequence, the distance to its nearest non-trivial match.

    Returns ``(profile, index)``, ``len(series) - m + 1`` values each. Matches that
    start at most ``exclusion`` points away (default ``ceil(m / 4)``, stumpy's
    choice) are trivial and skipped. Each row's dot products come from the previous row's in O(n)
    (STOMP): ``QT[i, j] = QT[i-1, j-1] - t[i-1] t[j-1] + t[i+m-1] t[j+m-1]``.
    """
    t = check_series(series)
    m = _window(m, len(t))
    if m < 2:
        raise ValueError(f"m must be >= 2 (a z-normalised window needs a spread), got {m}")
    scale = float(np.abs(t).max())
    t = t - t.mean()  # distances do not change; a large offset would cost precision
    n = len(t) - m + 1
    exclusion = math.ceil(m / 4) if exclusion is None else exclusion
    if not _is_int(exclusion) or exclusion < 0:
        raise ValueError(f"exclusion must be a non-negative int, got {exclusion!r}")
    if n < 2:
        raise ValueError(f"a series of {len(t)} points has one subsequence of {m}: nothing to match")
    mu, sd = _mean_std(t, m)
    _constant_check(sd, scale, "series")
    first = np.correlate(t, t[:m], mode="valid")  # QT[0, j], and by symmetry QT[j, 0]
    qt = first.copy()
    profile, index = np.full(n, np.inf), np.zeros(n, dtype=np.int64)
    for i in range(n):
        if i > 0:
            qt[1:] = qt[:-1] - t[i - 1] * t[:n - 1] + t[i + m - 1] * t[m:]
            qt[0] = first[i]
        d = _z_distance(qt, m, mu[i], sd[i], mu, sd)
        d[max(0, i - exclusion):i + exclusion + 1] = np.inf
        j = int(np.argmin(d))
        profile[i], index[i] = d[j], j
    if not np.isfinite(profile).all():
        raise ValueError(f"exclusion={exclusion} leaves some subsequences without any match")
    return profile, index


def _labels(labels, length: int) -> np.ndarray:
    y = np.asarray(labels)
    if y.ndim != 1 or len(y) != length:
        raise ValueError(f"labels must be 1-D with one label per point ({length}), got shape {y.shape}")
    if y.dtype.kind not in "biuf" or not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 (normal) or 1 (anomaly)")
    return y.astype(np.int64)


def anomaly_region(labels) -> tuple[int, int]:
    """``(begin, end)`` of the one labelled region, both inclusive; raises unless there is exactly one."""
    y = _labels(labels, len(np.asarray(labels)))
    edges = np.flatnonzero(np.diff(np.concatenate([[0], y, [0]])))
    if len(edges) != 2:
        raise ValueError(f"labels must mark exactly one anomalous region, found {len(edges) // 2}")
    return int(edges[0]), int(edges[1] - 1)


def ucr_hit(point_scores, labels, tolerance: int = 100, start: int = 0) -> bool:
    """The UCR Anomaly Archive rule: is the top-scoring point inside the labelled region ± ``tolerance``?

    Only points from ``start`` on (the test part) compete for the top score; ties go
    to the earliest point. The labelled region must not end before ``start``.
    """
    s = check_series(point_scores, "point_scores")
    y = _labels(labels, len(s))
    if not _is_int(tolerance) or tolerance < 0:
        raise ValueError(f"tolerance must be a non-negative int, got {tolerance!r}")
    if not _is_int(start) or not 0 <= start < len(s):
        raise ValueError(f"start must be an index of the series (0 to {len(s) - 1}), got {start!r}")
    begin, end = anomaly_region(y)
    if end < start:
        raise ValueError(f"the labelled region ({begin}-{end}) ends before start={start}: "
                         "no test point can be near it")
    top = start + int(np.argmax(s[start:]))
    return bool(begin - tolerance <= top <= end + tolerance)


def auc_pr(point_scores, labels) -> float:
    """Area under the precision-recall curve of point scores against point labels (average precision)."""
    from sklearn.metrics import average_precision_score

    s = check_series(point_scores, "point_scores")
    y = _labels(labels, len(s))
    if y.sum() == 0:
        raise ValueError("labels mark no anomaly: precision and recall are undefined")
    if y.sum() == len(y):
        raise ValueError("labels mark every point anomalous: any score gets AUC-PR 1, which says nothing")
    return float(average_precision_score(y, s))
