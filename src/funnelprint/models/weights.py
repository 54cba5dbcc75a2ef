"""How much each affinity feature counts: weights learned from the training sequences by
predicting customers' next steps from the steps before them.

No weight is set by hand: a softmax over the catalogue (on a large one, over the items each
feature ranks highest plus uniformly sampled others, each standing for the items it was drawn
from) fitted by L-BFGS gives each feature its weight, so a shop where transitions decide
more than category, or where carts come back, learns that from its own data.

The item statistics the features read (popularity, transitions, co-visits, item-kNN) are
counted without the predicted steps and what follows them, so that a weight measures how
well a feature predicts a step it has not seen (counted with it, a product seen once would
"predict" its own single transition perfectly).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.optimize import minimize

from funnelprint.data.sequences import Sequences, row_of
from funnelprint.models.affinity import FEATURES, REVISIT, ItemSide, block_rows, features

#: Customers whose steps train the weights (a sample bounds the cost).
MAX_TRAINING_ROWS = 2000
#: Up to this many items every item is a candidate (the full softmax).
FULL_SOFTMAX_ITEMS = 1000
#: Above it: the items each of these features ranks highest join the candidates ...
HARD_FEATURES = ("popularity", "trait", "recent", "recent_category", "transition", "covisit",
                 "neighbour")
HARD_PER_FEATURE = 30
#: ... with the items of the row's recent history, and uniformly drawn others.
HISTORY_CANDIDATES = 50
SAMPLED_CANDIDATES = 500
L2 = 1e-3


def fit_weights(sequences: Sequences, profile: Callable[[Sequences], np.ndarray],
                items_from: Callable[[Sequences], ItemSide], action_names: tuple[str, ...],
                last_n: int, decay: float, seed: int) -> np.ndarray:
    """The feature weights, learned on a sample of the training customers in two steps.

    First, how to rank items a customer has not touched: each customer's last step to an
    item new to them is the target, among the items new to them, from the steps before it.
    Then, with those weights fixed, how much a touched item (and one left in the cart)
    comes back: the last step is the target among every item, from the steps before it.
    ``profile`` gives the trait mix of each row of a history; ``items_from`` the item
    side counted on given sequences (see the module docstring).
    """
    rng = np.random.default_rng(seed)
    eligible = np.flatnonzero(sequences.lengths >= 2)
    if eligible.size == 0:
        raise ValueError("the trait recommender needs customers with two or more steps")
    rows = np.sort(rng.choice(eligible, min(eligible.size, MAX_TRAINING_ROWS), replace=False))
    seq = sequences.select(rows)
    revisit = np.isin(FEATURES, REVISIT)
    weights = np.zeros(len(FEATURES))
    new_at = last_new_step(seq)
    has_new = new_at >= 1
    if has_new.any():
        at = new_at[has_new]
        weights = _learn_step(sequences, rows[has_new], at, profile, items_from, action_names,
                              last_n, decay, seed, ~revisit, weights, new_only=True)
    # Two weights need fewer rows: a random half of the sample, each at its last step.
    half = np.sort(rng.permutation(rows.size)[: max(1, rows.size // 2)])
    return _learn_step(sequences, rows[half], seq.lengths[half] - 1, profile, items_from,
                       action_names, last_n, decay, seed + 1, revisit, weights, new_only=False)


def _learn_step(sequences: Sequences, rows: np.ndarray, at: np.ndarray,
                profile: Callable[[Sequences], np.ndarray],
                items_from: Callable[[Sequences], ItemSide], action_names: tuple[str, ...],
                last_n: int, decay: float, seed: int, free: np.ndarray, start: np.ndarray,
                new_only: bool) -> np.ndarray:
    """Weights (``free`` ones moving from ``start``) predicting the step at position ``at``
    of each of ``rows`` from the steps before it.

    The statistics come from every step but the predicted ones and those after them; as
    in a leak-free evaluation, only items those steps hold are candidates (a target that
    only the predicted steps touch is left out)."""
    cut = sequences.lengths.copy()
    cut[rows] = at
    held = sequences.mask(sequences.positions() < np.repeat(cut, sequences.lengths))
    items = items_from(held)
    targets = sequences.items[sequences.offsets[rows] + at].astype(np.int64)
    known = np.bincount(held.items, minlength=items.n_items) > 0
    if not known[targets].any():
        return start
    rows, targets = rows[known[targets]], targets[known[targets]]
    history = held.select(rows)
    stack, columns, allowed, correction = training_stack(
        history, profile(history), targets, items, action_names, last_n, decay, seed, new_only,
        known)
    return learn_weights(stack, columns, allowed, free, start, correction)


def last_new_step(seq: Sequences) -> np.ndarray:
    """Position in its row of each row's last step to an item not in the steps before it
    (-1 where there is none)."""
    n_items = int(seq.items.max(initial=0)) + 1
    row = row_of(seq.offsets)
    key = row.astype(np.int64) * n_items + seq.items
    _, first = np.unique(key, return_index=True)
    new = np.zeros(key.size, dtype=bool)
    new[first] = True
    out = np.full(seq.n_rows, -1, dtype=np.int64)
    np.maximum.at(out, row[new], seq.positions()[new])
    return out


def training_stack(history: Sequences, mix: np.ndarray, targets: np.ndarray, items: ItemSide,
                   action_names: tuple[str, ...], last_n: int, decay: float, seed: int,
                   new_only: bool, known: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Features of every training row's candidates ``(rows, C, F)``, the target's column in
    each row, which candidates compete (``new_only``: only those not in the history; only
    ``known`` items, a mask, where given) and the logits' corrections (see
    :func:`candidates`)."""
    n_items = items.n_items
    full = n_items <= FULL_SOFTMAX_ITEMS
    width = n_items if full else 1 + HISTORY_CANDIDATES + len(HARD_FEATURES) * min(
        HARD_PER_FEATURE, n_items) + SAMPLED_CANDIDATES
    stack = np.empty((targets.size, width, len(FEATURES)), dtype=np.float32)
    columns = np.empty((targets.size, width), dtype=np.int64)
    allowed = np.ones((targets.size, width), dtype=bool)
    correction = np.zeros((targets.size, width))
    rng = np.random.default_rng(seed)
    step = block_rows(n_items)
    for start in range(0, targets.size, step):
        rows = np.arange(start, min(start + step, targets.size))
        part = history.select(rows)
        block = features(part, mix[rows], items, action_names, last_n, decay)
        if full:
            columns[rows] = np.arange(n_items)
        else:
            columns[rows], allowed[rows], correction[rows] = candidates(
                block, targets[rows], part, rng)
        picked = np.take_along_axis(block, columns[rows][None, :, :], axis=2)
        stack[rows] = picked.transpose(1, 2, 0)
    if known is not None:
        allowed &= known[columns]
    target_columns = targets if full else np.zeros_like(targets)
    if new_only:
        allowed &= stack[:, :, FEATURES.index("seen")] == 0
        allowed[np.arange(targets.size), target_columns] = True
    return stack, target_columns, allowed, correction


def candidates(block: np.ndarray, targets: np.ndarray, history: Sequences,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Candidate columns of a block of rows (features ``block``, (F, rows, items)), the
    target first; which of them compete; the log-correction added to each one's logit.

    The target, the items of the row's last ``HISTORY_CANDIDATES`` steps and the
    ``HARD_PER_FEATURE`` items each of :data:`HARD_FEATURES` ranks highest are candidates
    themselves (each once); ``SAMPLED_CANDIDATES`` uniform draws from the other items
    stand for all of them (the sampled-softmax correction log(others / draws))."""
    rows, n_items = targets.size, block.shape[2]
    recent = history.last(HISTORY_CANDIDATES)
    seen = np.repeat(targets[:, None], HISTORY_CANDIDATES, axis=1)
    real = np.zeros(seen.shape, dtype=bool)
    seen[row_of(recent.offsets), recent.positions()] = recent.items
    real[row_of(recent.offsets), recent.positions()] = True
    hard_n = min(HARD_PER_FEATURE, n_items)
    hard = [np.argpartition(-block[FEATURES.index(f)], hard_n - 1, axis=1)[:, :hard_n]
            for f in HARD_FEATURES]
    fixed = np.concatenate([targets[:, None], seen, *hard], axis=1)
    valid = np.concatenate([np.ones((rows, 1), bool), real,
                            np.ones((rows, fixed.shape[1] - 1 - seen.shape[1]), bool)], axis=1)
    allowed = valid & _first_occurrence(np.where(valid, fixed, -1))
    row_keys = np.arange(rows, dtype=np.int64)[:, None] * n_items
    taken = (row_keys + fixed)[allowed]
    drawn = rng.integers(0, n_items, (rows, SAMPLED_CANDIDATES))
    fresh = ~np.isin(row_keys + drawn, taken)
    others = n_items - allowed.sum(axis=1)
    draws = np.maximum(fresh.sum(axis=1), 1)
    correction = np.zeros((rows, fixed.shape[1] + SAMPLED_CANDIDATES))
    correction[:, fixed.shape[1]:] = np.log(np.maximum(others, 1) / draws)[:, None]
    return (np.concatenate([fixed, drawn], axis=1), np.concatenate([allowed, fresh], axis=1),
            correction)


def _first_occurrence(columns: np.ndarray) -> np.ndarray:
    """True at the first occurrence of each value in its row (-1: never)."""
    order = np.argsort(columns, axis=1, kind="stable")
    ordered = np.take_along_axis(columns, order, axis=1)
    first = np.c_[np.ones((columns.shape[0], 1), bool), ordered[:, 1:] != ordered[:, :-1]]
    out = np.empty(columns.shape, dtype=bool)
    np.put_along_axis(out, order, first, axis=1)
    return out & (columns >= 0)


def learn_weights(stack: np.ndarray, target_columns: np.ndarray, allowed: np.ndarray,
                  free: np.ndarray, start: np.ndarray, correction: np.ndarray | None = None
                  ) -> np.ndarray:
    """Weights that maximise the softmax likelihood of the target column of every row of
    ``stack`` (rows, candidates, F) among its ``allowed`` candidates (L-BFGS, L2 penalty);
    only the ``free`` weights move from ``start``; ``correction`` is added to the logits
    (sampled candidates' log weight)."""
    x = np.ascontiguousarray(stack, dtype=np.float64)
    rows = np.arange(x.shape[0])
    x_target = x[rows, target_columns]  # (rows, F)
    blocked = ~allowed

    def loss_and_grad(moving: np.ndarray) -> tuple[float, np.ndarray]:
        w = start.astype(np.float64).copy()
        w[free] = moving
        logits = x @ w
        if correction is not None:
            logits += correction
        logits[blocked] = -np.inf
        top = logits.max(axis=1, keepdims=True)
        p = np.exp(logits - top)
        total = p.sum(axis=1, keepdims=True)
        p /= total
        nll = float(np.mean(np.log(total[:, 0]) + top[:, 0] - logits[rows, target_columns]))
        grad = np.einsum("rc,rcf->f", p, x) / x.shape[0] - x_target.mean(axis=0)
        return nll + L2 * float(moving @ moving), grad[free] + 2 * L2 * moving

    result = minimize(loss_and_grad, start[free].astype(np.float64), jac=True,
                      method="L-BFGS-B", options={"maxiter": 200})
    out = start.astype(np.float64).copy()
    out[free] = result.x
    return out
