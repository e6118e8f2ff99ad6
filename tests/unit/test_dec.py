"""Tests for utils.dec: the DEC formulas against torch/sklearn, and a tiny end-to-end run."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from utils import dec
from utils.transformer import PatchEncoder, PatchEncoderConfig

TINY = PatchEncoderConfig(d_model=16, n_heads=2, n_layers=1, d_ff=32)


def test_soft_assignment_matches_the_formula_and_sums_to_one():
    g = torch.Generator().manual_seed(0)
    z, mu = torch.randn(7, 3, generator=g), torch.randn(4, 3, generator=g)
    for alpha in (1.0, 2.5):
        kernel = (1 + torch.cdist(z, mu) ** 2 / alpha) ** (-(alpha + 1) / 2)
        want = kernel / kernel.sum(1, keepdim=True)
        q = dec.soft_assignment(z, mu, alpha)
        assert torch.allclose(q, want, atol=1e-6)
        assert torch.allclose(q.sum(1), torch.ones(7))


def test_soft_assignment_is_finite_far_from_every_centroid():
    q = dec.soft_assignment(torch.full((2, 3), 1e6), torch.randn(3, 3))
    assert torch.isfinite(q).all() and torch.allclose(q.sum(1), torch.ones(2))


def test_target_distribution_sharpens_and_balances():
    q = torch.tensor([[0.6, 0.4], [0.9, 0.1], [0.5, 0.5]])
    p = dec.target_distribution(q)
    f = q.sum(0)
    want = q**2 / f
    want = want / want.sum(1, keepdim=True)
    assert torch.allclose(p, want)
    assert p[1, 0] > q[1, 0]                      # confident rows get more confident
    assert torch.allclose(p.sum(1), torch.ones(3))


def test_dec_loss_equals_torch_kl_div():
    g = torch.Generator().manual_seed(1)
    q = torch.softmax(torch.randn(5, 3, generator=g), 1)
    p = dec.target_distribution(q)
    want = F.kl_div(q.log(), p, reduction="batchmean")
    assert torch.allclose(dec.dec_loss(q, p), want, atol=1e-6)
    assert float(dec.dec_loss(p, p)) == pytest.approx(0.0, abs=1e-6)


def test_dec_loss_has_no_gradient_through_the_target():
    logits = torch.randn(4, 3, generator=torch.Generator().manual_seed(2), requires_grad=True)
    q = torch.softmax(logits, 1)
    (grad,) = torch.autograd.grad(dec.dec_loss(q, dec.target_distribution(q)), logits)
    # with P a constant, d/dlogits KL(P || softmax(logits)) / N = (q - p) / N
    q_const = q.detach()
    p_const = dec.target_distribution(q_const)
    torch.testing.assert_close(grad, (q_const - p_const) / len(q_const))
    # ... which is not the gradient when P is differentiated too
    logits2 = logits.detach().clone().requires_grad_()
    q2 = torch.softmax(logits2, 1)
    p2 = dec.target_distribution(q2)
    kl = (p2 * (p2.log() - q2.log())).sum() / len(q2)
    (grad_through_p,) = torch.autograd.grad(kl, logits2)
    assert not torch.allclose(grad, grad_through_p, atol=1e-4)


@pytest.mark.parametrize("fn, args, err, match", [
    (dec.soft_assignment, (torch.randn(3, 2), torch.randn(2, 3)), ValueError, "features"),
    (dec.soft_assignment, (torch.randn(0, 2), torch.randn(2, 2)), ValueError, "non-empty"),
    (dec.soft_assignment, (torch.full((3, 2), float("nan")), torch.randn(2, 2)), ValueError, "NaN"),
    (dec.soft_assignment, (np.ones((3, 2)), torch.randn(2, 2)), TypeError, "torch.Tensor"),
    (dec.target_distribution, (torch.tensor([[0.5, 0.9]]),), ValueError, "sum to 1"),
    (dec.dec_loss, (torch.full((2, 2), 0.5), torch.full((3, 2), 0.5)), ValueError, "same shape"),
])
def test_bad_input(fn, args, err, match):
    with pytest.raises(err, match=match):
        fn(*args)


def test_soft_assignment_bad_alpha():
    with pytest.raises(ValueError, match="alpha"):
        dec.soft_assignment(torch.randn(3, 2), torch.randn(2, 2), alpha=0.0)


def test_init_centroids():
    rng = np.random.default_rng(0)
    f = np.concatenate([rng.normal(0, 0.1, (20, 2)), rng.normal(5, 0.1, (20, 2))])
    c, lab = dec.init_centroids(f, 2, "kmeans")
    assert c.shape == (2, 2) and lab.shape == (40,) and len(set(lab[:20])) == 1
    c, lab = dec.init_centroids(f, 2, "random", seed=3)
    assert c.shape == (2, 2) and lab.max() <= 1
    with pytest.raises(ValueError, match="larger than the number of points"):
        dec.init_centroids(f[:3], 5)
    with pytest.raises(ValueError, match="NaN"):
        dec.init_centroids(np.full((4, 2), np.nan), 2)
    with pytest.raises(ValueError, match="non-empty"):
        dec.init_centroids(np.zeros((0, 2)), 2)
    with pytest.raises(ValueError, match="method"):
        dec.init_centroids(f, 2, "spectral")


def test_dec_module_shapes_and_errors():
    enc = PatchEncoder(TINY)
    m = dec.DEC(enc, np.zeros((3, 16), np.float32))
    q = m(torch.rand(5, 8, 8))
    assert q.shape == (5, 3) and torch.allclose(q.sum(1), torch.ones(5))
    assert {n for n, _ in m.named_parameters()} >= {"centroids"}
    with pytest.raises(ValueError, match="16"):
        dec.DEC(enc, np.zeros((3, 8), np.float32))
    with pytest.raises(TypeError, match="PatchEncoder"):
        dec.DEC(torch.nn.Linear(2, 2), np.zeros((3, 2), np.float32))


def test_run_dec_tiny():
    from utils.augment import AugmentConfig

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.random((30, 8, 8), dtype=np.float32)
    y = np.repeat(np.arange(3), 10)
    enc = PatchEncoder(TINY).requires_grad_(False)   # as models.load returns it
    before = enc.embed.weight.detach().clone()
    model, hist = dec.run_dec(enc, x, 3, epochs=2, batch_size=8, labels=y, seed=0, lr=1e-3,
                              augment=AugmentConfig())
    assert set(hist) == {"loss", "changed", "ari", "acc"}
    assert len(hist["loss"]) == 2 and len(hist["changed"]) == 2
    assert len(hist["ari"]) == 3 and len(hist["acc"]) == 3
    assert all(0 <= c <= 1 for c in hist["changed"])
    assert not torch.equal(before, model.encoder.embed.weight)   # the encoder is trained too
    _, hist2 = dec.run_dec(PatchEncoder(TINY), x, 3, epochs=1, init="random")
    assert "ari" not in hist2
    with pytest.raises(ValueError, match="labels"):
        dec.run_dec(PatchEncoder(TINY), x, 3, epochs=1, labels=y[:5])
    with pytest.raises(ValueError, match="NaN"):
        dec.run_dec(PatchEncoder(TINY), np.full((4, 8, 8), np.nan, np.float32), 2, epochs=1)
    with pytest.raises(TypeError, match="floating point"):
        dec.run_dec(PatchEncoder(TINY), np.zeros((4, 8, 8), np.int64), 2, epochs=1)
    with pytest.raises(ValueError, match="larger than the number of points"):
        dec.run_dec(PatchEncoder(TINY), x[:2], 3, epochs=1)


def test_run_dec_is_deterministic_and_follows_the_seed_offset(monkeypatch):
    x = np.random.default_rng(1).random((24, 8, 8), dtype=np.float32)

    def weights():
        torch.manual_seed(0)
        model, _ = dec.run_dec(PatchEncoder(TINY), x, 3, epochs=1, batch_size=8, lr=1e-3)
        return [t.clone() for t in model.state_dict().values()]

    monkeypatch.delenv("TFUL_SEED_OFFSET", raising=False)
    a, b = weights(), weights()
    assert all(torch.equal(s, t) for s, t in zip(a, b, strict=True))
    monkeypatch.setenv("TFUL_SEED_OFFSET", "3")
    assert not all(torch.equal(s, t) for s, t in zip(a, weights(), strict=True))


def test_checks_accept_the_reference_and_reject_mistakes(capsys):
    from utils import checks

    assert checks.check_soft_assignment(dec.soft_assignment, seed=0)
    assert not checks.check_soft_assignment(
        lambda z, mu, a: torch.softmax(-torch.cdist(z, mu) ** 2, 1), seed=0)
    assert checks.check_target_distribution(dec.target_distribution, seed=0)
    assert not checks.check_target_distribution(lambda q: q**2 / (q**2).sum(1, keepdim=True),
                                                seed=0)
    assert "Hint" in capsys.readouterr().out
