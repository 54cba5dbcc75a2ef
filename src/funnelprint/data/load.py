"""Read an event log (CSV, gzip'd CSV, Parquet, JSON lines) into the canonical event table.

Every row that is not kept is either an error naming file, line and column, or, with
``on_error="skip"``, dropped and counted by reason in the :class:`LoadReport`.

Reading takes a fast path (polars on the whole file) and checks its result cheaply; a file
the fast path cannot read, or whose rows do not match its lines one for one, is scanned line
by line (numpy over the bytes) so that each bad line is found, named and left out on its own
while every other line is read as usual. Each event must sit on one line: a quoted field that
does not close on its line is reported as an unmatched quote rather than allowed to swallow
the lines after it.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import logging
import mmap
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl

from funnelprint.data.errors import EventDataError, input_file
from funnelprint.data.schema import (
    CANONICAL_COLUMN,
    CATEGORY_FALLBACKS,
    FIELDS,
    ID_CHARS,
    ID_FIELDS_OF_EVENTS,
    KNOWN_ACTIONS,
    REQUIRED_FIELDS,
    TEXT_CHARS,
    ColumnMapping,
    listed,
    looks_like_header,
)
from funnelprint.data.timestamps import (
    TIME_UNIT,
    TIMESTAMP_DTYPE,
    TimeBounds,
    out_of_range,
    parse_timestamps,
)
from funnelprint.data.values import (
    clean_text,
    clean_text_or_null,
    drop_missing_markers,
    integral_ids,
    read_actions,
)

log = logging.getLogger(__name__)

OnError = Literal["raise", "skip"]
LINE = "__line"
#: Prefix of the boolean columns marking cells that held a JSON object or array.
NESTED = "__nested:"
_FLAG = "__flag:"
_HASH_SEED = 20240101
SEED_ORDER = ("customer", "timestamp", "action", "product")
DEFAULT_TIME_BOUNDS = TimeBounds()

_ID_REASONS = {"customer": "customer_id", "product": "product_id", "action": "action"}
_NUMBER_FIELDS = ("price", "quantity")
_BOM = b"\xef\xbb\xbf"


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
    #: Raw action values read under another name (``{"pay": "purchase"}``).
    action_mapping: dict[str, str] = field(default_factory=dict)
    #: Per canonical column, ids written as floats read as integers (``208995.0``).
    normalised: Counter = field(default_factory=Counter)
    #: Values supplied where the file had none: ``customer_id_from_session`` (rows read with
    #: ``missing_customer="session"``), ``session_id_from_gap`` (events without a session id,
    #: in a file with a session column, whose session comes from the inactivity gap).
    filled: Counter = field(default_factory=Counter)
    #: One-line warnings about the file as a whole (no purchase, most ids missing, ...).
    warnings: list[str] = field(default_factory=list)
    #: The first dropped row of each reason, as an error message (file, line, column, value).
    examples: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "path": self.path,
            "format": self.format,
            "rows_read": self.rows_read,
            "events": self.events,
            "mapping": dict(self.mapping),
            "action_mapping": dict(self.action_mapping),
            "timestamp_encoding": self.timestamp_encoding,
            "dropped": dict(self.dropped),
            "normalised": dict(self.normalised),
            "filled": dict(self.filled),
            "other_actions": dict(self.other_actions),
            "warnings": list(self.warnings),
        }

    def warn(self, message: str) -> None:
        """Log a warning about the file and keep it in :attr:`warnings`."""
        self.warnings.append(message)
        log.warning("%s: %s", self.path, message)


class ReadProblems:
    """Lines refused while reading, before their values are looked at."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.first: EventDataError | None = None
        self.counts: Counter = Counter()
        self.examples: dict[str, EventDataError] = {}

    def add(self, code: str, count: int, example: EventDataError) -> None:
        """Count ``count`` lines under ``code``; ``example`` is the first of them."""
        self.counts[code] += count
        if code not in self.examples:
            self.examples[code] = example
        if self.first is None or _line_of(example) < _line_of(self.first):
            self.first = example


def _line_of(error: EventDataError) -> float:
    return float("inf") if error.line is None else error.line


def read_events(
    path: str | Path,
    mapping: ColumnMapping | None = None,
    on_error: OnError = "raise",
    *,
    time_bounds: TimeBounds | None = DEFAULT_TIME_BOUNDS,
) -> tuple[pl.DataFrame, LoadReport]:
    """Read, map and validate an event file.

    Parameters
    ----------
    path
        CSV (optionally gzip'd, with or without header), Parquet or JSON-lines file.
    mapping
        Explicit column, action and header names; aliases of common exports are used otherwise.
    on_error
        ``"raise"`` stops at the first bad row (in file order) with an :class:`EventDataError`
        naming its line, column and value; ``"skip"`` drops bad rows and counts them by reason.
    time_bounds
        Plausible event times (default: from 1990-01-01 to one day after now); timestamps
        outside are errors, or rows skipped as ``timestamp_out_of_range``. ``None`` accepts
        any time.

    Returns
    -------
    events, report
        The canonical event table (``customer_id, timestamp, action, product_id`` and any of
        ``session_id, category, price, brand, quantity``), in file order, without exact duplicates.
    """
    path = input_file(path, on_error)
    mapping = mapping or ColumnMapping()
    report = LoadReport(path=str(path))
    problems = ReadProblems(str(path))
    raw = read_table(path, report, problems, mapping)
    columns = data_columns(raw)
    if not columns and raw.height == 0 and problems.first is None:
        raise EventDataError("no records: the file holds only blank lines", path=str(path))
    resolved = mapping.resolve(columns)
    twice = [c for c in resolved.values() if f"{c}_duplicated_1" in columns]
    if twice:
        raise EventDataError(
            f"column {twice[0]!r} appears more than once in the header; rename the copies or "
            f"map another column with --columns", path=str(path), line=1)
    missing = [f for f in REQUIRED_FIELDS if f not in resolved
               and not (f == "action" and mapping.constant_action is not None)]
    if missing and raw.height == 0 and problems.first is not None:
        # Nothing readable (every JSON line refused, say): the lines are the problem.
        if on_error == "raise":
            raise problems.first
        _count_problems(problems, report)
        empty = pl.DataFrame(schema={CANONICAL_COLUMN[f]: pl.String for f in REQUIRED_FIELDS})
        return _finish(empty.with_columns(pl.col("timestamp").cast(TIMESTAMP_DTYPE)), report)
    if missing:
        names = ", ".join(CANONICAL_COLUMN[f] for f in missing)
        hint = ("map them with --columns customer=COL,timestamp=COL,action=COL,product=COL"
                + ("; a log without actions takes one for every row with --action view"
                   if "action" in missing else ""))
        if "product" in resolved and {"customer", "timestamp"} <= set(missing) and (
                {"category", "brand", "price"} & set(resolved)):
            hint = "a products file? fit, evaluate and report take one with --products"
        raise EventDataError(
            f"missing required column(s) {names}; the file has {listed(columns)} ({hint})",
            path=str(path),
        )
    if mapping.missing_customer == "session" and "session" not in resolved:
        raise EventDataError(
            f"--missing-customer session needs a session column; the file has "
            f"{listed(columns)} (map one with --columns session=COL)", path=str(path))
    report.mapping = {CANONICAL_COLUMN[f]: c for f, c in resolved.items()}
    if mapping.constant_action is not None:
        report.mapping["action"] = f"constant: {mapping.constant_action}"
        ignored = ColumnMapping().resolve(columns).get("action")
        if ignored is not None and ignored not in resolved.values():
            log.warning("%s: column %r ignored: --action gives every row the action %r",
                        path, ignored, mapping.constant_action)
    events, checks = _canonicalise(raw, resolved, mapping, report, time_bounds)
    events = _validate(events, raw, checks, on_error, report, problems)
    del raw
    events = _drop_duplicates(sort_journeys(events), report)
    return _finish(events.drop(LINE), report, mapping.constant_action is not None)


def check_events_left(report: LoadReport, events: int,
                      dropped: dict[str, int] | None = None) -> None:
    """Refuse a file without rows, or whose rows were all dropped (``dropped``: every drop by
    reason, the report's own by default): one line with the counts by reason and the first
    dropped value, so that a run never goes on with nothing."""
    if not report.rows_read:
        raise EventDataError("no events in the file (a header and no rows)", path=report.path)
    if events:
        return
    dropped = dict(report.dropped) if dropped is None else dropped
    order = sorted(dropped, key=lambda reason: -dropped[reason])
    counts = ", ".join(f"{dropped[reason]:,} {reason}" for reason in order)
    first = next((report.examples[reason] for reason in order if reason in report.examples),
                 None)
    raise EventDataError(
        "no events left to use (" + (f"dropped: {counts}" if counts else "the file has no rows")
        + ")" + (f"; first: {first}" if first else "; check the file and the session options"),
        path=report.path)


def _count_problems(problems: ReadProblems, report: LoadReport) -> None:
    report.dropped.update(problems.counts)
    for code, example in problems.examples.items():
        report.examples.setdefault(code, str(example))


def _finish(events: pl.DataFrame, report: LoadReport, constant: bool = False
            ) -> tuple[pl.DataFrame, LoadReport]:
    """Count what is left and warn about the file as a whole (``constant``: every row was
    given one action, so no purchase is expected)."""
    path = report.path
    report.events = events.height
    counts = events["action"].value_counts(sort=True)
    report.other_actions = {
        a: int(n) for a, n in counts.iter_rows() if a not in KNOWN_ACTIONS
    }
    if report.other_actions:
        log.info("%s: non-funnel actions kept as their own type: %s", path, report.other_actions)
    if "session_id" in events.columns:
        gaps = events["session_id"].null_count()
        if gaps:
            report.filled["session_id_from_gap"] += gaps
    if events.height and "purchase" not in counts["action"].to_list() and not constant:
        report.warn(_no_purchase(report.other_actions, counts))
    for reason, count in sorted(report.dropped.items()):
        example = report.examples.get(reason)
        if example:
            log.warning("%s: dropped %d row(s): %s; first: %s", path, count, reason, example)
        else:
            log.warning("%s: dropped %d row(s): %s", path, count, reason)
    return events, report


def _no_purchase(other: dict[str, int], counts: pl.DataFrame) -> str:
    if other:
        listed = ", ".join(f"{a!r} ({n:,})" for a, n in list(other.items())[:8])
        more = f" and {len(other) - 8} more" if len(other) > 8 else ""
        if all(a.isdigit() for a in other):
            return (f"no purchase among the actions, which are codes: {listed}{more}; name "
                    "them with --actions CODE=NAME,... (e.g. 1=view,2=add_to_cart,4=purchase; "
                    "a name outside the funnel is an action type of its own)")
        return (f"no purchase among the actions; not recognised: {listed}{more}; if one of "
                "them is the purchase, name it with --actions VALUE=purchase")
    found = ", ".join(counts["action"].to_list())
    return (f"no purchase among the actions ({found}); if the log has purchases under another "
            "name, map them with --actions VALUE=purchase")


def data_columns(raw: pl.DataFrame) -> list[str]:
    """The file's own columns (without the line numbers and markers the reader adds)."""
    return [c for c in raw.columns if c != LINE and not c.startswith(NESTED)]


# --------------------------------------------------------------------------- reading


def detect_format(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in (".parquet", ".pq"):
        return "parquet"
    if any(s in (".jsonl", ".ndjson", ".json") for s in suffixes):
        return "jsonl"
    return "csv"


def read_table(
    path: Path, report: LoadReport, problems: ReadProblems, mapping: ColumnMapping | None = None,
    require_header: bool = False,
) -> pl.DataFrame:
    """Read a file's rows as they are (text columns for CSV), line numbers in ``LINE``.

    Lines that cannot be read (wrong field count, unmatched quote, bad encoding, invalid
    JSON) are left out and recorded in ``problems``; blank lines and a cut-off last line are
    left out and counted in ``report.dropped``. ``report.rows_read`` counts every line.
    A CSV file must start with a header when ``require_header`` is set.
    """
    fmt = detect_format(path)
    report.format = fmt
    mapping = mapping or ColumnMapping()
    if fmt == "parquet":
        return _read_parquet(path, report)
    buf = _load_bytes(path)
    if not len(buf):
        raise EventDataError("file is empty", path=str(path))
    if buf.find(b"\n") == -1 and buf.find(b"\r") != -1:
        log.info("%s: lines end in CR only; reading CR as the line break", path)
        buf = bytes(buf).replace(b"\r", b"\n")
    if fmt == "jsonl":
        return _read_jsonl(path, buf, report, problems)
    return _read_csv(path, buf, mapping, report, problems, require_header)


def _load_bytes(path: Path) -> bytes | mmap.mmap:
    if path.suffix.lower() == ".gz":
        try:
            return gzip.decompress(path.read_bytes())
        except (OSError, EOFError, zlib.error) as exc:
            raise EventDataError(f"cannot decompress gzip file: {exc}", path=str(path)) from exc
    with open(path, "rb") as fh:
        if fh.seek(0, io.SEEK_END) == 0:
            return b""
        return mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)


def _read_parquet(path: Path, report: LoadReport) -> pl.DataFrame:
    try:
        frame = pl.read_parquet(path)
    except Exception as exc:  # the library's own message names the problem
        raise EventDataError(f"cannot read parquet file: {exc}", path=str(path)) from exc
    report.rows_read = frame.height
    columns = []
    for name in frame.columns:
        series = frame[name]
        if series.dtype.is_nested() or series.dtype == pl.Object:
            # Objects or arrays where a value belongs: kept as text, marked as such.
            columns.append(pl.Series(name, [_as_text(v) for v in series.to_list()], pl.String))
            columns.append(series.is_not_null().alias(NESTED + name))
        elif series.dtype == pl.Binary:
            columns.append(_decode_binary(series))
        else:
            columns.append(series)
    return pl.DataFrame(columns).with_row_index(LINE, offset=1)


def _as_text(value: object) -> str | None:
    if value is None:
        return None
    return json.dumps(value, default=str)


def _decode_binary(series: pl.Series) -> pl.Series:
    try:
        return series.cast(pl.String)
    except Exception:
        values = [None if v is None else v.decode("utf-8", "replace") for v in series.to_list()]
        return pl.Series(series.name, values, pl.String)


# ------------------------------------------------------------------------ line scans


class _Lines:
    """Where each line of a buffer starts and ends (numpy, no per-line Python)."""

    def __init__(self, buf: bytes | mmap.mmap) -> None:
        self.buf = buf
        self.arr = np.frombuffer(buf, dtype=np.uint8)
        size = self.arr.size
        self.newlines = np.flatnonzero(self.arr == 10)
        starts = np.concatenate(([0], self.newlines + 1))
        if starts[-1] == size:  # the file ends with a line break
            starts = starts[:-1]
        self.starts = starts
        self.count = starts.size
        self.next_starts = np.concatenate((starts[1:], [size]))
        self.terminated = bool(size == 0 or self.arr[-1] == 10)
        ends = self.next_starts - 1  # the line break
        if self.count and not self.terminated:
            ends[-1] = size
        if self.count and bytes(buf[:3]) == _BOM:
            starts = starts.copy()
            starts[0] = min(3, ends[0])
            self.starts = starts
        has_cr = (ends > self.starts) & (self.arr[np.maximum(ends - 1, 0)] == 13)
        self.ends = ends - has_cr

    def lines_with(self, mask: np.ndarray) -> np.ndarray:
        """Indices of the lines holding at least one byte where ``mask`` is true."""
        return np.unique(self.line_of(np.flatnonzero(mask)))

    def line_of(self, positions: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.newlines, positions)

    def raw(self, index: int) -> bytes:
        return bytes(self.buf[self.starts[index]:self.ends[index]])

    def text(self, index: int) -> str:
        return self.raw(index).decode("utf-8", "replace")

    def keep(self, lines: np.ndarray) -> bytes:
        """The bytes of the lines marked in the boolean ``lines``, line breaks included."""
        mask = np.repeat(lines, self.next_starts - np.concatenate(([0], self.next_starts[:-1])))
        return self.arr[mask].tobytes()


def _decode_problem(raw: bytes) -> UnicodeDecodeError | None:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc
    return None


# ------------------------------------------------------------------------------- CSV

_GOOD, _BLANK, _MALFORMED, _BAD_QUOTE, _BAD_ENCODING, _TRUNCATED, _HEADER, _BAD = range(8)
_CODES = {
    _MALFORMED: "malformed_row",
    _BAD_QUOTE: "bad_quote",
    _BAD_ENCODING: "bad_encoding",
}


def _first_line(path: Path, buf: bytes | mmap.mmap) -> str:
    end = buf.find(b"\n")
    raw = bytes(buf[: end if end >= 0 else len(buf)]).rstrip(b"\r")
    if raw.startswith(_BOM):
        raw = raw[len(_BOM):]
    problem = _decode_problem(raw)
    if problem is not None:
        raise EventDataError(
            f"first line is not valid UTF-8 (byte 0x{raw[problem.start]:02x}); "
            "save the file as UTF-8", path=str(path), line=1,
        )
    return raw.decode("utf-8")


def _split_fields(line: str, delimiter: str) -> list[str]:
    return next(csv.reader([line], delimiter=delimiter), [])


def _sniff_delimiter(line: str) -> str:
    return max((",", "\t", ";", "|"), key=lambda d: len(_split_fields(line, d)))


def _read_csv(
    path: Path, buf: bytes | mmap.mmap, mapping: ColumnMapping, report: LoadReport,
    problems: ReadProblems, require_header: bool = False,
) -> pl.DataFrame:
    first = _first_line(path, buf)
    if not first.strip():
        raise EventDataError("file is empty or starts with a blank line", path=str(path), line=1)
    delimiter = _sniff_delimiter(first)
    fields = [f.strip() for f in _split_fields(first, delimiter)]
    # A first line naming every column the caller mapped is a header too.
    header = looks_like_header(fields) or bool(
        mapping.columns and set(mapping.columns.values()) <= set(fields))
    if mapping.names is not None:
        names = list(mapping.names)
        if header:
            log.info("%s: first line looks like a header; --names replaces it", path)
    elif header:
        names = fields
    elif require_header:
        raise EventDataError(
            f"no header recognised in the first line ({', '.join(fields)})",
            path=str(path), line=1,
        )
    elif len(fields) == len(SEED_ORDER):
        names = [CANONICAL_COLUMN[f] for f in SEED_ORDER]
        log.info("%s: no header; assuming columns %s", path, ",".join(names))
    elif len(fields) == 1 and len(first.split()) > 1:
        raise EventDataError(
            "no header recognised, and the first line is one field of space-separated values; "
            "a 'user item ...' sequence file (SASRec, S3-Rec) is read by fit and evaluate as "
            "sasrec:PATH or s3rec:PATH", path=str(path), line=1, value=first)
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
    names = _unique_names(names)
    frame = _csv_fast(path, buf, names, header, delimiter, report)
    if frame is None:
        frame = _csv_scan(path, buf, names, header, delimiter, report, problems)
    return frame


def _unique_names(names: list[str]) -> list[str]:
    """Repeated header names get a suffix (``x``, ``x_duplicated_1``), as polars names them."""
    seen: Counter = Counter()
    unique = []
    for name in names:
        unique.append(name if not seen[name] else f"{name}_duplicated_{seen[name]}")
        seen[name] += 1
    return unique


def _csv_options(names: list[str], header: bool, delimiter: str) -> dict:
    return {"has_header": header, "new_columns": names, "separator": delimiter,
            "infer_schema": False}


def _csv_fast(
    path: Path, buf: bytes | mmap.mmap, names: list[str], header: bool, delimiter: str,
    report: LoadReport,
) -> pl.DataFrame | None:
    """Read the whole file with polars; ``None`` where the result cannot be trusted line for
    line (the exact scan then reads it)."""
    source: Path | bytes = path if isinstance(buf, mmap.mmap) else bytes(buf)
    try:
        frame = pl.read_csv(source, **_csv_options(names, header, delimiter))
    except Exception:
        return None
    has_quote = buf.find(b'"') != -1
    arr = np.frombuffer(buf, dtype=np.uint8)
    terminated = arr[-1] == 10
    lines = frame.height + header
    # A quoted field spanning lines would merge them: one row per line, or the scan.
    if has_quote and int(np.count_nonzero(arr == 10)) + (not terminated) != lines:
        return None
    # Polars reads a blank line as a row of nulls.
    blank = frame.select(pl.all_horizontal(pl.all().is_null())).to_series()
    truncated = 0
    if not terminated:
        last = bytes(buf[buf.rfind(b"\n") + 1:]).decode("utf-8", "replace").rstrip("\r")
        if last.strip() and len(_split_fields(last, delimiter)) < len(names):
            truncated = 1
    # A row with too few fields ends in nulls; too many fields made polars fail above.
    short = frame[names[-1]].is_null() & ~blank
    if truncated:
        short = short.scatter(frame.height - 1, False)
    if short.any():
        if has_quote:
            return None
        seen = int(np.count_nonzero(arr == ord(delimiter)))
        full = lines - int(blank.sum()) - truncated
        last_fields = len(_split_fields(last, delimiter)) if truncated else 1
        if seen != full * (len(names) - 1) + last_fields - 1:
            return None
    report.rows_read = frame.height
    frame = frame.with_row_index(LINE, offset=2 if header else 1)
    if truncated:
        frame = frame.head(frame.height - 1)
        _count_truncated(path, report)
    if blank.any():
        report.dropped["blank_line"] += int(blank.sum())
        frame = frame.filter(~blank.head(frame.height))
    return frame


def _count_truncated(path: Path, report: LoadReport) -> None:
    # A file cut mid-record (head -c, an interrupted export) ends in a partial line.
    log.warning("%s: last line is cut short (no line break, incomplete record); skipped", path)
    report.dropped["truncated_last_line"] += 1


def _csv_scan(
    path: Path, buf: bytes | mmap.mmap, names: list[str], header: bool, delimiter: str,
    report: LoadReport, problems: ReadProblems,
) -> pl.DataFrame:
    """Check every line (field count, quotes, UTF-8), read the good ones, record the rest."""
    lines = _Lines(buf)
    n = lines.count
    arr = lines.arr
    width = len(names)
    fields = np.bincount(lines.line_of(np.flatnonzero(arr == ord(delimiter))), minlength=n) + 1
    status = np.full(n, _GOOD, dtype=np.int8)
    length = lines.ends - lines.starts
    status[length == 0] = _BLANK
    errors: dict[int, str] = {}
    quoted = lines.lines_with(arr == 34)
    special = np.union1d(quoted, lines.lines_with(arr >= 0x80))
    # Lines without a delimiter may hold only spaces: blank.
    special = np.union1d(special, np.flatnonzero((fields == 1) & (length > 0)))
    quoted_set = set(quoted.tolist())
    for index in special.tolist():
        raw = lines.raw(index)
        problem = _decode_problem(raw)
        if problem is not None:
            status[index] = _BAD_ENCODING
            errors[index] = str(problem.reason)
            continue
        text = raw.decode("utf-8")
        if not text.strip():
            status[index] = _BLANK
        elif index in quoted_set:
            try:
                fields[index] = len(_split_strict(text, delimiter))
            except csv.Error as exc:
                status[index] = _BAD_QUOTE
                errors[index] = str(exc)
    status[(status == _GOOD) & (fields != width)] = _MALFORMED
    if header:
        status[0] = _HEADER
    last = n - 1
    if n and not lines.terminated and status[last] != _HEADER:
        cut = (
            (status[last] == _MALFORMED and fields[last] < width)
            or status[last] == _BAD_QUOTE
            or (status[last] == _BAD_ENCODING and errors.get(last) == "unexpected end of data")
        )
        if cut:
            status[last] = _TRUNCATED
            _count_truncated(path, report)
    report.rows_read = n - header
    blank = int(np.count_nonzero(status == _BLANK))
    if blank:
        report.dropped["blank_line"] += blank
    for code, reason in _CODES.items():
        bad = np.flatnonzero(status == code)
        if bad.size:
            example = _csv_line_error(path, lines, int(bad[0]), code, names, delimiter,
                                      int(fields[bad[0]]), errors.get(int(bad[0]), ""))
            problems.add(reason, int(bad.size), example)
    keep = (status == _GOOD) | (status == _HEADER)
    good = np.flatnonzero(status == _GOOD)
    frame = _parse_kept(lines, keep, good, names, header, delimiter)
    return frame.with_columns(pl.Series(LINE, good + 1, dtype=pl.UInt32)).select(
        LINE, *names
    )


def _split_strict(text: str, delimiter: str) -> list[str]:
    return next(csv.reader([text], delimiter=delimiter, strict=True), [])


def _parse_kept(
    lines: _Lines, keep: np.ndarray, good: np.ndarray, names: list[str], header: bool,
    delimiter: str,
) -> pl.DataFrame:
    """Read the lines that passed the scan; polars first, Python's csv where they disagree."""
    if good.size:
        try:
            frame = pl.read_csv(lines.keep(keep), **_csv_options(names, header, delimiter))
        except Exception:
            frame = None
        if frame is not None and frame.height == good.size:
            return frame
        rows = [_split_strict(lines.raw(i).decode("utf-8"), delimiter) for i in good.tolist()]
        values = {name: [row[j] for row in rows] for j, name in enumerate(names)}
        return pl.DataFrame(values, schema=dict.fromkeys(names, pl.String))
    return pl.DataFrame(schema=dict.fromkeys(names, pl.String))


def _csv_line_error(
    path: Path, lines: _Lines, index: int, code: int, names: list[str], delimiter: str,
    found: int, detail: str,
) -> EventDataError:
    text = lines.text(index)
    column = None
    if code == _MALFORMED:
        message = f"malformed row: expected {len(names)} fields, found {found}"
    elif code == _BAD_QUOTE:
        position = _quote_problem_field(text, delimiter)
        column = names[position] if position is not None and position < len(names) else None
        if detail.startswith("unexpected end of data"):
            message = "unmatched quote: a quoted field does not close on its line"
        else:
            message = f"bad quoting ({detail})"
    else:
        raw = lines.raw(index)
        problem = _decode_problem(raw)
        start = problem.start if problem is not None else 0
        position = _undecodable_field(raw, delimiter)
        column = names[position] if position is not None and position < len(names) else None
        message = f"not valid UTF-8 (byte 0x{raw[start]:02x}); save the file as UTF-8"
    return EventDataError(message, path=str(path), line=index + 1, column=column, value=text,
                          code=_CODES[code])


def _undecodable_field(raw: bytes, delimiter: str) -> int | None:
    """Index of the first field holding bytes that are not UTF-8 (quotes respected)."""
    text = raw.decode("utf-8", "surrogateescape")  # bad bytes become U+DC80..U+DCFF
    try:
        parts = next(csv.reader([text], delimiter=delimiter), [])
    except csv.Error:
        parts = text.split(delimiter)
    return next((k for k, part in enumerate(parts)
                 if any("\udc80" <= ch <= "\udcff" for ch in part)), None)


def _quote_problem_field(text: str, delimiter: str) -> int | None:
    """Index of the field whose quoting is broken (unclosed, or text after the closing quote)."""
    field_index, i, n = 0, 0, len(text)
    while i <= n:
        if i < n and text[i] == '"':
            j = i + 1
            while True:
                k = text.find('"', j)
                if k == -1:
                    return field_index
                if k + 1 < n and text[k + 1] == '"':
                    j = k + 2
                    continue
                break
            if k + 1 < n and text[k + 1] != delimiter:
                return field_index
            i = k + 2
        else:
            k = text.find(delimiter, i)
            if k == -1:
                return None
            i = k + 1
        field_index += 1
    return None


# ------------------------------------------------------------------------- JSON lines

_JSON_CHUNK = 4096


def _read_jsonl(
    path: Path, buf: bytes | mmap.mmap, report: LoadReport, problems: ReadProblems
) -> pl.DataFrame:
    data = bytes(buf)
    try:
        frame = pl.read_ndjson(data, infer_schema_length=None)
    except Exception:
        frame = None
    if frame is not None:
        arr = np.frombuffer(data, dtype=np.uint8)
        count = int(np.count_nonzero(arr == 10)) + (arr[-1] != 10)
        if frame.height == count:  # no blank line: row i is line i + 1
            report.rows_read = count
            numbers = np.arange(1, count + 1)
            kept = data
        else:
            frame = None
    if frame is None:
        frame, numbers, kept = _jsonl_scan(path, _Lines(data), report, problems)
    frame = _mark_json_objects(_json_as_text(frame, kept), kept)
    return frame.with_columns(pl.Series(LINE, numbers, dtype=pl.UInt32))


def _jsonl_scan(
    path: Path, lines: _Lines, report: LoadReport, problems: ReadProblems
) -> tuple[pl.DataFrame, np.ndarray, bytes]:
    """Check every line (UTF-8, valid JSON, an object), read the good ones, record the rest."""
    n = lines.count
    arr = lines.arr
    whitespace = np.isin(arr, np.array([9, 10, 13, 32], dtype=np.uint8))
    content = np.bincount(lines.line_of(np.flatnonzero(~whitespace)), minlength=n)
    status = np.where(content == 0, _BLANK, _GOOD).astype(np.int8)
    errors: dict[int, EventDataError] = {}
    candidates = np.flatnonzero(status == _GOOD)
    for chunk_start in range(0, candidates.size, _JSON_CHUNK):
        chunk = candidates[chunk_start:chunk_start + _JSON_CHUNK]
        begin, end = lines.starts[chunk[0]], lines.next_starts[chunk[-1]]
        try:
            if pl.read_ndjson(bytes(lines.buf[begin:end])).height == chunk.size:
                continue
        except Exception:
            pass
        for index in chunk.tolist():
            error = _json_line_error(path, lines, index)
            if error is not None:
                status[index] = _BAD
                errors[index] = error
    last = n - 1
    if n and not lines.terminated and last in errors and errors[last].code == "bad_json":
        status[last] = _TRUNCATED
        del errors[last]
        log.warning("%s: last line is cut short (no newline, not valid JSON); skipped", path)
        report.dropped["truncated_last_line"] += 1
    report.rows_read = n
    blank = int(np.count_nonzero(status == _BLANK))
    if blank:
        report.dropped["blank_line"] += blank
    by_code: dict[str, list[EventDataError]] = {}
    for index in sorted(errors):
        by_code.setdefault(errors[index].code or "bad_json", []).append(errors[index])
    for code, found in by_code.items():
        problems.add(code, len(found), found[0])
    good = np.flatnonzero(status == _GOOD)
    kept = lines.keep(status == _GOOD)
    frame = None
    if good.size:
        try:
            frame = pl.read_ndjson(kept, infer_schema_length=None)
        except Exception:
            frame = None
        if frame is None or frame.height != good.size:
            # Lines polars read one chunk at a time but not together (clashing value types):
            # every value as text, from Python's JSON parser.
            frame, good = _objects_frame(path, lines, good, problems)
            kept = b"".join(bytes(lines.buf[lines.starts[i]:lines.next_starts[i]]).rstrip(b"\n")
                            + b"\n" for i in good.tolist())
    if frame is None:
        frame = pl.DataFrame()
    return frame, good + 1, kept


def _objects_frame(
    path: Path, lines: _Lines, good: np.ndarray, problems: ReadProblems
) -> tuple[pl.DataFrame, np.ndarray]:
    objects, kept = [], []
    for index in good.tolist():
        error = _json_line_error(path, lines, index)
        if error is not None:
            problems.add(error.code or "bad_json", 1, error)
            continue
        objects.append(json.loads(lines.raw(index)))
        kept.append(index)
    return _frame_from_objects(objects), np.array(kept, dtype=np.int64)


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def _json_line_error(path: Path, lines: _Lines, index: int) -> EventDataError | None:
    raw = lines.raw(index)
    line = index + 1
    problem = _decode_problem(raw)
    if problem is not None:
        return EventDataError(
            f"not valid UTF-8 (byte 0x{raw[problem.start]:02x}); save the file as UTF-8",
            path=str(path), line=line, value=raw.decode("utf-8", "replace"), code="bad_encoding",
        )
    text = raw.decode("utf-8")
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        return EventDataError(f"not valid JSON: {reason}", path=str(path), line=line,
                              value=text, code="bad_json")
    if not isinstance(value, dict):
        return EventDataError(f"expected a JSON object, found {type(value).__name__}",
                              path=str(path), line=line, value=text, code="bad_json")
    return None


def _frame_from_objects(objects: list[dict]) -> pl.DataFrame:
    """Rows from parsed JSON objects, every value as text (where polars cannot read them)."""
    keys: dict[str, None] = {}
    for obj in objects:
        keys.update(dict.fromkeys(obj))
    columns = {}
    for key in keys:
        columns[key] = [_json_text(obj.get(key)) for obj in objects]
    return pl.DataFrame(columns, schema=dict.fromkeys(keys, pl.String))


def _json_text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value)


def _json_as_text(frame: pl.DataFrame, kept: bytes) -> pl.DataFrame:
    """Columns polars typed as floats or nested values are read again as text, so that ids
    stay as written (``1``, not ``1.0``) and objects can be told from strings."""
    plain = all(
        dtype in (pl.String, pl.Boolean, pl.Null) or dtype.is_integer()
        for dtype in frame.dtypes
    )
    if plain or frame.width == 0:
        return frame
    try:
        text = pl.read_ndjson(kept, schema=dict.fromkeys(frame.columns, pl.String))
    except Exception:
        return frame
    if text.height != frame.height:
        return frame
    nested = [c for c, d in zip(frame.columns, frame.dtypes, strict=True) if d.is_nested()]
    return text.with_columns(frame[c].is_not_null().alias(NESTED + c) for c in nested)


def _mark_json_objects(frame: pl.DataFrame, kept: bytes) -> pl.DataFrame:
    """Mark text cells that held a JSON object or array (polars writes them as JSON text).

    Row ``i`` of ``frame`` is line ``i`` of ``kept``; only cells that start like JSON
    containers are looked up there."""
    marks = []
    kept_lines: _Lines | None = None
    for name in data_columns(frame):
        if frame[name].dtype != pl.String or NESTED + name in frame.columns:
            continue
        looks = frame[name].str.starts_with("{") | frame[name].str.starts_with("[")
        if not looks.any():
            continue
        if kept_lines is None:
            kept_lines = _Lines(kept)
        rows = looks.arg_true().to_list()
        nested = [False] * frame.height
        for row in rows:
            try:
                value = json.loads(kept_lines.raw(row)).get(name)
            except ValueError:
                continue
            nested[row] = isinstance(value, (dict, list))
        if any(nested):
            marks.append(pl.Series(NESTED + name, nested, dtype=pl.Boolean))
    return frame.with_columns(marks) if marks else frame


# ---------------------------------------------------------------------- canonicalising


@dataclass(frozen=True)
class _Check:
    code: str
    column: str
    flag: str
    message: str


# Text fields whose missing-value markers become null (actions: in the action lookup).
_MARKED_FIELDS = ("customer", "product", "session", "category", "brand")

# Checked in this order; a row failing several checks is counted under the first.
_CHECK_ORDER = (
    "empty_customer_id", "bad_customer_id", "empty_product_id", "bad_product_id",
    "empty_action", "bad_action", "bad_timestamp", "timestamp_out_of_range", "bad_session_id",
    "bad_category", "bad_brand", "bad_price", "bad_quantity", "long_customer_id",
    "long_product_id", "long_session_id", "long_category", "long_brand",
)


def _canonicalise(
    raw: pl.DataFrame, resolved: dict[str, str], mapping: ColumnMapping, report: LoadReport,
    bounds: TimeBounds | None,
) -> tuple[pl.DataFrame, list[_Check]]:
    """The canonical columns, plus one boolean ``__flag:`` column per check that can fail."""
    exprs: list[pl.Expr] = [pl.col(LINE)]
    flags: list[pl.Expr] = []  # evaluated on the canonical columns
    checks: list[_Check] = []

    def check(code: str, column: str, flag: pl.Expr, message: str, on_raw: bool) -> None:
        # A flag is true or false, never null: a null row would be neither kept nor counted.
        (exprs if on_raw else flags).append(flag.fill_null(False).alias(_FLAG + code))
        checks.append(_Check(code, column, _FLAG + code, message))

    for fld in FIELDS:
        col = resolved.get(fld)
        name = CANONICAL_COLUMN[fld]
        if fld == "action" and mapping.constant_action is not None:
            exprs.append(pl.lit(mapping.constant_action, dtype=pl.String).alias(name))
            continue
        if col is None:
            continue
        if fld == "timestamp":
            parsed, encoding = parse_timestamps(raw[col])
            report.timestamp_encoding = encoding
            if "+" in encoding:
                log.info("%s: column %s mixes timestamp encodings (%s); each value is read "
                         "by its own form", report.path, col, encoding)
            exprs.append(pl.lit(parsed).alias(name))
            check("bad_timestamp", col, pl.col(name).is_null(), "cannot parse timestamp",
                  on_raw=False)
            if bounds is not None:
                check("timestamp_out_of_range", col, pl.lit(out_of_range(parsed, bounds)),
                      f"timestamp out of range ({bounds.describe()})", on_raw=True)
            continue
        if fld in _NUMBER_FIELDS:
            text = clean_text_or_null(col)
            number = text.cast(pl.Float64, strict=False)
            exprs.append(number.alias(name))
            bad = text.is_not_null() & (number.is_null() | number.is_infinite())
            if fld == "price":  # a negative quantity is a return; a negative price is no price
                bad = bad | (number < 0)
            check(f"bad_{fld}", col, bad, "not a finite, non-negative number" if fld == "price"
                  else "not a number", on_raw=True)
            continue
        if fld == "action":
            names, report.action_mapping = read_actions(raw[col], mapping)
            exprs.append(pl.lit(names).alias(name))
        elif fld == "category":
            exprs.append(_category_expr(raw.columns, col).alias(name))
        else:
            exprs.append(clean_text(col).alias(name))
        if fld != "action":
            limit = ID_CHARS if fld in ID_FIELDS_OF_EVENTS else TEXT_CHARS
            # On the column as written: a value built from other columns (a category from its
            # fallback, a customer from the session) is not blamed on this one.
            check(f"long_{name}", col, clean_text(col).str.len_chars() > limit,
                  f"longer than {limit:,} characters", on_raw=True)
        if fld in _ID_REASONS:
            check(f"empty_{_ID_REASONS[fld]}", col, pl.col(name).is_null(), "empty value",
                  on_raw=False)
        if NESTED + col in raw.columns:
            check(f"bad_{_ID_REASONS.get(fld, name)}", col, pl.col(NESTED + col),
                  "expected a string or a number, found a JSON object or array", on_raw=True)
    checks.sort(key=lambda c: _CHECK_ORDER.index(c.code))
    frame = raw.select(exprs)
    text_columns = [CANONICAL_COLUMN[f] for f in _MARKED_FIELDS if f in resolved]
    frame = frame.with_columns(drop_missing_markers(frame[c]) for c in text_columns)
    frame = _integral_ids(frame, report)
    if mapping.missing_customer == "session" and "session_id" in frame.columns:
        frame = _customer_from_session(frame, report)
    if flags:
        frame = frame.with_columns(flags)
    return frame, checks


#: Id columns whose float-written integers are read as integers.
_INTEGRAL_COLUMNS = ("customer_id", "product_id", "session_id", "category")
#: Prefix of a customer id taken from the session (``missing_customer="session"``), so that
#: it can never equal a customer's own id.
SESSION_CUSTOMER = "session:"


def _integral_ids(frame: pl.DataFrame, report: LoadReport) -> pl.DataFrame:
    columns = []
    for name in _INTEGRAL_COLUMNS:
        if name in frame.columns:
            fixed, count = integral_ids(frame[name])
            if count:
                report.normalised[name] += count
                columns.append(fixed)
    return frame.with_columns(columns) if columns else frame


def _customer_from_session(frame: pl.DataFrame, report: LoadReport) -> pl.DataFrame:
    """Rows without a customer id get their session's, prefixed :data:`SESSION_CUSTOMER`."""
    fill = frame["customer_id"].is_null() & frame["session_id"].is_not_null()
    count = int(fill.sum())
    if not count:
        return frame
    report.filled["customer_id_from_session"] += count
    return frame.with_columns(pl.coalesce(
        pl.col("customer_id"), pl.lit(SESSION_CUSTOMER) + pl.col("session_id")))


def _category_expr(columns: list[str], chosen: str) -> pl.Expr:
    expr = clean_text(chosen)
    for primary, fallback in CATEGORY_FALLBACKS:
        if chosen == primary and fallback in columns:
            # A missing-value marker must not hide the fallback.
            expr = pl.coalesce(clean_text_or_null(chosen), clean_text_or_null(fallback))
    return expr


# ------------------------------------------------------------------------ validating


#: Checks of a value the export says is unknown (an empty cell, ``NA``, ``null``...). The
#: row is well-formed, so it is dropped and counted even with ``on_error="raise"``, unless
#: such rows are most of the file: reading the rest would then misrepresent it.
MISSING_CODES = ("empty_customer_id", "empty_product_id", "empty_action")
_MISSING_WHAT = {"empty_customer_id": "customer id", "empty_product_id": "product id",
                 "empty_action": "action"}


@dataclass(frozen=True)
class _Missing:
    """An id (or the action) missing in most rows: where it starts and what reads it."""

    check: _Check
    count: int
    rows: int
    line: int
    value: object
    remedy: str  # an option that reads the rows, or ""

    def summary(self) -> str:
        return (f"no {_MISSING_WHAT[self.check.code]} in {self.count:,} of {self.rows:,} rows "
                f"({self.count / self.rows:.0%})")

    def error(self, path: str) -> EventDataError:
        remedy = f"{self.remedy}, " if self.remedy else ""
        return EventDataError(f"{self.summary()}, from this line on; {remedy}--on-error skip "
                              "drops them", path=path, line=self.line, column=self.check.column,
                              value=self.value, code=self.check.code)

    def warning(self) -> str:
        remedy = f"; {self.remedy}" if self.remedy else ""
        return (f"{self.summary()}, dropped (the first: line {self.line}, value "
                f"{self.value!r}){remedy}")


def _validate(
    frame: pl.DataFrame, raw: pl.DataFrame, checks: list[_Check], on_error: OnError,
    report: LoadReport, problems: ReadProblems,
) -> pl.DataFrame:
    flags = [c.flag for c in checks]
    any_bad = (frame.select(pl.any_horizontal(flags)).to_series() if flags
               else pl.Series([False] * frame.height, dtype=pl.Boolean))
    clean = not any_bad.any()
    mostly_missing = [] if clean else _mostly_missing(frame, raw, checks, report.rows_read)
    if on_error == "raise":
        found = [m.error(report.path) for m in mostly_missing]
        if problems.first is not None:
            found.append(problems.first)
        hard = [c for c in checks if c.code not in MISSING_CODES]
        if hard and not clean:
            bad = frame.select(pl.any_horizontal(c.flag for c in hard)).to_series()
            if bad.any():
                found.append(_value_error(frame, raw, hard, int(bad.arg_true()[0]),
                                          report.path))
        if found:
            raise min(found, key=_line_of)
    else:
        _count_problems(problems, report)
        for missing in mostly_missing:
            report.warn(missing.warning())
    if clean:
        return frame.drop(flags)
    counted = pl.repeat(False, frame.height, eager=True)
    for check in checks:
        hits = frame[check.flag] & ~counted
        count = int(hits.sum())
        if count:
            report.dropped[check.code] += count
            row = int(hits.arg_true()[0])
            report.examples.setdefault(
                check.code, str(_value_error(frame, raw, [check], row, report.path))
            )
        counted = counted | frame[check.flag]
    return frame.filter(~any_bad).drop(flags)


def _mostly_missing(frame: pl.DataFrame, raw: pl.DataFrame, checks: list[_Check],
                    rows_read: int) -> list[_Missing]:
    """Each id (or the action) missing in more than half of the rows read."""
    rows = max(rows_read, frame.height)
    found = []
    for check in checks:
        if check.code not in MISSING_CODES:
            continue
        count = int(frame[check.flag].sum())
        if 2 * count <= rows:
            continue
        row = int(frame[check.flag].arg_true()[0])
        remedy = ""
        if check.code == "empty_customer_id" and "session_id" in frame.columns:
            remedy = "--missing-customer session reads them with the session id as the customer"
        elif check.code == "empty_action":
            remedy = "--action NAME gives every row one action"
        value = raw[check.column][row]
        if value is not None and not isinstance(value, (str, int, float)):
            value = str(value)
        found.append(_Missing(check, count, rows, int(frame[LINE][row]), value, remedy))
    return found


def _value_error(
    frame: pl.DataFrame, raw: pl.DataFrame, checks: list[_Check], row: int, path: str
) -> EventDataError:
    for check in checks:
        if frame[check.flag][row]:
            value = raw[check.column][row]
            message = check.message
            if check.code.startswith("empty_") and value is not None and str(value).strip():
                message = "missing value"
            elif check.code == "timestamp_out_of_range":
                read_as = frame.select(
                    pl.col("timestamp").gather(row).dt.cast_time_unit(TIME_UNIT)
                    .dt.to_string("%Y-%m-%dT%H:%M:%S%.f%:z")
                ).item()
                message = f"{message}; read as {read_as}"
            if value is not None and not isinstance(value, (str, int, float)):
                value = str(value)
            return EventDataError(message, path=path, line=int(frame[LINE][row]),
                                  column=check.column, value=value, code=check.code)
    raise AssertionError("no failing check in the row")


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
    times = frame["timestamp"]
    if ((times.dt.second() == 0) & (times.dt.nanosecond() == 0)).all():
        log.warning("%s: the timestamps have no seconds, so some of the %d row(s) dropped as "
                    "exact duplicates may be real repeats at the same timestamp",
                    report.path, repeated.len())
    keep = pl.int_range(pl.len()).is_in(repeated.implode()).not_()
    return frame.filter(keep)


@dataclass
class CanonicalRows:
    """What :func:`canonicalise_rows` made of a batch of rows: the valid events (in input
    order, ``LINE`` kept), every refused row counted by reason with the first of each as a
    message, and the first refused row as the error ``on_error="raise"`` stops at."""

    events: pl.DataFrame
    dropped: Counter
    examples: dict[str, str]
    first_error: EventDataError | None
    timestamp_encoding: str
    report: LoadReport | None = None


def canonicalise_rows(
    raw: pl.DataFrame, resolved: dict[str, str], mapping: ColumnMapping, path: str,
    time_bounds: TimeBounds | None = DEFAULT_TIME_BOUNDS,
) -> CanonicalRows:
    """Map and validate one batch of rows already split into fields (text columns, plus
    ``LINE`` numbering them): the checks and messages of :func:`read_events`, for engines
    that read a file in parts (exact duplicates are not removed here: they are found once
    journeys are together)."""
    report = LoadReport(path=path)
    events, checks = _canonicalise(raw, resolved, mapping, report, time_bounds)
    first_error = None
    try:
        kept = _validate(events, raw, checks, "raise", report, ReadProblems(path))
    except EventDataError as exc:
        first_error = exc
        kept = _validate(events, raw, checks, "skip", report, ReadProblems(path))
    return CanonicalRows(kept, report.dropped, report.examples, first_error,
                         report.timestamp_encoding, report)
