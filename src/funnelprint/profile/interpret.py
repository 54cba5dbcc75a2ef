"""Words for traits: the tokens, products, categories, brands, price bands and action mix that
load on each trait, computed from token loadings in the space the NMF was fitted in."""

from __future__ import annotations

import numpy as np
import polars as pl

from funnelprint.data.schema import TOKEN_PREFIX
from funnelprint.data.tokens import CATEGORY_MARK

PREFIX_ACTION = {prefix: action for action, prefix in TOKEN_PREFIX.items()}
MIX_KEYS = ("view", "cart", "remove", "buy")
PRICE_BANDS = ("low", "mid", "high")


def split_tokens(tokens: list[str]) -> pl.DataFrame:
    """``cart_p001`` -> prefix ``cart``, item ``p001`` (``cat:`` items are categories)."""
    frame = pl.DataFrame({"token": tokens})
    parts = pl.col("token").str.splitn("_", 2)
    return frame.with_columns(
        parts.struct.field("field_0").alias("prefix"),
        parts.struct.field("field_1").alias("item"),
    ).with_columns(pl.col("item").str.starts_with(CATEGORY_MARK).alias("is_category"))


def token_relevance(loadings: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """How characteristic each token is of each trait: its share of the token's loading,
    times log-frequency so that one-off tokens do not lead."""
    total = loadings.sum(axis=1, keepdims=True)
    share = np.where(total > 0, loadings / np.maximum(total, 1e-12), 0.0)
    return share * np.log1p(counts)[:, None]


def describe_traits(
    loadings: np.ndarray, tokens: list[str], counts: np.ndarray,
    products: pl.DataFrame | None = None, top_n: int = 10,
) -> list[dict]:
    """One dict per trait: ``name, top_tokens, top_products, top_categories, top_brands,
    price_bands, action_mix`` (shares of view/cart/remove/buy among its top tokens)."""
    relevance = token_relevance(loadings, counts)
    info = split_tokens(tokens)
    prefixes = info["prefix"].to_numpy()
    items = info["item"].to_numpy()
    is_cat = info["is_category"].to_numpy()
    overall = _action_mix(prefixes, np.log1p(counts))
    meta = _product_meta(products, items)
    traits = []
    for j in range(loadings.shape[1]):
        score = relevance[:, j]
        order = np.argsort(-score)
        top = order[:top_n]
        head = order[: max(50, top_n)]
        trait = {
            "trait": f"trait_{j}",
            "top_tokens": [tokens[t] for t in top],
            "top_products": _top_by(items[~is_cat], score[~is_cat], top_n),
            "action_mix": _action_mix(prefixes[head], score[head]),
        }
        if meta is not None:
            for field, key in (("category", "top_categories"), ("brand", "top_brands")):
                trait[key] = _top_by(meta[field], score, 5, skip_empty=True)
            trait["price_bands"] = _shares(meta["price_band"], score, PRICE_BANDS)
        trait["name"] = trait_name(trait, overall)
        traits.append(trait)
    _make_unique([t["name"] for t in traits], traits)
    return traits


def _product_meta(products: pl.DataFrame | None, items: np.ndarray) -> dict | None:
    if products is None or products.height == 0:
        return None
    frame = pl.DataFrame({"product_id": items}).join(
        products, on="product_id", how="left", maintain_order="left"
    )
    # Category tokens carry their category in place of a product.
    is_cat = pl.col("product_id").str.starts_with(CATEGORY_MARK)
    category = pl.when(is_cat).then(pl.col("product_id").str.slice(len(CATEGORY_MARK)))
    out: dict[str, np.ndarray] = {}
    for field in ("category", "brand"):
        expr = pl.col(field) if field in frame.columns else pl.lit(None, pl.String)
        if field == "category":
            expr = category.otherwise(expr)
        out[field] = frame.select(expr.fill_null("")).to_series().to_numpy()
    if "price" in frame.columns:
        price = frame["price"].cast(pl.Float64, strict=False)
        q = price.drop_nulls().quantile(1 / 3), price.drop_nulls().quantile(2 / 3)
        band = frame.select(
            pl.when(price.is_null()).then(pl.lit(""))
            .when(price <= q[0]).then(pl.lit("low"))
            .when(price <= q[1]).then(pl.lit("mid")).otherwise(pl.lit("high"))
        ).to_series()
        out["price_band"] = band.to_numpy()
    else:
        out["price_band"] = np.full(items.size, "")
    return out


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
    seen: dict[str, int] = {}
    for name, trait in zip(names, traits, strict=True):
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            trait["name"] = f"{name} ({seen[name]})"
