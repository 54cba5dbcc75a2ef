"""Losses and the shared training loop (models/neural/training.py), and how ``fit`` drives
it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from funnelprint.models import make_model
from funnelprint.models.neural.batching import training_windows
from funnelprint.models.neural.training import TrainConfig, sequence_loss, train


@pytest.mark.parametrize("loss", ["ce", "sampled", "bce"])
def test_sequence_losses_ignore_padding_and_reward_the_target(loss):
    table = torch.randn(11, 8)  # row 0 = padding, items 0..9 at rows 1..10
    targets = torch.tensor([[0, 3, 7]])
    config = TrainConfig(loss=loss, negatives=64, bce_negatives=8)
    toward = table[targets.clamp_min(1)] * 5.0  # hidden state pointing at each target
    away = -toward
    generator = torch.Generator().manual_seed(0)
    good = sequence_loss(toward.clone(), targets, table, 10, config, generator)
    bad = sequence_loss(away.clone(), targets, table, 10, config, generator)
    assert torch.isfinite(good) and good < bad
    garbage = toward.clone()
    garbage[0, 0] = float("nan")  # a padding position must not reach the loss
    assert torch.isfinite(sequence_loss(garbage, targets, table, 10, config, generator))


def test_bce_does_not_count_a_negative_that_is_the_target():
    # One item: every sampled negative is the target, so only the positive term remains.
    table = torch.randn(2, 8)
    hidden = table[[1, 1]].unsqueeze(0)
    targets = torch.tensor([[1, 1]])
    loss = sequence_loss(hidden, targets, table, 1, TrainConfig(loss="bce", bce_negatives=4))
    positive = torch.nn.functional.softplus(-(hidden[0] * table[1]).sum(-1)).mean()
    assert torch.isclose(loss, positive)


@pytest.mark.parametrize("loss", ["ce", "sampled", "bce"])
def test_position_weighting_makes_a_batch_loss_grow_with_its_positions(loss):
    # The same position repeated: averaged within the batch the loss is unchanged, with a
    # fixed positions-per-batch it is proportional to the number of positions.
    table = torch.randn(11, 8)
    hidden = table[[4]].unsqueeze(0) * 3.0

    def batch_loss(copies: int, per_batch: float | None) -> torch.Tensor:
        config = TrainConfig(loss=loss, negatives=64, bce_negatives=512,
                             positions_per_batch=per_batch)
        generator = torch.Generator().manual_seed(0)
        return sequence_loss(hidden.expand(1, copies, 8), torch.full((1, copies), 4), table,
                             10, config, generator)

    one, four = batch_loss(1, 2.0), batch_loss(4, 2.0)
    assert torch.isclose(four, 4 * one, rtol=0.1)
    assert torch.isclose(batch_loss(4, None), batch_loss(1, None), rtol=0.1)


def test_fit_sets_positions_per_batch_from_the_training_targets(cyclic_split, monkeypatch):
    model = make_model("sasrec", maxlen=10, dim=16, negatives=8, epochs=1, batch_size=32,
                       progress=False, time_budget_s=None)
    captured = {}
    original = type(model).batch_loss

    def spy(self, batch, config, generator):
        captured["per_batch"] = config.positions_per_batch
        return original(self, batch, config, generator)

    monkeypatch.setattr(type(model), "batch_loss", spy)
    model.fit(cyclic_split.train)
    windows = training_windows(cyclic_split.train.sequences, model.config.maxlen)
    rows = windows["targets"].shape[0]
    expected = (windows["targets"] > 0).sum() / -(-rows // 32)
    assert captured["per_batch"] == pytest.approx(expected)


@pytest.mark.parametrize("min_steps, epochs_run", [(0, 3), (8, 9)])
def test_no_early_stop_during_warm_up(min_steps, epochs_run):
    model = torch.nn.Linear(2, 1)
    scores = iter(np.linspace(1.0, 0.0, 20))  # validation only ever gets worse

    def step_loss(batch):
        return model(batch[0]).pow(2).mean()

    config = TrainConfig(epochs=10, patience=2, lr_decay=0.5, min_steps=min_steps,
                         progress=False)
    result = train(model, lambda rng: [(torch.ones(4, 2),)], step_loss,
                   lambda: float(next(scores)), config, seed=0, name="t")
    assert len(result["epochs"]) == epochs_run and result["best_epoch"] == 1


@pytest.mark.parametrize("ema_decay", [0.0, 0.3, 0.9])
def test_validation_scores_and_keeps_the_moving_average_of_the_weights(ema_decay):
    # A constant gradient moves Adam by lr per step: w_t = lr * t (weight decay off).
    model = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.zeros_(model.weight)
    seen = []
    lr, steps_per_epoch, epochs = 0.01, 3, 2

    def validate():
        seen.append(model.weight.item())
        return float(len(seen))  # every validation improves: the last one is kept

    config = TrainConfig(epochs=epochs, lr=lr, ema_decay=ema_decay, progress=False)
    train(model, lambda rng: [(None,)] * steps_per_epoch, lambda batch: -model.weight.sum(),
          validate, config, seed=0, name="t")
    weights = lr * np.arange(1, steps_per_epoch * epochs + 1)
    average = np.zeros(weights.size + 1)
    for t, w in enumerate(weights, start=1):
        decay = min(ema_decay, t / (9 + t))  # warm-up: (1 + steps before) / (10 + steps before)
        average[t] = decay * average[t - 1] + (1 - decay) * w
    expected = average[[steps_per_epoch, -1]]
    # training went on from the raw weights between validations
    assert seen == pytest.approx(expected, abs=1e-5)
    assert model.weight.item() == pytest.approx(expected[-1], abs=1e-5)


def test_fit_calls_the_validator_with_the_model_and_reports_the_best_epoch(cyclic_split):
    model = make_model("sasrec", maxlen=8, dim=16, epochs=4, eval_every=2, min_steps=0,
                       progress=False, time_budget_s=None)
    calls = []

    def valid(fitted):
        assert fitted is model
        calls.append(fitted.score(cyclic_split.valid.history.select(np.arange(3))).shape)
        return [0.2, 0.1][len(calls) - 1]

    model.fit(cyclic_split.train, valid)
    assert calls == [(3, cyclic_split.train.n_items)] * 2
    report = model.fit_report_
    assert report["best_epoch"] == 2 and report["best_valid"] == 0.2
    assert [e.get("valid") for e in report["epochs"]] == [None, 0.2, None, 0.1]
    assert report["train_seconds"] >= 0.0


def test_fit_without_a_validator_reports_no_selection(cyclic_split):
    model = make_model("gru4rec", maxlen=8, dim=16, epochs=2, progress=False,
                       time_budget_s=None).fit(cyclic_split.train)
    assert set(model.fit_report_) == {"epochs", "train_seconds"}
    assert len(model.fit_report_["epochs"]) == 2
