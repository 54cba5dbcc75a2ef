"""What the trait recommender knows about a (customer, item) pair, and how much each of it
counts: affinity features computed in blocks of customers, and their weights learned from
the training sequences by predicting each customer's last step from the steps before it.

Features (one rows x items matrix each):

``popularity``      log share of the item's training interactions
``trait``           cosine of the customer's trait mix and the item's traits
``recent``          cosine of the recency-weighted vector of the last items and the item's
``category``        share of the customer's steps in the item's category
``recent_category`` share of the customer's last steps in the item's category
``price``           0.5 - |customer's mean price position - item's| (0 where either is unknown)
``carted_price``    the same with the mean over the customer's carted and bought items
``left_in_cart``    1 where the customer carted the item and neither bought nor removed it after
``seen``            1 where the item is in the customer's history

No weight is set by hand: a softmax over the catalogue (or over sampled candidates on a
large one) fitted by L-BFGS gives each feature its weight, so a shop where price decides
more than category, or where carts come back, learns that from its own data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from funnelprint.data.sequences import Sequences, row_of
from funnelprint.models.item2vec import recent_query
from funnelprint.profile.features import unit_rows

FEATURES = ("popularity", "trait", "recent", "category", "recent_category", "price",
            "carted_price", "left_in_cart", "seen")
#: Customers whose last step trains the weights (a sample bounds the cost).
MAX_TRAINING_ROWS = 3000
#: Above this many items the weights train on the target and sampled candidates.
FULL_SOFTMAX_ITEMS = 2000
SAMPLED_CANDIDATES = 1000
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
    out[6] = _price_fit(history, carted, items)
    out[7] = _left_in_cart(history, action_names, items.n_items)
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


def _price_fit(history: Sequences, use: np.ndarray, items: ItemSide) -> np.ndarray:
    rows = history.n_rows
    position = items.price_positions[history.items]
    use = use & np.isfinite(position)
    row = row_of(history.offsets)[use]
    n = np.bincount(row, minlength=rows)
    mean = np.bincount(row, position[use], minlength=rows) / np.maximum(n, 1)
    fit = 0.5 - np.abs(mean[:, None] - items.price_positions[None, :])
    known = (n > 0)[:, None] & np.isfinite(items.price_positions)[None, :]
    return np.where(known, fit, 0.0).astype(np.float32)


def _left_in_cart(history: Sequences, action_names: tuple[str, ...], n_items: int) -> np.ndarray:
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


def candidates(n_items: int, targets: np.ndarray, seed: int) -> np.ndarray:
    """Candidate columns per training row, the target first: the whole catalogue when it is
    small, else the target and uniformly sampled items."""
    rows = targets.size
    if n_items <= FULL_SOFTMAX_ITEMS:
        return np.broadcast_to(np.arange(n_items), (rows, n_items))
    rng = np.random.default_rng(seed)
    return np.concatenate([targets[:, None], rng.integers(0, n_items, (rows, SAMPLED_CANDIDATES))],
                          axis=1)


def learn_weights(stack: np.ndarray, target_columns: np.ndarray) -> np.ndarray:
    """Weights of the features that maximise the softmax likelihood of the target column of
    every row of ``stack`` (rows, candidates, F)."""
    x = torch.from_numpy(np.ascontiguousarray(stack, dtype=np.float32))
    target = torch.from_numpy(target_columns.astype(np.int64))
    weights = torch.zeros(stack.shape[2], dtype=torch.float32, requires_grad=True)
    optimiser = torch.optim.LBFGS([weights], max_iter=100, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = (torch.nn.functional.cross_entropy(x @ weights, target)
                + L2 * weights.square().sum())
        loss.backward()
        return loss

    optimiser.step(closure)
    return weights.detach().numpy().astype(np.float64)


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
                   action_names: tuple[str, ...], last_n: int, decay: float, seed: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Features of every training row's candidates ``(rows, C, F)`` and the target's
    column in each row."""
    columns = candidates(items.n_items, targets, seed)
    stack = np.empty((targets.size, columns.shape[1], len(FEATURES)), dtype=np.float32)
    step = block_rows(items.n_items)
    for start in range(0, targets.size, step):
        rows = np.arange(start, min(start + step, targets.size))
        block = features(history.select(rows), mix[rows], items, action_names, last_n, decay)
        picked = np.take_along_axis(block, columns[rows][None, :, :], axis=2)
        stack[rows] = picked.transpose(1, 2, 0)
    target_columns = targets if items.n_items <= FULL_SOFTMAX_ITEMS else np.zeros_like(targets)
    return stack, target_columns
