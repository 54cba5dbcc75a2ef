"""Action-item tokens (``cart_p001``), with action-category tokens for rare products.

Two forms of the same rule: :func:`tokenize` adds a ``token`` column to an event table
(what ``inspect`` counts), and :func:`encode_tokens` gives every event of a
:class:`~funnelprint.data.sequences.Sequences` an integer token code, naming each code
for interpretation and as the words an embedding reads.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from funnelprint.data.schema import TOKEN_PREFIX
from funnelprint.data.sequences import Sequences

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


@dataclass(frozen=True)
class EventTokens:
    """Integer tokens of a set of sequences.

    Attributes
    ----------
    codes : int64 array
        Token code of every event.
    actions : int array
        Action index of each token code.
    items : int array
        Item index of each token code; -1 for category tokens.
    categories : array of str
        Category of each category token ("" for item tokens).
    names : list of str
        ``<action prefix>_<product id>`` or ``<action prefix>_cat:<category>`` per code.
    rare : bool array
        Per item: tokenised by its category.
    """

    codes: np.ndarray
    actions: np.ndarray
    items: np.ndarray
    categories: np.ndarray
    names: list[str]
    rare: np.ndarray


def encode_tokens(sequences: Sequences, action_names: tuple[str, ...], item_ids: np.ndarray,
                  item_categories: np.ndarray | None = None,
                  config: TokenConfig | None = None) -> EventTokens:
    """Token codes of every event: one per (action, item) pair that occurs, or per
    (action, category) for items with fewer than ``rare_product_min_count`` events and a
    known category. Codes are numbered in (action, item, then category) order."""
    config = config or TokenConfig()
    n_items = item_ids.size
    categories = (np.full(n_items, "", dtype=object) if item_categories is None
                  else np.asarray(item_categories, dtype=object))
    category_names, category_of = np.unique(categories.astype(str), return_inverse=True)
    has_category = categories != ""
    rare = np.zeros(n_items, dtype=bool)
    if config.rare_product_min_count > 0:
        counts = np.bincount(sequences.items, minlength=n_items)
        rare = (counts < config.rare_product_min_count) & has_category
    units = np.where(rare[sequences.items], n_items + category_of[sequences.items],
                     sequences.items).astype(np.int64)
    n_units = n_items + category_names.size
    keys, codes = np.unique(sequences.actions.astype(np.int64) * n_units + units,
                            return_inverse=True)
    actions, unit = np.divmod(keys, n_units)
    is_item = unit < n_items
    items = np.where(is_item, unit, -1)
    token_categories = np.full(keys.size, "", dtype=object)
    token_categories[~is_item] = category_names[unit[~is_item] - n_items]
    prefixes = [TOKEN_PREFIX.get(a, a) for a in action_names]
    names = [f"{prefixes[a]}_{item_ids[i]}" if i >= 0 else f"{prefixes[a]}_{CATEGORY_MARK}{c}"
             for a, i, c in zip(actions.tolist(), items.tolist(), token_categories.tolist(),
                                strict=True)]
    return EventTokens(codes.astype(np.int64).ravel(), actions, items, token_categories,
                       names, rare)
