import pytest
import torch
from torch import nn

from utils import train
from utils.train import TrainConfig, Trainer


def _regression():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(100, 3, generator=g)
    y = x @ torch.tensor([1.0, -2.0, 0.5]) + 0.3
    return x, y


def _fit(config, *, on_step=None, on_epoch=None):
    x, y = _regression()
    trainer = Trainer(config)
    model = nn.Linear(3, 1)

    def loss_fn(batch):
        xb, yb = batch
        loss = (model(xb).squeeze(-1) - yb).pow(2).mean()
        return loss, {"mse": loss.item()}

    hist = trainer.fit(model, loss_fn, (x, y), on_step=on_step, on_epoch=on_epoch)
    return model, hist, trainer


def test_fit_reduces_loss_and_logs_one_value_per_epoch():
    steps = []
    model, hist, trainer = _fit(
        TrainConfig(epochs=30, batch_size=32, lr=0.05),
        on_step=lambda t, loss: steps.append((t.epoch, t.step, loss)),
        on_epoch=lambda t: {"epoch": t.epoch})
    assert set(hist) == {"loss", "mse", "epoch"}
    assert all(len(v) == 30 for v in hist.values()) and hist["epoch"][-1] == 29
    assert all(isinstance(v, float) for v in hist["loss"])
    assert hist["loss"][-1] < 0.01 * hist["loss"][0]
    assert len(steps) == 30 * 4 and steps[:2] == [(0, 0, steps[0][2]), (0, 1, steps[1][2])]
    assert trainer.steps_per_epoch == 4 and trainer.global_step == 120
    assert not model.training


def test_drop_last_drops_the_ragged_batch():
    sizes = []
    x = torch.randn(10, 2)
    trainer = Trainer(TrainConfig(epochs=2, batch_size=4, drop_last=True))
    model = nn.Linear(2, 1)
    trainer.fit(model, lambda b: sizes.append(len(b)) or model(b).pow(2).mean(), x)
    assert sizes == [4, 4, 4, 4] and trainer.steps_per_epoch == 2
    sizes.clear()
    Trainer(TrainConfig(epochs=1, batch_size=4)).fit(
        model, lambda b: sizes.append(len(b)) or model(b).pow(2).mean(), x)
    assert sizes == [4, 4, 2]


def test_nan_guard_names_epoch_and_step():
    model = nn.Linear(2, 1)
    calls = []

    def loss_fn(b):
        calls.append(1)
        loss = model(b).pow(2).mean()
        return loss * float("nan") if len(calls) == 6 else loss   # 4 steps an epoch

    with pytest.raises(FloatingPointError, match="epoch 1, step 1"):
        Trainer(TrainConfig(epochs=3, batch_size=2)).fit(model, loss_fn, torch.randn(8, 2))


def test_lr_factor_values():
    f = [train.lr_factor(s, 10, 2) for s in range(10)]
    assert f[:3] == [0.5, 1.0, 1.0]
    assert f[2 + 4] == pytest.approx(0.5)                     # half-way through the cosine
    assert all(a >= b for a, b in zip(f[1:], f[2:], strict=False))  # decreasing after warm-up
    assert train.lr_factor(10, 10, 2) == pytest.approx(0.0, abs=1e-12)
    assert train.lr_factor(0, 10, 0) == 1.0
    assert train.lr_factor(7, 10, 3, "constant") == 1.0
    with pytest.raises(ValueError, match="schedule"):
        train.lr_factor(0, 10, 0, "step")


def test_optimizer_sees_the_scheduled_learning_rate(monkeypatch):
    seen = []
    x = torch.randn(12, 2)
    trainer = Trainer(TrainConfig(epochs=2, batch_size=4, lr=0.1, warmup_epochs=1))
    model = nn.Linear(2, 1)
    opt_lrs = []

    def loss_fn(b):
        return model(b).pow(2).mean()

    def on_step(t, loss):
        seen.append(t.global_step)

    orig = torch.optim.AdamW.step

    def spy(self, *a, **k):                                   # the lr each step really uses
        opt_lrs.append(self.param_groups[0]["lr"])
        return orig(self, *a, **k)

    monkeypatch.setattr(torch.optim.AdamW, "step", spy)
    trainer.fit(model, loss_fn, x, on_step=on_step)
    want = [0.1 * train.lr_factor(s, 6, 3) for s in range(6)]
    assert opt_lrs == pytest.approx(want) and seen == list(range(1, 7))


def test_no_decay_groups_and_explicit_groups():
    model = nn.Sequential(nn.Linear(2, 3), nn.LayerNorm(3))
    t = Trainer(TrainConfig(epochs=1, weight_decay=0.1, no_decay_bias_norm=True))
    groups = t._param_groups(model, None)
    assert [g["weight_decay"] for g in groups] == [0.1, 0.0]
    assert [len(g["params"]) for g in groups] == [1, 3]       # Linear weight | bias, LN w, LN b
    custom = t._param_groups(model, [{"params": list(model[0].parameters()), "lr": 0.5}])
    assert custom[0]["lr"] == 0.5 and custom[0]["weight_decay"] == 0.1


def test_grad_clip_bounds_the_gradient_norm(monkeypatch):
    model = nn.Linear(2, 1, bias=False)
    torch.nn.init.zeros_(model.weight)
    grads = []

    def loss_fn(b):
        return 1e6 * model(b).sum()

    orig = torch.optim.AdamW.step

    def spy(self, *a, **k):
        grads.append(float(model.weight.grad.norm()))
        return orig(self, *a, **k)

    monkeypatch.setattr(torch.optim.AdamW, "step", spy)
    Trainer(TrainConfig(epochs=1, batch_size=4, grad_clip=0.5)).fit(model, loss_fn, torch.ones(4, 2))
    assert grads == [pytest.approx(0.5)]


def test_training_runs_on_pinned_threads_with_gradients(monkeypatch):
    monkeypatch.setenv("TFUL_TRAIN_THREADS", "1")
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    seen = []
    model = nn.Linear(2, 1)

    def loss_fn(b):
        seen.append((torch.get_num_threads(), torch.is_grad_enabled()))
        return model(b).pow(2).mean()

    try:
        with torch.no_grad():
            Trainer(TrainConfig(epochs=1, batch_size=4)).fit(model, loss_fn, torch.randn(8, 2))
        assert seen == [(1, True), (1, True)]
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(old)


def _weights(seed=0):
    model, _, _ = _fit(TrainConfig(epochs=2, batch_size=16, lr=0.01, seed=seed))
    return [p.detach().clone() for p in model.parameters()]


def test_same_seed_same_weights_and_the_offset_shifts_every_seed(monkeypatch):
    monkeypatch.delenv("TFUL_SEED_OFFSET", raising=False)
    a, b = _weights(), _weights()
    assert all(torch.equal(p, q) for p, q in zip(a, b, strict=True))
    monkeypatch.setenv("TFUL_SEED_OFFSET", "1")
    shifted = _weights()
    assert not all(torch.equal(p, q) for p, q in zip(a, shifted, strict=True))
    monkeypatch.delenv("TFUL_SEED_OFFSET")
    assert all(torch.equal(p, q) for p, q in zip(shifted, _weights(seed=1), strict=True))


def test_input_errors():
    model = nn.Linear(2, 1)
    t = Trainer(TrainConfig(epochs=1))
    loss = lambda b: model(b).sum()  # noqa: E731
    with pytest.raises(ValueError, match="non-empty"):
        t.fit(model, loss, torch.zeros(0, 2))
    with pytest.raises(ValueError, match="differ in length"):
        t.fit(model, loss, (torch.zeros(3, 2), torch.zeros(2)))
    with pytest.raises(ValueError, match="drop_last"):
        Trainer(TrainConfig(epochs=1, batch_size=8, drop_last=True)).fit(model, loss,
                                                                        torch.zeros(3, 2))
    with pytest.raises(ValueError, match="epochs"):
        TrainConfig(epochs=0)
    with pytest.raises(ValueError, match="schedule"):
        TrainConfig(epochs=1, schedule="step")
    with pytest.raises(TypeError, match="TrainConfig"):
        Trainer({"epochs": 1})
    with pytest.raises(Exception, match="cannot assign"):
        TrainConfig(epochs=1).epochs = 2                       # frozen


def test_check_finite():
    assert train.check_finite(torch.tensor(2.0), "x") == 2.0
    with pytest.raises(FloatingPointError, match="at here"):
        train.check_finite(float("inf"), "here")


def test_progress_is_plain_iterable_when_disabled(monkeypatch):
    monkeypatch.setenv("TFUL_NO_PROGRESS", "1")
    items = [1, 2]
    assert train.progress(items) is items
