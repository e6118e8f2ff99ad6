"""Shipped checkpoints: the format, the checks that refuse a bad file, and the fallback."""

from dataclasses import dataclass, replace

import pytest
import torch
from torch import nn

from tools import checkpoints as make_tool
from utils import checkpoints, models, train


@dataclass(frozen=True)
class TinyConfig:
    epochs: int = 2
    lr: float = 0.05
    seed: int = 0


def _build(config: TinyConfig) -> nn.Module:
    return nn.Linear(4, 1)


def _train(config: TinyConfig):
    trainer = train.Trainer(train.TrainConfig(epochs=config.epochs, batch_size=8, lr=config.lr,
                                              seed=config.seed))
    model = _build(config)
    x = torch.randn(32, 4, generator=torch.Generator().manual_seed(0))
    y = x.sum(1, keepdim=True)
    history = trainer.fit(model, lambda b: ((model(b[0]) - b[1]) ** 2).mean(), (x, y))
    return model, history


def _score(name, model):
    return {"weight_norm": float(model.weight.detach().norm())}


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    monkeypatch.setenv("TFUL_CHECKPOINTS", str(tmp_path / "shipped"))
    monkeypatch.setitem(models._PROVIDERS, "tiny", __name__)
    monkeypatch.setattr("tools.recipe_search.score", _score)
    recipe = models.register(models.Recipe("tiny", TinyConfig(epochs=1), _build, _train, "a tiny model",
                                           full=TinyConfig(epochs=3)))
    yield recipe
    models._RECIPES.pop("tiny", None)


def test_make_writes_a_verified_checkpoint_that_load_returns(tiny, capsys):
    card = make_tool.make("tiny")
    weights, card_path = checkpoints.paths("tiny")
    assert weights.exists() and card_path.exists()
    assert weights.read_bytes()[:8] != b"PK\x03\x04"  # safetensors, not a torch zip
    assert card["epochs"] == 3 and len(card["history"]["loss"]) == 3
    assert len(card["first_losses"]) == checkpoints.FIRST_STEPS and card["metrics"]["weight_norm"] > 0
    for key in ("torch", "numpy", "python", "cpu", "train_threads", "seed", "train_seconds", "sha256"):
        assert key in card, key
    assert models.check_shipped("tiny") is None
    got = models.load("tiny")
    assert got.origin == "shipped" and got.config == tiny.full and not got.trained
    full_run, _ = _train(tiny.full)
    assert torch.equal(got.model.weight, full_run.weight)   # deterministic: the same weights again
    assert capsys.readouterr().out.count("quick recipe") == 0


def test_truncated_altered_or_foreign_files_raise_naming_the_file(tiny):
    make_tool.make("tiny")
    weights, card_path = checkpoints.paths("tiny")
    good = weights.read_bytes()
    weights.write_bytes(good[: len(good) // 2])
    with pytest.raises(checkpoints.CheckpointError, match=r"tiny\.safetensors.*SHA-256.*make checkpoints NAME=tiny"):
        models.load("tiny")
    # a file that matches its card but is not safetensors (a pickle, say)
    weights.write_bytes(b"\x80\x04not a safetensors file")
    card = card_path.read_text().replace(checkpoints.read_card("tiny")["sha256"], checkpoints.sha256(weights))
    card_path.write_text(card)
    with pytest.raises(checkpoints.CheckpointError, match="not a readable safetensors file"):
        models.load("tiny")
    card_path.write_text("{not json")
    with pytest.raises(checkpoints.CheckpointError, match="not valid JSON"):
        models.load("tiny")
    card_path.unlink()
    with pytest.raises(checkpoints.CheckpointError, match="has no card"):
        models.load("tiny")


def test_a_stale_checkpoint_falls_back_to_the_quick_recipe_and_says_why(tiny, monkeypatch, capsys):
    make_tool.make("tiny")
    # 1. the full config changed
    monkeypatch.setitem(models._RECIPES, "tiny", replace(tiny, full=TinyConfig(epochs=3, lr=0.02)))
    got = models.load("tiny")
    out = capsys.readouterr().out
    assert "another full config (differs in ['lr'])" in out and "quick recipe" in out
    assert got.origin == "trained" and got.config == tiny.default
    # 2. the recipe's version changed
    monkeypatch.setitem(models._RECIPES, "tiny", replace(tiny, version=2))
    assert "version 1 of its recipe; the code is at version 2" in models.check_shipped("tiny")
    # 3. the training code changed in a way that changes the weights
    def other_train(config):
        torch.manual_seed(123)
        return _train(replace(config, seed=config.seed + 1))
    monkeypatch.setitem(models._RECIPES, "tiny", replace(tiny, train=other_train))
    reason = models.check_shipped("tiny")
    assert reason is not None and "another version of the" in reason and "first losses" in reason
    # 4. no checkpoint at all
    checkpoints.paths("tiny")[0].unlink()
    checkpoints.paths("tiny")[1].unlink()
    monkeypatch.setitem(models._RECIPES, "tiny", tiny)
    assert "there is no shipped tiny checkpoint" in models.check_shipped("tiny")


def test_train_modes_skip_the_shipped_file(tiny, monkeypatch):
    make_tool.make("tiny")
    assert models.load("tiny", train="quick").config == tiny.default
    full = models.load("tiny", train="full")
    assert full.config == tiny.full and full.origin in ("trained", "cache")
    monkeypatch.setenv("TFUL_TRAIN", "quick")
    assert models.load("tiny").config == tiny.default
    monkeypatch.setenv("TFUL_TRAIN", "slow")
    with pytest.raises(ValueError, match=r"\$TFUL_TRAIN must be one of \('quick', 'full'\)"):
        models.load("tiny")
    with pytest.raises(ValueError, match="train must be one of"):
        models.load("tiny", train="fast")


def test_the_sweep_settings_do_not_change_the_shipped_model(tiny, monkeypatch):
    make_tool.make("tiny")
    monkeypatch.setenv("TFUL_SEED_OFFSET", "2")
    monkeypatch.setenv("TFUL_TRAIN_THREADS", "2")
    assert models.load("tiny").origin == "shipped"


def test_first_losses_stops_after_n_steps():
    calls = []
    with train.first_losses(3, stop=True) as losses:
        _train(TinyConfig(epochs=50))
        calls.append("not reached")                     # training stopped after step 3
    with train.first_losses(3) as whole_run:            # without stop: the run goes on to the end
        _, history = _train(TinyConfig(epochs=50))
    assert calls == [] and len(history["loss"]) == 50
    assert len(losses) == 3 and losses == whole_run
    with pytest.raises(ValueError, match="positive int"):
        with train.first_losses(0):
            pass


# --------------------------------------------------------------------------- the shipped files
SHIPPED = make_tool.shipped_names()


def test_every_full_recipe_is_shipped_and_all_fit_in_20_mb():
    missing = [n for n in SHIPPED if not checkpoints.paths(n)[0].exists()]
    assert not missing, f"no shipped checkpoint for {missing}; run `make checkpoints NAME=<name>`"
    total = sum(checkpoints.paths(n)[0].stat().st_size for n in SHIPPED)
    assert total <= 20e6, f"the shipped checkpoints take {total / 1e6:.1f} MB, more than 20 MB"


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_card_matches_todays_recipe(name):
    reason = models.check_shipped(name, reproduce=False)
    assert reason is None, f"{reason}; run `make checkpoints NAME={name}`"
    state, card = checkpoints.read(name)       # the SHA-256 matches and the file is safetensors
    model = models.recipe(name).build(models.recipe(name).full)
    model.load_state_dict(state)               # every tensor, no more, no fewer
    assert card["train_threads"] == 1 and card["metrics"] and card["history"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_checkpoint_comes_from_todays_code(name, tmp_path, monkeypatch):
    """Re-train the first steps of the full recipe and compare the losses with the card's."""
    monkeypatch.setenv("TFUL_CACHE", str(tmp_path))      # compute them now, not from a cache
    reason = models.check_shipped(name)
    assert reason is None, f"{reason}; run `make checkpoints NAME={name}`"
