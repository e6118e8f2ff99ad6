import numpy as np
import pytest
import torch

from utils import checks
from utils.anomaly import distance_profile


def _windows(q, t):
    return np.lib.stride_tricks.sliding_window_view(np.asarray(t, float), len(q))


def raw_euclidean(q, t):  # no z-normalisation
    return np.sqrt(((_windows(q, t) - q) ** 2).sum(1))


def one_window_short(q, t):  # off-by-one window count
    return distance_profile(q, t)[:-1]


def sample_std(q, t):  # ddof=1 instead of the population standard deviation
    w = _windows(q, t)
    zw = (w - w.mean(1, keepdims=True)) / w.std(1, ddof=1, keepdims=True)
    return np.sqrt((((q - q.mean()) / q.std(ddof=1) - zw) ** 2).sum(1))


def squared(q, t):  # the squared distance
    return distance_profile(q, t) ** 2


def no_clip(q, t):  # sqrt(2m (1 - corr)) without clipping: NaN where corr rounds above 1
    q = np.asarray(q, float)
    w, m = _windows(q, t), len(q)
    corr = (w @ q - m * q.mean() * w.mean(1)) / (m * q.std() * w.std(1))
    with np.errstate(invalid="ignore"):
        return np.sqrt(2 * m * (1 - corr))


def direct(q, t):  # the definition, written independently of the reference
    q = np.asarray(q, float)
    w = _windows(q, t)
    zw = (w - w.mean(1, keepdims=True)) / w.std(1, keepdims=True)
    return np.sqrt((((q - q.mean()) / q.std() - zw) ** 2).sum(1))


def clipped_dot_products(q, t):  # the dot-product formula, clipped as it must be
    q = np.asarray(q, float)
    w, m = _windows(q, t), len(q)
    corr = (w @ q - m * q.mean() * w.mean(1)) / (m * q.std() * w.std(1))
    return np.sqrt(2 * m * np.clip(1 - corr, 0, None))


def float32_direct(q, t):  # the definition in single precision (errors ~1e-5 at values ~2)
    q = torch.tensor(np.asarray(q), dtype=torch.float32)
    w = torch.tensor(np.asarray(t), dtype=torch.float32).unfold(0, len(q), 1)
    zw = (w - w.mean(1, keepdim=True)) / w.std(1, unbiased=False, keepdim=True)
    zq = (q - q.mean()) / q.std(unbiased=False)
    return ((zw - zq) ** 2).sum(1).sqrt()


CORRECT = {"check_distance_profile": [distance_profile, direct, clipped_dot_products, float32_direct]}
WRONG = {"check_distance_profile": {
    "raw Euclidean": raw_euclidean,
    "one window short": one_window_short,
    "sample standard deviation": sample_std,
    "squared distance": squared,
    "no clipping": no_clip,
}}


def test_reference_passes():
    assert checks.check_distance_profile(distance_profile, seed=0, verbose=False)
    assert "check_distance_profile" in checks.ALL_CHECKS


@pytest.mark.parametrize("correct", [direct, clipped_dot_products, float32_direct])
def test_independent_correct_answers_pass(correct):
    for seed in range(30):
        res = checks.check_distance_profile(correct, seed=seed, verbose=False)
        assert res.passed, (seed, res.case, res.message)


def test_unclipped_answer_gives_nan_on_the_rounding_edge_case():
    walk = np.round(np.cumsum(np.random.default_rng(0).normal(size=60)), 2)
    assert np.isnan(no_clip(walk[20:32], walk)).any()
    assert np.isfinite(distance_profile(walk[20:32], walk)).all()


@pytest.mark.parametrize("wrong", [raw_euclidean, one_window_short, sample_std, squared, no_clip])
def test_wrong_answers_fail_on_an_edge_case(wrong):
    res = checks.check_distance_profile(wrong, seed=0, verbose=False)
    assert res.status == "wrong" and res.case.startswith("edge:")


def test_not_attempted():
    def stub(q, t):
        raise NotImplementedError

    assert checks.check_distance_profile(stub, seed=0, verbose=False).status == "not_attempted"
