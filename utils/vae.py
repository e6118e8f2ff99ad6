r"""A Transformer variational autoencoder (VAE) for 8x8 digits.

* **Encoder**: a ViT-style :class:`~utils.transformer.PatchEncoder` over 2x2 patch
  tokens; its [CLS] state is mapped to the posterior mean ``mu`` and log-variance
  ``logvar`` of :math:`q(z\mid x)=\mathcal N(\mu, \operatorname{diag}\sigma^2)`.
* **Decoder**: ``z`` is projected to one vector *per token* (``z_to_tokens="per_token"``),
  added to learned positional queries and passed through a Transformer
  :class:`~utils.transformer.Encoder` stack; each output token gives the logits of
  its patch's pixels. ``"shared"`` instead adds one projection of ``z`` to every
  token, which makes it easy for the decoder to ignore ``z`` (posterior collapse).
* **Likelihood**: by default a categorical distribution over the 17 grey levels of
  each pixel (the digits are counts 0..16 divided by 16), decoded by its mode for
  sharp samples; ``likelihood="bernoulli"`` gives the usual binary cross-entropy,
  whose mean image is blurry. The prior is :math:`\mathcal N(0, I)`.

The loss is the negative ELBO with two cures for posterior collapse: a KL weight
``beta`` warmed up from 0 to 1, and *free bits*, a floor on each dimension's KL.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch
from torch import nn

from . import models
from .data import check_images
from .train import TrainConfig, Trainer
from .transformer import Encoder, PatchEncoder, PatchEncoderConfig, patches_to_image

__all__ = [
    "VAEConfig",
    "TransformerVAE",
    "reparameterize",
    "gaussian_kl",
    "kl_per_dimension",
    "active_units",
    "kl_weight",
    "reconstruction_nll",
    "vae_loss",
    "sharpen",
    "train_vae",
    "VAE_CONFIG",
]


@dataclass(frozen=True)
class VAEConfig:
    """Sizes and training settings of a :class:`TransformerVAE`."""

    latent_dim: int = 16
    d_model: int = 64
    n_heads: int = 4
    enc_layers: int = 2
    dec_layers: int = 2
    d_ff: int = 128
    patch_size: int = 2
    z_to_tokens: str = "per_token"  # or "shared"
    likelihood: str = "categorical"  # or "bernoulli"
    levels: int = 17  # grey levels of the categorical likelihood (digits: 0..16)
    epochs: int = 28
    batch_size: int = 64
    lr: float = 4e-3
    warmup_epochs: int = 10  # KL weight rises linearly from 0 to 1; 0 = no warm-up
    lr_warmup: float = 0.1  # share of training with a linear lr warm-up (then cosine to 0)
    free_bits: float = 0.2  # nats per latent dimension; 0 = off
    seed: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


def _check_config(c: VAEConfig) -> None:
    if c.z_to_tokens not in ("per_token", "shared"):
        raise ValueError(f"z_to_tokens must be 'per_token' or 'shared', got {c.z_to_tokens!r}")
    if c.likelihood not in ("categorical", "bernoulli"):
        raise ValueError(f"likelihood must be 'categorical' or 'bernoulli', got {c.likelihood!r}")
    if c.likelihood == "categorical" and c.levels < 2:
        raise ValueError(f"a categorical likelihood needs levels >= 2, got {c.levels}")
    if c.latent_dim < 1:
        raise ValueError(f"latent_dim must be positive, got {c.latent_dim}")
    if c.free_bits < 0 or c.warmup_epochs < 0:
        raise ValueError("free_bits and warmup_epochs must be non-negative")
    if not 0.0 <= c.lr_warmup < 1.0:
        raise ValueError(f"lr_warmup must be in [0, 1), got {c.lr_warmup}")


class TransformerVAE(nn.Module):
    """Transformer encoder to ``(mu, logvar)``; Transformer decoder from ``z`` to pixel logits."""

    image_size = 8

    def __init__(self, config: VAEConfig = VAEConfig()):
        super().__init__()
        _check_config(config)
        c = self.config = config
        enc_cfg = PatchEncoderConfig(image_size=self.image_size, patch_size=c.patch_size,
                                     d_model=c.d_model, n_heads=c.n_heads, n_layers=c.enc_layers,
                                     d_ff=c.d_ff)
        self.encoder = PatchEncoder(enc_cfg)
        self.to_stats = nn.Linear(c.d_model, 2 * c.latent_dim)
        self.n_tokens = (self.image_size // c.patch_size) ** 2
        width = c.d_model * (self.n_tokens if c.z_to_tokens == "per_token" else 1)
        self.z_proj = nn.Linear(c.latent_dim, width)
        self.queries = nn.Parameter(torch.randn(1, self.n_tokens, c.d_model) * 0.02)
        self.decoder = Encoder(c.dec_layers, c.d_model, c.n_heads, c.d_ff, activation="gelu",
                               norm_first=True)
        self.out_per_pixel = c.levels if c.likelihood == "categorical" else 1
        self.to_pixels = nn.Linear(c.d_model, c.patch_size**2 * self.out_per_pixel)

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior parameters ``(mu, logvar)``, each ``(B, latent_dim)``."""
        stats = self.to_stats(self.encoder.features(images))
        mu, logvar = stats.chunk(2, dim=-1)
        return mu, logvar.clamp(-12.0, 8.0)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Logits of ``p(x | z)``: ``(B, 8, 8)`` (Bernoulli) or ``(B, 8, 8, levels)`` (categorical)."""
        c = self.config
        if z.ndim != 2 or z.shape[1] != c.latent_dim:
            raise ValueError(f"z must be (B, {c.latent_dim}), got {tuple(z.shape)}")
        tokens = self.z_proj(z).view(len(z), -1, c.d_model)  # (B, n_tokens or 1, d_model)
        h = self.to_pixels(self.decoder(self.queries + tokens))  # (B, n_tokens, p*p*k)
        k, b, n = self.out_per_pixel, len(z), self.n_tokens
        per_level = h.view(b, n, c.patch_size**2, k).permute(0, 3, 1, 2).reshape(b * k, n, -1)
        img = patches_to_image(per_level, self.image_size).view(b, k, self.image_size,
                                                                 self.image_size)
        return img[:, 0] if c.likelihood == "bernoulli" else img.permute(0, 2, 3, 1)

    def to_images(self, logits: torch.Tensor, how: str = "mode",
                  generator: torch.Generator | None = None) -> torch.Tensor:
        """Images in ``[0, 1]`` from decoder logits.

        ``"mean"`` is the likelihood's mean (blurry where the decoder is unsure);
        ``"mode"`` its most likely value per pixel (categorical), or the mean
        sharpened by :func:`sharpen` (Bernoulli); ``"sample"`` draws every pixel
        independently (noisy).
        """
        if how not in ("mean", "mode", "sample"):
            raise ValueError(f"how must be 'mean', 'mode' or 'sample', got {how!r}")
        if self.config.likelihood == "bernoulli":
            if how == "sample":
                return torch.bernoulli(torch.sigmoid(logits), generator=generator)
            return sharpen(logits, None if how == "mean" else 2.0)
        k = self.config.levels
        values = torch.linspace(0.0, 1.0, k)
        if how == "mean":
            return torch.softmax(logits, -1) @ values
        if how == "mode":
            return values[logits.argmax(-1)]
        probs = torch.softmax(logits, -1).reshape(-1, k)
        return values[torch.multinomial(probs, 1, generator=generator)].view(logits.shape[:-1])

    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None):
        """``(logits, mu, logvar)`` with one reparameterised sample ``z`` per image."""
        mu, logvar = self.encode(images)
        return self.decode(reparameterize(mu, logvar, generator=generator)), mu, logvar

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None,
               how: str = "mode") -> torch.Tensor:
        """``n`` images in ``[0, 1]``: ``z`` from the prior, decoded with :meth:`to_images`."""
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive int, got {n!r}")
        z = torch.randn(n, self.config.latent_dim, generator=generator)
        return self.to_images(self.decode(z), how, generator)

    @torch.no_grad()
    def reconstruct(self, images: torch.Tensor, how: str = "mode") -> torch.Tensor:
        """Decode the posterior means (no sampling noise), as images in ``[0, 1]``."""
        return self.to_images(self.decode(self.encode(images)[0]), how)


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor | None = None,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    r""":math:`z = \mu + \sigma \odot \varepsilon`, :math:`\sigma=\exp(\tfrac12\log\sigma^2)`,
    :math:`\varepsilon\sim\mathcal N(0, I)`: a sample whose gradient flows to ``mu`` and ``logvar``."""
    if mu.shape != logvar.shape:
        raise ValueError(f"mu and logvar shapes differ: {tuple(mu.shape)} vs {tuple(logvar.shape)}")
    if eps is None:
        eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype)
    elif eps.shape != mu.shape:
        raise ValueError(f"eps must have mu's shape {tuple(mu.shape)}, got {tuple(eps.shape)}")
    return mu + torch.exp(0.5 * logvar) * eps


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    r"""Per-dimension :math:`\mathrm{KL}(\mathcal N(\mu,\sigma^2)\,\|\,\mathcal N(0,1))
    = \tfrac12(\mu^2+\sigma^2-1-\log\sigma^2)`, same shape as ``mu`` (nats)."""
    if mu.shape != logvar.shape:
        raise ValueError(f"mu and logvar shapes differ: {tuple(mu.shape)} vs {tuple(logvar.shape)}")
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


def kl_per_dimension(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Average KL of each latent dimension over a batch, ``(latent_dim,)``; ~0 means unused."""
    if mu.ndim != 2:
        raise ValueError(f"mu must be (B, latent_dim), got {tuple(mu.shape)}")
    return gaussian_kl(mu, logvar).mean(dim=0)


def active_units(mu: torch.Tensor, threshold: float = 0.01) -> int:
    r"""Number of latent dimensions whose posterior mean varies across inputs
    (:math:`\operatorname{Var}_x \mathbb E_q[z_j] > 0.01`, Burda et al. 2016)."""
    if mu.ndim != 2 or len(mu) < 2:
        raise ValueError(f"mu must be (B >= 2, latent_dim), got {tuple(mu.shape)}")
    return int((mu.var(dim=0) > threshold).sum())


def kl_weight(epoch: float, warmup_epochs: int) -> float:
    """KL annealing: ``beta`` rises linearly from 0 to 1 over ``warmup_epochs`` epochs."""
    if warmup_epochs < 0:
        raise ValueError(f"warmup_epochs must be non-negative, got {warmup_epochs}")
    return 1.0 if warmup_epochs == 0 else float(min(1.0, epoch / warmup_epochs))


def reconstruction_nll(logits: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    r""":math:`-\log p(x\mid z)` per image, summed over pixels.

    ``(B, 8, 8)`` logits: a Bernoulli likelihood (binary cross-entropy with the
    grey values as soft targets). ``(B, 8, 8, L)`` logits: a categorical over
    ``L`` grey levels, the target level being ``round(x * (L - 1))``.
    """
    if logits.shape == images.shape:
        nll = nn.functional.binary_cross_entropy_with_logits(logits, images, reduction="none")
    elif logits.shape[:-1] == images.shape:
        target = (images * (logits.shape[-1] - 1)).round().long()
        nll = nn.functional.cross_entropy(logits.movedim(-1, 1), target, reduction="none")
    else:
        raise ValueError(f"logits {tuple(logits.shape)} and images {tuple(images.shape)} differ")
    return nll.flatten(1).sum(1)


def vae_loss(logits: torch.Tensor, images: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
             *, beta: float = 1.0, free_bits: float = 0.0) -> tuple[torch.Tensor, dict]:
    r"""Training loss (per image, in nats) and its parts.

    ``recon`` is :math:`-\log p(x\mid z)` (:func:`reconstruction_nll`, batch mean),
    ``kl`` the summed KL. With free bits :math:`\lambda` each dimension's
    batch-mean KL is replaced by :math:`\max(\lambda, \mathrm{KL}_j)`, so the
    optimiser gains nothing by pushing a dimension below :math:`\lambda` nats.
    ``loss = recon + beta * kl_term``; ``-elbo = recon + kl`` is always reported.
    """
    recon = reconstruction_nll(logits, images).mean()
    kl_dims = kl_per_dimension(mu, logvar)
    kl = kl_dims.sum()
    kl_term = kl_dims.clamp(min=free_bits).sum() if free_bits > 0 else kl
    loss = recon + beta * kl_term
    recon, kl = recon.detach(), kl.detach()
    return loss, {"recon": float(recon), "kl": float(kl), "neg_elbo": float(recon + kl),
                  "beta": beta}


def sharpen(logits: torch.Tensor, temperature: float | None = 2.0) -> torch.Tensor:
    r"""Images from Bernoulli logits: the mean :math:`\sigma(\ell)` if ``temperature`` is None,
    else :math:`\sigma(T\ell)`, which pushes each pixel towards its more likely value."""
    if temperature is None:
        return torch.sigmoid(logits)
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    return torch.sigmoid(temperature * logits)


class _StopTraining(Exception):
    pass


def train_vae(config: VAEConfig, images: torch.Tensor, *, desc: str = "VAE",
              stop_after: int | None = None) -> tuple[TransformerVAE, dict[str, list[float]]]:
    """Train a :class:`TransformerVAE` on ``(N, 8, 8)`` images in ``[0, 1]``.

    Runs :class:`utils.train.Trainer` (AdamW without weight decay, linear lr warm-up
    over the first ``lr_warmup`` of training then cosine, gradient clipping at 1); the KL weight
    ``beta`` follows :func:`kl_weight` step by step. Returns the model (eval mode) and a
    history with one value per epoch of ``loss`` (the optimised loss), ``neg_elbo``,
    ``recon``, ``kl`` (epoch means), ``beta`` (at the end of the epoch) and
    ``active_units`` (on all of ``images``).

    ``stop_after=k`` stops after ``k`` epochs of the schedule of ``config.epochs``
    (learning rate and ``beta`` as in the full run): the first ``k`` epochs of the full
    run, for cheap ablations of its early phase.
    """
    images = check_images(images, "images", size=8, unit_range=True)
    if stop_after is not None and (not isinstance(stop_after, int) or isinstance(stop_after, bool)
                                   or not 1 <= stop_after <= config.epochs):
        raise ValueError(f"stop_after must be an int in [1, {config.epochs}], got {stop_after!r}")
    trainer = Trainer(TrainConfig(
        epochs=config.epochs, batch_size=config.batch_size, lr=config.lr, weight_decay=0.0,
        schedule="cosine", warmup_epochs=config.lr_warmup * config.epochs, grad_clip=1.0,
        seed=config.seed, desc=desc))
    model = TransformerVAE(config)              # after the trainer: seeded initialisation
    gen = trainer.generator

    def loss_fn(x):
        beta = kl_weight(trainer.epoch + trainer.step / trainer.steps_per_epoch,
                         config.warmup_epochs)
        logits, mu, logvar = model(x, generator=gen)
        loss, parts = vae_loss(logits, x, mu, logvar, beta=beta, free_bits=config.free_bits)
        return loss, {k: parts[k] for k in ("neg_elbo", "recon", "kl")}

    def on_epoch(t):
        logged = {"beta": kl_weight(t.epoch + 1, config.warmup_epochs),
                  "active_units": active_units(model.encode(images)[0])}
        if t.epoch + 1 == stop_after and stop_after < config.epochs:
            for k, v in logged.items():         # log this last epoch, then stop
                t.history[k].append(float(v))
            raise _StopTraining
        return logged

    try:
        history = trainer.fit(model, loss_fn, images, on_epoch=on_epoch)
    except _StopTraining:
        history = dict(trainer.history)
        model.eval()
    return model, history


#: The book's VAE: per-token z projection, KL warm-up and free bits.
VAE_CONFIG = VAEConfig()


def _train_digits(config: VAEConfig) -> tuple[TransformerVAE, dict[str, list[float]]]:
    from . import data

    return train_vae(config, torch.tensor(data.digits_split()[0]), desc="VAE (digits)")


models.register(models.Recipe(
    name="vae", default=VAE_CONFIG, build=TransformerVAE, train=_train_digits,
    summary="the Transformer-VAE trained on the digits train split (categorical likelihood)",
    full=replace(VAE_CONFIG, epochs=120)))
