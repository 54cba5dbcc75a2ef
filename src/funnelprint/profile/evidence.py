"""Raw funnel figures of groups of customers, with their uncertainty: what a trait's
evidence says and what its name may claim.

Every figure is a ratio of two per-customer counts summed over a group — a pooled rate
(share of viewed products carted) or mean (views per visit) — counted from the events as
they are: no smoothing towards the population, no value imputed for a customer without the
events a figure needs (such a customer adds nothing to its numerator or denominator, so
thin evidence weighs little). A group's figure gets a 95% percentile interval from
resampling its customers (bootstrap), and :func:`verdict` says whether the interval lies
wholly above or below another value (everyone's).

>>> events = event_frame(dataset)
>>> counts = customer_counts(events, dataset.n_customers)
>>> intervals(hits, trials, rows)            # per figure: value, low, high, customers
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import scipy.sparse as sp
from scipy.stats import beta, rankdata

from funnelprint.data.dataset import Dataset
from funnelprint.data.schema import TOKEN_PREFIX
from funnelprint.data.sequences import session_ids

#: Share of the warm customers, those leaning most on a trait, whose figures describe it.
TYPICAL_SHARE = 0.1
#: Bootstrap resamples of a group of customers.
RESAMPLES = 1000
#: Two-sided level of the intervals.
LEVEL = 0.95
#: Fewest customers of a group with a figure's events for the figure to back a word.
MIN_CUSTOMERS = 5
#: Action mix keys of the funnel's actions (other actions keep their own names).
MIX_KEYS = ("view", "cart", "remove", "buy")
#: Figures that count hits among trials (rates), which also get an interval from counts.
RATES = frozenset({"view_to_cart", "view_to_purchase", "cart_to_purchase", "repeat_views",
                   "repeat_purchases"})
#: Price bands: thirds of the price percentile within the category.
PRICE_BANDS = ("low", "mid", "high")
#: Fields a name may take a label from.
LABEL_FIELDS = ("category", "brand", "product")

#: Raw figures: name -> what it measures. Each is a ratio of two per-customer counts summed
#: over a group of customers (a pooled rate or mean).
FIGURES: dict[str, str] = {
    "view_to_cart": "share of viewed products that were carted",
    "view_to_purchase": "share of viewed products that were bought",
    "cart_to_purchase": "share of carted products that were bought",
    "removals_per_cart": "removals per add to cart",
    "views_per_visit": "product views per visit",
    "minutes_per_visit": "minutes per visit",
    "visits": "visits per customer",
    "visits_per_week": "visits per week (customers with two or more visits)",
    "visit_regularity": "1 / (1 + CV of the gaps between visits) (three or more visits)",
    "repeat_views": "share of views of a product first viewed in another visit",
    "repeat_purchases": "share of purchases of a product bought before",
    "views_before_cart": "views of a product before it was first carted",
    "seconds_to_cart": "log(1 + seconds) from the latest view of a product to carting it",
    "seconds_to_purchase": "log(1 + seconds) from the first view of a product to buying it",
    "viewed_price": "price percentile within the category of the products viewed",
    "carted_price": "price percentile within the category of the products carted",
    "bought_price": "price percentile within the category of the products bought",
}

@dataclass(frozen=True)
class Interval:
    """A group's figure, its bootstrap interval (``low``, ``high``), and how many
    customers have it. For a rate of counts (hits of trials), ``counts_low`` and
    ``counts_high`` are also its Beta (Jeffreys) interval from the pooled counts, which a
    bootstrap over a handful of customers misses: one customer with one cart and no
    purchase gives a bootstrap interval of [0, 0]. NaN where they do not apply."""

    value: float
    low: float
    high: float
    customers: int
    counts_low: float = float("nan")
    counts_high: float = float("nan")

    @property
    def widest(self) -> tuple[float, float]:
        """The interval that takes both kinds of uncertainty in."""
        return (float(np.fmin(self.low, self.counts_low)),
                float(np.fmax(self.high, self.counts_high)))

    def backs(self, population: float, sign: int) -> bool:
        """Whether the group's figure lies above (``sign`` +1) or below (-1) ``population``
        by more than both intervals, on at least :data:`MIN_CUSTOMERS` customers: what a
        word needs to be said."""
        low, high = self.widest
        if self.customers < MIN_CUSTOMERS or not np.isfinite(population):
            return False
        return bool(low > population) if sign > 0 else bool(high < population)


def event_frame(dataset: Dataset, session_gap_minutes: float = 30.0,
                labels: bool = True) -> pl.DataFrame:
    """One row per event: customer row, item, action name, time (µs), visit, the item's price
    percentile within its category where known, and with ``labels`` its id, category and
    brand."""
    seq = dataset.sequences
    rows = np.repeat(np.arange(seq.n_rows), np.diff(seq.offsets))
    actions = pl.Series(list(dataset.action_names), dtype=pl.String)
    frame = pl.DataFrame({
        "row": rows.astype(np.int64), "item": seq.items.astype(np.int64),
        "action": actions.gather(seq.actions.astype(np.int64)),
        "time": seq.times.astype(np.int64),
        "visit": session_ids(seq, round(session_gap_minutes * 60e6)),
    })
    items = item_frame(dataset).drop("item")
    if not labels:
        items = items.select("position")
    return frame.hstack(items[seq.items.astype(np.int64)] if seq.items.size else
                        items.clear())


def item_frame(dataset: Dataset) -> pl.DataFrame:
    """Per item: its id (``product``), category, brand, and price percentile within its
    category (mid-rank of equal prices; null where the price or the category is unknown)."""
    n = dataset.n_items

    def strings(values: np.ndarray | None) -> pl.Series:
        if values is None:
            return pl.Series([None] * n, dtype=pl.String)
        return pl.Series(values.astype(str)).replace("", None)

    prices = (dataset.item_prices if dataset.item_prices is not None
              else np.full(n, np.nan))
    items = pl.DataFrame({"item": np.arange(n, dtype=np.int64),
                          "product": pl.Series(dataset.item_ids.astype(str), dtype=pl.String),
                          "category": strings(dataset.item_categories),
                          "brand": strings(dataset.item_brands),
                          "price": pl.Series(prices, dtype=pl.Float64).fill_nan(None)})
    priced = pl.col("price").is_not_null() & pl.col("category").is_not_null()
    position = ((pl.col("price").rank("average").over("category") - 0.5)
                / pl.col("price").count().over("category"))
    items = items.with_columns(pl.when(priced).then(position).otherwise(None)
                               .alias("position"))
    # A category whose products all cost the same says nothing about price choice; prices
    # that never differ anywhere say nothing at all.
    return items.with_columns(pl.when(pl.col("price").n_unique().over("category") > 1)
                              .then(pl.col("position")).otherwise(None).alias("position"))


def customer_counts(events: pl.DataFrame, n_rows: int) -> pl.DataFrame:
    """Per customer row: the numerator ``<figure>.hits`` and denominator
    ``<figure>.trials`` of every figure in :data:`FIGURES` (zero where none)."""
    view, cart = pl.col("action") == "view", pl.col("action") == "add_to_cart"
    buy, remove = pl.col("action") == "purchase", pl.col("action") == "remove_from_cart"
    events = events.sort("row", "item", "time", maintain_order=True).with_columns(
        view.alias("is_view"), cart.alias("is_cart"), buy.alias("is_buy"))
    pair = ["row", "item"]
    events = events.with_columns(
        first_view_visit=pl.col("visit").filter(pl.col("is_view")).first().over(pair),
        first_view_time=pl.col("time").filter(pl.col("is_view")).min().over(pair),
        last_view_time=pl.when(pl.col("is_view")).then(pl.col("time")).otherwise(None)
        .forward_fill().over(pair),
        buys_before=(pl.col("is_buy").cast(pl.Int64).cum_sum() - pl.col("is_buy")
                     .cast(pl.Int64)).over(pair),
        views_before=(pl.col("is_view").cast(pl.Int64).cum_sum() - pl.col("is_view")
                      .cast(pl.Int64)).over(pair),
        carts_before=(pl.col("is_cart").cast(pl.Int64).cum_sum() - pl.col("is_cart")
                      .cast(pl.Int64)).over(pair),
    )
    seconds = 1e6
    per_event = events.group_by("row").agg(
        views=pl.col("is_view").sum(), carts=pl.col("is_cart").sum(),
        buys=pl.col("is_buy").sum(), removes=remove.sum(),
        repeat_views=(pl.col("is_view") & (pl.col("visit") != pl.col("first_view_visit")))
        .sum(),
        repeat_buys=(pl.col("is_buy") & (pl.col("buys_before") > 0)).sum(),
        cart_gap=pl.when(pl.col("is_cart") & pl.col("last_view_time").is_not_null())
        .then(((pl.col("time") - pl.col("last_view_time")) / seconds).log1p()).sum(),
        cart_gaps=(pl.col("is_cart") & pl.col("last_view_time").is_not_null()).sum(),
        buy_gap=pl.when(pl.col("is_buy") & (pl.col("first_view_time") <= pl.col("time")))
        .then(((pl.col("time") - pl.col("first_view_time")) / seconds).log1p()).sum(),
        buy_gaps=(pl.col("is_buy") & (pl.col("first_view_time") <= pl.col("time"))).sum(),
        first_carts=(pl.col("is_cart") & (pl.col("carts_before") == 0)).sum(),
        views_before_cart=pl.when(pl.col("is_cart") & (pl.col("carts_before") == 0))
        .then(pl.col("views_before")).sum(),
        **{f"{kind}_price": pl.col("position").filter(flag & pl.col("position").is_not_null())
           .sum() for kind, flag in (("viewed", view), ("carted", cart), ("bought", buy))},
        **{f"{kind}_priced": (flag & pl.col("position").is_not_null()).sum()
           for kind, flag in (("viewed", view), ("carted", cart), ("bought", buy))},
    )
    pairs = events.group_by(pair).agg(viewed=pl.col("is_view").any(),
                                      carted=pl.col("is_cart").any(),
                                      bought=pl.col("is_buy").any()).group_by("row").agg(
        pairs_viewed=pl.col("viewed").sum(),
        viewed_carted=(pl.col("viewed") & pl.col("carted")).sum(),
        viewed_bought=(pl.col("viewed") & pl.col("bought")).sum(),
        pairs_carted=pl.col("carted").sum(),
        carted_bought=(pl.col("carted") & pl.col("bought")).sum())
    visits = events.group_by("row", "visit").agg(
        start=pl.col("time").min(), end=pl.col("time").max(), views=pl.col("is_view").sum())
    day = 86_400 * seconds
    per_visit = visits.sort("row", "start").with_columns(
        gap=(pl.col("start").diff().over("row") / day)).group_by("row").agg(
        n_visits=pl.len(), visit_views=pl.col("views").sum(),
        visit_minutes=((pl.col("end") - pl.col("start")) / (60 * seconds)).sum(),
        gaps=pl.col("gap").drop_nulls().len(),
        gap_mean=pl.col("gap").drop_nulls().mean(),
        gap_std=pl.col("gap").drop_nulls().std(ddof=0))
    table = (pl.DataFrame({"row": np.arange(n_rows, dtype=np.int64)})
             .join(per_event, on="row", how="left").join(pairs, on="row", how="left")
             .join(per_visit, on="row", how="left").fill_null(0).fill_nan(0))
    weekly = pl.col("gaps") >= 1
    rhythm = pl.col("gaps") >= 2
    ratio = {
        "view_to_cart": (pl.col("viewed_carted"), pl.col("pairs_viewed")),
        "view_to_purchase": (pl.col("viewed_bought"), pl.col("pairs_viewed")),
        "cart_to_purchase": (pl.col("carted_bought"), pl.col("pairs_carted")),
        "removals_per_cart": (pl.col("removes"), pl.col("carts")),
        "views_per_visit": (pl.col("visit_views"), pl.col("n_visits")),
        "minutes_per_visit": (pl.col("visit_minutes"), pl.col("n_visits")),
        "visits": (pl.col("n_visits"), (pl.col("n_visits") > 0)),
        "visits_per_week": (pl.when(weekly).then(7.0 / pl.max_horizontal(
            pl.col("gap_mean"), 1 / 24)).otherwise(0.0), weekly),
        "visit_regularity": (pl.when(rhythm).then(1.0 / (1.0 + pl.col("gap_std") / pl
                                                         .max_horizontal(pl.col("gap_mean"),
                                                                         1e-9)))
                             .otherwise(0.0), rhythm),
        "repeat_views": (pl.col("repeat_views"), pl.col("views")),
        "repeat_purchases": (pl.col("repeat_buys"), pl.col("buys")),
        "views_before_cart": (pl.col("views_before_cart"), pl.col("first_carts")),
        "seconds_to_cart": (pl.col("cart_gap"), pl.col("cart_gaps")),
        "seconds_to_purchase": (pl.col("buy_gap"), pl.col("buy_gaps")),
        "viewed_price": (pl.col("viewed_price"), pl.col("viewed_priced")),
        "carted_price": (pl.col("carted_price"), pl.col("carted_priced")),
        "bought_price": (pl.col("bought_price"), pl.col("bought_priced")),
    }
    return table.select(
        "row", *[e.cast(pl.Float64).alias(f"{name}.{part}") for name, pair_ in ratio.items()
                 for part, e in zip(("hits", "trials"), pair_, strict=True)])


def label_counts(events: pl.DataFrame, n_rows: int, field_: str, value: str) -> np.ndarray:
    """Per customer row: events whose item's ``field_`` (``category``, ``brand``, or
    ``product``: the item id) is ``value``, and all events (rows x 2)."""
    column = pl.col("product") if field_ == "product" else pl.col(field_)
    counts = events.group_by("row").agg(hits=(column == value).sum(), trials=pl.len())
    table = pl.DataFrame({"row": np.arange(n_rows, dtype=np.int64)}).join(
        counts, on="row", how="left").fill_null(0)
    return table.select("hits", "trials").to_numpy().astype(np.float64)


# ------------------------------------------------------------------ intervals


def intervals(hits: np.ndarray, trials: np.ndarray, rows: np.ndarray, seed: int = 0,
              resamples: int = RESAMPLES, rates: np.ndarray | None = None) -> list[Interval]:
    """The pooled ratio sum(hits) / sum(trials) of each column over customer ``rows``, and
    its percentile bootstrap interval over resamples of those customers (NaN where the rows
    have no trials); for the columns flagged in ``rates`` (counts of hits among trials) also
    the Jeffreys interval of the pooled counts."""
    h, t = hits[rows], trials[rows]
    rng = np.random.default_rng(seed)
    n = rows.size
    stats = np.empty((resamples, h.shape[1]))
    for start in range(0, resamples, 100):  # bounded memory on large groups
        size = min(100, resamples - start)
        w = rng.multinomial(n, np.full(n, 1.0 / n), size=size).astype(np.float64) if n else \
            np.zeros((size, 0))
        with np.errstate(invalid="ignore", divide="ignore"):
            stats[start:start + size] = (w @ h) / (w @ t)
    tail = 100 * (1 - LEVEL) / 2
    out = []
    for j in range(h.shape[1]):
        total = t[:, j].sum()
        value = float(h[:, j].sum() / total) if total > 0 else float("nan")
        finite = stats[np.isfinite(stats[:, j]), j]
        low, high = (np.percentile(finite, [tail, 100 - tail]) if finite.size
                     else (np.nan, np.nan))
        counts = (np.nan, np.nan)
        if rates is not None and rates[j] and total > 0:
            hit = min(float(h[:, j].sum()), float(total))
            counts = beta.ppf([tail / 100, 1 - tail / 100], hit + 0.5, total - hit + 0.5)
        out.append(Interval(value, float(low), float(high), int((t[:, j] > 0).sum()),
                            float(counts[0]), float(counts[1])))
    return out


def verdict(interval: Interval, population: float, sign: int) -> str:
    """``supported``, ``contradicted`` or ``open`` (see the module's docstring)."""
    if not (np.isfinite(interval.low) and np.isfinite(interval.high)
            and np.isfinite(population)):
        return "open"
    above, below = interval.low > population, interval.high < population
    if (above and sign > 0) or (below and sign < 0):
        return "supported"
    if (above and sign < 0) or (below and sign > 0):
        return "contradicted"
    return "open"


def typical_rows(shares: np.ndarray, warm: np.ndarray, share: float = TYPICAL_SHARE
                 ) -> list[np.ndarray]:
    """Per trait, the warm customer rows with the largest shares of it (``share`` of the
    warm customers, at least one)."""
    candidates = np.flatnonzero(warm)
    n = max(1, round(share * candidates.size)) if candidates.size else 0
    return [candidates[np.argsort(-shares[candidates, j], kind="stable")[:n]]
            for j in range(shares.shape[1])]


@dataclass
class CustomerFigures:
    """Everything the evidence of a group of customers is read from, one row per customer
    of a dataset: the numerator and denominator of every figure (``hits``, ``trials``: rows
    x :data:`FIGURES`), events per action (``actions``, columns ``action_keys``), viewed
    events per price band (``bands``), events per category, brand and product (``labels``:
    field -> (values, rows x values counts)) and events (``events``)."""

    hits: np.ndarray
    trials: np.ndarray
    actions: np.ndarray
    action_keys: tuple[str, ...]
    bands: np.ndarray
    labels: dict[str, tuple[np.ndarray, sp.csr_matrix]]
    events: np.ndarray

    @classmethod
    def count(cls, dataset: Dataset, session_gap_minutes: float = 30.0) -> CustomerFigures:
        events = event_frame(dataset, session_gap_minutes, labels=False)
        n = dataset.n_customers
        counts = customer_counts(events, n)
        seq = dataset.sequences
        rows = np.repeat(np.arange(n), np.diff(seq.offsets))
        keys = [TOKEN_PREFIX.get(a, a) for a in dataset.action_names]
        action_keys = tuple(MIX_KEYS) + tuple(k for k in dict.fromkeys(keys)
                                             if k not in MIX_KEYS)
        column = np.array([action_keys.index(k) for k in keys], dtype=np.int64)
        actions = _per_row(rows, column[seq.actions], n, len(action_keys))
        # Item-level codes, looked up per event: no per-event strings.
        items = item_frame(dataset)
        position = items["position"].to_numpy().astype(np.float64)
        item_band = np.where(np.isfinite(position),
                             np.minimum((np.nan_to_num(position) * 3).astype(np.int64), 2), -1)
        band = item_band[seq.items] if seq.items.size else np.zeros(0, np.int64)
        view = np.asarray(dataset.action_names, dtype=object)[seq.actions] == "view"
        viewed = view & (band >= 0)
        bands = _per_row(rows[viewed], band[viewed], n, len(PRICE_BANDS))
        labels = {}
        for field_ in LABEL_FIELDS:
            values = items[field_]
            known = values.is_not_null().to_numpy()
            names, codes = np.unique(values.drop_nulls().to_numpy().astype(str),
                                     return_inverse=True)
            item_code = np.full(values.len(), -1, dtype=np.int64)
            item_code[known] = codes.ravel()
            code = item_code[seq.items] if seq.items.size else np.zeros(0, np.int64)
            has = code >= 0
            matrix = sp.csr_matrix((np.ones(int(has.sum())), (rows[has], code[has])),
                                   shape=(n, names.size))
            matrix.sum_duplicates()
            labels[field_] = (names, matrix)
        return cls(counts.select([f"{f}.hits" for f in FIGURES]).to_numpy(),
                   counts.select([f"{f}.trials" for f in FIGURES]).to_numpy(), actions,
                   action_keys, bands, labels, np.diff(seq.offsets).astype(np.float64))

    def shifts(self, rows: np.ndarray) -> dict[str, float]:
        """How far customers ``rows`` stand from everyone on each figure, whatever its unit:
        their mean rank among the customers who have the figure (each customer's own ratio;
        mid-ranks for ties), minus one half. 0.1 is the 60th percentile on average."""
        with np.errstate(invalid="ignore", divide="ignore"):
            own = np.where(self.trials > 0, self.hits / self.trials, np.nan)
        out = {}
        for j, figure in enumerate(FIGURES):
            have = np.isfinite(own[:, j])
            ranks = np.full(own.shape[0], np.nan)
            ranks[have] = (rankdata(own[have, j]) - 0.5) / max(int(have.sum()), 1)
            group = ranks[rows]
            group = group[np.isfinite(group)]
            out[figure] = float(group.mean() - 0.5) if group.size else 0.0
        return out

    def population(self) -> dict[str, float]:
        """Every figure over all customers."""
        hits, trials = self.hits.sum(axis=0), self.trials.sum(axis=0)
        return {f: float(hits[j] / trials[j]) if trials[j] > 0 else float("nan")
                for j, f in enumerate(FIGURES)}

    def group(self, rows: np.ndarray, seed: int = 0, resamples: int = RESAMPLES
              ) -> dict[str, Interval]:
        """Every figure of the customers ``rows``, with its interval."""
        rates = np.array([f in RATES for f in FIGURES])
        return dict(zip(FIGURES, intervals(self.hits, self.trials, rows, seed, resamples,
                                           rates), strict=True))

    def label_share(self, field_: str, value: str, rows: np.ndarray, seed: int = 0,
                    resamples: int = RESAMPLES, above_only: bool = False
                    ) -> tuple[Interval, float] | None:
        """The share of the events of customers ``rows`` whose item has ``value`` as its
        ``field_``, with its interval, and everyone's share; None for an unknown value, or
        with ``above_only`` for a share not above everyone's (no interval is needed)."""
        names, matrix = self.labels[field_]
        at = np.searchsorted(names, value)
        if at >= names.size or names[at] != value:
            return None
        hits = np.asarray(matrix[:, at].todense()).ravel()
        everyone = float(hits.sum() / max(self.events.sum(), 1.0))
        if above_only and hits[rows].sum() <= everyone * self.events[rows].sum():
            return None
        share = intervals(hits[:, None], self.events[:, None], rows, seed, resamples,
                          np.ones(1, dtype=bool))[0]
        return share, everyone

    def action_mix(self, rows: np.ndarray | None = None) -> dict[str, float]:
        """Shares of each action among the events of ``rows`` (default: everyone)."""
        return _shares(self.actions if rows is None else self.actions[rows], self.action_keys)

    def price_bands(self, rows: np.ndarray | None = None) -> dict[str, float]:
        """Shares of the viewed products (of known price) in the low, middle and high third
        of their category's prices, for ``rows`` (default: everyone)."""
        return _shares(self.bands if rows is None else self.bands[rows], PRICE_BANDS) \
            if (self.bands if rows is None else self.bands[rows]).any() else {}


def _per_row(rows: np.ndarray, columns: np.ndarray, n_rows: int, n_columns: int
             ) -> np.ndarray:
    """Counts of (row, column) pairs as a dense rows x columns array."""
    flat = np.bincount(rows * n_columns + columns, minlength=n_rows * n_columns)
    return flat.reshape(n_rows, n_columns).astype(np.float64)


def _shares(counts: np.ndarray, keys: tuple[str, ...]) -> dict[str, float]:
    total = counts.sum(axis=0)
    norm = float(total.sum())
    return {k: round(float(v) / norm, 3) if norm > 0 else 0.0
            for k, v in zip(keys, total, strict=True)}


__all__ = ["FIGURES", "LABEL_FIELDS", "LEVEL", "MIN_CUSTOMERS", "MIX_KEYS", "PRICE_BANDS",
           "RATES", "RESAMPLES",
           "TYPICAL_SHARE", "CustomerFigures", "Interval", "customer_counts", "event_frame",
           "intervals", "item_frame", "label_counts", "typical_rows", "verdict"]
