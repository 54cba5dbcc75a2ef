"""Next items from Item2Vec neighbours of a customer's most recent items."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from typing_extensions import Self

from funnelprint.data.dataset import Dataset
from funnelprint.data.sequences import Sequences, row_of
from funnelprint.embed.item2vec import Item2Vec
from funnelprint.models.base import Recommender, register
from funnelprint.models.baselines import recency_weights


def recent_query(history: Sequences, vectors: np.ndarray, last_n: int, decay: float
                 ) -> np.ndarray:
    """Recency-weighted sum of the vectors of each row's last ``last_n`` items."""
    recent = history.last(last_n)
    mix = sp.csr_matrix((recency_weights(recent, decay), (row_of(recent.offsets), recent.items)),
                        shape=(recent.n_rows, vectors.shape[0]))
    return np.asarray(mix @ vectors)


@register
class Item2VecRecommender(Recommender):
    """Cosine similarity between items and the recency-weighted mean of the last items.

    Parameters
    ----------
    last_n : int
        History items that form the query.
    decay : float
        Weight of the k-th most recent query item is decay**k.
    dimension, window, epochs, negative, min_count, seed
        Passed to :class:`~funnelprint.embed.item2vec.Item2Vec`.
    """

    key = "item2vec"

    def __init__(self, last_n: int = 5, decay: float = 0.7, dimension: int = 64,
                 window: int = 5, epochs: int = 10, negative: int = 5, min_count: int = 1,
                 seed: int = 0) -> None:
        self.last_n = last_n
        self.decay = decay
        self.dimension = dimension
        self.window = window
        self.epochs = epochs
        self.negative = negative
        self.min_count = min_count
        self.seed = seed

    def fit(self, dataset: Dataset) -> Self:
        self.dataset_ = dataset
        seq = dataset.sequences
        tokens = seq.items.astype(str)
        sentences = [s.tolist() for s in np.split(tokens, seq.offsets[1:-1]) if s.size]
        embed = Item2Vec(dimension=self.dimension, window=self.window, epochs=self.epochs,
                         negative=self.negative, min_count=self.min_count, seed=self.seed)
        embed.fit(sentences)
        vectors = np.zeros((dataset.n_items, self.dimension), dtype=np.float32)
        known = np.array([int(t) for t in embed.vocabulary_], dtype=np.int64)
        vectors[known] = embed.vectors_
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        self.vectors_ = np.where(norms > 0, vectors / np.maximum(norms, 1e-12), 0.0)
        self.has_vector_ = norms.ravel() > 0
        self.popularity_ = dataset.item_counts() / max(1, dataset.item_counts().max())
        return self

    def score(self, history: Sequences, customers: np.ndarray | None = None) -> np.ndarray:
        query = recent_query(history, self.vectors_, self.last_n, self.decay)
        scores = query.astype(np.float32) @ self.vectors_.T
        scores += 1e-6 * self.popularity_.astype(np.float32)
        scores[:, ~self.has_vector_] = -1.0
        return scores
