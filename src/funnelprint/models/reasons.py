"""Reasons for the trait recommender's products that name the true causes of their scores.

A product's score is a weighted sum of its affinity features (:mod:`.affinity`). What lifts
it above the catalogue's other products is, feature by feature, the learned weight times
how far the product's feature stands above the catalogue's mean for that customer: these
contributions sum to the product's score minus the mean score. A reason names the largest
contribution first, then up to two more that are at least a tenth of it, each in words that
hold for this customer and product:

- a trait is named only when it is among the customer's leading traits and the product
  loads on it; otherwise the reason says the product matches the customer's profile;
- "popular" only for the products of the popular head (those that together hold a quarter
  of the training interactions); others are given their interaction count;
- a link (transition, shared visit, shared customer) names the history product that
  contributes most to it, with its count in the training log: "often" only from
  :data:`OFTEN` transitions or shared visits on, and "similar to recent X" says how many
  customers looked at both (or, none, that the two share a category);
- the two category features, when both lift a product, are said once; a category that is
  a bare id is named as one ("category 2053013563651392361");
- "priced like" the customer's products only within :data:`PRICE_ALIKE` printed percentile
  points of their mean (carts: on the same side of the category's middle), "unlike" only
  outside; where the feature's sign and the prices disagree both percentiles are stated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from funnelprint.data.sequences import Sequences, row_of, session_ids
from funnelprint.models.affinity import FEATURES, LINKED, ItemSide, link_query
from funnelprint.models.contract import Evidence, Reason
from funnelprint.models.signals import incidence, shared, successors

#: Share of the training interactions the popular head holds.
POPULAR_SHARE = 0.25
#: A customer's leading traits: their largest ``LEADING`` with at least ``LEADING_SHARE``.
LEADING = 3
LEADING_SHARE = 0.10
#: A product loads on a trait holding at least this share of its trait row.
LOADS = 0.25
#: Further factors are named when their contribution is at least this share of the first.
SECONDARY = 0.1
MAX_FACTORS = 3
#: Steps searched for the history product behind a link (older ones weigh too little).
SOURCE_STEPS = 50
SIMILAR_ENOUGH = 0.3
#: Printed percentile points within which a product is "priced like" the customer's products.
PRICE_ALIKE = 25
#: Shared visits or transitions from which a link is "often"; below, the count is stated.
OFTEN = 3


@dataclass(frozen=True)
class Catalogue:
    """What reasons say about items: ids, counts, categories (names, "" unknown), price
    positions, trait shares (rows summing to 1), unit embedding rows, the popular head, and
    what a link's count is read from: each item's steps followed by another product, and
    the training customers and visits each item has steps in (items x groups)."""

    item_ids: np.ndarray
    counts: np.ndarray
    categories: np.ndarray | None
    trait_shares: np.ndarray
    vectors: np.ndarray
    popular: np.ndarray
    successors: np.ndarray
    by_customer: sp.csr_matrix
    by_visit: sp.csr_matrix

    @classmethod
    def build(cls, item_ids: np.ndarray, counts: np.ndarray, categories: np.ndarray | None,
              item_traits: np.ndarray, vectors: np.ndarray, train: Sequences) -> Catalogue:
        totals = item_traits.sum(axis=1, keepdims=True)
        shares = np.divide(item_traits, totals, out=np.zeros_like(item_traits, dtype=float),
                           where=totals > 0)
        n = item_ids.size
        return cls(item_ids, counts, categories, shares, vectors, popular_head(counts),
                   successors(train, n), incidence(row_of(train.offsets), train.items, n),
                   incidence(session_ids(train), train.items, n))


def popular_head(counts: np.ndarray, share: float = POPULAR_SHARE) -> np.ndarray:
    """The most popular items that together hold ``share`` of all interactions."""
    order = np.argsort(-counts, kind="stable")
    total = counts.sum()
    head = np.zeros(counts.size, dtype=bool)
    if total > 0:
        size = int(np.searchsorted(np.cumsum(counts[order]), share * total) + 1)
        head[order[:size]] = True
    return head & (counts > 0)


@dataclass(frozen=True)
class Customers:
    """What reasons say about the customers of one block: trait mixes, cold starts, trait
    names and the action names."""

    mix: np.ndarray
    cold: np.ndarray
    trait_names: list[str]
    action_names: tuple[str, ...]


def centred_contributions(picked: np.ndarray, mean: np.ndarray, weights: np.ndarray,
                          listed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per listed item (``listed``: (rows, k), -1 padding) and feature: weight x (feature -
    its mean over the catalogue for that row), shape (rows, k, F), which sums to the item's
    score minus the row's mean score; and where the feature stands above its mean.
    ``picked``: the listed items' features (F, rows, k); ``mean``: the means (F, rows)."""
    gap = (picked - mean[:, :, None]).transpose(1, 2, 0)
    out = gap * weights[None, None, :]
    out[listed < 0] = 0.0
    return np.ascontiguousarray(out), gap > 0


def explain(history: Sequences, listed: np.ndarray, parts: np.ndarray, high: np.ndarray,
            items: ItemSide, catalogue: Catalogue, customers: Customers, last_n: int,
            decay: float) -> list[list[Reason]]:
    """Reasons for the ``listed`` items of every row of ``history`` from their centred
    contributions ``parts`` (rows, k, F); ``high`` tells where a feature stands above its
    mean (a contribution of a negative weight comes from a low feature). Everything a
    reason cites is computed for the block at once; only the wording is per item."""
    order = np.argsort(-parts, axis=2, kind="stable")[..., :MAX_FACTORS]
    top = np.take_along_axis(parts, order, axis=2)
    chosen = (top > 0) & (top >= SECONDARY * top[..., :1]) & (listed >= 0)[..., None]
    cited = {name: ((order == FEATURES.index(name)) & chosen).any(axis=2)
             for name in (*LINKED, "recent")}
    facts = _facts(history, listed, items, catalogue, customers, last_n, decay, cited)
    rows_high = np.take_along_axis(high, order, axis=2).tolist()
    orders, tops, chosen_ = order.tolist(), np.round(top, 4).tolist(), chosen.tolist()
    out: list[list[Reason]] = []
    for row, listed_row in enumerate(listed.tolist()):
        reasons: list[Reason] = []
        for col, item in enumerate(listed_row):
            if item < 0:
                continue
            texts: list[str] = []
            evidence: list[Evidence] = []
            named: list[tuple[str, bool, float]] = [
                (FEATURES[f], bool(rows_high[row][col][j]), float(tops[row][col][j]))
                for j, f in enumerate(orders[row][col]) if chosen_[row][col][j]]
            both = _both_categories(named)
            for feature, lifts, weight in named:
                if both and feature in CATEGORY_FEATURES:
                    # One category, said once for both spans (its evidence lists both).
                    text = _categories(lifts, row, col, item, facts)
                else:
                    text = _factor(feature, lifts, row, col, item, facts)
                if text not in texts:
                    texts.append(text)
                evidence.append({"step": feature, "weight": weight})
            if not texts:
                texts.append("no factor lifts it above the other products")
            reasons.append({"text": "; ".join(texts), "evidence": evidence})
        out.append(reasons)
    return out


CATEGORY_FEATURES = ("category", "recent_category")


def _both_categories(named: list[tuple[str, bool, float]]) -> bool:
    """Whether both category features are named, both lifting or both lowering the item."""
    highs = {high for feature, high, _ in named if feature in CATEGORY_FEATURES}
    return sum(feature in CATEGORY_FEATURES for feature, _, _ in named) == 2 and len(highs) == 1


def _source_query(name: str, last_n: int, decay: float) -> tuple[int, float]:
    """The steps searched for the source of a link feature (its own query, at most
    ``SOURCE_STEPS``) and their decay."""
    steps, rate = link_query(name, last_n, decay)
    return (SOURCE_STEPS if steps is None else min(steps, SOURCE_STEPS)), rate


@dataclass(frozen=True)
class _Facts:
    """What the factors of a block's listed items cite, as plain lists: per listed item
    (``[row][col]``) the named trait, the most similar recent item and its cosine, each
    link's source item and the count behind it (``support``: transitions, shared visits,
    shared customers; for ``recent``, customers who looked at both), the category shares
    and the steps on the item; per row the usual
    price positions, cold starts and trait mixes; per item its id, count, head flag,
    category and price position."""

    named: list[list[int]]
    similar: list[list[int]]
    cosine: list[list[float]]
    sources: dict[str, list[list[int]]]
    support: dict[str, list[list[int]]]
    category_share: dict[str, list[list[float]]]
    steps: list[list[int]]
    visits: list[list[int]]
    usual_price: dict[str, list[float]]
    cold: list[bool]
    mix: list[list[float]]
    trait_names: list[str]
    # Per item, read one item at a time: the catalogue's own arrays (a request must not
    # cost a pass over the whole catalogue).
    item_ids: np.ndarray
    item_counts: np.ndarray
    item_popular: np.ndarray
    item_categories: np.ndarray | None
    item_positions: np.ndarray

    def id(self, item: int) -> str:
        return str(self.item_ids[item])

    def count(self, item: int) -> int:
        return int(self.item_counts[item])

    def category(self, item: int) -> str:
        return "" if self.item_categories is None else str(self.item_categories[item])


def _facts(history: Sequences, listed: np.ndarray, items: ItemSide, catalogue: Catalogue,
           customers: Customers, last_n: int, decay: float, cited: dict[str, np.ndarray]
           ) -> _Facts:
    """The facts of a block; link counts only for the items whose reasons cite the link
    (``cited``: feature name to (rows, k) flags)."""
    similar, cosine = _most_similar_recent(history, listed, catalogue.vectors, last_n)
    categories = catalogue.categories
    sources = {name: _link_sources(history, listed, getattr(items.links, matrix),
                                   *_source_query(name, last_n, decay))
               for name, matrix in LINKED.items()}
    return _Facts(
        named=_named_traits(customers.mix, catalogue.trait_shares, listed).tolist(),
        similar=similar.tolist(), cosine=cosine.tolist(),
        sources={name: source.tolist() for name, source in sources.items()},
        support={name: _support(name, source, np.where(cited[name], listed, -1), items,
                                catalogue).tolist()
                 for name, source in (*sources.items(), ("recent", similar))},
        category_share={"category": _category_steps(history, listed, items).tolist(),
                        "recent_category": _category_steps(history.last(last_n), listed,
                                                           items).tolist()},
        steps=_steps_on(history, listed).tolist(),
        visits=_steps_on(history, listed, visits=True).tolist(),
        usual_price={"price": _mean_position(history, items, None).tolist(),
                     "carted_price": _mean_position(history, items,
                                                    customers.action_names).tolist()},
        cold=customers.cold.tolist(), mix=customers.mix.tolist(),
        trait_names=customers.trait_names, item_ids=catalogue.item_ids,
        item_counts=catalogue.counts, item_popular=catalogue.popular,
        item_categories=categories, item_positions=items.price_positions)


def _factor(feature: str, high: bool, row: int, col: int, item: int, facts: _Facts) -> str:
    """The words of one factor of one listed item; ``high``: the feature stands above its
    mean (else a negative weight on a low feature is what lifts the item)."""
    if feature == "popularity":
        count = facts.count(item)
        if not high:
            return f"a less common product ({count:,} interactions)"
        if bool(facts.item_popular[item]):
            return f"one of the shop's most popular products ({count:,} interactions)"
        return f"chosen more often than most products ({count:,} interactions)"
    if feature == "trait":
        j = facts.named[row][col]
        if not high:
            return "unlike the customer's leading traits"
        if j < 0:
            return "matches the customer's trait profile"
        whose = "the starting profile for new customers" if facts.cold[row] else "their profile"
        return f"fits trait '{facts.trait_names[j]}' ({facts.mix[row][j]:.0%} of {whose})"
    if feature == "recent":
        best, cosine = facts.similar[row][col], facts.cosine[row][col]
        if not high:
            return "unlike the customer's recent products"
        if best < 0 or cosine < SIMILAR_ENOUGH:
            return "similar to the customer's recent products"
        both = facts.support["recent"][row][col]
        if both:
            return (f"similar to recent {facts.id(best)} ({_count(both, 'customer')} looked "
                    "at both)")
        if facts.category(best) and facts.category(best) == facts.category(item):
            return f"in the same category as recent {facts.id(best)}"
        return "similar to the customer's recent products"
    if feature in CATEGORY_FEATURES:
        span = "their steps" if feature == "category" else "their last steps"
        if not high:
            return f"outside the categories of {span}"
        share = facts.category_share[feature][row][col]
        return f"in {category_label(facts.category(item))}, like {share:.0%} of {span}"
    if feature in ("price", "carted_price"):
        whose = "carts" if feature == "carted_price" else "products"
        position = float(facts.item_positions[item])
        usual = facts.usual_price[feature][row]
        if not (math.isfinite(position) and math.isfinite(usual)):
            return (f"its price is unknown, where most products' prices sit far from the "
                    f"customer's {whose}" if high else f"priced unlike the customer's {whose}")
        alike = _prices_alike(feature, position, usual)
        if high == alike:
            return (f"priced {'like' if alike else 'unlike'} the customer's {whose} "
                    f"(percentile {position:.0%} of its category, theirs {usual:.0%})")
        # the feature can stand above its mean with the prices apart (unpriced products
        # pull the mean down), or below it with them alike: say the figures, not a verdict
        return (f"priced at percentile {position:.0%} of its category, the customer's "
                f"{whose} at {usual:.0%}")
    if feature in LINKED:
        source = facts.sources[feature][row][col]
        if not high or source < 0:
            return {"transition": "rarely the next product after the customer's last one",
                    "covisit": "rarely in the same visits as the customer's last products",
                    "neighbour": "rarely chosen by the customers of their products"}[feature]
        return _link(feature, facts.id(source), facts.support[feature][row][col])
    if feature == "left_in_cart":
        return "left in the cart" if high else "not waiting in the cart"
    n, visits = facts.steps[row][col], facts.visits[row][col]  # seen, touches
    if not high or n == 0:
        return "new to the customer"
    if visits >= 2:  # a view then a cart in one visit is not coming back
        return f"the customer came back to it in {visits} visits ({n} steps on it)"
    return f"already in the customer's history ({n} step{'s' * (n != 1)} on it)"


def _prices_alike(feature: str, position: float, usual: float) -> bool:
    """Whether "priced like" holds of the percentiles as printed (whole points, so a reader
    can check it): within ``PRICE_ALIKE`` points of the customer's products, or, for
    carts, on the same side of the category's middle (50 is on neither)."""
    mine, theirs = _points(position), _points(usual)
    if feature == "carted_price":
        return (mine - 50) * (theirs - 50) > 0
    return abs(mine - theirs) <= PRICE_ALIKE


def _points(share: float) -> int:
    """A share in whole percentage points, rounded exactly as ``f"{share:.0%}"`` prints."""
    return int(f"{share:.0%}"[:-1])


def _categories(high: bool, row: int, col: int, item: int, facts: _Facts) -> str:
    """Both category features in one phrase (the item's category, as a share of the
    customer's last steps and of all their steps)."""
    if not high:
        return "outside the categories of their steps"
    recent = facts.category_share["recent_category"][row][col]
    every = facts.category_share["category"][row][col]
    label = category_label(facts.category(item))
    if f"{recent:.0%}" == f"{every:.0%}":
        return f"in {label}, like {every:.0%} of their steps"
    return f"in {label}, like {recent:.0%} of their last steps and {every:.0%} of all their steps"


def category_label(name: str) -> str:
    """A category as a reason names it: a code or name as it is, a bare id as one
    ("category 2053013563651392361")."""
    return name if any(c.isalpha() for c in name) else f"category {name}"


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'s' * (n != 1)}"


def _link(feature: str, source: str, n: int) -> str:
    """A link to the history product ``source`` with its count ``n`` in the training log:
    "often" from :data:`OFTEN` on, else the count alone."""
    if feature == "transition":
        if n >= OFTEN:
            return f"often the next product after {source} ({n:,} times)"
        return f"the next product after {source} {_times(n)}"
    if feature == "covisit":
        if n >= OFTEN:
            return f"often in the same visits as {source} ({n:,} visits)"
        return f"in {_count(n, 'visit')} with {source}"
    return f"{_count(n, 'customer')} who looked at {source} looked at it too"


def _times(n: int) -> str:
    return {1: "once", 2: "twice"}.get(n, f"{n:,} times")


def _support(name: str, source: np.ndarray, listed: np.ndarray, items: ItemSide,
             catalogue: Catalogue) -> np.ndarray:
    """Per listed item (-1: not wanted) and its ``source`` item: the training log's count
    behind the link ``name`` between them: transitions from the source to it, visits they
    share (``covisit``), or customers they share (``neighbour``, ``recent``)."""
    out = np.zeros(listed.shape, dtype=np.int64)
    use = (source >= 0) & (listed >= 0)
    a, b = source[use], listed[use]
    if not a.size:
        return out
    if name == "transition":
        probability = np.asarray(items.links.transitions[a, b]).ravel()
        out[use] = np.rint(probability * catalogue.successors[a])
    else:
        out[use] = shared(catalogue.by_visit if name == "covisit" else catalogue.by_customer,
                          a, b)
    return out


def _steps_on(history: Sequences, listed: np.ndarray, visits: bool = False) -> np.ndarray:
    """Per listed item: how many steps of the row's history are on it, or with ``visits`` in
    how many of the row's visits it has a step (the log's sessions, else visits cut at 30
    minutes without events)."""
    if not history.items.size:
        return np.zeros(listed.shape, dtype=np.int64)
    width = int(max(history.items.max(initial=0), listed.max(initial=0))) + 1
    pairs = row_of(history.offsets).astype(np.int64) * width + history.items
    if visits:  # one (row, item) entry per visit
        pairs = np.unique(np.stack([pairs, session_ids(history)], axis=1), axis=0)[:, 0]
    keys, counts = np.unique(pairs, return_counts=True)
    wanted = np.arange(listed.shape[0])[:, None] * width + np.maximum(listed, 0)
    at = np.minimum(np.searchsorted(keys, wanted), keys.size - 1)
    return np.where((keys[at] == wanted) & (listed >= 0), counts[at], 0)


def _named_traits(mix: np.ndarray, shares: np.ndarray, listed: np.ndarray) -> np.ndarray:
    """Per listed item: the customer's leading trait the item loads on that fits best
    (largest mix x item share), or -1."""
    k = mix.shape[1]
    top = np.argsort(-mix, axis=1, kind="stable")[:, :LEADING]
    leading = np.zeros(mix.shape, dtype=bool)
    np.put_along_axis(leading, top, True, axis=1)
    leading &= mix >= LEADING_SHARE
    item_shares = shares[np.maximum(listed, 0)]  # (rows, k, K)
    fit = np.where(leading[:, None, :] & (item_shares >= LOADS),
                   mix[:, None, :] * item_shares, -1.0)
    best = fit.argmax(axis=2)
    has = (np.take_along_axis(fit, best[..., None], axis=2)[..., 0] > 0) & (listed >= 0)
    return np.where(has, best, -1) if k else np.full(listed.shape, -1)


def _window(history: Sequences, steps: int, decay: float) -> tuple[np.ndarray, np.ndarray]:
    """The last ``steps`` items of every row, newest first, (rows, steps) padded with -1,
    and their recency weights decay**k (0 for padding)."""
    recent = history.last(steps)
    at = recent.from_end() - 1  # 0 = the newest
    window = np.full((history.n_rows, steps), -1, dtype=np.int64)
    weight = np.zeros((history.n_rows, steps))
    rows = row_of(recent.offsets)
    window[rows, at] = recent.items
    weight[rows, at] = decay ** at.astype(np.float64)
    return window, weight


def _most_similar_recent(history: Sequences, listed: np.ndarray, vectors: np.ndarray,
                         last_n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per listed item: the most similar other item of the row's last ``last_n`` steps and
    their cosine (-1, -inf where there is none)."""
    window, _ = _window(history, last_n, 1.0)
    sims = np.einsum("rwd,rkd->rkw", vectors[np.maximum(window, 0)],
                     vectors[np.maximum(listed, 0)])
    invalid = (window[:, None, :] < 0) | (window[:, None, :] == listed[:, :, None])
    sims = np.where(invalid, -np.inf, sims)
    best = sims.argmax(axis=2) if window.shape[1] else np.zeros(listed.shape, dtype=np.int64)
    cosine = np.take_along_axis(sims, best[..., None], axis=2)[..., 0]
    item = np.take_along_axis(window, best, axis=1)
    return np.where(np.isfinite(cosine), item, -1), cosine


def _link_sources(history: Sequences, listed: np.ndarray, links: sp.csr_matrix, steps: int,
                  decay: float) -> np.ndarray:
    """Per listed item: the history item whose link to it, times its recency weight, is
    largest (the main source of the link feature), or -1."""
    window, weight = _window(history, steps, decay)
    rows, k = listed.shape
    src = np.broadcast_to(window[:, None, :], (rows, k, steps))
    dst = np.broadcast_to(listed[:, :, None], (rows, k, steps))
    valid = (src >= 0) & (dst >= 0)
    strength = np.zeros((rows, k, steps))
    if valid.any():
        strength[valid] = np.asarray(links[src[valid], dst[valid]]).ravel()
    part = strength * weight[:, None, :]
    best = part.argmax(axis=2)
    found = np.take_along_axis(part, best[..., None], axis=2)[..., 0] > 0
    return np.where(found, np.take_along_axis(window, best.reshape(rows, -1), axis=1)
                    .reshape(rows, k), -1)


def _category_steps(history: Sequences, listed: np.ndarray, items: ItemSide) -> np.ndarray:
    """Per listed item: the share of the row's steps in its category."""
    rows = history.n_rows
    if items.n_categories == 0:
        return np.zeros(listed.shape)
    codes = items.categories[history.items]
    known = codes >= 0
    counts = sp.csr_matrix((np.ones(int(known.sum())), (row_of(history.offsets)[known],
                                                          codes[known])),
                           shape=(rows, items.n_categories)).toarray()
    share = counts / np.maximum(history.lengths, 1)[:, None]
    code = items.categories[np.maximum(listed, 0)]
    return np.where(code >= 0, np.take_along_axis(share, np.maximum(code, 0), axis=1), 0.0)


def _mean_position(history: Sequences, items: ItemSide, action_names: tuple[str, ...] | None
                   ) -> np.ndarray:
    """Each row's mean price percentile over its steps, or (given the action names) its
    carts and purchases; NaN unknown."""
    position = items.price_positions[history.items]
    use = np.isfinite(position)
    if action_names is not None:
        use &= np.isin(history.actions, [action_names.index(a) for a in
                                         ("add_to_cart", "purchase") if a in action_names])
    row = row_of(history.offsets)[use]
    n = np.bincount(row, minlength=history.n_rows)
    total = np.bincount(row, position[use], minlength=history.n_rows)
    return np.where(n > 0, total / np.maximum(n, 1), np.nan)
