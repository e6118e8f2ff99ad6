r"""A Transformer GAN for 8x8 digits, written out: generator, discriminator, losses, training.

Both networks are Transformers built from :mod:`utils.transformer` blocks (whose
attention, :mod:`utils.attention`, supports double backward, so an R1 penalty works).

* :class:`TransformerGenerator`: a latent ``z`` becomes ``N`` tokens (one linear map),
  the tokens pass through a pre-norm Transformer encoder, and each token becomes one
  ``p x p`` patch of pixels (TransGAN-style, without convolutions).
* :class:`TransformerDiscriminator`: patch tokens plus a [CLS] token pass through a
  Transformer; a linear head on [CLS] gives one logit. Spectral norm can wrap its linear maps.

The stabilisers that make this pair train on a CPU in a minute are all here: the hinge
loss (:func:`d_hinge_loss`, :func:`g_hinge_loss`), spectral norm, DiffAugment-style
translation and cutout of real *and* fake images (:func:`diff_augment`), an optional R1
penalty (:func:`r1_penalty`), two learning rates (TTUR) and an exponential moving average
of the generator's weights (:class:`EMA`). :func:`train_gan` runs the loop.

A ClusterGAN-style variant (:func:`sample_cluster_latent`, :class:`TransformerLatentEncoder`,
:func:`train_clustergan`) draws ``z = [z_n, one_hot(c)]`` and learns an encoder that
inverts the generator, so that the encoder's class head clusters real digits.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from . import runtime
from .train import check_finite, progress
from .transformer import Encoder, LearnedPositionalEncoding, image_to_patches, patches_to_image

__all__ = [
    "TransformerGenerator",
    "TransformerDiscriminator",
    "TransformerLatentEncoder",
    "d_hinge_loss",
    "g_hinge_loss",
    "r1_penalty",
    "diff_augment",
    "EMA",
    "train_gan",
    "sample_cluster_latent",
    "train_clustergan",
    "cluster_assignments",
    "GAN_CONFIG",
    "CLUSTERGAN_CONFIG",
    "build_gan",
    "build_clustergan",
    "pretrained_gan",
    "pretrained_clustergan",
]


# --------------------------------------------------------------------------- networks
def _check_images(images: torch.Tensor, image_size: int, name: str = "images") -> None:
    if not torch.is_tensor(images):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(images).__name__}")
    if images.ndim != 3 or images.shape[1:] != (image_size, image_size):
        raise ValueError(f"{name} must be (B, {image_size}, {image_size}), got {tuple(images.shape)}")
    if not images.is_floating_point():
        raise TypeError(f"{name} must be floating point, got {images.dtype}")


class TransformerGenerator(nn.Module):
    """``z (B, latent_dim)`` -> tokens ``(B, N, d_model)`` -> Transformer -> patches -> image.

    Pixels come out of a sigmoid, so images are in ``[0, 1]`` like the digits.
    """

    def __init__(self, latent_dim: int = 32, image_size: int = 8, patch_size: int = 2,
                 d_model: int = 64, n_heads: int = 4, n_layers: int = 2, d_ff: int = 128):
        super().__init__()
        if latent_dim < 1:
            raise ValueError(f"latent_dim must be positive, got {latent_dim}")
        if image_size % patch_size:
            raise ValueError(f"image_size={image_size} is not divisible by patch_size={patch_size}")
        self.latent_dim, self.image_size, self.patch_size = latent_dim, image_size, patch_size
        self.n_tokens = (image_size // patch_size) ** 2
        self.d_model = d_model
        self.to_tokens = nn.Linear(latent_dim, self.n_tokens * d_model)
        self.pos = LearnedPositionalEncoding(self.n_tokens, d_model)
        self.encoder = Encoder(n_layers, d_model, n_heads, d_ff, activation="gelu", norm_first=True)
        self.to_pixels = nn.Linear(d_model, patch_size * patch_size)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if not torch.is_tensor(z) or z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"z must be (B, {self.latent_dim}), got {tuple(getattr(z, 'shape', ()))}")
        tokens = self.to_tokens(z).view(len(z), self.n_tokens, self.d_model)
        patches = torch.sigmoid(self.to_pixels(self.encoder(self.pos(tokens))))
        return patches_to_image(patches, self.image_size)

    @torch.no_grad()
    def sample(self, n: int | None = None, generator: torch.Generator | None = None,
               z: torch.Tensor | None = None) -> torch.Tensor:
        """``n`` images from ``z ~ N(0, I)``, or the images of the given ``z``."""
        if (n is None) == (z is None):
            raise ValueError("pass either n (to draw z ~ N(0, I)) or z, not both")
        if z is None:
            if not isinstance(n, int) or n < 1:
                raise ValueError(f"n must be a positive int, got {n!r}")
            z = torch.randn(n, self.latent_dim, generator=generator)
        was_training = self.training
        self.eval()
        out = self(z.to(self.to_tokens.weight.device))
        self.train(was_training)
        return out


def _spectral(module: nn.Module) -> nn.Module:
    """Wrap every ``nn.Linear`` inside ``module`` in spectral normalisation."""
    for name, child in module.named_children():
        if isinstance(child, nn.Linear):
            setattr(module, name, nn.utils.parametrizations.spectral_norm(child))
        else:
            _spectral(child)
    return module


class TransformerDiscriminator(nn.Module):
    """Images -> patch tokens + [CLS] + positions -> Transformer -> LayerNorm -> one logit.

    ``out_dim > 1`` gives several outputs from [CLS] (used by the latent encoder).
    With ``spectral_norm=True`` every linear map (patch embedding, attention
    projections, feed-forward, head) is spectrally normalised.
    """

    def __init__(self, image_size: int = 8, patch_size: int = 2, d_model: int = 64,
                 n_heads: int = 4, n_layers: int = 2, d_ff: int = 128,
                 spectral_norm: bool = True, out_dim: int = 1):
        super().__init__()
        if image_size % patch_size:
            raise ValueError(f"image_size={image_size} is not divisible by patch_size={patch_size}")
        self.image_size, self.patch_size = image_size, patch_size
        n_tokens = (image_size // patch_size) ** 2
        self.embed = nn.Linear(patch_size * patch_size, d_model)
        self.cls = nn.Parameter(torch.zeros(1, 1, d_model))
        self.pos = LearnedPositionalEncoding(1 + n_tokens, d_model)
        self.encoder = Encoder(n_layers, d_model, n_heads, d_ff, activation="gelu", norm_first=True)
        self.head = nn.Linear(d_model, out_dim)
        if spectral_norm:
            _spectral(self)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        _check_images(images, self.image_size)
        tokens = self.embed(image_to_patches(images, self.patch_size))
        x = torch.cat([self.cls.expand(len(tokens), -1, -1), tokens], dim=1)
        out = self.head(self.encoder(self.pos(x))[:, 0])
        return out.squeeze(-1) if out.shape[-1] == 1 else out


class TransformerLatentEncoder(nn.Module):
    """ClusterGAN's encoder: an image -> ``(z_n, class logits)``, inverting the generator."""

    def __init__(self, noise_dim: int, n_clusters: int, image_size: int = 8, patch_size: int = 2,
                 d_model: int = 64, n_heads: int = 4, n_layers: int = 2, d_ff: int = 128):
        super().__init__()
        if noise_dim < 1 or n_clusters < 2:
            raise ValueError(f"need noise_dim >= 1 and n_clusters >= 2, got {noise_dim}, {n_clusters}")
        self.noise_dim, self.n_clusters = noise_dim, n_clusters
        self.net = TransformerDiscriminator(image_size, patch_size, d_model, n_heads, n_layers, d_ff,
                                            spectral_norm=False, out_dim=noise_dim + n_clusters)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.net(images)
        return out[:, : self.noise_dim], out[:, self.noise_dim:]


# --------------------------------------------------------------------------- losses
def _check_logits(x: torch.Tensor, name: str) -> None:
    if not torch.is_tensor(x) or not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {getattr(x, 'dtype', type(x))}")
    if x.numel() == 0:
        raise ValueError(f"{name} is empty")


def d_hinge_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    r"""Discriminator hinge loss :math:`\mathbb{E}[\max(0, 1 - D(x))] + \mathbb{E}[\max(0, 1 + D(G(z)))]`."""
    _check_logits(real_logits, "real_logits")
    _check_logits(fake_logits, "fake_logits")
    return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()


def g_hinge_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    r"""Generator hinge loss :math:`-\mathbb{E}[D(G(z))]`."""
    _check_logits(fake_logits, "fake_logits")
    return -fake_logits.mean()


def r1_penalty(disc: nn.Module, real: torch.Tensor) -> torch.Tensor:
    r"""R1 = :math:`\mathbb{E}\,\lVert \nabla_x D(x) \rVert^2` on real images.

    The gradient is taken with ``create_graph=True`` so that the penalty itself can
    be differentiated: that is the double backward that torch's fused CPU attention lacks.
    """
    real = real.detach().requires_grad_(True)
    logits = disc(real)
    (grad,) = torch.autograd.grad(logits.sum(), real, create_graph=True)
    return grad.pow(2).flatten(1).sum(1).mean()


# --------------------------------------------------------------------------- augmentation
def _translate(x: torch.Tensor, shift: int, generator: torch.Generator | None) -> torch.Tensor:
    b, h, w = x.shape
    dy = torch.randint(-shift, shift + 1, (b, 1, 1), generator=generator).to(x.device)
    dx = torch.randint(-shift, shift + 1, (b, 1, 1), generator=generator).to(x.device)
    rows = torch.arange(h, device=x.device)[None, :, None] - dy  # source row of each pixel
    cols = torch.arange(w, device=x.device)[None, None, :] - dx
    inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
    flat = (rows.clamp(0, h - 1) * w + cols.clamp(0, w - 1)).expand(b, h, w).reshape(b, -1)
    moved = x.reshape(b, -1).gather(1, flat).view(b, h, w)
    return moved * inside


def _cutout(x: torch.Tensor, size: int, generator: torch.Generator | None) -> torch.Tensor:
    b, h, w = x.shape
    cy = torch.randint(0, h, (b, 1, 1), generator=generator).to(x.device)
    cx = torch.randint(0, w, (b, 1, 1), generator=generator).to(x.device)
    rows = torch.arange(h, device=x.device)[None, :, None]
    cols = torch.arange(w, device=x.device)[None, None, :]
    lo = size // 2
    hole = (rows >= cy - lo) & (rows < cy - lo + size) & (cols >= cx - lo) & (cols < cx - lo + size)
    return x * ~hole


def diff_augment(images: torch.Tensor, policy: str = "translation,cutout", *, shift: int = 1,
                 cutout: int = 2, generator: torch.Generator | None = None) -> torch.Tensor:
    """Differentiable augmentation (DiffAugment) of a batch of ``(B, H, W)`` images.

    ``translation`` shifts each image by up to ``shift`` pixels (zeros fill in);
    ``cutout`` zeroes one random ``cutout x cutout`` square per image. Both are
    made of gathers and masks, so gradients flow to the generator. The same
    policy must be applied to real and fake images.
    """
    if not torch.is_tensor(images) or images.ndim != 3:
        raise ValueError(f"images must be a (B, H, W) tensor, got {getattr(images, 'shape', None)}")
    ops = [p for p in policy.split(",") if p]
    unknown = set(ops) - {"translation", "cutout"}
    if unknown:
        raise ValueError(f"unknown augmentation(s) {sorted(unknown)}; use 'translation', 'cutout'")
    for op in ops:
        if op == "translation" and shift > 0:
            images = _translate(images, shift, generator)
        elif op == "cutout" and cutout > 0:
            images = _cutout(images, cutout, generator)
    return images


# --------------------------------------------------------------------------- training
class EMA:
    r"""An exponential moving average of a model's weights: :math:`\bar\theta \leftarrow
    \beta_t\bar\theta + (1-\beta_t)\theta` after every step. ``EMA.model`` is the averaged copy.

    The decay warms up, :math:`\beta_t = \min(\beta, (1+t)/(10+t))`, so that the
    average does not drag the random initial weights along for hundreds of steps.
    """

    def __init__(self, model: nn.Module, decay: float = 0.995):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        self.decay, self.steps = decay, 0
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        beta = min(self.decay, (1 + self.steps) / (10 + self.steps))
        self.steps += 1
        for avg, new in zip(self.model.state_dict().values(), model.state_dict().values(),
                            strict=True):
            if avg.is_floating_point():
                avg.lerp_(new, 1.0 - beta)
            else:
                avg.copy_(new)


def _check_train_data(images: torch.Tensor, image_size: int) -> None:
    _check_images(images, image_size)
    if len(images) < 2:
        raise ValueError(f"need at least 2 training images, got {len(images)}")
    if not torch.isfinite(images).all():
        raise ValueError("images contain NaN or infinite values")


def _loop(gen: TransformerGenerator, disc: nn.Module, images: torch.Tensor, *,
          sample_latent: Callable[[int, torch.Generator], tuple[torch.Tensor, torch.Tensor | None]],
          encoder: TransformerLatentEncoder | None = None, beta_n: float = 10.0,
          beta_c: float = 10.0, epochs: int, batch_size: int, lr_g: float, lr_d: float,
          betas: tuple[float, float], augment: str, shift: int, cutout: int, r1_gamma: float,
          ema_decay: float | None, loss: str, seed: int, checkpoints: tuple[int, ...],
          callback, desc: str) -> dict:
    _check_train_data(images, gen.image_size)
    if not isinstance(epochs, int) or epochs < 1 or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be positive ints, got {epochs}, {batch_size}")
    if loss not in ("hinge", "bce"):
        raise ValueError(f"loss must be 'hinge' or 'bce', got {loss!r}")
    if r1_gamma < 0:
        raise ValueError(f"r1_gamma must be >= 0, got {r1_gamma}")
    if lr_g <= 0 or lr_d <= 0:
        raise ValueError(f"learning rates must be positive, got lr_g={lr_g}, lr_d={lr_d}")
    diff_augment(images[:1], augment)  # validates the policy before any training
    # These networks are tiny: a second intra-op thread costs more in synchronisation than it
    # saves (several times slower on a busy 2-core machine), so the loop runs on one thread.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _loop_body(gen, disc, images, sample_latent=sample_latent, encoder=encoder,
                          beta_n=beta_n, beta_c=beta_c, epochs=epochs, batch_size=batch_size,
                          lr_g=lr_g, lr_d=lr_d, betas=betas, augment=augment, shift=shift,
                          cutout=cutout, r1_gamma=r1_gamma, ema_decay=ema_decay, loss=loss,
                          seed=seed, checkpoints=checkpoints, callback=callback, desc=desc)
    finally:
        torch.set_num_threads(threads)


def _loop_body(gen, disc, images, *, sample_latent, encoder, beta_n, beta_c, epochs, batch_size,
               lr_g, lr_d, betas, augment, shift, cutout, r1_gamma, ema_decay, loss, seed,
               checkpoints, callback, desc) -> dict:
    torch.manual_seed(seed)
    rng = torch.Generator().manual_seed(seed)
    g_params = list(gen.parameters()) + (list(encoder.parameters()) if encoder is not None else [])
    opt_g = torch.optim.Adam(g_params, lr=lr_g, betas=betas)
    opt_d = torch.optim.Adam(disc.parameters(), lr=lr_d, betas=betas)
    ema = EMA(gen, ema_decay) if ema_decay is not None else None

    def aug(x: torch.Tensor) -> torch.Tensor:
        return diff_augment(x, augment, shift=shift, cutout=cutout, generator=rng)

    n = len(images)
    n_batches = max(1, n // batch_size)  # drop the short last batch
    history: dict = defaultdict(list)
    history["checkpoints"] = {}
    for epoch in progress(range(epochs), desc=desc):
        gen.train()
        disc.train()
        if encoder is not None:
            encoder.train()
        sums: dict[str, float] = defaultdict(float)
        order = torch.randperm(n, generator=rng)
        for step in range(n_batches):
            where = f"epoch {epoch}, step {step}"
            real = images[order[step * batch_size:(step + 1) * batch_size]]
            b = len(real)
            # 1. discriminator step: real up, fake down (one pass over both)
            with torch.no_grad():
                fake = gen(sample_latent(b, rng)[0])
            real_logits, fake_logits = disc(aug(torch.cat([real, fake]))).split([b, b])
            if loss == "hinge":
                d_loss = d_hinge_loss(real_logits, fake_logits)
            else:
                d_loss = F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
            r1 = r1_penalty(disc, real) if r1_gamma > 0 else torch.zeros(())
            sums["d_loss"] += check_finite(d_loss, f"{where} (discriminator)")
            sums["r1"] += float(r1.detach())
            sums["d_real"] += float(real_logits.detach().mean())
            sums["d_fake"] += float(fake_logits.detach().mean())
            opt_d.zero_grad(set_to_none=True)
            (d_loss + 0.5 * r1_gamma * r1).backward()
            opt_d.step()
            # 2. generator step (and encoder step for ClusterGAN)
            z, c = sample_latent(b, rng)
            fake = gen(z)
            fake_logits = disc(aug(fake))
            g_loss = g_hinge_loss(fake_logits) if loss == "hinge" else F.softplus(-fake_logits).mean()
            total = g_loss
            if encoder is not None:
                z_hat, c_logits = encoder(fake)
                rec_n = F.mse_loss(z_hat, z[:, : encoder.noise_dim])
                rec_c = F.cross_entropy(c_logits, c)
                total = g_loss + beta_n * rec_n + beta_c * rec_c
                sums["z_loss"] += float(rec_n.detach())
                sums["c_loss"] += check_finite(rec_c, f"{where} (encoder)")
            sums["g_loss"] += check_finite(g_loss, f"{where} (generator)")
            opt_g.zero_grad(set_to_none=True)
            total.backward()
            opt_g.step()
            if ema is not None:
                ema.update(gen)
        for k, v in sums.items():
            history[k].append(v / n_batches)
        current = ema.model if ema is not None else gen
        if epoch + 1 in checkpoints:
            history["checkpoints"][epoch + 1] = {k: v.detach().clone()
                                                 for k, v in current.state_dict().items()}
        if callback is not None:
            for k, v in (callback(epoch, current) or {}).items():
                history[k].append(float(v))
    gen.eval()
    disc.eval()
    if encoder is not None:
        encoder.eval()
    history["ema"] = ema.model if ema is not None else gen
    return dict(history)


def train_gan(gen: TransformerGenerator, disc: nn.Module, images: torch.Tensor, *,
              epochs: int = 50, batch_size: int = 64, lr_g: float = 1e-3, lr_d: float = 2e-3,
              betas: tuple[float, float] = (0.0, 0.99), augment: str = "cutout",
              shift: int = 1, cutout: int = 2, r1_gamma: float = 0.0,
              ema_decay: float | None = 0.99, loss: str = "hinge", seed: int = 0,
              checkpoints: tuple[int, ...] = (),
              callback: Callable[[int, nn.Module], dict | None] | None = None,
              desc: str = "GAN") -> dict:
    r"""Alternate one discriminator and one generator step per mini-batch, ``epochs`` times.

    ``loss`` is ``"hinge"`` or ``"bce"`` (the original non-saturating loss).
    ``augment`` is a :func:`diff_augment` policy applied to real and fake alike
    (``""`` for none). ``r1_gamma > 0`` adds :math:`\frac{\gamma}{2}\,\mathrm{R1}` on real images.
    With ``ema_decay`` an averaged generator is kept (:class:`EMA`).

    Returns a history dict: per-epoch means of ``d_loss``, ``g_loss``, ``d_real``,
    ``d_fake`` (mean logits on augmented images) and ``r1``; ``"ema"``: the averaged
    generator (or ``gen`` without EMA); ``"checkpoints"``: ``{epoch: state_dict}`` of that
    generator after the listed epochs; and whatever ``callback(epoch, generator)``
    returns, logged per epoch. Raises ``FloatingPointError`` as soon as a loss is NaN or inf.
    """
    if not isinstance(gen, TransformerGenerator):
        raise TypeError(f"gen must be a TransformerGenerator, got {type(gen).__name__}")

    def latent(b: int, rng: torch.Generator):
        return torch.randn(b, gen.latent_dim, generator=rng), None

    return _loop(gen, disc, images, sample_latent=latent, epochs=epochs, batch_size=batch_size,
                 lr_g=lr_g, lr_d=lr_d, betas=tuple(betas), augment=augment, shift=shift,
                 cutout=cutout, r1_gamma=r1_gamma, ema_decay=ema_decay, loss=loss, seed=seed,
                 checkpoints=tuple(checkpoints), callback=callback, desc=desc)


# --------------------------------------------------------------------------- ClusterGAN
def sample_cluster_latent(n: int, noise_dim: int, n_clusters: int, *, sigma: float = 0.1,
                          classes: torch.Tensor | None = None,
                          generator: torch.Generator | None = None
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    r"""ClusterGAN's latent :math:`z = [z_n, e_c]` with :math:`z_n \sim \mathcal N(0, \sigma^2 I)`
    and :math:`e_c` the one-hot vector of a uniform class :math:`c`.

    Returns ``(z, c)``: ``z`` is ``(n, noise_dim + n_clusters)``, ``c`` the ``(n,)`` classes
    (drawn uniformly unless ``classes`` is given).
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    if noise_dim < 1 or n_clusters < 2:
        raise ValueError(f"need noise_dim >= 1 and n_clusters >= 2, got {noise_dim}, {n_clusters}")
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    if classes is None:
        c = torch.randint(0, n_clusters, (n,), generator=generator)
    else:
        c = torch.as_tensor(classes)
        if c.shape != (n,) or c.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"classes must be an int tensor of shape ({n},), got "
                             f"{c.dtype} {tuple(c.shape)}")
        if (c < 0).any() or (c >= n_clusters).any():
            raise ValueError(f"classes must lie in [0, {n_clusters}), got [{int(c.min())}, "
                             f"{int(c.max())}]")
        c = c.long()
    z_n = sigma * torch.randn(n, noise_dim, generator=generator)
    return torch.cat([z_n, F.one_hot(c, n_clusters).float()], dim=1), c


def train_clustergan(gen: TransformerGenerator, disc: nn.Module,
                     encoder: TransformerLatentEncoder, images: torch.Tensor, *,
                     sigma: float = 0.1, beta_n: float = 1.0, beta_c: float = 1.0,
                     epochs: int = 30, batch_size: int = 64, lr_g: float = 1e-3,
                     lr_d: float = 2e-3, betas: tuple[float, float] = (0.0, 0.99),
                     augment: str = "cutout", cutout: int = 2, ema_decay: float | None = None,
                     seed: int = 0, callback=None, desc: str = "ClusterGAN") -> dict:
    r"""ClusterGAN (Mukherjee et al., 2019) with Transformers for G, D and the encoder E.

    The generator and encoder minimise, jointly,
    :math:`\mathcal L_G + \beta_n \lVert z_n - E_n(G(z)) \rVert^2 +
    \beta_c\,\mathrm{CE}(c, E_c(G(z)))`, so E inverts G and the one-hot part of the latent
    must stay recognisable in the image: each class becomes a cluster. The discriminator
    uses the hinge loss as in :func:`train_gan`. History as in :func:`train_gan`, plus
    per-epoch ``z_loss`` and ``c_loss``.
    """
    if not isinstance(encoder, TransformerLatentEncoder):
        raise TypeError(f"encoder must be a TransformerLatentEncoder, got {type(encoder).__name__}")
    if gen.latent_dim != encoder.noise_dim + encoder.n_clusters:
        raise ValueError(f"generator latent_dim={gen.latent_dim} must equal noise_dim + n_clusters"
                         f" = {encoder.noise_dim} + {encoder.n_clusters}")

    def latent(b: int, rng: torch.Generator):
        return sample_cluster_latent(b, encoder.noise_dim, encoder.n_clusters, sigma=sigma,
                                     generator=rng)

    return _loop(gen, disc, images, sample_latent=latent, encoder=encoder, beta_n=beta_n,
                 beta_c=beta_c, epochs=epochs, batch_size=batch_size, lr_g=lr_g, lr_d=lr_d,
                 betas=tuple(betas), augment=augment, shift=1, cutout=cutout, r1_gamma=0.0,
                 ema_decay=ema_decay, loss="hinge", seed=seed, checkpoints=(),
                 callback=callback, desc=desc)


@torch.no_grad()
def cluster_assignments(encoder: TransformerLatentEncoder, images: torch.Tensor) -> torch.Tensor:
    """The encoder's class head as a clustering: ``argmax_c E_c(x)`` for each image."""
    if not isinstance(encoder, TransformerLatentEncoder):
        raise TypeError(f"encoder must be a TransformerLatentEncoder, got {type(encoder).__name__}")
    images = torch.as_tensor(images, dtype=torch.float32)
    _check_images(images, encoder.net.image_size)
    encoder.eval()
    return torch.cat([encoder(b)[1].argmax(1) for b in images.split(512)])


# --------------------------------------------------------------------------- cached models
GAN_CONFIG = {
    "name": "transformer-gan", "version": 1, "latent_dim": 32, "patch_size": 2, "d_patch": 4,
    "d_model": 64, "n_heads": 4, "g_layers": 2, "d_layers": 2, "d_ff": 128,
    "spectral_norm": True, "epochs": 45, "batch_size": 64, "lr_g": 1e-3, "lr_d": 2e-3,
    "betas": [0.0, 0.99], "augment": "cutout", "cutout": 2, "ema_decay": 0.99,
    "checkpoints": [1, 5, 10, 20, 30, 45], "seed": 0,
}

CLUSTERGAN_CONFIG = {
    "name": "transformer-clustergan", "version": 1, "noise_dim": 16, "n_clusters": 10,
    "sigma": 0.1, "beta_n": 1.0, "beta_c": 1.0, "patch_size": 2, "d_patch": 4, "d_model": 64,
    "n_heads": 4, "g_layers": 2, "d_layers": 2, "d_ff": 128, "epochs": 30, "batch_size": 64,
    "lr_g": 1e-3, "lr_d": 2e-3, "betas": [0.0, 0.99], "augment": "cutout", "cutout": 2,
    "seed": 0,
}


def build_gan(config: dict = GAN_CONFIG, latent_dim: int | None = None
              ) -> tuple[TransformerGenerator, TransformerDiscriminator]:
    """A fresh generator and discriminator with the sizes in ``config``."""
    c = config
    gen = TransformerGenerator(latent_dim or c["latent_dim"], 8, c["patch_size"], c["d_model"],
                               c["n_heads"], c["g_layers"], c["d_ff"])
    disc = TransformerDiscriminator(8, c["d_patch"], c["d_model"], c["n_heads"], c["d_layers"],
                                    c["d_ff"], spectral_norm=c.get("spectral_norm", True))
    return gen, disc


def _training_images() -> torch.Tensor:
    from .data import digits_split

    return torch.tensor(digits_split()[0])  # the train split; the test split is FID's reference


def _train_gan_state(config: dict) -> dict[str, torch.Tensor]:
    c = config
    torch.manual_seed(c["seed"])
    gen, disc = build_gan(c)
    hist = train_gan(gen, disc, _training_images(), epochs=c["epochs"],
                     batch_size=c["batch_size"], lr_g=c["lr_g"], lr_d=c["lr_d"],
                     betas=tuple(c["betas"]), augment=c["augment"], cutout=c["cutout"],
                     ema_decay=c["ema_decay"], seed=c["seed"], checkpoints=tuple(c["checkpoints"]))
    state = {f"ema.{k}": v for k, v in hist["ema"].state_dict().items()}
    for epoch, ckpt in hist["checkpoints"].items():
        state.update({f"ckpt{epoch}.{k}": v for k, v in ckpt.items()})
    for k in ("d_loss", "g_loss", "d_real", "d_fake"):
        state[f"history.{k}"] = torch.tensor(hist[k])
    return state


def _split_state(state: dict, prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def pretrained_gan(*, config: dict | None = None, verbose: bool = True,
                   with_history: bool = False):
    """The book's Transformer GAN generator (EMA weights, eval mode), cached by config hash.

    Trained deterministically from ``GAN_CONFIG`` (about a minute on a laptop CPU)
    when the cache misses. With ``with_history=True`` returns ``(generator, history)``,
    where ``history`` holds the per-epoch losses and ``"checkpoints"``:
    ``{epoch: generator}`` snapshots for FID-over-training curves.
    """
    config = dict(GAN_CONFIG if config is None else config)
    state = runtime.cached_state("gan", config, lambda: _train_gan_state(config), verbose=verbose)
    gen, _ = build_gan(config)
    gen.load_state_dict(_split_state(state, "ema."))
    gen.eval().requires_grad_(False)
    if not with_history:
        return gen
    history: dict = {k: _split_state(state, "history.")[k].tolist()
                     for k in ("d_loss", "g_loss", "d_real", "d_fake")}
    history["checkpoints"] = {}
    for epoch in config["checkpoints"]:
        snap, _ = build_gan(config)
        snap.load_state_dict(_split_state(state, f"ckpt{epoch}."))
        history["checkpoints"][epoch] = snap.eval().requires_grad_(False)
    return gen, history


def build_clustergan(config: dict = CLUSTERGAN_CONFIG):
    """A fresh ``(generator, discriminator, encoder)`` with the sizes in ``config``."""
    c = config
    gen, disc = build_gan(c, latent_dim=c["noise_dim"] + c["n_clusters"])
    enc = TransformerLatentEncoder(c["noise_dim"], c["n_clusters"], 8, c["d_patch"], c["d_model"],
                                   c["n_heads"], c["d_layers"], c["d_ff"])
    return gen, disc, enc


def _train_clustergan_state(config: dict) -> dict[str, torch.Tensor]:
    c = config
    torch.manual_seed(c["seed"])
    gen, disc, enc = build_clustergan(c)
    hist = train_clustergan(gen, disc, enc, _training_images(), sigma=c["sigma"],
                            beta_n=c["beta_n"], beta_c=c["beta_c"], epochs=c["epochs"],
                            batch_size=c["batch_size"], lr_g=c["lr_g"], lr_d=c["lr_d"],
                            betas=tuple(c["betas"]), augment=c["augment"], cutout=c["cutout"],
                            seed=c["seed"])
    state = {f"gen.{k}": v for k, v in gen.state_dict().items()}
    state.update({f"enc.{k}": v for k, v in enc.state_dict().items()})
    for k in ("d_loss", "g_loss", "z_loss", "c_loss"):
        state[f"history.{k}"] = torch.tensor(hist[k])
    return state


def pretrained_clustergan(*, config: dict | None = None, verbose: bool = True,
                          with_history: bool = False):
    """The book's ClusterGAN ``(generator, encoder)``, cached by config hash (eval mode).

    With ``with_history=True`` returns ``(generator, encoder, history)``.
    """
    config = dict(CLUSTERGAN_CONFIG if config is None else config)
    state = runtime.cached_state("clustergan", config, lambda: _train_clustergan_state(config),
                                 verbose=verbose)
    gen, _, enc = build_clustergan(config)
    gen.load_state_dict(_split_state(state, "gen."))
    enc.load_state_dict(_split_state(state, "enc."))
    gen.eval().requires_grad_(False)
    enc.eval().requires_grad_(False)
    if not with_history:
        return gen, enc
    hist = {k: v.tolist() for k, v in _split_state(state, "history.").items()}
    return gen, enc, hist
