"""What the trait recommender knows about a (customer, item) pair, and how much each of it
counts: affinity features computed in blocks of customers, and their weights learned from
the training sequences by predicting each customer's last step from the steps before it.

Features (one rows x items matrix each):

``popularity``      log share of the item's training interactions
``trait``           cosine of the customer's trait mix and the item's traits
``recent``          cosine of the recency-weighted vector of the last items and the item's
``category``        share of the customer's steps in the item's category
``recent_category`` share of the customer's last steps in the item's category
``price``           0.5 - |customer's mean price percentile - item's| (0 where either is unknown)
``carted_price``    4 (customer's mean price percentile over carts and purchases - 0.5)
                    (item's - 0.5): positive when both sit on the cheap side or both on
                    the dear side
``left_in_cart``    1 where the customer carted the item and neither bought nor removed it after
``seen``            1 where the item is in the customer's history

No weight is set by hand: a softmax over the catalogue (or over sampled candidates on a
large one) fitted by L-BFGS gives each feature its weight, so a shop where price decides
more than category, or where carts come back, learns that from its own data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.optimize import minimize

from funnelprint.data.sequences import Sequences, row_of
from funnelprint.models.item2vec import recent_query
from funnelprint.profile.features import unit_rows

FEATURES = ("popularity", "trait", "recent", "category", "recent_category", "price",
            "carted_price", "left_in_cart", "seen")
#: Customers whose last step trains the weights (a sample bounds the cost).
MAX_TRAINING_ROWS = 2000
#: Above this many items the weights train on the target and uniformly sampled candidates
#: (a handful of weights needs no full softmax to be estimated well).
FULL_SOFTMAX_ITEMS = 500
SAMPLED_CANDIDATES = 500
#: Steps of a customer's recent history whose items join the sampled candidates.
HISTORY_CANDIDATES = 50
#: Rows whose features are computed at once (bounds memory on large catalogues).
BLOCK_CELLS = 4_000_000
L2 = 1e-3


@dataclass(frozen=True)
class ItemSide:
    """What is known of every item: counts, trait and embedding rows, category codes
    (-1 unknown), price positions (NaN unknown)."""

    log_popularity: np.ndarray
    traits: np.ndarray  # unit rows
    vectors: np.ndarray  # unit rows
    categories: np.ndarray
    price_positions: np.ndarray
    n_categories: int

    @classmethod
    def build(cls, counts: np.ndarray, traits: np.ndarray, vectors: np.ndarray,
              categories: np.ndarray | None, price_positions: np.ndarray) -> ItemSide:
        n = counts.size
        if categories is None:
            codes, n_codes = np.full(n, -1, dtype=np.int64), 0
        else:
            names, codes = np.unique(np.asarray(categories, dtype=str), return_inverse=True)
            codes = np.where(np.asarray(categories, dtype=str) == "", -1, codes)
            n_codes = names.size
        share = (counts + 1.0) / (counts.max(initial=0) + 1.0)
        return cls(np.log(share), unit_rows(traits), unit_rows(vectors), codes.astype(np.int64),
                   np.asarray(price_positions, dtype=np.float64), n_codes)

    @property
    def n_items(self) -> int:
        return self.log_popularity.size


def features(history: Sequences, mix: np.ndarray, items: ItemSide, action_names: tuple[str, ...],
             last_n: int, decay: float) -> np.ndarray:
    """The ``(len(FEATURES), rows, items)`` feature stack of every row of ``history``;
    ``mix`` holds the rows' trait mixes."""
    rows = history.n_rows
    out = np.zeros((len(FEATURES), rows, items.n_items), dtype=np.float32)
    out[0] = items.log_popularity
    out[1] = unit_rows(mix) @ items.traits.T
    out[2] = unit_rows(recent_query(history, items.vectors, last_n, decay)) @ items.vectors.T
    out[3] = _category_share(history, items)
    out[4] = _category_share(history.last(last_n), items)
    carted = _flag(history, action_names, "add_to_cart", "purchase")
    out[5] = _price_fit(history, np.ones(history.items.size, dtype=bool), items)
    out[6] = _price_fit(history, carted, items, side=True)
    out[7] = left_in_cart(history, action_names, items.n_items)
    out[8] = _seen(history, items.n_items)
    return out


def _flag(history: Sequences, action_names: tuple[str, ...], *names: str) -> np.ndarray:
    codes = [action_names.index(n) for n in names if n in action_names]
    return np.isin(history.actions, codes)


def _category_share(history: Sequences, items: ItemSide) -> np.ndarray:
    rows = history.n_rows
    if items.n_categories == 0:
        return np.zeros((rows, items.n_items), dtype=np.float32)
    codes = items.categories[history.items]
    known = codes >= 0
    counts = sp.csr_matrix((np.ones(int(known.sum())), (row_of(history.offsets)[known],
                                                          codes[known])),
                           shape=(rows, items.n_categories)).toarray()
    share = counts / np.maximum(history.lengths, 1)[:, None]
    out = np.zeros((rows, items.n_items), dtype=np.float32)
    has = items.categories >= 0
    out[:, has] = share[:, items.categories[has]]
    return out


def _price_fit(history: Sequences, use: np.ndarray, items: ItemSide, side: bool = False
               ) -> np.ndarray:
    rows = history.n_rows
    position = items.price_positions[history.items]
    use = use & np.isfinite(position)
    row = row_of(history.offsets)[use]
    n = np.bincount(row, minlength=rows)
    mean = np.bincount(row, position[use], minlength=rows) / np.maximum(n, 1)
    gap = mean[:, None] - items.price_positions[None, :]
    # Closeness (0.5 - distance), or ``side``: agreement on which side of the middle
    # (positive when both are cheap or both dear, strongest at the ends).
    fit = (4.0 * (mean[:, None] - 0.5) * (items.price_positions[None, :] - 0.5) if side
           else 0.5 - np.abs(gap))
    known = (n > 0)[:, None] & np.isfinite(items.price_positions)[None, :]
    return np.where(known, fit, 0.0).astype(np.float32)


def left_in_cart(history: Sequences, action_names: tuple[str, ...], n_items: int) -> np.ndarray:
    """Items whose last cart-related step (cart, removal, purchase) is a cart."""
    rows = history.n_rows
    out = np.zeros((rows, n_items), dtype=np.float32)
    cart = _flag(history, action_names, "add_to_cart")
    related = cart | _flag(history, action_names, "remove_from_cart", "purchase")
    if not related.any():
        return out
    row = row_of(history.offsets)[related]
    item = history.items[related].astype(np.int64)
    key = row * n_items + item
    # The last related step of each (row, item): keys in time order, keep the final one.
    last = np.zeros(key.size, dtype=bool)
    _, first_from_end = np.unique(key[::-1], return_index=True)
    last[key.size - 1 - first_from_end] = True
    left = last & cart[related]
    out[row[left], item[left]] = 1.0
    return out


def _seen(history: Sequences, n_items: int) -> np.ndarray:
    out = np.zeros((history.n_rows, n_items), dtype=np.float32)
    out[row_of(history.offsets), history.items] = 1.0
    return out


def candidates(n_items: int, targets: np.ndarray, history: Sequences, seed: int
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Candidate columns per training row, the target first, which of them compete, and
    the log-correction added to each candidate's logit.

    A small catalogue: every item. A large one: the target; the items of the row's last
    ``HISTORY_CANDIDATES`` steps (so that seen items compete as they do in serving); and
    ``SAMPLED_CANDIDATES`` uniformly drawn other items, each standing for
    (n_items - 1) / ``SAMPLED_CANDIDATES`` items (the sampled-softmax correction).
    """
    rows = targets.size
    if n_items <= FULL_SOFTMAX_ITEMS:
        columns = np.broadcast_to(np.arange(n_items), (rows, n_items))
        return columns, np.ones(columns.shape, dtype=bool), np.zeros(columns.shape)
    recent = history.last(HISTORY_CANDIDATES)
    row, at = row_of(recent.offsets), recent.positions()
    seen = np.repeat(targets[:, None], HISTORY_CANDIDATES, axis=1)
    seen[row, at] = recent.items
    real = np.zeros(seen.shape, dtype=bool)
    real[row, at] = True
    order = np.argsort(seen, axis=1, kind="stable")
    first = np.ones(seen.shape, dtype=bool)
    ordered = np.take_along_axis(seen, order, axis=1)
    np.put_along_axis(first, order, np.c_[np.ones((rows, 1), bool),
                                          ordered[:, 1:] != ordered[:, :-1]], axis=1)
    seen_ok = real & first & (seen != targets[:, None])
    rng = np.random.default_rng(seed)
    drawn = rng.integers(0, n_items - 1, (rows, SAMPLED_CANDIDATES))
    drawn += drawn >= targets[:, None]  # never the target itself
    columns = np.concatenate([targets[:, None], seen, drawn], axis=1)
    allowed = np.concatenate([np.ones((rows, 1), bool), seen_ok,
                              np.ones(drawn.shape, bool)], axis=1)
    correction = np.zeros(columns.shape)
    correction[:, 1 + HISTORY_CANDIDATES:] = np.log((n_items - 1) / SAMPLED_CANDIDATES)
    return columns, allowed, correction


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


def fit_weights(sequences: Sequences, profile: Callable[[Sequences], np.ndarray],
                items: ItemSide, action_names: tuple[str, ...], last_n: int, decay: float,
                seed: int) -> np.ndarray:
    """The feature weights, learned on a sample of the training customers in two steps.

    First, how to rank items a customer has not touched: each customer's last step to an
    item new to them is the target, among the items new to them, from the steps before it.
    Then, with those weights fixed, how much a touched item (and one left in the cart)
    comes back: the last step is the target among every item, from the steps before it.
    ``profile`` gives the trait mix of each row of a history.
    """
    rng = np.random.default_rng(seed)
    eligible = np.flatnonzero(sequences.lengths >= 2)
    if eligible.size == 0:
        raise ValueError("the trait recommender needs customers with two or more steps")
    rows = np.sort(rng.choice(eligible, min(eligible.size, MAX_TRAINING_ROWS), replace=False))
    seq = sequences.select(rows)
    revisit = np.isin(np.arange(len(FEATURES)), [FEATURES.index("left_in_cart"),
                                                 FEATURES.index("seen")])
    weights = np.zeros(len(FEATURES))
    new_at = _last_new_step(seq)
    has_new = new_at >= 1
    if has_new.any():
        part = seq.select(np.flatnonzero(has_new))
        at = new_at[has_new]
        history = part.mask(part.positions() < np.repeat(at, part.lengths))
        targets = part.items[part.offsets[:-1] + at].astype(np.int64)
        stack, columns, allowed, correction = training_stack(
            history, profile(history), targets, items, action_names, last_n, decay, seed, True)
        weights = learn_weights(stack, columns, allowed, ~revisit, weights, correction)
    history = seq.drop_last(1)
    targets = seq.items[seq.offsets[1:] - 1].astype(np.int64)
    # Two weights need fewer rows: a random half of the sample.
    half = np.sort(rng.permutation(targets.size)[: max(1, targets.size // 2)])
    history = history.select(half)
    stack, columns, allowed, correction = training_stack(
        history, profile(history), targets[half], items, action_names, last_n, decay,
        seed + 1, False)
    return learn_weights(stack, columns, allowed, revisit, weights, correction)


def _last_new_step(seq: Sequences) -> np.ndarray:
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


def block_rows(n_items: int) -> int:
    """Rows whose feature stack fits in ``BLOCK_CELLS`` cells."""
    return max(1, BLOCK_CELLS // (len(FEATURES) * max(1, n_items)))


def weighted_scores(history: Sequences, mix: np.ndarray, items: ItemSide,
                    action_names: tuple[str, ...], last_n: int, decay: float,
                    weights: np.ndarray) -> np.ndarray:
    """``weights`` x features of every (row, item), a block of rows at a time."""
    out = np.empty((history.n_rows, items.n_items), dtype=np.float32)
    step = block_rows(items.n_items)
    for start in range(0, history.n_rows, step):
        rows = np.arange(start, min(start + step, history.n_rows))
        stack = features(history.select(rows), mix[rows], items, action_names, last_n, decay)
        out[rows] = np.tensordot(weights.astype(np.float32), stack, axes=1)
    return out


def training_stack(history: Sequences, mix: np.ndarray, targets: np.ndarray, items: ItemSide,
                   action_names: tuple[str, ...], last_n: int, decay: float, seed: int,
                   new_only: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Features of every training row's candidates ``(rows, C, F)``, the target's column in
    each row, which candidates compete (``new_only``: only those not in the history) and
    the logits' corrections (see :func:`candidates`)."""
    columns, allowed, correction = candidates(items.n_items, targets, history, seed)
    stack = np.empty((targets.size, columns.shape[1], len(FEATURES)), dtype=np.float32)
    step = block_rows(items.n_items)
    for start in range(0, targets.size, step):
        rows = np.arange(start, min(start + step, targets.size))
        block = features(history.select(rows), mix[rows], items, action_names, last_n, decay)
        picked = np.take_along_axis(block, columns[rows][None, :, :], axis=2)
        stack[rows] = picked.transpose(1, 2, 0)
    full = items.n_items <= FULL_SOFTMAX_ITEMS
    target_columns = targets if full else np.zeros_like(targets)
    if new_only:
        allowed = allowed & (stack[:, :, FEATURES.index("seen")] == 0)
        allowed[np.arange(targets.size), target_columns] = True
    return stack, target_columns, allowed, correction
