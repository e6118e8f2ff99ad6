"""The book's one training loop: :class:`Trainer`, configured by a frozen :class:`TrainConfig`.

Every single-optimiser model (the self-supervised encoders, DEC, the VAE, the
feature network behind FID) trains with it; each family supplies a per-step loss
function that closes over whatever it needs (augmentations, masks, a KL weight,
DEC's target distribution). Loops with several optimisers (GANs) reuse
:func:`progress` and :func:`check_finite`.

The loop:

* draws the batch order from a generator seeded with
  :func:`utils.runtime.training_seed` of ``config.seed`` (the loss function may
  draw from the same generator, :attr:`Trainer.generator`);
* steps AdamW with an lr-factor schedule (:func:`lr_factor`: linear warm-up then
  cosine, or constant), optional gradient clipping and the NaN/inf guard;
* runs inside :func:`utils.runtime.training`: :func:`~utils.runtime.train_threads`
  threads for torch, BLAS and OpenMP, gradients on;
* returns a history: one list per logged name, one float per epoch.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from . import runtime
from .runtime import progress_enabled

__all__ = ["progress", "check_finite", "lr_factor", "TrainConfig", "Trainer", "record_step",
           "first_losses", "FirstLossesReached"]

SCHEDULES = ("cosine", "constant")


def progress(iterable: Iterable, desc: str = "", total: int | None = None):
    """A tqdm progress bar in a live notebook; the bare iterable in book builds."""
    if not progress_enabled():
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, leave=False)


def check_finite(value: torch.Tensor | float, where: str) -> float:
    """Return ``value`` as a float, or raise ``FloatingPointError`` naming ``where`` if NaN/inf."""
    x = float(value.detach()) if torch.is_tensor(value) else float(value)
    if not math.isfinite(x):
        raise FloatingPointError(
            f"loss became {x} at {where}; lower the learning rate or check the inputs for NaN"
        )
    return x


class FirstLossesReached(Exception):
    """Raised by :func:`record_step` inside ``first_losses(n, stop=True)`` after ``n`` steps."""


_RECORDERS: list[tuple[list[float], int, bool]] = []


@contextmanager
def first_losses(n: int, *, stop: bool = False) -> Iterator[list[float]]:
    """Record the losses of the first ``n`` optimiser steps of the training run inside the block.

    Every training loop of the book calls :func:`record_step` after each step. The list
    this yields fills with the first ``n`` losses; with ``stop=True`` training ends
    after step ``n`` (the block then exits normally). This is how a shipped
    checkpoint proves it comes from today's code: its card holds these losses, and
    re-computing them takes a few steps instead of a whole run.
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    losses: list[float] = []
    _RECORDERS.append((losses, n, stop))
    try:
        yield losses
    except FirstLossesReached:
        if not stop or len(losses) < n:
            raise
    finally:
        _RECORDERS.pop()


def record_step(loss: torch.Tensor | float) -> None:
    """Report one optimiser step's loss to an enclosing :func:`first_losses` (no-op outside one)."""
    if not _RECORDERS:
        return
    losses, n, stop = _RECORDERS[-1]
    if len(losses) < n:
        losses.append(float(loss.detach()) if torch.is_tensor(loss) else float(loss))
    if stop and len(losses) >= n:
        raise FirstLossesReached


def lr_factor(step: int, total: int, warmup: int, schedule: str = "cosine") -> float:
    """The learning-rate multiplier at optimiser step ``step`` (0-based) of ``total``.

    ``"cosine"``: ``(step + 1) / warmup`` during the first ``warmup`` steps, then a
    half cosine from 1 down to 0 at step ``total``. ``"constant"``: always 1.
    """
    if schedule == "constant":
        return 1.0
    if schedule != "cosine":
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one :class:`Trainer` run.

    ``warmup_epochs`` may be fractional (rounded to whole steps). With
    ``no_decay_bias_norm`` biases, norm weights and positional embeddings (every
    parameter with fewer than 2 dimensions or ``"pos"`` in its name) get no weight
    decay. ``drop_last`` drops the ragged last batch of every epoch.
    """

    epochs: int
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    no_decay_bias_norm: bool = False
    schedule: str = "cosine"
    warmup_epochs: float = 0.0
    grad_clip: float | None = 1.0
    drop_last: bool = False
    seed: int = 0
    desc: str = "training"

    def __post_init__(self):
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise ValueError(f"epochs must be a positive int, got {self.epochs!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {self.batch_size!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.lr <= 0 or self.weight_decay < 0 or self.warmup_epochs < 0:
            raise ValueError("lr must be positive; weight_decay and warmup_epochs non-negative")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ValueError(f"grad_clip must be positive or None, got {self.grad_clip}")


StepCallback = Callable[["Trainer", float], None]
EpochCallback = Callable[["Trainer"], dict | None]


class Trainer:
    """Mini-batch training of one model with one AdamW optimiser.

    Creating a trainer seeds torch's global generator (and Python's and NumPy's) with
    the shifted seed, so build the model *after* it for a seeded initialisation.
    """

    def __init__(self, config: TrainConfig):
        if not isinstance(config, TrainConfig):
            raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
        self.config = config
        self.seed = runtime.training_seed(config.seed)
        #: batch order; the loss function may draw its own randomness from it too
        self.generator = runtime.seed_everything(self.seed)
        self.epoch = 0              #: current epoch (0-based)
        self.step = 0               #: step within the current epoch (0-based)
        self.global_step = 0        #: optimiser steps taken so far
        self.steps_per_epoch = 0
        self.history: dict[str, list[float]] = {}

    def _param_groups(self, model: nn.Module, groups: Sequence[dict] | None) -> list[dict]:
        c = self.config
        if groups is not None:
            return [{"weight_decay": c.weight_decay, "lr": c.lr, **g,
                     "params": [p for p in g["params"] if p.requires_grad]} for g in groups]
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        if not c.no_decay_bias_norm:
            return [{"params": [p for _, p in named], "weight_decay": c.weight_decay, "lr": c.lr}]

        def decays(name, p):
            return p.ndim >= 2 and "pos" not in name

        return [{"params": [p for n, p in named if decays(n, p)], "weight_decay": c.weight_decay,
                 "lr": c.lr},
                {"params": [p for n, p in named if not decays(n, p)], "weight_decay": 0.0,
                 "lr": c.lr}]

    def fit(self, model: nn.Module,
            loss_fn: Callable[[torch.Tensor | tuple], torch.Tensor | tuple[torch.Tensor, dict]],
            data: torch.Tensor | tuple[torch.Tensor, ...], *,
            param_groups: Sequence[dict] | None = None,
            on_step: StepCallback | None = None,
            on_epoch: EpochCallback | None = None) -> dict[str, list[float]]:
        """Train ``model`` on ``data`` for ``config.epochs`` epochs; return the history.

        ``data`` is one tensor of samples or a tuple of equally long tensors (sliced
        alike). ``loss_fn(batch)`` returns a scalar loss, or ``(loss, {name: value})``
        to log more terms; the history holds their sample-weighted epoch means.
        ``param_groups`` (dicts with ``params`` and optionally ``lr``/``weight_decay``)
        replace the default groups. ``on_step(trainer, loss)`` runs after every
        optimiser step; ``on_epoch(trainer)`` after every epoch, in eval mode without
        gradients, and may return more values to log. Raises ``FloatingPointError``
        naming the epoch and step as soon as a loss is NaN or infinite. The model is
        left in eval mode.
        """
        c = self.config
        tensors = data if isinstance(data, tuple) else (data,)
        if not tensors or not all(torch.is_tensor(t) for t in tensors) or len(tensors[0]) == 0:
            raise ValueError("data must be a non-empty tensor or a tuple of tensors")
        n = len(tensors[0])
        if any(len(t) != n for t in tensors):
            raise ValueError(f"data tensors differ in length: {[len(t) for t in tensors]}")
        if c.drop_last and n < c.batch_size:
            raise ValueError(f"drop_last needs at least batch_size={c.batch_size} samples, got {n}")
        self.steps_per_epoch = n // c.batch_size if c.drop_last else math.ceil(n / c.batch_size)
        total = c.epochs * self.steps_per_epoch
        warmup = round(c.warmup_epochs * self.steps_per_epoch)
        groups = self._param_groups(model, param_groups)
        opt = torch.optim.AdamW(groups)
        base_lrs = [g["lr"] for g in opt.param_groups]
        clip_params = [p for p in model.parameters() if p.requires_grad]
        history: dict[str, list[float]] = defaultdict(list)
        self.history = history
        with runtime.training():
            for epoch in progress(range(c.epochs), desc=c.desc):
                self.epoch = epoch
                model.train()
                order = torch.randperm(n, generator=self.generator)
                sums: dict[str, float] = defaultdict(float)
                for step in range(self.steps_per_epoch):
                    self.step = step
                    idx = order[step * c.batch_size:(step + 1) * c.batch_size]
                    batch = tuple(t[idx] for t in tensors) if isinstance(data, tuple) else data[idx]
                    factor = lr_factor(self.global_step, total, warmup, c.schedule)
                    for g, base in zip(opt.param_groups, base_lrs, strict=True):
                        g["lr"] = base * factor
                    out = loss_fn(batch)
                    loss, extras = out if isinstance(out, tuple) else (out, {})
                    value = check_finite(loss, f"epoch {epoch}, step {step}")
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    if c.grad_clip is not None:
                        nn.utils.clip_grad_norm_(clip_params, c.grad_clip)
                    opt.step()
                    self.global_step += 1
                    record_step(value)
                    sums["loss"] += value * len(idx)
                    for k, v in extras.items():
                        sums[k] += float(v) * len(idx)
                    if on_step is not None:
                        on_step(self, value)
                seen = min(n, self.steps_per_epoch * c.batch_size)
                for k, v in sums.items():
                    history[k].append(v / seen)
                if on_epoch is not None:
                    model.eval()
                    with torch.no_grad():
                        logged = on_epoch(self) or {}
                    for k, v in logged.items():
                        history[k].append(float(v))
        model.eval()
        return dict(history)
