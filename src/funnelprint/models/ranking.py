"""Ranking primitives shared by serving and evaluation: top-k per row, the exclusion of
history items, and how many score rows fit in memory at once."""

from __future__ import annotations

import numpy as np

from funnelprint.data.sequences import Sequences, row_of

#: Most score cells (rows x items) held at once.
SCORE_BUDGET = 20_000_000


def batch_rows(n_items: int, budget: int = SCORE_BUDGET) -> int:
    """Rows of a full score matrix that fit in ``budget`` cells (1 to 4,096)."""
    return max(1, min(4096, budget // max(1, n_items)))


def mask_seen(scores: np.ndarray, history: Sequences) -> None:
    """Set the score of every item in a row's history to -inf (in place)."""
    scores[row_of(history.offsets), history.items] = -np.inf


def exclude_items(scores: np.ndarray, history: Sequences, exclude: str,
                  action_names: tuple[str, ...]) -> None:
    """Leave out (score -inf, in place) every item of a row's history (``seen``), the ones
    it bought (``purchased``) or none (``none``)."""
    if exclude == "seen":
        mask_seen(scores, history)
    elif exclude == "purchased":
        if "purchase" in action_names:
            bought = history.actions == action_names.index("purchase")
            scores[row_of(history.offsets)[bought], history.items[bought]] = -np.inf
    elif exclude != "none":
        raise ValueError(f"exclude must be seen, purchased or none, not {exclude!r}")


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Best k columns per row, best first; -inf entries come back as -1."""
    k_eff = min(k, scores.shape[1])
    if k_eff < 1:
        return (np.full((scores.shape[0], k), -1, dtype=np.int64),
                np.full((scores.shape[0], k), -np.inf, dtype=np.float32))
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
