"""What a shop's front end asks of any fitted model: recommendations for a customer by
external id, each with a reason a person can read."""

from __future__ import annotations

from typing import Any

import numpy as np

from funnelprint.data.sequences import Sequences
from funnelprint.models.contract import Explainer, Recommender


def top_items(model: Recommender[Any], customer_id: str, k: int = 10,
              exclude_seen: bool = True) -> tuple[Sequences, np.ndarray, np.ndarray]:
    """A known customer's history (one row) and their top-k item indices and scores (the
    padding of short lists dropped)."""
    index = model.dataset_.customer_index()
    if customer_id not in index:
        raise KeyError(f"unknown customer {customer_id!r}")
    row = np.array([index[customer_id]])
    history = model.dataset_.sequences.select(row)
    items, scores = model.recommend(row, k, exclude_seen, history=history)
    listed = items[0] >= 0
    return history, items[0][listed], scores[0][listed]


def recommend_with_reasons(model: Recommender[Any], customer_id: str, k: int = 10,
                           exclude_seen: bool = True) -> list[dict[str, Any]]:
    """Top-k products for a known customer, each with a reason and its evidence."""
    history, items, scores = top_items(model, customer_id, k, exclude_seen)
    if isinstance(model, Explainer):
        reasons = model.reasons(history, items)
    else:
        reasons = [{"text": f"ranked by {model.key}", "evidence": []} for _ in items]
    return [{"rank": rank, "product_id": str(model.dataset_.item_ids[item]),
             "score": round(float(score), 4), "reason": reason["text"],
             "evidence": reason["evidence"]}
            for rank, (item, score, reason) in enumerate(zip(items, scores, reasons,
                                                             strict=True), start=1)]
