from dataclasses import dataclass, replace

import pytest
import torch
from torch import nn

from utils import models, runtime


@dataclass(frozen=True)
class ToyConfig:
    width: int = 3
    seed: int = 0


def _build(config: ToyConfig) -> nn.Module:
    return nn.Linear(config.width, 1)


def _train(config: ToyConfig):
    torch.manual_seed(runtime.training_seed(config.seed))
    model = _build(config)
    assert torch.is_grad_enabled() and torch.get_num_threads() == runtime.train_threads()
    return model, {"loss": [1.0, 0.5]}


@pytest.fixture
def toy(tmp_path, monkeypatch):
    monkeypatch.setenv("TFUL_CACHE", str(tmp_path))
    monkeypatch.setitem(models._PROVIDERS, "toy", __name__)
    recipe = models.register(models.Recipe("toy", ToyConfig(), _build, _train, "a toy model"))
    yield recipe
    models._RECIPES.pop("toy", None)


def test_load_trains_once_and_returns_fresh_frozen_models(toy):
    with torch.no_grad():
        first = models.load("toy")
    second = models.load("toy")
    assert first.trained and not second.trained
    assert first.history == second.history == {"loss": [1.0, 0.5]}
    assert first.model is not second.model
    assert torch.equal(first.model.weight, second.model.weight)
    assert not first.model.training and not any(p.requires_grad for p in first.model.parameters())
    with torch.no_grad():
        first.model.weight.zero_()  # one caller's change does not reach the next
    assert not torch.equal(models.load("toy").model.weight, first.model.weight)


def test_config_changes_the_key(toy):
    a = models.load("toy")
    b = models.load("toy", replace(toy.default, seed=1))
    assert b.trained and not torch.equal(a.model.weight, b.model.weight)


def test_load_errors(toy):
    with pytest.raises(KeyError, match="no model called 'nope'"):
        models.load("nope")
    with pytest.raises(TypeError, match="must be a ToyConfig"):
        models.load("toy", {"width": 3})
    with pytest.raises(TypeError, match="frozen"):
        @dataclass
        class Mutable:
            x: int = 0

        models.Recipe("m", Mutable(), _build, _train, "")
    with pytest.raises(TypeError, match="dataclass instance"):
        models.Recipe("m", ToyConfig, _build, _train, "")


def test_every_provider_registers_its_recipe():
    for name in models.names():
        recipe = models.recipe(name)
        assert recipe.name == name and recipe.summary
