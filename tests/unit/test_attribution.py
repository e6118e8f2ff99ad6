"""utils.attribution: rollout, saliency, Integrated Gradients (against captum), deletion curves."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from utils import attribution as A


def _maps(seed, layers=3, batch=2, heads=4, tokens=5):
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(torch.randn(layers, batch, heads, tokens, tokens, generator=g,
                                     dtype=torch.float64), -1)


def _net(seed=0, d_in=12, classes=3):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(d_in, 16), torch.nn.Tanh(),
                               torch.nn.Linear(16, classes)).double()


# --------------------------------------------------------------------------- rollout
def test_rollout_by_hand_and_rows_sum_to_one():
    att = _maps(0)
    want = None
    for layer in att:
        a = 0.5 * layer.mean(1) + 0.5 * torch.eye(5, dtype=att.dtype)
        a = a / a.sum(-1, keepdim=True)
        want = a if want is None else a @ want
    got = A.attention_rollout(list(att))
    assert torch.allclose(got, want, atol=1e-12)
    assert torch.allclose(A.attention_rollout(att), want, atol=1e-12)
    assert torch.allclose(got.sum(-1), torch.ones(2, 5, dtype=att.dtype))


def test_rollout_options():
    att = _maps(1, layers=1)
    plain = A.attention_rollout(att, residual=False)
    assert torch.allclose(plain, att[0].mean(1))
    mx = A.attention_rollout(att, head_fusion="max", residual=False)
    assert torch.allclose(mx, att[0].amax(1) / att[0].amax(1).sum(-1, keepdim=True))
    # identity maps roll out to the identity
    eye = torch.eye(4).expand(2, 1, 3, 4, 4)
    assert torch.allclose(A.attention_rollout(eye), torch.eye(4).expand(1, 4, 4))


@pytest.mark.parametrize("bad,error", [
    ("maps", TypeError), ([], TypeError), (torch.ones(2, 3, 3), ValueError),
    (torch.ones(1, 1, 1, 3, 4), ValueError), (torch.ones(1, 1, 1, 3, 3, dtype=torch.long), TypeError),
    (torch.full((1, 1, 1, 2, 2), float("nan")), ValueError), (-torch.ones(1, 1, 1, 2, 2), ValueError),
    ([torch.ones(1, 1, 2, 2), torch.ones(1, 1, 3, 3)], ValueError),
])
def test_rollout_rejects_bad_maps(bad, error):
    with pytest.raises(error):
        A.attention_rollout(bad)


def test_rollout_rejects_unknown_fusion_and_zero_rows():
    with pytest.raises(ValueError, match="head_fusion"):
        A.attention_rollout(_maps(0), head_fusion="median")
    with pytest.raises(ValueError, match="sums to zero"):
        A.attention_rollout(torch.zeros(1, 1, 1, 3, 3), residual=False)


# --------------------------------------------------------------------------- gradients
def test_saliency_and_ig_match_captum():
    from captum.attr import IntegratedGradients, Saliency

    net = _net()
    x = torch.randn(6, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    target = torch.tensor([0, 1, 2, 0, 1, 2])
    theirs = Saliency(net).attribute(x.clone().requires_grad_(True), target=target)
    assert torch.allclose(A.saliency(net, x, target), theirs, atol=1e-12)
    base = torch.full_like(x, 0.3)
    for method in ("left", "right", "middle"):
        mine = A.integrated_gradients(net, x, base, target, steps=20, method=method, batch_size=7)
        theirs = IntegratedGradients(net).attribute(x, baselines=base, target=target, n_steps=20,
                                                    method=f"riemann_{method}")
        assert torch.allclose(mine, theirs, atol=1e-6), method


def test_ig_completeness_improves_with_steps():
    net = _net(1)
    x = torch.randn(4, 12, dtype=torch.float64)
    errors = []
    for steps in (2, 8, 32, 128):
        attr, delta = A.integrated_gradients(net, x, None, 1, steps=steps, method="trapezoid",
                                             return_delta=True)
        with torch.no_grad():
            direct = attr.sum(1) - (net(x)[:, 1] - net(torch.zeros_like(x))[:, 1])
        assert torch.allclose(delta, direct, atol=1e-12)
        errors.append(delta.abs().max().item())
    assert errors[-1] < 1e-4 and all(a > b for a, b in zip(errors, errors[1:], strict=False))


def test_ig_of_a_linear_model_is_exact_and_accepts_scalar_outputs():
    w = torch.randn(5, dtype=torch.float64)
    x = torch.randn(3, 5, dtype=torch.float64)
    attr = A.integrated_gradients(lambda z: z @ w, x, 1.0, steps=1)
    assert torch.allclose(attr, (x - 1.0) * w)
    one_image_base = torch.zeros(5, dtype=torch.float64)
    assert torch.allclose(A.integrated_gradients(lambda z: z @ w, x, one_image_base, steps=3), x * w)


def test_riemann_rules():
    for method in A.RIEMANN_METHODS:
        alphas, weights = A.riemann_alphas(5, method)
        assert weights.sum().item() == pytest.approx(1.0)
        assert float(alphas.min()) >= 0.0 and float(alphas.max()) <= 1.0
    assert torch.allclose(A.riemann_alphas(4, "middle")[0], torch.tensor([0.125, 0.375, 0.625, 0.875],
                                                                          dtype=torch.float64))


@pytest.mark.parametrize("steps", [0, -3, 2.5, True, "10"])
def test_steps_must_be_a_positive_int(steps):
    with pytest.raises(ValueError, match="steps"):
        A.integrated_gradients(_net(), torch.randn(2, 12, dtype=torch.float64), target=0, steps=steps)


def test_trapezoid_needs_two_steps_and_unknown_method_fails():
    with pytest.raises(ValueError, match="trapezoid"):
        A.riemann_alphas(1, "trapezoid")
    with pytest.raises(ValueError, match="method"):
        A.riemann_alphas(4, "simpson")


def test_non_differentiable_inputs_and_outputs_are_rejected():
    net = _net()
    with pytest.raises(TypeError, match="floating point"):
        A.saliency(net, torch.ones(2, 12, dtype=torch.long), 0)
    with pytest.raises(TypeError, match="floating point"):
        A.integrated_gradients(net, torch.ones(2, 12, dtype=torch.int32), target=0)

    def no_grad_net(x):
        with torch.no_grad():
            return net(x)

    with pytest.raises(ValueError, match="does not require grad"):
        A.saliency(no_grad_net, torch.randn(2, 12, dtype=torch.float64), 0)
    with pytest.raises(ValueError, match="does not require grad"):
        A.integrated_gradients(lambda x: net(x).detach(), torch.randn(2, 12, dtype=torch.float64), target=0)
    with pytest.raises(TypeError, match="tensor"):
        A.saliency(lambda x: net(x).detach().numpy(), torch.randn(2, 12, dtype=torch.float64), 0)


def test_bad_shapes_targets_and_baselines():
    net, x = _net(), torch.randn(3, 12, dtype=torch.float64)
    with pytest.raises(ValueError, match="pass target"):
        A.saliency(net, x)
    with pytest.raises(ValueError, match="target"):
        A.saliency(net, x, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="lie in"):
        A.saliency(net, x, 3)
    with pytest.raises(TypeError, match="integer"):
        A.saliency(net, x, torch.tensor([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match="one output row per input"):
        A.saliency(lambda z: net(z).sum(), x)
    with pytest.raises(ValueError, match="target is given"):
        A.saliency(lambda z: net(z)[:, 0], x, 0)
    with pytest.raises(ValueError, match="baseline"):
        A.integrated_gradients(net, x, torch.zeros(3, 11, dtype=torch.float64), 0)
    with pytest.raises(TypeError, match="baseline"):
        A.integrated_gradients(net, x, "zeros", 0)
    with pytest.raises(ValueError, match="NaN"):
        A.saliency(net, torch.full((2, 12), float("nan"), dtype=torch.float64), 0)
    with pytest.raises(ValueError, match="non-empty"):
        A.saliency(net, torch.zeros(0, 12, dtype=torch.float64), 0)
    with pytest.raises(ValueError, match="batch_size"):
        A.integrated_gradients(net, x, None, 0, batch_size=0)


# --------------------------------------------------------------------------- faithfulness
def test_patch_scores_sum_each_patch():
    s = torch.arange(2 * 8 * 8, dtype=torch.float64).reshape(2, 8, 8)
    got = A.patch_scores(s, 4)
    assert got.shape == (2, 4)
    assert got[0, 1].item() == s[0, :4, 4:].sum().item() and got[1, 2].item() == s[1, 4:, :4].sum().item()
    with pytest.raises(TypeError):
        A.patch_scores(s.long(), 4)
    with pytest.raises(ValueError):
        A.patch_scores(s[0], 4)
    with pytest.raises(ValueError):
        A.patch_scores(s, 0)


def test_deletion_and_insertion_curves():
    images = torch.rand(3, 8, 8, dtype=torch.float64)
    ink = lambda x: x.sum((1, 2))
    order = torch.tensor([[0, 1, 2, 3], [3, 2, 1, 0], [1, 3, 0, 2]])
    curve = A.deletion_curve(ink, images, order, 4)
    per_patch = A.patch_scores(images, 4)
    want = per_patch.sum(1, keepdim=True) - torch.cat(
        [torch.zeros(3, 1, dtype=torch.float64), per_patch.gather(1, order).cumsum(1)], 1)
    assert torch.allclose(curve, want)
    assert torch.allclose(curve[:, -1], torch.zeros(3, dtype=torch.float64))
    # insertion: start from the fill and put the patches back in order
    insertion = A.deletion_curve(ink, torch.zeros_like(images), order, 4, fill=images)
    assert torch.allclose(insertion, per_patch.sum(1, keepdim=True) - want)
    mean_img = images.mean(0)
    assert torch.allclose(A.deletion_curve(ink, images, order, 4, fill=mean_img)[:, -1],
                          mean_img.sum().expand(3))


def test_deletion_curve_validates():
    images, ink = torch.rand(2, 8, 8), lambda x: x.sum((1, 2))
    with pytest.raises(ValueError, match="permutation"):
        A.deletion_curve(ink, images, torch.tensor([[0, 0, 1, 2], [0, 1, 2, 3]]), 4)
    with pytest.raises(ValueError, match="order"):
        A.deletion_curve(ink, images, torch.tensor([[0, 1, 2, 3]]), 4)
    with pytest.raises(TypeError, match="integer"):
        A.deletion_curve(ink, images, torch.rand(2, 4), 4)
    with pytest.raises(ValueError, match="fill"):
        A.deletion_curve(ink, images, torch.arange(4).expand(2, 4), 4, fill=torch.zeros(3, 3))
    with pytest.raises(ValueError, match="one value per image"):
        A.deletion_curve(lambda x: x, images, torch.arange(4).expand(2, 4), 4)
    with pytest.raises(ValueError, match="images"):
        A.deletion_curve(ink, images.long(), torch.arange(4).expand(2, 4), 4)


def test_deletion_curve_rejects_bad_patch_sizes_and_non_finite_values():
    images, ink, order = torch.rand(2, 8, 8), lambda x: x.sum((1, 2)), torch.arange(4).expand(2, 4)
    for size in (0, -4, 2.0, True):
        with pytest.raises(ValueError, match="patch_size"):
            A.deletion_curve(ink, images, order, size)
    with pytest.raises(ValueError, match="does not divide"):
        A.deletion_curve(ink, images, order, 3)
    with pytest.raises(ValueError, match="images contain NaN"):
        A.deletion_curve(ink, torch.full((2, 8, 8), float("nan")), order, 4)
    with pytest.raises(ValueError, match="fill contains NaN"):
        A.deletion_curve(ink, images, order, 4, fill=float("nan"))
    with pytest.raises(ValueError, match="fill contains NaN"):
        A.deletion_curve(ink, images, order, 4, fill=torch.full((8, 8), float("inf")))
    with pytest.raises(ValueError, match="score returned NaN"):
        A.deletion_curve(lambda x: x.sum((1, 2)) * float("nan"), images, order, 4)
    # a numpy integer patch size is a valid size
    assert torch.equal(A.deletion_curve(ink, images, order, np.int64(4)), A.deletion_curve(ink, images, order, 4))


def test_deletion_curve_and_patch_scores_on_non_square_images():
    images, ink = torch.rand(2, 8, 12, dtype=torch.float64), lambda x: x.sum((1, 2))
    per_patch = A.patch_scores(images, 4)                            # 2 rows of 3 patches
    assert per_patch.shape == (2, 6)
    assert torch.allclose(per_patch[:, 1], images[:, :4, 4:8].sum((1, 2)))
    order = torch.tensor([[5, 0, 1, 2, 3, 4], [0, 1, 2, 3, 4, 5]])
    curve = A.deletion_curve(ink, images, order, 4)
    want = per_patch.sum(1, keepdim=True) - torch.cat(
        [torch.zeros(2, 1, dtype=torch.float64), per_patch.gather(1, order).cumsum(1)], 1)
    assert torch.allclose(curve, want)


def test_gradients_reject_non_finite_outputs_and_live_batch_layers():
    net, x = _net(), torch.randn(3, 12, dtype=torch.float64)
    nan_net = lambda z: net(z) * float("nan")
    with pytest.raises(ValueError, match="NaN or inf"):
        A.saliency(nan_net, x, 0)
    with pytest.raises(ValueError, match="NaN or inf"):
        A.integrated_gradients(nan_net, x, None, 0, steps=4)
    with pytest.raises(ValueError, match="NaN or inf"):
        A.saliency(lambda z: net(z) / 0.0, x, 0)
    for layer in (torch.nn.BatchNorm1d(3), torch.nn.Dropout(0.5)):
        model = torch.nn.Sequential(torch.nn.Linear(12, 3), layer).double()
        with pytest.raises(ValueError, match=r"training mode.*\.eval\(\)"):
            A.saliency(model, x, 0)
        with pytest.raises(ValueError, match="training mode"):
            A.integrated_gradients(model, x, None, 0, steps=4)
        model.eval()
        assert A.saliency(model, x, 0).shape == x.shape
    # dropout with p = 0 changes nothing, and a plain module in training mode is fine
    quiet = torch.nn.Sequential(torch.nn.Linear(12, 3), torch.nn.Dropout(0.0)).double()
    assert A.saliency(quiet, x, 0).shape == x.shape
    with pytest.raises(TypeError, match="callable"):
        A.saliency("model", x, 0)


def test_ig_accepts_numpy_integer_sizes():
    net, x = _net(), torch.randn(2, 12, dtype=torch.float64)
    want = A.integrated_gradients(net, x, None, 0, steps=4, batch_size=4)
    got = A.integrated_gradients(net, x, None, 0, steps=np.int64(4), batch_size=np.int64(4))
    assert torch.allclose(got, want)
    for bad in (0, 2.5, True, np.float64(4)):
        with pytest.raises(ValueError, match="batch_size"):
            A.integrated_gradients(net, x, None, 0, steps=4, batch_size=bad)


def test_curve_auc():
    c = torch.tensor([[1.0, 0.5, 0.0], [1.0, 1.0, 1.0]])
    assert torch.allclose(A.curve_auc(c), torch.tensor([0.5, 1.0]))
    assert torch.allclose(A.curve_auc(np.array([[0, 1]])), torch.tensor([0.5], dtype=torch.float64))
    with pytest.raises(ValueError):
        A.curve_auc(torch.ones(3))
    with pytest.raises(ValueError):
        A.curve_auc(torch.tensor([[1.0, float("nan")]]))


def test_rank_correlation_matches_scipy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 7)), rng.normal(size=(5, 7))
    b[0] = a[0] * 2 + 1
    a[1, :3] = 1.0                                                   # ties
    got = A.rank_correlation(torch.tensor(a), b)
    want = [spearmanr(a[i], b[i]).statistic for i in range(5)]
    assert np.allclose(got, want) and got[0] == pytest.approx(1.0)
    assert np.isnan(A.rank_correlation(np.ones((1, 4)), rng.normal(size=(1, 4)))[0])
    with pytest.raises(ValueError):
        A.rank_correlation(a, b[:, :3])
    with pytest.raises(ValueError):
        A.rank_correlation(a[0], b[0])
    with pytest.raises(TypeError):
        A.rank_correlation(np.array([["a", "b"]]), np.array([["c", "d"]]))
