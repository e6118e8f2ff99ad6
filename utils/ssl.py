r"""Self-supervised objectives for a small patch Transformer on digits, and the cached encoder.

Two objectives, both trained without labels:

* **masked-patch reconstruction** (MAE/SimMIM-style): hide a random subset of the
  2x2 patches (replace them by a learned [MASK] token), and predict their pixels
  from the visible ones. The loss is the mean squared error over the hidden
  patches only.
* **contrastive** (SimCLR-style): two random views of each image should have
  similar projections and differ from the other images of the batch. With
  :math:`z` the L2-normalised projections of the :math:`2N` views and
  :math:`s_{ik} = z_i^\top z_k / \tau`, the NT-Xent loss is

  .. math::
      \ell_i = -s_{i,\mathrm{pos}(i)} + \log \sum_{k \ne i} \exp(s_{ik}),
      \qquad \mathcal{L} = \frac{1}{2N} \sum_{i=1}^{2N} \ell_i ,

  where :math:`\mathrm{pos}(i)` is the other view of the same image.

Both train on all 1,797 digits with :class:`utils.train.Trainer` and are registered
with :mod:`utils.models`: ``models.load("digits-ssl-contrastive").model`` is the
:class:`ContrastiveEncoder`, ``models.load("digits-ssl-masked").model`` the
:class:`MaskedModel` (its ``.encoder`` is the :class:`MaskedEncoder`), trained once
and then loaded from the checkpoint cache.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import models, runtime
from .augment import AugmentConfig, augment
from .data import check_images
from .train import TrainConfig, Trainer
from .transformer import PatchEncoder, PatchEncoderConfig, image_to_patches

__all__ = [
    "nt_xent",
    "nt_xent_reference",
    "random_token_mask",
    "masked_patch_loss",
    "hidden_patch_mse",
    "ContrastiveEncoder",
    "MaskedEncoder",
    "MaskedModel",
    "DIGITS_ENCODER",
    "SSLConfig",
    "default_config",
    "train_ssl",
    "evaluate_features",
    "encode",
]


# --------------------------------------------------------------------------- objectives
def _check_pair(z1, z2) -> None:
    for name, z in (("z1", z1), ("z2", z2)):
        if not torch.is_tensor(z):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(z).__name__}")
        if not z.is_floating_point():
            raise TypeError(f"{name} must be floating point, got {z.dtype}")
    if z1.ndim != 2 or z1.shape != z2.shape:
        raise ValueError(f"z1 and z2 must both be (N, d) with the same shape, got "
                         f"{tuple(z1.shape)} and {tuple(z2.shape)}")
    if len(z1) < 2:
        raise ValueError(f"NT-Xent needs at least 2 images per batch (negatives), got {len(z1)}")
    if not (torch.isfinite(z1).all() and torch.isfinite(z2).all()):
        raise ValueError("z1 or z2 contains NaN or infinite values")


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.2) -> torch.Tensor:
    r"""NT-Xent loss, written out: rows ``z1[i]`` and ``z2[i]`` are two views of image ``i``.

    ``loss_i = -s[i, pos(i)] + logsumexp_{k != i} s[i, k]`` with cosine similarities
    ``s`` divided by ``temperature``, averaged over all ``2N`` views.
    """
    _check_pair(z1, z2)
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    n = len(z1)
    z = torch.cat([z1, z2])
    z = z / z.norm(dim=1, keepdim=True).clamp_min(1e-12)
    s = z @ z.T / temperature                                   # (2N, 2N)
    idx = torch.arange(2 * n, device=z.device)
    pos = (idx + n) % (2 * n)                                   # the other view
    s_pos = s[idx, pos]
    s_others = s.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    m = s_others.amax(dim=1, keepdim=True)                      # stable log-sum-exp
    lse = m[:, 0] + torch.log(torch.exp(s_others - m).sum(dim=1))
    return (lse - s_pos).mean()


def nt_xent_reference(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.2) -> torch.Tensor:
    """NT-Xent as a ``2N``-way classification: ``F.cross_entropy`` on the similarity matrix."""
    _check_pair(z1, z2)
    n = len(z1)
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    logits = (z @ z.T / temperature).fill_diagonal_(float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(logits, targets)


def random_token_mask(batch: int, n_tokens: int, mask_ratio: float, *,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """A ``(batch, n_tokens)`` bool mask with exactly ``max(1, round(mask_ratio * n_tokens))`` True per row."""
    if not 0.0 < mask_ratio < 1.0:
        raise ValueError(f"mask_ratio must be in (0, 1), got {mask_ratio}")
    if batch < 1 or n_tokens < 1:
        raise ValueError(f"batch and n_tokens must be positive, got {batch}, {n_tokens}")
    n_mask = max(1, round(mask_ratio * n_tokens))
    ranks = torch.rand(batch, n_tokens, generator=generator).argsort(dim=1).argsort(dim=1)
    return ranks < n_mask


# --------------------------------------------------------------------------- models
class ContrastiveEncoder(PatchEncoder):
    """A :class:`~utils.transformer.PatchEncoder` with a projection head ``Linear -> GELU -> Linear``.

    :meth:`features` is the L2-normalised projection of the [CLS] state: the space in
    which NT-Xent compares views, and the one whose geometry (cosine similarity) the
    objective shapes. :meth:`cls_features` is the [CLS] state before the head, the usual
    choice for linear probes.
    """

    def __init__(self, config: PatchEncoderConfig | None = None, proj_dim: int = 32):
        super().__init__(config if config is not None else PatchEncoderConfig())
        d = self.config.d_model
        self.proj_dim = proj_dim
        self.head = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, proj_dim))

    @property
    def feature_dim(self) -> int:
        return self.proj_dim

    def cls_features(self, images: torch.Tensor) -> torch.Tensor:
        return self(images)[:, 0]

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.head(self.cls_features(images)), dim=1)


class MaskedEncoder(PatchEncoder):
    """A :class:`~utils.transformer.PatchEncoder` for masked-patch pretraining.

    :meth:`features` concatenates the final states of all patch tokens, ``(B, N * d_model)``:
    the reconstruction loss trains each patch token to describe its patch, and neither the
    [CLS] token nor an average over patches is trained for anything (``encode(...,
    pool="mean")`` gives the average, for comparison).
    """

    @property
    def feature_dim(self) -> int:
        return self.n_patches * self.config.d_model

    def cls_features(self, images: torch.Tensor) -> torch.Tensor:
        return self(images)[:, 0]

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self(images)[:, 1:].flatten(1)


class MaskedModel(nn.Module):
    """Encoder plus a linear decoder from each token's state to its patch's pixels."""

    def __init__(self, encoder: PatchEncoder):
        super().__init__()
        self.encoder = encoder
        self.decoder = nn.Linear(encoder.config.d_model, encoder.config.patch_size ** 2)

    def forward(self, images: torch.Tensor, token_mask: torch.Tensor) -> torch.Tensor:
        """Predicted pixels for every patch, ``(B, N, p*p)``."""
        return self.decoder(self.encoder(images, token_mask)[:, 1:])


def masked_patch_loss(model: MaskedModel, images: torch.Tensor, token_mask: torch.Tensor
                      ) -> torch.Tensor:
    """Mean squared error of the predicted pixels over the *hidden* patches only."""
    target = image_to_patches(images, model.encoder.config.patch_size)
    pred = model(images, token_mask)
    err = ((pred - target) ** 2).mean(dim=-1)                   # (B, N)
    return (err * token_mask).sum() / token_mask.sum().clamp_min(1)



@torch.no_grad()
def hidden_patch_mse(model: MaskedModel, images, *, mask_ratio: float = 0.5, seed: int = 0,
                     repeats: int = 4) -> float:
    """:func:`masked_patch_loss` of ``model`` on ``images``, averaged over ``repeats`` fresh masks.

    The masks come from a generator seeded with ``seed``, so the number is reproducible
    and independent of the masks seen in training.
    """
    if not isinstance(model, MaskedModel):
        raise TypeError(f"model must be a MaskedModel, got {type(model).__name__}")
    if not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be a positive int, got {repeats!r}")
    x = check_images(images, "images", numpy_ok=True).float()
    gen = torch.Generator().manual_seed(seed)
    was_training = model.training
    model.eval()
    losses = [float(masked_patch_loss(model, x, random_token_mask(len(x), model.encoder.n_patches,
                                                                  mask_ratio, generator=gen)))
              for _ in range(repeats)]
    model.train(was_training)
    return float(np.mean(losses))

# --------------------------------------------------------------------------- training
#: The book's encoder: 4x4 patches (4 tokens + [CLS]) and 2 layers (see chapter 3 for why).
DIGITS_ENCODER = PatchEncoderConfig(image_size=8, patch_size=4, d_model=64, n_heads=4,
                                    n_layers=2, d_ff=128)


@dataclass(frozen=True)
class SSLConfig:
    """Every setting that defines a pretrained encoder (all of it is in the cache key)."""

    objective: str = "contrastive"
    encoder: PatchEncoderConfig = DIGITS_ENCODER
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    epochs: int = 100
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_epochs: int = 3
    temperature: float = 0.3
    proj_dim: int = 32
    mask_ratio: float = 0.5
    seed: int = 0
    data: str = "sklearn-digits-all-1797"

    def __post_init__(self):
        if self.objective not in ("contrastive", "masked"):
            raise ValueError(f"objective must be 'contrastive' or 'masked', got {self.objective!r}")
        if self.epochs < 1 or self.batch_size < 2:
            raise ValueError(f"need epochs >= 1 and batch_size >= 2, got {self.epochs}, "
                             f"{self.batch_size}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {self.seed!r}")

    def as_dict(self) -> dict:
        return asdict(self)


def default_config(objective: str = "contrastive", seed: int = 0) -> SSLConfig:
    """The settings the book uses for each objective (the masked one sees no augmentation)."""
    if objective == "masked":
        return SSLConfig(objective="masked", epochs=20, batch_size=128, seed=seed,
                         encoder=replace(DIGITS_ENCODER, patch_size=2),
                         augment=AugmentConfig(max_rotation=0.0, scale_low=1.0, scale_high=1.0,
                                               max_shift=0.0, contrast_low=1.0, noise_std=0.0,
                                               patch_drop=0.0))
    return SSLConfig(objective=objective, seed=seed)


def _new_encoder(config: SSLConfig) -> ContrastiveEncoder | MaskedEncoder:
    if config.objective == "contrastive":
        return ContrastiveEncoder(config.encoder, config.proj_dim)
    return MaskedEncoder(config.encoder)


def _new_model(config: SSLConfig) -> ContrastiveEncoder | MaskedModel:
    """What training updates: the contrastive encoder, or the masked encoder with its decoder."""
    encoder = _new_encoder(config)
    return encoder if config.objective == "contrastive" else MaskedModel(encoder)


def _fit(config: SSLConfig, images, *, callback=None, desc: str | None = None
         ) -> tuple[ContrastiveEncoder | MaskedModel, dict[str, list[float]]]:
    x = check_images(images, "images", numpy_ok=True).float()
    if len(x) < 2:
        raise ValueError(f"need at least 2 images, got {len(x)}")
    c = config
    trainer = Trainer(TrainConfig(
        epochs=c.epochs, batch_size=c.batch_size, lr=c.lr, weight_decay=c.weight_decay,
        no_decay_bias_norm=True, schedule="cosine", warmup_epochs=c.warmup_epochs, grad_clip=1.0,
        drop_last=True, seed=c.seed, desc=desc or f"{c.objective} pretraining"))
    model = _new_model(c)                       # after the trainer: seeded initialisation
    encoder = model if c.objective == "contrastive" else model.encoder
    gen = trainer.generator

    def contrastive_loss(batch):
        v1 = augment(batch, c.augment, generator=gen)
        v2 = augment(batch, c.augment, generator=gen)
        z = encoder.features(torch.cat([v1, v2]))
        return nt_xent(z[:len(batch)], z[len(batch):], c.temperature)

    def masked_loss(batch):
        mask = random_token_mask(len(batch), encoder.n_patches, c.mask_ratio, generator=gen)
        return masked_patch_loss(model, batch, mask)

    on_epoch = None if callback is None else (lambda t: callback(t.epoch, encoder))
    history = trainer.fit(model, contrastive_loss if c.objective == "contrastive" else masked_loss,
                          x, on_epoch=on_epoch)
    return model, history


def train_ssl(config: SSLConfig, images: torch.Tensor | np.ndarray, *, callback=None,
              desc: str | None = None) -> tuple[PatchEncoder, dict[str, list[float]]]:
    """Train a fresh encoder with ``config``'s objective on ``images`` (no labels).

    Runs :class:`utils.train.Trainer`: AdamW (no decay on biases, norms and positional
    embeddings), linear warm-up then cosine, gradient clipping at 1, the ragged last
    batch dropped. Deterministic given ``config.seed`` (shifted by
    :func:`utils.runtime.training_seed`): the initial weights, batch order,
    augmentations and masks all come from seeded generators. ``callback(epoch, encoder)``
    may return a dict of values to log each epoch (e.g. a probe). Returns
    ``(encoder, history)``; for the masked objective the decoder is dropped (the
    ``"digits-ssl-masked"`` model of :func:`utils.models.load` keeps it).
    """
    model, history = _fit(config, images, callback=callback, desc=desc)
    return (model if isinstance(model, PatchEncoder) else model.encoder), history


# --------------------------------------------------------------------------- cached models
def _digits_images() -> np.ndarray:
    from . import data

    return data.load_digits_images()[0]


#: epochs of the full recipes (``make checkpoints``); the quick ones train 100 and 20
FULL_EPOCHS = {"contrastive": 600, "masked": 600}


def _recipe(objective: str) -> models.Recipe:
    def check(config: SSLConfig) -> SSLConfig:
        if config.objective != objective:
            raise ValueError(f"digits-ssl-{objective} needs objective={objective!r}, "
                             f"got {config.objective!r}")
        return config

    def build(config: SSLConfig):
        return _new_model(check(config))

    def train(config: SSLConfig):
        return _fit(check(config), _digits_images(), desc=f"digits-ssl-{objective}")

    what = ("the ContrastiveEncoder" if objective == "contrastive"
            else "the MaskedModel (MaskedEncoder in .encoder, pixel decoder in .decoder)")
    full = replace(default_config(objective), epochs=FULL_EPOCHS[objective])
    return models.Recipe(name=f"digits-ssl-{objective}", default=default_config(objective),
                         build=build, train=train, full=full,
                         summary=f"{what}, pretrained on all 1,797 digits without labels")


models.register(_recipe("contrastive"))
models.register(_recipe("masked"))


def evaluate_features(features, labels, *, n_clusters: int = 10, seed: int = 0,
                      k: int = 5) -> dict[str, float]:
    """Label-based diagnostics of frozen features (the labels are used only here).

    * ``knn_acc``: accuracy of a ``k``-nearest-neighbour classifier (cosine distance),
    * ``linear_acc``: accuracy of a logistic-regression probe on standardised features,

    both trained on a stratified 75 % split and scored on the other 25 %, and

    * ``kmeans_ari``: adjusted Rand index of k-means (``n_clusters``, 10 restarts) on
      all the features against the labels.
    """
    from sklearn.cluster import KMeans
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import adjusted_rand_score
    from sklearn.model_selection import train_test_split
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    f = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels)
    if f.ndim != 2 or len(f) == 0:
        raise ValueError(f"features must be a non-empty 2-D array, got shape {f.shape}")
    if not np.isfinite(f).all():
        raise ValueError("features contain NaN or infinite values")
    if y.shape != (len(f),):
        raise ValueError(f"labels must have shape ({len(f)},), got {y.shape}")
    if n_clusters > len(f):
        raise ValueError(f"n_clusters={n_clusters} is larger than the number of points {len(f)}")
    f_tr, f_te, y_tr, y_te = train_test_split(f, y, test_size=0.25, random_state=seed,
                                              stratify=y)
    with runtime.threads(1):                    # the scores are asserted: pin the threads
        knn = KNeighborsClassifier(k, metric="cosine").fit(f_tr, y_tr)
        probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(f_tr, y_tr)
        pred = KMeans(n_clusters, n_init=10, random_state=seed).fit_predict(f)
        return {"knn_acc": float(knn.score(f_te, y_te)),
                "linear_acc": float(probe.score(f_te, y_te)),
                "kmeans_ari": float(adjusted_rand_score(y, pred))}


@torch.no_grad()
def encode(encoder: PatchEncoder, images, batch_size: int = 512, *,
           pool: str = "features") -> np.ndarray:
    """Features (float32 NumPy, one row per image) of ``(N, 8, 8)`` images, without gradients.

    ``pool="features"`` uses ``encoder.features``: for the contrastive encoder the
    normalised projection (``(N, proj_dim)``), for the masked one the concatenated
    patch tokens (``(N, n_patches * d_model)``), for a plain
    :class:`~utils.transformer.PatchEncoder` the [CLS] state. ``"cls"`` is the [CLS] state
    and ``"mean"`` the mean of the patch tokens (both ``(N, d_model)``).
    """
    if not isinstance(encoder, PatchEncoder):
        raise TypeError(f"encoder must be a PatchEncoder, got {type(encoder).__name__}")
    pools = {"features": encoder.features, "cls": lambda b: encoder(b)[:, 0],
             "mean": lambda b: encoder(b)[:, 1:].mean(1)}
    if pool not in pools:
        raise ValueError(f"pool must be one of {sorted(pools)}, got {pool!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    x = check_images(images, "images", size=encoder.config.image_size, numpy_ok=True)
    was_training = encoder.training
    encoder.eval()
    device = next(encoder.parameters()).device
    out = [pools[pool](x[i:i + batch_size].to(device, torch.float32)).cpu()
           for i in range(0, len(x), batch_size)]
    encoder.train(was_training)
    return torch.cat(out).numpy().astype(np.float32)


