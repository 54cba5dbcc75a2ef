"""Sort events into customer journeys and split them into sessions; drop bots and outliers."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

import polars as pl

from funnelprint.data.load import sort_journeys

log = logging.getLogger(__name__)

SESSION = "session"
#: Sessions with fewer events than this are never judged by their event rate.
MIN_EVENTS_FOR_RATE = 10


@dataclass(frozen=True)
class SessionConfig:
    """How journeys are cut into sessions and which sessions are kept.

    Parameters
    ----------
    gap_minutes
        A new session starts after this much inactivity (ignored where the file has a session id).
    use_session_column
        Use the file's session id when it has one.
    min_session_length
        Sessions with fewer events are dropped.
    max_events_per_session
        Longer sessions are dropped as outliers (``None`` keeps them).
    max_events_per_minute
        Customers with a session of at least 10 events at a higher rate are dropped as bots
        (``None`` keeps them).
    """

    gap_minutes: float = 30.0
    use_session_column: bool = True
    min_session_length: int = 1
    max_events_per_session: int | None = 1000
    max_events_per_minute: float | None = 60.0

    def __post_init__(self) -> None:
        if self.gap_minutes <= 0:
            raise ValueError("gap_minutes must be positive")
        if self.min_session_length < 1:
            raise ValueError("min_session_length must be at least 1")


@dataclass
class SessionReport:
    sessions: int = 0
    dropped_events: Counter = field(default_factory=Counter)
    dropped_sessions: Counter = field(default_factory=Counter)
    dropped_customers: Counter = field(default_factory=Counter)

    def to_dict(self) -> dict:
        return {
            "sessions": self.sessions,
            "dropped_events": dict(self.dropped_events),
            "dropped_sessions": dict(self.dropped_sessions),
            "dropped_customers": dict(self.dropped_customers),
        }


def sessionize(
    events: pl.DataFrame, config: SessionConfig | None = None, presorted: bool = False
) -> tuple[pl.DataFrame, SessionReport]:
    """Sort events by customer and time and number their sessions.

    Returns the events sorted by customer, then session start, then time (ties keep file
    order), with an integer ``session`` column numbered 0..n-1 in that order, and a report of
    what was removed. ``presorted=True`` promises events already sorted by customer and time
    (as :func:`~funnelprint.data.load.read_events` returns them).
    """
    config = config or SessionConfig()
    report = SessionReport()
    frame = events if presorted else sort_journeys(events)
    frame = frame.with_columns(_session_index(frame, config).alias(SESSION))
    if not frame[SESSION].is_sorted():
        # A file's own session ids may interleave in time; keep each session contiguous.
        frame = frame.sort(SESSION, maintain_order=True)
    frame = _drop_bots(frame, config, report)
    frame = _drop_sessions(frame, config, report)
    frame = frame.with_columns(_renumber(pl.col(SESSION)))
    report.sessions = frame[SESSION].n_unique() if frame.height else 0
    for reason, count in sorted(report.dropped_events.items()):
        log.warning("dropped %d event(s): %s", count, reason)
    return frame, report


def gap_sessions(gap_minutes: float = SessionConfig.gap_minutes) -> pl.Expr:
    """Session numbers from the inactivity rule alone, for events sorted by customer and
    time: a new session at each new customer or after more than ``gap_minutes`` idle."""
    return _gap_break(gap_minutes).cum_sum() - 1


def _gap_break(gap_minutes: float) -> pl.Expr:
    gap = pl.duration(microseconds=int(gap_minutes * 60_000_000))
    new_customer = pl.col("customer_id") != pl.col("customer_id").shift(1)
    idle = (pl.col("timestamp") - pl.col("timestamp").shift(1)) > gap
    return (new_customer | idle).fill_null(True)


def _session_index(frame: pl.DataFrame, config: SessionConfig) -> pl.Series:
    by_gap = gap_sessions(config.gap_minutes)
    if not (config.use_session_column and "session_id" in frame.columns):
        return frame.select(by_gap).to_series()
    key = pl.concat_str(
        [
            pl.col("customer_id"),
            pl.coalesce(pl.col("session_id"), pl.lit("\x00gap") + by_gap.cast(pl.String)),
        ],
        separator="\x1f",
    )
    keys = frame.select(key.alias("k"))
    first_seen = keys.unique(maintain_order=True).with_row_index(SESSION)
    joined = keys.join(first_seen, on="k", how="left", maintain_order="left")
    return joined[SESSION].cast(pl.Int64)


def _renumber(session: pl.Expr) -> pl.Expr:
    """Contiguous session numbers in row order, after filtering."""
    return ((session != session.shift(1)).fill_null(True).cum_sum() - 1).cast(pl.Int64)


def _session_stats(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.group_by(SESSION).agg(
        pl.len().alias("n"),
        pl.col("customer_id").first(),
        ((pl.col("timestamp").max() - pl.col("timestamp").min()).dt.total_seconds() / 60.0)
        .alias("minutes"),
    )


def _drop_bots(frame: pl.DataFrame, config: SessionConfig, report: SessionReport) -> pl.DataFrame:
    limit_rate = config.max_events_per_minute
    limit_len = config.max_events_per_session
    if limit_rate is None and limit_len is None:
        return frame
    stats = _session_stats(frame)
    if limit_rate is not None:
        rate = stats["n"] / stats["minutes"].clip(lower_bound=1.0)
        bots = stats.filter((stats["n"] >= MIN_EVENTS_FOR_RATE) & (rate > limit_rate))
        bot_customers = bots["customer_id"].unique()
        if bot_customers.len():
            hit = frame["customer_id"].is_in(bot_customers.implode())
            _count(report, "bot_rate", frame.filter(hit), customers=bot_customers.len())
            frame = frame.filter(~hit)
            stats = stats.filter(~stats["customer_id"].is_in(bot_customers.implode()))
    if limit_len is not None:
        long_sessions = stats.filter(stats["n"] > limit_len)[SESSION]
        if long_sessions.len():
            hit = frame[SESSION].is_in(long_sessions.implode())
            _count(report, "long_session", frame.filter(hit))
            frame = frame.filter(~hit)
    return frame


def _drop_sessions(
    frame: pl.DataFrame, config: SessionConfig, report: SessionReport
) -> pl.DataFrame:
    if config.min_session_length <= 1:
        return frame
    size = pl.len().over(SESSION)
    short = frame.filter(size < config.min_session_length)
    if short.height:
        _count(report, "short_session", short)
        frame = frame.filter(size >= config.min_session_length)
    return frame


def _count(
    report: SessionReport, reason: str, removed: pl.DataFrame, customers: int | None = None
) -> None:
    report.dropped_events[reason] += removed.height
    report.dropped_sessions[reason] += removed[SESSION].n_unique()
    if customers is not None:
        report.dropped_customers[reason] += customers
