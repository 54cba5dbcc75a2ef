"""The trait-profile recommender behind the shared interface (``traits`` in ``evaluate``)."""

from __future__ import annotations

import numpy as np
import polars as pl
from typing_extensions import Self

from funnelprint.data.dataset import Dataset
from funnelprint.data.sequences import Sequences, row_of
from funnelprint.data.tokens import tokenize
from funnelprint.models.base import Recommender, register
from funnelprint.models.item2vec import recent_query
from funnelprint.profile.features import unit_rows
from funnelprint.profile.model import ProfileModel


def sequence_events(history: Sequences, action_names: tuple[str, ...]) -> pl.DataFrame:
    """Sequences as an event table: ``customer_id`` is the row number, ``product_id`` the item
    index; one journey per row (no session split)."""
    frame = pl.DataFrame({
        "customer_id": row_of(history.offsets).astype(str),
        "timestamp": history.times,
        "action": np.array(action_names)[history.actions],
        "product_id": history.items.astype(str),
    }).with_columns(pl.col("timestamp").cast(pl.Datetime("us")).dt.replace_time_zone("UTC"))
    return tokenize(frame)


@register
class TraitsRecommender(Recommender):
    """Scores items by trait affinity and embedding similarity to the last items.

    Parameters
    ----------
    traits, min_count, epochs
        Passed to :class:`~funnelprint.profile.model.ProfileModel`.
    trait_weight : float
        Weight of trait affinity against embedding similarity.
    last_n, decay
        Recent items forming the embedding query, and their recency decay.
    """

    key = "traits"

    def __init__(self, traits: int = 8, min_count: int = 2, epochs: int = 10,
                 trait_weight: float = 0.3, last_n: int = 5, decay: float = 0.7,
                 seed: int = 0) -> None:
        self.traits = traits
        self.min_count = min_count
        self.epochs = epochs
        self.trait_weight = trait_weight
        self.last_n = last_n
        self.decay = decay
        self.seed = seed

    def fit(self, dataset: Dataset) -> Self:
        self.dataset_ = dataset
        events = sequence_events(dataset.sequences, dataset.action_names)
        # Event means: the sequences carry no sessions, and the leaderboard figures use it.
        self.profile_ = ProfileModel(traits=self.traits, aggregation="mean",
                                     min_count=self.min_count, epochs=self.epochs, n_init=2,
                                     seed=self.seed).fit(events)
        items = self.profile_.product_ids_.astype(np.int64)
        self.item_traits_ = np.zeros((dataset.n_items, self.traits))
        self.item_traits_[items] = unit_rows(self.profile_.product_traits_)
        self.item_vectors_ = np.zeros((dataset.n_items, self.profile_.dimension))
        self.item_vectors_[items] = self.profile_.product_vectors_
        counts = dataset.item_counts()
        self.popularity_ = counts / max(1, counts.max())
        return self

    def score(self, history: Sequences, customers: np.ndarray | None = None) -> np.ndarray:
        profiles = self.profile_.transform(sequence_events(history, self.dataset_.action_names))
        mix = np.tile(self.profile_.population_profile_, (history.n_rows, 1))
        rows = profiles["customer_id"].cast(pl.Int64).to_numpy()
        mix[rows] = profiles.select([f"trait_{j}" for j in range(self.traits)]).to_numpy()
        trait_score = unit_rows(mix) @ self.item_traits_.T
        query = recent_query(history, self.item_vectors_, self.last_n, self.decay)
        embed_score = unit_rows(query) @ self.item_vectors_.T
        score = self.trait_weight * trait_score + (1 - self.trait_weight) * embed_score
        return (score + 1e-6 * self.popularity_).astype(np.float32)
