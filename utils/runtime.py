"""Runtime helpers: seeding, device choice, thread pinning and a small checkpoint cache.

The cache lets a chapter reuse a model trained in an earlier chapter. A model is
stored under a hash of the configuration that produced it, so changing any
setting trains (and stores) a new model instead of silently loading a stale one.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "seed_everything",
    "get_device",
    "set_threads",
    "default_threads",
    "train_threads",
    "training_seed",
    "threads",
    "training",
    "book_defaults",
    "cache_dir",
    "config_hash",
    "recipe_key",
    "CacheEntry",
    "cached",
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


def _positive_int(n, what: str) -> int:
    if not isinstance(n, int | np.integer) or isinstance(n, bool) or n < 1:
        raise ValueError(f"{what} must be a positive int, got {n!r}")
    return int(n)


def _env_int(name: str) -> int | None:
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    try:
        return _positive_int(int(value), f"${name}")
    except ValueError:
        raise ValueError(f"${name} must be a positive integer, got {value!r}") from None


def default_threads() -> int:
    """Threads for a notebook's own work: ``$TFUL_THREADS``, else all cores (at most 8).

    The test runner sets ``TFUL_THREADS`` so that notebooks running side by side
    share the cores instead of each taking all of them.
    """
    return _env_int("TFUL_THREADS") or min(os.cpu_count() or 1, 8)


def train_threads() -> int:
    """Threads every training loop runs on: 1, or ``$TFUL_TRAIN_THREADS`` (used by ``make sweep``).

    Float sums split differently across threads, so the thread count is part of a
    training recipe: the same seed trained on 1 or 4 threads gives different
    weights. Pinning it makes a trained model the same on every machine, and it is
    part of every cache key. One thread is also the fastest choice for the
    book's small models on a 2-core CPU.
    """
    return _env_int("TFUL_TRAIN_THREADS") or 1


def training_seed(seed: int) -> int:
    """``seed`` shifted by ``$TFUL_SEED_OFFSET`` (default 0).

    ``make sweep`` sets the offset to re-run every training with other seeds; a
    normal run leaves every seed as written.
    """
    offset = os.environ.get("TFUL_SEED_OFFSET", "").strip()
    if not offset:
        return int(seed)
    try:
        return int(seed) + int(offset)
    except ValueError:
        raise ValueError(f"$TFUL_SEED_OFFSET must be an integer, got {offset!r}") from None


def _limit_native(n: int):
    """Limit BLAS and OpenMP thread pools (NumPy, SciPy, scikit-learn) to ``n``; returns the limiter."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=n)


def set_threads(n: int | None = None) -> int:
    """Set the threads of this process: torch's intra-op pool, BLAS and OpenMP; return ``n``.

    ``n`` defaults to :func:`default_threads`. Training loops pin their own count
    with :func:`threads` regardless of this setting.
    """
    n = default_threads() if n is None else _positive_int(n, "number of threads")
    torch.set_num_threads(n)
    _limit_native(n)
    return n


@contextmanager
def threads(n: int) -> Iterator[None]:
    """Run a block with ``n`` threads for torch, BLAS and OpenMP, then restore the previous setting.

    This is the one thread-pinning mechanism of the book: every training loop and
    every scikit-learn call whose result is asserted runs inside it.
    """
    n = _positive_int(n, "number of threads")
    old = torch.get_num_threads()
    limiter = _limit_native(n)
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)
        limiter.restore_original_limits()


@contextmanager
def training(seed: int | None = None) -> Iterator[int | None]:
    """The context of every training run: :func:`train_threads` threads, gradients on.

    Yields :func:`training_seed` of ``seed`` (``None`` stays ``None``).
    """
    with threads(train_threads()), torch.enable_grad():
        yield None if seed is None else training_seed(seed)


@contextmanager
def book_defaults() -> Iterator[None]:
    """Run a block with the book's own seeds on one training thread, whatever the sweep set.

    Inside it ``$TFUL_SEED_OFFSET`` and ``$TFUL_TRAIN_THREADS`` are unset, so
    :func:`training_seed` returns seeds as written and :func:`train_threads` is 1. Shipped
    checkpoints are made and verified inside it: they are fixed artefacts, the same in a
    sweep run as in a normal one.
    """
    names = ("TFUL_SEED_OFFSET", "TFUL_TRAIN_THREADS")
    saved = {k: os.environ.pop(k) for k in names if k in os.environ}
    try:
        yield
    finally:
        for k in names:
            os.environ.pop(k, None)
        os.environ.update(saved)


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


def recipe_key(config: dict) -> dict:
    """Everything that changes trained weights: the config, torch's version, the training threads, the seed offset."""
    return {"config": config, "torch": torch.__version__, "train_threads": train_threads(),
            "seed_offset": training_seed(0)}


@dataclass
class CacheEntry:
    """What :func:`cached` returns: the state dict, its JSON side-car, and how it was obtained."""

    state: dict[str, torch.Tensor]
    info: dict
    trained: bool          #: this call trained the model (a cold cache)
    waited_seconds: float  #: time spent waiting while another process trained it
    path: Path


def _log_event(**event) -> None:
    """Append one JSON line to ``$TFUL_RUN_LOG`` (set by the notebook runner) if it is set."""
    log = os.environ.get("TFUL_RUN_LOG")
    if log:
        with open(log, "a") as fh:
            fh.write(json.dumps(event) + "\n")


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not name.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"cache name must be alphanumeric with - or _, got {name!r}")


def cached(
    name: str,
    config: dict,
    train: Callable[[], dict[str, torch.Tensor] | tuple[dict[str, torch.Tensor], dict]],
    *,
    verbose: bool = False,
) -> CacheEntry:
    """Load a state dict from the cache, or train it once and store it.

    The file is ``cache_dir()/<name>-<hash>.pt``, where the hash covers
    :func:`recipe_key` of ``config``. It is read with ``torch.load(weights_only=True)``,
    so only tensors are ever unpickled. ``train()`` returns a state dict, or
    ``(state_dict, info)`` with a JSON-serialisable ``info`` (a loss history, say),
    stored next to it in ``<name>-<hash>.json`` together with the training time.

    ``train()`` runs inside :func:`training`: on :func:`train_threads` threads, with
    gradients enabled even when the caller is inside ``torch.no_grad()``. A file
    lock makes concurrent callers (notebooks running in parallel) train a model
    once: the others wait, then load it.
    """
    from filelock import FileLock

    _check_name(name)
    key = recipe_key(config)
    path = cache_dir() / f"{name}-{config_hash(key)}.pt"
    meta_path = path.with_suffix(".json")
    start = time.perf_counter()
    with FileLock(str(path.with_suffix(".lock"))):
        waited = time.perf_counter() - start
        if path.exists() and meta_path.exists():
            state = torch.load(path, map_location="cpu", weights_only=True)
            info = json.loads(meta_path.read_text())
            if verbose:
                print(f"loaded {name} from cache ({path.name})")
            _log_event(name=name, file=path.name, event="loaded", waited_seconds=round(waited, 3),
                       train_seconds=info.get("train_seconds"))
            return CacheEntry(state, info, False, waited, path)
        t0 = time.perf_counter()
        with training():
            out = train()
        seconds = time.perf_counter() - t0
        state, extra = out if isinstance(out, tuple) else (out, {})
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise TypeError("train() must return a dict of tensors (a state dict), optionally with an info dict")
        info = {**extra, "name": name, "key": key, "train_seconds": round(seconds, 3)}
        try:
            meta_text = json.dumps(info, indent=1, sort_keys=True)
        except TypeError as err:
            raise TypeError(f"the info dict train() returned must be JSON-serialisable: {err}") from None
        state = {k: v.detach().cpu() for k, v in state.items()}
        tmp = path.with_suffix(".tmp")
        torch.save(state, tmp)
        tmp.replace(path)
        meta_path.write_text(meta_text + "\n")
        if verbose:
            print(f"trained {name} in {seconds:.0f} s and cached it ({path.name})")
        _log_event(name=name, file=path.name, event="trained", waited_seconds=round(waited, 3),
                   train_seconds=round(seconds, 3))
        return CacheEntry(state, info, True, waited, path)


def cached_state(
    name: str,
    config: dict,
    train: Callable[[], dict[str, torch.Tensor]],
    *,
    verbose: bool = True,
) -> dict[str, torch.Tensor]:
    """The state dict of :func:`cached` (for data that is cached but not a model, e.g. embeddings)."""
    return cached(name, config, train, verbose=verbose).state
