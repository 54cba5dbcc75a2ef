"""The interface every recommender shares, and the registry behind ``--models``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar

import numpy as np
from typing_extensions import Self

from funnelprint.data.dataset import Dataset
from funnelprint.data.sequences import Sequences, row_of

#: Most score cells (rows x items) held at once.
SCORE_BUDGET = 20_000_000


def batch_rows(n_items: int, budget: int = SCORE_BUDGET) -> int:
    return max(1, min(4096, budget // max(1, n_items)))


class Recommender(ABC):
    """Fit on a :class:`Dataset`; score every item for a batch of histories.

    Subclasses set parameters in ``__init__`` and learned state in attributes ending with ``_``.
    ``score`` must return finite numbers where it has an opinion; rankers treat non-finite
    scores as the worst anyway.
    """

    key: ClassVar[str] = ""
    dataset_: Dataset

    @abstractmethod
    def fit(self, dataset: Dataset) -> Self:
        """Learn from ``dataset`` (a split's training part)."""

    @abstractmethod
    def score(self, history: Sequences, customers: np.ndarray | None = None) -> np.ndarray:
        """Scores of shape (history.n_rows, n_items), higher is better."""

    def _check_fitted(self) -> None:
        if not hasattr(self, "dataset_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit() first")

    def recommend(
        self, customers: np.ndarray | None = None, k: int = 10, exclude_seen: bool = True,
        history: Sequences | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k items and scores per customer (dataset indices); -1 pads short lists.

        By default the histories are the customers' training sequences.
        """
        self._check_fitted()
        if customers is None:
            customers = np.arange(self.dataset_.n_customers)
        customers = np.asarray(customers, dtype=np.int64)
        if history is None:
            history = self.dataset_.sequences.select(customers)
        n_items = self.dataset_.n_items
        step = batch_rows(n_items)
        items = np.full((customers.size, k), -1, dtype=np.int64)
        scores = np.full((customers.size, k), -np.inf, dtype=np.float32)
        for start in range(0, customers.size, step):
            rows = np.arange(start, min(start + step, customers.size))
            part = history.select(rows)
            block = self.score(part, customers[rows]).astype(np.float32, copy=False)
            block = np.where(np.isfinite(block), block, -np.inf)
            if exclude_seen:
                mask_seen(block, part)
            top, top_scores = top_k(block, k)
            items[rows], scores[rows] = top, top_scores
        return items, scores


def mask_seen(scores: np.ndarray, history: Sequences) -> None:
    """Set the score of every item in a row's history to -inf (in place)."""
    scores[row_of(history.offsets), history.items] = -np.inf


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Best k columns per row, best first; -inf entries come back as -1."""
    k_eff = min(k, scores.shape[1])
    part = np.argpartition(-scores, k_eff - 1, axis=1)[:, :k_eff]
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    items = np.take_along_axis(part, order, axis=1)
    values = np.take_along_axis(part_scores, order, axis=1)
    items = np.where(np.isfinite(values), items, -1)
    if k_eff < k:
        pad = k - k_eff
        items = np.pad(items, ((0, 0), (0, pad)), constant_values=-1)
        values = np.pad(values, ((0, 0), (0, pad)), constant_values=-np.inf)
    return items, values


MODEL_REGISTRY: dict[str, Callable[..., Recommender]] = {}


def register(cls: type[Recommender]) -> type[Recommender]:
    MODEL_REGISTRY[cls.key] = cls
    return cls


def make_model(key: str, **params: object) -> Recommender:
    import funnelprint.models  # noqa: F401  (registers the built-in models)

    if key not in MODEL_REGISTRY:
        raise ValueError(f"unknown model {key!r}; available: {', '.join(sorted(MODEL_REGISTRY))}")
    return MODEL_REGISTRY[key](**params)
