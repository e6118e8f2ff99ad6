r"""ClusterGAN with Transformers: a GAN whose latent clusters, and an encoder that inverts it.

The latent is ``z = [z_n, one_hot(c)]`` (:func:`sample_cluster_latent`); an encoder
(:class:`TransformerLatentEncoder`) is trained with the generator to recover both
parts from ``G(z)``, so each one-hot code must give recognisably different images.
On real images, the encoder's class head is then a clustering
(:func:`cluster_assignments`). Generator, discriminator and training loop come from
:mod:`utils.gan`; the book's model is ``models.load("clustergan")``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from . import models, runtime
from .data import check_images
from .gan import (
    TransformerDiscriminator,
    TransformerGenerator,
    _adversarial_loop,
    _check_positive_int,
    _check_training_fields,
    _training_images,
)
from .train import check_finite
from .transformer import PatchEncoder, PatchEncoderConfig

__all__ = [
    "ClusterGANConfig",
    "CLUSTERGAN_CONFIG",
    "TransformerLatentEncoder",
    "ClusterGAN",
    "sample_cluster_latent",
    "train_clustergan",
    "cluster_assignments",
]


@dataclass(frozen=True)
class ClusterGANConfig:
    """Everything that changes the trained ClusterGAN's weights.

    The latent has ``noise_dim + n_clusters`` entries, ``z_n ~ N(0, sigma^2 I)``;
    ``beta_n`` and ``beta_c`` weigh the encoder's two reconstruction losses. The
    encoder is a third Transformer with its own patch size and depth; the other
    fields mean what they mean in :class:`utils.gan.GANConfig`.
    """

    noise_dim: int = 16
    n_clusters: int = 10
    sigma: float = 0.1
    beta_n: float = 1.0
    beta_c: float = 1.0
    image_size: int = 8
    gen_patch_size: int = 2
    disc_patch_size: int = 4
    encoder_patch_size: int = 4
    d_model: int = 64
    n_heads: int = 4
    gen_layers: int = 2
    disc_layers: int = 2
    encoder_layers: int = 2
    d_ff: int = 128
    spectral_norm: bool = True
    loss: str = "hinge"
    epochs: int = 20
    batch_size: int = 64
    lr_g: float = 1e-3
    lr_d: float = 2e-3
    betas: tuple[float, float] = (0.0, 0.99)
    augment: str = "cutout"
    shift: int = 1
    cutout: int = 2
    r1_gamma: float = 0.0
    ema_decay: float | None = None
    lr_schedule: str = "constant"
    seed: int = 0

    def __post_init__(self):
        _check_cluster_sizes(self.noise_dim, self.n_clusters)
        for name in ("encoder_patch_size", "encoder_layers"):
            _check_positive_int(getattr(self, name), name)
        if self.image_size % self.encoder_patch_size:
            raise ValueError(f"image_size={self.image_size} is not divisible by "
                             f"encoder_patch_size={self.encoder_patch_size}")
        if not self.sigma > 0:
            raise ValueError(f"sigma must be positive, got {self.sigma}")
        if not (self.beta_n >= 0 and self.beta_c >= 0):
            raise ValueError(f"beta_n and beta_c must be >= 0, got {self.beta_n}, {self.beta_c}")
        _check_training_fields(self)

    def disc_encoder_config(self) -> PatchEncoderConfig:
        """The discriminator's :class:`~utils.transformer.PatchEncoderConfig`."""
        return PatchEncoderConfig(image_size=self.image_size, patch_size=self.disc_patch_size,
                                  d_model=self.d_model, n_heads=self.n_heads,
                                  n_layers=self.disc_layers, d_ff=self.d_ff)

    def encoder_config(self) -> PatchEncoderConfig:
        """The latent encoder's :class:`~utils.transformer.PatchEncoderConfig`."""
        return PatchEncoderConfig(image_size=self.image_size, patch_size=self.encoder_patch_size,
                                  d_model=self.d_model, n_heads=self.n_heads,
                                  n_layers=self.encoder_layers, d_ff=self.d_ff)


def _check_cluster_sizes(noise_dim, n_clusters) -> None:
    _check_positive_int(noise_dim, "noise_dim")
    if not isinstance(n_clusters, int) or isinstance(n_clusters, bool) or n_clusters < 2:
        raise ValueError(f"n_clusters must be an int >= 2, got {n_clusters!r}")


#: The book's ClusterGAN recipe (``models.load("clustergan")`` trains or loads it).
CLUSTERGAN_CONFIG = ClusterGANConfig()


class TransformerLatentEncoder(nn.Module):
    """ClusterGAN's encoder: images -> :class:`~utils.transformer.PatchEncoder` -> [CLS] ->
    ``(z_n, class logits)``, inverting the generator.

    ``config`` sizes the encoder (``ClusterGANConfig.encoder_config()`` gives the book's).
    """

    def __init__(self, noise_dim: int, n_clusters: int, config: PatchEncoderConfig):
        super().__init__()
        _check_cluster_sizes(noise_dim, n_clusters)
        if not isinstance(config, PatchEncoderConfig):
            raise TypeError(f"config must be a PatchEncoderConfig, got {type(config).__name__}")
        self.noise_dim, self.n_clusters, self.image_size = noise_dim, n_clusters, config.image_size
        self.backbone = PatchEncoder(config)
        self.head = nn.Linear(config.d_model, noise_dim + n_clusters)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        check_images(images, size=self.image_size)
        out = self.head(self.backbone.features(images))
        return out[:, : self.noise_dim], out[:, self.noise_dim:]


class ClusterGAN(nn.Module):
    """A trained ClusterGAN as one module (what ``models.load("clustergan")`` returns):
    ``generator``, ``discriminator`` and the latent ``encoder``."""

    def __init__(self, config: ClusterGANConfig = CLUSTERGAN_CONFIG):
        super().__init__()
        if not isinstance(config, ClusterGANConfig):
            raise TypeError(f"config must be a ClusterGANConfig, got {type(config).__name__}")
        c = self.config = config
        self.generator = TransformerGenerator(c.noise_dim + c.n_clusters, c.image_size, c.gen_patch_size,
                                              c.d_model, c.n_heads, c.gen_layers, c.d_ff)
        self.discriminator = TransformerDiscriminator(c.disc_encoder_config(), spectral_norm=c.spectral_norm)
        self.encoder = TransformerLatentEncoder(c.noise_dim, c.n_clusters, c.encoder_config())


def sample_cluster_latent(n: int, noise_dim: int, n_clusters: int, *, sigma: float = 0.1,
                          classes: torch.Tensor | None = None,
                          generator: torch.Generator | None = None
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    r"""ClusterGAN's latent :math:`z = [z_n, e_c]` with :math:`z_n \sim \mathcal N(0, \sigma^2 I)`
    and :math:`e_c` the one-hot vector of a uniform class :math:`c`.

    Returns ``(z, c)``: ``z`` is ``(n, noise_dim + n_clusters)``, ``c`` the ``(n,)`` classes
    (drawn uniformly unless ``classes`` is given).
    """
    _check_positive_int(n, "n")
    _check_cluster_sizes(noise_dim, n_clusters)
    if not sigma > 0:
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


def train_clustergan(config: ClusterGANConfig = CLUSTERGAN_CONFIG, images: torch.Tensor | None = None
                     ) -> tuple[ClusterGAN, dict[str, list[float]]]:
    r"""Train a :class:`ClusterGAN` (Mukherjee et al., 2019) with Transformers for G, D and E.

    The generator and encoder minimise, jointly,
    :math:`\mathcal L_G + \beta_n \lVert z_n - E_n(G(z)) \rVert^2 +
    \beta_c\,\mathrm{CE}(c, E_c(G(z)))`, so E inverts G and the one-hot part of the latent
    must stay recognisable in the image: each class becomes a cluster. The discriminator
    step is :func:`utils.gan.train_gan`'s. ``images`` default to the digits' train split.

    Returns the model (eval mode) and the per-epoch history of :func:`utils.gan.train_gan`
    plus ``z_loss`` and ``c_loss``.
    """
    if not isinstance(config, ClusterGANConfig):
        raise TypeError(f"config must be a ClusterGANConfig, got {type(config).__name__}")
    images = _training_images(images, config.image_size)
    with runtime.training(config.seed) as seed:
        torch.manual_seed(seed)  # the initial weights
        model = ClusterGAN(config)
    enc = model.encoder

    def latent(b: int, rng: torch.Generator):
        return sample_cluster_latent(b, config.noise_dim, config.n_clusters, sigma=config.sigma,
                                     generator=rng)

    def encoder_loss(fake, z, c, where):
        z_hat, c_logits = enc(fake)
        rec_n = F.mse_loss(z_hat, z[:, : config.noise_dim])
        rec_c = F.cross_entropy(c_logits, c)
        logs = {"z_loss": float(rec_n.detach()), "c_loss": check_finite(rec_c, f"{where} (encoder)")}
        return config.beta_n * rec_n + config.beta_c * rec_c, logs

    sampler, _, history = _adversarial_loop(model.generator, model.discriminator, images, config,
                                            sample_latent=latent, g_extra=encoder_loss,
                                            extra_modules=(enc,), desc="ClusterGAN")
    with torch.no_grad():
        model.generator.load_state_dict(sampler.state_dict())
    return model.eval(), history


@torch.no_grad()
def cluster_assignments(encoder: TransformerLatentEncoder, images) -> torch.Tensor:
    """The encoder's class head as a clustering: ``argmax_c E_c(x)`` for each image (a tensor or array)."""
    if not isinstance(encoder, TransformerLatentEncoder):
        raise TypeError(f"encoder must be a TransformerLatentEncoder, got {type(encoder).__name__}")
    images = check_images(images, size=encoder.image_size, numpy_ok=True).float()
    encoder.eval()
    return torch.cat([encoder(b)[1].argmax(1) for b in images.split(512)])


models.register(models.Recipe(
    name="clustergan", default=CLUSTERGAN_CONFIG, build=ClusterGAN, train=train_clustergan,
    summary="ClusterGAN with Transformers: one-hot plus noise latent, encoder inverting G",
    full=replace(CLUSTERGAN_CONFIG, epochs=100)))
