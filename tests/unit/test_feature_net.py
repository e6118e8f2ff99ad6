"""Tests for utils.feature_net: the cached digits classifier and digits-FID / IS."""

import numpy as np
import pytest
import torch

from utils import feature_net as fn
from utils.data import digits_split


@pytest.fixture(scope="module")
def split():
    return digits_split(fn.FEATURE_CONFIG["test_size"], fn.FEATURE_CONFIG["split_seed"])


def test_classifier_accuracy_and_api(split):
    _, x_te, _, y_te = split
    net = fn.feature_classifier()
    assert not net.training
    x = torch.tensor(x_te)
    with torch.no_grad():
        acc = (net(x).argmax(1).numpy() == y_te).mean()
        feats, probs = net.features(x[:5]), net.probs(x[:5])
    assert acc >= 0.97
    assert feats.shape == (5, net.num_features)
    torch.testing.assert_close(probs.sum(1), torch.ones(5))
    assert fn.feature_classifier() is net  # loaded once per process


def test_classifier_trains_with_a_fixed_thread_count(monkeypatch):
    seen = []
    monkeypatch.setattr(fn, "_train", lambda cfg: seen.append(torch.get_num_threads()) or {})
    old = torch.get_num_threads()
    caller = 1 if fn.TRAIN_THREADS != 1 else 2
    torch.set_num_threads(caller)
    try:
        assert fn._train_pinned(fn.FEATURE_CONFIG) == {}
        assert seen == [fn.TRAIN_THREADS] and torch.get_num_threads() == caller
    finally:
        torch.set_num_threads(old)


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
    tm = FrechetInceptionDistance(feature=Features(fn.feature_classifier()))
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
    assert fn.digits_features(x_te[:7]).shape == (7, fn.FEATURE_CONFIG["n_features"])
    assert fn.digits_probs(torch.tensor(x_te[:7])).shape == (7, 10)


@pytest.mark.parametrize("bad, err, match", [
    (np.zeros((4, 8)), ValueError, "shape"),
    (np.zeros((4, 7, 7)), ValueError, "shape"),
    (np.zeros((0, 8, 8)), ValueError, "empty"),
    (np.full((4, 8, 8), np.nan), ValueError, "NaN"),
    (np.full((4, 8, 8), 2.0), ValueError, r"\[0, 1\]"),
    (-np.ones((4, 8, 8)), ValueError, r"\[0, 1\]"),
    ([[1, 2]], TypeError, "numpy array or torch tensor"),
    (np.zeros((4, 8, 8), dtype=complex), TypeError, "real numbers"),
])
def test_check_images_bad_input(bad, err, match):
    with pytest.raises(err, match=match):
        fn.check_images(bad)


def test_digits_fid_needs_n_images(split):
    x_tr = split[0]
    with pytest.raises(ValueError, match="needs at least 1000 images"):
        fn.digits_fid(x_tr[:100])
    with pytest.raises(ValueError, match="n must be"):
        fn.digits_fid(x_tr, n=1)
    with pytest.raises(ValueError, match="too few samples"):
        fn.digits_fid(x_tr[:50], n=50)
