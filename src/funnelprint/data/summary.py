"""Descriptive statistics of a prepared event log (``funnelprint inspect``)."""

from __future__ import annotations

import polars as pl

from funnelprint.data.pipeline import EventLog
from funnelprint.data.schema import CANONICAL_ACTIONS

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
