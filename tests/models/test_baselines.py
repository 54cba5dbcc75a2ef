"""Baselines and the item2vec/traits recommenders behind the shared contract."""

from __future__ import annotations

import numpy as np
import pytest

from funnelprint.evaluate.splits import loo_split
from funnelprint.models import available, make_model
from tests.evaluate.test_evaluate import random_dataset, tiny

BASELINES = ("pop", "recent-pop", "itemknn", "markov", "item2vec", "traits")


@pytest.mark.parametrize("key", BASELINES)
def test_baselines_score_and_recommend(key):
    data = random_dataset()
    split = loo_split(data)
    model = make_model(key).fit(split.train)
    scores = model.score(split.test.history.select(np.arange(5)), split.test.customers[:5])
    assert scores.shape == (5, data.n_items)
    assert np.isfinite(scores).all()
    items, _ = model.recommend(np.arange(4), k=5)
    assert items.shape == (4, 5)
    assert ((items >= 0) & (items < data.n_items)).all()
    for row, customer in enumerate(range(4)):
        assert not set(items[row]) & set(split.train.sequences.row(customer).tolist())


def test_markov_learns_transitions():
    rows = [(f"c{c}", str(i), i) for c in range(20) for i in range(5)]
    data = tiny(rows)
    model = make_model("markov").fit(data)
    history = data.sequences.select(np.array([0])).drop_last(3)  # items 0, 1
    top = np.argsort(-model.score(history)[0])[:1]
    assert data.item_ids[top].tolist() == ["2"]


def test_registry_has_all_baselines():
    assert set(BASELINES) <= set(available())
    with pytest.raises(ValueError, match="unknown model"):
        make_model("nope")
