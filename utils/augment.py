r"""Augmentations for 8x8 digit images in ``[0, 1]``, batched, seeded by a ``torch.Generator``.

A contrastive objective learns whatever the augmentations leave unchanged, so
they encode what "the same digit" means: a slightly rotated, rescaled, shifted,
noisy or partly hidden 3 is still a 3. Flips are *not* used (a mirrored 2 is
not a 2, and a flipped 6 looks like a 9).

Every function takes ``images`` of shape ``(B, H, W)`` (float, values in
``[0, 1]``) and an optional ``generator``; random numbers are drawn on the CPU
from that generator, so a seeded generator gives the same views on any device.

The geometric part builds one affine matrix per image and resamples with
:func:`torch.nn.functional.affine_grid` and :func:`~torch.nn.functional.grid_sample`:

.. math::
    \begin{pmatrix} x_{\text{in}} \\ y_{\text{in}} \end{pmatrix}
    = \frac{1}{s} R(-\theta) \left[ \begin{pmatrix} x_{\text{out}} \\ y_{\text{out}} \end{pmatrix}
      - \begin{pmatrix} t_x \\ t_y \end{pmatrix} \right]

in normalised coordinates (``-1`` to ``1`` across the image), so that the
content is rotated by ``theta``, scaled by ``s`` and shifted by ``t`` (a shear
``H`` adds the factor ``H^{-1}`` on the left, see :func:`affine_matrices`).

:func:`diff_augment` is the GAN's augmentation (DiffAugment): whole-pixel
translation and cutout, built from gathers and masks so that gradients flow
through it to the generator.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from .data import check_images

__all__ = [
    "AugmentConfig",
    "affine_matrices",
    "random_affine",
    "add_noise",
    "patch_drop",
    "random_contrast",
    "augment",
    "diff_augment",
]


def _uniform(n: int, low: float, high: float, generator: torch.Generator | None) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator)


def affine_matrices(angle_deg: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor,
                    image_size: int, shear_deg: torch.Tensor | None = None) -> torch.Tensor:
    """The ``(B, 2, 3)`` matrices for ``affine_grid`` that shear, rotate, scale and shift the content.

    ``angle_deg``, ``scale`` and ``shear_deg`` are ``(B,)``; ``shift`` is ``(B, 2)`` in
    *pixels* (x, y). The content moves by ``T(u) = s R(angle) H(shear) u + t`` with the
    horizontal shear ``H = [[1, tan(shear)], [0, 1]]`` (a slant, as in handwriting).
    """
    shear_deg = torch.zeros_like(angle_deg) if shear_deg is None else shear_deg
    if (angle_deg.ndim != 1 or scale.shape != angle_deg.shape or shear_deg.shape != angle_deg.shape
            or shift.shape != (len(angle_deg), 2)):
        raise ValueError("angle_deg, scale and shear_deg must be (B,), shift (B, 2); got "
                         f"{tuple(angle_deg.shape)}, {tuple(scale.shape)}, "
                         f"{tuple(shear_deg.shape)}, {tuple(shift.shape)}")
    if (scale <= 0).any():
        raise ValueError("scale must be positive")
    theta = angle_deg * math.pi / 180.0
    cos, sin = torch.cos(theta) / scale, torch.sin(theta) / scale
    tan = torch.tan(shear_deg * math.pi / 180.0)
    # a pixel is 2 / image_size wide in normalised coordinates
    t = shift * (2.0 / image_size)
    # output -> input sampling: x_in = A (x_out - t) with A = T's linear part inverted,
    # A = H(-shear) R(-angle) / s
    rot_inv = torch.stack([torch.stack([cos, sin], -1), torch.stack([-sin, cos], -1)], -2)
    shear_inv = torch.zeros_like(rot_inv)
    shear_inv[:, 0, 0] = shear_inv[:, 1, 1] = 1.0
    shear_inv[:, 0, 1] = -tan
    a = shear_inv @ rot_inv
    b = -(a @ t[..., None])
    return torch.cat([a, b], dim=-1)


def random_affine(images: torch.Tensor, *, max_rotation: float = 15.0,
                  scale: tuple[float, float] = (0.9, 1.1), max_shift: float = 1.0,
                  max_shear: float = 0.0, generator: torch.Generator | None = None
                  ) -> torch.Tensor:
    """Rotate by up to ``max_rotation`` degrees, slant by up to ``max_shear`` degrees,
    scale by a factor in ``scale`` and shift by up to ``max_shift`` pixels.

    Bilinear resampling; the area that moves in from outside the image is 0 (background).
    """
    x = check_images(images)
    if max_rotation < 0 or max_shift < 0 or not 0 <= max_shear < 60:
        raise ValueError("need max_rotation >= 0, max_shift >= 0 and 0 <= max_shear < 60, got "
                         f"{max_rotation}, {max_shift}, {max_shear}")
    if not 0 < scale[0] <= scale[1]:
        raise ValueError(f"scale must be an increasing pair of positive numbers, got {scale}")
    b, h, w = x.shape
    angle = _uniform(b, -max_rotation, max_rotation, generator)
    s = _uniform(b, scale[0], scale[1], generator)
    shift = _uniform(2 * b, -max_shift, max_shift, generator).view(b, 2)
    shear = _uniform(b, -max_shear, max_shear, generator)
    mats = affine_matrices(angle, s, shift, h, shear).to(x.device, x.dtype)
    grid = F.affine_grid(mats, [b, 1, h, w], align_corners=False)
    out = F.grid_sample(x[:, None], grid, mode="bilinear", padding_mode="zeros",
                        align_corners=False)
    return out[:, 0].clamp(0.0, 1.0)


def add_noise(images: torch.Tensor, std: float = 0.1, *,
              generator: torch.Generator | None = None) -> torch.Tensor:
    """Add Gaussian pixel noise of standard deviation ``std``, then clip to ``[0, 1]``."""
    x = check_images(images)
    if std < 0:
        raise ValueError(f"std must be >= 0, got {std}")
    noise = torch.randn(x.shape, generator=generator).to(x.device, x.dtype)
    return (x + std * noise).clamp(0.0, 1.0)


def patch_drop(images: torch.Tensor, p: float = 0.1, *, patch_size: int = 2,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """Set each ``patch_size`` x ``patch_size`` patch to 0 with probability ``p``."""
    x = check_images(images)
    if not 0.0 <= p < 1.0:
        raise ValueError(f"p must be in [0, 1), got {p}")
    b, h, w = x.shape
    if h % patch_size or w % patch_size:
        raise ValueError(f"image size {h}x{w} is not divisible by patch_size={patch_size}")
    keep = torch.rand(b, h // patch_size, w // patch_size, generator=generator) >= p
    keep = keep.repeat_interleave(patch_size, 1).repeat_interleave(patch_size, 2)
    return x * keep.to(x.device, x.dtype)


def random_contrast(images: torch.Tensor, low: float = 0.7, high: float = 1.0, *,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """Multiply each image by a factor in ``[low, high]`` (fainter or darker ink)."""
    x = check_images(images)
    if not 0 < low <= high:
        raise ValueError(f"need 0 < low <= high, got low={low}, high={high}")
    factor = _uniform(len(x), low, high, generator).to(x.device, x.dtype)
    return (x * factor[:, None, None]).clamp(0.0, 1.0)


@dataclass(frozen=True)
class AugmentConfig:
    """Strengths of the augmentations :func:`augment` applies, in this order."""

    max_rotation: float = 15.0
    max_shear: float = 0.0
    scale_low: float = 0.85
    scale_high: float = 1.1
    max_shift: float = 1.0
    contrast_low: float = 0.7
    noise_std: float = 0.1
    patch_drop: float = 0.1

    def as_dict(self) -> dict:
        return asdict(self)


def augment(images: torch.Tensor, config: AugmentConfig = AugmentConfig(), *,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """One random view of each image: affine, contrast, patch drop, then noise."""
    if not isinstance(config, AugmentConfig):
        raise TypeError(f"config must be an AugmentConfig, got {type(config).__name__}")
    c = config
    x = random_affine(images, max_rotation=c.max_rotation, scale=(c.scale_low, c.scale_high),
                      max_shift=c.max_shift, max_shear=c.max_shear, generator=generator)
    if c.contrast_low < 1.0:
        x = random_contrast(x, c.contrast_low, 1.0, generator=generator)
    if c.patch_drop > 0:
        x = patch_drop(x, c.patch_drop, generator=generator)
    if c.noise_std > 0:
        x = add_noise(x, c.noise_std, generator=generator)
    return x


# --------------------------------------------------------------------------- DiffAugment
_DIFF_OPS = ("translation", "cutout")


def _diff_ops(policy: str) -> list[str]:
    """The operations of a :func:`diff_augment` policy, or a ``ValueError`` naming the unknown ones."""
    if not isinstance(policy, str):
        raise TypeError(f"policy must be a comma-separated str such as 'translation,cutout', "
                        f"got {type(policy).__name__}")
    ops = [p.strip() for p in policy.split(",") if p.strip()]
    unknown = sorted(set(ops) - set(_DIFF_OPS))
    if unknown:
        raise ValueError(f"unknown augmentation(s) {unknown} in policy {policy!r}; use "
                         f"{', '.join(repr(o) for o in _DIFF_OPS)} (or '' for none)")
    return ops


def _translate(x: torch.Tensor, shift: int, generator: torch.Generator | None) -> torch.Tensor:
    b, h, w = x.shape
    dy = torch.randint(-shift, shift + 1, (b, 1, 1), generator=generator).to(x.device)
    dx = torch.randint(-shift, shift + 1, (b, 1, 1), generator=generator).to(x.device)
    rows = torch.arange(h, device=x.device)[None, :, None] - dy  # source row of each pixel
    cols = torch.arange(w, device=x.device)[None, None, :] - dx
    inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
    flat = (rows.clamp(0, h - 1) * w + cols.clamp(0, w - 1)).expand(b, h, w).reshape(b, -1)
    moved = x.reshape(b, -1).gather(1, flat).view(b, h, w)
    return moved * inside


def _cutout(x: torch.Tensor, size: int, generator: torch.Generator | None) -> torch.Tensor:
    b, h, w = x.shape
    cy = torch.randint(0, h, (b, 1, 1), generator=generator).to(x.device)
    cx = torch.randint(0, w, (b, 1, 1), generator=generator).to(x.device)
    rows = torch.arange(h, device=x.device)[None, :, None]
    cols = torch.arange(w, device=x.device)[None, None, :]
    lo = size // 2
    hole = (rows >= cy - lo) & (rows < cy - lo + size) & (cols >= cx - lo) & (cols < cx - lo + size)
    return x * ~hole


def diff_augment(images: torch.Tensor, policy: str = "translation,cutout", *, shift: int = 1,
                 cutout: int = 2, generator: torch.Generator | None = None) -> torch.Tensor:
    """Differentiable augmentation (DiffAugment) of a batch of ``(B, H, W)`` images.

    ``translation`` shifts each image by up to ``shift`` whole pixels (zeros fill in);
    ``cutout`` zeroes one random ``cutout x cutout`` square per image (centred on a
    random pixel, so it may run off the edge). Both are gathers and masks, so
    gradients flow back to the generator. A GAN must apply the same policy to real
    and fake images, or the generator learns to produce augmented digits.
    """
    x = check_images(images)
    ops = _diff_ops(policy)
    for name, value in (("shift", shift), ("cutout", cutout)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{name} must be a non-negative int (pixels), got {value!r}")
    for op in ops:
        if op == "translation" and shift > 0:
            x = _translate(x, shift, generator)
        elif op == "cutout" and cutout > 0:
            x = _cutout(x, cutout, generator)
    return x
