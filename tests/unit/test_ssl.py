"""Tests for utils.ssl: NT-Xent against cross-entropy, masks, the masked loss, training, the registry."""

import numpy as np
import pytest
import torch

from utils import models, ssl
from utils.augment import AugmentConfig
from utils.transformer import PatchEncoder, PatchEncoderConfig

TINY = PatchEncoderConfig(d_model=16, n_heads=2, n_layers=1, d_ff=32)


@pytest.mark.parametrize("n, d, t", [(2, 3, 0.1), (7, 5, 0.5), (16, 32, 1.0)])
def test_nt_xent_matches_cross_entropy(n, d, t):
    g = torch.Generator().manual_seed(n)
    z1, z2 = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)
    assert torch.allclose(ssl.nt_xent(z1, z2, t), ssl.nt_xent_reference(z1, z2, t), atol=1e-5)


def test_nt_xent_is_small_for_matching_views_and_stable_at_low_temperature():
    z = torch.eye(8) * 5
    low = ssl.nt_xent(z, z, 0.05)
    assert float(low) < 1e-3
    assert float(ssl.nt_xent(z, torch.roll(z, 1, 0), 0.05)) > 10  # positives are the wrong rows
    assert torch.isfinite(ssl.nt_xent(z * 1e3, z * 1e3, 0.01))


def test_nt_xent_gradients_match_reference():
    z1 = torch.randn(6, 4, requires_grad=True)
    z2 = torch.randn(6, 4)
    g1 = torch.autograd.grad(ssl.nt_xent(z1, z2), z1)[0]
    g2 = torch.autograd.grad(ssl.nt_xent_reference(z1, z2), z1)[0]
    assert torch.allclose(g1, g2, atol=1e-5)


def test_nt_xent_bad_input():
    with pytest.raises(ValueError, match="same shape"):
        ssl.nt_xent(torch.randn(4, 3), torch.randn(5, 3))
    with pytest.raises(ValueError, match="at least 2"):
        ssl.nt_xent(torch.randn(1, 3), torch.randn(1, 3))
    with pytest.raises(ValueError, match="NaN"):
        ssl.nt_xent(torch.full((3, 2), float("nan")), torch.randn(3, 2))
    with pytest.raises(TypeError, match="floating"):
        ssl.nt_xent(torch.ones(3, 2, dtype=torch.int64), torch.ones(3, 2, dtype=torch.int64))
    with pytest.raises(TypeError, match="torch.Tensor"):
        ssl.nt_xent(np.ones((3, 2)), np.ones((3, 2)))
    with pytest.raises(ValueError, match="temperature"):
        ssl.nt_xent(torch.randn(3, 2), torch.randn(3, 2), 0.0)


def test_random_token_mask():
    m = ssl.random_token_mask(5, 16, 0.5, generator=torch.Generator().manual_seed(0))
    assert m.shape == (5, 16) and m.dtype == torch.bool
    assert (m.sum(1) == 8).all()
    assert not (m == m[0]).all()  # different rows hide different patches
    with pytest.raises(ValueError, match="mask_ratio"):
        ssl.random_token_mask(2, 16, 1.0)
    with pytest.raises(ValueError, match="positive"):
        ssl.random_token_mask(0, 16, 0.5)


def test_masked_patch_loss_counts_only_hidden_patches():
    torch.manual_seed(0)
    model = ssl.MaskedModel(PatchEncoder(TINY))
    x = torch.rand(3, 8, 8)
    mask = torch.zeros(3, 16, dtype=torch.bool)
    mask[:, :4] = True
    from utils.transformer import image_to_patches

    pred = model(x, mask)
    want = ((pred - image_to_patches(x, 2)) ** 2).mean(-1)[:, :4].mean()
    assert torch.allclose(ssl.masked_patch_loss(model, x, mask), want, atol=1e-6)


def _tiny_config(objective="contrastive", **kw):
    return ssl.SSLConfig(objective=objective, encoder=TINY, epochs=2, batch_size=16,
                         augment=AugmentConfig(), **kw)


@pytest.mark.parametrize("objective", ["contrastive", "masked"])
def test_train_ssl_is_deterministic_and_logs(objective):
    x = np.random.default_rng(0).random((40, 8, 8), dtype=np.float32)
    seen = []
    enc1, hist = ssl.train_ssl(_tiny_config(objective), x,
                               callback=lambda e, enc: seen.append(e) or {"probe": 1.0})
    enc2, _ = ssl.train_ssl(_tiny_config(objective), x)
    assert len(hist["loss"]) == 2 and hist["probe"] == [1.0, 1.0] and seen == [0, 1]
    assert not enc1.training
    for a, b in zip(enc1.state_dict().values(), enc2.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_train_ssl_bad_input():
    with pytest.raises(ValueError, match="NaN"):
        ssl.train_ssl(_tiny_config(), np.full((8, 8, 8), np.nan, dtype=np.float32))
    with pytest.raises(ValueError, match=r"\(B, H, W\)"):
        ssl.train_ssl(_tiny_config(), np.zeros((8, 64), dtype=np.float32))
    with pytest.raises(TypeError, match="floating point"):
        ssl.train_ssl(_tiny_config(), np.zeros((8, 8, 8), dtype=np.int64))
    with pytest.raises(ValueError, match="objective"):
        ssl.SSLConfig(objective="jigsaw")
    with pytest.raises(ValueError, match="seed"):
        ssl.SSLConfig(seed=-1)


def test_config_is_json_serialisable_and_covers_every_setting():
    from utils.runtime import config_hash

    c = ssl.default_config("contrastive", 0).as_dict()
    assert {"encoder", "augment", "epochs", "lr", "temperature", "seed"} <= set(c)
    assert config_hash(c) != config_hash(ssl.default_config("contrastive", 1).as_dict())
    assert config_hash(c) != config_hash(ssl.default_config("masked", 0).as_dict())


@pytest.fixture
def tiny_digits(monkeypatch, tmp_path):
    """A temporary cache and 20 random "digits" instead of the real ones."""
    import utils.data

    monkeypatch.setenv("TFUL_CACHE", str(tmp_path))
    x = np.random.default_rng(0).random((20, 8, 8), dtype=np.float32)
    monkeypatch.setattr(utils.data, "load_digits_images", lambda: (x, np.zeros(20, np.int64)))
    return tmp_path


def test_registered_contrastive_encoder_trains_once_then_loads(tiny_digits):
    config = ssl.SSLConfig(encoder=TINY, epochs=1, batch_size=10)
    first = models.load("digits-ssl-contrastive", config)
    assert first.trained and isinstance(first.model, ssl.ContrastiveEncoder)
    assert not first.model.training
    assert not any(p.requires_grad for p in first.model.parameters())
    assert len(list(tiny_digits.glob("*.pt"))) == 1
    again = models.load("digits-ssl-contrastive", config)
    assert not again.trained and again.model is not first.model
    assert len(again.history["loss"]) == 1 and np.isfinite(again.history["loss"]).all()
    for a, b in zip(first.model.state_dict().values(), again.model.state_dict().values(),
                    strict=True):
        assert torch.equal(a, b)
    assert models.recipe("digits-ssl-contrastive").default == ssl.default_config("contrastive")
    with pytest.raises(ValueError, match="objective"):
        models.load("digits-ssl-contrastive", ssl.default_config("masked"))


def test_encode():
    torch.manual_seed(0)
    enc = PatchEncoder(TINY).train()
    x = np.random.default_rng(0).random((10, 8, 8), dtype=np.float32)
    f = ssl.encode(enc, x, batch_size=3)
    assert f.shape == (10, 16) and f.dtype == np.float32
    with torch.no_grad():
        assert np.allclose(f, enc.eval().features(torch.tensor(x)).numpy(), atol=1e-6)
    assert np.allclose(ssl.encode(enc, torch.tensor(x)), f, atol=1e-6)
    with pytest.raises(ValueError, match=r"\(B, 8, 8\)"):
        ssl.encode(enc, np.zeros((3, 4, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="empty"):
        ssl.encode(enc, np.zeros((0, 8, 8), dtype=np.float32))
    with pytest.raises(ValueError, match="NaN"):
        ssl.encode(enc, np.full((2, 8, 8), np.nan, dtype=np.float32))
    with pytest.raises(TypeError, match="floating"):
        ssl.encode(enc, np.zeros((2, 8, 8), dtype=np.int64))
    with pytest.raises(TypeError, match="PatchEncoder"):
        ssl.encode(torch.nn.Linear(2, 2), x)


def test_encoders_features():
    torch.manual_seed(0)
    x = torch.rand(4, 8, 8)
    c = ssl.ContrastiveEncoder(TINY, proj_dim=5).eval()
    f = c.features(x)
    assert f.shape == (4, 5) and torch.allclose(f.norm(dim=1), torch.ones(4), atol=1e-5)
    assert c.feature_dim == 5 and c.cls_features(x).shape == (4, 16)
    assert np.allclose(ssl.encode(c, x, pool="cls"), c.cls_features(x).detach().numpy(), atol=1e-6)
    m = ssl.MaskedEncoder(TINY).eval()
    assert torch.allclose(m.features(x), m(x)[:, 1:].reshape(4, -1))
    assert m.feature_dim == 16 * 16 and ssl.encode(m, x).shape == (4, 256)
    assert np.allclose(ssl.encode(m, x, pool="mean"), m(x)[:, 1:].mean(1).detach().numpy(),
                       atol=1e-6)
    with pytest.raises(ValueError, match="pool"):
        ssl.encode(m, x, pool="max")


def test_checks_accept_the_reference_and_reject_mistakes(capsys):
    from utils import checks

    assert checks.check_nt_xent(ssl.nt_xent, seed=0)
    assert not checks.check_nt_xent(lambda a, b, t: ssl.nt_xent(a, b, 1.0), seed=0)
    assert checks.check_masked_mse(lambda p, t, m: (((p - t) ** 2).mean(-1) * m).sum() / m.sum(),
                                   seed=0)
    assert not checks.check_masked_mse(lambda p, t, m: ((p - t) ** 2).mean(), seed=0)
    assert "Hint" in capsys.readouterr().out


def test_evaluate_features():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 20)
    f = np.eye(3)[y] * 5 + rng.normal(scale=0.1, size=(60, 3))
    scores = ssl.evaluate_features(f, y, n_clusters=3)
    assert set(scores) == {"knn_acc", "linear_acc", "kmeans_ari"}
    assert all(v > 0.99 for v in scores.values())
    noise = ssl.evaluate_features(rng.normal(size=(60, 3)), y, n_clusters=3)
    assert noise["kmeans_ari"] < 0.2
    with pytest.raises(ValueError, match="NaN"):
        ssl.evaluate_features(np.full((60, 3), np.nan), y)
    with pytest.raises(ValueError, match="labels"):
        ssl.evaluate_features(f, y[:10])
    with pytest.raises(ValueError, match="non-empty"):
        ssl.evaluate_features(np.zeros((0, 3)), y[:0])
    with pytest.raises(ValueError, match="larger than"):
        ssl.evaluate_features(f[:8], y[:8], n_clusters=10)


def test_registered_masked_model_keeps_the_decoder(tiny_digits):
    import utils.data

    config = ssl.SSLConfig(objective="masked", encoder=TINY, epochs=2, batch_size=10)
    model = models.load("digits-ssl-masked", config).model      # trains and caches
    again = models.load("digits-ssl-masked", config).model      # loads
    assert isinstance(model, ssl.MaskedModel) and isinstance(model.encoder, ssl.MaskedEncoder)
    assert not model.training
    assert torch.equal(model.decoder.weight, again.decoder.weight)
    torch.manual_seed(0)
    untrained = models.recipe("digits-ssl-masked").build(config)
    assert not torch.equal(model.decoder.weight, untrained.decoder.weight)
    # the same training as train_ssl, which returns the encoder alone
    enc, _ = ssl.train_ssl(config, utils.data.load_digits_images()[0])
    for a, b in zip(enc.state_dict().values(), model.encoder.state_dict().values(), strict=True):
        assert torch.equal(a, b)
