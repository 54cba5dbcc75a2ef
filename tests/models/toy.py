"""A model written the way the README's contributor section shows: one module, one
registry entry. Imported by the tests that prove the contract carries it end to end."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from typing_extensions import Self

from funnelprint.data.dataset import Dataset
from funnelprint.data.sequences import Sequences
from funnelprint.models import ModelConfig, ModelState, Recommender, Validator, register


@dataclass(frozen=True)
class PurchasePopConfig(ModelConfig):
    """purchase_weight: how many views one purchase is worth."""

    purchase_weight: float = 5.0

    def validate(self) -> None:
        if self.purchase_weight < 0:
            raise ValueError(f"purchase_weight must be 0 or more, not {self.purchase_weight}")


@register
class PurchasePop(Recommender[PurchasePopConfig]):
    """Popularity in which a purchase counts ``purchase_weight`` times."""

    key = "purchase-pop"
    config_class = PurchasePopConfig

    def fit(self, train: Dataset, valid: Validator | None = None) -> Self:
        seq = train.sequences
        bought = seq.actions == train.action_names.index("purchase")
        weight = np.where(bought, self.config.purchase_weight, 1.0)
        self.dataset_ = train
        self.weights_ = np.bincount(seq.items, weights=weight, minlength=train.n_items)
        return self

    def score(self, history: Sequences, customers: np.ndarray | None = None) -> np.ndarray:
        return np.tile(self.weights_.astype(np.float32), (history.n_rows, 1))

    def to_state(self) -> ModelState:
        return ModelState({"weights": self.weights_})

    @classmethod
    def from_state(cls, config: PurchasePopConfig, dataset: Dataset, state: ModelState) -> Self:
        model = cls(config)
        model.dataset_ = dataset
        model.weights_ = state.array("weights", (dataset.n_items,))
        return model
