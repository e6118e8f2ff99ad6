"""Tests for utils.vae: the Transformer-VAE, its ELBO parts and collapse diagnostics."""

import math

import pytest
import torch

from utils import checks, models, vae

TINY = vae.VAEConfig(latent_dim=3, d_model=16, n_heads=2, enc_layers=1, dec_layers=1, d_ff=32,
                     epochs=2, batch_size=16, warmup_epochs=1, free_bits=0.1)


def test_shapes_and_sampling():
    model = vae.TransformerVAE(TINY)
    x = torch.rand(5, 8, 8)
    logits, mu, logvar = model(x)
    assert logits.shape == (5, 8, 8, 17) and mu.shape == logvar.shape == (5, 3)
    s = model.sample(4, generator=torch.Generator().manual_seed(0))
    assert s.shape == (4, 8, 8) and 0 <= s.min() and s.max() <= 1
    assert model.reconstruct(x).shape == (5, 8, 8)
    shared = vae.TransformerVAE(vae.VAEConfig(**{**TINY.as_dict(), "z_to_tokens": "shared"}))
    assert shared.decode(torch.zeros(2, 3)).shape == (2, 8, 8, 17)


def test_gaussian_kl_matches_torch_distributions():
    mu, logvar = torch.randn(4, 6), torch.randn(4, 6)
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros(4, 6), torch.ones(4, 6))
    torch.testing.assert_close(vae.gaussian_kl(mu, logvar), torch.distributions.kl_divergence(q, p))
    torch.testing.assert_close(vae.kl_per_dimension(mu, logvar),
                               torch.distributions.kl_divergence(q, p).mean(0))
    assert checks.check_gaussian_kl(vae.gaussian_kl)
    assert not checks.check_gaussian_kl(lambda m, lv: vae.gaussian_kl(m, lv).sum(-1), seed=0)


def test_reparameterize_moments_and_gradient():
    mu = torch.tensor([1.0, -2.0], requires_grad=True)
    logvar = torch.tensor([0.0, math.log(4.0)], requires_grad=True)
    z = vae.reparameterize(mu.expand(20000, 2), logvar.expand(20000, 2),
                           generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(z.mean(0), mu.detach(), atol=0.05, rtol=0)
    torch.testing.assert_close(z.std(0), torch.tensor([1.0, 2.0]), atol=0.05, rtol=0)
    z.sum().backward()
    assert mu.grad is not None and logvar.grad is not None
    eps = torch.ones(2)
    torch.testing.assert_close(vae.reparameterize(mu.detach(), logvar.detach(), eps),
                               torch.tensor([2.0, 0.0]))
    assert checks.check_reparameterize(lambda m, lv, e: vae.reparameterize(m, lv, e))
    # the classic mistake: scaling the noise by the variance instead of the standard deviation
    assert not checks.check_reparameterize(lambda m, lv, e: m + lv.exp() * e, seed=0)


def test_active_units_and_kl_weight():
    mu = torch.zeros(10, 4)
    mu[:, 1] = torch.linspace(-1, 1, 10)
    assert vae.active_units(mu) == 1
    assert vae.kl_weight(0, 10) == 0.0 and vae.kl_weight(5, 10) == 0.5
    assert vae.kl_weight(20, 10) == 1.0 and vae.kl_weight(0, 0) == 1.0


def test_vae_loss_free_bits_and_elbo():
    logits, x = torch.zeros(2, 8, 8), torch.ones(2, 8, 8)
    mu, logvar = torch.zeros(2, 3), torch.zeros(2, 3)  # KL = 0 exactly
    loss, parts = vae.vae_loss(logits, x, mu, logvar, beta=1.0, free_bits=0.5)
    assert parts["recon"] == pytest.approx(64 * math.log(2.0), rel=1e-6)
    assert parts["kl"] == 0.0 and parts["neg_elbo"] == pytest.approx(parts["recon"])
    assert float(loss) == pytest.approx(parts["recon"] + 3 * 0.5)  # the free-bits floor
    loss0, _ = vae.vae_loss(logits, x, mu, logvar, beta=0.0)
    assert float(loss0) == pytest.approx(parts["recon"])


def test_train_vae_runs_and_logs():
    x = torch.rand(20, 8, 8).round()
    model, hist = vae.train_vae(TINY, x)
    assert not model.training
    assert set(hist) == {"loss", "neg_elbo", "recon", "kl", "beta", "active_units"}
    assert all(len(v) == 2 for v in hist.values()) and hist["beta"] == [1.0, 1.0]
    again, _ = vae.train_vae(TINY, x)
    for a, b in zip(model.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_train_vae_stop_after_is_the_start_of_the_full_run():
    x = torch.rand(20, 8, 8).round()
    config = vae.VAEConfig(**{**TINY.as_dict(), "epochs": 3, "warmup_epochs": 2})
    full_model, full = vae.train_vae(config, x)
    part_model, part = vae.train_vae(config, x, stop_after=1)
    assert not part_model.training
    assert set(part) == set(full) and all(len(v) == 1 for v in part.values())
    assert all(part[k][0] == pytest.approx(full[k][0]) for k in full)   # same schedule
    assert part["beta"] == [0.5]
    _, whole = vae.train_vae(config, x, stop_after=3)                    # the whole run
    assert all(whole[k] == pytest.approx(full[k]) for k in full)
    for bad in (0, 4, 1.0, True):
        with pytest.raises(ValueError, match="stop_after"):
            vae.train_vae(config, x, stop_after=bad)


def test_categorical_likelihood_and_images():
    model = vae.TransformerVAE(TINY)
    z = torch.randn(3, 3)
    logits = model.decode(z)
    assert logits.shape == (3, 8, 8, TINY.levels)
    x = torch.randint(0, 17, (3, 8, 8)) / 16
    want = torch.nn.functional.cross_entropy(logits.reshape(-1, 17), (x * 16).round().long()
                                             .reshape(-1), reduction="sum") / 3
    torch.testing.assert_close(vae.reconstruction_nll(logits, x).mean(), want)
    gen = torch.Generator().manual_seed(0)
    for how in ("mean", "mode", "sample"):
        img = model.to_images(logits, how, gen)
        assert img.shape == (3, 8, 8) and 0 <= img.min() and img.max() <= 1
    mode = model.to_images(logits, "mode")
    torch.testing.assert_close(mode, logits.argmax(-1) / 16)
    with pytest.raises(ValueError, match="how must be"):
        model.to_images(logits, "median")
    with pytest.raises(ValueError, match="differ"):
        vae.reconstruction_nll(logits, x[:2])


def test_bernoulli_variant():
    cfg = vae.VAEConfig(**{**TINY.as_dict(), "likelihood": "bernoulli"})
    model = vae.TransformerVAE(cfg)
    logits = model.decode(torch.zeros(2, 3))
    assert logits.shape == (2, 8, 8)
    torch.testing.assert_close(model.to_images(logits, "mean"), torch.sigmoid(logits))


@pytest.fixture
def small_split(tmp_path, monkeypatch):
    import utils.data

    monkeypatch.setenv("TFUL_CACHE", str(tmp_path))
    small = (torch.randint(0, 17, (20, 8, 8), generator=torch.Generator().manual_seed(0)) / 16
             ).numpy()
    monkeypatch.setattr(utils.data, "digits_split", lambda: (small, small[:4], None, None))
    return tmp_path


def test_registered_vae_caches_model_and_history(small_split):
    first = models.load("vae", TINY)
    assert first.trained and len(list(small_split.glob("vae-*.pt"))) == 1
    assert len(first.history["kl"]) == TINY.epochs and not first.model.training
    again = models.load("vae", TINY)
    assert not again.trained and again.model is not first.model
    assert again.history == first.history
    assert models.recipe("vae").default == vae.VAE_CONFIG


def test_registered_vae_trains_on_the_pinned_thread_count(small_split, monkeypatch):
    monkeypatch.setenv("TFUL_TRAIN_THREADS", "1")
    seen = []
    real_loss = vae.vae_loss

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real_loss(*args, **kwargs)

    monkeypatch.setattr(vae, "vae_loss", spy)
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        models.load("vae", vae.VAEConfig(**{**TINY.as_dict(), "seed": 123}))
        assert seen and set(seen) == {1} and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(old)


def test_sharpen():
    logits = torch.tensor([-1.0, 0.0, 1.0])
    torch.testing.assert_close(vae.sharpen(logits, None), torch.sigmoid(logits))
    assert vae.sharpen(logits, 3.0)[2] > torch.sigmoid(logits)[2]
    with pytest.raises(ValueError, match="temperature"):
        vae.sharpen(logits, 0.0)


def test_bad_input():
    model = vae.TransformerVAE(TINY)
    with pytest.raises(ValueError, match="z must be"):
        model.decode(torch.zeros(2, 5))
    with pytest.raises(ValueError, match="shapes differ"):
        vae.gaussian_kl(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="eps"):
        vae.reparameterize(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(3))
    with pytest.raises(ValueError, match="B >= 2"):
        vae.active_units(torch.zeros(1, 3))
    with pytest.raises(ValueError, match="latent_dim"):
        vae.kl_per_dimension(torch.zeros(3), torch.zeros(3))
    with pytest.raises(ValueError, match="likelihood"):
        vae.TransformerVAE(vae.VAEConfig(likelihood="gaussian"))
    with pytest.raises(ValueError, match="z_to_tokens"):
        vae.TransformerVAE(vae.VAEConfig(z_to_tokens="bogus"))
    with pytest.raises(ValueError, match="differ"):
        vae.vae_loss(torch.zeros(2, 8, 8), torch.zeros(3, 8, 8), torch.zeros(2, 3),
                     torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        vae.train_vae(TINY, torch.full((4, 8, 8), 2.0))
    with pytest.raises(TypeError, match="torch.Tensor"):
        vae.train_vae(TINY, torch.zeros(4, 8, 8).numpy())
    with pytest.raises(ValueError, match=r"\(B, 8, 8\)"):
        vae.train_vae(TINY, torch.zeros(4, 7, 7))
    with pytest.raises(ValueError, match="n must be"):
        model.sample(0)
    with pytest.raises(ValueError, match="warmup"):
        vae.kl_weight(1, -1)
