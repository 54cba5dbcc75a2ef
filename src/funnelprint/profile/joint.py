"""One factorisation of two blocks of customer features — what a customer shops (taste) and
how (behaviour) — with the balance between the blocks and the number of traits selected
from the data.

Each block (taste; visit styles and customer behaviour features, the two behaviour
blocks) is first divided by its largest singular value after centring (the block weighting
of multiple factor analysis), so that no block dominates by its number of columns or units.
The remaining balance — how much the behaviour blocks weigh beside the taste block — and,
unless given, the number of traits are chosen by bi-cross-validation
(Owen & Perry, 2009): the NMF basis is fitted on half of the customers; the other half's
trait weights are solved from a random half of the columns and used to predict the other
columns; the criterion is the sum over blocks of each block's held-out error relative to
predicting its column means. A balance that neglects a block predicts that block badly, so
the criterion rewards a basis that explains both.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform
from sklearn.decomposition import NMF, non_negative_factorization
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits

#: Candidate weights of the behaviour block relative to the taste block (after both are
#: scaled to a unit leading singular value).
BALANCE_GRID = (0.5, 0.71, 1.0, 1.41, 2.0)
#: Relative change of the criterion below which a larger candidate is not worth it (see
#: :func:`_elbow`): about the spread of the criterion between random splits.
ELBOW = 0.02
#: Larger candidates that must all fail to gain :data:`ELBOW` before the walk stops.
LOOKAHEAD = 2
#: Random splits each candidate's criterion is averaged over.
REPEATS = 4
#: Traits whose customer weights correlate above this (average linkage) are one trait
#: split in parts (see :func:`merge_groups`).
MERGE_CORRELATION = 0.2


def block_scale(block: np.ndarray) -> float:
    """Largest singular value of the centred block (1 for an empty or constant block)."""
    if block.size == 0:
        return 1.0
    centred = block - block.mean(axis=0)
    # From the Gram matrix of the narrow side: the same value as a full SVD, far cheaper.
    gram = centred.T @ centred if centred.shape[0] >= centred.shape[1] else centred @ centred.T
    top = float(np.sqrt(max(np.linalg.eigvalsh(gram)[-1], 0.0)))
    return top if top > 1e-12 else 1.0


@dataclass(frozen=True)
class Selection:
    """What bi-cross-validation chose and the criterion of every candidate."""

    traits: int
    balance: float
    traits_scores: dict[int, float]
    balance_scores: dict[float, float]


Split = tuple[np.ndarray, np.ndarray, np.ndarray]


def splits(n_rows: int, n_cols: int, seed: int, repeats: int = 2) -> list[Split]:
    """``repeats`` random (training rows, test rows, seen columns) splits."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(repeats):
        rows = rng.permutation(n_rows)
        seen = np.asarray(rng.random(n_cols) < 0.5)
        if seen.all() or not seen.any():
            seen[: n_cols // 2], seen[n_cols // 2:] = True, False
        out.append((rows[: n_rows // 2], rows[n_rows // 2:], seen))
    return out


def split_error(x: np.ndarray, blocks: np.ndarray, k: int, split: Split, seed: int) -> float:
    """The criterion of one split: the sum over blocks of held-out squared error relative
    to predicting the block's training column means."""
    train, test, seen = split
    h = NMF(k, init="nndsvda", max_iter=100, tol=1e-3, random_state=seed).fit(x[train]).components_
    w, _, _ = non_negative_factorization(
        x[test][:, seen], H=np.ascontiguousarray(h[:, seen]), n_components=k,
        update_H=False, max_iter=100, tol=1e-3)
    hidden = ~seen
    residual = x[test][:, hidden] - w @ h[:, hidden]
    baseline = x[test][:, hidden] - x[train][:, hidden].mean(axis=0)
    total = 0.0
    for b in np.unique(blocks[hidden]):
        cols = blocks[hidden] == b
        total += float((residual[:, cols] ** 2).sum() / max((baseline[:, cols] ** 2).sum(), 1e-12))
    return total


def held_out_error(x: np.ndarray, blocks: np.ndarray, k: int, seed: int,
                   repeats: int = 2, pool: Executor | None = None) -> float:
    """Bi-cross-validation criterion of a ``k``-trait NMF of ``x``: the sum over blocks
    (``blocks[j]`` is column j's block) of held-out squared error relative to the block's
    column means, averaged over ``repeats`` random splits (run side by side on ``pool``)."""
    def one(split: Split) -> float:
        return split_error(x, blocks, k, split, seed)

    parts = splits(x.shape[0], x.shape[1], seed, repeats)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        errors = list(pool.map(one, parts)) if pool is not None else [one(p) for p in parts]
    return float(np.mean(errors))


def select(blocks: list[np.ndarray], traits: int | None, seed: int = 0,
           trait_grid: tuple[int, ...] = (), sample: int = 2000, max_traits: int = 0
           ) -> Selection:
    """Choose the weight of the behaviour blocks (every block after the first, the taste
    block) from :data:`BALANCE_GRID` and, where ``traits`` is None, the number of traits
    from the ascending ``trait_grid`` (up to ``max_traits``) at its elbow — the smallest
    candidate the next one improves on by less than :data:`ELBOW` — on at most ``sample``
    customers. The weight is the one nearest to 1 within :data:`ELBOW` of the best. The
    blocks are given already scaled by :func:`block_scale`."""
    # The sample is small: threaded BLAS spends more on handing out its many small
    # products than it saves, so one thread is faster (and leaves the cores to others).
    # Each candidate is an independent seeded fit, so running them side by side (BLAS and
    # the NMF solver release the GIL) changes nothing but the wall time.
    # The criterion's fits have a fixed budget on purpose: their not converging is expected.
    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(_workers()) as pool, \
            warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return _select(blocks, traits, seed, trait_grid, max_traits or max(trait_grid, default=2),
                       sample, pool)


def _workers() -> int:
    return max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                      else os.cpu_count() or 1))


def _select(blocks: list[np.ndarray], traits: int | None, seed: int,
            trait_grid: tuple[int, ...], max_traits: int, sample: int, pool: Executor
            ) -> Selection:
    rng = np.random.default_rng(seed)
    n = blocks[0].shape[0]
    rows = rng.choice(n, min(sample, n), replace=False)
    parts = [b[rows] for b in blocks if b.shape[1]]
    labels = np.concatenate([np.full(b.shape[1], j, dtype=np.int64)
                             for j, b in enumerate(parts)])
    has_behaviour = len(parts) > 1

    def stack(weight: float) -> np.ndarray:
        return np.hstack([parts[0]] + [weight * b for b in parts[1:]])

    k_scores: dict[int, float] = {}
    k = traits
    if k is None:
        limit = max(2, min(rows.size // 4, labels.size - 1))
        grid = [g for g in trait_grid if 2 <= g <= min(max_traits, limit)] or [min(2, limit)]
        x = stack(1.0)
        k_parts = splits(x.shape[0], x.shape[1], seed, repeats=REPEATS)
        per_split = _walk_traits(grid, lambda gs: _split_errors(pool, x, labels, gs, k_parts,
                                                                seed))
        k = _elbow(per_split, final=True)
        assert k is not None  # final: always decided
        k_scores = {g: float(v.mean()) for g, v in per_split.items()}
    balance_scores: dict[float, float] = {}
    balance = 1.0
    if has_behaviour:
        # The trait grid ran at weight 1 with the same splits: reuse its score there.
        known = {1.0: k_scores[k]} if k in k_scores else {}
        w_parts = splits(rows.size, labels.size, seed, repeats=REPEATS)

        def scores(weights: list[float]) -> list[float]:
            todo = [w for w in weights if w not in known]
            jobs = [(w, p) for w in todo for p in w_parts]
            errors = list(pool.map(lambda job: split_error(stack(job[0]), labels, k, job[1],
                                                           seed), jobs))
            for w in todo:
                known[w] = float(np.mean([e for (v, _), e in zip(jobs, errors, strict=True)
                                          if v == w]))
            return [known[w] for w in weights]

        balance_scores = _walk_grid(scores)
        balance = _parsimonious_balance(balance_scores)
    return Selection(int(k), float(balance), k_scores, balance_scores)


def _split_errors(pool: Executor, x: np.ndarray, labels: np.ndarray, ks: list[int],
                  parts: list[Split], seed: int) -> list[np.ndarray]:
    """The criterion of each number of traits in ``ks`` on every split (all fits side by
    side)."""
    jobs = [(g, p) for g in ks for p in parts]
    errors = np.array(list(pool.map(lambda job: split_error(x, labels, job[0], job[1], seed),
                                    jobs)))
    return list(errors.reshape(len(ks), len(parts)))


def _walk_traits(grid: list[int], score: Callable[[list[int]], list[np.ndarray]]
                 ) -> dict[int, np.ndarray]:
    """Per-split criteria along the ascending ``grid``, two candidates at a time, until the
    elbow is decided (see :func:`_elbow`)."""
    scores: dict[int, np.ndarray] = {}
    for start in range(0, len(grid), 2):
        batch = grid[start:start + 2]
        scores.update(zip(batch, score(batch), strict=True))
        if _elbow(scores) is not None:
            break
    return scores


def _elbow(scores: dict[int, np.ndarray], final: bool = False) -> int | None:
    """The smallest number of traits that neither of the next :data:`LOOKAHEAD` larger
    candidates improves on, with confidence, by :data:`ELBOW` or more: the mean relative
    gain over the splits plus its standard error is below it. None while undecided (fewer
    successors scored than needed), unless ``final`` (the grid is exhausted: the largest
    scored when no candidate qualifies).

    The held-out criterion goes on falling slowly past the data's rank, as extra traits
    split true dimensions into correlated parts; those small gains are not worth a trait a
    marketer has to read. A gain that the splits disagree on, or one that comes a step
    later, is not taken as small: stopping too early loses whole dimensions, while traits
    split in parts are merged again after the fit (:func:`merge_groups`)."""
    ks = sorted(scores)
    for i, smaller in enumerate(ks[:-1]):
        following = ks[i + 1:i + 1 + LOOKAHEAD]
        if len(following) < LOOKAHEAD and not final:
            return None
        if all(_confident_gain(scores[smaller], scores[k]) < ELBOW for k in following):
            return smaller
    return ks[-1] if final else None


def _confident_gain(before: np.ndarray, after: np.ndarray) -> float:
    """Upper bound of the relative gain from ``before`` to ``after`` over paired splits:
    the mean plus one standard error."""
    gains = (before - after) / before
    spread = gains.std(ddof=1) / np.sqrt(gains.size) if gains.size > 1 else 0.0
    return float(gains.mean() + spread)


def _parsimonious_balance(scores: dict[float, float]) -> float:
    """The weight nearest to 1 (equal block weighting) whose criterion is within
    :data:`ELBOW` of the best: a weight away from 1 has to earn its place."""
    best = min(scores.values())
    close = [w for w, v in scores.items() if v <= (1 + ELBOW) * best]
    return min(close, key=lambda w: (abs(np.log(w)), scores[w]))


def merge_groups(weights: np.ndarray, threshold: float = MERGE_CORRELATION) -> np.ndarray:
    """Group the columns of ``weights`` (customers x traits) whose correlation across
    customers exceeds ``threshold``, by average-linkage clustering; returns each trait's
    group, numbered by first appearance.

    Independent dimensions of a shop give traits that are uncorrelated or, as shares of one
    profile, negatively correlated; a dimension the factorisation split in two (the two
    categories of one taste, say) gives two traits that the same customers lean on."""
    k = weights.shape[1]
    if k < 2:
        return np.zeros(k, dtype=np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.nan_to_num(np.corrcoef(weights, rowvar=False), nan=0.0)
    distance = np.clip(1.0 - (corr + corr.T) / 2, 0.0, None)
    np.fill_diagonal(distance, 0.0)
    labels = fcluster(linkage(squareform(distance, checks=False), "average"),
                      1.0 - threshold, "distance")
    _, first, group = np.unique(labels, return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first))
    return order[group.ravel()].astype(np.int64)


def _walk_grid(score: Callable[[list[float]], list[float]]) -> dict[float, float]:
    """Scores along :data:`BALANCE_GRID`, starting at its middle and walking outwards while
    a neighbour scores better (the criterion is unimodal in practice, so this finds the grid
    minimum with about half the fits)."""
    grid = BALANCE_GRID
    middle = len(grid) // 2
    first = [grid[i] for i in (middle - 1, middle, middle + 1) if 0 <= i < len(grid)]
    scores = dict(zip(first, score(first), strict=True))
    for step in (-1, 1):
        i = middle + step
        while 0 <= i + step < len(grid) and scores[grid[i]] < scores[grid[i - step]]:
            i += step
            scores[grid[i]] = score([grid[i]])[0]
    return scores


__all__ = ["BALANCE_GRID", "ELBOW", "MERGE_CORRELATION", "Selection", "block_scale",
           "held_out_error", "merge_groups", "select", "split_error", "splits"]
