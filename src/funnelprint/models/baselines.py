"""Strong simple baselines: popularity, recency-weighted popularity, item-kNN, Markov chain."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from typing_extensions import Self

from funnelprint.artifacts import ArtifactError
from funnelprint.checks import at_least, fraction
from funnelprint.data.dataset import Dataset
from funnelprint.data.sequences import Sequences, row_of
from funnelprint.models.contract import ModelConfig, ModelState, Recommender, Validator
from funnelprint.models.registry import register


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


def popularity_share(dataset: Dataset) -> np.ndarray:
    """Each item's interaction count over the largest count (tie-breaker scores)."""
    counts = dataset.item_counts()
    return counts / max(1, counts.max())


@dataclass(frozen=True)
class NoConfig(ModelConfig):
    """A model without parameters."""


class _ItemVectorModel(Recommender[ModelConfig]):
    """A baseline whose whole learned state is one per-item vector ``weights_``."""

    weights_: np.ndarray

    def to_state(self) -> ModelState:
        return ModelState({"weights": self.weights_})

    @classmethod
    def from_state(cls, config: ModelConfig, dataset: Dataset, state: ModelState) -> Self:
        model = cls(config)
        model.dataset_ = dataset
        model.weights_ = state.array("weights", (dataset.n_items,))
        return model

    def score(self, history: Sequences, customers: np.ndarray | None = None) -> np.ndarray:
        return _tile(self.weights_, history.n_rows)


@register
class Pop(_ItemVectorModel):
    """Most popular items by training interactions."""

    key = "pop"
    config_class = NoConfig

    def fit(self, train: Dataset, valid: Validator | None = None) -> Self:
        self.dataset_ = train
        self.weights_ = train.item_counts().astype(np.float64)
        return self


@dataclass(frozen=True)
class RecentPopConfig(ModelConfig):
    """half_life_share: half-life as a share of the training time span."""

    half_life_share: float = 0.1

    def validate(self) -> None:
        if not self.half_life_share > 0:
            raise ValueError(f"half_life_share must be positive, not {self.half_life_share}")


@register
class RecentPop(_ItemVectorModel):
    """Popularity with exponential time decay (see :class:`RecentPopConfig`)."""

    key = "recent-pop"
    config_class = RecentPopConfig
    config: RecentPopConfig

    def fit(self, train: Dataset, valid: Validator | None = None) -> Self:
        self.dataset_ = train
        seq = train.sequences
        if seq.times.size == 0:
            self.weights_ = np.zeros(train.n_items, dtype=np.float64)
            return self
        if train.synthetic_time:
            # Positions are not comparable across customers: age = steps before each
            # customer's own last interaction.
            age = (seq.from_end() - 1).astype(np.float64)
            span = float(max(1, age.max()))
        else:
            age = (seq.times.max() - seq.times).astype(np.float64)
            span = float(max(1.0, age.max()))
        half_life = max(1e-9, self.config.half_life_share * span)
        w = 0.5 ** (age / half_life)
        self.weights_ = np.bincount(seq.items, weights=w, minlength=train.n_items).astype(
            np.float64)
        return self


@dataclass(frozen=True)
class ItemKNNConfig(ModelConfig):
    """neighbours: similar items kept per item; decay: weight of the k-th most recent
    history item is decay**k."""

    neighbours: int = 100
    decay: float = 0.9

    def validate(self) -> None:
        at_least(self, 1, "neighbours")
        fraction(self, "decay")


@register
class ItemKNN(Recommender[ItemKNNConfig]):
    """Item-item cosine similarity of co-occurrence in customers' histories."""

    key = "itemknn"
    config_class = ItemKNNConfig

    def fit(self, train: Dataset, valid: Validator | None = None) -> Self:
        self.dataset_ = train
        x = history_matrix(train.sequences, train.n_items)
        x.data[:] = 1.0  # binary: did the customer touch the item
        x.sum_duplicates()
        x.data[:] = 1.0
        norms = np.sqrt(np.asarray(x.sum(axis=0)).ravel())
        inv = np.where(norms > 0, 1.0 / np.maximum(norms, 1e-12), 0.0)
        co = (x.T @ x).tocsr()
        co.setdiag(0)
        co.eliminate_zeros()
        co = sp.diags(inv) @ co @ sp.diags(inv)
        self.similarity_ = keep_top_per_row(co.tocsr(), self.config.neighbours)
        self.popularity_ = popularity_share(train)
        return self

    def score(self, history: Sequences, customers: np.ndarray | None = None) -> np.ndarray:
        h = history_matrix(history, self.dataset_.n_items, self.config.decay)
        scores = np.asarray((h @ self.similarity_).todense(), dtype=np.float32)
        return scores + 1e-6 * self.popularity_.astype(np.float32)  # popularity breaks ties

    def to_state(self) -> ModelState:
        return ModelState(sparse_arrays("similarity", self.similarity_)
                          | {"popularity": self.popularity_})

    @classmethod
    def from_state(cls, config: ItemKNNConfig, dataset: Dataset, state: ModelState) -> Self:
        model = cls(config)
        model.dataset_ = dataset
        model.similarity_ = sparse_from(state, "similarity", (dataset.n_items, dataset.n_items))
        model.popularity_ = state.array("popularity", (dataset.n_items,))
        return model


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


def sparse_arrays(name: str, matrix: sp.csr_matrix) -> dict[str, np.ndarray]:
    """A CSR matrix as three named arrays (see :func:`sparse_from`)."""
    matrix = matrix.tocsr()
    return {f"{name}.data": matrix.data, f"{name}.indices": matrix.indices.astype(np.int64),
            f"{name}.indptr": matrix.indptr.astype(np.int64)}


def sparse_from(state: ModelState, name: str, shape: tuple[int, int]) -> sp.csr_matrix:
    """The CSR matrix stored by :func:`sparse_arrays`, checked against ``shape``."""
    indptr = state.array(f"{name}.indptr", (shape[0] + 1,))
    data = state.array(f"{name}.data", (None,))
    indices = state.array(f"{name}.indices", (data.size,))
    if (indptr[0] != 0 or indptr[-1] != data.size or np.any(np.diff(indptr) < 0)
            or (indices.size and (indices.min() < 0 or indices.max() >= shape[1]))):
        raise ArtifactError(f"model state matrix {name!r} is inconsistent")
    return sp.csr_matrix((data, indices, indptr), shape=shape)


@register
class Markov(Recommender[ModelConfig]):
    """First-order transitions from the last item (popularity breaks ties)."""

    key = "markov"
    config_class = NoConfig

    def fit(self, train: Dataset, valid: Validator | None = None) -> Self:
        self.dataset_ = train
        seq = train.sequences
        rows = row_of(seq.offsets)
        same = rows[1:] == rows[:-1]
        prev, nxt = seq.items[:-1][same], seq.items[1:][same]
        counts = sp.csr_matrix((np.ones(prev.size), (prev, nxt)),
                               shape=(train.n_items, train.n_items))
        counts.sum_duplicates()
        out = np.asarray(counts.sum(axis=1)).ravel()
        self.transitions_ = (sp.diags(np.where(out > 0, 1.0 / np.maximum(out, 1), 0.0))
                             @ counts).tocsr()
        self.popularity_ = popularity_share(train)
        return self

    def score(self, history: Sequences, customers: np.ndarray | None = None) -> np.ndarray:
        scores = _tile(1e-6 * self.popularity_, history.n_rows)
        has = history.lengths > 0
        last = history.items[history.offsets[1:][has] - 1]
        scores[has] += np.asarray(self.transitions_[last].todense(), dtype=np.float32)
        return scores

    def to_state(self) -> ModelState:
        return ModelState(sparse_arrays("transitions", self.transitions_)
                          | {"popularity": self.popularity_})

    @classmethod
    def from_state(cls, config: ModelConfig, dataset: Dataset, state: ModelState) -> Self:
        model = cls(config)
        model.dataset_ = dataset
        model.transitions_ = sparse_from(state, "transitions", (dataset.n_items,) * 2)
        model.popularity_ = state.array("popularity", (dataset.n_items,))
        return model
