"""Tests for utils.gan: the Transformer GAN's networks, losses, EMA, config, training and recipe."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from utils import checks, gan, models
from utils.transformer import PatchEncoderConfig

SMALL = dict(d_model=16, n_heads=2, d_ff=32)
TINY = gan.GANConfig(latent_dim=4, gen_layers=1, disc_layers=1, epochs=2, batch_size=16,
                     checkpoints=(1, 2), **SMALL)


def tiny_disc(spectral_norm=True, d_model=16, patch_size=4, image_size=8):
    cfg = PatchEncoderConfig(image_size=image_size, patch_size=patch_size, d_model=d_model, n_heads=2,
                             n_layers=1, d_ff=2 * d_model)
    return gan.TransformerDiscriminator(cfg, spectral_norm=spectral_norm)


def test_shapes_and_range():
    model = gan.GAN(TINY)
    gen, disc = model.generator, model.discriminator
    x = gen(torch.randn(5, 4))
    assert x.shape == (5, 8, 8) and 0 <= x.min() and x.max() <= 1
    assert disc(x).shape == (5,)
    assert gen.sample(3, generator=torch.Generator().manual_seed(0)).shape == (3, 8, 8)
    assert torch.equal(gen.sample(z=torch.zeros(2, 4)), gen.sample(z=torch.zeros(2, 4)))
    assert set(model.snapshots) == {"1", "2"} and model.snapshot(2) is model.snapshots["2"]


def test_bad_inputs():
    model = gan.GAN(TINY)
    gen, disc = model.generator, model.discriminator
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
    with pytest.raises(ValueError, match="NaN"):
        disc(torch.full((2, 8, 8), float("nan")))
    with pytest.raises(ValueError, match="divisible"):
        gan.TransformerGenerator(4, 8, 3)
    with pytest.raises(ValueError, match="latent_dim"):
        gan.TransformerGenerator(0)
    with pytest.raises(TypeError, match="PatchEncoderConfig"):
        gan.TransformerDiscriminator({"patch_size": 4})
    with pytest.raises(TypeError, match="GANConfig"):
        gan.GAN({"latent_dim": 4})
    with pytest.raises(KeyError, match="no snapshot after epoch 3"):
        model.snapshot(3)


@pytest.mark.parametrize("change, match", [
    (dict(disc_patch_size=3), "not divisible by disc_patch_size"),
    (dict(gen_patch_size=0), "gen_patch_size must be a positive int"),
    (dict(d_model=18, n_heads=4), "not divisible by n_heads"),
    (dict(loss="wgan"), "loss must be"),
    (dict(augment="flip"), "unknown augmentation"),
    (dict(lr_d=0.0), "learning rates"),
    (dict(betas=(0.5, 1.0)), "betas"),
    (dict(ema_decay=1.0), "ema_decay"),
    (dict(r1_gamma=-1.0), "r1_gamma"),
    (dict(cutout=-1), "cutout"),
    (dict(epochs=0), "epochs"),
    (dict(checkpoints=(1, 46)), "checkpoints"),
    (dict(checkpoints=(5, 5)), "checkpoints"),
    (dict(seed=-1), "seed"),
])
def test_config_rejects_bad_values(change, match):
    with pytest.raises(ValueError, match=match):
        gan.GANConfig(**change)


def test_config_is_frozen_and_describes_the_discriminator():
    with pytest.raises(dataclasses.FrozenInstanceError):
        gan.GAN_CONFIG.epochs = 1
    enc = gan.GAN_CONFIG.disc_encoder_config()
    assert (enc.patch_size, enc.n_layers, enc.d_model) == (4, 2, 64)
    assert gan.GAN_CONFIG == gan.GANConfig()


def test_discriminator_is_a_patch_encoder_with_a_head():
    disc = tiny_disc(spectral_norm=False)
    x = torch.rand(3, 8, 8)
    torch.testing.assert_close(disc(x), disc.head(disc.backbone(x)[:, 0]).squeeze(-1))


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
    disc = tiny_disc(spectral_norm=True)
    disc.train()
    for _ in range(30):  # power iterations converge during forward passes
        disc(torch.rand(4, 8, 8))
    disc.eval()
    for lin in (disc.backbone.embed, disc.head, disc.backbone.encoder.layers[0].ff.linear1):
        sigma = torch.linalg.matrix_norm(lin.weight.detach(), ord=2)
        assert abs(float(sigma) - 1.0) < 0.05


def test_r1_penalty_value_and_second_order_gradients():
    torch.manual_seed(0)
    disc = tiny_disc(spectral_norm=False, d_model=4, patch_size=2, image_size=4).double()
    real = torch.rand(2, 4, 4, dtype=torch.float64)
    r1 = gan.r1_penalty(disc, real)
    x = real.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(disc(x).sum(), x)
    torch.testing.assert_close(r1.detach(), g.pow(2).sum((1, 2)).mean())
    # the double backward through the from-scratch attention, against finite differences
    assert torch.autograd.gradgradcheck(disc, (real.clone().requires_grad_(True),))

    # and R1's gradient to a weight deep in D (what training uses), also against finite differences
    class WithEmbed(torch.nn.Module):
        def __init__(self, weight):
            super().__init__()
            self.weight = weight

        def forward(self, images):
            return torch.func.functional_call(disc, {"backbone.embed.weight": self.weight}, (images,))

    w = disc.backbone.embed.weight.detach().clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda w: gan.r1_penalty(WithEmbed(w), real), (w,))


def test_r1_penalty_bad_inputs():
    with pytest.raises(TypeError, match="nn.Module"):
        gan.r1_penalty(lambda x: x.sum(), torch.rand(2, 8, 8))
    with pytest.raises(ValueError, match=r"real must have shape \(B, H, W\)"):
        gan.r1_penalty(tiny_disc(), torch.rand(2, 64))


def test_ema_matches_a_hand_computation_including_warm_up():
    lin = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        lin.weight.fill_(10.0)
    ema = gan.EMA(lin, decay=0.5)
    expected = 10.0
    for t, w in enumerate([0.0, 2.0, 4.0]):
        with torch.no_grad():
            lin.weight.fill_(w)
        ema.update(lin)
        beta = (1 + t) / (10 + t)                 # warm-up: 0.1, 2/11, 3/12, all below 0.5
        expected = beta * expected + (1 - beta) * w
        assert ema.model.weight.item() == pytest.approx(expected, rel=1e-6)
    assert ema.model.weight.item() == pytest.approx(3 / 12 * (2 / 11 * 1.0 + 9 / 11 * 2.0) + 9 / 12 * 4.0)
    # warm-up ends when (1 + t) / (10 + t) reaches the decay: t = 8 for 0.5
    assert [ema.beta(t) for t in (0, 7, 8, 100)] == [0.1, 8 / 17, 0.5, 0.5]
    with torch.no_grad():
        lin.weight.fill_(1.0)
    for _ in range(200):
        ema.update(lin)
    torch.testing.assert_close(ema.model.weight, lin.weight)
    assert not ema.model.weight.requires_grad


def test_ema_bad_inputs():
    lin = torch.nn.Linear(2, 2)
    with pytest.raises(ValueError, match="decay"):
        gan.EMA(lin, decay=1.0)
    with pytest.raises(TypeError, match="nn.Module"):
        gan.EMA(lin.weight)
    with pytest.raises(ValueError, match="architecture"):
        gan.EMA(lin).update(torch.nn.Linear(2, 2, bias=False))


def test_train_gan_history_snapshots_and_determinism():
    images = torch.rand(32, 8, 8)
    model, hist = gan.train_gan(dataclasses.replace(TINY, r1_gamma=0.1), images)
    for k in ("d_loss", "g_loss", "d_real", "d_fake", "r1"):
        assert len(hist[k]) == 2 and all(isinstance(v, float) for v in hist[k]), k
    assert hist["r1"][0] > 0
    assert not model.training
    # the last snapshot is the final (EMA) generator
    for a, b in zip(model.snapshot(2).parameters(), model.generator.parameters(), strict=True):
        assert torch.equal(a, b)
    again, hist2 = gan.train_gan(dataclasses.replace(TINY, r1_gamma=0.1), images)
    assert hist2 == hist
    z = torch.randn(3, 4)
    assert torch.equal(model.generator(z), again.generator(z))


def test_train_gan_seed_offset_shifts_the_seed(monkeypatch):
    images = torch.rand(32, 8, 8)
    cfg = dataclasses.replace(TINY, epochs=1, checkpoints=())
    monkeypatch.setenv("TFUL_SEED_OFFSET", "1")
    _, shifted = gan.train_gan(cfg, images)
    monkeypatch.delenv("TFUL_SEED_OFFSET")
    _, seed1 = gan.train_gan(dataclasses.replace(cfg, seed=1), images)
    _, seed0 = gan.train_gan(cfg, images)
    assert shifted == seed1 and shifted != seed0


def test_train_gan_pins_threads_and_restores_them(monkeypatch):
    monkeypatch.delenv("TFUL_TRAIN_THREADS", raising=False)
    seen = []
    hinge = gan.d_hinge_loss

    def spy(real, fake):
        seen.append(torch.get_num_threads())
        return hinge(real, fake)

    monkeypatch.setattr(gan, "d_hinge_loss", spy)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        gan.train_gan(dataclasses.replace(TINY, epochs=1, checkpoints=()), torch.rand(16, 8, 8))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert seen and set(seen) == {1}


def test_train_gan_bad_inputs():
    images = torch.rand(32, 8, 8)
    with pytest.raises(TypeError, match="GANConfig"):
        gan.train_gan({"epochs": 1}, images)
    with pytest.raises(ValueError, match="NaN"):
        gan.train_gan(TINY, images.clone().fill_(float("nan")))
    with pytest.raises(ValueError, match="at least 2"):
        gan.train_gan(TINY, images[:1])
    with pytest.raises(ValueError, match=r"\(B, 8, 8\)"):
        gan.train_gan(TINY, torch.rand(4, 7, 7))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        gan.train_gan(TINY, images * 2 - 1)
    with pytest.raises(TypeError, match="floating point"):
        gan.train_gan(TINY, (images * 16).long())


def test_train_gan_nan_guard(monkeypatch):
    original = gan.GAN.__init__

    def broken(self, config):
        original(self, config)
        with torch.no_grad():
            self.discriminator.head.parametrizations.weight.original.fill_(float("nan"))

    monkeypatch.setattr(gan.GAN, "__init__", broken)
    with pytest.raises(FloatingPointError, match="discriminator"):
        gan.train_gan(dataclasses.replace(TINY, epochs=1, checkpoints=()), torch.rand(16, 8, 8))


def test_recipe_trains_once_and_loads_fresh_frozen_copies(tmp_path, monkeypatch):
    monkeypatch.setenv("TFUL_CACHE", str(tmp_path))
    monkeypatch.setattr(gan, "_training_images", lambda images, size: torch.rand(32, 8, 8))
    first = models.load("gan", TINY)
    second = models.load("gan", TINY)
    assert first.trained and not second.trained
    assert set(first.history) == {"d_loss", "g_loss", "d_real", "d_fake", "r1"}
    assert len(first.history["d_loss"]) == 2 and second.history == first.history
    assert first.model is not second.model
    assert not second.model.training
    assert not any(p.requires_grad for p in second.model.parameters())
    z = torch.randn(3, 4)
    torch.testing.assert_close(first.model.generator(z), second.model.generator(z))
    torch.testing.assert_close(first.model.snapshot(1)(z), second.model.snapshot(1)(z))
    assert isinstance(second.model.discriminator, gan.TransformerDiscriminator)


def test_checks_accept_reference_and_reject_wrong():
    assert checks.check_d_hinge_loss(gan.d_hinge_loss, seed=0)
    assert checks.check_g_hinge_loss(gan.g_hinge_loss, seed=0)
    assert not checks.check_d_hinge_loss(lambda r, f: (1 - r).mean() + (1 + f).mean(), seed=0)
    assert not checks.check_g_hinge_loss(lambda f: f.mean(), seed=0)

    def cutout(images, rows, cols, size):
        h, w = images.shape[-2:]
        r = torch.arange(h)[None, :, None]
        c = torch.arange(w)[None, None, :]
        hole = ((r >= rows[:, None, None]) & (r < rows[:, None, None] + size)
                & (c >= cols[:, None, None]) & (c < cols[:, None, None] + size))
        return images * ~hole

    assert checks.check_cutout(cutout, seed=0)
    assert not checks.check_cutout(lambda x, r, c, s: x, seed=0)
