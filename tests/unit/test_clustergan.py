"""Tests for utils.clustergan: the cluster latent, the latent encoder, training and the recipe."""

import dataclasses

import numpy as np
import pytest
import torch

from utils import clustergan, models
from utils.transformer import PatchEncoderConfig

SMALL = dict(d_model=16, n_heads=2, d_ff=32)
TINY = clustergan.ClusterGANConfig(noise_dim=3, n_clusters=4, gen_layers=1, disc_layers=1,
                                   encoder_layers=1, epochs=1, batch_size=16, **SMALL)
ENC = PatchEncoderConfig(image_size=8, patch_size=4, n_layers=1, **SMALL)


def test_cluster_latent():
    z, c = clustergan.sample_cluster_latent(6, 3, 4, generator=torch.Generator().manual_seed(0))
    assert z.shape == (6, 7) and torch.equal(z[:, 3:].argmax(1), c)
    assert torch.equal(z[:, 3:].sum(1), torch.ones(6))
    z, c = clustergan.sample_cluster_latent(3, 2, 4, classes=torch.tensor([0, 3, 1]))
    assert c.tolist() == [0, 3, 1]
    big = clustergan.sample_cluster_latent(4000, 2, 4, sigma=0.5, generator=torch.Generator().manual_seed(1))[0]
    assert abs(float(big[:, :2].std()) - 0.5) < 0.02


@pytest.mark.parametrize("kw, match", [
    (dict(n=0), "n must be a positive int"),
    (dict(noise_dim=0), "noise_dim"),
    (dict(n_clusters=1), "n_clusters"),
    (dict(sigma=0.0), "sigma"),
    (dict(classes=torch.tensor([0, 4])), r"\[0, 4\)"),
    (dict(classes=torch.tensor([0.0, 1.0])), "int tensor of shape"),
    (dict(classes=torch.tensor([0, 1, 2])), r"shape \(2,\)"),
])
def test_cluster_latent_bad_inputs(kw, match):
    args = {"n": 2, "noise_dim": 2, "n_clusters": 4, **kw}
    with pytest.raises(ValueError, match=match):
        clustergan.sample_cluster_latent(args.pop("n"), args.pop("noise_dim"), args.pop("n_clusters"), **args)


def test_latent_encoder_and_assignments():
    enc = clustergan.TransformerLatentEncoder(3, 5, ENC)
    x = torch.rand(5, 8, 8)
    z_hat, logits = enc(x)
    assert z_hat.shape == (5, 3) and logits.shape == (5, 5)
    assign = clustergan.cluster_assignments(enc, x)
    assert assign.shape == (5,) and torch.equal(assign, logits.argmax(1))
    # NumPy arrays (float64 too) are accepted
    assert torch.equal(clustergan.cluster_assignments(enc, x.double().numpy()), assign)


def test_latent_encoder_bad_inputs():
    enc = clustergan.TransformerLatentEncoder(3, 5, ENC)
    with pytest.raises(ValueError, match="noise_dim"):
        clustergan.TransformerLatentEncoder(0, 5, ENC)
    with pytest.raises(ValueError, match="n_clusters"):
        clustergan.TransformerLatentEncoder(2, 1, ENC)
    with pytest.raises(TypeError, match="PatchEncoderConfig"):
        clustergan.TransformerLatentEncoder(2, 3, None)
    with pytest.raises(ValueError, match=r"\(B, 8, 8\)"):
        enc(torch.rand(2, 6, 6))
    with pytest.raises(TypeError, match="TransformerLatentEncoder"):
        clustergan.cluster_assignments(torch.nn.Linear(2, 2), torch.rand(2, 8, 8))
    with pytest.raises(TypeError, match="floating point"):
        clustergan.cluster_assignments(enc, np.zeros((2, 8, 8), dtype=np.int64))
    with pytest.raises(ValueError, match="NaN"):
        clustergan.cluster_assignments(enc, torch.full((2, 8, 8), float("nan")))


@pytest.mark.parametrize("change, match", [
    (dict(noise_dim=0), "noise_dim"),
    (dict(n_clusters=1), "n_clusters"),
    (dict(sigma=-0.1), "sigma"),
    (dict(beta_c=-1.0), "beta_n and beta_c"),
    (dict(encoder_patch_size=3), "encoder_patch_size"),
    (dict(disc_patch_size=3), "disc_patch_size"),
    (dict(augment="rotate"), "unknown augmentation"),
])
def test_config_rejects_bad_values(change, match):
    with pytest.raises(ValueError, match=match):
        clustergan.ClusterGANConfig(**change)


def test_model_holds_three_networks():
    model = clustergan.ClusterGAN(TINY)
    assert model.generator.latent_dim == 7
    assert model.encoder.noise_dim == 3 and model.encoder.n_clusters == 4
    assert model.discriminator(torch.rand(2, 8, 8)).shape == (2,)
    with pytest.raises(TypeError, match="ClusterGANConfig"):
        clustergan.ClusterGAN({"noise_dim": 3})


def test_train_clustergan():
    images = torch.rand(32, 8, 8)
    model, hist = clustergan.train_clustergan(TINY, images)
    assert len(hist["c_loss"]) == 1 and len(hist["z_loss"]) == 1 and len(hist["d_loss"]) == 1
    assert not model.training and not model.encoder.training
    again, hist2 = clustergan.train_clustergan(TINY, images)
    assert hist2 == hist
    with pytest.raises(TypeError, match="ClusterGANConfig"):
        clustergan.train_clustergan({"epochs": 1}, images)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        clustergan.train_clustergan(TINY, images + 1)


def test_recipe_loads_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TFUL_CACHE", str(tmp_path))
    monkeypatch.setattr(clustergan, "_training_images", lambda images, size: torch.rand(32, 8, 8))
    cfg = dataclasses.replace(TINY, n_clusters=10)
    first, second = models.load("clustergan", cfg), models.load("clustergan", cfg)
    assert first.trained and not second.trained and first.model is not second.model
    assert len(second.history["c_loss"]) == 1 and second.model.encoder.n_clusters == 10
    assert not any(p.requires_grad for p in second.model.parameters())
    x = torch.rand(4, 8, 8)
    assert torch.equal(clustergan.cluster_assignments(first.model.encoder, x),
                       clustergan.cluster_assignments(second.model.encoder, x))
