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

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn.decomposition import NMF, non_negative_factorization

#: Candidate weights of the behaviour block relative to the taste block (after both are
#: scaled to a unit leading singular value).
BALANCE_GRID = (0.5, 0.71, 1.0, 1.41, 2.0)


def block_scale(block: np.ndarray) -> float:
    """Largest singular value of the centred block (1 for an empty or constant block)."""
    if block.size == 0:
        return 1.0
    centred = block - block.mean(axis=0)
    top = float(np.linalg.norm(centred, 2))
    return top if top > 1e-12 else 1.0


@dataclass(frozen=True)
class Selection:
    """What bi-cross-validation chose and the criterion of every candidate."""

    traits: int
    balance: float
    traits_scores: dict[int, float]
    balance_scores: dict[float, float]


def held_out_error(x: np.ndarray, blocks: np.ndarray, k: int, seed: int,
                   repeats: int = 2) -> float:
    """Bi-cross-validation criterion of a ``k``-trait NMF of ``x``: the sum over blocks
    (``blocks[j]`` is column j's block) of held-out squared error relative to the block's
    column means, averaged over ``repeats`` random splits."""
    rng = np.random.default_rng(seed)
    total = 0.0
    for _ in range(repeats):
        rows = rng.permutation(x.shape[0])
        train, test = rows[: rows.size // 2], rows[rows.size // 2:]
        seen = np.asarray(rng.random(x.shape[1]) < 0.5)
        if seen.all() or not seen.any():
            seen[: x.shape[1] // 2], seen[x.shape[1] // 2:] = True, False
        h = NMF(k, init="nndsvda", max_iter=100, tol=1e-3,
                random_state=seed).fit(x[train]).components_
        w, _, _ = non_negative_factorization(
            x[test][:, seen], H=np.ascontiguousarray(h[:, seen]), n_components=k,
            update_H=False, max_iter=100, tol=1e-3)
        hidden = ~seen
        residual = x[test][:, hidden] - w @ h[:, hidden]
        baseline = x[test][:, hidden] - x[train][:, hidden].mean(axis=0)
        for b in np.unique(blocks[hidden]):
            cols = blocks[hidden] == b
            total += float((residual[:, cols] ** 2).sum()
                           / max((baseline[:, cols] ** 2).sum(), 1e-12))
    return total / repeats


def select(blocks: list[np.ndarray], traits: int | None, seed: int = 0,
           trait_grid: tuple[int, ...] = (), sample: int = 2000) -> Selection:
    """Choose the weight of the behaviour blocks (every block after the first, the taste
    block) from :data:`BALANCE_GRID` and, where ``traits`` is None, the number of traits
    from ``trait_grid``, on at most ``sample`` customers. The blocks are given already
    scaled by :func:`block_scale`."""
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
        grid = [g for g in trait_grid if 2 <= g <= limit] or [min(2, limit)]
        x = stack(1.0)
        k_scores = {g: held_out_error(x, labels, g, seed) for g in grid}
        k = min(k_scores, key=lambda g: (k_scores[g], g))
    balance_scores: dict[float, float] = {}
    balance = 1.0
    if has_behaviour:
        balance_scores = _walk_grid(lambda w: held_out_error(stack(w), labels, k, seed))
        balance = min(balance_scores, key=lambda w: (balance_scores[w], abs(np.log(w))))
    return Selection(int(k), float(balance), k_scores, balance_scores)


def _walk_grid(score: Callable[[float], float]) -> dict[float, float]:
    """Scores along :data:`BALANCE_GRID`, starting at its middle and walking outwards while
    a neighbour scores better (the criterion is unimodal in practice, so this finds the grid
    minimum with about half the fits)."""
    grid = BALANCE_GRID
    middle = len(grid) // 2
    scores = {grid[i]: score(grid[i]) for i in (middle - 1, middle, middle + 1)
              if 0 <= i < len(grid)}
    for step in (-1, 1):
        i = middle + step
        while 0 <= i + step < len(grid) and scores[grid[i]] < scores[grid[i - step]]:
            i += step
            scores[grid[i]] = score(grid[i])
    return scores


__all__ = ["BALANCE_GRID", "Selection", "block_scale", "held_out_error", "select"]
