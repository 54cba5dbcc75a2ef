"""Next items from Item2Vec neighbours of a customer's most recent items."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from typing_extensions import Self

from funnelprint.checks import at_least, fraction
from funnelprint.data.dataset import Dataset
from funnelprint.data.sequences import Sequences, row_of
from funnelprint.embed.item2vec import Item2Vec
from funnelprint.models.baselines import popularity_share, recency_weights
from funnelprint.models.contract import ModelConfig, ModelState, Recommender, Validator
from funnelprint.models.registry import register


def recent_query(history: Sequences, vectors: np.ndarray, last_n: int, decay: float
                 ) -> np.ndarray:
    """Recency-weighted sum of the vectors of each row's last ``last_n`` items."""
    recent = history.last(last_n)
    mix = sp.csr_matrix((recency_weights(recent, decay), (row_of(recent.offsets), recent.items)),
                        shape=(recent.n_rows, vectors.shape[0]))
    return np.asarray(mix @ vectors)


@dataclass(frozen=True)
class Item2VecConfig(ModelConfig):
    """last_n: history items that form the query; decay: weight of the k-th most recent
    query item is decay**k; the rest are :class:`~funnelprint.embed.item2vec.Item2Vec`'s."""

    last_n: int = 5
    decay: float = 0.7
    dimension: int = 64
    window: int = 5
    epochs: int = 10
    negative: int = 5
    min_count: int = 1
    seed: int = 0

    def validate(self) -> None:
        at_least(self, 1, "last_n", "dimension", "window", "epochs", "min_count")
        fraction(self, "decay")


@register
class Item2VecRecommender(Recommender[Item2VecConfig]):
    """Cosine similarity between items and the recency-weighted mean of the last items."""

    key = "item2vec"
    config_class = Item2VecConfig

    def fit(self, train: Dataset, valid: Validator | None = None) -> Self:
        c = self.config
        self.dataset_ = train
        seq = train.sequences
        tokens = seq.items.astype(str)
        sentences = [s.tolist() for s in np.split(tokens, seq.offsets[1:-1]) if s.size]
        embed = Item2Vec(dimension=c.dimension, window=c.window, epochs=c.epochs,
                         negative=c.negative, min_count=c.min_count, seed=c.seed)
        embed.fit(sentences)
        vectors = np.zeros((train.n_items, c.dimension), dtype=np.float32)
        known = np.array([int(t) for t in embed.vocabulary_], dtype=np.int64)
        vectors[known] = embed.vectors_
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        self.vectors_ = np.where(norms > 0, vectors / np.maximum(norms, 1e-12), 0.0)
        self.has_vector_ = norms.ravel() > 0
        self.popularity_ = popularity_share(train)
        return self

    def score(self, history: Sequences, customers: np.ndarray | None = None) -> np.ndarray:
        query = recent_query(history, self.vectors_, self.config.last_n, self.config.decay)
        scores = query.astype(np.float32) @ self.vectors_.T
        scores += 1e-6 * self.popularity_.astype(np.float32)
        scores[:, ~self.has_vector_] = -1.0
        return scores

    def to_state(self) -> ModelState:
        return ModelState({"vectors": self.vectors_, "popularity": self.popularity_})

    @classmethod
    def from_state(cls, config: Item2VecConfig, dataset: Dataset, state: ModelState) -> Self:
        model = cls(config)
        model.dataset_ = dataset
        model.vectors_ = state.array("vectors", (dataset.n_items, config.dimension))
        model.has_vector_ = np.linalg.norm(model.vectors_, axis=1) > 0
        model.popularity_ = state.array("popularity", (dataset.n_items,))
        return model
