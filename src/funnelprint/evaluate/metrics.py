"""Ranking metrics as pure functions of 0-based target ranks.

A rank is the number of candidates placed before the target. Ties are broken by a rule that is
stated with every figure: ``pessimistic`` (default) puts the target after every candidate with an
equal score, ``optimistic`` before them. Non-finite scores count as the worst possible score.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

Ties = Literal["pessimistic", "optimistic"]
TIES = ("pessimistic", "optimistic")


#: Rank of a target that can never be hit (no finite score).
MISS = np.iinfo(np.int32).max


def sanitize(scores: np.ndarray) -> np.ndarray:
    """NaN and +inf become -inf: a broken score must never look like a hit.
    Returns the input itself when every score is finite (no copy)."""
    finite = np.isfinite(scores)
    return scores if finite.all() else np.where(finite, scores, -np.inf)


def target_ranks(
    scores: np.ndarray, targets: np.ndarray, rows: np.ndarray | None = None,
    ties: Ties = "pessimistic",
) -> np.ndarray:
    """Rank of each target among all columns of its score row.

    Parameters
    ----------
    scores : (B, C) float array
        Candidate scores per row (already sanitised or not).
    targets : (T,) int array
        Column of each target.
    rows : (T,) int array, optional
        Row of each target (default: target ``t`` is in row ``t``).
    ties : "pessimistic" or "optimistic"

    A target without a finite score (a masked history item, a broken score) gets rank
    ``MISS``: a miss at every cut-off, and nothing towards MRR, however short the catalogue.
    """
    if ties not in TIES:
        raise ValueError(f"ties must be one of {TIES}")
    scores = sanitize(np.asarray(scores))
    rows = np.arange(targets.size) if rows is None else rows
    target_scores = scores[rows, targets]
    row_scores = scores[rows]
    above = (row_scores > target_scores[:, None]).sum(axis=1)
    if ties == "optimistic":
        ranks = above
    else:
        equal = (row_scores == target_scores[:, None]).sum(axis=1) - 1  # not the target itself
        ranks = above + equal
    return np.where(np.isfinite(target_scores), ranks, MISS)


def hit_rate(ranks: np.ndarray, k: int) -> np.ndarray:
    """1 where the target is in the top k."""
    return (ranks < k).astype(np.float64)


def ndcg(ranks: np.ndarray, k: int) -> np.ndarray:
    """NDCG@k of a single relevant item: 1 / log2(rank + 2) inside the top k."""
    return np.where(ranks < k, 1.0 / np.log2(ranks + 2.0), 0.0)


def mrr(ranks: np.ndarray, k: int | None = None) -> np.ndarray:
    """Reciprocal rank, cut at k when given."""
    rr = 1.0 / (ranks + 1.0)
    return rr if k is None else np.where(ranks < k, rr, 0.0)


def set_metrics(ranks: np.ndarray, owner: np.ndarray, n_owners: int, k: int) -> dict[str, float]:
    """Per-customer metrics where a customer has several relevant items.

    ``ranks[j]`` is the rank of relevant item ``j`` and ``owner[j]`` its customer. HR@k: any
    relevant item in the top k; Recall@k: share of the customer's relevant items in the top k;
    NDCG@k: DCG over hits divided by the ideal DCG of min(k, relevant) hits; MRR@k: reciprocal
    rank of the best-ranked relevant item. Averaged over customers.
    """
    n_rel = np.bincount(owner, minlength=n_owners)
    hits = ranks < k
    hit_count = np.bincount(owner, weights=hits, minlength=n_owners)
    dcg = np.bincount(owner, weights=np.where(hits, 1.0 / np.log2(ranks + 2.0), 0.0),
                      minlength=n_owners)
    discounts = np.cumsum(1.0 / np.log2(np.arange(k) + 2.0))
    idcg = discounts[np.clip(np.minimum(n_rel, k) - 1, 0, k - 1)]
    best = best_ranks(ranks, owner, n_owners)
    valid = n_rel > 0
    return {
        f"HR@{k}": float((hit_count[valid] > 0).mean()),
        f"Recall@{k}": float((hit_count[valid] / n_rel[valid]).mean()),
        f"NDCG@{k}": float((dcg[valid] / idcg[valid]).mean()),
        f"MRR@{k}": float(np.where(best[valid] < k, 1.0 / (best[valid] + 1.0), 0.0).mean()),
    }


def best_ranks(ranks: np.ndarray, owner: np.ndarray, n_owners: int) -> np.ndarray:
    """Best (lowest) rank per customer; customers without a relevant item get int64 max."""
    best = np.full(n_owners, np.iinfo(np.int64).max)
    np.minimum.at(best, owner, ranks)
    return best


def owner_mrr(ranks: np.ndarray, owner: np.ndarray, n_owners: int) -> float:
    """Reciprocal rank of each customer's best-ranked relevant item, uncut, averaged over
    customers with one."""
    best = best_ranks(ranks, owner, n_owners)
    best = best[best < np.iinfo(np.int64).max]
    return float((1.0 / (best + 1.0)).mean()) if best.size else 0.0


def coverage(recommended: np.ndarray, n_items: int) -> float:
    """Share of the catalogue that appears in at least one list."""
    return float(np.unique(recommended[recommended >= 0]).size / max(1, n_items))


def novelty(recommended: np.ndarray, item_counts: np.ndarray, n_customers: int) -> float:
    """Mean self-information -log2(p(i)) of recommended items, p(i) = share of customers (or
    interactions) with the item in training; unseen items count as once."""
    items = recommended[recommended >= 0]
    p = np.maximum(item_counts[items], 1) / max(1, n_customers)
    return float(np.mean(-np.log2(np.minimum(p, 1.0)))) if items.size else 0.0


def tail_items(item_counts: np.ndarray, head_share: float = 0.8) -> np.ndarray:
    """Boolean mask of the cold tail: items outside the most popular ones that together account
    for ``head_share`` of training interactions."""
    order = np.argsort(-item_counts, kind="stable")
    cumulative = np.cumsum(item_counts[order])
    total = cumulative[-1] if cumulative.size else 0
    in_head = np.zeros(item_counts.size, dtype=bool)
    if total > 0:
        head_size = int(np.searchsorted(cumulative, head_share * total) + 1)
        in_head[order[:head_size]] = True
    return ~in_head


def tail_share(recommended: np.ndarray, tail: np.ndarray) -> float:
    items = recommended[recommended >= 0]
    return float(tail[items].mean()) if items.size else 0.0
