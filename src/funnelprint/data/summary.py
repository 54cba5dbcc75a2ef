"""Descriptive statistics of a prepared event log (``funnelprint inspect``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl

from funnelprint.data.pipeline import EventLog
from funnelprint.data.schema import CANONICAL_ACTIONS
from funnelprint.data.sessions import SessionReport
from funnelprint.data.tokens import tokenize

if TYPE_CHECKING:
    from funnelprint.data.partitioned import PartitionedLog

PERCENTILES = (0.5, 0.9, 0.99)


def summarize(log: EventLog) -> dict:
    """One JSON-ready dict: counts, actions, drops, time range and length percentiles."""
    events = log.events
    actions = {a: 0 for a in CANONICAL_ACTIONS}
    for action, count in events["action"].value_counts(sort=True).iter_rows():
        actions[action] = int(count)
    session_lengths = events.group_by("session").len()["len"]
    journey_lengths = events.group_by("customer_id").len()["len"]
    return {
        "path": log.load_report.path,
        "format": log.load_report.format,
        "rows_read": log.load_report.rows_read,
        "events": events.height,
        "customers": events["customer_id"].n_unique(),
        "products": events["product_id"].n_unique(),
        "sessions": log.session_report.sessions,
        "tokens": events["token"].n_unique(),
        "actions": actions,
        "other_actions": log.load_report.other_actions,
        "dropped": log.dropped,
        "normalised": dict(log.load_report.normalised),
        "filled": dict(log.load_report.filled),
        "session_filter": log.session_report.to_dict(),
        "mapping": log.load_report.mapping,
        "action_mapping": log.load_report.action_mapping,
        "warnings": list(log.load_report.warnings),
        "timestamp_encoding": log.load_report.timestamp_encoding,
        "time_range": _time_range(events["timestamp"]),
        "session_length": _percentiles(session_lengths),
        "journey_length": _percentiles(journey_lengths),
    }


def _time_range(timestamps: pl.Series) -> dict[str, str | None]:
    """First and last event time, ISO-8601. Polars formats values Python's datetime cannot
    hold (years beyond 9999 in a frame that was not range-checked) instead of failing."""
    extremes = timestamps.to_frame("t").select(
        pl.col("t").min().alias("first"), pl.col("t").max().alias("last")
    )
    return {key: _iso(extremes[key]) for key in ("first", "last")}


def _iso(value: pl.Series) -> str | None:
    if value.null_count():
        return None
    try:
        return value.item().isoformat()
    except (OverflowError, ValueError):
        fmt = "%Y-%m-%dT%H:%M:%S%.f%:z" if getattr(value.dtype, "time_zone", None) else (
            "%Y-%m-%dT%H:%M:%S%.f")
        return value.dt.to_string(fmt).item()


def _percentiles(lengths: pl.Series) -> dict[str, float]:
    if lengths.len() == 0:
        return {}
    out = {f"p{int(q * 100)}": float(lengths.quantile(q, "nearest") or 0.0)
           for q in PERCENTILES}
    values = lengths.cast(pl.Float64).to_numpy()
    out["mean"] = round(float(values.mean()), 3)
    out["max"] = float(values.max())
    return out


def summarize_partitions(log: PartitionedLog) -> dict:
    """:func:`summarize` of a log read into partitions of whole customers, one partition
    in memory at a time (lengths, distinct products and tokens are gathered as they go)."""
    actions = {a: 0 for a in CANONICAL_ACTIONS}
    other: dict[str, int] = {}
    dropped: dict[str, int] = dict(log.report.dropped)
    session_filter = SessionReport()
    sessions, journeys, products, tokens, times = [], [], [], [], []
    events = customers = 0
    for index in range(len(log.parts)):
        part = log.journeys(index)
        frame = tokenize(part.events)
        for reason, count in part.dropped.items():
            dropped[reason] = dropped.get(reason, 0) + count
        for counter in ("dropped_events", "dropped_sessions", "dropped_customers"):
            getattr(session_filter, counter).update(getattr(part.session_report, counter))
        session_filter.sessions += part.session_report.sessions
        if not frame.height:
            continue
        for action, count in frame["action"].value_counts().iter_rows():
            target = actions if action in actions else other
            target[action] = target.get(action, 0) + int(count)
        events += frame.height
        customers += frame["customer_id"].n_unique()
        sessions.append(frame.group_by("session").len()["len"])
        journeys.append(frame.group_by("customer_id").len()["len"])
        products.append(frame["product_id"].unique())
        tokens.append(frame["token"].unique())
        times.append(frame.select(pl.col("timestamp").min().alias("t")).vstack(
            frame.select(pl.col("timestamp").max().alias("t"))))

    def together(parts: list[pl.Series]) -> pl.Series:
        return pl.concat(parts) if parts else pl.Series([], dtype=pl.Int64)
    report = log.report
    return {
        "path": report.path,
        "format": report.format,
        "rows_read": report.rows_read,
        "events": events,
        "customers": customers,
        "products": together(products).n_unique() if products else 0,
        "sessions": session_filter.sessions,
        "tokens": together(tokens).n_unique() if tokens else 0,
        "actions": actions,
        "other_actions": other,
        "dropped": dropped,
        "normalised": dict(report.normalised),
        "filled": dict(report.filled),
        "session_filter": session_filter.to_dict(),
        "mapping": report.mapping,
        "action_mapping": report.action_mapping,
        "warnings": list(report.warnings),
        "timestamp_encoding": report.timestamp_encoding,
        "time_range": _time_range(pl.concat(times)["t"]) if times else
        {"first": None, "last": None},
        "session_length": _percentiles(together(sessions)),
        "journey_length": _percentiles(together(journeys)),
    }
