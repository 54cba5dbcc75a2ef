"""Words for traits: the tokens, products, categories, brands, price bands and action mix that
load on each trait, computed from token loadings in the space the NMF was fitted in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
from scipy.stats import rankdata

MIX_KEYS = ("view", "cart", "remove", "buy")
PRICE_BANDS = ("low", "mid", "high")


@dataclass(frozen=True)
class TokenTable:
    """What each vocabulary token stands for, one entry per token.

    ``prefix``: action prefix (``view``, ``cart``, ...); ``product``: product id of an item
    token ("" for a category token); ``category``, ``brand``: "" where unknown; ``price``:
    NaN where unknown (category tokens have no brand or price).
    """

    names: list[str]
    prefix: np.ndarray
    product: np.ndarray
    category: np.ndarray
    brand: np.ndarray
    price: np.ndarray


def token_relevance(loadings: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """How characteristic each token is of each trait: its share of the token's loading,
    times log-frequency so that one-off tokens do not lead."""
    total = loadings.sum(axis=1, keepdims=True)
    share = np.where(total > 0, loadings / np.maximum(total, 1e-12), 0.0)
    return share * np.log1p(counts)[:, None]


def describe_traits(loadings: np.ndarray, counts: np.ndarray, tokens: TokenTable,
                    top_n: int = 10) -> list[dict[str, Any]]:
    """One dict per trait: ``trait, top_tokens, top_products, action_mix, top_categories,
    top_brands, price_bands, name`` (``action_mix``: shares of view/cart/remove/buy among
    its top tokens; categories, brands and price bands are empty where unknown)."""
    relevance = token_relevance(loadings, counts)
    prefixes = tokens.prefix
    is_product = tokens.product != ""
    overall = _action_mix(prefixes, np.log1p(counts))
    bands = price_bands(tokens.price)
    traits = []
    for j in range(loadings.shape[1]):
        score = relevance[:, j]
        order = np.argsort(-score)
        top = order[:top_n]
        head = order[: max(50, top_n)]
        trait: dict[str, Any] = {
            "trait": f"trait_{j}",
            "top_tokens": [tokens.names[t] for t in top],
            "top_products": _top_by(tokens.product[is_product], score[is_product], top_n),
            "action_mix": _action_mix(prefixes[head], score[head]),
            "top_categories": _top_by(tokens.category, score, 5, skip_empty=True),
            "top_brands": _top_by(tokens.brand, score, 5, skip_empty=True),
            "price_bands": _shares(bands, score, PRICE_BANDS),
        }
        trait["name"] = trait_name(trait, overall)
        traits.append(trait)
    _make_unique([t["name"] for t in traits], traits)
    return traits


def price_bands(prices: np.ndarray) -> np.ndarray:
    """``low``, ``mid`` or ``high`` by the tertiles of the known prices; "" where unknown."""
    price = pl.Series(prices, dtype=pl.Float64).fill_nan(None)
    known = price.drop_nulls()
    if known.len() == 0:
        return np.full(prices.size, "", dtype=object)
    q = known.quantile(1 / 3), known.quantile(2 / 3)
    return pl.select(
        pl.when(price.is_null()).then(pl.lit(""))
        .when(price <= q[0]).then(pl.lit("low"))
        .when(price <= q[1]).then(pl.lit("mid")).otherwise(pl.lit("high"))
    ).to_series().to_numpy()


def _top_by(labels: np.ndarray, weights: np.ndarray, n: int, skip_empty: bool = False) -> list:
    frame = pl.DataFrame({"label": labels, "w": weights})
    if skip_empty:
        frame = frame.filter(pl.col("label") != "")
    ranked = frame.group_by("label").agg(pl.col("w").sum()).sort(["w", "label"],
                                                                  descending=[True, False])
    return ranked["label"].head(n).to_list()


def _shares(labels: np.ndarray, weights: np.ndarray, keys: tuple[str, ...]) -> dict[str, float]:
    total = {key: float(weights[labels == key].sum()) for key in keys}
    norm = sum(total.values())
    return {k: round(v / norm, 3) if norm > 0 else 0.0 for k, v in total.items()}


def _action_mix(prefixes: np.ndarray, weights: np.ndarray) -> dict[str, float]:
    return _shares(prefixes, np.maximum(weights, 0.0), MIX_KEYS)


def trait_name(trait: dict, overall: dict[str, float]) -> str:
    """``<what> · <how>``: the leading category (or product) and the funnel behaviour that
    stands out against the population's action mix."""
    what = (trait.get("top_categories") or trait["top_products"] or ["mixed"])[0]
    mix = trait["action_mix"]
    lift = {k: mix[k] / overall[k] for k in MIX_KEYS if overall.get(k, 0) > 0}
    how = "browser"
    if lift:
        key = max(lift, key=lambda k: lift[k])
        if lift[key] >= 1.3 and key != "view":
            how = {"cart": "cart-heavy", "remove": "cart abandoner", "buy": "buyer"}[key]
        elif lift.get("view", 0) >= 1.1:
            how = "browser"
        else:
            how = "mixed funnel"
    band = trait.get("price_bands") or {}
    if band and max(band.values()) >= 0.6:
        how += f", {max(band, key=lambda b: band[b])} price"
    return f"{what} · {how}"


def _make_unique(names: list[str], traits: list[dict]) -> None:
    """Traits that share a name get what sets each apart (see :func:`_distinct_mark`); a
    number only where nothing does."""
    groups: dict[str, list[int]] = {}
    for j, name in enumerate(names):
        groups.setdefault(name, []).append(j)
    for name, members in groups.items():
        if len(members) < 2:
            continue
        for rank, j in enumerate(members, start=1):
            others = [traits[i] for i in members if i != j]
            mark = _distinct_mark(traits[j], others)
            traits[j]["name"] = f"{name} · {mark}" if mark else f"{name} ({rank})"


def _distinct_mark(trait: dict, others: list[dict]) -> str:
    """A behaviour trait's first piece of evidence the others do not lead with; a taste
    trait's first brand, else product."""
    if trait.get("kind") in ("behaviour", "mixed") and trait.get("evidence"):
        taken = {o["evidence"][0]["reads"] for o in others if o.get("evidence")}
        for row in trait["evidence"][:3]:
            if row["reads"] not in taken and row["reads"] != trait.get("behaviour"):
                return str(row["reads"])
        return ""
    for key in ("top_brands", "top_products"):
        taken = {o[key][0] for o in others if o.get(key)}
        for value in trait.get(key, [])[:3]:
            if value not in taken:
                return str(value)
    return ""


# ------------------------------------------------------------------ behaviour

#: Named shopping behaviours: each is a set of (feature, direction) whose lifts it shows
#: (direction +1: above the population, -1: below). A trait takes the name whose features
#: its customers show most clearly.
BEHAVIOUR_NAMES: dict[str, tuple[tuple[str, int], ...]] = {
    "price-seeking": (("carted_price_position", -1), ("viewed_price_position", -1),
                      ("bought_price_position", -1)),
    "premium-seeking": (("carted_price_position", 1), ("viewed_price_position", 1),
                        ("bought_price_position", 1)),
    "impulse buyer": (("seconds_view_to_cart", -1), ("seconds_view_to_purchase", -1),
                      ("view_to_purchase", 1), ("views_per_session", -1)),
    "window shopper": (("views_per_session", 1), ("session_minutes", 1), ("view_to_cart", -1),
                       ("view_to_purchase", -1)),
    "cart abandoner": (("carts_never_bought", 1), ("cart_to_remove", 1),
                       ("cart_to_purchase", -1)),
    "regular": (("visit_regularity", 1), ("visits_per_week", 1), ("repeat_views", 1),
                ("repeat_purchases", 1)),
}
#: Features with a neutral value of their own (the median-priced item of a category): a
#: behaviour named by their direction must also lie on that side of it, not only of the
#: population's median — where many customers seek low prices, everyone else ranks "above
#: the median" without choosing dear items.
NEUTRAL = {"carted_price_position": 0.5, "viewed_price_position": 0.5,
           "bought_price_position": 0.5}
#: Least mean percentile shift (typical customers against the median) of a named
#: behaviour's features for a trait to take its name: 0.1 is the 60th percentile.
NAME_MIN_EFFECT = 0.1
#: Least percentile shift of a trait's most distinctive behaviour feature for a trait of
#: mixed mass without a named behaviour to carry behaviour words (else it is a taste trait).
DISTINCT_EFFECT = 0.15
#: Share of customers, those leaning most on a trait, whose behaviour is its evidence.
TYPICAL_SHARE = 0.1


def describe_behaviour(traits: list[dict[str, Any]], components: np.ndarray, n_taste: int,
                       features: np.ndarray, shares: np.ndarray, values: np.ndarray,
                       names: tuple[str, ...], top_n: int = 6) -> None:
    """Add ``kind``, ``behaviour_share``, ``evidence`` and a name that says how the trait's
    customers shop to every trait description (in place).

    ``components`` is the NMF basis over the factorised ``features`` (taste columns first,
    ``n_taste`` of them); ``shares`` the customers' trait shares; ``values`` their raw
    behaviour values (columns named by ``names``). A trait's kind follows the share of its
    basis row in the behaviour block, each block measured against its mean row total:
    below 1/3 ``taste``, above 2/3 ``behaviour``, else ``mixed``. Its evidence compares the
    behaviour of the 10% of customers leaning most on it with the population's: their mean
    value, the population mean, the lift, and their mean population percentile, ordered by
    how far that percentile is from the median.
    """
    from funnelprint.profile.behaviour import FEATURES

    meaning = {f.name: f for f in FEATURES}
    row_totals = np.array([features[:, :n_taste].sum(axis=1).mean(),
                           features[:, n_taste:].sum(axis=1).mean()])
    population = values.mean(axis=0) if values.size else np.zeros(len(names))
    # Population percentiles make features of any unit comparable (a lift of log seconds
    # and a lift of a rate are not).
    ranks = ((rankdata(values, axis=0) - 0.5) / max(values.shape[0], 1) if values.size
             else np.zeros((0, len(names))))
    n_typical = max(1, round(TYPICAL_SHARE * shares.shape[0]))
    for j, trait in enumerate(traits):
        mass = np.array([components[j, :n_taste].sum(), components[j, n_taste:].sum()])
        relative = mass / np.maximum(row_totals, 1e-12)
        behaviour_share = float(relative[1] / max(relative.sum(), 1e-12))
        kind = ("taste" if behaviour_share < 1 / 3 else
                "behaviour" if behaviour_share > 2 / 3 else "mixed")
        typical = np.argsort(-shares[:, j], kind="stable")[:n_typical]
        value = values[typical].mean(axis=0) if values.size else population
        rank = ranks[typical].mean(axis=0) if values.size else np.full(len(names), 0.5)
        lift = np.where(np.abs(population) > 1e-12, value / np.where(
            np.abs(population) > 1e-12, population, 1.0), 1.0)
        order = np.argsort(-np.abs(rank - 0.5), kind="stable")[:top_n]
        trait["kind"] = kind
        trait["behaviour_share"] = round(behaviour_share, 3)
        trait["evidence"] = [{
            "feature": names[f], "description": meaning[names[f]].description,
            "value": round(float(value[f]), 4), "population": round(float(population[f]), 4),
            "lift": round(float(lift[f]), 3), "percentile": round(100 * float(rank[f]), 1),
            "reads": meaning[names[f]].high if rank[f] >= 0.5 else meaning[names[f]].low,
        } for f in order]
        shifts = rank - 0.5
        named = behaviour_name(dict(zip(names, shifts.tolist(), strict=True)), "",
                               dict(zip(names, value.tolist(), strict=True)))
        how = named or (trait["evidence"][0]["reads"] if trait["evidence"]
                        else "typical shopper")
        if kind == "mixed" and not named and np.abs(shifts).max(initial=0.0) < DISTINCT_EFFECT:
            # Behaviour mass alone (every customer has some) without behaviour that sets
            # the trait's customers apart: a taste trait, named by what they shop.
            kind = trait["kind"] = "taste"
        trait["behaviour"] = how
        what = (trait.get("top_categories") or trait.get("top_products") or ["mixed"])[0]
        trait["name"] = (what if trait["kind"] == "taste" else how
                         if trait["kind"] == "behaviour" else f"{what} · {how}")
    _make_unique([t["name"] for t in traits], traits)


def name_scores(effects: dict[str, float], values: dict[str, float] | None = None
                ) -> dict[str, float]:
    """How clearly a trait's typical customers show each named behaviour
    (:data:`BEHAVIOUR_NAMES`): the mean of the two largest signed percentile shifts among
    its features (``effects``: mean population percentile minus one half, per feature).
    Two, not all: a behaviour shows in some of its signs more than others (regular visitors
    need not visit more often than most); and both must point its way, for one alone (short
    visits in a shop without carts) is not impulse buying. With the typical customers'
    ``values``, a sign of a feature with a :data:`NEUTRAL` value counts only on its side."""
    out = {}
    for name, signs in BEHAVIOUR_NAMES.items():
        shown = sorted((sign * effects[f] for f, sign in signs
                        if f in effects and _beyond_neutral(f, sign, values)), reverse=True)
        if len(shown) >= 2 and shown[1] > 0:  # two of its signs, not one alone
            out[name] = float(np.mean(shown[:2]))
    return out


def _beyond_neutral(feature: str, sign: int, values: dict[str, float] | None) -> bool:
    if values is None or feature not in NEUTRAL or feature not in values:
        return True
    return bool(sign * (values[feature] - NEUTRAL[feature]) > 0)


def behaviour_name(effects: dict[str, float], fallback: str,
                   values: dict[str, float] | None = None) -> str:
    """The named behaviour (:data:`BEHAVIOUR_NAMES`) of the trait's most distinctive
    feature: walking the features from the largest percentile shift down, the first whose
    direction belongs to a named behaviour that the trait shows clearly (its
    :func:`name_scores` at least :data:`NAME_MIN_EFFECT`); else ``fallback``. The most
    distinctive feature leads, so that a trait of regular visitors who also buy quickly is
    "regular", not a second "impulse buyer"."""
    scores = name_scores(effects, values)
    owner = {(f, sign): name for name, signs in BEHAVIOUR_NAMES.items() for f, sign in signs}
    for feature in sorted(effects, key=lambda f: -abs(effects[f])):
        name = owner.get((feature, 1 if effects[feature] > 0 else -1))
        if name is not None and scores.get(name, 0.0) >= NAME_MIN_EFFECT:
            return name
    return fallback


