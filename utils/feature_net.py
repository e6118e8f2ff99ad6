"""A small digits classifier whose penultimate features play Inception's role.

FID and the Inception Score were defined with an ImageNet Inception-v3 network.
For 8x8 digits we train our own small CNN on the digits *train* split
(:func:`utils.data.digits_split`); its 128 penultimate ReLU features replace
Inception's 2048 pool features and its softmax replaces Inception's 1000 classes.
It is trained once, deterministically, and cached by config hash.

Convenience metrics on ``(N, 8, 8)`` images in ``[0, 1]``:

* :func:`digits_fid` compares images with the held-out *test* split (which
  neither the classifier nor the book's generative models saw in training);
* :func:`digits_inception_score` is the Inception Score under this classifier.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from . import runtime
from .data import digits_split
from .metrics.generative import feature_statistics, frechet_distance, inception_score

__all__ = [
    "FEATURE_CONFIG",
    "FeatureClassifier",
    "feature_classifier",
    "check_images",
    "digits_features",
    "digits_probs",
    "fid_reference_images",
    "digits_fid",
    "digits_inception_score",
    "TRAIN_THREADS",
]

FEATURE_CONFIG = {
    "name": "digits-feature-cnn", "version": 1, "channels": [16, 32], "n_features": 128,
    "dropout": 0.1, "epochs": 30, "batch_size": 64, "lr": 1e-2, "weight_decay": 1e-4,
    "test_size": 0.25, "split_seed": 0, "seed": 0,
}


class FeatureClassifier(nn.Module):
    """Conv(3x3) -> ReLU -> Conv(3x3) -> ReLU -> MaxPool -> Linear -> ReLU (features) -> Linear.

    ``forward`` takes ``(N, 8, 8)`` or ``(N, 1, 8, 8)`` images and returns logits;
    :meth:`features` returns the ``num_features`` penultimate activations (the
    "Inception features") and :meth:`probs` the class probabilities.
    """

    def __init__(self, channels=(16, 32), n_features: int = 128, n_classes: int = 10,
                 dropout: float = 0.1):
        super().__init__()
        c1, c2 = channels
        self.num_features = n_features  # read by torchmetrics' FrechetInceptionDistance
        self.body = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=1), nn.ReLU(),
            nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Dropout(dropout), nn.Linear(c2 * 16, n_features), nn.ReLU(),
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(n_features, n_classes))

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


def _train(cfg: dict) -> dict[str, torch.Tensor]:
    from .train import check_finite, progress

    gen = runtime.seed_everything(cfg["seed"])
    x_tr, _, y_tr, _ = digits_split(cfg["test_size"], cfg["split_seed"])
    x_tr, y_tr = torch.tensor(x_tr), torch.tensor(y_tr)
    model = FeatureClassifier(cfg["channels"], cfg["n_features"], dropout=cfg["dropout"])
    opt = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    steps_per_epoch = -(-len(x_tr) // cfg["batch_size"])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg["lr"],
                                                total_steps=cfg["epochs"] * steps_per_epoch)
    model.train()
    for epoch in progress(range(cfg["epochs"]), desc="feature classifier"):
        for idx in torch.randperm(len(x_tr), generator=gen).split(cfg["batch_size"]):
            loss = nn.functional.cross_entropy(model(x_tr[idx]), y_tr[idx])
            check_finite(loss, f"feature classifier epoch {epoch}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return model.state_dict()


# Float sums are split differently across threads, so the thread count is part of the
# training recipe: the same config trained with 1 or 2 threads gives (slightly) different
# weights and FIDs. The cached classifier is trained with exactly this many threads,
# whatever the caller has set.
TRAIN_THREADS = 2


def _train_pinned(cfg: dict) -> dict[str, torch.Tensor]:
    with runtime.threads(TRAIN_THREADS):
        return _train(cfg)


_MODEL: dict[str, FeatureClassifier] = {}


def feature_classifier(verbose: bool = False) -> FeatureClassifier:
    """The cached digits classifier in eval mode.

    Trained deterministically (a few seconds, with ``TRAIN_THREADS`` threads) when the
    cache holds no copy.
    """
    key = runtime.config_hash(FEATURE_CONFIG)
    if key not in _MODEL:
        state = runtime.cached_state("feature_net", FEATURE_CONFIG,
                                     lambda: _train_pinned(FEATURE_CONFIG), verbose=verbose)
        model = FeatureClassifier(FEATURE_CONFIG["channels"], FEATURE_CONFIG["n_features"],
                                  dropout=FEATURE_CONFIG["dropout"])
        model.load_state_dict(state)
        model.eval().requires_grad_(False)
        _MODEL[key] = model
    return _MODEL[key]


def check_images(images, name: str = "images") -> torch.Tensor:
    """Validate ``(N, 8, 8)`` finite images in ``[0, 1]``; return them as a float32 tensor."""
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(np.ascontiguousarray(images))
    if not torch.is_tensor(images):
        raise TypeError(
            f"{name} must be a numpy array or torch tensor, got {type(images).__name__}"
        )
    if not (images.is_floating_point() or images.dtype in (torch.uint8, torch.int64, torch.int32)):
        raise TypeError(f"{name} must hold real numbers, got dtype {images.dtype}")
    if images.ndim != 3 or images.shape[1:] != (8, 8):
        raise ValueError(f"{name} must have shape (N, 8, 8), got {tuple(images.shape)}")
    if len(images) == 0:
        raise ValueError(f"{name} is empty")
    x = images.detach().float().cpu()
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contain NaN or infinite values")
    lo, hi = float(x.min()), float(x.max())
    if lo < -1e-4 or hi > 1 + 1e-4:
        raise ValueError(f"{name} must lie in [0, 1], got values in [{lo:.3g}, {hi:.3g}]; "
                         "rescale (e.g. (x + 1) / 2 for tanh outputs) or clamp first")
    return x.clamp(0.0, 1.0)


@torch.no_grad()
def digits_features(images) -> np.ndarray:
    """Penultimate features ``(N, 128)`` of ``(N, 8, 8)`` images in ``[0, 1]``, as float64."""
    x = check_images(images)
    net = feature_classifier()
    return torch.cat([net.features(b) for b in x.split(512)]).double().numpy()


@torch.no_grad()
def digits_probs(images) -> np.ndarray:
    """Class probabilities ``(N, 10)`` of ``(N, 8, 8)`` images in ``[0, 1]``, as float64."""
    x = check_images(images)
    net = feature_classifier()
    return torch.cat([net.probs(b) for b in x.split(512)]).double().numpy()


def fid_reference_images() -> np.ndarray:
    """The default FID reference: the held-out test split of the digits ``(450, 8, 8)``."""
    _, x_te, _, _ = digits_split(FEATURE_CONFIG["test_size"], FEATURE_CONFIG["split_seed"])
    return x_te


_REF_STATS: dict[str, tuple[np.ndarray, np.ndarray]] = {}


def digits_fid(images, reference=None, n: int | None = 1000) -> float:
    """Digits-FID of the first ``n`` images against ``reference`` (default: the test split).

    FID is biased upwards at small ``n``, so compare models at the same ``n``
    (the book uses 1000 generated images). ``n=None`` uses all images given.
    Raises ``ValueError`` if fewer than ``n`` images are passed.
    """
    x = check_images(images)
    if n is not None:
        if not isinstance(n, int | np.integer) or isinstance(n, bool) or n < 2:
            raise ValueError(f"n must be an int >= 2 or None, got {n!r}")
        if len(x) < n:
            raise ValueError(f"digits_fid(n={n}) needs at least {n} images, got {len(x)}; "
                             "pass more samples or set n explicitly (same n for every model)")
        x = x[:n]
    if reference is None:
        key = runtime.config_hash(FEATURE_CONFIG)
        if key not in _REF_STATS:
            _REF_STATS[key] = feature_statistics(digits_features(fid_reference_images()))
        mu_r, sigma_r = _REF_STATS[key]
    else:
        mu_r, sigma_r = feature_statistics(digits_features(check_images(reference, "reference")))
    mu, sigma = feature_statistics(digits_features(x))
    return frechet_distance(mu, sigma, mu_r, sigma_r)


def digits_inception_score(images) -> float:
    """Inception Score of ``(N, 8, 8)`` images under the digits classifier (between 1 and 10)."""
    return inception_score(digits_probs(images))
