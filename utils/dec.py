r"""Deep Embedded Clustering (DEC): train the encoder and the cluster centroids together.

With embeddings :math:`z_i` and centroids :math:`\mu_j`, DEC (Xie et al., 2016) uses

* a Student-t **soft assignment** with ``alpha`` degrees of freedom,

  .. math::
      q_{ij} = \frac{(1 + \lVert z_i - \mu_j\rVert^2/\alpha)^{-\frac{\alpha+1}{2}}}
                    {\sum_{j'} (1 + \lVert z_i - \mu_{j'}\rVert^2/\alpha)^{-\frac{\alpha+1}{2}}};

* a sharpened **target distribution** that squares the assignments and divides by the
  cluster frequencies :math:`f_j = \sum_i q_{ij}` (so that big clusters do not swallow
  the rest),

  .. math::
      p_{ij} = \frac{q_{ij}^2 / f_j}{\sum_{j'} q_{ij'}^2 / f_{j'}};

* the **loss** :math:`\mathrm{KL}(P \Vert Q) = \frac{1}{N}\sum_i \sum_j p_{ij}
  \log \frac{p_{ij}}{q_{ij}}`, with :math:`P` held fixed between updates, minimised
  over the encoder's weights *and* the centroids.

Confident assignments teach the uncertain ones: DEC is self-training, so it only
helps when the initial clusters (k-means on the pretrained features) are mostly right.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import models, runtime
from .augment import AugmentConfig
from .augment import augment as augment_images
from .data import check_images
from .train import TrainConfig, Trainer
from .transformer import PatchEncoder

__all__ = [
    "soft_assignment",
    "target_distribution",
    "dec_loss",
    "init_centroids",
    "DEC",
    "run_dec",
    "DECConfig",
    "DEC_CONFIG",
]


def _check_2d(x, name: str) -> None:
    if not torch.is_tensor(x):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be floating point, got {x.dtype}")
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D tensor, got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values")


def soft_assignment(z: torch.Tensor, centroids: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    """Student-t soft assignment ``q`` of shape ``(N, K)``; each row sums to 1."""
    _check_2d(z, "z")
    _check_2d(centroids, "centroids")
    if z.shape[1] != centroids.shape[1]:
        raise ValueError(f"z has {z.shape[1]} features but the centroids have {centroids.shape[1]}")
    if alpha <= 0:
        raise ValueError(f"alpha must be positive, got {alpha}")
    dist2 = ((z[:, None, :] - centroids[None, :, :]) ** 2).sum(-1)      # (N, K)
    # work with logarithms: (1 + d/alpha)^(-(alpha+1)/2) underflows for far points
    logits = -(alpha + 1.0) / 2.0 * torch.log1p(dist2 / alpha)
    return torch.softmax(logits, dim=1)


def target_distribution(q: torch.Tensor) -> torch.Tensor:
    """DEC's sharpened target ``p``: square ``q``, divide by cluster frequency, renormalise rows."""
    _check_2d(q, "q")
    if (q < 0).any() or not torch.allclose(q.sum(1), torch.ones_like(q[:, 0]), atol=1e-4):
        raise ValueError("q must hold probabilities: non-negative rows that sum to 1")
    weight = q**2 / q.sum(0, keepdim=True)
    return weight / weight.sum(1, keepdim=True)


def dec_loss(q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """``KL(P || Q)`` averaged over the rows (``p`` is a fixed target; no gradient flows into it)."""
    _check_2d(q, "q")
    _check_2d(p, "p")
    if q.shape != p.shape:
        raise ValueError(f"q and p must have the same shape, got {tuple(q.shape)}, {tuple(p.shape)}")
    p = p.detach()
    eps = torch.finfo(q.dtype).tiny
    kl = torch.where(p > 0, p * (torch.log(p.clamp_min(eps)) - torch.log(q.clamp_min(eps))),
                     torch.zeros_like(p))
    return kl.sum() / len(q)


def init_centroids(features: np.ndarray, n_clusters: int, method: str = "kmeans",
                   seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Initial ``(centroids, labels)``: k-means, or ``"random"`` = K random points as centroids.

    The random initialisation is the "bad start" of the chapter: no clustering at all
    before DEC begins.
    """
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] == 0:
        raise ValueError(f"features must be a non-empty 2-D array, got shape {f.shape}")
    if not np.isfinite(f).all():
        raise ValueError("features contain NaN or infinite values")
    if not isinstance(n_clusters, int) or n_clusters < 1:
        raise ValueError(f"n_clusters must be a positive int, got {n_clusters!r}")
    if n_clusters > len(f):
        raise ValueError(f"n_clusters={n_clusters} is larger than the number of points {len(f)}")
    if method == "kmeans":
        from sklearn.cluster import KMeans

        with runtime.threads(1):                # the result is asserted: pin the threads
            km = KMeans(n_clusters, n_init=10, random_state=seed).fit(f)
        return km.cluster_centers_.astype(np.float32), km.labels_.astype(np.int64)
    if method == "random":
        rng = np.random.default_rng(seed)
        centroids = f[rng.choice(len(f), n_clusters, replace=False)]
        labels = ((f[:, None, :] - centroids[None]) ** 2).sum(-1).argmin(1)
        return centroids.astype(np.float32), labels.astype(np.int64)
    raise ValueError(f"method must be 'kmeans' or 'random', got {method!r}")


class DEC(nn.Module):
    """An encoder plus ``K`` trainable centroids; ``forward`` gives the soft assignments ``q``.

    The embedding is ``encoder.features`` (for the contrastive encoder, the normalised
    projection). ``normalize=True`` L2-normalises it and multiplies by ``scale``, which
    sets how sharp the Student-t kernel is: squared distances between unit vectors are
    at most 4, so ``scale`` controls how far apart the clusters look.
    """

    def __init__(self, encoder: PatchEncoder, centroids: torch.Tensor | np.ndarray, *,
                 alpha: float = 1.0, normalize: bool = True, scale: float = 1.0):
        super().__init__()
        if not isinstance(encoder, PatchEncoder):
            raise TypeError(f"encoder must be a PatchEncoder, got {type(encoder).__name__}")
        c = torch.as_tensor(np.asarray(centroids, dtype=np.float32))
        _check_2d(c, "centroids")
        dim = getattr(encoder, "feature_dim", encoder.config.d_model)
        if c.shape[1] != dim:
            raise ValueError(f"centroids have {c.shape[1]} features, the encoder gives {dim}")
        if alpha <= 0 or scale <= 0:
            raise ValueError(f"alpha and scale must be positive, got {alpha}, {scale}")
        self.encoder = encoder
        self.centroids = nn.Parameter(c.clone())
        self.alpha, self.normalize, self.scale = alpha, normalize, scale

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        z = self.encoder.features(images)
        return self.scale * F.normalize(z, dim=1) if self.normalize else z

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return soft_assignment(self.embed(images), self.centroids, self.alpha)

    @torch.no_grad()
    def assignments(self, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        """Soft assignments of all images (eval mode, no gradients), ``(N, K)``."""
        was = self.training
        self.eval()
        q = torch.cat([self(images[i:i + batch_size]) for i in range(0, len(images), batch_size)])
        self.train(was)
        return q


@torch.no_grad()
def _embed_all(encoder: PatchEncoder, x: torch.Tensor, normalize: bool, scale: float) -> np.ndarray:
    z = torch.cat([encoder.features(x[i:i + 512]) for i in range(0, len(x), 512)])
    return (scale * F.normalize(z, dim=1) if normalize else z).numpy()


def run_dec(encoder: PatchEncoder, images, n_clusters: int = 10, *, epochs: int = 30,
            batch_size: int = 256, lr: float = 3e-4, centroid_lr: float | None = None,
            init: str = "kmeans", alpha: float = 1.0, normalize: bool = True, scale: float = 3.0,
            augment: AugmentConfig | None = None, labels=None, seed: int = 0,
            desc: str = "DEC") -> tuple[DEC, dict[str, list]]:
    """Initialise centroids, then train encoder and centroids jointly with DEC's KL loss.

    The target ``P`` is computed from all images before the first epoch and after every
    epoch, and held fixed during an epoch. With ``augment`` (an
    :class:`~utils.augment.AugmentConfig`), the assignments ``Q`` in the loss are
    computed on a random view of each image while ``P`` comes from the clean image, as
    in DEC-DA (Guo et al., 2018): the encoder must assign every view of a digit to the
    cluster the clean digit is confidently in.

    Training runs :class:`utils.train.Trainer` with a constant learning rate (``lr``
    for the encoder, ``centroid_lr``, default ``100 * lr``, for the centroids), no
    weight decay and no gradient clipping, on :func:`utils.runtime.train_threads`
    threads; ``seed`` (shifted by :func:`utils.runtime.training_seed`) seeds the centroid
    initialisation, the batch order and the augmentations.

    ``labels`` are used **only for evaluation** (the loss never sees them): when given,
    the history records the ARI (and Hungarian accuracy) of the hard assignments after
    each epoch, with entry 0 describing the initialisation.

    Returns ``(dec, history)``; ``history`` has ``loss`` (per epoch), ``changed`` (the
    fraction of points whose hard cluster changed during that epoch) and, with labels,
    ``ari`` and ``acc`` (``epochs + 1`` values each). The encoder passed in is modified
    in place, with ``requires_grad`` switched on (pass a copy to keep the original).
    """
    from sklearn.metrics import adjusted_rand_score

    from .metrics import cluster_accuracy

    x = check_images(images, "images", numpy_ok=True).float()
    if not isinstance(epochs, int) or epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be positive, got {epochs}, {batch_size}")
    y = None
    if labels is not None:
        y = np.asarray(labels)
        if y.shape != (len(x),):
            raise ValueError(f"labels must have shape ({len(x)},), got {y.shape}")

    encoder.eval()
    with runtime.training():                    # the start, too, on the training threads
        feats = _embed_all(encoder, x, normalize, scale)
    centroids, _ = init_centroids(feats, n_clusters, init, runtime.training_seed(seed))
    trainer = Trainer(TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=0.0,
                                  schedule="constant", grad_clip=None, seed=seed, desc=desc))
    dec = DEC(encoder.requires_grad_(True), centroids, alpha=alpha, normalize=normalize,
              scale=scale)
    centroid_lr = lr * 100 if centroid_lr is None else centroid_lr
    groups = [{"params": list(dec.encoder.parameters()), "lr": lr},
              {"params": [dec.centroids], "lr": centroid_lr}]
    evaluation: dict[str, list[float]] = {"ari": [], "acc": []}

    def log_eval(assign: np.ndarray) -> None:
        if y is not None:
            evaluation["ari"].append(float(adjusted_rand_score(y, assign)))
            evaluation["acc"].append(float(cluster_accuracy(y, assign)))

    with runtime.training():
        q_all = dec.assignments(x)
    target = {"p": target_distribution(q_all), "hard": q_all.argmax(1).numpy()}
    log_eval(target["hard"])

    def loss_fn(batch):
        images_b, idx = batch
        if augment is not None:
            images_b = augment_images(images_b, augment, generator=trainer.generator)
        return dec_loss(dec(images_b), target["p"][idx])

    def on_epoch(t):
        q = dec.assignments(x)
        current = q.argmax(1).numpy()
        changed = float((current != target["hard"]).mean())
        target.update(p=target_distribution(q), hard=current)
        log_eval(current)
        return {"changed": changed}

    history = trainer.fit(dec, loss_fn, (x, torch.arange(len(x))), param_groups=groups,
                          on_epoch=on_epoch)
    if y is not None:
        history.update(evaluation)
    dec.eval()
    return dec, history


# --------------------------------------------------------------------------- the shipped model
@dataclass(frozen=True)
class DECConfig:
    """The DEC run of chapter 6: :func:`run_dec` from the encoder ``models.load(encoder)``.

    ``encoder`` names the pretrained encoder it starts from (the shipped one when it can be
    used, see :func:`utils.models.load`); the other fields are :func:`run_dec`'s arguments.
    The digits' labels go in for the history's ARI and accuracy only.
    """

    encoder: str = "digits-ssl-contrastive"
    n_clusters: int = 10
    epochs: int = 30
    batch_size: int = 256
    lr: float = 3e-4
    alpha: float = 1.0
    scale: float = 3.0
    seed: int = 0

    def __post_init__(self):
        for name in ("n_clusters", "epochs", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not (self.lr > 0 and self.alpha > 0 and self.scale > 0):
            raise ValueError(f"lr, alpha and scale must be positive, got {self.lr}, {self.alpha}, {self.scale}")


def _encoder_config(name: str):
    r = models.recipe(name)
    return r.full if r.full is not None else r.default


def _build_dec(config: DECConfig) -> DEC:
    encoder = models.recipe(config.encoder).build(_encoder_config(config.encoder))
    centroids = torch.zeros(config.n_clusters, encoder.feature_dim)
    return DEC(encoder, centroids, alpha=config.alpha, scale=config.scale)


def _train_dec(config: DECConfig) -> tuple[DEC, dict[str, list]]:
    from . import data

    images, labels = data.load_digits_images()
    encoder = models.load(config.encoder).model
    return run_dec(encoder, images, config.n_clusters, epochs=config.epochs,
                   batch_size=config.batch_size, lr=config.lr, alpha=config.alpha,
                   scale=config.scale, labels=labels, seed=config.seed, desc="DEC (digits)")


#: The quick DEC run (chapter 6's live one starts from the same encoder)
DEC_CONFIG = DECConfig()

models.register(models.Recipe(
    name="dec", default=DEC_CONFIG, build=_build_dec, train=_train_dec, depends=("digits-ssl-contrastive",),
    summary="DEC (encoder and 10 centroids) trained from the contrastive digit encoder, all 1,797 digits",
    full=replace(DEC_CONFIG, epochs=60)))
