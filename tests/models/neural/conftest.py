"""Tiny data sets on which the sequential models learn in seconds."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import polars as pl
import pytest
import torch

from funnelprint.data.dataset import Dataset
from funnelprint.evaluate.protocol import Protocol, validator
from funnelprint.evaluate.splits import Split, loo_split
from funnelprint.models.contract import Validator

#: Small, quick settings under which every sequential model learns the cyclic data (no
#: weight averaging: over 25 optimiser steps the average still lags the weights).
FAST = dict(maxlen=10, dim=32, epochs=25, eval_every=5, patience=10, negatives=8, lr=5e-3,
            progress=False, dropout=0.0, ema_decay=0.0)
#: A few optimiser steps: enough to change the weights, for state round trips.
FEW_STEPS = dict(maxlen=8, dim=16, epochs=2, eval_every=1, negatives=8, progress=False,
                 time_budget_s=None)


def cyclic_dataset(customers: int = 80, items: int = 12, with_actions: bool = False
                   ) -> Dataset:
    """Each customer walks the catalogue in order from a random start: next item = item + 1.
    ``with_actions`` makes every third step an add-to-cart instead of a view."""
    rng = np.random.default_rng(0)
    rows = []
    for c in range(customers):
        start = int(rng.integers(0, items))
        for t in range(int(rng.integers(4, 10))):
            action = "add_to_cart" if with_actions and t % 3 == 2 else "view"
            rows.append((f"c{c}", f"i{(start + t) % items}", action, t))
    frame = pl.DataFrame({"customer_id": [r[0] for r in rows], "item_id": [r[1] for r in rows],
                          "action": [r[2] for r in rows], "time": [r[3] for r in rows]})
    return Dataset.from_frame(frame)


@pytest.fixture(scope="package", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Tiny tensors train faster on one thread, and far faster on a busy machine where a
    second thread waits for a core."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="package")
def cyclic_split() -> Split:
    return loo_split(cyclic_dataset())


@pytest.fixture(scope="package")
def funnel_split() -> Split:
    return loo_split(cyclic_dataset(with_actions=True))


@pytest.fixture(scope="package")
def cyclic_valid(cyclic_split: Split) -> Validator:
    return validator(cyclic_split.valid, cyclic_split.train, Protocol.parse("loo-full"))
