r"""A Transformer GAN for 8x8 digits, written out: generator, discriminator, losses, training.

Both networks are Transformers built from :mod:`utils.transformer` (whose attention,
:mod:`utils.attention`, supports double backward, so an R1 penalty works).

* :class:`TransformerGenerator`: a latent ``z`` becomes ``N`` tokens (one linear map),
  the tokens pass through a pre-norm Transformer encoder, and each token becomes one
  ``p x p`` patch of pixels (TransGAN-style, without convolutions).
* :class:`TransformerDiscriminator`: a :class:`~utils.transformer.PatchEncoder` (patch
  tokens, [CLS], positions, Transformer) and a linear head on [CLS] that gives one logit.
  Spectral norm can wrap its linear maps.

The stabilisers that make this pair train on a CPU in a minute are all here: the hinge
loss (:func:`d_hinge_loss`, :func:`g_hinge_loss`), spectral norm, DiffAugment of real
*and* fake images (:func:`utils.augment.diff_augment`), an optional R1 penalty
(:func:`r1_penalty`), two learning rates (TTUR) and an exponential moving average of the
generator's weights (:class:`EMA`). :func:`train_gan` trains a :class:`GAN` from a
:class:`GANConfig`; the book's model is ``models.load("gan")``.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from . import models, runtime
from .augment import _diff_ops, diff_augment
from .data import check_images
from .train import check_finite, progress, record_step
from .transformer import Encoder, LearnedPositionalEncoding, PatchEncoder, PatchEncoderConfig, patches_to_image

__all__ = [
    "GANConfig",
    "GAN_CONFIG",
    "TransformerGenerator",
    "TransformerDiscriminator",
    "GAN",
    "d_hinge_loss",
    "g_hinge_loss",
    "r1_penalty",
    "EMA",
    "train_gan",
]


# --------------------------------------------------------------------------- config
def _check_positive_int(value, name: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


#: ``"constant"`` keeps both learning rates; ``"linear"`` decays them step by step to 0 at the end.
LR_SCHEDULES = ("constant", "linear")


def _check_training_fields(c) -> None:
    """Validate the training fields that :class:`GANConfig` and the ClusterGAN config share."""
    for name in ("image_size", "gen_patch_size", "disc_patch_size", "d_model", "n_heads",
                 "gen_layers", "disc_layers", "d_ff", "epochs", "batch_size"):
        _check_positive_int(getattr(c, name), name)
    for name in ("gen_patch_size", "disc_patch_size"):
        if c.image_size % getattr(c, name):
            raise ValueError(f"image_size={c.image_size} is not divisible by {name}={getattr(c, name)}")
    if c.d_model % c.n_heads:
        raise ValueError(f"d_model={c.d_model} is not divisible by n_heads={c.n_heads}")
    if c.loss not in ("hinge", "bce"):
        raise ValueError(f"loss must be 'hinge' or 'bce', got {c.loss!r}")
    if not (c.lr_g > 0 and c.lr_d > 0):
        raise ValueError(f"learning rates must be positive, got lr_g={c.lr_g}, lr_d={c.lr_d}")
    if len(c.betas) != 2 or not all(0.0 <= b < 1.0 for b in c.betas):
        raise ValueError(f"betas must be two numbers in [0, 1), got {c.betas!r}")
    _diff_ops(c.augment)
    for name in ("shift", "cutout"):
        if not isinstance(getattr(c, name), int) or getattr(c, name) < 0:
            raise ValueError(f"{name} must be a non-negative int (pixels), got {getattr(c, name)!r}")
    if not c.r1_gamma >= 0:
        raise ValueError(f"r1_gamma must be >= 0, got {c.r1_gamma}")
    if c.ema_decay is not None and not 0.0 <= c.ema_decay < 1.0:
        raise ValueError(f"ema_decay must be None or in [0, 1), got {c.ema_decay}")
    if c.lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {c.lr_schedule!r}")
    if not isinstance(c.seed, int) or c.seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {c.seed!r}")


@dataclass(frozen=True)
class GANConfig:
    """Everything that changes the trained GAN's weights: sizes, loss, stabilisers, schedule, seed.

    ``gen_patch_size`` and ``disc_patch_size`` are patch sizes in pixels (the
    discriminator reads coarser patches); ``d_model`` and ``d_ff`` are widths shared
    by both networks. ``checkpoints`` lists the epochs after which a copy of the
    (EMA) generator is kept, for FID-over-training curves. The data are the digits'
    train split (:func:`utils.data.digits_split`).
    """

    latent_dim: int = 32
    image_size: int = 8
    gen_patch_size: int = 2
    disc_patch_size: int = 4
    d_model: int = 64
    n_heads: int = 4
    gen_layers: int = 2
    disc_layers: int = 2
    d_ff: int = 128
    spectral_norm: bool = True
    loss: str = "hinge"
    epochs: int = 30
    batch_size: int = 64
    lr_g: float = 1e-3
    lr_d: float = 2e-3
    betas: tuple[float, float] = (0.0, 0.99)
    augment: str = "cutout"
    shift: int = 1
    cutout: int = 2
    r1_gamma: float = 0.0
    ema_decay: float | None = 0.99
    lr_schedule: str = "constant"
    checkpoints: tuple[int, ...] = (1, 5, 10, 20, 30)
    seed: int = 0

    def __post_init__(self):
        _check_positive_int(self.latent_dim, "latent_dim")
        _check_training_fields(self)
        bad = [e for e in self.checkpoints if not isinstance(e, int) or not 1 <= e <= self.epochs]
        if bad or len(set(self.checkpoints)) != len(self.checkpoints):
            raise ValueError(f"checkpoints must be distinct epochs in [1, {self.epochs}], "
                             f"got {self.checkpoints!r}")

    def disc_encoder_config(self) -> PatchEncoderConfig:
        """The discriminator's :class:`~utils.transformer.PatchEncoderConfig`."""
        return PatchEncoderConfig(image_size=self.image_size, patch_size=self.disc_patch_size,
                                  d_model=self.d_model, n_heads=self.n_heads,
                                  n_layers=self.disc_layers, d_ff=self.d_ff)


#: The book's GAN recipe (``models.load("gan")`` trains or loads it).
GAN_CONFIG = GANConfig()


# --------------------------------------------------------------------------- networks
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
    """Images -> :class:`~utils.transformer.PatchEncoder` -> [CLS] state -> one logit per image.

    ``config`` sizes the encoder (``GANConfig.disc_encoder_config()`` gives the book's).

    With ``spectral_norm=True`` every linear map (patch embedding, attention
    projections, feed-forward, head) is spectrally normalised.
    """

    def __init__(self, config: PatchEncoderConfig, *, spectral_norm: bool = True):
        super().__init__()
        if not isinstance(config, PatchEncoderConfig):
            raise TypeError(f"config must be a PatchEncoderConfig, got {type(config).__name__}")
        self.image_size = config.image_size
        self.backbone = PatchEncoder(config)
        self.head = nn.Linear(config.d_model, 1)
        if spectral_norm:
            _spectral(self)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        check_images(images, size=self.image_size)
        return self.head(self.backbone.features(images)).squeeze(-1)


class GAN(nn.Module):
    """Everything a trained GAN consists of, as one module (what ``models.load("gan")`` returns).

    ``generator`` samples images (after training it holds the EMA weights);
    ``discriminator`` is the trained critic; ``snapshots`` holds a copy of the
    generator for each epoch in ``config.checkpoints`` (see :meth:`snapshot`).
    """

    def __init__(self, config: GANConfig = GAN_CONFIG):
        super().__init__()
        if not isinstance(config, GANConfig):
            raise TypeError(f"config must be a GANConfig, got {type(config).__name__}")
        c = self.config = config
        self.generator = TransformerGenerator(c.latent_dim, c.image_size, c.gen_patch_size,
                                              c.d_model, c.n_heads, c.gen_layers, c.d_ff)
        self.discriminator = TransformerDiscriminator(c.disc_encoder_config(),
                                                      spectral_norm=c.spectral_norm)
        # copies, not new draws: building the snapshots leaves the random stream alone
        self.snapshots = nn.ModuleDict({str(e): copy.deepcopy(self.generator) for e in c.checkpoints})

    def snapshot(self, epoch: int) -> TransformerGenerator:
        """The (EMA) generator as it was after ``epoch`` epochs of training."""
        if str(epoch) not in self.snapshots:
            raise KeyError(f"no snapshot after epoch {epoch!r}; the config keeps {list(self.config.checkpoints)}")
        return self.snapshots[str(epoch)]


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
    if not isinstance(disc, nn.Module):
        raise TypeError(f"disc must be an nn.Module, got {type(disc).__name__}")
    real = check_images(real, "real").detach().requires_grad_(True)
    logits = disc(real)
    (grad,) = torch.autograd.grad(logits.sum(), real, create_graph=True)
    return grad.pow(2).flatten(1).sum(1).mean()


# --------------------------------------------------------------------------- training
class EMA:
    r"""An exponential moving average of a model's weights: :math:`\bar\theta \leftarrow
    \beta_t\bar\theta + (1-\beta_t)\theta` after every step. ``EMA.model`` is the averaged copy.

    The decay warms up, :math:`\beta_t = \min(\beta, (1+t)/(10+t))` at update
    :math:`t = 0, 1, \dots`, so that the average does not drag the random initial
    weights along for hundreds of steps. Buffers that are not floating point are copied.
    """

    def __init__(self, model: nn.Module, decay: float = 0.995):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        self.decay, self.steps = decay, 0
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    def beta(self, step: int) -> float:
        """The decay used at update ``step`` (0-based), after warm-up ``decay`` itself."""
        return min(self.decay, (1 + step) / (10 + step))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        avg_state, new_state = self.model.state_dict(), model.state_dict()
        if avg_state.keys() != new_state.keys():
            raise ValueError("model does not have the architecture of the averaged one: "
                             f"{sorted(set(avg_state) ^ set(new_state))[:5]} differ")
        beta = self.beta(self.steps)
        self.steps += 1
        for key, avg in avg_state.items():
            if avg.is_floating_point():
                avg.lerp_(new_state[key], 1.0 - beta)
            else:
                avg.copy_(new_state[key])


def _training_images(images, image_size: int) -> torch.Tensor:
    """``images`` validated (``None``: the digits' train split; the test split is FID's reference)."""
    if images is None:
        from .data import digits_split

        images = torch.tensor(digits_split()[0])
    images = check_images(images, size=image_size, unit_range=True, numpy_ok=True).float()
    if len(images) < 2:
        raise ValueError(f"need at least 2 training images, got {len(images)}")
    return images


def _adversarial_loop(gen: TransformerGenerator, disc: nn.Module, images: torch.Tensor, c, *,
                      sample_latent: Callable[[int, torch.Generator], tuple[torch.Tensor, torch.Tensor | None]],
                      g_extra: Callable | None = None, extra_modules: tuple[nn.Module, ...] = (),
                      checkpoints: tuple[int, ...] = (), desc: str = "GAN"
                      ) -> tuple[nn.Module, dict[int, dict], dict[str, list[float]]]:
    """Alternate one discriminator and one generator step per mini-batch for ``c.epochs`` epochs.

    ``c`` is a validated config (:class:`GANConfig` or the ClusterGAN one).
    ``g_extra(fake, z, c_true, where) -> (loss, logs)`` adds a term to the generator's
    loss (ClusterGAN's encoder losses); ``extra_modules`` are trained with the generator.
    Runs inside :func:`utils.runtime.training` with the seed shifted by ``$TFUL_SEED_OFFSET``.
    Returns the generator to sample from (EMA or raw), ``{epoch: its state_dict}``
    for ``checkpoints`` and the per-epoch history.
    """
    with runtime.training(c.seed) as seed:
        torch.manual_seed(seed)
        rng = torch.Generator().manual_seed(seed)
        g_params = list(gen.parameters()) + [p for m in extra_modules for p in m.parameters()]
        opt_g = torch.optim.Adam(g_params, lr=c.lr_g, betas=tuple(c.betas))
        opt_d = torch.optim.Adam(disc.parameters(), lr=c.lr_d, betas=tuple(c.betas))
        ema = EMA(gen, c.ema_decay) if c.ema_decay is not None else None

        def aug(x: torch.Tensor) -> torch.Tensor:
            return diff_augment(x, c.augment, shift=c.shift, cutout=c.cutout, generator=rng)

        n = len(images)
        n_batches = max(1, n // c.batch_size)  # drop the short last batch
        total_steps = c.epochs * n_batches
        history: dict[str, list[float]] = defaultdict(list)
        snapshots: dict[int, dict] = {}
        for epoch in progress(range(c.epochs), desc=desc):
            for m in (gen, disc, *extra_modules):
                m.train()
            sums: dict[str, float] = defaultdict(float)
            order = torch.randperm(n, generator=rng)
            for step in range(n_batches):
                where = f"epoch {epoch}, step {step}"
                if c.lr_schedule == "linear":
                    factor = 1.0 - (epoch * n_batches + step) / total_steps
                    for opt, base in ((opt_g, c.lr_g), (opt_d, c.lr_d)):
                        for g in opt.param_groups:
                            g["lr"] = base * factor
                real = images[order[step * c.batch_size:(step + 1) * c.batch_size]]
                b = len(real)
                # 1. discriminator step: real up, fake down (one pass over both)
                with torch.no_grad():
                    fake = gen(sample_latent(b, rng)[0])
                real_logits, fake_logits = disc(aug(torch.cat([real, fake]))).split([b, b])
                if c.loss == "hinge":
                    d_loss = d_hinge_loss(real_logits, fake_logits)
                else:
                    d_loss = F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
                r1 = r1_penalty(disc, real) if c.r1_gamma > 0 else torch.zeros(())
                sums["d_loss"] += check_finite(d_loss, f"{where} (discriminator)")
                sums["r1"] += float(r1.detach())
                sums["d_real"] += float(real_logits.detach().mean())
                sums["d_fake"] += float(fake_logits.detach().mean())
                opt_d.zero_grad(set_to_none=True)
                (d_loss + 0.5 * c.r1_gamma * r1).backward()
                opt_d.step()
                # 2. generator step (plus the extra term, e.g. ClusterGAN's encoder)
                z, cls = sample_latent(b, rng)
                fake = gen(z)
                fake_logits = disc(aug(fake))
                g_loss = g_hinge_loss(fake_logits) if c.loss == "hinge" else F.softplus(-fake_logits).mean()
                total = g_loss
                if g_extra is not None:
                    extra, logs = g_extra(fake, z, cls, where)
                    total = g_loss + extra
                    for k, v in logs.items():
                        sums[k] += v
                sums["g_loss"] += check_finite(g_loss, f"{where} (generator)")
                opt_g.zero_grad(set_to_none=True)
                total.backward()
                opt_g.step()
                if ema is not None:
                    ema.update(gen)
                record_step(d_loss + g_loss)
            for k, v in sums.items():
                history[k].append(v / n_batches)
            current = ema.model if ema is not None else gen
            if epoch + 1 in checkpoints:
                snapshots[epoch + 1] = {k: v.detach().clone() for k, v in current.state_dict().items()}
    for m in (gen, disc, *extra_modules):
        m.eval()
    return (ema.model if ema is not None else gen), snapshots, dict(history)


def train_gan(config: GANConfig = GAN_CONFIG, images: torch.Tensor | None = None
              ) -> tuple[GAN, dict[str, list[float]]]:
    r"""Train a :class:`GAN` from ``config``; return it (eval mode) and its per-epoch history.

    Each mini-batch takes one discriminator step and one generator step. ``loss`` is
    ``"hinge"`` or ``"bce"`` (the original non-saturating loss); ``augment`` is a
    :func:`~utils.augment.diff_augment` policy applied to real and fake alike (``""``
    for none); ``r1_gamma > 0`` adds :math:`\frac{\gamma}{2}\,\mathrm{R1}` on real images;
    with ``ema_decay`` the returned ``generator`` holds the :class:`EMA` weights.
    ``images`` default to the digits' train split and must lie in ``[0, 1]``.

    The history holds per-epoch means of ``d_loss``, ``g_loss``, ``d_real``, ``d_fake``
    (mean logits on augmented images) and ``r1``. Deterministic given the config
    (and ``$TFUL_SEED_OFFSET``). Raises ``FloatingPointError`` as soon as a loss is NaN or inf.
    """
    if not isinstance(config, GANConfig):
        raise TypeError(f"config must be a GANConfig, got {type(config).__name__}")
    images = _training_images(images, config.image_size)
    with runtime.training(config.seed) as seed:
        torch.manual_seed(seed)  # the initial weights
        model = GAN(config)
    averaged, snapshots, history = _adversarial_loop(
        model.generator, model.discriminator, images, config, checkpoints=config.checkpoints,
        sample_latent=lambda b, rng: (torch.randn(b, config.latent_dim, generator=rng), None))
    with torch.no_grad():
        model.generator.load_state_dict(averaged.state_dict())
        for epoch, state in snapshots.items():
            model.snapshot(epoch).load_state_dict(state)
    return model.eval(), history


models.register(models.Recipe(
    name="gan", default=GAN_CONFIG, build=GAN, train=train_gan,
    summary="Transformer GAN (hinge loss, spectral norm, cutout, TTUR, EMA) for 8x8 digits",
    full=replace(GAN_CONFIG, epochs=150, d_model=96, d_ff=192,
                 checkpoints=(1, 5, 10, 20, 30, 60, 100, 150))))
