"""Auto-checks for the GAN exercises (see :func:`utils.checks.run_check`)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from .. import gan
from .core import CheckResult, Spec, defined_by

__all__ = ["check_d_hinge_loss", "check_g_hinge_loss", "check_cutout"]


def _logits_case(rng):
    n_real, n_fake = (int(v) for v in rng.integers(1, 40, size=2))
    # logits on both sides of the hinge at +-1, so a missing max(0, .) is caught
    return (torch.tensor(rng.normal(0.0, 2.0, size=n_real)),
            torch.tensor(rng.normal(0.0, 2.0, size=n_fake)))


def _t(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def _d_hinge_loss_spec() -> Spec:
    edges = [
        ("confident logits beyond the margins (real 3, fake -3): loss 0", (_t([3.0, 3.0]), _t([-3.0, -3.0]))),
        ("logits inside the margins (real 0.5, fake -0.5): loss 1", (_t([0.5, 0.5]), _t([-0.5, -0.5]))),
        ("2 real and 6 fake logits: two separate means",
         (_t([-1.0, 2.0]), _t([0.5, 0.5, 0.5, 0.5, 0.5, 0.5]))),
    ]
    return Spec("check_d_hinge_loss", gan.d_hinge_loss, _logits_case, edge_cases=edges,
                hint="mean of relu(1 - real_logits) plus mean of relu(1 + fake_logits); "
                     "the two means are taken separately (the batches may differ in size).")


@defined_by(_d_hinge_loss_spec)
def check_d_hinge_loss(student: Callable, *, seed: int | None = None, verbose: bool = True,
                       time_limit: float | None = 10.0) -> CheckResult:
    """Check ``student(real_logits, fake_logits) -> scalar``, the discriminator's hinge loss.

    Edge cases: logits beyond the margins (loss 0; a missing relu gives -4), logits
    inside the margins, and 2 real against 6 fake logits (one mean over both batches
    fails). The time limit only applies on the main thread of a Unix process.
    """
    return _d_hinge_loss_spec().run(student, seed=seed, verbose=verbose, time_limit=time_limit)


def _g_hinge_loss_spec() -> Spec:
    edges = [
        ("fake logits beyond the margin (3): the generator has no hinge", (_t([3.0, 3.0, 3.0]),)),
        ("negative fake logits (-2 and -1)", (_t([-2.0, -1.0]),)),
    ]
    return Spec("check_g_hinge_loss", gan.g_hinge_loss,
                lambda rng: _logits_case(rng)[1:], edge_cases=edges,
                hint="the generator has no hinge: it minimises -mean(fake_logits).")


@defined_by(_g_hinge_loss_spec)
def check_g_hinge_loss(student: Callable, *, seed: int | None = None, verbose: bool = True,
                       time_limit: float | None = 10.0) -> CheckResult:
    """Check ``student(fake_logits) -> scalar``, the generator's hinge loss.

    Edge cases: fake logits of 3 (a hinge relu(1 - f) gives 0 instead of -3) and of -2
    (the sign of the mean matters). The time limit only applies on the main thread of
    a Unix process.
    """
    return _g_hinge_loss_spec().run(student, seed=seed, verbose=verbose, time_limit=time_limit)


def _cutout_ref(images, rows, cols, size):
    out = images.clone()
    for i, (r, c) in enumerate(zip(rows.tolist(), cols.tolist(), strict=True)):
        out[i, r:r + size, c:c + size] = 0.0
    return out


def _cutout_edges():
    ones = torch.ones(3, 5, 5, dtype=torch.float64)
    wide = torch.tensor(np.random.default_rng(808).random((2, 4, 7)))
    return [
        ("squares running off the bottom-right corner, and one at (0, 0)",
         (ones.clone(), torch.tensor([4, 3, 0]), torch.tensor([4, 4, 0]), 3)),
        ("size 1: exactly one pixel per image, rows != cols",
         (ones[:2].clone(), torch.tensor([1, 3]), torch.tensor([3, 0]), 1)),
        ("non-square images: H = 4, W = 7", (wide, torch.tensor([0, 2]), torch.tensor([5, 1]), 2)),
    ]


def _cutout_spec() -> Spec:
    def case(rng):
        b, h = int(rng.integers(1, 6)), int(rng.integers(4, 10))
        size = int(rng.integers(1, 4))
        return (torch.tensor(rng.random((b, h, h))), torch.tensor(rng.integers(0, h, size=b)),
                torch.tensor(rng.integers(0, h, size=b)), size)

    return Spec("check_cutout", _cutout_ref, case, edge_cases=_cutout_edges(),
                hint="with r = arange(H)[None, :, None], c = arange(W)[None, None, :], "
                     "top = rows[:, None, None] and left = cols[:, None, None], the hole is "
                     "(r >= top) & (r < top + size) & (c >= left) & (c < left + size), a (B, H, "
                     "W) mask; multiply the images by ~hole.")


@defined_by(_cutout_spec)
def check_cutout(student: Callable, *, seed: int | None = None, verbose: bool = True,
                 time_limit: float | None = 10.0) -> CheckResult:
    """Check ``student(images, rows, cols, size) -> images`` zeroing a square per image.

    ``rows``/``cols`` are the top-left corners ``(B,)``; the square may run off the image.
    Edge cases: squares running off the corner (an off-by-one ``<=`` fails), one pixel
    per image with rows != cols (swapping rows and cols fails), and non-square images
    (using H for both axes fails). The time limit only applies on the main thread of a
    Unix process.
    """
    return _cutout_spec().run(student, seed=seed, verbose=verbose, time_limit=time_limit)
