"""One way to get a trained model: ``models.load(name)``.

Later chapters reuse models trained in earlier ones (the self-supervised digit
encoders, DEC, the Transformer-VAE, the GANs, the feature network behind FID). Each
model family registers a :class:`Recipe` here: a frozen dataclass config for a
**quick** run (``default``, what a chapter trains live within its time budget) and one
for a **full** run (``full``, what ``make checkpoints`` trains and the repository ships),
a function that builds an untrained model from a config, and one that trains it.
:func:`load` then returns

* the **shipped** checkpoint (``checkpoints/<name>.safetensors``, see
  :mod:`utils.checkpoints`) when its card names today's recipe version and full config
  and today's code reproduces the first losses on the card (:func:`check_shipped`);
* otherwise, or when asked (``train="quick"``/``"full"``, or ``$TFUL_TRAIN``), a model from
  the checkpoint cache (:func:`utils.runtime.cached`), keyed by everything that changes
  the weights: the whole config, the recipe's version, torch's version, the training
  thread count and the seed offset; trained on the CPU with pinned threads, under a file
  lock, when the cache does not hold it yet.

It returns a :class:`Trained` with a *fresh* model object, so that no caller can change
the model another caller gets, and says where the model came from (``origin``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from . import checkpoints, runtime
from . import train as train_mod

__all__ = ["Recipe", "Trained", "register", "names", "recipe", "load", "check_shipped", "first_losses",
           "TRAIN_MODES"]

#: Which module registers which recipe (imported on first use, so ``load`` needs no import order).
_PROVIDERS = {
    "digits-ssl-contrastive": "utils.ssl",
    "digits-ssl-masked": "utils.ssl",
    "vae": "utils.vae",
    "feature-net": "utils.feature_net",
    "gan": "utils.gan",
    "clustergan": "utils.clustergan",
    "dec": "utils.dec",
}
_RECIPES: dict[str, Recipe] = {}


@dataclass(frozen=True)
class Recipe:
    """How to build and train one model family.

    ``build(config)`` returns an untrained model; ``train(config)`` returns
    ``(model, history)`` with ``history`` a dict of per-epoch lists of floats.
    ``train`` must be deterministic given the config (seed inside it). Raise
    ``version`` when the training code changes in a way the config does not show.
    """

    name: str
    default: Any
    build: Callable[[Any], nn.Module]
    train: Callable[[Any], tuple[nn.Module, dict[str, list[float]]]]
    summary: str
    version: int = 1
    #: the full recipe (what ``make checkpoints`` trains and ships); ``default`` is the quick one
    full: Any = None
    #: recipes whose model ``train`` loads (their origin is part of this recipe's cache key)
    depends: tuple[str, ...] = ()

    def __post_init__(self):
        if not dataclasses.is_dataclass(self.default) or isinstance(self.default, type):
            raise TypeError(f"recipe {self.name!r}: default must be a dataclass instance, "
                            f"got {type(self.default).__name__}")
        if self.full is not None and type(self.full) is not type(self.default):
            raise TypeError(f"recipe {self.name!r}: full must be a {type(self.default).__name__}, "
                            f"got {type(self.full).__name__}")
        if not type(self.default).__dataclass_params__.frozen:
            raise TypeError(f"recipe {self.name!r}: the config dataclass "
                            f"{type(self.default).__name__} must be frozen")


@dataclass(frozen=True)
class Trained:
    """A model from :func:`load`, in eval mode with frozen parameters, and how it was made."""

    model: nn.Module
    config: Any
    history: dict[str, list[float]]
    trained: bool          #: True if this call trained it (the cache was cold)
    train_seconds: float   #: how long training took when it was trained
    origin: str = "trained"  #: "shipped" (the repository's checkpoint), "cache" or "trained" (now)
    card: dict = field(default_factory=dict)  #: the shipped checkpoint's card (empty otherwise)


def register(recipe: Recipe) -> Recipe:
    """Add ``recipe`` to the registry (model modules call this at import)."""
    if not isinstance(recipe, Recipe):
        raise TypeError(f"expected a Recipe, got {type(recipe).__name__}")
    _RECIPES[recipe.name] = recipe
    return recipe


def names() -> list[str]:
    """The names :func:`load` accepts."""
    return sorted(_PROVIDERS)


def recipe(name: str) -> Recipe:
    """The registered :class:`Recipe` called ``name``."""
    if name not in _PROVIDERS:
        raise KeyError(f"no model called {name!r}; choose one of {names()}")
    if name not in _RECIPES:
        importlib.import_module(_PROVIDERS[name])
    if name not in _RECIPES:
        raise RuntimeError(f"{_PROVIDERS[name]} did not register a recipe called {name!r}")
    return _RECIPES[name]


TRAIN_MODES = ("quick", "full")


def _train_mode(train: str | None) -> str | None:
    mode = train if train is not None else (os.environ.get("TFUL_TRAIN", "").strip() or None)
    if mode is not None and mode not in TRAIN_MODES:
        source = "train" if train is not None else "$TFUL_TRAIN"
        raise ValueError(f"{source} must be one of {TRAIN_MODES} (or unset), got {mode!r}")
    return mode


def _code_hash() -> str:
    """A hash of every ``utils`` source file: the disk cache key of :func:`first_losses`."""
    h = hashlib.sha256(torch.__version__.encode())
    root = Path(__file__).resolve().parent
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:12]


def first_losses(name: str, config: Any = None, n: int = checkpoints.FIRST_STEPS) -> list[float]:
    """The losses of the first ``n`` optimiser steps of recipe ``name`` trained with today's code.

    ``config`` defaults to the recipe's full config. Runs with the book's seeds on one
    thread whatever ``$TFUL_SEED_OFFSET`` and ``$TFUL_TRAIN_THREADS`` say, and stops
    after step ``n`` (a few seconds). Results are cached on disk, keyed by a hash of
    every ``utils`` source file and torch's version.
    """
    from filelock import FileLock

    r = recipe(name)
    config = r.full if config is None else config
    key = {"recipe": name, "version": r.version, "config": _jsonable(dataclasses.asdict(config)),
           "n": n, "code": _code_hash()}
    path = runtime.cache_dir() / f"first-losses-{name}-{runtime.config_hash(key)}.json"
    with FileLock(str(path.with_suffix(".lock"))):
        if path.exists():
            stored = json.loads(path.read_text())
            runtime._log_event(name=f"{name} (first steps)", file=path.name, event="loaded",
                               waited_seconds=0.0, train_seconds=stored.get("seconds", 0.0))
            return stored["losses"]
        t0 = time.perf_counter()
        quiet = os.environ.get("TFUL_NO_PROGRESS")
        os.environ["TFUL_NO_PROGRESS"] = "1"       # a few steps: no progress bar
        try:
            with runtime.book_defaults(), train_mod.first_losses(n, stop=True) as losses:
                with runtime.training():
                    r.train(config)
        finally:
            if quiet is None:
                os.environ.pop("TFUL_NO_PROGRESS", None)
            else:
                os.environ["TFUL_NO_PROGRESS"] = quiet
        if len(losses) < n:
            raise RuntimeError(f"recipe {name!r} took only {len(losses)} optimiser steps, fewer than {n}")
        seconds = round(time.perf_counter() - t0, 3)
        path.write_text(json.dumps({"key": key, "losses": losses, "seconds": seconds}) + "\n")
        runtime._log_event(name=f"{name} (first steps)", file=path.name, event="trained",
                           waited_seconds=0.0, train_seconds=seconds)
        return losses


def _jsonable(value):
    return json.loads(json.dumps(value))


def check_shipped(name: str, *, reproduce: bool = True) -> str | None:
    """Why the shipped checkpoint ``name`` cannot be used with today's code, or ``None`` if it can.

    It can when its card names this recipe's version and full config, and (with
    ``reproduce``) when today's code gives the same first losses as the card records,
    within a relative tolerance of 1e-3 (another CPU may round differently). A
    corrupt file raises :class:`~utils.checkpoints.CheckpointError`; it is never
    passed over silently.
    """
    r = recipe(name)
    card = checkpoints.read_card(name)
    weights, _ = checkpoints.paths(name)
    if card is None:
        return f"there is no shipped {name} checkpoint ({weights} is missing)"
    if r.full is None:
        return f"the recipe {name!r} has no full config"
    if card["recipe"] != name:
        return f"the shipped {name} card names the recipe {card['recipe']!r}"
    if card["version"] != r.version:
        return (f"the shipped {name} checkpoint was made by version {card['version']} of its recipe; "
                f"the code is at version {r.version}")
    full = _jsonable(dataclasses.asdict(r.full))
    if card["config"] != full:
        changed = sorted(k for k in set(full) | set(card["config"])
                         if full.get(k) != card["config"].get(k))
        return f"the shipped {name} checkpoint was made with another full config (differs in {changed})"
    if reproduce:
        today = first_losses(name, r.full, len(card["first_losses"]))
        if not np.allclose(today, card["first_losses"], rtol=1e-3, atol=1e-6):
            return (f"the shipped {name} checkpoint was made by another version of the {_PROVIDERS[name]} "
                    f"training code (first losses {_fmt(card['first_losses'])} on its card, "
                    f"{_fmt(today)} today)")
    return None


def _fmt(values) -> str:
    return "[" + ", ".join(f"{v:.5g}" for v in values) + "]"


def _origin_key(name: str) -> str:
    """What ``models.load(name)`` returns, as a cache key: the shipped file's SHA-256, or "quick"."""
    if _train_mode(None) is None and recipe(name).full is not None and check_shipped(name) is None:
        return checkpoints.read_card(name)["sha256"]
    return f"{_train_mode(None) or 'quick'}"


def _build(r: Recipe, config, state) -> nn.Module:
    model = r.build(config)
    model.load_state_dict(state)
    model.eval().requires_grad_(False)
    return model


def load(name: str, config: Any = None, *, train: str | None = None, verbose: bool = False) -> Trained:
    """The trained model ``name``, as a :class:`Trained`.

    With no ``config`` and no ``train``, this is the **shipped** checkpoint (the full
    recipe, trained by ``make checkpoints``), verified against its card and today's code
    (:func:`check_shipped`). When it cannot be used, one line says why, and the quick
    recipe is trained into the cache instead. ``train="quick"`` or ``"full"`` (or
    ``$TFUL_TRAIN``) skips the shipped file and loads that recipe from the cache, training
    it when it is not there. ``config`` (a modified copy of ``models.recipe(name).default``,
    e.g. with another seed) is loaded from the cache or trained.

    The model is a new object on every call, in eval mode, with ``requires_grad`` off;
    call ``.requires_grad_(True)`` on it to fine-tune.
    """
    r = recipe(name)
    mode = _train_mode(train)
    if config is not None and type(config) is not type(r.default):
        raise TypeError(f"config for {name!r} must be a {type(r.default).__name__}, "
                        f"got {type(config).__name__}")
    if config is None and mode is None and r.full is not None:
        reason = check_shipped(name)
        if reason is None:
            state, card = checkpoints.read(name)
            runtime._log_event(name=name, file=checkpoints.paths(name)[0].name, event="shipped",
                               waited_seconds=0.0, train_seconds=card.get("train_seconds"))
            if verbose:
                print(f"loaded the shipped {name} checkpoint ({card.get('epochs', '?')} epochs)")
            return Trained(model=_build(r, r.full, state), config=r.full,
                           history=card.get("history", {}), trained=False,
                           train_seconds=float(card.get("train_seconds", 0.0)), origin="shipped",
                           card=card)
        print(f"{reason}; using the quick recipe instead")
    if config is None:
        config = r.full if mode == "full" else r.default
        if config is None:
            raise ValueError(f"the recipe {name!r} has no full config")

    def train_now():
        model, history = r.train(config)
        return model.state_dict(), {"history": _plain_history(history)}

    key = {"recipe": name, "version": r.version, "config": dataclasses.asdict(config)}
    if r.depends:
        key["depends"] = {d: _origin_key(d) for d in r.depends}
    entry = runtime.cached(name, key, train_now, verbose=verbose)
    return Trained(model=_build(r, config, entry.state), config=config,
                   history=entry.info.get("history", {}), trained=entry.trained,
                   train_seconds=float(entry.info.get("train_seconds", 0.0)),
                   origin="trained" if entry.trained else "cache")


def _plain_history(history: dict) -> dict[str, list[float]]:
    if not isinstance(history, dict):
        raise TypeError(f"a recipe's train() must return (model, history dict), got {type(history).__name__}")
    return {str(k): [float(v) for v in values] for k, values in history.items()}
