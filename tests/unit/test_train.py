import pytest
import torch
from torch import nn

from utils import train


def test_fit_reduces_loss_and_logs_history():
    torch.manual_seed(0)
    x = torch.randn(256, 3)
    y = x @ torch.tensor([1.0, -2.0, 0.5]) + 0.3
    model = nn.Linear(3, 1)

    def loss_fn(m, batch):
        xb, yb = batch
        loss = (m(xb).squeeze(-1) - yb).pow(2).mean()
        return loss, {"mse": loss.item()}

    hist = train.fit(model, loss_fn, (x, y), epochs=30, batch_size=64, lr=0.05,
                     callback=lambda epoch: {"epoch": epoch})
    assert len(hist["loss"]) == 30 and len(hist["mse"]) == 30 and hist["epoch"][-1] == 29
    assert hist["loss"][-1] < 0.01 * hist["loss"][0]
    assert not model.training


def test_fit_stops_on_nan_loss():
    model = nn.Linear(2, 1)
    with pytest.raises(FloatingPointError, match="epoch 0, step 0"):
        train.fit(model, lambda m, b: m(b).sum() * float("nan"), torch.randn(8, 2), epochs=1)


def test_fit_input_errors():
    model = nn.Linear(2, 1)
    loss = lambda m, b: m(b).sum()  # noqa: E731
    with pytest.raises(ValueError, match="NaN"):
        train.fit(model, loss, torch.tensor([[float("nan"), 0.0]]), epochs=1)
    with pytest.raises(ValueError, match="non-empty"):
        train.fit(model, loss, torch.zeros(0, 2), epochs=1)
    with pytest.raises(ValueError, match="differ in length"):
        train.fit(model, loss, (torch.zeros(3, 2), torch.zeros(2)), epochs=1)
    with pytest.raises(ValueError, match="epochs"):
        train.fit(model, loss, torch.zeros(3, 2), epochs=0)
    with pytest.raises(ValueError, match="scheduler"):
        train.fit(model, loss, torch.zeros(3, 2), epochs=1, scheduler="step")


def test_check_finite_and_batches():
    assert train.check_finite(torch.tensor(2.0), "x") == 2.0
    with pytest.raises(FloatingPointError, match="at here"):
        train.check_finite(float("inf"), "here")
    idx = train.batches(10, 4, generator=torch.Generator().manual_seed(0))
    assert [len(b) for b in idx] == [4, 4, 2]
    assert sorted(torch.cat(idx).tolist()) == list(range(10))
    with pytest.raises(ValueError):
        train.batches(0, 4)


def test_progress_is_plain_iterable_when_disabled(monkeypatch):
    monkeypatch.setenv("TFUL_NO_PROGRESS", "1")
    items = [1, 2]
    assert train.progress(items) is items
