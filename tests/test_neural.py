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
from funnelprint.models.neural.sasrec import SASRecNet


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
    inputs, targets = training_windows(seq, 3)
    assert inputs.tolist() == [[0, 6, 7]] and targets.tolist() == [[0, 7, 8]]


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
