"""The model contract: configs, the registry, and a model added in one module."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from funnelprint.data.dataset import Dataset
from funnelprint.data.sequences import Sequences
from funnelprint.evaluate.leaderboard import evaluate_fitted, run_leaderboard
from funnelprint.models import ModelConfig, available, load, make_model, register, save
from funnelprint.models.serving import recommend_customer
from tests.models.toy import PurchasePop, PurchasePopConfig


def shop(customers: int = 60, items: int = 30, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, 12, customers)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    n = int(offsets[-1])
    seq = Sequences(offsets, rng.integers(0, items, n).astype(np.int32),
                    rng.choice([0, 1, 3], n).astype(np.int8), np.arange(n, dtype=np.int64))
    return Dataset(np.array([f"u{i}" for i in range(customers)]),
                   np.array([f"p{i}" for i in range(items)]), seq)


@dataclass(frozen=True)
class Example(ModelConfig):
    size: int = 3
    rate: float = 0.5
    name: str | None = None

    def validate(self) -> None:
        if self.size < 1:
            raise ValueError("size must be at least 1")


def test_config_checks_names_types_and_ranges() -> None:
    assert Example.from_params({"size": 4}).get_params() == {"size": 4, "rate": 0.5,
                                                             "name": None}
    assert Example.from_params({"rate": 1}).rate == 1.0  # ints are accepted as floats
    with pytest.raises(ValueError, match="unknown parameter"):
        Example.from_params({"sise": 4})
    with pytest.raises(ValueError, match="size must be int"):
        Example.from_params({"size": "4"})
    with pytest.raises(ValueError, match="size must be int"):
        Example.from_params({"size": True})
    with pytest.raises(ValueError, match="at least 1"):
        Example(size=0)
    with pytest.raises(ValueError, match="unknown preset"):
        Example.from_params({}, preset="fast")
    with pytest.raises(AttributeError):
        Example().size = 5  # type: ignore[misc]  # frozen: the point of the test


def test_registry_builds_every_model_from_its_config() -> None:
    keys = available()
    for key in ("pop", "itemknn", "markov", "item2vec", "traits", "sasrec", "bst"):
        assert key in keys
    model = make_model("itemknn", neighbours=5)
    assert model.get_params() == {"neighbours": 5, "decay": 0.9}
    with pytest.raises(ValueError, match="unknown model"):
        make_model("nope")
    with pytest.raises(ValueError, match="already taken"):
        @register
        class Impostor(PurchasePop):
            key = "pop"


def test_a_model_added_in_one_module_runs_through_the_whole_contract(tmp_path) -> None:
    data = shop()
    record = run_leaderboard(data, ["purchase-pop", "pop"], "loo-full", ks=(10,))
    assert set(record["models"]) == {"purchase-pop", "pop"}
    assert 0.0 <= record["models"]["purchase-pop"]["NDCG@10"] <= 1.0

    model = make_model("purchase-pop", purchase_weight=2.0).fit(data)
    assert isinstance(model, PurchasePop)
    save(model, tmp_path / "toy", trained_on="loo-train")
    loaded = load(tmp_path / "toy")
    assert isinstance(loaded, PurchasePop)
    assert loaded.config == PurchasePopConfig(purchase_weight=2.0)
    np.testing.assert_array_equal(loaded.recommend(k=5)[0], model.recommend(k=5)[0])
    evaluated = evaluate_fitted(loaded, loaded.dataset_, "loo-full", ks=(10,))
    assert evaluated["models"]["purchase-pop"]["evaluated"] == data.n_customers
    rows = recommend_customer(loaded, "u0", k=3)
    assert [r["rank"] for r in rows] == [1, 2, 3]
    assert all(r["reason"] == "ranked by purchase-pop" for r in rows)
    seen = set(data.item_ids[data.sequences.row(0)])
    assert not seen & {r["product_id"] for r in rows}


def test_recommend_cuts_k_to_the_catalogue() -> None:
    model = make_model("pop").fit(shop(items=7))
    items, scores = model.recommend(np.arange(3), k=10**9, exclude_seen=False)
    assert items.shape == (3, 7) and np.isfinite(scores).all()
    with pytest.raises(ValueError, match="at least 1"):
        model.recommend(k=0)
