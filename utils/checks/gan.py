"""Auto-checks for the GAN exercises (see :func:`utils.checks.run_check`)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from .. import gan
from .core import run_check

__all__ = ["check_d_hinge_loss", "check_g_hinge_loss", "check_cutout"]


def _logits_case(rng):
    n_real, n_fake = (int(v) for v in rng.integers(1, 40, size=2))
    # logits on both sides of the hinge at +-1, so a missing max(0, .) is caught
    return (torch.tensor(rng.normal(0.0, 2.0, size=n_real)),
            torch.tensor(rng.normal(0.0, 2.0, size=n_fake)))


def check_d_hinge_loss(student: Callable, **kw) -> bool:
    """Check ``student(real_logits, fake_logits) -> scalar``, the discriminator's hinge loss."""
    return run_check("discriminator hinge loss", student, gan.d_hinge_loss, _logits_case,
                     hint="mean of relu(1 - real_logits) plus mean of relu(1 + fake_logits); "
                          "the two means are taken separately (the batches may differ in size).",
                     **kw)


def check_g_hinge_loss(student: Callable, **kw) -> bool:
    """Check ``student(fake_logits) -> scalar``, the generator's hinge loss."""
    return run_check("generator hinge loss", student, gan.g_hinge_loss,
                     lambda rng: _logits_case(rng)[1:],
                     hint="the generator has no hinge: it minimises -mean(fake_logits).", **kw)


def check_cutout(student: Callable, **kw) -> bool:
    """Check ``student(images, rows, cols, size) -> images`` zeroing a square per image.

    ``rows``/``cols`` are the top-left corners ``(B,)``; the square may run off the image.
    """
    def case(rng):
        b, h = int(rng.integers(1, 6)), int(rng.integers(4, 10))
        size = int(rng.integers(1, 4))
        return (torch.tensor(rng.random((b, h, h))), torch.tensor(rng.integers(0, h, size=b)),
                torch.tensor(rng.integers(0, h, size=b)), size)

    def ref(images, rows, cols, size):
        out = images.clone()
        for i, (r, c) in enumerate(zip(rows.tolist(), cols.tolist(), strict=True)):
            out[i, r:r + size, c:c + size] = 0.0
        return out

    return run_check("cutout", student, ref, case,
                     hint="build a boolean hole from broadcast comparisons of arange(H) with "
                          "rows[:, None, None] (and cols), then multiply the images by ~hole.",
                     **kw)
