"""Trait descriptions: what each trait is about (its leading tokens, products, categories
and brands, from token loadings in the space the NMF was fitted in) and how its customers
shop (evidence, action mix, price bands and the name, from the raw figures of the
customers who lean on it most, beside everyone's)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from funnelprint.profile import naming
from funnelprint.profile.evidence import (
    TYPICAL_SHARE,
    CustomerFigures,
    typical_rows,
)


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
    """One dict per trait: ``trait, top_tokens, top_products, top_categories, top_brands``
    (categories and brands empty where unknown), by the tokens that load on it most."""
    relevance = token_relevance(loadings, counts)
    is_product = tokens.product != ""
    traits = []
    for j in range(loadings.shape[1]):
        score = relevance[:, j]
        top = np.argsort(-score)[:top_n]
        traits.append({
            "trait": f"trait_{j}",
            "top_tokens": [tokens.names[t] for t in top],
            "top_products": _top_by(tokens.product[is_product], score[is_product], top_n),
            "top_categories": _top_by(tokens.category, score, 5, skip_empty=True),
            "top_brands": _top_by(tokens.brand, score, 5, skip_empty=True),
        })
    return traits


def _top_by(labels: np.ndarray, weights: np.ndarray, n: int, skip_empty: bool = False) -> list:
    frame = pl.DataFrame({"label": labels, "w": weights})
    if skip_empty:
        frame = frame.filter(pl.col("label") != "")
    ranked = frame.group_by("label").agg(pl.col("w").sum()).sort(["w", "label"],
                                                                  descending=[True, False])
    return ranked["label"].head(n).to_list()


def behaviour_shares(components: np.ndarray, n_taste: int, features: np.ndarray
                     ) -> np.ndarray:
    """Each trait's share of basis mass in the behaviour blocks, each block measured against
    its mean row total in ``features`` (the factorised rows; taste columns first)."""
    row_totals = np.array([features[:, :n_taste].sum(axis=1).mean(),
                           features[:, n_taste:].sum(axis=1).mean()]) if features.size else \
        np.ones(2)
    mass = np.column_stack([components[:, :n_taste].sum(axis=1),
                            components[:, n_taste:].sum(axis=1)])
    relative = mass / np.maximum(row_totals, 1e-12)
    return relative[:, 1] / np.maximum(relative.sum(axis=1), 1e-12)


def describe_customers(traits: list[dict[str, Any]], behaviour_share: np.ndarray,
                       shares: np.ndarray, warm: np.ndarray, figures: CustomerFigures,
                       available: tuple[str, ...], seed: int = 0) -> None:
    """Add to every trait description (in place) how its typical customers — the
    :data:`~funnelprint.profile.evidence.TYPICAL_SHARE` of the ``warm`` customers with the
    largest ``shares`` of it — shop, beside everyone: ``figures`` (every raw figure with its
    interval), ``evidence`` (the backed lines), ``action_mix`` and ``price_bands`` (and the
    ``population_`` ones), ``typical_customers``; then its ``kind``, ``behaviour`` and
    ``name`` (see :mod:`funnelprint.profile.naming`), unique across traits.

    ``behaviour_share`` is each trait's share of basis mass in the behaviour blocks: below
    1/3 a taste trait, above 2/3 a behaviour trait, else mixed — unless the words backed by
    the customers say less (a trait without a backed behaviour word is named by its taste,
    and one without a backed taste word by its behaviour). ``available`` are the behaviour
    features the log can show.
    """
    population = figures.population()
    groups = typical_rows(shares, warm)
    everyone_mix, everyone_bands = figures.action_mix(), figures.price_bands()
    checks = []
    for j, trait in enumerate(traits):
        rows = groups[j]
        group = figures.group(rows, seed + j)
        shifts = figures.shifts(rows)
        lines = naming.evidence_lines(group, population, available, shifts)
        backed = naming.taste_checker(figures, rows, seed + j)
        checks.append(backed)
        share = float(behaviour_share[j]) if behaviour_share.size else 0.0
        kind = "taste" if share < 1 / 3 else "behaviour" if share > 2 / 3 else "mixed"
        how = naming.behaviour_word(lines, group, population, available, shifts) \
            if kind != "taste" else None
        if kind == "mixed" and how not in naming.BEHAVIOUR_NAMES and max(
                (abs(float(line["shift"])) for line in lines), default=0.0
        ) < naming.DISTINCT_EFFECT:
            how = None  # behaviour mass alone, without behaviour that sets them apart
        what = naming.taste_word(trait, backed)
        if how and what and kind == "mixed":
            name = f"{what} · {how}"
        elif how and (kind == "behaviour" or not what):
            name, kind = how, "behaviour"
        elif what:
            name, kind = what, "taste"
        else:
            name = how or (lines[0]["reads"] if lines else "no distinct shoppers")
            kind = "behaviour" if lines else kind
        trait.update({
            "kind": kind, "behaviour_share": round(share, 3), "behaviour": how or "",
            "name": name, "evidence": lines,
            "figures": {f: {"value": _round(i.value), "low": _round(i.low),
                            "high": _round(i.high), "counts_low": _round(i.counts_low),
                            "counts_high": _round(i.counts_high), "customers": i.customers,
                            "population": _round(population[f])} for f, i in group.items()},
            "action_mix": figures.action_mix(rows), "population_action_mix": everyone_mix,
            "price_bands": figures.price_bands(rows) if figures.bands.any() else {},
            "population_price_bands": everyone_bands if figures.bands.any() else {},
            "typical_customers": {"customers": int(rows.size), "share": TYPICAL_SHARE,
                                  "of_warm": int(warm.sum()),
                                  "cold_start_left_out": int((~warm).sum()),
                                  "cold_start_share": round(float((~warm).mean()), 4)
                                  if warm.size else 0.0},
        })
    naming.make_unique(traits, checks)


def _round(value: float) -> float | None:
    return round(float(value), 4) if np.isfinite(value) else None


__all__ = ["TokenTable", "behaviour_shares", "describe_customers", "describe_traits",
           "token_relevance"]
