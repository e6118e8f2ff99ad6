import numpy as np
import pytest

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


def test_reference_passes():
    assert checks.check_distance_profile(distance_profile, seed=0, verbose=False)
    assert "check_distance_profile" in checks.ALL_CHECKS


@pytest.mark.parametrize("wrong", [raw_euclidean, one_window_short, sample_std, squared])
def test_wrong_answers_fail_on_an_edge_case(wrong):
    res = checks.check_distance_profile(wrong, seed=0, verbose=False)
    assert res.status == "wrong" and res.case.startswith("edge:")


def test_not_attempted():
    def stub(q, t):
        raise NotImplementedError

    assert checks.check_distance_profile(stub, seed=0, verbose=False).status == "not_attempted"
