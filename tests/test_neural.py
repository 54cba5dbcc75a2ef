from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch

from funnelprint.data.dataset import Dataset
from funnelprint.data.sequences import Sequences
from funnelprint.evaluate.splits import loo_split
from funnelprint.models import make_model
from funnelprint.models.neural.batching import last_window, length_batches, training_windows
from funnelprint.models.neural.layers import dropout, init_embedding
from funnelprint.models.neural.sasrec import SASRecNet
from funnelprint.models.neural.training import TrainConfig, sequence_loss, train


def cyclic_dataset(customers: int = 80, items: int = 12) -> Dataset:
    """Each customer walks the catalogue in order from a random start: next item = item + 1."""
    rng = np.random.default_rng(0)
    rows = []
    for c in range(customers):
        start = int(rng.integers(0, items))
        for t in range(int(rng.integers(4, 10))):
            rows.append((f"c{c}", f"i{(start + t) % items}", t))
    frame = pl.DataFrame({"customer_id": [r[0] for r in rows], "item_id": [r[1] for r in rows],
                          "action": ["view"] * len(rows), "time": [r[2] for r in rows]})
    return Dataset.from_frame(frame)


def test_windows_are_right_aligned_and_shifted():
    seq = Sequences(np.array([0, 3, 4]), np.array([5, 6, 7, 8]), np.zeros(4, np.int8),
                    np.zeros(4, np.int64))
    assert last_window(seq, 4).tolist() == [[0, 6, 7, 8], [0, 0, 0, 9]]
    assert last_window(seq, 2).tolist() == [[7, 8], [0, 9]]
    arrays = training_windows(seq, 3)
    assert arrays["items"].tolist() == [[0, 6, 7]] and arrays["targets"].tolist() == [[0, 7, 8]]


def test_length_batches_cover_every_row_once():
    lengths = np.array([1, 5, 2, 5, 3])
    data = np.arange(25).reshape(5, 5)
    batches = length_batches([data], lengths, 2, np.random.default_rng(0))
    firsts = sorted(int(b[0][r, -1]) for b in batches for r in range(b[0].shape[0]))
    assert firsts == [4, 9, 14, 19, 24]
    assert all(b[0].shape[1] == lengths[(data[:, -1][:, None] == b[0][:, -1]).argmax(0)].max()
               for b in batches)


def test_eval_mode_scores_are_finite_with_padding():
    net = SASRecNet(n_items=20, maxlen=8, dim=16, blocks=2, heads=2)
    net.eval()
    inputs = torch.tensor([[0, 0, 0, 0, 0, 1, 2, 3], [0, 0, 0, 0, 0, 0, 0, 4]])
    with torch.no_grad():
        hidden, weights = net(inputs, return_weights=True)
    assert torch.isfinite(hidden).all()
    # no attention from a real position to padding, none to the future
    assert float(weights[0][0, 0, 7, :5].sum()) == 0.0
    assert float(weights[0][0, 0, 5, 6:].sum()) == 0.0


def test_trimmed_and_full_windows_agree():
    net = SASRecNet(n_items=20, maxlen=8, dim=16, blocks=2, heads=2)
    net.eval()
    full = torch.tensor([[0, 0, 0, 0, 0, 1, 2, 3]])
    with torch.no_grad():
        a = net(full)[0][:, -1]
        b = net(full[:, -3:])[0][:, -1]
    assert torch.allclose(a, b, atol=1e-5)


def test_explicit_and_fused_attention_agree_in_eval_mode():
    net = SASRecNet(n_items=20, maxlen=8, dim=16, blocks=2, heads=2, dropout=0.5)
    net.eval()
    inputs = torch.tensor([[0, 0, 0, 4, 5, 1, 2, 3]])
    with torch.no_grad():
        fused = net(inputs)[0]
        explicit = net(inputs, return_weights=True)[0]
    assert torch.allclose(fused, explicit, atol=1e-5)


def test_item_embeddings_start_small_for_large_catalogues_with_a_zero_padding_row():
    torch.manual_seed(0)
    small, large = (torch.nn.Embedding(n, 64, padding_idx=0) for n in (100, 20_000))
    for table in (small, large):
        init_embedding(table)
        assert torch.all(table.weight[0] == 0)
    # Rarely trained rows of a big catalogue must start near zero (std ~ sqrt(2 / rows)).
    assert large.weight[1:].std() < 0.02 < small.weight[1:].std()


def test_dropout_keeps_the_expectation_and_is_off_in_eval():
    torch.manual_seed(0)
    x = torch.ones(200_000)
    dropped = dropout(x, 0.3, training=True)
    assert abs(float((dropped == 0).float().mean()) - 0.3) < 0.01
    assert abs(float(dropped.mean()) - 1.0) < 0.01
    assert torch.equal(dropout(x, 0.3, training=False), x)


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


def test_fit_sets_positions_per_batch_from_the_training_targets(cyclic_split):
    model = make_model("sasrec", epochs=1, batch_size=32, progress=False, time_budget_s=None)
    captured = {}
    original = model.batch_loss

    def spy(batch, config, generator):
        captured["per_batch"] = config.positions_per_batch
        return original(batch, config, generator)

    model.batch_loss = spy
    model.fit(cyclic_split.train)
    windows = training_windows(cyclic_split.train.sequences, model.maxlen)
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


@pytest.mark.parametrize("ema_decay", [0.0, 0.9])
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
        average[t] = ema_decay * average[t - 1] + (1 - ema_decay) * w
    expected = average[[steps_per_epoch, -1]]
    # training went on from the raw weights between validations
    assert seen == pytest.approx(expected, abs=1e-5)
    assert model.weight.item() == pytest.approx(expected[-1], abs=1e-5)


def test_training_windows_carry_actions_gaps_and_target_actions():
    minute = 60_000_000
    seq = Sequences(np.array([0, 4]), np.array([5, 6, 7, 8]), np.array([0, 1, 3, 0], np.int8),
                    np.array([0, 30 * 1_000_000, 10 * minute, 3 * 86_400_000_000]))
    arrays = training_windows(seq, 4, ("items", "actions", "gaps"))
    assert arrays["items"].tolist() == [[0, 6, 7, 8]]
    assert arrays["actions"].tolist() == [[0, 1, 2, 4]]  # shifted by one, 0 = padding
    # first event, then 30 s (< 1 min), then ~10 min (< 30 min): buckets 0, 1, 3 (+1 shift)
    assert arrays["gaps"].tolist() == [[0, 1, 2, 4]]
    assert arrays["targets"].tolist() == [[0, 7, 8, 9]]
    assert arrays["target_actions"].tolist() == [[0, 2, 4, 1]]


def test_next_purchase_targets_look_ahead_within_the_customer():
    from funnelprint.models.neural.models import next_action_items

    seq = Sequences(np.array([0, 4, 6]), np.array([1, 2, 3, 4, 5, 6]),
                    np.array([0, 3, 0, 0, 0, 3], np.int8), np.zeros(6, np.int64))
    assert next_action_items(seq, 3).tolist() == [2, -1, -1, -1, 6, -1]


def test_gru_ignores_left_padding():
    from funnelprint.models.neural.gru import GRUNet

    net = GRUNet(n_items=20, dim=16)
    net.eval()
    with torch.no_grad():
        short = net(torch.tensor([[3, 4, 5]]))[0][:, -1]
        padded = net(torch.tensor([[0, 0, 0, 3, 4, 5]]))[0][:, -1]
    assert torch.allclose(short, padded, atol=1e-6)


@pytest.mark.parametrize("loss", ["ce", "bce", "sampled"])
def test_sasrec_learns_a_simple_sequence(loss):
    data = cyclic_dataset()
    split = loo_split(data)
    model = make_model("sasrec", maxlen=10, dim=32, epochs=30, eval_every=5, patience=10,
                       loss=loss, negatives=8, lr=5e-3, progress=False, dropout=0.0)
    model.fit(split.train, valid=split.valid)
    losses = [e["loss"] for e in model.training_["epochs"]]
    assert losses[-1] < losses[0]
    scores = model.score(split.test.history.select(np.arange(20)))
    assert np.isfinite(scores).all()
    top = scores.argmax(axis=1)
    assert (top == split.test.target_items[:20]).mean() > 0.5  # chance: 1 in 12
    items, _ = model.recommend(np.arange(5), k=3)
    assert ((items >= 0) & (items < data.n_items)).all()


FAST = dict(maxlen=10, dim=32, epochs=25, eval_every=5, patience=10, negatives=8, lr=5e-3,
            progress=False, dropout=0.0)


@pytest.fixture(scope="module")
def cyclic_split():
    return loo_split(cyclic_dataset())


@pytest.mark.parametrize("key", ["bert4rec", "gru4rec", "funnelformer", "bst"])
def test_each_sequential_model_learns_and_returns_valid_items(key, cyclic_split):
    from funnelprint.evaluate.protocol import Protocol, evaluate_model

    model = make_model(key, **FAST)
    model.fit(cyclic_split.train, valid=cyclic_split.valid)
    losses = [e["loss"] for e in model.training_["epochs"]]
    assert losses[-1] < 0.8 * losses[0]
    history = cyclic_split.test.history.select(np.arange(20))
    scores = model.score(history)
    assert scores.shape == (20, cyclic_split.train.n_items)
    assert np.isfinite(scores).all()
    items, _ = model.recommend(np.arange(5), k=3)
    assert ((items >= 0) & (items < cyclic_split.train.n_items)).all()
    # the next item is fully determined: a trained model must find it far above chance (1/12)
    result = evaluate_model(model, cyclic_split.test, cyclic_split.train,
                            Protocol.parse("loo-full"), ks=(1,))
    assert result["HR@1"] > 0.5


def test_explanations_are_distributions_over_the_window(cyclic_split):
    model = make_model("sasrec", **FAST).fit(cyclic_split.train, valid=cyclic_split.valid)
    history = cyclic_split.test.history.select(np.array([0]))
    weights = model.explain(history, np.array([0, 1, 2]))
    assert weights.shape == (3, min(history.lengths[0], 10))
    assert np.allclose(weights.sum(axis=1), 1.0) and (weights >= 0).all()
    gru = make_model("gru4rec", **FAST).fit(cyclic_split.train, valid=cyclic_split.valid)
    grads = gru.explain(history, np.array([0, 5]))
    assert np.allclose(grads.sum(axis=1), 1.0)
    assert not np.allclose(grads[0], grads[1])  # gradient attribution depends on the item


def test_bst_reranks_the_generator_candidates(cyclic_split):
    model = make_model("bst", n_candidates=4, **FAST)
    model.fit(cyclic_split.train, valid=cyclic_split.valid)
    history = cyclic_split.test.history.select(np.arange(6))
    scores = model.score(history)
    # exactly n_candidates items per row get a probability in (0, 1); the rest stay below 0
    assert ((scores > 0).sum(axis=1) == 4).all() and (scores < 1).all()
    candidates = np.argsort(-scores, axis=1)[:, :4]
    direct = model.score_candidates(history, None, candidates)
    assert np.allclose(1 / (1 + np.exp(-direct)),
                       np.take_along_axis(scores, candidates, axis=1), atol=1e-5)


def test_sequential_artifact_round_trip_and_bad_artifacts(cyclic_split, tmp_path):
    from funnelprint.artifacts import ArtifactError
    from funnelprint.models.neural.persist import load_sequential

    model = make_model("funnelformer", **FAST).fit(cyclic_split.train, valid=cyclic_split.valid)
    model.save(tmp_path / "m", trained_on="loo-train")
    loaded = load_sequential(tmp_path / "m")
    history = cyclic_split.test.history.select(np.arange(10))
    assert np.allclose(model.score(history), loaded.score(history), atol=1e-5)
    assert loaded.get_params()["use_actions"] is True
    (tmp_path / "m" / "arrays.safetensors").write_bytes(b"garbage")
    with pytest.raises(ArtifactError, match="checksum"):
        load_sequential(tmp_path / "m")
    with pytest.raises(ArtifactError, match="no manifest"):
        load_sequential(tmp_path / "nothing")


def test_cli_fit_sequential_then_recommend_with_reasons_and_evaluate(tmp_path):
    import json

    from typer.testing import CliRunner

    from funnelprint.cli import app
    from funnelprint.data.simulate import SimulationConfig, simulate

    runner = CliRunner()
    paths = simulate(SimulationConfig(customers=150, products=60, seed=5)).write(tmp_path / "s")
    model_dir = tmp_path / "ff"
    result = runner.invoke(app, ["fit", str(paths["events"]), "--out", str(model_dir),
                                 "--model-type", "funnelformer", "--epochs", "3"])
    assert result.exit_code == 0, result.output
    customer = json.loads((model_dir / "state.json").read_text())["customer_ids"][0]
    image = tmp_path / "attention.png"
    result = runner.invoke(app, ["recommend", "--model", str(model_dir), "--customer", customer,
                                 "--model-type", "funnelformer", "--k", "5", "--json",
                                 "--heatmap", str(image)])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout.strip().splitlines()[-1])
    assert len(rows) == 5 and all(r["reason"].startswith("attended to") for r in rows)
    assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    result = runner.invoke(app, ["recommend", "--model", str(model_dir), "--customer", customer,
                                 "--model-type", "sasrec"])
    assert result.exit_code == 2 and "not 'sasrec'" in result.output
    result = runner.invoke(app, ["evaluate", "--model-dir", str(model_dir), "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert 0.0 <= record["models"]["funnelformer"]["HR@10"] <= 1.0


def test_validation_protocol_is_checked_before_training(cyclic_split):
    model = make_model("sasrec", valid_protocol="ranked", **FAST)
    with pytest.raises(ValueError, match="protocol"):
        model.fit(cyclic_split.train, valid=cyclic_split.valid)
    sampled = make_model("sasrec", valid_protocol="sampled5", **FAST)
    sampled.fit(cyclic_split.train, valid=cyclic_split.valid)
    assert 0.0 < sampled.training_["best_valid"] <= 1.0


def test_cli_leaderboard_json_is_clean_with_a_neural_model(tmp_path):
    import json

    from typer.testing import CliRunner

    from funnelprint.cli import app

    rng = np.random.default_rng(0)
    lines = [f"u{c} i{(s + t) % 15}" for c in range(60) for s in [int(rng.integers(15))]
             for t in range(6)]
    path = tmp_path / "tiny.txt"
    path.write_text("\n".join(lines) + "\n")
    result = CliRunner().invoke(app, [
        "evaluate", "--data", f"sasrec:{path}", "--models", "sasrec,pop", "--json",
        "--protocol", "loo-sampled10", "--model-params",
        '{"sasrec": {"epochs": 4, "dim": 16, "maxlen": 8}}'])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)  # progress and epoch lines must not reach stdout
    assert set(record["models"]) == {"sasrec", "pop"}
    result = CliRunner().invoke(app, ["evaluate", "--data", f"sasrec:{path}",
                                      "--model-params", "[1, 2]"])
    assert result.exit_code == 2 and "must map model keys" in result.output
