"""What the trait recommender knows about a (customer, item) pair: affinity features
computed in blocks of customers, and each feature's contribution to a score.

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
``transition``      how often the item followed the customer's last item (first-order
                    transitions: a Markov chain), log-scaled
``covisit``         how often it shared a visit with the customer's last items (cosine), log-scaled
``neighbour``       how often it shared a customer with the customer's items (item-kNN
                    cosine, every step, the k-th most recent weighing 0.9**k), log-scaled
``left_in_cart``    1 where the customer carted the item and neither bought nor removed it after
``seen``            1 where the item is in the customer's history
``touches``         the customer's steps on the item, the k-th most recent weighing
                    ``decay``**k (repeats, and how recent they are)

The weights are learned (see :mod:`funnelprint.models.weights`), never set by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from funnelprint.data.sequences import Sequences, row_of
from funnelprint.models.item2vec import recent_query
from funnelprint.models.signals import ItemLinks, reach, recency_matrix
from funnelprint.profile.features import unit_rows

FEATURES = ("popularity", "trait", "recent", "category", "recent_category", "price",
            "carted_price", "transition", "covisit", "neighbour", "left_in_cart", "seen",
            "touches")
#: Features of items the customer touched already (learned in a second step).
REVISIT = ("left_in_cart", "seen", "touches")
#: Link features and the link matrix each reads.
LINKED = {"transition": "transitions", "covisit": "covisits", "neighbour": "neighbours"}
#: Steps whose transitions the ``transition`` feature follows (the last one: a Markov chain).
TRANSITION_STEPS = 1
#: Recency decay of the whole-history item-kNN query (the ``itemknn`` baseline's).
NEIGHBOUR_DECAY = 0.9
#: Link strengths below this count as "no link" in the log scale: log1p(x / LINK_SCALE).
LINK_SCALE = 0.01
#: Rows whose features are computed at once (bounds memory on large catalogues).
BLOCK_CELLS = 4_000_000


@dataclass(frozen=True)
class ItemSide:
    """What is known of every item: counts, trait and embedding rows, category codes
    (-1 unknown), price positions (NaN unknown) and links to other items."""

    log_popularity: np.ndarray
    traits: np.ndarray  # unit rows
    vectors: np.ndarray  # unit rows
    categories: np.ndarray
    price_positions: np.ndarray
    n_categories: int
    links: ItemLinks
    # Catalogue-wide sums that every row's reasons compare with, computed once here so that
    # a request costs no pass over the catalogue: mean trait and embedding rows, items per
    # category, the known price positions sorted and their prefix sums.
    trait_mean: np.ndarray = field(init=False, repr=False)
    vector_mean: np.ndarray = field(init=False, repr=False)
    category_sizes: np.ndarray = field(init=False, repr=False)
    known_positions: np.ndarray = field(init=False, repr=False)
    position_prefix: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        known = np.sort(self.price_positions[np.isfinite(self.price_positions)])
        derived = {
            "trait_mean": self.traits.mean(axis=0), "vector_mean": self.vectors.mean(axis=0),
            "category_sizes": np.bincount(self.categories[self.categories >= 0],
                                          minlength=self.n_categories),
            "known_positions": known, "position_prefix": np.r_[0.0, np.cumsum(known)]}
        for name, value in derived.items():
            object.__setattr__(self, name, value)

    @classmethod
    def build(cls, counts: np.ndarray, traits: np.ndarray, vectors: np.ndarray,
              categories: np.ndarray | None, price_positions: np.ndarray, links: ItemLinks
              ) -> ItemSide:
        n = counts.size
        if categories is None:
            codes, n_codes = np.full(n, -1, dtype=np.int64), 0
        else:
            names, codes = np.unique(np.asarray(categories, dtype=str), return_inverse=True)
            codes = np.where(np.asarray(categories, dtype=str) == "", -1, codes)
            n_codes = names.size
        return cls(log_share(counts), unit_rows(traits), unit_rows(vectors),
                   codes.astype(np.int64), np.asarray(price_positions, dtype=np.float64),
                   n_codes, links)

    @property
    def n_items(self) -> int:
        return self.log_popularity.size


def log_share(counts: np.ndarray) -> np.ndarray:
    """log((count + 1) / (largest count + 1)): 0 for the most popular item."""
    return np.log((counts + 1.0) / (counts.max(initial=0) + 1.0))


def features(history: Sequences, mix: np.ndarray, items: ItemSide, action_names: tuple[str, ...],
             last_n: int, decay: float) -> np.ndarray:
    """The ``(len(FEATURES), rows, items)`` feature stack of every row of ``history``;
    ``mix`` holds the rows' trait mixes."""
    rows = history.n_rows
    out = np.zeros((len(FEATURES), rows, items.n_items), dtype=np.float32)
    at = FEATURES.index
    out[at("popularity")] = items.log_popularity
    out[at("trait")] = unit_rows(mix) @ items.traits.T
    out[at("recent")] = unit_rows(recent_query(history, items.vectors, last_n, decay)) \
        @ items.vectors.T
    out[at("category")] = _category_share(history, items)
    out[at("recent_category")] = _category_share(history.last(last_n), items)
    carted = _flag(history, action_names, "add_to_cart", "purchase")
    out[at("price")] = _price_fit(history, np.ones(history.items.size, dtype=bool), items)
    out[at("carted_price")] = _price_fit(history, carted, items, side=True)
    for name, matrix in LINKED.items():
        out[at(name)] = link_scale(reach(history, getattr(items.links, matrix),
                                         *link_query(name, last_n, decay)))
    out[at("left_in_cart")] = left_in_cart(history, action_names, items.n_items)
    out[at("seen")] = _seen(history, items.n_items)
    out[at("touches")] = recency_matrix(history, items.n_items, None, decay).toarray()
    return out


def features_at(history: Sequences, mix: np.ndarray, items: ItemSide,
                action_names: tuple[str, ...], last_n: int, decay: float,
                columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The features of the given items only, ``(len(FEATURES), rows, k)`` for ``columns``
    (rows, k; -1 entries read item 0), and every feature's mean over the catalogue per row,
    ``(len(FEATURES), rows)``: what :func:`features` would give, without a rows x catalogue
    matrix per feature (a score's reasons need no more)."""
    rows, n = history.n_rows, items.n_items
    cols = np.maximum(columns, 0)
    at = FEATURES.index
    out = np.zeros((len(FEATURES), rows, cols.shape[1]), dtype=np.float64)
    mean = np.zeros((len(FEATURES), rows))
    out[at("popularity")] = items.log_popularity[cols]
    mean[at("popularity")] = items.log_popularity.mean()
    for name, query in (("trait", unit_rows(mix)), ("recent", unit_rows(
            recent_query(history, items.vectors, last_n, decay)))):
        table = items.traits if name == "trait" else items.vectors
        out[at(name)] = np.einsum("rd,rkd->rk", query, table[cols])
        mean[at(name)] = query @ (items.trait_mean if name == "trait" else items.vector_mean)
    for name, part in (("category", history), ("recent_category", history.last(last_n))):
        share = _category_shares(part, items)
        codes = items.categories[cols]
        out[at(name)] = np.where(codes >= 0, np.take_along_axis(
            share, np.maximum(codes, 0), axis=1), 0.0) if share.shape[1] else 0.0
        mean[at(name)] = share @ items.category_sizes / n
    carted = _flag(history, action_names, "add_to_cart", "purchase")
    for name, use, side in (("price", np.ones(history.items.size, dtype=bool), False),
                            ("carted_price", carted, True)):
        usual = _mean_price(history, use, items)
        position = items.price_positions[cols]
        fit = (4.0 * (usual[:, None] - 0.5) * (position - 0.5) if side
               else 0.5 - np.abs(usual[:, None] - position))
        out[at(name)] = np.where(np.isfinite(usual)[:, None] & np.isfinite(position), fit, 0.0)
        mean[at(name)] = _mean_price_fit(usual, items, side)
    for name, matrix in LINKED.items():
        query = recency_matrix(history, n, *link_query(name, last_n, decay))
        strength = (query @ getattr(items.links, matrix)).tocsr()
        strength.data = np.log1p(strength.data / LINK_SCALE)
        out[at(name)] = _entries(strength, cols)
        mean[at(name)] = np.asarray(strength.sum(axis=1)).ravel() / n
    left = sp.csr_matrix(left_in_cart(history, action_names, n))
    for name, matrix in (("left_in_cart", left), ("seen", _seen_matrix(history, n)),
                         ("touches", recency_matrix(history, n, None, decay))):
        out[at(name)] = _entries(matrix, cols)
        mean[at(name)] = np.asarray(matrix.sum(axis=1)).ravel() / n
    return out.astype(np.float32), mean


def _entries(matrix: sp.spmatrix, columns: np.ndarray) -> np.ndarray:
    """``matrix[r, columns[r, j]]`` for every row ``r`` and ``j``."""
    rows = np.repeat(np.arange(columns.shape[0]), columns.shape[1])
    return np.asarray(sp.csr_matrix(matrix)[rows, columns.ravel()]).reshape(columns.shape)


def _seen_matrix(history: Sequences, n_items: int) -> sp.csr_matrix:
    out = sp.csr_matrix((np.ones(history.items.size), (row_of(history.offsets),
                                                        history.items)),
                        shape=(history.n_rows, n_items))
    out.sum_duplicates()
    out.data[:] = 1.0
    return out


def _mean_price(history: Sequences, use: np.ndarray, items: ItemSide) -> np.ndarray:
    """Each row's mean price position over the ``use``d steps with a known price (NaN
    where none)."""
    position = items.price_positions[history.items]
    use = use & np.isfinite(position)
    row = row_of(history.offsets)[use]
    n = np.bincount(row, minlength=history.n_rows)
    total = np.bincount(row, position[use], minlength=history.n_rows)
    return np.where(n > 0, total / np.maximum(n, 1), np.nan)


def _mean_price_fit(usual: np.ndarray, items: ItemSide, side: bool) -> np.ndarray:
    """The mean over every item (unknown prices count 0) of :func:`_price_fit`'s value for
    rows whose mean position is ``usual``."""
    known, prefix = items.known_positions, items.position_prefix
    n, m = items.n_items, np.nan_to_num(usual)
    if side:
        out = 4.0 * (m - 0.5) * (prefix[-1] - 0.5 * known.size) / max(n, 1)
    else:  # 0.5 - |m - p| summed with prefix sums of the sorted positions
        below = np.searchsorted(known, m)
        distance = (m * below - prefix[below]) + (prefix[-1] - prefix[below]
                                                  - m * (known.size - below))
        out = (0.5 * known.size - distance) / max(n, 1)
    return np.where(np.isfinite(usual), out, 0.0)


def link_query(name: str, last_n: int, decay: float) -> tuple[int | None, float]:
    """The history steps (the last few, or all: None) and recency decay of a link
    feature's query."""
    if name == "transition":
        return TRANSITION_STEPS, decay
    return (None, NEIGHBOUR_DECAY) if name == "neighbour" else (last_n, decay)


def link_scale(strength: np.ndarray) -> np.ndarray:
    """Link strengths on a log scale: a link of 0.5 and one of 0.05 differ as much as
    0.05 and 0.005 (what a product of evidence needs), 0 stays 0."""
    return np.log1p(strength / LINK_SCALE).astype(np.float32)


def _flag(history: Sequences, action_names: tuple[str, ...], *names: str) -> np.ndarray:
    codes = [action_names.index(n) for n in names if n in action_names]
    return np.isin(history.actions, codes)


def _category_shares(history: Sequences, items: ItemSide) -> np.ndarray:
    """Each row's share of steps in every category, (rows, categories)."""
    codes = items.categories[history.items]
    known = codes >= 0
    counts = sp.csr_matrix((np.ones(int(known.sum())), (row_of(history.offsets)[known],
                                                          codes[known])),
                           shape=(history.n_rows, items.n_categories)).toarray()
    return counts / np.maximum(history.lengths, 1)[:, None]


def _category_share(history: Sequences, items: ItemSide) -> np.ndarray:
    rows = history.n_rows
    if items.n_categories == 0:
        return np.zeros((rows, items.n_items), dtype=np.float32)
    share = _category_shares(history, items)
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
