"""Action-item tokens (``cart_p001``), with action-category tokens for rare products."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from funnelprint.data.schema import TOKEN_PREFIX

TOKEN = "token"
CATEGORY_MARK = "cat:"


@dataclass(frozen=True)
class TokenConfig:
    """How events become tokens.

    Parameters
    ----------
    rare_product_min_count
        Products seen in fewer events than this are tokenised by their category
        (``view_cat:pets.dog``) where the event has one; 0 keeps every product token.
    """

    rare_product_min_count: int = 0


def action_prefix(action: pl.Expr) -> pl.Expr:
    """Short token prefix of each action; actions outside the funnel keep their own name."""
    return action.replace(TOKEN_PREFIX)


def tokenize(events: pl.DataFrame, config: TokenConfig | None = None) -> pl.DataFrame:
    """Add a ``token`` column: ``<action prefix>_<product_id>``."""
    config = config or TokenConfig()
    prefix = action_prefix(pl.col("action"))
    item = pl.col("product_id")
    if config.rare_product_min_count > 0 and "category" in events.columns:
        rare = (pl.len().over("product_id") < config.rare_product_min_count) & pl.col(
            "category"
        ).is_not_null()
        item = pl.when(rare).then(pl.lit(CATEGORY_MARK) + pl.col("category")).otherwise(item)
    return events.with_columns(pl.concat_str([prefix, pl.lit("_"), item]).alias(TOKEN))
