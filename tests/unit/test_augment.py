"""Tests for utils.augment: geometry against a hand-made case, determinism, ranges, bad input."""

import numpy as np
import pytest
import torch

from utils import augment as A


def _digits(n=6):
    from utils.data import load_digits_images

    return torch.tensor(load_digits_images()[0][:n])


def test_identity_affine_leaves_images_unchanged():
    x = _digits()
    out = A.random_affine(x, max_rotation=0.0, scale=(1.0, 1.0), max_shift=0.0)
    assert torch.allclose(out, x, atol=1e-6)


def test_whole_pixel_shift_matches_roll():
    x = torch.zeros(1, 8, 8)
    x[0, 3, 2] = 1.0
    mats = A.affine_matrices(torch.zeros(1), torch.ones(1), torch.tensor([[1.0, 2.0]]), 8)
    grid = torch.nn.functional.affine_grid(mats, [1, 1, 8, 8], align_corners=False)
    out = torch.nn.functional.grid_sample(x[:, None], grid, align_corners=False)[:, 0]
    # shift (x=+1, y=+2) pixels: the ink moves one column right and two rows down
    assert out[0, 5, 3] == pytest.approx(1.0, abs=1e-6)
    assert out.sum() == pytest.approx(1.0, abs=1e-6)


def test_rotation_by_90_degrees_matches_rot90():
    x = torch.rand(2, 8, 8)
    mats = A.affine_matrices(torch.full((2,), 90.0), torch.ones(2), torch.zeros(2, 2), 8)
    grid = torch.nn.functional.affine_grid(mats, [2, 1, 8, 8], align_corners=False)
    out = torch.nn.functional.grid_sample(x[:, None], grid, align_corners=False)[:, 0]
    # with the y axis pointing down, +90 degrees turns the picture clockwise
    assert torch.allclose(out, torch.rot90(x, k=-1, dims=(1, 2)), atol=1e-5)


def test_augment_is_deterministic_with_a_generator_and_stays_in_range():
    x = _digits()
    a = A.augment(x, generator=torch.Generator().manual_seed(1))
    b = A.augment(x, generator=torch.Generator().manual_seed(1))
    c = A.augment(x, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == x.shape and a.min() >= 0 and a.max() <= 1


def test_patch_drop_zeroes_whole_patches():
    x = torch.ones(4, 8, 8)
    out = A.patch_drop(x, 0.5, generator=torch.Generator().manual_seed(0))
    blocks = out.reshape(4, 4, 2, 4, 2).permute(0, 1, 3, 2, 4).reshape(4, 16, 4)
    assert set(blocks.sum(-1).unique().tolist()) <= {0.0, 4.0}
    assert 0 < (blocks.sum(-1) == 0).float().mean() < 1


def test_noise_and_contrast():
    x = torch.full((3, 8, 8), 0.5)
    noisy = A.add_noise(x, 0.1, generator=torch.Generator().manual_seed(0))
    assert 0.05 < float((noisy - x).std()) < 0.15
    faint = A.random_contrast(x, 0.5, 0.5)
    assert torch.allclose(faint, torch.full_like(x, 0.25))
    assert torch.equal(A.add_noise(x, 0.0), x)


def test_shear_slants_a_vertical_bar():
    x = torch.zeros(1, 8, 8)
    x[0, :, 3:5] = 1.0
    mats = A.affine_matrices(torch.zeros(1), torch.ones(1), torch.zeros(1, 2), 8,
                             torch.tensor([30.0]))
    grid = torch.nn.functional.affine_grid(mats, [1, 1, 8, 8], align_corners=False)
    out = torch.nn.functional.grid_sample(x[:, None], grid, align_corners=False)[0, 0]
    cols = (out * torch.arange(8.0)).sum(1) / out.sum(1)   # centre of ink, row by row
    assert cols[0] < cols[-1]                               # top leans left, bottom right


@pytest.mark.parametrize("bad, err, match", [
    (np.zeros((2, 8, 8), dtype=np.float32), TypeError, "torch.Tensor"),
    (torch.zeros(8, 8), ValueError, r"\(B, H, W\)"),
    (torch.zeros(0, 8, 8), ValueError, "empty"),
    (torch.zeros(2, 8, 8, dtype=torch.int64), TypeError, "floating"),
    (torch.full((2, 8, 8), float("nan")), ValueError, "NaN"),
])
def test_bad_images(bad, err, match):
    with pytest.raises(err, match=match):
        A.augment(bad)


def test_bad_parameters():
    x = torch.rand(2, 8, 8)
    with pytest.raises(ValueError, match="p must be"):
        A.patch_drop(x, 1.5)
    with pytest.raises(ValueError, match="divisible"):
        A.patch_drop(torch.rand(2, 7, 7), 0.1)
    with pytest.raises(ValueError, match="std"):
        A.add_noise(x, -1.0)
    with pytest.raises(ValueError, match="scale"):
        A.random_affine(x, scale=(1.2, 0.8))
    with pytest.raises(ValueError, match="max_rotation"):
        A.random_affine(x, max_rotation=-1.0)
    with pytest.raises(ValueError, match="low"):
        A.random_contrast(x, 0.0, 1.0)
    with pytest.raises(TypeError, match="AugmentConfig"):
        A.augment(x, {"noise_std": 0.1})
    with pytest.raises(ValueError, match="shift"):
        A.affine_matrices(torch.zeros(2), torch.ones(2), torch.zeros(3, 2), 8)


def test_diff_augment():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(64, 8, 8)
    assert torch.equal(A.diff_augment(x, "translation", shift=0, generator=g), x)
    assert torch.equal(A.diff_augment(x, "", generator=g), x)
    t = A.diff_augment(x, "translation", generator=g)
    assert t.shape == x.shape and not torch.equal(t, x)
    # a shifted image keeps its pixels, except the row/column pushed off the edge
    one = torch.zeros(1, 8, 8)
    one[0, 4, 4] = 1.0
    moved = A.diff_augment(one, "translation", generator=g)
    assert moved.sum() == 1.0
    r, c = (int(i) for i in moved[0].nonzero()[0])
    assert abs(r - 4) <= 1 and abs(c - 4) <= 1
    c = A.diff_augment(torch.ones(64, 8, 8), "cutout", cutout=2, generator=g)
    zeros = (c == 0).flatten(1).sum(1)
    assert zeros.min() >= 1 and zeros.max() == 4
    y = x.clone().requires_grad_(True)
    A.diff_augment(y, generator=g).sum().backward()  # differentiable
    assert y.grad is not None
    same = [A.diff_augment(x, generator=torch.Generator().manual_seed(3)) for _ in range(2)]
    assert torch.equal(*same)


@pytest.mark.parametrize("kw, err, match", [
    (dict(policy="rotate"), ValueError, "unknown augmentation"),
    (dict(policy=None), TypeError, "policy must be"),
    (dict(shift=-1), ValueError, "shift must be a non-negative int"),
    (dict(cutout=1.5), ValueError, "cutout must be a non-negative int"),
    (dict(images=torch.rand(8, 8)), ValueError, r"\(B, H, W\)"),
    (dict(images=torch.zeros(2, 8, 8, dtype=torch.long)), TypeError, "floating"),
])
def test_diff_augment_bad_inputs(kw, err, match):
    images = kw.pop("images", torch.rand(2, 8, 8))
    with pytest.raises(err, match=match):
        A.diff_augment(images, **kw)
