"""Events that arrive as parsed JSON objects (an HTTP batch) rather than as a file: the
same column aliases, action synonyms, timestamp forms and checks as :mod:`.load`, but every
invalid record is reported by its position and reason instead of by file line."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from funnelprint.data.errors import EventDataError
from funnelprint.data.load import (
    DEFAULT_TIME_BOUNDS,
    LINE,
    NESTED,
    LoadReport,
    _canonicalise,
    _frame_from_objects,
    _value_error,
)
from funnelprint.data.schema import CANONICAL_COLUMN, REQUIRED_FIELDS, ColumnMapping
from funnelprint.data.timestamps import TIMESTAMP_DTYPE, TimeBounds


@dataclass(frozen=True)
class RecordProblem:
    """One refused record: its position in the batch, a reason code and a message."""

    index: int
    code: str
    message: str


@dataclass
class CheckedRecords:
    """The valid records as a canonical event table (column ``index``: position in the
    batch), and the refused ones."""

    events: pl.DataFrame
    problems: list[RecordProblem] = field(default_factory=list)


def check_records(
    records: Sequence[Mapping[str, Any]], mapping: ColumnMapping | None = None,
    time_bounds: TimeBounds | None = DEFAULT_TIME_BOUNDS,
) -> CheckedRecords:
    """Validate and canonicalise parsed JSON objects as the file reader would.

    Field names follow the reader's aliases (``user_id`` for ``customer_id``, ...), resolved
    record by record (a batch may mix them). Each record failing a check is refused on its
    own with the first failed check, in the reader's order; exact duplicates are kept (the
    caller decides).

    Returns
    -------
    CheckedRecords
        ``events`` with ``index, customer_id, timestamp, action, product_id`` and any of the
        optional canonical columns, in batch order.
    """
    mapping = mapping or ColumnMapping()
    problems = [RecordProblem(i, "bad_record", "expected a JSON object")
                for i, r in enumerate(records) if not isinstance(r, Mapping)]
    problems += [RecordProblem(i, "bad_value", f"{field}: contains a NUL character")
                 for i, r in enumerate(records) if isinstance(r, Mapping)
                 for field in _nul_fields(r)[:1]]
    refused = {p.index for p in problems}
    kept = [i for i, r in enumerate(records) if i not in refused]
    renames: dict[tuple[str, ...], dict[str, str]] = {}
    objects = [_canonical_names(records[i], mapping, renames) for i in kept]
    lines = pl.Series(LINE, kept, dtype=pl.UInt32)
    raw = _records_frame(objects)
    # Objects without one field make a frame without columns, of height 0.
    raw = raw.with_columns(lines) if raw.width else lines.to_frame()
    resolved = mapping.resolve([c for c in raw.columns if c != LINE
                                and not c.startswith(NESTED)])
    missing = [CANONICAL_COLUMN[f] for f in REQUIRED_FIELDS if f not in resolved]
    if missing:
        problems += [RecordProblem(i, "missing_field", f"missing field(s) {', '.join(missing)}")
                     for i in kept]
        return CheckedRecords(_empty(), sorted(problems, key=lambda p: p.index))
    report = LoadReport(path="<request>")
    frame, checks = _canonicalise(raw, resolved, mapping, report, time_bounds)
    flags = [c.flag for c in checks]
    bad = frame.select(pl.any_horizontal(flags)).to_series() if flags else None
    if bad is not None and bad.any():
        for row in bad.arg_true().to_list():
            error = _value_error(frame, raw, checks, row, "<request>")
            problems.append(RecordProblem(int(frame[LINE][row]), error.code or "bad_value",
                                          f"{error.column}: {_reason(error)}"))
        frame = frame.filter(~bad)
    events = frame.drop(flags).rename({LINE: "index"}).with_columns(pl.col("index").cast(
        pl.Int64))
    return CheckedRecords(events, sorted(problems, key=lambda p: p.index))


def _nul_fields(record: Mapping[str, Any]) -> list[str]:
    """Fields whose name or text holds a NUL character (no store keeps one in text)."""
    return [str(k) for k, v in record.items()
            if "\x00" in str(k) or (isinstance(v, str) and "\x00" in v)]


def _canonical_names(record: Mapping[str, Any], mapping: ColumnMapping,
                     cache: dict[tuple[str, ...], dict[str, str]]) -> dict[str, Any]:
    """The record with the fields the reader recognises under their canonical names."""
    keys = tuple(str(k) for k in record)
    rename = cache.get(keys)
    if rename is None:
        resolved = mapping.resolve(keys)
        rename = {col: CANONICAL_COLUMN[f] for f, col in resolved.items()
                  if CANONICAL_COLUMN[f] not in keys or col == CANONICAL_COLUMN[f]}
        cache[keys] = rename
    return {rename.get(str(k), str(k)): v for k, v in record.items()}


def _records_frame(objects: list[dict[str, Any]]) -> pl.DataFrame:
    """Every value as text (ids stay as written), with the reader's markers of cells that
    held a JSON object or array."""
    frame = _frame_from_objects(objects)
    marks = []
    for name in frame.columns:
        nested = [isinstance(o.get(name), dict | list) for o in objects]
        if any(nested):
            marks.append(pl.Series(NESTED + name, nested, dtype=pl.Boolean))
    return frame.with_columns(marks) if marks else frame


def _reason(error: EventDataError) -> str:
    if error.value is None:
        return error.reason
    return f"{error.reason} (value {str(error.value)[:80]!r})"


def _empty() -> pl.DataFrame:
    return pl.DataFrame(schema={"index": pl.Int64, "customer_id": pl.String,
                                "timestamp": TIMESTAMP_DTYPE, "action": pl.String,
                                "product_id": pl.String})


__all__ = ["CheckedRecords", "RecordProblem", "check_records"]
