"""Strong simple baselines: popularity, recency-weighted popularity, item-kNN, Markov chain."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from typing_extensions import Self

from funnelprint.data.dataset import Dataset
from funnelprint.data.sequences import Sequences, row_of
from funnelprint.models.base import Recommender, register


def _tile(vector: np.ndarray, rows: int) -> np.ndarray:
    return np.broadcast_to(vector.astype(np.float32), (rows, vector.size)).copy()


def recency_weights(history: Sequences, decay: float) -> np.ndarray:
    """Weight decay**k for the k-th most recent element of each row (k = 0 for the last)."""
    return decay ** (history.from_end() - 1).astype(np.float64)


def history_matrix(history: Sequences, n_items: int, decay: float = 1.0) -> sp.csr_matrix:
    """Rows x items matrix of (recency-weighted) interactions."""
    weights = recency_weights(history, decay)
    return sp.csr_matrix(
        (weights, (row_of(history.offsets), history.items)), shape=(history.n_rows, n_items)
    )


@register
class Pop(Recommender):
    """Most popular items by training interactions."""

    key = "pop"

    def fit(self, dataset: Dataset) -> Self:
        self.dataset_ = dataset
        self.counts_ = dataset.item_counts().astype(np.float64)
        return self

    def score(self, history: Sequences, customers: np.ndarray | None = None) -> np.ndarray:
        return _tile(self.counts_, history.n_rows)


@register
class RecentPop(Recommender):
    """Popularity with exponential time decay.

    Parameters
    ----------
    half_life_share : float
        Half-life as a share of the training time span.
    """

    key = "recent-pop"

    def __init__(self, half_life_share: float = 0.1) -> None:
        self.half_life_share = half_life_share

    def fit(self, dataset: Dataset) -> Self:
        self.dataset_ = dataset
        seq = dataset.sequences
        if seq.times.size == 0:
            self.weights_ = np.zeros(dataset.n_items)
            return self
        if dataset.synthetic_time:
            # Positions are not comparable across customers: age = steps before each
            # customer's own last interaction.
            age = (seq.from_end() - 1).astype(np.float64)
            span = float(max(1, age.max()))
        else:
            age = (seq.times.max() - seq.times).astype(np.float64)
            span = float(max(1.0, age.max()))
        half_life = max(1e-9, self.half_life_share * span)
        w = 0.5 ** (age / half_life)
        self.weights_ = np.bincount(seq.items, weights=w, minlength=dataset.n_items)
        return self

    def score(self, history: Sequences, customers: np.ndarray | None = None) -> np.ndarray:
        return _tile(self.weights_, history.n_rows)


@register
class ItemKNN(Recommender):
    """Item-item cosine similarity of co-occurrence in customers' histories.

    Parameters
    ----------
    neighbours : int
        Similar items kept per item.
    decay : float
        Weight of the k-th most recent history item is decay**k.
    """

    key = "itemknn"

    def __init__(self, neighbours: int = 100, decay: float = 0.9) -> None:
        self.neighbours = neighbours
        self.decay = decay

    def fit(self, dataset: Dataset) -> Self:
        self.dataset_ = dataset
        x = history_matrix(dataset.sequences, dataset.n_items)
        x.data[:] = 1.0  # binary: did the customer touch the item
        x.sum_duplicates()
        x.data[:] = 1.0
        norms = np.sqrt(np.asarray(x.sum(axis=0)).ravel())
        inv = np.where(norms > 0, 1.0 / np.maximum(norms, 1e-12), 0.0)
        co = (x.T @ x).tocsr()
        co.setdiag(0)
        co.eliminate_zeros()
        co = sp.diags(inv) @ co @ sp.diags(inv)
        self.similarity_ = keep_top_per_row(co.tocsr(), self.neighbours)
        self.popularity_ = dataset.item_counts() / max(1, dataset.item_counts().max())
        return self

    def score(self, history: Sequences, customers: np.ndarray | None = None) -> np.ndarray:
        h = history_matrix(history, self.dataset_.n_items, self.decay)
        scores = np.asarray((h @ self.similarity_).todense(), dtype=np.float32)
        return scores + 1e-6 * self.popularity_.astype(np.float32)  # popularity breaks ties


def keep_top_per_row(matrix: sp.csr_matrix, n: int) -> sp.csr_matrix:
    """Keep the n largest entries of every row (vectorised)."""
    matrix = matrix.tocsr()
    matrix.sort_indices()
    rows = row_of(matrix.indptr)
    order = np.lexsort((-matrix.data, rows))
    rank = np.arange(order.size) - np.repeat(matrix.indptr[:-1], np.diff(matrix.indptr))
    keep = order[rank < n]
    keep.sort()
    return sp.csr_matrix((matrix.data[keep], (rows[keep], matrix.indices[keep])),
                         shape=matrix.shape)


@register
class Markov(Recommender):
    """First-order transitions from the last item (popularity breaks ties)."""

    key = "markov"

    def fit(self, dataset: Dataset) -> Self:
        self.dataset_ = dataset
        seq = dataset.sequences
        rows = row_of(seq.offsets)
        same = rows[1:] == rows[:-1]
        prev, nxt = seq.items[:-1][same], seq.items[1:][same]
        counts = sp.csr_matrix((np.ones(prev.size), (prev, nxt)),
                               shape=(dataset.n_items, dataset.n_items))
        counts.sum_duplicates()
        out = np.asarray(counts.sum(axis=1)).ravel()
        self.transitions_ = (sp.diags(np.where(out > 0, 1.0 / np.maximum(out, 1), 0.0))
                             @ counts).tocsr()
        self.popularity_ = dataset.item_counts() / max(1, dataset.item_counts().max())
        return self

    def score(self, history: Sequences, customers: np.ndarray | None = None) -> np.ndarray:
        scores = _tile(1e-6 * self.popularity_, history.n_rows)
        has = history.lengths > 0
        last = history.items[history.offsets[1:][has] - 1]
        scores[has] += np.asarray(self.transitions_[last].todense(), dtype=np.float32)
        return scores
