"""Tests for utils.feature_net: the cached digits classifier and digits-FID / IS."""

import numpy as np
import pytest
import torch

from utils import feature_net as fn
from utils import models
from utils.data import digits_split


@pytest.fixture(scope="module", autouse=True)
def scratch_cache(tmp_path_factory):
    """Train the classifier into a temporary cache, never the repository's ``.cache``."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TFUL_CACHE", str(tmp_path_factory.mktemp("cache")))
        mp.setattr(fn, "_MODEL", {})
        mp.setattr(fn, "_REF_STATS", {})
        yield


@pytest.fixture(scope="module")
def split():
    return digits_split(fn.FEATURE_CONFIG.test_size, fn.FEATURE_CONFIG.split_seed)


def test_config_is_frozen_and_registered():
    assert models.recipe("feature-net").default == fn.FEATURE_CONFIG
    with pytest.raises(Exception, match="cannot assign"):
        fn.FEATURE_CONFIG.epochs = 1
    net = fn.FeatureClassifier(num_features=7)
    assert net.num_features == 7 and net.features(torch.zeros(2, 8, 8)).shape == (2, 7)


def test_classifier_accuracy_and_api(split):
    _, x_te, _, y_te = split
    loaded = models.load("feature-net")
    net = loaded.model
    assert not net.training and len(loaded.history["loss"]) == fn.FEATURE_CONFIG.epochs
    x = torch.tensor(x_te)
    with torch.no_grad():
        acc = (net(x).argmax(1).numpy() == y_te).mean()
        feats, probs = net.features(x[:5]), net.probs(x[:5])
    assert acc >= 0.97
    assert feats.shape == (5, net.num_features)
    torch.testing.assert_close(probs.sum(1), torch.ones(5))
    assert fn._classifier() is fn._classifier()  # the metrics load it once per process
    for a, b in zip(fn._classifier().state_dict().values(), net.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_digits_fid_floor_and_noise(split):
    x_tr, x_te, _, _ = split
    floor = fn.digits_fid(x_tr, n=1000)
    noise = fn.digits_fid(np.random.default_rng(0).random((1000, 8, 8)))
    assert 0.0 < floor < 20.0 < 100.0 < noise
    assert fn.digits_fid(x_te, reference=x_te, n=None) == pytest.approx(0.0, abs=1e-6)


def test_digits_fid_matches_torchmetrics_with_our_features(split):
    from torchmetrics.image.fid import FrechetInceptionDistance

    class Features(torch.nn.Module):  # torchmetrics calls forward(images), reads num_features
        def __init__(self, net):
            super().__init__()
            self.net, self.num_features = net, net.num_features

        def forward(self, images):
            return self.net.features(images)

    x_tr, x_te, _, _ = split
    fake = x_tr[:300]
    tm = FrechetInceptionDistance(feature=Features(models.load("feature-net").model))
    tm.update(torch.tensor(x_te), real=True)
    tm.update(torch.tensor(fake), real=False)
    ours = fn.digits_fid(fake, n=None)
    assert ours == pytest.approx(float(tm.compute()), rel=1e-5)
    assert ours == pytest.approx(fn.digits_fid(fake, reference=x_te, n=None), rel=1e-9)


def test_digits_inception_score(split):
    _, x_te, _, _ = split
    assert 9.0 < fn.digits_inception_score(x_te) <= 10.0
    assert fn.digits_inception_score(np.repeat(x_te[:1], 20, 0)) == pytest.approx(1.0)


def test_features_and_probs_shapes(split):
    _, x_te, _, _ = split
    assert fn.digits_features(x_te[:7]).shape == (7, fn.FEATURE_CONFIG.num_features)
    assert fn.digits_probs(torch.tensor(x_te[:7])).shape == (7, 10)


@pytest.mark.parametrize("bad, err, match", [
    (np.zeros((4, 8)), ValueError, "shape"),
    (np.zeros((4, 7, 7)), ValueError, "shape"),
    (np.zeros((0, 8, 8)), ValueError, "empty"),
    (np.full((4, 8, 8), np.nan), ValueError, "NaN"),
    (np.full((4, 8, 8), 2.0), ValueError, r"\[0, 1\]"),
    (-np.ones((4, 8, 8)), ValueError, r"\[0, 1\]"),
    ([[1, 2]], TypeError, "NumPy array"),
    (np.zeros((4, 8, 8), dtype=np.uint8), TypeError, "floating point"),
])
def test_metrics_reject_bad_images(bad, err, match):
    for metric in (fn.digits_features, fn.digits_probs, fn.digits_inception_score):
        with pytest.raises(err, match=match):
            metric(bad)


def test_digits_fid_needs_n_images(split):
    x_tr = split[0]
    with pytest.raises(ValueError, match="needs at least 1000 images"):
        fn.digits_fid(x_tr[:100])
    with pytest.raises(ValueError, match="n must be"):
        fn.digits_fid(x_tr, n=1)
    with pytest.raises(ValueError, match="too few samples"):
        fn.digits_fid(x_tr[:50], n=50)
