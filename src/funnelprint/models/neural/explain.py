"""Readable recommendations from a sequential model: top items with the history steps
that drove each one."""

from __future__ import annotations

import numpy as np

from funnelprint.models.neural.base import SequentialRecommender

_ACTION_WORDS = {"view": "viewed", "add_to_cart": "carted", "remove_from_cart": "removed",
                 "purchase": "bought"}
_METHOD_WORDS = {"attention": "attended to", "gradient": "driven by",
                 "target-attention": "matches"}


def customer_row(model: SequentialRecommender, customer_id: str) -> int:
    index = model.dataset_.customer_index()
    if customer_id not in index:
        raise KeyError(f"unknown customer {customer_id!r}")
    return index[customer_id]


def step_labels(model: SequentialRecommender, row: int) -> list[str]:
    """'viewed p001' per step of the customer's scored window, oldest first."""
    data = model.dataset_
    history = data.sequences.select(np.array([row])).last(model.maxlen)
    one_action = np.unique(data.sequences.actions).size <= 1
    labels = []
    for item, action in zip(history.items, history.actions, strict=True):
        name = data.action_names[int(action)]
        product = str(data.item_ids[int(item)])
        labels.append(product if one_action else f"{_ACTION_WORDS.get(name, name)} {product}")
    return labels


def recommend_with_reasons(model: SequentialRecommender, customer_id: str, k: int = 10,
                           exclude_seen: bool = True, top_steps: int = 3) -> list[dict]:
    """Top-k items for a known customer; each with the ``top_steps`` history steps that got
    most weight (attention, target attention or gradient x input, by model)."""
    row = customer_row(model, customer_id)
    history = model.dataset_.sequences.select(np.array([row]))
    items, scores = model.recommend(np.array([row]), k, exclude_seen, history=history)
    items, scores = items[0], scores[0]
    listed = items >= 0
    items, scores = items[listed], scores[listed]
    if not items.size:
        return []
    weights = model.explain(history, items)
    labels = step_labels(model, row)
    labels = labels[len(labels) - weights.shape[1]:]
    method = _METHOD_WORDS.get(model.explain_with, "weighted")
    out = []
    for rank, (item, score, w) in enumerate(zip(items, scores, weights, strict=True), start=1):
        best = np.argsort(-w, kind="stable")[:top_steps]
        steps = [{"step": labels[j], "weight": round(float(w[j]), 4)} for j in best]
        reason = f"{method} " + ", ".join(f"{s['step']} ({s['weight']:.0%})" for s in steps)
        out.append({"rank": rank, "product_id": str(model.dataset_.item_ids[item]),
                    "score": round(float(score), 4), "reason": reason, "evidence": steps})
    return out
