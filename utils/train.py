"""One training loop for the book: progress bar, NaN guard, and a history of losses.

``fit`` covers every single-optimiser model in the book. Loops with several
optimisers (GANs) reuse :func:`progress` and :func:`check_finite`.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable

import torch
from torch import nn

from .runtime import progress_enabled

__all__ = ["progress", "check_finite", "fit", "batches"]


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


def batches(n: int, batch_size: int, *, shuffle: bool = True,
            generator: torch.Generator | None = None) -> list[torch.Tensor]:
    """Index tensors covering ``range(n)`` in mini-batches (the last one may be short)."""
    if n < 1 or batch_size < 1:
        raise ValueError(f"n and batch_size must be positive, got n={n}, batch_size={batch_size}")
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    return list(order.split(batch_size))


def fit(
    model: nn.Module,
    loss_fn: Callable[[nn.Module, torch.Tensor], torch.Tensor | tuple[torch.Tensor, dict]],
    data: torch.Tensor | tuple[torch.Tensor, ...],
    *,
    epochs: int,
    batch_size: int = 128,
    optimizer: torch.optim.Optimizer | None = None,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    grad_clip: float | None = 1.0,
    scheduler: str | None = "cosine",
    seed: int = 0,
    callback: Callable[[int], dict | None] | None = None,
    desc: str = "training",
) -> dict[str, list[float]]:
    """Train ``model`` with mini-batches of ``data`` for ``epochs`` epochs.

    ``data`` is one tensor of samples, or a tuple of equally long tensors (for
    example images and labels for a classifier); batches are sliced alike.

    ``loss_fn(model, batch)`` returns a scalar loss, or ``(loss, {name: value})``
    to log extra terms. ``callback(epoch)`` may return more values to log (for
    example a probe accuracy). Returns a history: one list per logged name, with
    one value (the epoch mean) per epoch. Raises ``FloatingPointError`` as soon
    as a loss is NaN or infinite.
    """
    tensors = data if isinstance(data, tuple) else (data,)
    if not tensors or not all(torch.is_tensor(t) for t in tensors) or len(tensors[0]) == 0:
        raise ValueError("data must be a non-empty tensor or a tuple of tensors")
    n = len(tensors[0])
    if any(len(t) != n for t in tensors):
        raise ValueError(f"data tensors differ in length: {[len(t) for t in tensors]}")
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    if any(t.is_floating_point() and not torch.isfinite(t).all() for t in tensors):
        raise ValueError("data contains NaN or infinite values")
    params = [p for p in model.parameters() if p.requires_grad]
    if optimizer is None:
        optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    steps = epochs * math.ceil(n / batch_size)
    sched = None
    if scheduler == "cosine":
        sched = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=[g["lr"] for g in optimizer.param_groups], total_steps=steps,
            pct_start=0.1, anneal_strategy="cos",
        )
    elif scheduler is not None:
        raise ValueError(f"scheduler must be 'cosine' or None, got {scheduler!r}")
    gen = torch.Generator().manual_seed(seed)
    history: dict[str, list[float]] = defaultdict(list)
    for epoch in progress(range(epochs), desc=desc):
        model.train()
        sums: dict[str, float] = defaultdict(float)
        idx_batches = batches(n, batch_size, generator=gen)
        for step, idx in enumerate(idx_batches):
            batch = tuple(t[idx] for t in tensors) if isinstance(data, tuple) else data[idx]
            out = loss_fn(model, batch)
            loss, extras = out if isinstance(out, tuple) else (out, {})
            sums["loss"] += check_finite(loss, f"epoch {epoch}, step {step}")
            for k, v in extras.items():
                sums[k] += float(v)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip is not None:
                nn.utils.clip_grad_norm_(params, grad_clip)
            optimizer.step()
            if sched is not None:
                sched.step()
        for k, v in sums.items():
            history[k].append(v / len(idx_batches))
        if callback is not None:
            model.eval()
            for k, v in (callback(epoch) or {}).items():
                history[k].append(float(v))
    model.eval()
    return dict(history)
