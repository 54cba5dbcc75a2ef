"""Read an event log (CSV, gzip'd CSV, Parquet, JSON lines) into the canonical event table.

Every row that is not kept is either an error naming file, line and column, or, with
``on_error="skip"``, dropped and counted by reason in the :class:`LoadReport`.
"""

from __future__ import annotations

import gzip
import io
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv

from funnelprint.data.errors import EventDataError
from funnelprint.data.schema import (
    ACTION_SYNONYMS,
    CANONICAL_ACTIONS,
    CANONICAL_COLUMN,
    CATEGORY_FALLBACKS,
    FIELDS,
    REQUIRED_FIELDS,
    ColumnMapping,
    looks_like_header,
)
from funnelprint.data.timestamps import parse_timestamps

log = logging.getLogger(__name__)

OnError = Literal["raise", "skip"]
LINE = "__line"
_HASH_SEED = 20240101
SEED_ORDER = ("customer", "timestamp", "action", "product")

# Checked in this order; a row failing several checks is counted under the first.
_ID_CHECKS = (("customer", "empty_customer_id"), ("product", "empty_product_id"),
              ("action", "empty_action"))


@dataclass
class LoadReport:
    """What happened to the rows of one file."""

    path: str
    format: str = ""
    rows_read: int = 0
    events: int = 0
    mapping: dict[str, str] = field(default_factory=dict)
    timestamp_encoding: str = ""
    dropped: Counter = field(default_factory=Counter)
    other_actions: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "path": self.path,
            "format": self.format,
            "rows_read": self.rows_read,
            "events": self.events,
            "mapping": dict(self.mapping),
            "timestamp_encoding": self.timestamp_encoding,
            "dropped": dict(self.dropped),
            "other_actions": dict(self.other_actions),
        }


def read_events(
    path: str | Path,
    mapping: ColumnMapping | None = None,
    on_error: OnError = "raise",
) -> tuple[pl.DataFrame, LoadReport]:
    """Read, map and validate an event file.

    Parameters
    ----------
    path
        CSV (optionally gzip'd, with or without header), Parquet or JSON-lines file.
    mapping
        Explicit column, action and header names; aliases of common exports are used otherwise.
    on_error
        ``"raise"`` stops at the first bad row with an :class:`EventDataError`;
        ``"skip"`` drops bad rows and counts them by reason.

    Returns
    -------
    events, report
        The canonical event table (``customer_id, timestamp, action, product_id`` and any of
        ``session_id, category, price, brand, quantity``), in file order, without exact duplicates.
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', not {on_error!r}")
    mapping = mapping or ColumnMapping()
    path = Path(path)
    if not path.exists():
        raise EventDataError("no such file", path=str(path))
    report = LoadReport(path=str(path))
    raw = _read_raw(path, mapping, on_error, report)
    report.rows_read += raw.height
    resolved = mapping.resolve([c for c in raw.columns if c != LINE])
    missing = [f for f in REQUIRED_FIELDS if f not in resolved]
    if missing:
        names = ", ".join(CANONICAL_COLUMN[f] for f in missing)
        raise EventDataError(
            f"missing required column(s) {names}; the file has "
            f"{', '.join(c for c in raw.columns if c != LINE)} "
            "(map them with --columns customer=COL,timestamp=COL,action=COL,product=COL)",
            path=str(path),
        )
    report.mapping = {CANONICAL_COLUMN[f]: c for f, c in resolved.items()}
    events = _canonicalise(raw, resolved, mapping, report)
    events = _validate(events, resolved, on_error, report)
    events = _drop_duplicates(sort_journeys(events), report)
    report.events = events.height
    counts = events["action"].value_counts()
    report.other_actions = {
        a: int(n) for a, n in counts.iter_rows() if a not in CANONICAL_ACTIONS
    }
    if report.other_actions:
        log.info("%s: non-funnel actions kept as their own type: %s", path, report.other_actions)
    for reason, count in sorted(report.dropped.items()):
        log.warning("%s: dropped %d row(s): %s", path, count, reason)
    return events.drop(LINE), report


# --------------------------------------------------------------------------- reading


def detect_format(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in (".parquet", ".pq"):
        return "parquet"
    if any(s in (".jsonl", ".ndjson", ".json") for s in suffixes):
        return "jsonl"
    return "csv"


def _read_raw(
    path: Path, mapping: ColumnMapping, on_error: OnError, report: LoadReport
) -> pl.DataFrame:
    fmt = detect_format(path)
    report.format = fmt
    try:
        if fmt == "parquet":
            frame = pl.read_parquet(path)
        elif fmt == "jsonl":
            frame = _read_jsonl(path)
        else:
            return _read_csv(path, mapping, on_error, report)
    except EventDataError:
        raise
    except Exception as exc:  # the libraries' own messages name the problem
        raise EventDataError(f"cannot read {fmt} file: {exc}", path=str(path)) from exc
    return frame.with_row_index(LINE, offset=1)


def _read_jsonl(path: Path) -> pl.DataFrame:
    source: str | Path | io.BytesIO = path
    if path.suffix.lower() == ".gz":
        with gzip.open(path, "rb") as fh:
            source = io.BytesIO(fh.read())
    return pl.read_ndjson(source, infer_schema_length=None)


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix.lower() == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")


def _first_line(path: Path) -> str:
    with _open_text(path) as fh:
        return fh.readline().rstrip("\r\n").lstrip("\ufeff")


def _sniff_delimiter(line: str) -> str:
    return max((",", "\t", ";", "|"), key=line.count)


def _read_csv(
    path: Path, mapping: ColumnMapping, on_error: OnError, report: LoadReport
) -> pl.DataFrame:
    first = _first_line(path)
    if not first.strip():
        raise EventDataError("file is empty or starts with a blank line", path=str(path), line=1)
    delimiter = _sniff_delimiter(first)
    fields = [f.strip().strip('"') for f in first.split(delimiter)]
    header = looks_like_header(fields)
    if mapping.names is not None:
        names = list(mapping.names)
        if header:
            log.info("%s: first line looks like a header; --names replaces it", path)
    elif header:
        names = fields
    elif len(fields) == len(SEED_ORDER):
        names = [CANONICAL_COLUMN[f] for f in SEED_ORDER]
        log.info("%s: no header; assuming columns %s", path, ",".join(names))
    else:
        raise EventDataError(
            f"no header recognised in the first line ({len(fields)} fields); "
            "name the columns with --names a,b,c,...",
            path=str(path), line=1,
        )
    if len(names) != len(fields):
        raise EventDataError(
            f"--names gives {len(names)} columns but the first line has {len(fields)} fields",
            path=str(path), line=1,
        )
    truncated = _unterminated_last_line(path, len(names), delimiter)
    try:
        frame = pl.read_csv(
            path, has_header=header, new_columns=names, separator=delimiter, infer_schema=False,
        )
    except pl.exceptions.ComputeError:
        # Too many fields somewhere: pyarrow finds the rows exactly.
        frame = _read_csv_exact(path, names, header, delimiter, on_error, truncated, report)
    else:
        if truncated is not None and frame.height:
            frame = frame.head(frame.height - 1)
            _count_truncated(path, report)
    frame = frame.with_row_index(LINE, offset=2 if header else 1)
    blank = frame.select(pl.all_horizontal(pl.exclude(LINE).is_null())).to_series()
    if blank.any():
        report.dropped["blank_line"] += int(blank.sum())
        report.rows_read += int(blank.sum())
        frame = frame.filter(~blank)
    # Line numbers assume one line per record (no newlines inside quoted fields).
    return frame


def _count_truncated(path: Path, report: LoadReport) -> None:
    # A file cut mid-record (head -c, an interrupted export) ends in a partial line.
    log.warning("%s: last line is cut short (no newline, too few fields); skipped", path)
    report.dropped["truncated_last_line"] += 1
    report.rows_read += 1


def _read_csv_exact(
    path: Path, names: list[str], header: bool, delimiter: str, on_error: OnError,
    truncated: str | None, report: LoadReport,
) -> pl.DataFrame:
    invalid: list[str] = []
    truncated_rows: list[str] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        if truncated is not None and (row.text or "") == truncated:
            truncated_rows.append(truncated)
            return "skip"
        invalid.append(row.text or "")
        return "skip" if on_error == "skip" else "error"

    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=1 if header else 0),
            parse_options=pacsv.ParseOptions(
                delimiter=delimiter, invalid_row_handler=on_invalid, ignore_empty_lines=False
            ),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()), strings_can_be_null=True
            ),
        )
    except pa.ArrowInvalid as exc:
        if invalid:
            line, text = _find_line(path, invalid[0])
            count = len(text.split(delimiter))
            raise EventDataError(
                f"malformed row: expected {len(names)} fields, found {count}",
                path=str(path), line=line, value=text,
            ) from exc
        raise EventDataError(f"cannot parse CSV: {exc}", path=str(path)) from exc
    if invalid:
        log.warning("%s: first malformed row: %r", path, invalid[0])
        report.dropped["malformed_row"] += len(invalid)
        report.rows_read += len(invalid)
    if truncated_rows:
        _count_truncated(path, report)
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame


def _unterminated_last_line(path: Path, fields: int, delimiter: str) -> str | None:
    """The last line of a plain-text file when it lacks both its newline and some fields."""
    if path.suffix.lower() == ".gz":
        return None
    with open(path, "rb") as fh:
        fh.seek(0, io.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - 65536))
        tail = fh.read()
    if not tail or tail.endswith(b"\n"):
        return None
    last = tail.rsplit(b"\n", 1)[-1].decode("utf-8", errors="replace").rstrip("\r")
    return last if len(last.split(delimiter)) < fields else None


def _find_line(path: Path, text: str) -> tuple[int | None, str]:
    """Locate a malformed record for the error message (runs on the error path only)."""
    with _open_text(path) as fh:
        for number, line in enumerate(fh, start=1):
            if line.rstrip("\r\n") == text.rstrip("\r\n"):
                return number, text
    return None, text


# ---------------------------------------------------------------------- canonicalising


def _text(column: str) -> pl.Expr:
    stripped = pl.col(column).cast(pl.String).str.strip_chars()
    return pl.when(stripped.str.len_bytes() > 0).then(stripped).otherwise(None)


def _canonicalise(
    raw: pl.DataFrame, resolved: dict[str, str], mapping: ColumnMapping, report: LoadReport
) -> pl.DataFrame:
    exprs: list[pl.Expr] = [pl.col(LINE)]
    for fld in FIELDS:
        col = resolved.get(fld)
        if col is None or fld == "timestamp":
            continue
        name = CANONICAL_COLUMN[fld]
        if fld in ("price", "quantity"):
            exprs.append(_text(col).cast(pl.Float64, strict=False).alias(name))
            exprs.append(_text(col).alias(f"__raw_{name}"))
        elif fld == "action":
            exprs.append(_action_expr(col, mapping).alias(name))
        elif fld == "category":
            exprs.append(_category_expr(raw.columns, col).alias(name))
        else:
            exprs.append(_text(col).alias(name))
    ts_col = resolved["timestamp"]
    parsed, encoding = parse_timestamps(raw[ts_col])
    report.timestamp_encoding = encoding
    frame = raw.select(exprs).with_columns(
        parsed.alias("timestamp"), raw[ts_col].cast(pl.String).alias("__raw_timestamp")
    )
    order = [CANONICAL_COLUMN[f] for f in FIELDS if f in resolved]
    extra = [c for c in frame.columns if c.startswith("__raw_")]
    return frame.select([LINE, *order, *extra])


def _action_expr(column: str, mapping: ColumnMapping) -> pl.Expr:
    lookup = {**ACTION_SYNONYMS, **mapping.actions}
    lowered = _text(column).str.to_lowercase()
    return lowered.replace(lookup)


def _category_expr(columns: list[str], chosen: str) -> pl.Expr:
    expr = _text(chosen)
    for primary, fallback in CATEGORY_FALLBACKS:
        if chosen == primary and fallback in columns:
            expr = pl.coalesce(expr, _text(fallback))
    return expr


# ------------------------------------------------------------------------ validating


def _validate(
    frame: pl.DataFrame, resolved: dict[str, str], on_error: OnError, report: LoadReport
) -> pl.DataFrame:
    checks: list[tuple[str, str, pl.Expr, str]] = [
        (reason, resolved[fld], pl.col(CANONICAL_COLUMN[fld]).is_null(), "empty value")
        for fld, reason in _ID_CHECKS
    ]
    checks.append(("bad_timestamp", resolved["timestamp"], pl.col("timestamp").is_null(),
                   "cannot parse timestamp"))
    for fld in ("price", "quantity"):
        if fld in resolved:
            name = CANONICAL_COLUMN[fld]
            bad = pl.col(name).is_null() & pl.col(f"__raw_{name}").is_not_null()
            checks.append((f"bad_{fld}", resolved[fld], bad, "not a number"))
    flags = frame.select([expr.alias(reason) for reason, _, expr, _ in checks])
    any_bad = flags.select(pl.any_horizontal(pl.all())).to_series()
    if not any_bad.any():
        return frame.drop([c for c in frame.columns if c.startswith("__raw_")])
    if on_error == "raise":
        first = int(any_bad.arg_true()[0])
        for reason, column, _, message in checks:
            if flags[reason][first]:
                value = _raw_value(frame, first, reason)
                raise EventDataError(
                    message, path=report.path, line=int(frame[LINE][first]), column=column,
                    value=value,
                )
    counted = flags[checks[0][0]] & False
    for reason, *_ in checks:
        count = int((flags[reason] & ~counted).sum())
        if count:
            report.dropped[reason] += count
        counted = counted | flags[reason]
    kept = frame.filter(~any_bad)
    return kept.drop([c for c in kept.columns if c.startswith("__raw_")])


def _raw_value(frame: pl.DataFrame, row: int, reason: str) -> object:
    if reason == "bad_timestamp":
        return frame["__raw_timestamp"][row]
    if reason.startswith("bad_"):
        return frame[f"__raw_{reason[4:]}"][row]
    return None


def sort_journeys(frame: pl.DataFrame) -> pl.DataFrame:
    """Sort by customer, then time; ties keep their input order.

    Customers are ordered by a fixed hash of their id (fast integer sort); two stable passes
    give the same order as one sort on (customer, time).
    """
    if not frame["timestamp"].is_sorted():
        frame = frame.sort("timestamp", maintain_order=True)
    key = pl.col("customer_id").hash(_HASH_SEED)
    if frame.select(key.n_unique()).item() != frame["customer_id"].n_unique():
        return frame.sort("customer_id", maintain_order=True)  # a hash collision: exact path
    return frame.sort(key, maintain_order=True)


def _drop_duplicates(frame: pl.DataFrame, report: LoadReport) -> pl.DataFrame:
    """Remove exact duplicate events; they can only sit in runs of equal customer and time."""
    same = (pl.col("customer_id") == pl.col("customer_id").shift(1)) & (
        pl.col("timestamp") == pl.col("timestamp").shift(1)
    )
    tied = frame.select((same | same.shift(-1)).fill_null(False)).to_series()
    if not tied.any():
        return frame
    columns = [c for c in frame.columns if c != LINE]
    candidates = frame.with_row_index("__pos").filter(tied)
    repeated = candidates.filter(~pl.struct(columns).is_first_distinct())["__pos"]
    if repeated.len() == 0:
        return frame
    report.dropped["duplicate"] += repeated.len()
    keep = pl.int_range(pl.len()).is_in(repeated.implode()).not_()
    return frame.filter(keep)
