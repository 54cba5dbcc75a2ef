"""``--memory``: ``fit`` and ``profile`` of logs larger than memory on this machine.

The file is read in chunks into Parquet partitions of whole customers
(:mod:`funnelprint.data.partitioned`); ``fit`` fits the traits model on a hash sample of
customers sized to the budget (the whole log when it fits) and ``profile`` profiles one
partition at a time, appending to the output. Peak memory follows the budget, not the
file.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl

from funnelprint.cli.common import console, on_error_mode, positive
from funnelprint.data import ColumnMapping, SessionConfig
from funnelprint.data.dataset import Dataset
from funnelprint.data.partitioned import (
    PartitionedLog,
    parse_memory,
    partition_events,
    partitions_for,
    sample_journeys,
)

#: Working memory of an in-memory trait fit per event of its sample (measured peak about
#: 360 bytes per event at 10M events; the rest is headroom).
FIT_BYTES_PER_EVENT = 600


@contextlib.contextmanager
def partitioned(events: Path, columns: str | None, actions: str | None, names: str | None,
                on_error: str, session_gap: float, memory: str,
                work: Path | None = None) -> Iterator[tuple[PartitionedLog, int]]:
    """The event file in partitions (removed afterwards), and the budget in bytes."""
    positive("--session-gap", session_gap)
    budget = parse_memory(memory)
    parts = partitions_for(events.stat().st_size if events.exists() else 0, budget)
    with console.status(f"reading {events} into {parts} partitions"):
        log = partition_events(events, ColumnMapping.from_options(columns, actions, names),
                               on_error_mode(on_error), SessionConfig(gap_minutes=session_gap),
                               parts, work)
    try:
        if not log.report.rows_read:
            raise ValueError(f"{events}: no events in the file (a header and no rows)")
        if not log.events:
            dropped = ", ".join(f"{n:,} {r}" for r, n in log.report.dropped.items())
            raise ValueError(f"{events}: no events left to use (dropped: {dropped})")
        yield log, budget
    finally:
        log.remove()


def sample_dataset(events: Path, columns: str | None, actions: str | None, names: str | None,
                   on_error: str, session_gap: float, products: Path | None, memory: str,
                   sample_events: int | None, seed: int) -> Dataset:
    """The dataset the traits model is fitted on: every customer when the log fits the
    budget, else a hash sample of customers holding about ``sample_events`` events."""
    metadata = None
    if products is not None:
        from funnelprint.data.products import read_products

        metadata = read_products(products)
    with partitioned(events, columns, actions, names, on_error, session_gap, memory) as (
            log, budget):
        wanted = sample_events or budget // FIT_BYTES_PER_EVENT
        fraction = min(1.0, wanted / log.events)
        with console.status("gathering the customer sample"):
            sample = sample_journeys(log, fraction, seed)
        if not sample.events.height:
            raise ValueError(f"{events}: the customer sample is empty; raise --sample-events")
        dataset = Dataset.from_events(sample.events, name=events.stem, collapse_repeats=False,
                                      products=metadata)
    console.print(f"{log.events:,} events in {len(log.parts)} partitions; fitting on "
                  f"{dataset.n_customers:,} customers ({sample.events.height:,} events, "
                  f"{fraction:.1%} of customers by hash)")
    return dataset


def profile_partitions(fitted: Any, events: Path, out: Path, columns: str | None,
                       actions: str | None, names: str | None, on_error: str,
                       session_gap: float, memory: str) -> tuple[int, int]:
    """Profiles of every customer, one partition at a time, into ``out`` (Parquet or CSV,
    replaced once complete); returns (profiles, cold-start profiles)."""
    import pyarrow.parquet as pq

    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    written = cold = 0
    with partitioned(events, columns, actions, names, on_error, session_gap, memory) as (
            log, _), open(partial, "wb") as sink:
        writer: Any = None
        try:
            for index in range(len(log.parts)):
                part = log.journeys(index)
                if not part.events.height:
                    continue
                table: pl.DataFrame = fitted.profile_events(part)
                written += table.height
                cold += int(table["cold_start"].sum())
                if out.suffix.lower() == ".parquet":
                    arrow = table.to_arrow()
                    if writer is None:
                        writer = pq.ParquetWriter(sink, arrow.schema, compression="zstd")
                    writer.write_table(arrow)
                else:
                    table.write_csv(sink, include_header=written == table.height)
        finally:
            if writer is not None:
                writer.close()
    shutil.move(partial, out)
    return written, cold


__all__ = ["FIT_BYTES_PER_EVENT", "partitioned", "profile_partitions", "sample_dataset"]
