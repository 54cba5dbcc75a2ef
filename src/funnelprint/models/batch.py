"""Recommendations for many customers at once, written to Parquet or CSV a block of
customers at a time: memory stays bounded by the block, whatever the number of customers.

Every block is one :class:`~funnelprint.models.serving.Request` answered by
:func:`~funnelprint.models.serving.answer`, the path every other caller takes; each listed
product becomes a row ``customer_id, rank, product_id, score, reason``.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from funnelprint.models.contract import Recommender
from funnelprint.models.ranking import batch_rows
from funnelprint.models.serving import DEFAULT_EXCLUDE, Exclude, answer_all

log = logging.getLogger(__name__)

SUFFIXES = (".parquet", ".csv")
#: Column names that hold customer ids in a customers file.
ID_COLUMNS = ("customer_id", "user_id", "customer", "user", "visitorid")


@dataclass(frozen=True)
class BatchReport:
    """What a batch wrote: customers answered, of them ones the model never saw (answered
    as new visitors), and rows written."""

    customers: int
    unknown_customers: int
    rows: int


def read_customers(path: Path) -> np.ndarray:
    """Customer ids from a file: Parquet or CSV with a ``customer_id`` (or ``user_id``, ...)
    column, or plain text with one id per line (a first line ``customer_id`` is a
    header). Blank lines and repeats are dropped, the order kept."""
    path = Path(path)
    if path.suffix.lower() == ".parquet":
        frame = pl.read_parquet(path)
    else:
        with open(path, encoding="utf-8") as handle:
            first = handle.readline().strip()
        if "," in first:
            frame = pl.read_csv(path, infer_schema=False)
        else:
            lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
            skip = 1 if lines and lines[0].lower() in ID_COLUMNS else 0
            frame = pl.DataFrame({"customer_id": lines[skip:]}, schema={"customer_id": pl.String})
    column = next((c for c in frame.columns if c.lower() in ID_COLUMNS),
                  frame.columns[0] if frame.width == 1 else None)
    if column is None:
        raise ValueError(f"{path}: no customer id column (one of {', '.join(ID_COLUMNS)}) "
                         f"among {', '.join(frame.columns)}")
    ids = frame[column].cast(pl.String).str.strip_chars()
    listed = ids.filter(ids.is_not_null() & (ids != ""))
    ids = listed.unique(maintain_order=True)
    if not ids.len():
        raise ValueError(f"{path}: no customer ids")
    blank, repeated = frame.height - listed.len(), listed.len() - ids.len()
    if blank or repeated:
        log.warning("%s: %d customer id(s) listed more than once answered once; %d blank "
                    "line(s) or empty id(s) left out", path, repeated, blank)
    return ids.to_numpy().astype(str)


def write_recommendations(model: Recommender[Any], customer_ids: np.ndarray, path: Path,
                          k: int = 10, exclude: Exclude = DEFAULT_EXCLUDE,
                          rows: int | None = None,
                          progress: Callable[[int], object] | None = None) -> BatchReport:
    """Answer every customer and write the rows to ``path`` (``.parquet`` or ``.csv``,
    replaced atomically); ``progress`` is told how many customers each block answered."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ValueError(f"{path}: the file name must end in {' or '.join(SUFFIXES)}")
    known = model.dataset_.customer_index()
    unknown = sum(str(c) not in known for c in customer_ids.tolist())
    step = rows or batch_rows(model.dataset_.n_items)
    fd, temporary = tempfile.mkstemp(prefix=path.name + ".", suffix=".part",
                                     dir=path.resolve().parent)
    os.close(fd)
    written = 0
    writer: pq.ParquetWriter | None = None
    try:
        with open(temporary, "wb") as handle:
            for number, ranked in enumerate(answer_all(model, customer_ids, k, exclude, step)):
                frame = ranked.frame()
                if suffix == ".csv":
                    frame.write_csv(handle, include_header=number == 0)
                else:
                    table = frame.to_arrow()
                    if writer is None:
                        writer = pq.ParquetWriter(handle, table.schema)
                    writer.write_table(table)
                written += frame.height
                if progress is not None:
                    progress(ranked.customer_ids.size)
            if writer is not None:
                writer.close()
                writer = None
            elif suffix == ".parquet":
                pq.write_table(_empty().to_arrow(), handle)
        os.replace(temporary, path)
    finally:
        if writer is not None:
            writer.close()
        if os.path.exists(temporary):
            os.unlink(temporary)
    return BatchReport(int(customer_ids.size), unknown, written)


def _empty() -> pl.DataFrame:
    return pl.DataFrame(schema={"customer_id": pl.String, "rank": pl.Int32,
                                "product_id": pl.String, "score": pl.Float32,
                                "reason": pl.String})
