"""The numbers behind the HTML report: what the event log holds, how many customers lean on
each trait, where customers sit on a 2-D map, each segment's funnel, and example customers.

Everything here returns plain Python values or polars frames; drawing them is
:mod:`funnelprint.report.charts`' job and laying them out :mod:`funnelprint.report.html`'s.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from funnelprint.data.dataset import Dataset
from funnelprint.data.pipeline import EventLog
from funnelprint.data.schema import TOKEN_PREFIX
from funnelprint.data.summary import summarize
from funnelprint.profile.evidence import MIX_KEYS
from funnelprint.profile.model import ProfileModel

#: A customer "leans on" a trait when it makes up at least this share of their profile.
LEAN_SHARE = 0.25
#: Funnel rates, in the order the report shows them: column name and label.
FUNNEL_RATES = (
    ("view_to_cart", "view → cart"),
    ("cart_to_purchase", "cart → purchase"),
    ("view_to_purchase", "view → purchase"),
    ("removal", "removed from cart"),
    ("abandonment", "left in cart"),
    ("visits_abandoned", "abandoned visits"),
)


def data_overview(log: EventLog) -> dict[str, Any]:
    """What ``inspect`` reports, plus histograms of session and journey length and the
    events per day and action."""
    events = log.events
    overview = summarize(log)
    overview["session_hist"] = length_histogram(events.group_by("session").len()["len"])
    overview["journey_hist"] = length_histogram(events.group_by("customer_id").len()["len"])
    overview["per_day"] = (
        events.group_by(pl.col("timestamp").dt.date().alias("day"), "action").len()
        .sort("day", "action")
    )
    return overview


def length_histogram(lengths: pl.Series, bins: int = 30) -> pl.DataFrame:
    """Counts of ``lengths`` in up to ``bins`` integer-aligned bins (``low``, ``high``
    inclusive, ``count``); the last bin holds the top 1% so a long tail does not squash
    the rest."""
    values = lengths.cast(pl.Int64).to_numpy()
    if not values.size:
        return pl.DataFrame(schema={"low": pl.Int64, "high": pl.Int64, "count": pl.Int64})
    top = int(max(values.min(), np.quantile(values, 0.99)))
    width = max(1, int(np.ceil((top - values.min() + 1) / bins)))
    low = values.min() + width * ((np.minimum(values, top) - values.min()) // width)
    frame = pl.DataFrame({"low": low}).group_by("low").len("count").sort("low")
    return frame.with_columns(high=pl.when(pl.col("low") + width - 1 >= top)
                              .then(pl.lit(int(values.max())))
                              .otherwise(pl.col("low") + width - 1))


def population_action_mix(profile: ProfileModel) -> dict[str, float]:
    """The population's view/cart/remove/buy mix, weighed the way each trait's ``action_mix``
    is (log counts of the tokens), so the two compare."""
    prefixes = np.array([TOKEN_PREFIX.get(a, a) for a in profile.action_names_],
                        dtype=object)[profile.token_actions_]
    weights = np.log1p(np.asarray(profile.token_counts_, dtype=np.float64))
    total = {key: float(weights[prefixes == key].sum()) for key in MIX_KEYS}
    norm = sum(total.values())
    return {k: round(v / norm, 3) if norm > 0 else 0.0 for k, v in total.items()}


def trait_reach(profile: ProfileModel) -> pl.DataFrame:
    """Per trait: customers whose largest trait it is (``leading``), customers with at
    least :data:`LEAN_SHARE` of their profile on it (``leaning``), and the mean share."""
    traits = profile.customer_traits_[~profile.customer_cold_]
    k = len(profile.trait_info_)
    leading = np.bincount(traits.argmax(axis=1), minlength=k) if traits.size else np.zeros(k)
    return pl.DataFrame({
        "trait": [info["trait"] for info in profile.trait_info_],
        "name": [info["name"] for info in profile.trait_info_],
        "leading": leading.astype(np.int64),
        "leaning": (traits >= LEAN_SHARE).sum(axis=0).astype(np.int64),
        "mean_share": traits.mean(axis=0) if traits.size else np.zeros(k),
    })


def segment_map(profile: ProfileModel, max_points: int = 4000, seed: int = 0) -> pl.DataFrame:
    """Customers profiled from their own events on the first two principal components of
    their Hellinger coordinates (the square roots of their trait shares, the space segments
    are cut in), with their segment and two leading traits; at most ``max_points``
    customers, sampled evenly."""
    warm = np.flatnonzero(~profile.customer_cold_)
    traits = profile.customer_traits_
    rows = warm
    if rows.size > max_points:
        rows = np.sort(np.random.default_rng(seed).choice(rows, max_points, replace=False))
    coords = np.sqrt(np.clip(traits, 0.0, None))
    centred = coords - coords[warm].mean(axis=0) if warm.size else coords
    _, _, vt = np.linalg.svd(centred[warm], full_matrices=False)
    xy = centred[rows] @ vt[:2].T if vt.shape[0] >= 2 else np.zeros((rows.size, 2))
    names = [info["name"] for info in profile.trait_info_]
    top = np.argsort(-traits[rows], axis=1)[:, :2]
    lead = [f"{names[a]} {traits[r, a]:.0%}, {names[b]} {traits[r, b]:.0%}"
            for r, (a, b) in zip(rows, top, strict=True)]
    return pl.DataFrame({
        "customer_id": profile.customer_ids_[rows].astype(str),
        "x": np.round(xy[:, 0], 4), "y": np.round(xy[:, 1], 4),
        "segment": profile.assign_segments(traits[rows]).astype(np.int64),
        "leading": lead,
    })


def customer_segments(profile: ProfileModel) -> pl.DataFrame:
    """``customer_id`` → ``segment`` of the model's training customers profiled from their
    own events (a cold-start customer's segment is a guess: they count in everyone's
    funnel only)."""
    return profile.customer_profiles_.filter(~pl.col("cold_start")).select(
        pl.col("customer_id").cast(pl.String), "segment")


def short_segment_labels(profile: ProfileModel, limit: int = 34) -> dict[int, str]:
    """A short, distinct label per segment for charts too narrow for the full one: its
    number and the trait it leans on most beyond the mean of all segments (segments often
    share their largest trait), shortened in the middle (names that share a start differ at
    their end)."""
    centres = profile.segment_profiles_
    names = [info["name"] for info in profile.trait_info_]
    beyond = centres - centres.mean(axis=0) if centres.size else centres
    return {s: f"segment {s} · {middle_shorten(names[int(np.argmax(row))], limit)}"
            for s, row in enumerate(beyond)}


def middle_shorten(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters by an ellipsis in the middle."""
    if len(text) <= limit:
        return text
    head = (limit - 1) // 2
    return text[:head].rstrip() + "…" + text[len(text) - (limit - 1 - head):].lstrip()


def segment_funnels(events: pl.DataFrame, segments: pl.DataFrame) -> pl.DataFrame:
    """The funnel of each segment and of everyone (``segment`` -1), on customer-product
    pairs: the share of viewed pairs carted and bought, of carted pairs bought, removed and
    left in the cart (neither bought nor removed); and, where ``events`` has a ``session``
    column, the share of visits with an add to cart that ended without a purchase.
    Customers without a segment count in the population only."""
    pairs = events.group_by("customer_id", "product_id").agg(
        viewed=(pl.col("action") == "view").any(),
        carted=(pl.col("action") == "add_to_cart").any(),
        removed=(pl.col("action") == "remove_from_cart").any(),
        bought=(pl.col("action") == "purchase").any(),
    ).with_columns(pl.col("customer_id").cast(pl.String))
    pairs = pairs.join(segments, on="customer_id", how="left")
    rates = _funnel_rates()
    per_segment = (pairs.filter(pl.col("segment").is_not_null())
                   .group_by("segment").agg(*rates).sort("segment"))
    everyone = pairs.select(pl.lit(-1, dtype=per_segment.schema["segment"]).alias("segment"),
                            *rates)
    table = pl.concat([per_segment, everyone])
    if "session" not in events.columns:
        return table.with_columns(visits_abandoned=pl.lit(None, dtype=pl.Float64))
    return table.join(_abandoned_visits(events, segments), on="segment", how="left")


def _abandoned_visits(events: pl.DataFrame, segments: pl.DataFrame) -> pl.DataFrame:
    """Per segment (and everyone, -1): the share of visits with an add to cart that ended
    without a purchase."""
    visits = events.group_by("customer_id", "session").agg(
        carted=(pl.col("action") == "add_to_cart").any(),
        bought=(pl.col("action") == "purchase").any(),
    ).filter(pl.col("carted")).with_columns(pl.col("customer_id").cast(pl.String))
    visits = visits.join(segments, on="customer_id", how="left")
    rate = (~pl.col("bought")).mean().alias("visits_abandoned")
    per_segment = visits.filter(pl.col("segment").is_not_null()).group_by("segment").agg(rate)
    everyone = visits.select(pl.lit(-1, dtype=per_segment.schema["segment"]).alias("segment"),
                             rate)
    return pl.concat([per_segment, everyone])


def _funnel_rates() -> list[pl.Expr]:
    viewed, carted = pl.col("viewed"), pl.col("carted")
    bought, removed = pl.col("bought"), pl.col("removed")

    def share(hit: pl.Expr, base: pl.Expr) -> pl.Expr:
        return (hit & base).sum() / base.sum()

    return [
        pl.col("customer_id").n_unique().alias("customers"),
        pl.len().alias("pairs"),
        share(carted, viewed).alias("view_to_cart"),
        share(bought, carted).alias("cart_to_purchase"),
        share(bought, viewed).alias("view_to_purchase"),
        share(removed, carted).alias("removal"),
        share(~bought & ~removed, carted).alias("abandonment"),
    ]


def example_customers(profile: ProfileModel, n: int = 4, min_tokens: int = 5) -> list[str]:
    """One typical customer for each of the ``n`` largest segments: the one closest to the
    segment's centre among customers with at least ``min_tokens`` known tokens."""
    traits, known = profile.customer_traits_, profile.customer_known_
    segments = profile.assign_segments(traits)
    hellinger = np.sqrt(np.clip(traits, 0.0, None))
    sizes = np.bincount(segments, minlength=profile.segment_centers_.shape[0])
    chosen = []
    for s in np.argsort(-sizes, kind="stable")[:n]:
        rows = np.flatnonzero((segments == s) & (known >= min_tokens))
        if not rows.size:
            continue
        distance = ((hellinger[rows] - profile.segment_centers_[s]) ** 2).sum(axis=1)
        chosen.append(str(profile.customer_ids_[rows[distance.argmin()]]))
    return chosen


def journey(events: pl.DataFrame, customer_id: str, limit: int = 200) -> pl.DataFrame:
    """The last ``limit`` events of one customer, oldest first."""
    mine = events.filter(pl.col("customer_id").cast(pl.String) == customer_id)
    keep = [c for c in ("timestamp", "action", "product_id", "session", "category")
            if c in mine.columns]
    return mine.select(keep).tail(limit)


def dataset_journey(dataset: Dataset, customer_id: str, limit: int = 200) -> pl.DataFrame:
    """A customer's steps as the model holds them (runs of events on one product collapsed
    into one step), for reports made without the event file."""
    row = dataset.customer_index()[customer_id]
    seq = dataset.sequences
    start, stop = int(seq.offsets[row]), int(seq.offsets[row + 1])
    start = max(start, stop - limit)
    times = pl.Series("t", seq.times[start:stop].astype(np.int64))
    return pl.DataFrame({
        "timestamp": times if dataset.synthetic_time else pl.from_epoch(times, "us"),
        "action": np.asarray(dataset.action_names, dtype=object)[seq.actions[start:stop]],
        "product_id": dataset.item_ids[seq.items[start:stop]].astype(str),
    })
