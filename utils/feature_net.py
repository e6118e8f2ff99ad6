"""A small digits classifier whose penultimate features play Inception's role.

FID and the Inception Score were defined with an ImageNet Inception-v3 network.
For 8x8 digits we train our own small CNN on the digits *train* split
(:func:`utils.data.digits_split`); its 128 penultimate ReLU features replace
Inception's 2048 pool features and its softmax replaces Inception's 1000 classes.
It is trained once, deterministically, and cached: ``models.load("feature-net")``.

Convenience metrics on ``(N, 8, 8)`` images in ``[0, 1]``:

* :func:`digits_fid` compares images with the held-out *test* split (which
  neither the classifier nor the book's generative models saw in training);
* :func:`digits_inception_score` is the Inception Score under this classifier.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from . import models
from .data import check_images, digits_split
from .metrics.generative import feature_statistics, frechet_distance, inception_score
from .train import TrainConfig, Trainer

__all__ = [
    "FeatureConfig",
    "FEATURE_CONFIG",
    "FeatureClassifier",
    "digits_features",
    "digits_probs",
    "fid_reference_images",
    "digits_fid",
    "digits_inception_score",
]


@dataclass(frozen=True)
class FeatureConfig:
    """Architecture and training settings of the digits feature classifier."""

    channels: tuple[int, int] = (16, 32)
    num_features: int = 128
    dropout: float = 0.1
    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-2
    weight_decay: float = 1e-4
    warmup_epochs: float = 9.0
    test_size: float = 0.25
    split_seed: int = 0
    seed: int = 0


#: The classifier behind every digits-FID and Inception Score of the book.
FEATURE_CONFIG = FeatureConfig()


class FeatureClassifier(nn.Module):
    """Conv(3x3) -> ReLU -> Conv(3x3) -> ReLU -> MaxPool -> Linear -> ReLU (features) -> Linear.

    ``forward`` takes ``(N, 8, 8)`` or ``(N, 1, 8, 8)`` images and returns logits;
    :meth:`features` returns the ``num_features`` penultimate activations (the
    "Inception features") and :meth:`probs` the class probabilities.
    """

    def __init__(self, channels=(16, 32), num_features: int = 128, n_classes: int = 10,
                 dropout: float = 0.1):
        super().__init__()
        c1, c2 = channels
        self.num_features = num_features  # read by torchmetrics' FrechetInceptionDistance
        self.body = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=1), nn.ReLU(),
            nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Dropout(dropout), nn.Linear(c2 * 16, num_features), nn.ReLU(),
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(num_features, n_classes))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Penultimate features ``(N, num_features)``."""
        x = images[:, None] if images.ndim == 3 else images
        if x.ndim != 4 or x.shape[1:] != (1, 8, 8):
            raise ValueError(f"images must be (N, 8, 8) or (N, 1, 8, 8), got {tuple(images.shape)}")
        return self.body(x)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))

    def probs(self, images: torch.Tensor) -> torch.Tensor:
        """Class probabilities ``(N, 10)``."""
        return torch.softmax(self(images), dim=-1)


def _build(config: FeatureConfig) -> FeatureClassifier:
    return FeatureClassifier(config.channels, config.num_features, dropout=config.dropout)


def _train(config: FeatureConfig) -> tuple[FeatureClassifier, dict[str, list[float]]]:
    """Cross-entropy on the digits train split with :class:`utils.train.Trainer`."""
    c = config
    trainer = Trainer(TrainConfig(
        epochs=c.epochs, batch_size=c.batch_size, lr=c.lr, weight_decay=c.weight_decay,
        schedule="cosine", warmup_epochs=c.warmup_epochs, grad_clip=None, seed=c.seed,
        desc="feature classifier"))
    x_tr, _, y_tr, _ = digits_split(c.test_size, c.split_seed)
    model = _build(c)                           # after the trainer: seeded initialisation

    def loss_fn(batch):
        x, y = batch
        return nn.functional.cross_entropy(model(x), y)

    history = trainer.fit(model, loss_fn, (torch.tensor(x_tr), torch.tensor(y_tr)))
    return model, history


models.register(models.Recipe(
    name="feature-net", default=FEATURE_CONFIG, build=_build, train=_train,
    summary="the small digits CNN whose penultimate features stand in for Inception's",
    full=FEATURE_CONFIG))  # shipped as it is: every FID of the book is measured with these features

_MODEL: dict[str, FeatureClassifier] = {}


def _classifier() -> FeatureClassifier:
    """The book's classifier (``models.load("feature-net")``: the shipped one), loaded once per process."""
    key = os.environ.get("TFUL_TRAIN", "") or "shipped"
    if key not in _MODEL:
        _MODEL[key] = models.load("feature-net").model
    return _MODEL[key]


def _images(images, name: str = "images") -> torch.Tensor:
    x = check_images(images, name, size=8, unit_range=True, numpy_ok=True)
    return x.detach().float().cpu().clamp(0.0, 1.0)


@torch.no_grad()
def digits_features(images) -> np.ndarray:
    """Penultimate features ``(N, 128)`` of ``(N, 8, 8)`` images in ``[0, 1]``, as float64."""
    x = _images(images)
    net = _classifier()
    return torch.cat([net.features(b) for b in x.split(512)]).double().numpy()


@torch.no_grad()
def digits_probs(images) -> np.ndarray:
    """Class probabilities ``(N, 10)`` of ``(N, 8, 8)`` images in ``[0, 1]``, as float64."""
    x = _images(images)
    net = _classifier()
    return torch.cat([net.probs(b) for b in x.split(512)]).double().numpy()


def fid_reference_images() -> np.ndarray:
    """The default FID reference: the held-out test split of the digits ``(450, 8, 8)``."""
    _, x_te, _, _ = digits_split(FEATURE_CONFIG.test_size, FEATURE_CONFIG.split_seed)
    return x_te


_REF_STATS: dict[str, tuple[np.ndarray, np.ndarray]] = {}


def digits_fid(images, reference=None, n: int | None = 1000) -> float:
    """Digits-FID of the first ``n`` images against ``reference`` (default: the test split).

    FID is biased upwards at small ``n``, so compare models at the same ``n``
    (the book uses 1000 generated images). ``n=None`` uses all images given.
    Raises ``ValueError`` if fewer than ``n`` images are passed.
    """
    x = _images(images)
    if n is not None:
        if not isinstance(n, int | np.integer) or isinstance(n, bool) or n < 2:
            raise ValueError(f"n must be an int >= 2 or None, got {n!r}")
        if len(x) < n:
            raise ValueError(f"digits_fid(n={n}) needs at least {n} images, got {len(x)}; "
                             "pass more samples or set n explicitly (same n for every model)")
        x = x[:n]
    if reference is None:
        key = os.environ.get("TFUL_TRAIN", "") or "shipped"   # the classifier _classifier() uses
        if key not in _REF_STATS:
            _REF_STATS[key] = feature_statistics(digits_features(fid_reference_images()))
        mu_r, sigma_r = _REF_STATS[key]
    else:
        mu_r, sigma_r = feature_statistics(digits_features(_images(reference, "reference")))
    mu, sigma = feature_statistics(digits_features(x))
    return frechet_distance(mu, sigma, mu_r, sigma_r)


def digits_inception_score(images) -> float:
    """Inception Score of ``(N, 8, 8)`` images under the digits classifier (between 1 and 10)."""
    return inception_score(digits_probs(images))
