"""Product metadata files: ``product_id`` plus any of ``category, brand, price``."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from funnelprint.data.errors import EventDataError
from funnelprint.data.schema import COLUMN_ALIASES


def read_products(path: str | Path) -> pl.DataFrame:
    """Read a products CSV or Parquet file into ``product_id, category, brand, price``."""
    path = Path(path)
    if not path.exists():
        raise EventDataError("no such file", path=str(path))
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            raw = pl.read_parquet(path)
        else:
            raw = pl.read_csv(path, infer_schema=False)
    except Exception as exc:
        raise EventDataError(f"cannot read products file: {exc}", path=str(path)) from exc
    lower = {c.lower(): c for c in raw.columns}
    selected = {}
    for field, name in (("product", "product_id"), ("category", "category"),
                        ("brand", "brand"), ("price", "price")):
        source = next((lower[a] for a in COLUMN_ALIASES[field] if a in lower), None)
        if source is not None:
            selected[name] = source
    if "product_id" not in selected:
        raise EventDataError(f"no product id column; the file has {', '.join(raw.columns)}",
                             path=str(path))
    frame = raw.select([pl.col(src).alias(dst) for dst, src in selected.items()])
    frame = frame.with_columns(pl.col("product_id").cast(pl.String))
    if "price" in frame.columns:
        frame = frame.with_columns(pl.col("price").cast(pl.Float64, strict=False))
    return frame.unique("product_id", keep="first", maintain_order=True)
