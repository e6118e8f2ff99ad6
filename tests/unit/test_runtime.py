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
    assert runtime.get_device().type in ("cuda", "mps", "cpu")
    assert runtime.get_device("cpu").type == "cpu"
    with pytest.raises(ValueError, match="'cuda', 'mps' or 'cpu'"):
        runtime.get_device("tpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="not available"):
        runtime.get_device("cuda")


def test_set_threads():
    before = torch.get_num_threads()
    try:
        assert runtime.set_threads(1) == 1 and torch.get_num_threads() == 1
        with pytest.raises(ValueError):
            runtime.set_threads(0)
    finally:
        torch.set_num_threads(before)


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
