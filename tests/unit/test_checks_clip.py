"""check_info_nce accepts the reference and rejects plausible wrong answers."""

import torch
import torch.nn.functional as F

from utils import checks
from utils.clip import info_nce


def _logits(a, b, s):
    return s * a @ b.T, torch.arange(len(a))


def one_direction(a, b, s):
    logits, t = _logits(a, b, s)
    return F.cross_entropy(logits, t)


def no_temperature(a, b, s):
    logits, t = _logits(a, b, 1.0)
    return (F.cross_entropy(logits, t) + F.cross_entropy(logits.T, t)) / 2


def summed_over_pairs(a, b, s):
    logits, t = _logits(a, b, s)
    return (F.cross_entropy(logits, t, reduction="sum") + F.cross_entropy(logits.T, t, reduction="sum")) / 2


def two_directions_added(a, b, s):
    logits, t = _logits(a, b, s)
    return F.cross_entropy(logits, t) + F.cross_entropy(logits.T, t)


def divided_by_scale(a, b, s):
    logits, t = _logits(a, b, 1 / s)
    return (F.cross_entropy(logits, t) + F.cross_entropy(logits.T, t)) / 2


def unstable_exp(a, b, s):
    e = (s * a @ b.T).exp()          # overflows in float32 once a logit passes about 88
    return (-(e.diag() / e.sum(1)).log().mean() - (e.diag() / e.sum(0)).log().mean()) / 2


def detached(a, b, s):
    return info_nce(a, b, s).detach()


def as_float(a, b, s):
    return info_nce(a, b, s).item()


def explicit_loops(a, b, s):
    n = len(a)
    total = 0.0
    for i in range(n):
        total = total - torch.log_softmax(s * a[i] @ b.T, 0)[i] - torch.log_softmax(s * b[i] @ a.T, 0)[i]
    return total / (2 * n)


def test_check_info_nce_accepts_correct_answers():
    assert checks.check_info_nce(info_nce, seed=0, verbose=False)
    assert checks.check_info_nce(explicit_loops, seed=1, verbose=False)
    assert "check_info_nce" in checks.ALL_CHECKS


def test_check_info_nce_rejects_wrong_answers():
    for wrong in (one_direction, no_temperature, summed_over_pairs, two_directions_added,
                  divided_by_scale, unstable_exp, detached, as_float):
        result = checks.check_info_nce(wrong, seed=0, verbose=False)
        assert result.status == "wrong" and result.case.startswith("edge"), (wrong.__name__, result)


def test_check_info_nce_names_the_problem():
    assert "no gradient" in checks.check_info_nce(as_float, seed=0, verbose=False).message
    assert "float32" in checks.check_info_nce(unstable_exp, seed=0, verbose=False).case
    # the unstable formula is right in float64: only the float32 case exposes it
    a, b = torch.eye(3, dtype=torch.float64), torch.eye(3, dtype=torch.float64)
    assert abs(unstable_exp(a, b, 5.0).item() - info_nce(a, b, 5.0).item()) < 1e-9


def test_check_info_nce_reports_not_attempted():
    def stub(a, b, s):
        raise NotImplementedError

    assert checks.check_info_nce(stub, seed=0, verbose=False).status == "not_attempted"


# read by tests/unit/test_checks.py, which runs every check on its correct and wrong answers
CORRECT = {"check_info_nce": [info_nce, explicit_loops]}
WRONG = {"check_info_nce": {
    "one direction only": one_direction,
    "no temperature": no_temperature,
    "sum over pairs": summed_over_pairs,
    "two directions added, not averaged": two_directions_added,
    "divided by the scale": divided_by_scale,
    "exp without subtracting the largest logit": unstable_exp,
    "detached loss": detached,
    "a Python float (.item())": as_float,
}}
