"""Event data: schema, loading and validation, sessions, tokens, simulation."""

from funnelprint.data.errors import EventDataError
from funnelprint.data.load import LoadReport, read_events
from funnelprint.data.pipeline import EventLog, prepare_events, prepare_frame
from funnelprint.data.schema import ColumnMapping
from funnelprint.data.sessions import SessionConfig, sessionize
from funnelprint.data.tokens import TokenConfig, tokenize

__all__ = [
    "ColumnMapping",
    "EventDataError",
    "EventLog",
    "LoadReport",
    "SessionConfig",
    "TokenConfig",
    "prepare_events",
    "prepare_frame",
    "read_events",
    "sessionize",
    "tokenize",
]
