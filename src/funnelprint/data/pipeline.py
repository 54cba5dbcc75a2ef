"""From a file to the sessionized, tokenized event table (:class:`EventLog`) that
``inspect`` summarises and :meth:`~funnelprint.data.dataset.Dataset.from_events` turns into
the integer sequences every model reads."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from funnelprint.data.load import DEFAULT_TIME_BOUNDS, LoadReport, OnError, read_events
from funnelprint.data.schema import ColumnMapping
from funnelprint.data.sessions import SessionConfig, SessionReport, sessionize
from funnelprint.data.timestamps import TimeBounds
from funnelprint.data.tokens import TokenConfig, tokenize


@dataclass
class EventLog:
    """Validated events sorted by customer and time, with ``session`` and ``token`` columns."""

    events: pl.DataFrame
    load_report: LoadReport
    session_report: SessionReport

    @property
    def dropped(self) -> dict[str, int]:
        """Every removed row or event, by reason."""
        dropped = dict(self.load_report.dropped)
        for reason, count in self.session_report.dropped_events.items():
            dropped[reason] = dropped.get(reason, 0) + count
        return dropped


def prepare_events(
    path: str | Path,
    mapping: ColumnMapping | None = None,
    on_error: OnError = "raise",
    sessions: SessionConfig | None = None,
    tokens: TokenConfig | None = None,
    time_bounds: TimeBounds | None = DEFAULT_TIME_BOUNDS,
) -> EventLog:
    """Read, validate, sessionize and tokenize one event file (``time_bounds``: plausible
    event times, see :func:`~funnelprint.data.load.read_events`)."""
    events, load_report = read_events(path, mapping, on_error=on_error, time_bounds=time_bounds)
    sessionized, session_report = sessionize(events, sessions, presorted=True)
    return EventLog(tokenize(sessionized, tokens), load_report, session_report)


def prepare_frame(
    events: pl.DataFrame,
    load_report: LoadReport | None = None,
    sessions: SessionConfig | None = None,
    tokens: TokenConfig | None = None,
) -> EventLog:
    """Sessionize and tokenize an already canonical event table."""
    if load_report is None:
        load_report = LoadReport(path="<frame>", rows_read=events.height, events=events.height)
    sessionized, session_report = sessionize(events, sessions)
    return EventLog(tokenize(sessionized, tokens), load_report, session_report)
