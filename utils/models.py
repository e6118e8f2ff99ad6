"""One way to get a trained model: ``models.load(name, config=None)``.

Later chapters reuse models trained in earlier ones (the self-supervised digit
encoder, the Transformer-VAE, the GANs, the feature network behind FID). Each
model family registers a :class:`Recipe` here: a frozen dataclass config, a
function that builds an untrained model from it, and a function that trains one.
:func:`load` then

* looks the model up in the checkpoint cache (:func:`utils.runtime.cached`), keyed
  by everything that changes the weights: the whole config, the recipe's version,
  torch's version, the training thread count and the seed offset;
* or trains it on the CPU with pinned threads, under a file lock, so that two
  notebooks asking at the same moment train it once;
* and returns a :class:`Trained` with a *fresh* model object, so that no caller
  can change the model another caller gets.

Cached models always train on the CPU, whatever device is present: the same
config then gives the same weights on every machine.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from . import runtime

__all__ = ["Recipe", "Trained", "register", "names", "recipe", "load"]

#: Which module registers which recipe (imported on first use, so ``load`` needs no import order).
_PROVIDERS = {
    "digits-ssl-contrastive": "utils.ssl",
    "digits-ssl-masked": "utils.ssl",
    "vae": "utils.vae",
    "feature-net": "utils.feature_net",
    "gan": "utils.gan",
    "clustergan": "utils.clustergan",
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

    def __post_init__(self):
        if not dataclasses.is_dataclass(self.default) or isinstance(self.default, type):
            raise TypeError(f"recipe {self.name!r}: default must be a dataclass instance, "
                            f"got {type(self.default).__name__}")
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


def load(name: str, config: Any = None, *, verbose: bool = False) -> Trained:
    """The trained model ``name`` (from the cache, or trained now), as a :class:`Trained`.

    ``config`` defaults to the recipe's own; pass a modified copy
    (``dataclasses.replace(models.recipe(name).default, seed=1)``) for a variant.
    The model is a new object on every call, in eval mode, with
    ``requires_grad`` off; call ``.requires_grad_(True)`` on it to fine-tune.
    """
    r = recipe(name)
    config = r.default if config is None else config
    if type(config) is not type(r.default):
        raise TypeError(f"config for {name!r} must be a {type(r.default).__name__}, "
                        f"got {type(config).__name__}")

    def train():
        model, history = r.train(config)
        return model.state_dict(), {"history": _plain_history(history)}

    key = {"recipe": name, "version": r.version, "config": dataclasses.asdict(config)}
    entry = runtime.cached(name, key, train, verbose=verbose)
    model = r.build(config)
    model.load_state_dict(entry.state)
    model.eval().requires_grad_(False)
    return Trained(model=model, config=config, history=entry.info.get("history", {}),
                   trained=entry.trained, train_seconds=float(entry.info.get("train_seconds", 0.0)))


def _plain_history(history: dict) -> dict[str, list[float]]:
    if not isinstance(history, dict):
        raise TypeError(f"a recipe's train() must return (model, history dict), got {type(history).__name__}")
    return {str(k): [float(v) for v in values] for k, values in history.items()}
