"""An outside shop: e-commerce funnel events from a generator that shares no code or
structure with ``funnelprint.data.simulate``, used to check that customer profiles recover
both *what* customers shop (taste) and *how* they shop (behaviour) when the two are drawn
independently of each other.

How the shop works
------------------
* **Catalogue.** About 1,000 products in 12 categories of uneven size. Each category has a
  handful of brands with a price premium of their own, and prices are lognormal around the
  category's typical price, so they vary several-fold within a category. Every product has
  a lognormal appeal (some products are simply popular).
* **Customers.** A taste mix (Dirichlet over ``tastes`` tastes, each taste a distribution
  over 2-3 categories) and, drawn independently, a behaviour mix (Dirichlet over
  ``behaviours`` behaviours). An activity level (lognormal) sets how many visits a customer
  makes, which gives the long tail of events per customer.
* **Visits.** Each visit has one dominant behaviour drawn from the customer's behaviour mix
  and one taste drawn from the taste mix. A visit is a handful of product *threads*: a
  thread is one product looked at (category from the visit's taste, product by appeal),
  viewed one or more times, perhaps put in the cart, perhaps taken out again while the cart
  is reviewed, perhaps bought at checkout at the end of the visit. Behaviours set the
  numbers and pace:

  - ``price_seeker``: compares several products of *one* category, drawn towards the cheap
    end; carts and buys the cheapest of them far more readily than the dear ones.
  - ``impulse_buyer``: one or two products, seconds between events, carts at first sight
    and buys straight away (view -> add_to_cart -> purchase).
  - ``window_shopper``: long visits of many products, often viewed more than once, minutes
    apart; rarely carts, rarely buys.
  - ``cart_abandoner``: carts a lot, then removes items or leaves without paying.
  - ``loyal_regular``: comes back on a steady rhythm (gaps of a customer-specific period
    with little spread, where other visits follow irregular hours-to-weeks gaps) and
    mostly rebuys a few favourite products.

* **Time.** Visits follow each other after gaps of hours to weeks; events within a visit
  are seconds to minutes apart (scaled by each customer's own pace).

``generate`` writes ``products.csv``, ``events.csv`` and ``truth.csv`` (the mix weights,
columns ``taste:<name>`` and ``behaviour:<name>``, and ``dominant_persona``: the leading
taste and behaviour). ``main`` fits a profile on a few shops and prints one JSON line with
the trait recovery of every true dimension, beside the literal pipeline's.

    python benchmarks/bench_outside.py
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

#: Categories with the typical price (median, in currency units) of their products.
CATEGORIES: dict[str, float] = {
    "garden.tools": 35.0, "garden.plants": 12.0, "kitchen.cookware": 45.0,
    "kitchen.coffee": 18.0, "electronics.audio": 90.0, "electronics.phones": 320.0,
    "books.fiction": 14.0, "books.cooking": 24.0, "sports.running": 70.0,
    "sports.cycling": 140.0, "beauty.skincare": 20.0, "toys.building": 40.0,
}
BEHAVIOURS = ("price_seeker", "impulse_buyer", "window_shopper", "cart_abandoner",
              "loyal_regular")
PRICE, IMPULSE, WINDOW, ABANDON, LOYAL = range(len(BEHAVIOURS))
_START = 1_725_235_200  # 2024-09-02T00:00:00Z, in Unix seconds
_HOUR, _DAY = 3_600.0, 86_400.0


@dataclass(frozen=True)
class Style:
    """How one behaviour shops within a visit."""

    threads: float        # products looked at per visit: 1 + Poisson(threads)
    extra_views: float    # further views of a product: Poisson(extra_views)
    cart: float           # chance a product is carted (price seekers: at the cheapest end)
    remove: float         # chance a carted product is taken out again
    buy: float            # chance a carted product that stays in the cart is bought
    pace_s: float         # median seconds between events
    cheapness: float      # tilt of product choice towards the cheap end of a category


STYLES: dict[int, Style] = {
    PRICE: Style(threads=4.0, extra_views=0.4, cart=0.55, remove=0.10, buy=0.75,
                 pace_s=50.0, cheapness=3.5),
    IMPULSE: Style(threads=0.5, extra_views=0.0, cart=0.75, remove=0.03, buy=0.95,
                   pace_s=12.0, cheapness=0.0),
    WINDOW: Style(threads=9.0, extra_views=0.9, cart=0.04, remove=0.10, buy=0.35,
                  pace_s=100.0, cheapness=0.0),
    ABANDON: Style(threads=2.5, extra_views=0.3, cart=0.65, remove=0.55, buy=0.15,
                   pace_s=40.0, cheapness=0.0),
    LOYAL: Style(threads=1.5, extra_views=0.1, cart=0.60, remove=0.05, buy=0.90,
                 pace_s=25.0, cheapness=0.0),
}
#: Share of a loyal visit's products that are one of the customer's favourites.
FAVOURITE_SHARE = 0.8
FAVOURITES = 5
#: Share of products looked at outside the visit's taste (anything in the shop).
STRAY = 0.04


@dataclass
class Catalogue:
    product_id: np.ndarray   # str
    category: np.ndarray     # int, index into CATEGORIES
    brand: np.ndarray        # str
    price: np.ndarray        # float
    appeal: np.ndarray       # float, relative popularity
    price_rank: np.ndarray   # float in (0, 1): price percentile within the category

    def frame(self) -> pl.DataFrame:
        names = np.array(list(CATEGORIES), dtype=object)
        return pl.DataFrame({"product_id": self.product_id, "category": names[self.category],
                             "brand": self.brand, "price": np.round(self.price, 2)})


def make_catalogue(rng: np.random.Generator, n_products: int = 1_000) -> Catalogue:
    """Products of uneven category sizes, brands with a price premium, lognormal prices."""
    n_cat = len(CATEGORIES)
    sizes = 30 + rng.multinomial(n_products - 30 * n_cat, rng.dirichlet(np.full(n_cat, 4.0)))
    category = np.repeat(np.arange(n_cat), sizes)
    n_brands = rng.integers(4, 9, n_cat)
    brand_of = np.floor(rng.power(0.7, category.size) * n_brands[category]).astype(np.int64)
    premium = rng.normal(0.0, 0.35, (n_cat, int(n_brands.max())))
    spread = rng.uniform(0.45, 0.85, n_cat)
    median = np.array(list(CATEGORIES.values()))
    log_price = (np.log(median[category]) + premium[category, brand_of]
                 + rng.normal(0.0, 1.0, category.size) * spread[category])
    price = np.maximum(np.exp(log_price), 0.99)
    order = np.lexsort((price, category))
    rank = np.empty(category.size)
    start = np.r_[0, np.cumsum(sizes)[:-1]]
    rank[order] = (np.arange(category.size) - np.repeat(start, sizes) + 0.5) / np.repeat(
        sizes, sizes)
    stems = np.array(list(CATEGORIES), dtype=object)
    brand = np.array([f"{stems[c].split('.')[0][:3]}-{chr(65 + b)}{c:02d}"
                      for c, b in zip(category, brand_of, strict=True)], dtype=object)
    shuffle = rng.permutation(category.size)  # ids say nothing about category
    ids = np.array([f"sku{i:05d}" for i in range(category.size)], dtype=object)
    return Catalogue(ids, category[shuffle], brand[shuffle], price[shuffle],
                     rng.lognormal(0.0, 1.0, category.size), rank[shuffle])


def make_tastes(rng: np.random.Generator, tastes: int) -> tuple[list[str], np.ndarray]:
    """``tastes`` distributions over 2-3 categories each, disjoint while the categories
    last (narrower tastes first; beyond 6 tastes they share categories)."""
    n_cat = len(CATEGORIES)
    order = rng.permutation(n_cat)
    weights = np.zeros((tastes, n_cat))
    widths = rng.integers(2, 4, tastes)
    while widths.sum() > n_cat and (widths == 3).any():
        widths[np.flatnonzero(widths == 3)[0]] = 2
    names = []
    cursor = 0
    for t, width in enumerate(widths.tolist()):
        picked = order[np.arange(cursor, cursor + width) % n_cat]
        cursor += width
        weights[t, picked] = rng.dirichlet(np.full(width, 4.0))
        top = picked[np.argsort(-weights[t, picked])]
        names.append("+".join(list(CATEGORIES)[c] for c in top))
    return names, weights


def _draw(cumulative: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One index per row of row-wise cumulative probabilities."""
    u = rng.random((cumulative.shape[0], 1)) * cumulative[:, -1:]
    return np.minimum((cumulative < u).sum(axis=1), cumulative.shape[1] - 1)


def _segment_start(counts: np.ndarray) -> np.ndarray:
    """Position of each element within its run, for runs of the given lengths."""
    return np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)


def _pick_products(rng: np.random.Generator, catalogue: Catalogue, category: np.ndarray,
                   cheapness: np.ndarray) -> np.ndarray:
    """A product of each given category, by appeal tilted by exp(-cheapness * price rank)."""
    out = np.empty(category.size, dtype=np.int64)
    for c in np.unique(category):
        members = np.flatnonzero(catalogue.category == c)
        for tilt in np.unique(cheapness):
            rows = np.flatnonzero((category == c) & (cheapness == tilt))
            w = catalogue.appeal[members] * np.exp(-tilt * catalogue.price_rank[members])
            cdf = np.cumsum(w) / w.sum()
            out[rows] = members[np.minimum(np.searchsorted(cdf, rng.random(rows.size)),
                                           members.size - 1)]
    return out


def generate(customers: int = 5_000, seed: int = 0, tastes: int = 3, behaviours: int = 3,
             out_dir: Path = Path("outside_shop")) -> dict[str, Path]:
    """Write ``products.csv``, ``events.csv`` and ``truth.csv`` of one shop into ``out_dir``
    and return their paths (about 50 events per customer, from 3 to several hundred)."""
    if not 2 <= behaviours <= len(BEHAVIOURS):
        raise ValueError(f"behaviours must be 2..{len(BEHAVIOURS)}, not {behaviours}")
    rng = np.random.default_rng(seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    catalogue = make_catalogue(rng)
    taste_names, taste_cats = make_tastes(rng, tastes)
    n_cat = len(CATEGORIES)

    # Customers: independent taste and behaviour mixes, activity, pace, tenure, favourites.
    taste_mix = rng.dirichlet(np.full(tastes, 0.5), customers)
    behaviour_mix = rng.dirichlet(np.full(behaviours, 0.5), customers)
    loyal = behaviour_mix[:, LOYAL] if behaviours > LOYAL else np.zeros(customers)
    activity = rng.lognormal(0.0, 1.0, customers)
    pace = rng.lognormal(0.0, 0.25, customers)
    tenure_days = rng.uniform(30.0, 365.0, customers)
    fav_cat = _draw(np.cumsum((taste_mix @ taste_cats)[np.repeat(np.arange(customers),
                                                                  FAVOURITES)], axis=1), rng)
    favourites = _pick_products(rng, catalogue, fav_cat, np.zeros(fav_cat.size)).reshape(
        customers, FAVOURITES)

    # Visits: how many per customer (loyal customers come more often), a behaviour and a
    # taste each.
    n_visits = 1 + rng.poisson(1.9 * activity * (1.0 + 1.5 * loyal))
    v_cust = np.repeat(np.arange(customers), n_visits)
    n_v = v_cust.size
    v_beh = _draw(np.cumsum(behaviour_mix, axis=1)[v_cust], rng)
    v_taste = _draw(np.cumsum(taste_mix, axis=1)[v_cust], rng)
    first_visit = _segment_start(n_visits) == 0
    style = {f: np.array([getattr(STYLES[b], f) for b in range(behaviours)])
             for f in Style.__dataclass_fields__}

    # Threads: products looked at in each visit.
    n_threads = 1 + rng.poisson(style["threads"][v_beh])
    n_threads[first_visit] = np.maximum(n_threads[first_visit], 3)  # at least 3 events
    t_visit = np.repeat(np.arange(n_v), n_threads)
    t_beh = v_beh[t_visit]
    cat_cdf = np.cumsum(taste_cats, axis=1)[v_taste[t_visit]]
    t_cat = _draw(cat_cdf, rng)
    stray = rng.random(t_visit.size) < STRAY
    t_cat[stray] = rng.integers(0, n_cat, int(stray.sum()))
    # A price seeker compares within one category: the visit's first thread's.
    first_thread = np.cumsum(n_threads) - n_threads
    one_cat = t_beh == PRICE
    t_cat[one_cat] = t_cat[first_thread[t_visit[one_cat]]]
    t_prod = _pick_products(rng, catalogue, t_cat, style["cheapness"][t_beh])
    fav = (t_beh == LOYAL) & (rng.random(t_visit.size) < FAVOURITE_SHARE)
    t_prod[fav] = favourites[v_cust[t_visit[fav]], rng.integers(0, FAVOURITES,
                                                                int(fav.sum()))]

    # What happens to each thread.
    n_views = 1 + rng.poisson(style["extra_views"][t_beh])
    p_cart = style["cart"][t_beh].copy()
    rank = catalogue.price_rank[t_prod]
    p_cart[t_beh == PRICE] *= (1.0 - rank[t_beh == PRICE]) ** 2 * 1.6
    carted = rng.random(t_visit.size) < np.minimum(p_cart, 0.95)
    removed = carted & (rng.random(t_visit.size) < style["remove"][t_beh])
    p_buy = style["buy"][t_beh] * np.where(t_beh == PRICE, 1.2 - rank, 1.0)
    bought = carted & ~removed & (rng.random(t_visit.size) < p_buy)
    inline = bought & (t_beh == IMPULSE)  # impulse buyers pay straight away

    # Events: (thread, phase, step, action); phase 0 browsing, 1 cart review, 2 checkout.
    view_thread = np.repeat(np.arange(t_visit.size), n_views)
    parts = [
        (view_thread, 0, _segment_start(n_views), 0),
        (np.flatnonzero(carted), 0, n_views[carted], 1),
        (np.flatnonzero(inline), 0, n_views[inline] + 1, 3),
        (np.flatnonzero(removed), 1, 0, 2),
        (np.flatnonzero(bought & ~inline), 2, 0, 3),
    ]
    e_thread = np.concatenate([p[0] for p in parts])
    e_phase = np.concatenate([np.full(p[0].size, p[1]) for p in parts])
    e_step = np.concatenate([np.broadcast_to(p[2], p[0].shape) for p in parts])
    e_action = np.concatenate([np.full(p[0].size, p[3]) for p in parts])
    e_visit = t_visit[e_thread]
    order = np.lexsort((e_step, e_thread, e_phase, e_visit))
    e_thread, e_phase, e_action, e_visit = (a[order] for a in (e_thread, e_phase, e_action,
                                                               e_visit))
    e_beh = v_beh[e_visit]

    # Time within a visit: lognormal steps at the behaviour's and customer's pace; items of
    # one checkout a few seconds apart.
    step = (style["pace_s"][e_beh] * pace[v_cust[e_visit]]
            * rng.lognormal(0.0, 0.7, e_visit.size))
    same_checkout = (e_phase == 2) & np.r_[False, (e_phase[1:] == 2) & (e_visit[1:] ==
                                                                          e_visit[:-1])]
    step[same_checkout] = rng.uniform(1.0, 5.0, int(same_checkout.sum()))
    step = np.minimum(step, 20 * 60.0)
    first_event = np.r_[True, e_visit[1:] != e_visit[:-1]]
    step[first_event] = 0.0
    elapsed = np.cumsum(step)
    elapsed -= np.maximum.accumulate(np.where(first_event, elapsed, 0.0))
    duration = np.zeros(n_v)
    np.maximum.at(duration, e_visit, elapsed)

    # Time between visits: irregular hours-to-weeks, or a loyal customer's steady rhythm.
    # Either way the mean gap spreads the customer's visits over their tenure.
    typical = np.clip(tenure_days / n_visits, 0.25, 14.0) * _DAY
    gap = np.maximum(typical[v_cust] * rng.lognormal(-0.6, 1.1, n_v), 0.75 * _HOUR)
    gap = np.minimum(gap, 60 * _DAY)
    rhythm = v_beh == LOYAL
    period = np.maximum(typical, _DAY)[v_cust[rhythm]]
    gap[rhythm] = period * rng.gamma(40.0, 1 / 40.0, int(rhythm.sum()))
    gap[first_visit] = rng.uniform(0.0, 60 * _DAY, int(first_visit.sum()))
    advance = gap + np.r_[0.0, duration[:-1]] * ~first_visit
    cumulative = np.cumsum(advance)
    start = cumulative - np.repeat(cumulative[first_visit] - advance[first_visit], n_visits)
    seconds = np.round(start[e_visit] + elapsed).astype(np.int64)

    actions = np.array(["view", "add_to_cart", "remove_from_cart", "purchase"], dtype=object)
    events = pl.DataFrame({
        "user_id": np.char.add("c", np.char.zfill(v_cust[e_visit].astype(str), 5)),
        "timestamp": _START + seconds,
        "action": actions[e_action],
        "product_id": catalogue.product_id[t_prod[e_thread]],
    }).with_columns(pl.from_epoch("timestamp", "s").dt.strftime("%Y-%m-%dT%H:%M:%SZ"))

    ids = np.char.add("c", np.char.zfill(np.arange(customers).astype(str), 5))
    taste_cols = {f"taste:{n}": taste_mix[:, i] for i, n in enumerate(taste_names)}
    beh_cols = {f"behaviour:{n}": behaviour_mix[:, i]
                for i, n in enumerate(BEHAVIOURS[:behaviours])}
    dominant = np.char.add(np.char.add(np.array(taste_names)[taste_mix.argmax(1)], "|"),
                           np.array(BEHAVIOURS)[behaviour_mix.argmax(1)])
    truth = pl.DataFrame({"customer_id": ids, **taste_cols, **beh_cols,
                          "dominant_persona": dominant})

    paths = {name: out_dir / f"{name}.csv" for name in ("products", "events", "truth")}
    catalogue.frame().write_csv(paths["products"])
    events.write_csv(paths["events"])
    truth.write_csv(paths["truth"], float_precision=5)
    return paths


# ------------------------------------------------------------------------- the check

CONFIGS = (
    {"tastes": 3, "behaviours": 3, "customers": 5_000, "seed": 0},
    {"tastes": 3, "behaviours": 3, "customers": 5_000, "seed": 1},
    {"tastes": 5, "behaviours": 4, "customers": 5_000, "seed": 0},
    {"tastes": 3, "behaviours": 3, "customers": 1_500, "seed": 2},
)


def check(tastes: int, behaviours: int, customers: int, seed: int, work: Path) -> dict:
    """Fit a profile on one outside shop and report how well it recovers every true
    dimension, beside the literal pipeline."""
    from funnelprint.data.dataset import Dataset
    from funnelprint.data.pipeline import prepare_events
    from funnelprint.data.products import read_products
    from funnelprint.profile.model import ProfileModel
    from funnelprint.profile.quality import (
        align,
        literal_baseline,
        persona_columns,
        trait_recovery,
    )

    paths = generate(customers, seed, tastes, behaviours, work / f"t{tastes}b{behaviours}"
                     f"c{customers}s{seed}")
    log = prepare_events(paths["events"])
    dataset = Dataset.from_events(log, collapse_repeats=False,
                                  products=read_products(paths["products"]))
    truth = pl.read_csv(paths["truth"], schema_overrides={"customer_id": pl.String})
    columns = persona_columns(truth)

    began = time.perf_counter()
    model = ProfileModel(seed=seed).fit(dataset)
    model.transform(dataset)
    profile_s = time.perf_counter() - began
    warm = ~model.customer_cold_
    true_mix, found, _ = align(truth, model.customer_ids_[warm], model.customer_traits_[warm])
    result = trait_recovery(true_mix, found)

    began = time.perf_counter()
    ids, traits = literal_baseline(dataset, 16, seed)
    literal_s = time.perf_counter() - began
    literal = trait_recovery(*align(truth, ids, traits)[:2])

    per_customer = log.events.group_by("customer_id").len()["len"]
    dimensions = {}
    for column, corr, j in zip(columns, result["matched"], result["assignment"], strict=True):
        info = model.trait_info_[j] if j < model.traits else {}
        dimensions[column] = {"corr": corr, "trait": info.get("name", ""),
                              "kind": info.get("kind", "")}
    return {
        "tastes": tastes, "behaviours": behaviours, "customers": customers, "seed": seed,
        "events": log.events.height,
        "events_per_customer": {"min": int(per_customer.min()),
                                "median": float(per_customer.median()),
                                "max": int(per_customer.max())},
        "warm_customers": int(warm.sum()),
        "traits": model.traits,
        "behaviour_weight": round(float(model.behaviour_weight_), 3),
        "mean_correlation": round(result["mean_correlation"], 3),
        "dimensions": dimensions,
        "literal_mean_correlation": round(literal["mean_correlation"], 3),
        "literal_matched": literal["matched"],
        "profile_seconds": round(profile_s, 1),
        "literal_seconds": round(literal_s, 1),
    }


def main() -> None:
    """Run :data:`CONFIGS` and print one JSON line."""
    import warnings

    warnings.filterwarnings("ignore")
    with tempfile.TemporaryDirectory() as tmp:
        runs = [check(work=Path(tmp), **config) for config in CONFIGS]
    summary = {f"t{r['tastes']}b{r['behaviours']}c{r['customers']}s{r['seed']}": {
        "funnelprint_corr": r["mean_correlation"],
        "literal_corr": r["literal_mean_correlation"],
        "traits": r["traits"], "funnelprint_s": r["profile_seconds"],
        "literal_s": r["literal_seconds"]} for r in runs}
    json.dump({"summary": summary, "runs": runs}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
