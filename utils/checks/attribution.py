"""Auto-checks for the attribution exercises (see :func:`utils.checks.run_check`)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from .core import CheckResult, Spec, defined_by

__all__ = ["check_rollout"]


def _maps(rng, layers: int, batch: int, heads: int, tokens: int, sharpness: float = 2.0):
    """Random float32 attention maps ``(L, B, H, T, T)`` (the encoders' dtype): a softmax over random scores."""
    scores = torch.tensor(rng.normal(scale=sharpness, size=(layers, batch, heads, tokens, tokens)))
    return torch.softmax(scores, dim=-1).float()


def _rollout_case(rng):
    layers, batch, heads = int(rng.integers(1, 5)), int(rng.integers(1, 4)), int(rng.integers(1, 5))
    return (_maps(rng, layers, batch, heads, int(rng.integers(2, 8))),)


def _rollout_edges():
    rng = np.random.default_rng(1010)
    one = _maps(rng, 1, 2, 3, 5)
    # three layers whose maps do not commute: the order of the product matters
    three = _maps(rng, 3, 1, 2, 4, sharpness=4.0)
    # the weights of token 0 dropped from every row (as when [CLS] or [SEP] columns are removed):
    # rows sum to less than one, so 0.5 A + 0.5 I must be re-normalised
    dropped = _maps(rng, 2, 2, 2, 4)
    dropped[..., 0] = 0.0
    # one head puts everything on token 0, another on the diagonal: average the heads
    heads = _maps(rng, 2, 1, 3, 4)
    heads[:, :, 0] = 0.0
    heads[:, :, 0, :, 0] = 1.0
    heads[:, :, 1] = torch.eye(4)
    return [
        ("one layer, 3 heads: the rollout is 0.5 * mean-head A + 0.5 * I", (one,)),
        ("three layers: the last layer multiplies on the left", (three,)),
        ("rows that sum to less than one (token 0's weights dropped): re-normalise", (dropped,)),
        ("heads that disagree (all on token 0 / the diagonal): average the heads", (heads,)),
    ]


def _rollout_spec() -> Spec:
    from ..attribution import attention_rollout

    return Spec("check_rollout", attention_rollout, _rollout_case,
                edge_cases=_rollout_edges(), atol=1e-6,
                hint="average over the heads (dim 2), add the identity (0.5 * A + 0.5 * I), "
                     "divide each row by its sum, then multiply the layers with the later "
                     "layer on the left: R = A_L' @ ... @ A_1'.")


@defined_by(_rollout_spec)
def check_rollout(student: Callable, *, seed: int | None = None, verbose: bool = True,
                  time_limit: float | None = 10.0) -> CheckResult:
    """Check ``student(attentions) -> (B, T, T)``, attention rollout of ``(L, B, H, T, T)`` maps.

    The reference is :func:`utils.attribution.attention_rollout` (mean over heads, identity
    added, rows re-normalised, layers multiplied with the last on the left). Edge cases:
    one layer (no identity fails), three layers that do not commute (the reversed product
    fails), rows that sum to less than one (no re-normalisation, or normalising before
    adding the identity, fails), and heads that disagree (max or first head fails). The
    time limit only applies on the main thread of a Unix process.
    """
    return _rollout_spec().run(student, seed=seed, verbose=verbose, time_limit=time_limit)
