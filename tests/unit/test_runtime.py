import json
import multiprocessing

import numpy as np
import pytest
import torch

from utils import runtime


def test_seed_everything_is_reproducible():
    runtime.seed_everything(3)
    a = (torch.rand(3), np.random.rand(3))
    gen = runtime.seed_everything(3)
    b = (torch.rand(3), np.random.rand(3))
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert isinstance(gen, torch.Generator)


@pytest.mark.parametrize("bad", [-1, 2**32, 1.5, "0", True])
def test_seed_errors(bad):
    with pytest.raises((TypeError, ValueError)):
        runtime.seed_everything(bad)


def test_device_choice(monkeypatch):
    monkeypatch.delenv("TFUL_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert runtime.get_device().type == "cpu"
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert runtime.get_device().type == "mps"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert runtime.get_device().type == "cuda", "CUDA comes before MPS"
    monkeypatch.setenv("TFUL_DEVICE", "cpu")
    assert runtime.get_device().type == "cpu", "TFUL_DEVICE forces a device"
    monkeypatch.delenv("TFUL_DEVICE")
    assert runtime.get_device("cpu").type == "cpu"
    with pytest.raises(ValueError, match="'cuda', 'mps' or 'cpu'"):
        runtime.get_device("tpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="not available"):
        runtime.get_device("cuda")


def _native_threads() -> set[int]:
    from threadpoolctl import threadpool_info

    return {pool["num_threads"] for pool in threadpool_info()}


def test_set_threads(monkeypatch):
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    with threadpool_limits(None):  # restores the native pools afterwards
        try:
            assert runtime.set_threads(1) == 1 and torch.get_num_threads() == 1
            assert _native_threads() == {1}, "BLAS and OpenMP are pinned too"
            monkeypatch.setenv("TFUL_THREADS", "3")
            assert runtime.set_threads() == 3 and torch.get_num_threads() == 3
            monkeypatch.setenv("TFUL_THREADS", "two")
            with pytest.raises(ValueError, match="TFUL_THREADS"):
                runtime.set_threads()
            with pytest.raises(ValueError):
                runtime.set_threads(0)
        finally:
            torch.set_num_threads(before)


def test_threads_pins_and_restores():
    before, native = torch.get_num_threads(), _native_threads()
    with runtime.threads(1):
        assert torch.get_num_threads() == 1 and _native_threads() == {1}
    assert torch.get_num_threads() == before and _native_threads() == native
    with pytest.raises(ValueError, match="positive int"):
        with runtime.threads(0):
            pass


def test_training_context(monkeypatch):
    monkeypatch.delenv("TFUL_TRAIN_THREADS", raising=False)
    monkeypatch.delenv("TFUL_SEED_OFFSET", raising=False)
    with torch.no_grad(), runtime.training(5) as seed:
        assert seed == 5 and torch.is_grad_enabled() and torch.get_num_threads() == 1
    monkeypatch.setenv("TFUL_TRAIN_THREADS", "2")
    monkeypatch.setenv("TFUL_SEED_OFFSET", "10")
    with runtime.training(5) as seed:
        assert seed == 15 and torch.get_num_threads() == 2
    assert runtime.training_seed(0) == 10
    monkeypatch.setenv("TFUL_SEED_OFFSET", "x")
    with pytest.raises(ValueError, match="TFUL_SEED_OFFSET"):
        runtime.training_seed(0)


def test_recipe_key_holds_what_changes_the_weights(monkeypatch):
    monkeypatch.delenv("TFUL_SEED_OFFSET", raising=False)
    monkeypatch.delenv("TFUL_TRAIN_THREADS", raising=False)
    key = runtime.recipe_key({"lr": 1})
    assert key["torch"] == torch.__version__ and key["train_threads"] == 1 and key["seed_offset"] == 0
    monkeypatch.setenv("TFUL_TRAIN_THREADS", "4")
    assert runtime.config_hash(runtime.recipe_key({"lr": 1})) != runtime.config_hash(key)


def test_progress_flag(monkeypatch):
    monkeypatch.setenv("TFUL_NO_PROGRESS", "1")
    assert not runtime.progress_enabled()
    monkeypatch.setenv("TFUL_NO_PROGRESS", "0")
    assert runtime.progress_enabled()


def test_config_hash():
    assert runtime.config_hash({"a": 1, "b": 2}) == runtime.config_hash({"b": 2, "a": 1})
    assert runtime.config_hash({"a": 1}) != runtime.config_hash({"a": 2})
    with pytest.raises(TypeError):
        runtime.config_hash([1, 2])
    with pytest.raises(TypeError, match="JSON"):
        runtime.config_hash({"a": object()})


def test_cached_state_trains_once(tmp_path, monkeypatch):
    monkeypatch.setenv("TFUL_CACHE", str(tmp_path))
    calls = []

    def train():
        calls.append(1)
        return {"w": torch.ones(2)}

    s1 = runtime.cached_state("toy", {"lr": 1}, train, verbose=False)
    s2 = runtime.cached_state("toy", {"lr": 1}, train, verbose=False)
    assert len(calls) == 1 and torch.equal(s1["w"], s2["w"])
    runtime.cached_state("toy", {"lr": 2}, train, verbose=False)
    assert len(calls) == 2 and len(list(tmp_path.glob("toy-*.pt"))) == 2
    monkeypatch.setenv("TFUL_TRAIN_THREADS", "2")  # another recipe: trained anew, not reused
    runtime.cached_state("toy", {"lr": 1}, train, verbose=False)
    assert len(calls) == 3
    with pytest.raises(TypeError, match="state dict"):
        runtime.cached_state("bad", {}, lambda: {"w": 1}, verbose=False)
    with pytest.raises(ValueError, match="alphanumeric"):
        runtime.cached_state("../x", {}, train, verbose=False)


def test_cached_state_trains_with_gradients_inside_no_grad(tmp_path, monkeypatch):
    monkeypatch.setenv("TFUL_CACHE", str(tmp_path))

    def train():
        w = torch.ones(2, requires_grad=True)
        (w * 3).sum().backward()
        return {"grad": w.grad}

    with torch.no_grad():
        state = runtime.cached_state("needs-grad", {}, train, verbose=False)
    assert torch.equal(state["grad"], torch.full((2,), 3.0))


def test_cached_records_info_and_events(tmp_path, monkeypatch):
    monkeypatch.setenv("TFUL_CACHE", str(tmp_path))
    log = tmp_path / "events.jsonl"
    monkeypatch.setenv("TFUL_RUN_LOG", str(log))
    first = runtime.cached("info", {"a": 1}, lambda: ({"w": torch.zeros(1)}, {"history": {"loss": [2.0, 1.0]}}))
    again = runtime.cached("info", {"a": 1}, lambda: pytest.fail("trained twice"))
    assert first.trained and not again.trained
    assert again.info["history"] == {"loss": [2.0, 1.0]} and again.info["train_seconds"] >= 0
    events = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["event"] for e in events] == ["trained", "loaded"]
    with pytest.raises(TypeError, match="JSON"):
        runtime.cached("info", {"a": 2}, lambda: ({"w": torch.zeros(1)}, {"bad": object()}))


def _train_slowly_in_a_subprocess(cache: str, marker: str) -> bool:
    import os
    import time as _time

    os.environ["TFUL_CACHE"] = cache

    def train():
        with open(marker, "a") as fh:
            fh.write("x")
        _time.sleep(1.0)
        return {"w": torch.ones(1)}

    return runtime.cached("locked", {}, train).trained


def test_two_processes_train_a_model_once(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    marker = tmp_path / "trainings"
    with ctx.Pool(2) as pool:
        trained = pool.starmap(_train_slowly_in_a_subprocess, [(str(tmp_path), str(marker))] * 2)
    assert sorted(trained) == [False, True], "one process trains, the other waits and loads"
    assert marker.read_text() == "x"
