"""Score an evaluation set with a fitted model: full ranking or sampled negatives."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm import tqdm

from funnelprint.data.dataset import Dataset
from funnelprint.data.sequences import row_of
from funnelprint.evaluate import metrics
from funnelprint.evaluate.splits import SPLITS, EvalSet
from funnelprint.models.contract import CandidateScorer, Recommender, Validator
from funnelprint.models.ranking import batch_rows, mask_seen, top_k

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Protocol:
    """``{split}-full`` or ``{split}-sampled{N}`` (e.g. ``loo-sampled100``)."""

    split: str
    negatives: int  # 0 = full ranking over the catalogue

    @classmethod
    def parse(cls, text: str) -> Protocol:
        split, _, mode = text.rpartition("-")
        if split not in SPLITS or not (mode == "full" or mode.startswith("sampled")):
            raise ValueError(f"protocol must be SPLIT-full or SPLIT-sampledN with SPLIT in "
                             f"{SPLITS}; got {text!r}")
        count = mode.removeprefix("sampled") or "100"
        if mode != "full" and not (count.isdigit() and int(count) > 0):
            raise ValueError(f"protocol {text!r}: the number of sampled negatives must be a "
                             "positive integer")
        return cls(split, 0 if mode == "full" else int(count))

    @property
    def preset(self) -> str:
        """Name of the model preset tuned for selection under this protocol."""
        return "sampled" if self.negatives else "full"

    @property
    def mode(self) -> str:
        """``full`` or ``sampled{N}``: the protocol without its split."""
        return f"sampled{self.negatives}" if self.negatives else "full"

    def __str__(self) -> str:
        return f"{self.split}-{self.mode}"


def evaluate_model(
    model: Recommender[Any], eval_set: EvalSet, train: Dataset, protocol: Protocol,
    ks: tuple[int, ...] = (5, 10, 20), keep_seen: bool = False, ties: metrics.Ties =
    "pessimistic", seed: int = 0, progress: bool = False, catalogue: np.ndarray | None = None,
) -> dict[str, float]:
    """Metrics of a fitted model on one evaluation set.

    ``catalogue`` (a boolean mask over the items) limits what may be ranked: items outside
    it are never candidates (the targets are expected inside it).

    Full ranking excludes each customer's history from the candidates unless ``keep_seen``
    (a target that repeats a history item then counts as a miss). The sampled protocol ranks
    each target against ``protocol.negatives`` items drawn uniformly, with replacement, from
    items outside the customer's history and targets (as in the SASRec code).
    """
    rng = np.random.default_rng(seed)
    n_items = train.n_items
    step = batch_rows(n_items)
    owners: list[np.ndarray] = []
    ranks: list[np.ndarray] = []
    tops: list[np.ndarray] = []
    kmax = max(ks)
    start_time = time.perf_counter()
    batches = range(0, eval_set.n_rows, step)
    pool = np.arange(n_items) if catalogue is None else np.flatnonzero(catalogue)
    for start in tqdm(batches, desc=f"scoring {model.key}", disable=not progress, leave=False):
        rows = np.arange(start, min(start + step, eval_set.n_rows))
        part = eval_set.subset(rows)
        scores = metrics.sanitize(model.score(part.history, part.customers).astype(np.float32))
        if scores.shape != (rows.size, n_items):
            raise ValueError(f"{model.key}.score returned {scores.shape}, expected "
                             f"{(rows.size, n_items)}")
        if catalogue is not None:
            scores[:, ~catalogue] = -np.inf
        target_rows = part.target_rows()
        if protocol.negatives:
            ranks.append(_sampled_ranks(model, scores, part, protocol.negatives, pool, ties,
                                        rng))
        if not keep_seen:
            mask_seen(scores, part.history)
        if not protocol.negatives:
            ranks.append(metrics.target_ranks(scores, part.target_items, target_rows, ties))
        owners.append(target_rows + start)
        tops.append(top_k(scores, kmax)[0])
    rank = np.concatenate(ranks) if ranks else np.zeros(0, dtype=np.int64)
    owner = np.concatenate(owners) if owners else np.zeros(0, dtype=np.int64)
    top = np.concatenate(tops) if tops else np.zeros((0, kmax), dtype=np.int64)
    result: dict[str, float] = {}
    for k in ks:
        result.update(metrics.set_metrics(rank, owner, eval_set.n_rows, k))
    result["MRR"] = metrics.owner_mrr(rank, owner, eval_set.n_rows)
    counts = train.item_counts()
    tail = metrics.tail_items(counts)
    for k in ks:
        result[f"Coverage@{k}"] = metrics.coverage(top[:, :k], n_items)
        result[f"Novelty@{k}"] = metrics.novelty(top[:, :k], counts, train.n_customers)
        result[f"TailShare@{k}"] = metrics.tail_share(top[:, :k], tail)
    result["evaluated"] = int(eval_set.n_rows)
    result["score_seconds"] = round(time.perf_counter() - start_time, 3)
    return result


def _sampled_ranks(
    model: Recommender[Any], scores: np.ndarray, part: EvalSet, n_negatives: int,
    pool: np.ndarray, ties: metrics.Ties, rng: np.random.Generator,
) -> np.ndarray:
    """Rank of each target among itself and n_negatives items of its row sampled from
    ``pool``. A model that scores candidate lists itself (a re-ranker) scores exactly these
    candidates."""
    n_items = scores.shape[1]
    target_rows = part.target_rows()
    exclude_rows = np.concatenate([row_of(part.history.offsets), target_rows])
    exclude_items = np.concatenate([part.history.items, part.target_items]).astype(np.int64)
    excluded = np.unique(exclude_rows.astype(np.int64) * n_items + exclude_items)
    negatives = _draw_negatives(target_rows, n_negatives, pool, n_items, excluded, rng)
    candidates = np.concatenate([part.target_items[:, None], negatives], axis=1)
    if isinstance(model, CandidateScorer):
        row_scores = model.score_candidates(part.history.select(target_rows),
                                            part.customers[target_rows], candidates)
        candidate_scores = metrics.sanitize(np.asarray(row_scores, dtype=np.float32))
    else:
        candidate_scores = scores[target_rows[:, None], candidates]
    return metrics.target_ranks(candidate_scores, np.zeros(target_rows.size, dtype=np.int64),
                                ties=ties)


def _draw_negatives(rows: np.ndarray, n: int, pool: np.ndarray, n_items: int,
                    excluded: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = pool[rng.integers(0, pool.size, size=(rows.size, n))]
    for _ in range(1000):
        bad = np.isin(rows[:, None].astype(np.int64) * n_items + out, excluded)
        if not bad.any():
            return out
        out[bad] = pool[rng.integers(0, pool.size, size=int(bad.sum()))]
    raise ValueError("cannot draw negatives: customers have interacted with almost every item")


def validator(eval_set: EvalSet, train: Dataset, protocol: Protocol, max_customers: int = 5000,
              seed: int = 0, keep_seen: bool = False) -> Validator:
    """NDCG@10 of a model on at most ``max_customers`` customers of ``eval_set`` (a random,
    seeded subset), scored under ``protocol`` (history items kept as candidates with
    ``keep_seen``): what a model's early stopping and checkpoint choice follow."""
    if max_customers < 1:
        raise ValueError(f"validation needs at least one customer, not {max_customers}")
    chosen = np.random.default_rng(seed).permutation(eval_set.n_rows)[:max_customers]
    subset = eval_set.subset(chosen)

    def ndcg_at_10(model: Recommender[Any]) -> float:
        return evaluate_model(model, subset, train, protocol, ks=(10,), keep_seen=keep_seen,
                              seed=seed)["NDCG@10"]

    return ndcg_at_10
