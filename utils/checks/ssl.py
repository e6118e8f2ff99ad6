"""Auto-checks for the self-supervised learning exercises (see :func:`utils.checks.run_check`)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from .core import CheckResult, Spec, defined_by

__all__ = ["check_nt_xent", "check_masked_mse"]


def _pair_case(rng):
    n, d = int(rng.integers(2, 17)), int(rng.integers(2, 17))
    scale = float(rng.uniform(0.5, 20.0))  # unnormalised inputs: the loss must normalise them
    z1 = torch.tensor(rng.normal(scale=scale, size=(n, d)), dtype=torch.float32)
    z2 = torch.tensor(rng.normal(scale=scale, size=(n, d)), dtype=torch.float32)
    return z1, z2, float(rng.choice([0.05, 0.1, 0.3, 1.0]))


def _nt_xent_edges():
    rng = np.random.default_rng(303)

    def f32(a):
        return torch.tensor(a, dtype=torch.float32)

    z = rng.normal(size=(4, 5))
    return [
        ("identical views z1 = z2, temperature 0.1", (f32(z), f32(z), 0.1)),
        ("rows with norms around 100, temperature 1", (f32(100 * z), f32(100 * rng.normal(size=(4, 5))), 1.0)),
        ("3 pairs in 6 dimensions, temperature 0.3", (f32(rng.normal(size=(3, 6))),
                                                       f32(rng.normal(size=(3, 6))), 0.3)),
    ]


def _nt_xent_spec() -> Spec:
    from ..ssl import nt_xent_reference

    return Spec("check_nt_xent", nt_xent_reference, _pair_case, atol=1e-4,
                edge_cases=_nt_xent_edges(),
                hint="L2-normalise the 2N rows of cat([z1, z2]), divide the cosine "
                     "similarities by the temperature, exclude each row's similarity with "
                     "itself (-inf on the diagonal), and average -log softmax at the other "
                     "view (row i <-> i+N) over all 2N rows.")


@defined_by(_nt_xent_spec)
def check_nt_xent(student: Callable, *, seed: int | None = None, verbose: bool = True,
                  time_limit: float | None = 10.0) -> CheckResult:
    """Check ``student(z1, z2, temperature) -> scalar`` against the cross-entropy formulation.

    Edge cases: identical views (a self-similarity left in, or positives on the
    diagonal, fails), rows with norms around 100 (forgetting to normalise fails), and
    asymmetric cases where averaging over only N anchors fails. The time limit only
    applies on the main thread of a Unix process.
    """
    return _nt_xent_spec().run(student, seed=seed, verbose=verbose, time_limit=time_limit)


def _masked_mse_edges():
    rng = np.random.default_rng(505)

    def pair(b, n, p):
        return torch.tensor(rng.normal(size=(b, n, p))), torch.tensor(rng.random((b, n, p)))

    def mask(rows):
        return torch.tensor(rows, dtype=torch.bool)

    return [
        ("one hidden patch in the whole batch", (*pair(2, 4, 3), mask([[0, 0, 1, 0], [0, 0, 0, 0]]))),
        ("1 and 3 hidden patches: one mean over all hidden patches",
         (*pair(2, 4, 5), mask([[1, 0, 0, 0], [1, 1, 0, 1]]))),
        ("every patch hidden", (*pair(2, 3, 4), mask([[1, 1, 1], [1, 1, 1]]))),
    ]


def _masked_mse_spec() -> Spec:
    def case(rng):
        b, n, p = int(rng.integers(1, 6)), int(rng.integers(2, 17)), int(rng.integers(1, 17))
        mask = torch.tensor(rng.random((b, n)) < 0.5)
        mask[:, 0] = True  # at least one hidden patch per image
        return (torch.tensor(rng.normal(size=(b, n, p))), torch.tensor(rng.random((b, n, p))),
                mask)

    def ref(pred, target, mask):
        err = ((pred - target) ** 2).mean(-1)
        return (err * mask).sum() / mask.sum()

    return Spec("check_masked_mse", ref, case, edge_cases=_masked_mse_edges(),
                hint="average the squared error over each patch's pixels, then average "
                     "over all the hidden patches of the batch (mask == True) at once, not "
                     "over all patches and not image by image.")


@defined_by(_masked_mse_spec)
def check_masked_mse(student: Callable, *, seed: int | None = None, verbose: bool = True,
                     time_limit: float | None = 10.0) -> CheckResult:
    """Check ``student(pred, target, mask) -> scalar``: the MSE over the hidden patches only.

    Edge cases: one hidden patch in the batch (averaging over all patches, or an
    inverted mask, fails), 1 and 3 hidden patches in two images (a mean of per-image
    means fails), and every patch hidden. The time limit only applies on the main
    thread of a Unix process.
    """
    return _masked_mse_spec().run(student, seed=seed, verbose=verbose, time_limit=time_limit)
