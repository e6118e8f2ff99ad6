"""Tests for utils.gan: the Transformer GAN, its losses, augmentation, training and ClusterGAN."""

import pytest
import torch
import torch.nn.functional as F

from utils import checks, gan

SMALL = dict(d_model=16, n_heads=2, d_ff=32)


def tiny_pair(latent_dim=4):
    gen = gan.TransformerGenerator(latent_dim, 8, 2, n_layers=1, **SMALL)
    disc = gan.TransformerDiscriminator(8, 4, n_layers=1, **SMALL)
    return gen, disc


def test_shapes_and_range():
    gen, disc = tiny_pair()
    x = gen(torch.randn(5, 4))
    assert x.shape == (5, 8, 8) and 0 <= x.min() and x.max() <= 1
    assert disc(x).shape == (5,)
    assert gen.sample(3, generator=torch.Generator().manual_seed(0)).shape == (3, 8, 8)
    assert torch.equal(gen.sample(z=torch.zeros(2, 4)), gen.sample(z=torch.zeros(2, 4)))
    enc = gan.TransformerLatentEncoder(3, 5, 8, 4, n_layers=1, **SMALL)
    z_hat, logits = enc(x)
    assert z_hat.shape == (5, 3) and logits.shape == (5, 5)
    assert gan.cluster_assignments(enc, x).shape == (5,)


def test_bad_inputs():
    gen, disc = tiny_pair()
    with pytest.raises(ValueError, match="z must be"):
        gen(torch.randn(2, 5))
    with pytest.raises(ValueError, match="either n"):
        gen.sample()
    with pytest.raises(ValueError, match="positive int"):
        gen.sample(0)
    with pytest.raises(ValueError, match=r"\(B, 8, 8\)"):
        disc(torch.rand(2, 7, 7))
    with pytest.raises(TypeError, match="floating point"):
        disc(torch.zeros(2, 8, 8, dtype=torch.long))
    with pytest.raises(ValueError, match="divisible"):
        gan.TransformerGenerator(4, 8, 3)
    with pytest.raises(ValueError, match="latent_dim"):
        gan.TransformerGenerator(0)
    with pytest.raises(ValueError, match="noise_dim"):
        gan.TransformerLatentEncoder(2, 1)
    with pytest.raises(TypeError, match="TransformerLatentEncoder"):
        gan.cluster_assignments(disc, torch.rand(2, 8, 8))


def test_hinge_losses_match_formulas():
    real, fake = torch.tensor([2.0, 0.5, -1.0]), torch.tensor([-3.0, 0.0])
    torch.testing.assert_close(gan.d_hinge_loss(real, fake),
                               torch.tensor((0 + 0.5 + 2.0) / 3 + (0 + 1.0) / 2))
    torch.testing.assert_close(gan.g_hinge_loss(fake), torch.tensor(1.5))
    # hinge = margin ranking against a constant: torch's margin_ranking_loss agrees
    ones = torch.ones(3)
    torch.testing.assert_close(gan.d_hinge_loss(real, real.neg()),
                               2 * F.margin_ranking_loss(real, torch.zeros(3), ones, margin=1.0))
    with pytest.raises(ValueError, match="empty"):
        gan.d_hinge_loss(torch.zeros(0), fake)
    with pytest.raises(TypeError, match="floating-point"):
        gan.g_hinge_loss(torch.tensor([1, 2]))


def test_spectral_norm_bounds_linear_maps():
    disc = gan.TransformerDiscriminator(8, 4, n_layers=1, spectral_norm=True, **SMALL)
    disc.train()
    for _ in range(30):  # power iterations converge during forward passes
        disc(torch.rand(4, 8, 8))
    disc.eval()
    sigma = torch.linalg.matrix_norm(disc.embed.weight.detach(), ord=2)
    assert abs(float(sigma) - 1.0) < 0.05


def test_r1_penalty_double_backward_and_value():
    disc = gan.TransformerDiscriminator(8, 4, n_layers=1, spectral_norm=False, **SMALL)
    real = torch.rand(3, 8, 8)
    r1 = gan.r1_penalty(disc, real)
    r1.backward()  # double backward through the from-scratch attention
    assert disc.embed.weight.grad is not None and disc.embed.weight.grad.abs().sum() > 0
    x = real.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(disc(x).sum(), x)
    torch.testing.assert_close(r1.detach(), g.pow(2).sum((1, 2)).mean())


def test_diff_augment():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(64, 8, 8)
    same = gan.diff_augment(x, "translation", shift=0, generator=g)
    assert torch.equal(same, x)
    t = gan.diff_augment(x, "translation", generator=g)
    assert t.shape == x.shape and not torch.equal(t, x)
    # a shifted image keeps its pixels, except the row/column pushed off the edge
    one = torch.zeros(1, 8, 8)
    one[0, 4, 4] = 1.0
    assert gan.diff_augment(one, "translation", generator=g).sum() == 1.0
    c = gan.diff_augment(torch.ones(64, 8, 8), "cutout", cutout=2, generator=g)
    zeros = (c == 0).flatten(1).sum(1)
    assert zeros.min() >= 1 and zeros.max() == 4
    y = x.clone().requires_grad_(True)
    gan.diff_augment(y, generator=g).sum().backward()  # differentiable
    assert y.grad is not None
    with pytest.raises(ValueError, match="unknown augmentation"):
        gan.diff_augment(x, "rotate")
    with pytest.raises(ValueError, match="images must be"):
        gan.diff_augment(torch.rand(8, 8))


def test_ema_tracks_weights():
    lin = torch.nn.Linear(2, 2)
    ema = gan.EMA(lin, decay=0.5)
    with torch.no_grad():
        lin.weight.fill_(1.0)
    for _ in range(200):
        ema.update(lin)
    torch.testing.assert_close(ema.model.weight, lin.weight)
    with pytest.raises(ValueError, match="decay"):
        gan.EMA(lin, decay=1.0)


def test_train_gan_history_and_errors():
    torch.manual_seed(0)
    gen, disc = tiny_pair()
    images = torch.rand(32, 8, 8)
    hist = gan.train_gan(gen, disc, images, epochs=2, batch_size=16, checkpoints=(1,),
                         r1_gamma=0.1, callback=lambda e, g: {"mean": float(g.sample(4).mean())})
    for k in ("d_loss", "g_loss", "d_real", "d_fake", "r1", "mean"):
        assert len(hist[k]) == 2, k
    assert hist["r1"][0] > 0 and list(hist["checkpoints"]) == [1]
    assert isinstance(hist["ema"], gan.TransformerGenerator)
    with pytest.raises(ValueError, match="NaN"):
        gan.train_gan(gen, disc, images.clone().fill_(float("nan")), epochs=1)
    with pytest.raises(ValueError, match="at least 2"):
        gan.train_gan(gen, disc, images[:1], epochs=1)
    with pytest.raises(ValueError, match="epochs"):
        gan.train_gan(gen, disc, images, epochs=0)
    with pytest.raises(ValueError, match="loss must be"):
        gan.train_gan(gen, disc, images, epochs=1, loss="wgan")
    with pytest.raises(ValueError, match="unknown augmentation"):
        gan.train_gan(gen, disc, images, epochs=1, augment="flip")
    with pytest.raises(ValueError, match=r"\(B, 8, 8\)"):
        gan.train_gan(gen, disc, torch.rand(4, 64), epochs=1)


def test_train_gan_nan_guard():
    gen, disc = tiny_pair()
    with torch.no_grad():
        disc.head.parametrizations.weight.original.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="discriminator"):
        gan.train_gan(gen, disc, torch.rand(16, 8, 8), epochs=1, batch_size=8)


def test_cluster_latent_and_clustergan():
    z, c = gan.sample_cluster_latent(6, 3, 4, generator=torch.Generator().manual_seed(0))
    assert z.shape == (6, 7) and torch.equal(z[:, 3:].argmax(1), c)
    z, c = gan.sample_cluster_latent(3, 2, 4, classes=torch.tensor([0, 3, 1]))
    assert c.tolist() == [0, 3, 1]
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        gan.sample_cluster_latent(2, 2, 4, classes=torch.tensor([0, 4]))
    with pytest.raises(ValueError, match="sigma"):
        gan.sample_cluster_latent(2, 2, 4, sigma=0.0)
    torch.manual_seed(0)
    gen, disc = tiny_pair(latent_dim=3 + 4)
    enc = gan.TransformerLatentEncoder(3, 4, 8, 4, n_layers=1, **SMALL)
    hist = gan.train_clustergan(gen, disc, enc, torch.rand(32, 8, 8), epochs=1, batch_size=16)
    assert len(hist["c_loss"]) == 1 and len(hist["z_loss"]) == 1
    with pytest.raises(ValueError, match="noise_dim"):
        gan.train_clustergan(gen, disc, gan.TransformerLatentEncoder(2, 4), torch.rand(8, 8, 8))


def test_pretrained_accessors_use_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TFUL_CACHE", str(tmp_path))
    monkeypatch.setattr(gan, "_training_images", lambda: torch.rand(32, 8, 8))
    cfg = {**gan.GAN_CONFIG, **SMALL, "g_layers": 1, "d_layers": 1, "epochs": 2,
           "checkpoints": [1, 2]}
    gen, hist = gan.pretrained_gan(config=cfg, verbose=False, with_history=True)
    assert len(hist["d_loss"]) == 2 and set(hist["checkpoints"]) == {1, 2}
    again = gan.pretrained_gan(config=cfg, verbose=False)  # from the cache
    z = torch.randn(3, cfg["latent_dim"])
    torch.testing.assert_close(gen(z), again(z))
    ccfg = {**gan.CLUSTERGAN_CONFIG, **SMALL, "g_layers": 1, "d_layers": 1, "epochs": 1}
    g2, enc, h2 = gan.pretrained_clustergan(config=ccfg, verbose=False, with_history=True)
    assert len(h2["c_loss"]) == 1 and enc.n_clusters == 10


def test_checks_accept_reference_and_reject_wrong():
    assert checks.check_d_hinge_loss(gan.d_hinge_loss, seed=0)
    assert checks.check_g_hinge_loss(gan.g_hinge_loss, seed=0)
    assert not checks.check_d_hinge_loss(lambda r, f: (1 - r).mean() + (1 + f).mean(), seed=0)
    assert not checks.check_g_hinge_loss(lambda f: f.mean(), seed=0)

    def cutout(images, rows, cols, size):
        h = images.shape[-1]
        r = torch.arange(h)[None, :, None]
        c = torch.arange(h)[None, None, :]
        hole = ((r >= rows[:, None, None]) & (r < rows[:, None, None] + size)
                & (c >= cols[:, None, None]) & (c < cols[:, None, None] + size))
        return images * ~hole

    assert checks.check_cutout(cutout, seed=0)
    assert not checks.check_cutout(lambda x, r, c, s: x, seed=0)
