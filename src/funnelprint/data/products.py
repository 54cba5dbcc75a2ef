"""Product metadata files: ``product_id`` plus any of ``category, brand, price``, their columns
found by the event reader's aliases or mapped by the caller (``--product-columns``)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from funnelprint.data.errors import EventDataError, input_file
from funnelprint.data.load import (
    LINE,
    LoadReport,
    OnError,
    ReadProblems,
    data_columns,
    read_table,
)
from funnelprint.data.schema import (
    CATEGORY_FALLBACKS,
    COLUMN_ALIASES,
    ID_CHARS,
    ColumnMapping,
    listed,
    parse_product_columns,
    plain_column_name,
)
from funnelprint.data.values import (
    clean_text,
    clean_text_or_null,
    drop_missing_markers,
    integral_ids,
)

log = logging.getLogger(__name__)

PRODUCT_COLUMNS = ("product_id", "category", "brand", "price")
_FIELDS = (("product", "product_id"), ("category", "category"), ("brand", "brand"),
           ("price", "price"))


@dataclass
class ProductReport:
    """What happened to the rows of one products file.

    ``dropped`` counts rows left out (unreadable lines, no product id, repeated ids);
    ``nulled`` counts values that could not be read and were set to null (``bad_price``),
    the product itself being kept; ``normalised`` counts ids written as floats
    (``208995.0``) read as integers, per column.
    """

    path: str
    rows_read: int = 0
    products: int = 0
    mapping: dict[str, str] = field(default_factory=dict)
    dropped: Counter = field(default_factory=Counter)
    nulled: Counter = field(default_factory=Counter)
    normalised: Counter = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)


def read_products(path: str | Path, on_error: OnError = "skip",
                  columns: str | Mapping[str, str] | None = None) -> pl.DataFrame:
    """Read a products file into ``product_id`` and whichever of ``category, brand, price`` it
    has. See :func:`load_products`; problems are logged with their counts."""
    products, _ = load_products(path, on_error=on_error, columns=columns)
    return products


def load_products(
    path: str | Path, on_error: OnError = "skip",
    columns: str | Mapping[str, str] | None = None,
) -> tuple[pl.DataFrame, ProductReport]:
    """Read a products CSV (optionally gzip'd), JSON-lines or Parquet file.

    ``columns`` maps fields to the file's columns, as ``{"product": "sku_id", "brand":
    "maker"}`` or the CLI form ``"product=sku_id,brand=maker"`` (fields ``product,
    category, brand, price``); other fields are found by the event reader's aliases. As in
    event files, a missing category code falls back to the category id, missing-value
    markers are null, and ids written as floats (``208995.0``) are read as integers. A
    product listed on several rows takes, per column, its first known value.

    ``on_error="raise"`` stops at the first bad row (in file order) with an
    :class:`EventDataError` naming file, line, column and value: an unreadable line, an empty
    product id or a price that is not a number. ``"skip"`` leaves out unreadable lines and
    rows without a product id, sets unreadable prices to null, and counts each by reason in
    the report (and in a logged warning).
    """
    explicit = parse_product_columns(columns)
    path = input_file(path, on_error)
    load_report = LoadReport(path=str(path))
    problems = ReadProblems(str(path))
    raw = read_table(path, load_report, problems, ColumnMapping(columns=explicit),
                     require_header=True)
    report = ProductReport(path=str(path), rows_read=load_report.rows_read)
    report.dropped.update(load_report.dropped)
    available = data_columns(raw)
    selected = _select_columns(available, explicit, str(path))
    report.mapping = dict(selected)

    exprs = [pl.col(LINE)]
    for name, source in selected.items():
        if name == "price":
            text = clean_text_or_null(source)
            number = text.cast(pl.Float64, strict=False)
            bad = text.is_not_null() & (number.is_null() | number.is_nan() | number.is_infinite()
                                         | (number < 0))
            exprs += [pl.when(bad).then(None).otherwise(number).alias("price"),
                      bad.alias("__bad_price")]
        elif name == "category":
            exprs.append(_category(source, available).alias(name))
        else:
            exprs.append(clean_text(source).alias(name))
    frame = raw.select(exprs)
    frame = frame.with_columns(
        drop_missing_markers(frame[c]) for c in ("product_id", "category", "brand")
        if c in frame.columns
    )
    for name in ("product_id", "category"):
        if name in frame.columns:
            fixed, count = integral_ids(frame[name])
            if count:
                report.normalised[name] += count
                frame = frame.with_columns(fixed)
    no_id = frame["product_id"].is_null()
    bad_price = frame["__bad_price"] if "price" in frame.columns else no_id & False
    long_id = frame["product_id"].str.len_chars().fill_null(0) > ID_CHARS
    checks = [("empty_product_id", no_id, selected["product_id"], "empty value"),
              ("long_product_id", long_id, selected["product_id"],
               f"longer than {ID_CHARS:,} characters")]
    if "price" in selected:
        checks.append(("bad_price", bad_price, selected["price"],
                       "not a finite, non-negative number"))

    def error(code: str, row: int, column: str, message: str) -> EventDataError:
        value = raw[column][row]
        return EventDataError(message, path=str(path), line=int(frame[LINE][row]),
                              column=column, value=value, code=code)

    if on_error == "raise":
        first = None
        for code, mask, column, message in checks:
            if mask.any():
                row = int(mask.arg_true()[0])
                if first is None or row < first[1]:
                    first = (code, row, column, message)
        structural = problems.first
        if first is not None:
            found = error(*first)
            if structural is None or (structural.line or 0) > (found.line or 0):
                raise found
        if structural is not None:
            raise structural
    report.dropped.update(problems.counts)
    for code, example in problems.examples.items():
        report.examples.setdefault(code, str(example))
    for code, mask, column, message in checks:
        count = int(mask.sum())
        if not count:
            continue
        (report.nulled if code == "bad_price" else report.dropped)[code] += count
        report.examples.setdefault(code, str(error(code, int(mask.arg_true()[0]), column,
                                                   message)))
    frame = frame.filter(~no_id & ~long_id).drop(LINE, "__bad_price", strict=False)
    unique = _first_known(frame)
    if unique.height < frame.height:
        report.dropped["duplicate_product_id"] += frame.height - unique.height
    report.products = unique.height
    if report.normalised:
        log.info("%s: ids written as floats read as integers: %s", path,
                 dict(report.normalised))
    for code, count in sorted((report.dropped + report.nulled).items()):
        shown = report.examples.get(code)
        suffix = f"; first: {shown}" if shown else ""
        what = "price(s) set to null" if code in report.nulled else "row(s) left out"
        log.warning("%s: %d %s: %s%s", path, count, what, code, suffix)
    return unique, report


def _select_columns(available: list[str], explicit: dict[str, str], path: str
                    ) -> dict[str, str]:
    """Output column -> source column: the caller's choices, then the usual aliases."""
    for fld, column in explicit.items():
        if column not in available:
            raise EventDataError(f"--product-columns {fld}={column}: no such column; the file "
                                 f"has {listed(available)}", path=path)
    if len(set(explicit.values())) < len(explicit):
        raise ValueError("--product-columns maps two fields to the same column")
    lower: dict[str, str] = {}
    for column in available:
        lower.setdefault(plain_column_name(column), column)
    selected: dict[str, str] = {}
    for fld, name in _FIELDS:
        source: str | None = explicit.get(fld)
        if source is None:
            source = next((lower[a] for a in COLUMN_ALIASES[fld] if a in lower
                           and lower[a] not in explicit.values()), None)
        if source is not None and source not in selected.values():
            selected[name] = source
    if "product_id" not in selected:
        raise EventDataError(f"no product id column; the file has {listed(available)} "
                             "(map one with --product-columns product=COL)", path=path)
    return selected


def _category(source: str, available: list[str]) -> pl.Expr:
    """The category column, a missing code filled from the id where the file has both."""
    for primary, fallback in CATEGORY_FALLBACKS:
        if plain_column_name(source) == primary:
            other = next((c for c in available if plain_column_name(c) == fallback), None)
            if other is not None:
                return pl.coalesce(clean_text_or_null(source), clean_text_or_null(other))
    return clean_text(source)


def _first_known(frame: pl.DataFrame) -> pl.DataFrame:
    """One row per product id, each column its first non-null value (exports often list a
    product twice, once with its metadata and once without)."""
    if frame["product_id"].is_unique().all():
        return frame
    others = [c for c in frame.columns if c != "product_id"]
    return frame.group_by("product_id", maintain_order=True).agg(
        pl.col(c).drop_nulls().first() for c in others)
