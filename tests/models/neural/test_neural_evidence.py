"""Funnel actions as evidence for the items already in a history, and the purchase-intent
head (models/neural/evidence.py, funnel.py, the Funnelformer in models.py)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch

from funnelprint.data.dataset import Dataset
from funnelprint.evaluate.protocol import Protocol, evaluate_model, validator
from funnelprint.evaluate.splits import purchase_split
from funnelprint.models import make_model
from funnelprint.models.neural.evidence import SCALE, Evidence, history_softmax_loss, recency

from .conftest import FAST


def test_recency_buckets_grow_with_the_steps_back_and_hide_the_future():
    buckets = recency(20, torch.device("cpu"))
    assert buckets[3, 3] == 0 and buckets[3, 4] == 1 and buckets[3, 5] == 2
    assert buckets[0, 19] == 6 and buckets[5, 4] == -1
    assert (buckets[0, 1:] >= buckets[0, :-1]).all()


def test_evidence_adds_each_step_weight_to_its_item():
    evidence = Evidence(n_actions=2)
    with torch.no_grad():
        evidence.table[0, 2] = torch.arange(7.0) / SCALE  # action 2: 0, 1, 2, ... steps back
        evidence.table[0, 1] = -1.0 / SCALE
    items = torch.tensor([[0, 5, 7, 5]])  # padding, then items 4, 6, 4 (shifted by 1)
    actions = torch.tensor([[0, 2, 1, 2]])
    last = evidence.last_scores(items, actions, n_items=8)
    # item 4: the step itself (0) and two steps back (2); item 6: a view one step back (-1)
    assert last[0, 4] == 2.0 and last[0, 6] == -1.0 and last[0, [0, 1, 2, 3, 5, 7]].sum() == 0
    bias = evidence.bias(items, actions, torch.tensor([[[5], [5], [7], [5]]]))
    assert bias[0, :, 0].tolist() == [0.0, 0.0, -1.0, 2.0]  # causal: nothing from later steps


def test_history_loss_is_finite_and_never_counts_the_target_as_its_own_negative():
    torch.manual_seed(0)
    table = torch.randn(9, 4)
    hidden = torch.randn(1, 4, 4)
    items = torch.tensor([[0, 3, 5, 3]])
    targets = torch.tensor([[0, 5, 3, 8]])  # item 5 repeats, item 3 repeats, 8 is new
    losses = history_softmax_loss(hidden, targets, items, torch.tensor([[0, 1, 2, 1]]), table,
                                  8, Evidence(2), 0, negatives=4)
    assert losses.shape == (3,) and torch.isfinite(losses).all()


def carted_then_bought(customers: int = 120, items: int = 40) -> Dataset:
    """Three times over, each customer views two items, carts the second, views two more
    and buys the carted one: a purchase is always the carted item, never the last viewed
    one (the third purchase is the test target, the second the validation target)."""
    rng = np.random.default_rng(0)
    rows = []
    for c in range(customers):
        steps = []
        for _ in range(3):
            a, b, x, y = rng.choice(items, 4, replace=False)
            steps += [(a, "view"), (b, "view"), (b, "add_to_cart"), (x, "view"), (y, "view"),
                      (b, "purchase")]
        rows += [(f"c{c}", f"i{item}", action, t) for t, (item, action) in enumerate(steps)]
    return Dataset.from_frame(pl.DataFrame(rows, schema=["customer_id", "item_id", "action",
                                                         "time"], orient="row"))


@pytest.mark.parametrize("params", [{"evidence": True}, {"evidence": True,
                                                         "target": "purchase"}])
def test_evidence_learns_that_carted_items_get_bought(params):
    split = purchase_split(carted_then_bought())
    protocol = Protocol.parse("purchase-full")
    model = make_model("funnelformer", **{**FAST, "epochs": 60, "batch_size": 32, **params})
    model.fit(split.train, validator(split.valid, split.train, protocol, keep_seen=True))
    result = evaluate_model(model, split.test, split.train, protocol, ks=(1,), keep_seen=True)
    assert result["HR@1"] > 0.8  # the last viewed item, never bought, would score 0
    table = model.net_.evidence.weights(0 if "target" not in params else 1).detach()
    cart = 1 + model.dataset_.action_names.index("add_to_cart")
    view = 1 + model.dataset_.action_names.index("view")
    assert table[cart, 2] > table[view, 1]  # carted 2 steps back beats viewed 1 step back


def test_reasons_name_the_cart_that_the_evidence_counts():
    split = purchase_split(carted_then_bought())
    model = make_model("funnelformer", **{**FAST, "epochs": 60, "batch_size": 32,
                                          "evidence": True})
    model.fit(split.train)
    history = split.test.history.select(np.array([0]))
    carted = int(history.items[-3])  # view a, (view) cart b, view x, view y: b is 3rd last
    reason = model.reasons(history, np.array([carted]))[0]
    assert reason["evidence"][0]["step"] == f"carted {model.dataset_.item_ids[carted]}"
