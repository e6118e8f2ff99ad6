"""check_rollout: the reference passes, plausible wrong rollouts fail on an edge case.

``CORRECT`` and ``WRONG`` are also read by ``test_checks.py``, which runs every check's
answers through the shared contract tests.
"""

from __future__ import annotations

import pytest
import torch

from utils import attribution, checks


def rollout_loop(att):
    """A plain loop over layers: mean over heads, identity, row sums, product."""
    out = None
    for layer in att:
        a = 0.5 * layer.mean(1) + 0.5 * torch.eye(layer.shape[-1], dtype=layer.dtype)
        a = a / a.sum(-1, keepdim=True)
        out = a if out is None else a @ out
    return out


def rollout_from_identity(att):
    """Starts from R = I built with torch.eye's default float32, as the chapter's maps are."""
    out = torch.eye(att.shape[-1])
    for layer in att:
        a = 0.5 * layer.mean(1) + 0.5 * torch.eye(att.shape[-1])
        out = (a / a.sum(-1, keepdim=True)) @ out
    return out


def _rollout(att, *, identity=True, renorm=True, reverse=False, fuse=lambda a: a.mean(1),
             norm_first=False):
    layers = []
    for layer in att:
        a = fuse(layer)
        if norm_first:
            a = a / a.sum(-1, keepdim=True)
        if identity:
            a = 0.5 * a + 0.5 * torch.eye(a.shape[-1], dtype=a.dtype)
        if renorm and not norm_first:
            a = a / a.sum(-1, keepdim=True)
        layers.append(a)
    out = layers[0]
    for a in layers[1:]:
        out = out @ a if reverse else a @ out
    return out


CORRECT = {"check_rollout": [rollout_loop, rollout_from_identity, attribution.attention_rollout]}
WRONG = {
    "check_rollout": {
        "no residual identity": lambda att: _rollout(att, identity=False),
        "no row re-normalisation": lambda att: _rollout(att, renorm=False),
        "re-normalised before adding the identity": lambda att: _rollout(att, norm_first=True),
        "first layer on the left": lambda att: _rollout(att, reverse=True),
        "max over heads": lambda att: _rollout(att, fuse=lambda a: a.amax(1)),
        "first head only": lambda att: _rollout(att, fuse=lambda a: a[:, 0]),
        "last layer only": lambda att: _rollout(att[-1:]),
    },
}


@pytest.mark.parametrize("fn", CORRECT["check_rollout"])
def test_correct_rollouts_pass(fn):
    for seed in (0, 1, 2):
        result = checks.check_rollout(fn, seed=seed, verbose=False)
        assert result.status == "ok", result.line


@pytest.mark.parametrize("mistake", sorted(WRONG["check_rollout"]))
def test_wrong_rollouts_fail_on_an_edge_case(mistake):
    result = checks.check_rollout(WRONG["check_rollout"][mistake], seed=0, verbose=False)
    assert result.status == "wrong", result.line
    assert result.case.startswith("edge: "), result.line


def test_float32_identity_rollout_passes():
    # the chapter's attention maps are float32: a correct rollout written for them must pass
    result = checks.check_rollout(rollout_from_identity, seed=0, verbose=False)
    assert result.status == "ok", result.line


def test_check_rollout_is_registered():
    assert checks.ALL_CHECKS["check_rollout"] is checks.check_rollout
