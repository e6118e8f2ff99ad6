import hashlib

import numpy as np
import pytest
import torch

from utils import anomaly, data


def brute_distance_profile(q, t):
    w = np.lib.stride_tricks.sliding_window_view(t, len(q))
    zw = (w - w.mean(1, keepdims=True)) / w.std(1, keepdims=True)
    return np.sqrt((((q - q.mean()) / q.std() - zw) ** 2).sum(1))


def brute_matrix_profile(t, m, excl):
    n = len(t) - m + 1
    d = np.stack([brute_distance_profile(t[i:i + m], t) for i in range(n)])
    for i in range(n):
        d[i, max(0, i - excl):i + excl + 1] = np.inf
    return d.min(1), d.argmin(1)


@pytest.fixture
def walk():
    return np.cumsum(np.random.default_rng(0).normal(size=150))


def test_check_series_rejects_bad_input():
    assert anomaly.check_series([1, 2, 3]).dtype == np.float64
    assert anomaly.check_series(torch.arange(4.0)).shape == (4,)
    with pytest.raises(ValueError, match="1-D"):
        anomaly.check_series(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="NaN.*index 1"):
        anomaly.check_series([0.0, np.nan, 1.0])
    with pytest.raises(ValueError, match="empty"):
        anomaly.check_series([])
    with pytest.raises(TypeError, match="real numbers"):
        anomaly.check_series(["a", "b"])


def test_subsequences_count_and_errors():
    w = anomaly.subsequences(np.arange(10.0), 4)
    assert w.shape == (7, 4) and np.array_equal(w[2], [2, 3, 4, 5])
    assert anomaly.subsequences(np.arange(10.0), 4, stride=3).shape == (3, 4)
    with pytest.raises(ValueError, match="longer than the series"):
        anomaly.subsequences(np.arange(5.0), 6)
    with pytest.raises(ValueError, match="positive int"):
        anomaly.subsequences(np.arange(5.0), 0)


def test_scores_to_points_means_covering_windows():
    s = np.array([1.0, 2.0, 3.0])                # windows of 3 over 5 points
    pts = anomaly.scores_to_points(s, 3, 5)
    assert np.allclose(pts, [1, 1.5, 2, 2.5, 3])
    tail = anomaly.scores_to_points(np.array([1.0, 5.0]), 2, 5, stride=2)   # point 4 uncovered
    assert np.allclose(tail, [1, 1, 5, 5, 5])
    with pytest.raises(ValueError, match="windows of 3"):
        anomaly.scores_to_points(s, 3, 6)
    with pytest.raises(ValueError, match="NaN"):
        anomaly.scores_to_points(np.array([1.0, np.nan, 3.0]), 3, 5)
    for bad in (True, 5.0, "5"):
        with pytest.raises(ValueError, match="length must be a positive int"):
            anomaly.scores_to_points(s, 3, bad)


def test_distance_profile_matches_brute_force(walk):
    q = walk[20:35] * 3 + 7
    assert np.allclose(anomaly.distance_profile(q, walk), brute_distance_profile(q, walk), atol=1e-5)
    assert anomaly.distance_profile(walk[:40], walk[:40]).shape == (1,)
    with pytest.raises(ValueError, match="longer than the series"):
        anomaly.distance_profile(walk[:20], walk[:10])
    with pytest.raises(ValueError, match="constant"):
        anomaly.distance_profile(np.ones(5), walk)
    with pytest.raises(ValueError, match="constant subsequence at index 150"):
        anomaly.distance_profile(walk[:5], np.concatenate([walk, np.full(10, 0.1)]))
    with pytest.raises(ValueError, match="len\\(query\\) must be >= 2"):
        anomaly.distance_profile(walk[:1], walk)


@pytest.mark.parametrize("offset", [0.0, 1e3, 1e6, 1e8])
def test_distance_profile_keeps_precision_under_a_large_offset(walk, offset):
    t = walk + offset
    q = t[20:35] * 3.0 - 0.5 * offset      # another level and scale: the same shape
    want = brute_distance_profile(walk[20:35], walk)
    assert np.allclose(anomaly.distance_profile(q, t), want, atol=1e-6)


def test_constant_check_is_relative_to_the_scale(walk):
    tiny = walk * 1e-13                    # a real spread at a tiny scale is not "constant"
    assert np.allclose(anomaly.distance_profile(tiny[20:35], tiny),
                       brute_distance_profile(walk[20:35], walk), atol=1e-6)


@pytest.mark.parametrize("m, excl", [(10, None), (7, 0), (12, 5)])
def test_matrix_profile_matches_brute_force(walk, m, excl):
    profile, index = anomaly.matrix_profile(walk, m, excl)
    want, want_index = brute_matrix_profile(walk, m, int(np.ceil(m / 4)) if excl is None else excl)
    assert np.allclose(profile, want, atol=1e-6)
    assert np.mean(index == want_index) > 0.99


def test_matrix_profile_keeps_precision_under_a_large_offset(walk):
    profile, _ = anomaly.matrix_profile(walk + 1e6, 10)
    want, _ = brute_matrix_profile(walk, 10, 3)
    assert np.allclose(profile, want, atol=1e-6)


def test_matrix_profile_errors(walk):
    with pytest.raises(ValueError, match="longer than the series"):
        anomaly.matrix_profile(walk[:5], 6)
    for bad in (-1, True, 2.5):
        with pytest.raises(ValueError, match="exclusion must be a non-negative int"):
            anomaly.matrix_profile(walk, 5, exclusion=bad)
    with pytest.raises(ValueError, match="m must be >= 2"):
        anomaly.matrix_profile(walk, 1)
    with pytest.raises(ValueError, match="without any match"):
        anomaly.matrix_profile(walk[:12], 10)
    with pytest.raises(ValueError, match="1-D"):
        anomaly.matrix_profile(walk.reshape(3, 50), 5)


def test_ucr_hit_tolerance_and_start():
    y = np.zeros(1000, dtype=int)
    y[500:510] = 1
    s = np.zeros(1000)
    s[620] = 1.0                                  # 111 points after the region's last point
    assert not anomaly.ucr_hit(s, y, tolerance=100)
    assert anomaly.ucr_hit(s, y, tolerance=111)
    s[300] = 2.0                                  # a higher score before the test part starts
    assert anomaly.ucr_hit(s, y, tolerance=111, start=400)
    assert not anomaly.ucr_hit(s, y, tolerance=111, start=0)
    assert anomaly.anomaly_region(y) == (500, 509)


def test_ucr_hit_ties_go_to_the_earliest_point():
    y = np.zeros(1000, dtype=int)
    y[500:510] = 1
    s = np.zeros(1000)
    s[[300, 505]] = 1.0                           # a tie: the earlier point, a miss, is the top
    assert not anomaly.ucr_hit(s, y, tolerance=100)
    s[[505, 800]] = 1.0, 0.0
    s[300], s[900] = 0.0, 1.0                     # a tie: the earlier point, a hit, is the top
    assert anomaly.ucr_hit(s, y, tolerance=100)


def test_ucr_hit_and_auc_pr_reject_bad_input():
    y = np.zeros(50, dtype=int)
    y[10:12] = 1
    s = np.random.default_rng(1).random(50)
    with pytest.raises(ValueError, match="tolerance"):
        anomaly.ucr_hit(s, y, tolerance=-1)
    with pytest.raises(ValueError, match="one label per point"):
        anomaly.ucr_hit(s, y[:-1])
    with pytest.raises(ValueError, match="start"):
        anomaly.ucr_hit(s, y, start=50)
    with pytest.raises(ValueError, match="start"):
        anomaly.ucr_hit(s, y, start=True)
    with pytest.raises(ValueError, match="ends before start=20"):
        anomaly.ucr_hit(s, y, start=20)
    y2 = y.copy()
    y2[30] = 1
    with pytest.raises(ValueError, match="exactly one"):
        anomaly.ucr_hit(s, y2)
    with pytest.raises(ValueError, match="0 \\(normal\\) or 1"):
        anomaly.auc_pr(s, y * 2)
    with pytest.raises(ValueError, match="no anomaly"):
        anomaly.auc_pr(s, np.zeros(50))
    with pytest.raises(ValueError, match="every point anomalous"):
        anomaly.auc_pr(s, np.ones(50))
    perfect = y.astype(float)
    assert anomaly.auc_pr(perfect, y) == 1.0


def test_load_ucr_anomaly_135():
    x, y, train_end = data.load_ucr_anomaly_135()
    assert x.shape == y.shape == (7501,) and train_end == 1200
    assert anomaly.anomaly_region(y) == (4187, 4198) and y[:train_end].sum() == 0


def test_aeon_wheel_missing_or_corrupt(tmp_path, monkeypatch):
    monkeypatch.setenv("TFUL_DATA_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="pip download --no-deps --only-binary=:all: aeon==1.6.0"):
        data.aeon_wheel_path()
    (tmp_path / data.AEON_WHEEL).write_bytes(b"not a wheel")
    digest = hashlib.sha256(b"not a wheel").hexdigest()
    with pytest.raises(ValueError, match=digest):
        data.aeon_wheel_path()


def test_load_aeon_csv_unknown_member():
    with pytest.raises(ValueError, match="not in"):
        data.load_aeon_csv("nope/nope.csv")
