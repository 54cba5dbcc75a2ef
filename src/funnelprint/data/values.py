"""How the values of text columns are read, whatever the file: empty cells and missing-value
markers (``NA``, ``null``, ``NaN``...), integer ids written as floats (``208995.0``), and raw
action values by name (synonyms, ``--actions`` renames, action types of their own).

Whole-column Polars operations, shared by the event reader, the products reader and the
service's event batches, so that the three read a value the same way.
"""

from __future__ import annotations

import polars as pl

from funnelprint.data.schema import (
    ACTION_FOLD,
    ACTION_SYNONYMS,
    MISSING_VALUES,
    ColumnMapping,
)

#: An integer written as a float: ``208995.0``, ``-3.00``.
_INTEGRAL_FLOAT = r"^[+-]?\d+\.0+$"
_MARKER_BYTES = max(len(v) for v in MISSING_VALUES)


def clean_text(column: str) -> pl.Expr:
    """Stripped text, empty cells as null (for missing-value markers see
    :func:`drop_missing_markers`)."""
    stripped = pl.col(column).cast(pl.String).str.strip_chars()
    return pl.when(stripped.str.len_bytes() > 0).then(stripped).otherwise(None)


def clean_text_or_null(column: str) -> pl.Expr:
    """:func:`clean_text` with missing-value markers (``NaN``, ``null``, ...) as null too."""
    text = clean_text(column)
    return pl.when(text.str.to_lowercase().is_in(MISSING_VALUES)).then(None).otherwise(text)


def drop_missing_markers(series: pl.Series) -> pl.Series:
    """Missing-value markers (``NA``, ``NaN``, ``null``, ``None``, ``<NA>``, any case) to null.

    Only values as short as a marker are looked at, so long ids cost one length check."""
    short = series.str.len_bytes() <= _MARKER_BYTES
    if not short.any():
        return series
    positions = short.arg_true()
    hits = series.gather(positions).str.to_lowercase().is_in(MISSING_VALUES)
    if not hits.any():
        return series
    return series.scatter(positions.filter(hits), None)


def integral_ids(series: pl.Series) -> tuple[pl.Series, int]:
    """Integers written as floats (``208995.0``, as pandas writes an integer column that has
    gaps) to their integer form (``208995``), so that they match the same id written as an
    integer elsewhere; other values, non-integral floats included, are left as they are.
    Returns the column and how many values changed."""
    dotted = series.str.contains(".", literal=True).fill_null(False)
    if not dotted.any():  # the usual case costs one literal scan
        return series, 0
    positions = dotted.arg_true()
    candidates = series.gather(positions)
    hits = candidates.str.contains(_INTEGRAL_FLOAT).fill_null(False)
    count = int(hits.sum())
    if not count:
        return series, 0
    fixed = candidates.filter(hits).str.replace(r"\.0+$", "")
    return series.scatter(positions.filter(hits), fixed).alias(series.name), count


def fold(text: pl.Expr) -> pl.Expr:
    """Lower case without spaces, underscores or hyphens: the form raw action values are
    compared in (``Add-To-Cart`` -> ``addtocart``)."""
    return text.str.to_lowercase().str.replace_all(ACTION_FOLD, "")


def action_names(text: pl.Expr, mapping: ColumnMapping) -> pl.Expr:
    """The action each raw value is read as: an explicit ``--actions`` rename first, then a
    synonym of a known action, else the value itself in lower case (an action type of its
    own); missing-value markers become null unless a rename names them."""
    lowered = text.str.to_lowercase()
    lookup = {**ACTION_SYNONYMS, **mapping.actions}
    markers = [m for m in MISSING_VALUES if m not in mapping.actions]
    named = fold(text).replace_strict(list(lookup), list(lookup.values()), default=lowered,
                                      return_dtype=pl.String)
    return pl.when(lowered.is_in(markers)).then(None).otherwise(named)


def read_actions(raw: pl.Series, mapping: ColumnMapping) -> tuple[pl.Series, dict[str, str]]:
    """The action name of every raw value (see :func:`action_names`), and each distinct raw
    value (stripped, in lower case) read under another name -> that name (``{"pay":
    "purchase", "fav": "favorite"}``). The rule runs on the distinct values only; a column
    holds few of them."""
    text = raw.cast(pl.String)
    distinct = pl.DataFrame({"raw": text.drop_nulls().unique()})
    table = distinct.select(
        "raw", action_names(clean_text("raw"), mapping).alias("name"),
        pl.col("raw").str.strip_chars().str.to_lowercase().alias("written"))
    names = text.replace_strict(table["raw"], table["name"], default=None,
                                return_dtype=pl.String)
    renamed = (table.drop_nulls().filter(pl.col("written") != pl.col("name"))
               .unique("written").sort("written"))
    return names.alias(raw.name), dict(zip(renamed["written"].to_list(),
                                           renamed["name"].to_list(), strict=True))
