"""How a customer shops, as numbers: funnel conversion, browsing depth, speed, cart
abandonment, visit cadence and price position, computed vectorised from the event arrays.

:func:`behaviour_features` gives one row per customer of raw, documented values (rates are
smoothed towards the population; a value a customer has no events for is the population's);
:class:`BehaviourScaler` turns them into non-negative, comparable columns that can be
factorised beside the taste features: for each feature its *high* side and its *low* side
as the customer's population rank above or below the median, so that a trait can load on
"buys fast" as well as on "buys slowly".
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from funnelprint.data.sequences import Sequences, row_of, session_ids

log = logging.getLogger(__name__)
_SECOND_US = 1_000_000
_DAY_S = 86_400.0
#: Pseudo-trials of the population rate added to every customer's rate (empirical-Bayes
#: smoothing, so that one view and one cart is not a 100% cart rate).
PRIOR_TRIALS = 3.0
#: Least span of a log, in days, for visits to be counted as coming back (a few hours show
#: one visit per customer), for weekly visits and rebuying to show, and for a rhythm of
#: visits (two weekly gaps at least).
VISITS_DAYS, WEEK_DAYS, RHYTHM_DAYS = 1.0, 7.0, 14.0


@dataclass(frozen=True)
class Feature:
    """One behaviour feature: its name, what it measures, and the words for customers far
    above (``high``) and below (``low``) the population on it.

    ``figure`` is the raw figure of :mod:`funnelprint.profile.evidence` that shows the
    feature's words (``sign`` -1: the figure runs the other way, as the share of carted
    products bought runs against carts never bought); ``days`` the least span of time a log
    must cover for the feature to be observable at all (a rhythm of visits needs weeks).
    """

    name: str
    description: str
    high: str
    low: str
    figure: str
    sign: int = 1
    needs_price: bool = False
    days: float = 0.0


FEATURES = (
    Feature("view_to_cart", "share of viewed products added to the cart (smoothed)",
            "carts readily", "rarely carts", "view_to_cart"),
    Feature("cart_to_purchase", "share of carted products bought (smoothed)",
            "buys what it carts", "leaves carts unbought", "cart_to_purchase"),
    Feature("view_to_purchase", "purchases per viewed product (smoothed)",
            "converts", "rarely buys", "view_to_purchase"),
    Feature("cart_to_remove", "removals per cart (smoothed)", "removes from the cart",
            "rarely removes from the cart", "removals_per_cart"),
    Feature("carts_never_bought", "share of carted products never bought (smoothed)",
            "abandons carts", "completes carts", "cart_to_purchase", sign=-1),
    Feature("views_per_session", "product views per visit", "many views per visit",
            "few views per visit", "views_per_visit"),
    Feature("session_minutes", "minutes per visit (first to last event)", "lingers",
            "quick visits", "minutes_per_visit"),
    Feature("sessions", "number of visits (log)", "visits often", "visits rarely", "visits",
            days=VISITS_DAYS),
    Feature("visits_per_week", "visits per week between the first and last visit",
            "frequent visitor", "infrequent visitor", "visits_per_week", days=WEEK_DAYS),
    Feature("visit_regularity", "1 / (1 + coefficient of variation of the gaps between "
            "visits)", "visits on a rhythm", "irregular visits", "visit_regularity",
            days=RHYTHM_DAYS),
    Feature("repeat_views", "share of views that return to a product viewed in an earlier "
            "visit (smoothed)", "returns to favourites", "always something new",
            "repeat_views", days=VISITS_DAYS),
    Feature("repeat_purchases", "share of purchases of a product bought before (smoothed)",
            "rebuys favourites", "never rebuys", "repeat_purchases", days=WEEK_DAYS),
    Feature("views_before_cart", "views of a product before it is carted", "deliberates",
            "carts at first sight", "views_before_cart"),
    Feature("seconds_view_to_cart", "log seconds from viewing a product to carting it",
            "slow to cart", "quick to cart", "seconds_to_cart"),
    Feature("seconds_view_to_purchase", "log seconds from first viewing a product to "
            "buying it", "slow to buy", "quick to buy", "seconds_to_purchase"),
    Feature("viewed_price_position", "price percentile of viewed products within their "
            "category", "looks at premium items", "looks at cheap items", "viewed_price",
            needs_price=True),
    Feature("carted_price_position", "price percentile of carted products within their "
            "category", "carts premium items", "carts cheap items", "carted_price",
            needs_price=True),
    Feature("bought_price_position", "price percentile of bought products within their "
            "category", "buys premium items", "buys cheap items", "bought_price",
            needs_price=True),
)
FEATURE_NAMES = tuple(f.name for f in FEATURES)
FEATURE = {f.name: f for f in FEATURES}


@dataclass
class BehaviourTable:
    """Raw behaviour values (customers x features, in :attr:`names` order), how many
    events of each customer back the values (``events``), and the population value of each
    feature the values were smoothed toward and filled with (``population``: the pooled
    rate, or the mean over customers who have the feature)."""

    values: np.ndarray
    names: tuple[str, ...]
    events: np.ndarray
    population: np.ndarray


def price_positions(prices: np.ndarray | None, categories: np.ndarray | None) -> np.ndarray | None:
    """Each item's price percentile within its category (0 cheapest, 1 dearest; tied prices
    share their mid-rank, so a category of one price sits at 0.5); NaN where the price or
    the category is unknown. Where no item has a category, the percentile is shop-wide
    (among every priced product: it then says whether a customer shops the dearer part of
    the shop, category and choice together), with a warning. None (and the price features
    are left out) without prices, or when no category has two different prices."""
    if prices is None or not np.isfinite(prices).any():
        return None
    if not has_categories(categories):
        log.warning("product prices without categories: price percentiles are shop-wide "
                    "(among all products), not within a category; give --products with a "
                    "category column to compare within categories")
        categories = np.full(np.asarray(prices).size, "shop", dtype=object)
    prices = np.asarray(prices, dtype=np.float64)
    names = np.asarray(categories).astype(str)
    group = np.unique(names, return_inverse=True)[1].ravel()
    known = np.isfinite(prices) & (names != "")
    out = np.full(prices.size, np.nan)
    idx = np.flatnonzero(known)
    order = idx[np.lexsort((prices[idx], group[idx]))]
    g, p = group[order], prices[order]
    start = np.r_[0, np.flatnonzero(np.diff(g)) + 1] if g.size else np.zeros(0, np.int64)
    size = np.diff(np.r_[start, g.size])
    # Average rank of each run of equal prices within its category.
    new_value = np.r_[True, (g[1:] != g[:-1]) | (p[1:] != p[:-1])] if g.size else \
        np.zeros(0, bool)
    run = np.cumsum(new_value) - 1
    position = np.arange(g.size) - np.repeat(start, size)
    mid = np.bincount(run, weights=position) / np.bincount(run)
    out[order] = (mid[run] + 0.5) / np.repeat(size, size)
    if not (np.abs(out[order] - 0.5) > 1e-9).any():
        log.warning("every category has a single price: the price behaviour features are "
                    "left out")
        return None
    return out


def has_categories(categories: np.ndarray | None) -> bool:
    """Whether any item has a known category."""
    return categories is not None and bool((np.asarray(categories).astype(str) != "").any())


def observable_features(price_position: np.ndarray | None, span_days: float
                        ) -> tuple[tuple[str, ...], dict[str, str]]:
    """The features a log can show, and why each other one is left out: the price features
    need prices (``price_position``), cadence features a log covering their ``days``."""
    names, left_out = [], {}
    for f in FEATURES:
        if f.needs_price and price_position is None:
            left_out[f.name] = "no product prices within categories"
        elif f.days > span_days:
            left_out[f.name] = (f"needs a log of {f.days:g} days or more; this one covers "
                                f"{_days(span_days)}")
        else:
            names.append(f.name)
    return tuple(names), left_out


def _days(days: float) -> str:
    return f"{days * 24:.1f} hours" if days < 1 else f"{days:.1f} days"


def log_span_days(sequences: Sequences) -> float:
    """Days between the first and the last event of ``sequences``."""
    times = sequences.times
    return float(times.max() - times.min()) / (_DAY_S * _SECOND_US) if times.size else 0.0


def behaviour_features(sequences: Sequences, action_names: tuple[str, ...],
                       price_position: np.ndarray | None, gap_us: int,
                       population: np.ndarray | None = None,
                       names: tuple[str, ...] | None = None) -> BehaviourTable:
    """Raw behaviour values of every row of ``sequences`` (time-ordered within rows).

    ``price_position`` gives each item's price percentile (:func:`price_positions`); without
    it the price features are omitted. ``names`` chooses the features (default: every one
    the prices allow; see :func:`observable_features`). ``population`` holds the population
    value of each feature (what rates are smoothed towards and what a customer without
    events for a feature gets); by default it is computed from these rows.
    """
    if names is None:
        names = tuple(f.name for f in FEATURES
                      if price_position is not None or not f.needs_price)
    n_rows = sequences.n_rows
    n = sequences.items.size
    view, cart, remove, buy = funnel_flags(sequences, action_names)
    rows = row_of(sequences.offsets)
    times = sequences.times.astype(np.int64)
    raw: dict[str, tuple[np.ndarray, np.ndarray] | np.ndarray] = {}

    def count(mask: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        w = mask.astype(np.float64) if weights is None else np.where(mask, weights, 0.0)
        return np.bincount(rows, weights=w, minlength=n_rows)

    views, carts, removes, buys = count(view), count(cart), count(remove), count(buy)
    raw["view_to_cart"] = (carts, views)
    raw["cart_to_purchase"] = (np.minimum(buys, carts), carts)
    raw["view_to_purchase"] = (buys, views)
    raw["cart_to_remove"] = (np.minimum(removes, carts), carts)

    # (customer, item) pairs: carts never bought, repeat views, time from view to cart / buy.
    key = rows.astype(np.int64) * (int(sequences.items.max(initial=0)) + 1) + sequences.items
    order = np.lexsort((np.arange(n), key))  # by pair, then time
    k_sorted, t_sorted = key[order], times[order]
    first_of_pair = np.r_[True, k_sorted[1:] != k_sorted[:-1]] if n else np.zeros(0, bool)
    pair = np.cumsum(first_of_pair) - 1
    n_pairs = int(pair[-1]) + 1 if n else 0
    pair_row = rows[order][first_of_pair]
    carted_pair = np.bincount(pair, weights=cart[order], minlength=n_pairs) > 0
    bought_pair = np.bincount(pair, weights=buy[order], minlength=n_pairs) > 0
    raw["carts_never_bought"] = (
        np.bincount(pair_row, weights=carted_pair & ~bought_pair, minlength=n_rows),
        np.bincount(pair_row, weights=carted_pair, minlength=n_rows))

    # The latest view of the same pair before each event (-1: none).
    v_sorted = view[order]
    last_view = np.maximum.accumulate(np.where(v_sorted, np.arange(n), -1)) if n else \
        np.zeros(0, dtype=np.int64)
    has_view = (last_view >= 0) & (pair[np.maximum(last_view, 0)] == pair)
    c_sorted, b_sorted = cart[order], buy[order]
    rows_sorted = rows[order]
    visit = session_ids(sequences, gap_us)
    prev_view = np.r_[-1, last_view[:-1]] if n else last_view
    safe_prev = np.maximum(prev_view, 0)
    revisit = (v_sorted & (prev_view >= 0) & (pair[safe_prev] == pair)
               & (visit[order][safe_prev] != visit[order]))
    raw["repeat_views"] = (np.bincount(rows_sorted, weights=revisit, minlength=n_rows), views)
    rebuy = b_sorted & _seen_before(pair, b_sorted)
    raw["repeat_purchases"] = (np.bincount(rows_sorted, weights=rebuy, minlength=n_rows), buys)
    cart_gap = np.where(c_sorted & has_view, t_sorted - t_sorted[np.maximum(last_view, 0)], -1)
    first_view_time = np.full(n_pairs, -1, dtype=np.int64)
    vi = np.flatnonzero(v_sorted)
    first_idx = vi[np.r_[True, pair[vi][1:] != pair[vi][:-1]]] if vi.size else vi
    first_view_time[pair[first_idx]] = t_sorted[first_idx]
    fv = first_view_time[pair]
    buy_gap = np.where(b_sorted & (fv >= 0) & (fv <= t_sorted), t_sorted - fv, -1)
    raw["seconds_view_to_cart"] = _mean_by(rows_sorted, cart_gap >= 0,
                                           np.log1p(np.maximum(cart_gap, 0) / _SECOND_US), n_rows)
    raw["seconds_view_to_purchase"] = _mean_by(rows_sorted, buy_gap >= 0,
                                               np.log1p(np.maximum(buy_gap, 0) / _SECOND_US),
                                               n_rows)
    views_before = np.cumsum(v_sorted) - np.repeat(
        np.cumsum(v_sorted)[first_of_pair] - v_sorted[first_of_pair],
        np.diff(np.r_[np.flatnonzero(first_of_pair), n]))
    first_cart = c_sorted & ~_seen_before(pair, c_sorted)
    raw["views_before_cart"] = _mean_by(rows_sorted, first_cart, views_before.astype(float),
                                        n_rows)

    # Visits.
    n_visits = int(visit.max(initial=-1)) + 1
    v_order = np.lexsort((times, visit))
    v_sorted_ids = visit[v_order]
    starts = np.r_[0, np.flatnonzero(np.diff(v_sorted_ids)) + 1] if n else np.zeros(0, int)
    v_start = np.minimum.reduceat(times[v_order], starts) if n else np.zeros(0, np.int64)
    v_end = np.maximum.reduceat(times[v_order], starts) if n else np.zeros(0, np.int64)
    v_row = rows[v_order][starts]
    sessions = np.bincount(v_row, minlength=n_rows).astype(np.float64)
    raw["views_per_session"] = _mean_by(v_row, np.ones(v_row.size, bool),
                                        np.bincount(visit, weights=view, minlength=n_visits)
                                        [v_sorted_ids[starts]], n_rows)
    raw["session_minutes"] = _mean_by(v_row, np.ones(v_row.size, bool),
                                      (v_end - v_start) / (60 * _SECOND_US), n_rows)
    raw["sessions"] = np.where(sessions > 0, np.log(np.maximum(sessions, 1)), np.nan)
    s_order = np.lexsort((v_start, v_row))
    s_row, s_time = v_row[s_order], v_start[s_order] / _SECOND_US
    same = np.r_[False, s_row[1:] == s_row[:-1]] if s_row.size else np.zeros(0, bool)
    gap = np.where(same, s_time - np.r_[0.0, s_time[:-1]], np.nan)[same] / _DAY_S
    gap_row = s_row[same]
    gap_n = np.bincount(gap_row, minlength=n_rows)
    gap_sum = np.bincount(gap_row, weights=gap, minlength=n_rows)
    gap_sq = np.bincount(gap_row, weights=gap**2, minlength=n_rows)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_gap = gap_sum / gap_n
        raw["visits_per_week"] = np.where(gap_n >= 1, 7.0 / np.maximum(mean_gap, 1 / 24), np.nan)
        cv = np.sqrt(np.maximum(gap_sq / gap_n - mean_gap**2, 0.0)) / np.maximum(mean_gap, 1e-9)
        raw["visit_regularity"] = np.where(gap_n >= 2, 1.0 / (1.0 + cv), np.nan)

    if price_position is not None:
        pos = np.asarray(price_position, dtype=np.float64)[sequences.items]
        priced = np.isfinite(pos)
        for name, mask in (("viewed_price_position", view), ("carted_price_position", cart),
                           ("bought_price_position", buy)):
            raw[name] = _mean_by(rows, mask & priced, np.nan_to_num(pos), n_rows)
    values, used = _finish(raw, names, population)
    return BehaviourTable(values, names, np.diff(sequences.offsets), used)


def _seen_before(group: np.ndarray, flags: np.ndarray) -> np.ndarray:
    """Whether an earlier element of the same (contiguous) group is flagged."""
    total = np.cumsum(flags)
    first = np.r_[True, group[1:] != group[:-1]] if group.size else np.zeros(0, bool)
    base = np.repeat((total - flags)[first], np.diff(np.r_[np.flatnonzero(first), group.size]))
    return (total - flags - base) > 0


def _mean_by(rows: np.ndarray, mask: np.ndarray, values: np.ndarray, n_rows: int
             ) -> np.ndarray:
    """Mean of ``values[mask]`` per row; NaN for rows without any."""
    n = np.bincount(rows[mask], minlength=n_rows)
    total = np.bincount(rows[mask], weights=values[mask], minlength=n_rows)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / n, np.nan)


def _finish(raw: dict[str, tuple[np.ndarray, np.ndarray] | np.ndarray], names: tuple[str, ...],
            population: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Smoothed rates and means in ``names`` order (NaN means the population value), and
    the population values used — ``population`` when given, else estimated from ``raw``."""
    columns, used = [], []
    for j, name in enumerate(names):
        value = raw[name]
        if isinstance(value, tuple):
            hits, trials = value
            rate = (population[j] if population is not None
                    else hits.sum() / max(trials.sum(), 1.0))
            columns.append((hits + PRIOR_TRIALS * rate) / (trials + PRIOR_TRIALS))
            used.append(rate)
        else:
            fill = population[j] if population is not None else (
                np.nanmean(value) if np.isfinite(value).any() else 0.0)
            columns.append(np.where(np.isfinite(value), value, fill))
            used.append(fill)
    values = np.column_stack(columns) if columns else np.zeros((0, 0))
    return values, np.asarray(used, dtype=np.float64)


@dataclass
class BehaviourScaler:
    """Population ranks of raw behaviour values, split at the median into a *high* and a
    *low* column (each in [0, 1], zero on the other side): non-negative, comparable across
    features whatever their units, robust to outliers.

    Attributes
    ----------
    quantiles_ : (n_quantiles, n_features)
        The fitted customers' quantiles of each feature (ranks of new rows interpolate them).
    """

    n_quantiles: int = 1001

    def fit(self, values: np.ndarray) -> BehaviourScaler:
        q = np.linspace(0.0, 1.0, self.n_quantiles)
        self.quantiles_ = np.quantile(values, q, axis=0) if values.size else \
            np.zeros((self.n_quantiles, values.shape[1]))
        return self

    def ranks(self, values: np.ndarray) -> np.ndarray:
        """Population rank (0..1) of every value: the mid-rank among the fitted quantiles,
        so that a value tied with many customers (a rate of 0) sits in the middle of them."""
        out = np.empty_like(values, dtype=np.float64)
        size = float(self.quantiles_.shape[0])
        for j in range(values.shape[1]):  # one search per feature, not per customer
            grid = self.quantiles_[:, j]
            left = np.searchsorted(grid, values[:, j], side="left")
            right = np.searchsorted(grid, values[:, j], side="right")
            out[:, j] = 0.5 * (left + right) / size
        return out

    def transform(self, values: np.ndarray) -> np.ndarray:
        """``[high_0, low_0, high_1, low_1, ...]``: 2 x rank - 1 above the median, 1 - 2 x
        rank below it."""
        r = self.ranks(values)
        high = np.clip(2.0 * r - 1.0, 0.0, None)
        low = np.clip(1.0 - 2.0 * r, 0.0, None)
        return np.stack([high, low], axis=2).reshape(values.shape[0], -1)




# ------------------------------------------------------------------ visit styles

#: What describes one visit (standardised before the style anchors are fitted).
VISIT_FEATURES = (
    ("log_views", "product views in the visit (log)"),
    ("log_carts", "products carted in the visit (log)"),
    ("cart_rate", "carts per view"),
    ("purchase_rate", "purchases per cart"),
    ("remove_rate", "removals per cart"),
    ("abandoned", "carted but bought nothing"),
    ("log_minutes", "visit length in minutes (log)"),
    ("log_dwell", "seconds per event (log)"),
    ("log_cart_seconds", "seconds from viewing to carting (log)"),
    ("log_checkout_seconds", "seconds from carting to buying (log)"),
    ("revisit", "share of views of products viewed in an earlier visit"),
    ("price_position", "price percentile of the products viewed"),
)


@dataclass
class VisitTable:
    """One row per visit: its customer row and :data:`VISIT_FEATURES` values (NaN where a
    visit has no events for a value, e.g. no cart)."""

    rows: np.ndarray
    values: np.ndarray


def funnel_flags(sequences: Sequences, action_names: tuple[str, ...]
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per event: is it a view, an add to cart, a removal, a purchase (all False for an
    action the log does not have)."""
    codes = {a: i for i, a in enumerate(action_names)}
    act = sequences.actions.astype(np.int64)

    def flag(name: str) -> np.ndarray:
        return act == codes[name] if name in codes else np.zeros(act.size, dtype=bool)

    view, cart, remove, buy = (flag(a) for a in ("view", "add_to_cart", "remove_from_cart",
                                                 "purchase"))
    return view, cart, remove, buy


def visit_features(sequences: Sequences, action_names: tuple[str, ...],
                   price_position: np.ndarray | None, gap_us: int) -> VisitTable:
    """Per-visit values of :data:`VISIT_FEATURES` (price position NaN without prices)."""
    n = sequences.items.size
    view, cart, remove, buy = funnel_flags(sequences, action_names)
    rows = row_of(sequences.offsets)
    visit = session_ids(sequences, gap_us)
    n_visits = int(visit.max(initial=-1)) + 1
    times = sequences.times.astype(np.int64)

    def per_visit(weights: np.ndarray) -> np.ndarray:
        return np.bincount(visit, weights=weights.astype(np.float64), minlength=n_visits)

    views, carts, removes, buys, events = (per_visit(x) for x in (view, cart, remove, buy,
                                                                  np.ones(n, bool)))
    start = np.full(n_visits, np.iinfo(np.int64).max)
    end = np.full(n_visits, np.iinfo(np.int64).min)
    np.minimum.at(start, visit, times)
    np.maximum.at(end, visit, times)
    minutes = (end - start) / (60.0 * _SECOND_US)
    visit_row = np.zeros(n_visits, dtype=np.int64)
    visit_row[visit] = rows

    # Pair order: (customer, item), then time.
    key = rows.astype(np.int64) * (int(sequences.items.max(initial=0)) + 1) + sequences.items
    order = np.lexsort((np.arange(n), key))
    k_sorted, t_sorted, vis_sorted = key[order], times[order], visit[order]
    same_pair = np.r_[False, k_sorted[1:] == k_sorted[:-1]] if n else np.zeros(0, bool)
    v_sorted, c_sorted, b_sorted = view[order], cart[order], buy[order]
    last_view = np.maximum.accumulate(np.where(v_sorted, np.arange(n), -1)) if n else \
        np.zeros(0, dtype=np.int64)
    last_cart = np.maximum.accumulate(np.where(c_sorted, np.arange(n), -1)) if n else \
        np.zeros(0, dtype=np.int64)
    pair = np.cumsum(~same_pair) - 1 if n else np.zeros(0, dtype=np.int64)

    def gap_from(last: np.ndarray, mask: np.ndarray) -> np.ndarray:
        ok = mask & (last >= 0) & (pair[np.maximum(last, 0)] == pair)
        return np.where(ok, np.log1p((t_sorted - t_sorted[np.maximum(last, 0)]) / _SECOND_US),
                        np.nan)

    def visit_mean(values: np.ndarray) -> np.ndarray:
        ok = np.isfinite(values)
        count = np.bincount(vis_sorted[ok], minlength=n_visits)
        total = np.bincount(vis_sorted[ok], weights=values[ok], minlength=n_visits)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(count > 0, total / count, np.nan)

    prev_view = np.r_[-1, last_view[:-1]] if n else last_view
    safe = np.maximum(prev_view, 0)
    revisit = (v_sorted & (prev_view >= 0) & (pair[safe] == pair)
               & (vis_sorted[safe] != vis_sorted)).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        columns = {
            "log_views": np.log1p(views),
            "log_carts": np.log1p(carts),
            "cart_rate": carts / np.maximum(views, 1.0),
            "purchase_rate": np.where(carts > 0, np.minimum(buys, carts) / carts, np.nan),
            "remove_rate": np.where(carts > 0, np.minimum(removes, carts) / carts, np.nan),
            "abandoned": ((carts > 0) & (buys == 0)).astype(np.float64),
            "log_minutes": np.log1p(minutes),
            "log_dwell": np.log1p(60.0 * minutes / np.maximum(events - 1, 1.0)),
            "log_cart_seconds": visit_mean(gap_from(last_view, c_sorted)),
            "log_checkout_seconds": visit_mean(gap_from(last_cart, b_sorted)),
            "revisit": np.where(views > 0, np.bincount(
                vis_sorted, weights=revisit, minlength=n_visits) / np.maximum(views, 1), np.nan),
            "price_position": np.full(n_visits, np.nan),
        }
    if price_position is not None:
        pos = np.asarray(price_position, dtype=np.float64)[sequences.items]
        seen = view & np.isfinite(pos)
        count = np.bincount(visit[seen], minlength=n_visits)
        total = np.bincount(visit[seen], weights=pos[seen], minlength=n_visits)
        with np.errstate(invalid="ignore", divide="ignore"):
            columns["price_position"] = np.where(count > 0, total / count, np.nan)
    values = np.column_stack([columns[name] for name, _ in VISIT_FEATURES])
    return VisitTable(visit_row, values)


@dataclass
class VisitStyles:
    """Visit styles: KMeans centres of standardised visit features, and a soft assignment
    of every visit to them (``softmax(-squared distance / temperature)``). A customer's
    style shares are the mean of their visits' assignments, so a customer who shops in two
    styles gets a linear mix of both, which the factorisation can unmix (the same idea as
    the taste anchors).

    Attributes
    ----------
    center_, scale_ : per visit feature, what standardises it (missing values become the
        centre, i.e. 0 after standardising)
    centers_ : (styles, features) style centres in standardised units
    """

    styles: int = 16
    temperature: float = 1.0
    seed: int = 0

    def fit(self, visits: VisitTable, max_visits: int = 50_000) -> VisitStyles:
        from sklearn.cluster import KMeans

        values = visits.values
        self.center_, spread = np.zeros(values.shape[1]), np.ones(values.shape[1])
        present = np.isfinite(values).any(axis=0)  # a column is all-NaN without prices
        if present.any():
            self.center_[present] = np.nanmedian(values[:, present], axis=0)
            spread[present] = np.nanstd(values[:, present], axis=0)
        self.scale_ = np.where(np.isfinite(spread) & (spread > 1e-9), spread, 1.0)
        z = self._standardise(values)
        if z.shape[0] > max_visits:  # the centres need a sample, not every visit
            z = z[np.random.default_rng(self.seed).choice(z.shape[0], max_visits, replace=False)]
        n = min(self.styles, max(1, z.shape[0]))
        self.centers_ = KMeans(n, n_init=1, random_state=self.seed).fit(z).cluster_centers_
        return self

    def _standardise(self, values: np.ndarray) -> np.ndarray:
        z = (values - self.center_) / self.scale_
        return np.where(np.isfinite(z), z, 0.0)

    def assign(self, values: np.ndarray) -> np.ndarray:
        """Soft assignment (visits x styles, rows sum to 1)."""
        z = self._standardise(values)
        d = (z**2).sum(1)[:, None] - 2 * z @ self.centers_.T + (self.centers_**2).sum(1)[None]
        logits = -(d - d.min(axis=1, keepdims=True)) / self.temperature
        weights = np.exp(logits)
        return weights / weights.sum(axis=1, keepdims=True)

    def shares(self, visits: VisitTable, n_rows: int) -> np.ndarray:
        """Each customer's mean style assignment over their visits (zeros without visits)."""
        weights = self.assign(visits.values)
        total = np.zeros((n_rows, weights.shape[1]))
        np.add.at(total, visits.rows, weights)
        count = np.bincount(visits.rows, minlength=n_rows)[:, None]
        return total / np.maximum(count, 1)


__all__ = ["FEATURE", "FEATURES", "FEATURE_NAMES", "PRIOR_TRIALS", "VISIT_FEATURES",
           "BehaviourScaler", "BehaviourTable", "Feature", "VisitStyles", "VisitTable",
           "behaviour_features", "has_categories", "log_span_days", "observable_features",
           "price_positions", "visit_features"]
