"""Runtime helpers: seeding, device choice, threads and a small checkpoint cache.

The cache lets a chapter reuse a model trained in an earlier chapter. A model is
stored under a hash of the configuration that produced it, so changing any
setting trains (and stores) a new model instead of silently loading a stale one.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "seed_everything",
    "get_device",
    "set_threads",
    "threads",
    "cache_dir",
    "config_hash",
    "cached_state",
    "progress_enabled",
]


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a ``torch.Generator`` seeded alike."""
    if not isinstance(seed, int | np.integer) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if not 0 <= int(seed) < 2**32:
        raise ValueError(f"seed must be in [0, 2**32), got {seed}")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def get_device(prefer: str | None = None) -> torch.device:
    """Pick the best available device: CUDA, then Apple MPS, then the CPU.

    ``prefer`` forces one of ``"cuda"``, ``"mps"`` or ``"cpu"``; the environment
    variable ``TFUL_DEVICE`` does the same for a whole run.
    """
    prefer = prefer or os.environ.get("TFUL_DEVICE")
    if prefer is not None:
        if prefer not in ("cuda", "mps", "cpu"):
            raise ValueError(f"device must be 'cuda', 'mps' or 'cpu', got {prefer!r}")
        available = {
            "cuda": torch.cuda.is_available(),
            "mps": torch.backends.mps.is_available(),
            "cpu": True,
        }
        if not available[prefer]:
            raise RuntimeError(f"device {prefer!r} was requested but is not available here")
        return torch.device(prefer)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def set_threads(n: int | None = None) -> int:
    """Set torch's intra-op threads (default: all cores, at most 8); return the number set."""
    if n is None:
        n = min(os.cpu_count() or 1, 8)
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"number of threads must be a positive int, got {n!r}")
    torch.set_num_threads(n)
    return n


@contextmanager
def threads(n: int) -> Iterator[None]:
    """Run a block with ``n`` torch threads, then restore the previous setting."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"number of threads must be a positive int, got {n!r}")
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def progress_enabled() -> bool:
    """Progress bars show in a live notebook, but not in book builds and tests.

    The book and test commands set ``TFUL_NO_PROGRESS=1`` so that rendered pages
    carry no progress-bar debris.
    """
    return os.environ.get("TFUL_NO_PROGRESS", "") in ("", "0")


def cache_dir() -> Path:
    """Folder for cached checkpoints: ``$TFUL_CACHE``, else ``.cache/`` at the repository root."""
    env = os.environ.get("TFUL_CACHE")
    path = Path(env) if env else Path(__file__).resolve().parent.parent / ".cache"
    path.mkdir(parents=True, exist_ok=True)
    return path


def config_hash(config: dict) -> str:
    """A short, stable hash of a JSON-serialisable configuration."""
    if not isinstance(config, dict):
        raise TypeError(f"config must be a dict, got {type(config).__name__}")
    try:
        text = json.dumps(config, sort_keys=True)
    except TypeError as err:
        raise TypeError(f"config must be JSON-serialisable: {err}") from None
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def cached_state(
    name: str,
    config: dict,
    train: Callable[[], dict[str, torch.Tensor]],
    *,
    verbose: bool = True,
) -> dict[str, torch.Tensor]:
    """Return a state dict from the cache, or call ``train()`` and store what it returns.

    The file is ``cache_dir()/<name>-<config_hash(config)>.pt`` and is read with
    ``torch.load(weights_only=True)``, so only tensors are ever unpickled.
    ``train`` must be deterministic given ``config`` (seed inside it). It runs with
    gradients enabled even when the caller is inside ``torch.no_grad()``.
    """
    if not name or not name.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"cache name must be alphanumeric with - or _, got {name!r}")
    path = cache_dir() / f"{name}-{config_hash(config)}.pt"
    if path.exists():
        if verbose:
            print(f"loaded {name} from cache ({path.name})")
        return torch.load(path, map_location="cpu", weights_only=True)
    with torch.enable_grad():  # the caller may be inside torch.no_grad(), e.g. an evaluation
        state = train()
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise TypeError("train() must return a dict of tensors (a state dict)")
    tmp = path.with_suffix(".tmp")
    torch.save({k: v.detach().cpu() for k, v in state.items()}, tmp)
    tmp.replace(path)
    if verbose:
        print(f"trained {name} and cached it ({path.name})")
    return state
