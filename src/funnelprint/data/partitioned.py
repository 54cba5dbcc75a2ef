"""Event logs larger than memory: read in chunks, validated, and written to disk as Parquet
partitions of whole customers; then read back one partition at a time as journeys.

:func:`partition_events` reads a CSV (optionally gzip'd) or Parquet file a chunk of lines at
a time. Each chunk is split into fields by polars and mapped and validated by
:func:`~funnelprint.data.load.canonicalise_rows` — the reader's own checks and messages,
with the file's line numbers; a chunk polars cannot split line for line is checked line by
line (field count, quotes, UTF-8) the way the reader does. Valid events go to the partition
of their customer (a fixed hash of the id), so that every partition holds whole journeys.
:meth:`PartitionedLog.journeys` then gives each partition as the local pipeline's event
table: sorted into journeys, exact duplicates removed, sessionized, bots dropped — what
:func:`~funnelprint.data.pipeline.prepare_events` gives for those customers. Memory is
set by the chunk and the partition size, not by the file.

Customers are sampled by a hash of their id (:func:`in_sample`), the same rule on every
engine, so a sample drawn here and one drawn on Spark are the same customers.
"""

from __future__ import annotations

import csv
import gzip
import io
import logging
import shutil
import tempfile
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from funnelprint.data.errors import EventDataError, input_file
from funnelprint.data.load import (
    _HASH_SEED,
    DEFAULT_TIME_BOUNDS,
    LINE,
    SEED_ORDER,
    LoadReport,
    OnError,
    canonicalise_rows,
    detect_format,
    sort_journeys,
)
from funnelprint.data.pipeline import EventLog
from funnelprint.data.schema import (
    CANONICAL_COLUMN,
    REQUIRED_FIELDS,
    ColumnMapping,
    looks_like_header,
)
from funnelprint.data.sessions import SessionConfig, SessionReport, sessionize
from funnelprint.data.timestamps import TimeBounds

log = logging.getLogger(__name__)

#: Bytes of the file read and validated at a time.
CHUNK_BYTES = 64 * 2**20
#: Partition key seed (any fixed value: the partitions only need to hold whole customers).
_PARTITION_SEED = 7


def in_sample(customer_ids: pl.Series, seed: int, fraction: float) -> pl.Series:
    """Whether each customer is in the hash sample holding ``fraction`` of the customers:
    ``crc32("<seed>:<id>") < fraction * 2**32`` (Spark's ``crc32`` gives the same)."""
    threshold = int(fraction * 2**32)
    unique = customer_ids.unique()
    chosen = unique.filter(pl.Series([zlib.crc32(f"{seed}:{c}".encode()) < threshold
                                      for c in unique.to_list()], dtype=pl.Boolean))
    return customer_ids.is_in(chosen.implode())


def csv_layout(path: Path, mapping: ColumnMapping) -> tuple[list[str], bool, str]:
    """Column names, whether the first line is a header, and the delimiter, decided from
    the first line as the reader decides them."""
    opener: Any = gzip.open if path.suffix.lower() == ".gz" else open
    with opener(path, "rt", encoding="utf-8", errors="replace", newline="") as fh:
        first = fh.readline().lstrip("\ufeff").rstrip("\r\n")
    if not first.strip():
        raise EventDataError("file is empty or starts with a blank line", path=str(path),
                             line=1)

    def fields(delimiter: str) -> list[str]:
        return next(csv.reader([first], delimiter=delimiter), [])

    delimiter = max((",", "\t", ";", "|"), key=lambda d: len(fields(d)))
    found = [f.strip() for f in fields(delimiter)]
    header = looks_like_header(found)
    if mapping.names is not None:
        names = list(mapping.names)
    elif header:
        names = found
    elif len(found) == len(SEED_ORDER):
        names = [CANONICAL_COLUMN[f] for f in SEED_ORDER]
    else:
        raise EventDataError(f"no header recognised in the first line ({len(found)} fields); "
                             "name the columns with --names a,b,c,...", path=str(path), line=1)
    if len(names) != len(found):
        raise EventDataError(f"--names gives {len(names)} columns but the first line has "
                             f"{len(found)} fields", path=str(path), line=1)
    return names, header, delimiter


@dataclass
class PartitionedLog:
    """Validated events of one file in Parquet partitions of whole customers."""

    directory: Path
    parts: list[Path]
    report: LoadReport
    sessions: SessionConfig
    session_report: SessionReport = field(default_factory=SessionReport)

    @property
    def events(self) -> int:
        return self.report.events

    def read(self, index: int) -> pl.DataFrame:
        """Partition ``index``'s validated events in file order (``LINE`` kept)."""
        path = self.parts[index]
        return pl.read_parquet(path) if path.exists() else pl.DataFrame()

    def journeys(self, index: int, fraction: float = 1.0, seed: int = 0) -> EventLog:
        """Partition ``index`` as the local pipeline's event log for its customers (those
        of the :func:`in_sample` hash sample at ``fraction`` < 1): journeys sorted, exact
        duplicates removed (counted in ``report``), sessions numbered, bots and outlier
        sessions dropped (counted in ``session_report``)."""
        frame = self.read(index)
        if fraction < 1.0 and frame.height:
            frame = frame.filter(in_sample(frame["customer_id"], seed, fraction))
        if not frame.height:
            empty = LoadReport(path=self.report.path)
            return EventLog(frame, empty, SessionReport())
        frame = sort_journeys(frame.sort(LINE))
        data = [c for c in frame.columns if c != LINE]
        kept = frame.unique(subset=data, keep="first", maintain_order=True)
        report = LoadReport(path=self.report.path, events=kept.height)
        if kept.height < frame.height:
            report.dropped["duplicate"] += frame.height - kept.height
        events, sessions = sessionize(kept.drop(LINE), self.sessions, presorted=True)
        return EventLog(events, report, sessions)

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


class _Partitions:
    """One Parquet writer per partition, opened at its first rows."""

    def __init__(self, directory: Path, count: int) -> None:
        self.paths = [directory / f"part-{i:05d}.parquet" for i in range(count)]
        self.writers: list[Any] = [None] * count

    def append(self, frame: pl.DataFrame) -> None:
        import pyarrow.parquet as pq

        count = len(self.paths)
        key = (frame["customer_id"].hash(_PARTITION_SEED) % count).cast(pl.Int64)
        for (index,), part in frame.with_columns(key.alias("__part")).partition_by(
                "__part", as_dict=True).items():
            table = part.drop("__part").to_arrow()
            i = int(index)
            if self.writers[i] is None:
                self.writers[i] = pq.ParquetWriter(self.paths[i], table.schema,
                                                   compression="lz4")
            self.writers[i].write_table(table)

    def close(self) -> None:
        for writer in self.writers:
            if writer is not None:
                writer.close()


def _line_chunks(path: Path, header: bool, chunk_bytes: int) -> Iterator[tuple[int, bytes]]:
    """(number of the chunk's first line, bytes of whole lines) through the file."""
    opener: Any = gzip.open if path.suffix.lower() == ".gz" else open
    line = 1
    with opener(path, "rb") as fh:
        if header:
            fh.readline()
            line = 2
        rest = b""
        while True:
            block = fh.read(chunk_bytes)
            if not block:
                if rest:
                    yield line, rest
                return
            block = rest + block
            cut = block.rfind(b"\n") + 1
            if cut == 0:
                rest = block
                continue
            chunk, rest = block[:cut], block[cut:]
            yield line, chunk
            line += chunk.count(b"\n")


def _split_chunk(chunk: bytes, first_line: int, names: list[str], delimiter: str,
                 path: str, report: LoadReport, is_last: bool) -> tuple[pl.DataFrame,
                                                                       EventDataError | None]:
    """Fields of every line of a chunk (text columns, ``LINE`` numbered); lines polars
    cannot split one for one are checked one by one with the reader's codes."""
    blank = np.zeros(0, dtype=bool)
    try:
        frame = pl.read_csv(io.BytesIO(chunk), has_header=False, new_columns=names,
                            separator=delimiter, infer_schema=False)
        lines = chunk.count(b"\n") + (not chunk.endswith(b"\n"))
        blank = frame.select(pl.all_horizontal(pl.all().is_null())).to_series().to_numpy()
        if frame.height == lines and not (frame[names[-1]].is_null().to_numpy() & ~blank).any():
            if blank.any():
                report.dropped["blank_line"] += int(blank.sum())
            numbered = frame.with_columns(pl.Series(LINE, np.arange(lines) + first_line))
            return numbered.filter(~pl.Series(blank)), None
    except Exception:  # polars' own message does not name the line: find it below
        pass
    return _scan_lines(chunk, first_line, names, delimiter, path, report, is_last)


def _scan_lines(chunk: bytes, first_line: int, names: list[str], delimiter: str, path: str,
                report: LoadReport, is_last: bool) -> tuple[pl.DataFrame,
                                                            EventDataError | None]:
    rows: list[list[str]] = []
    numbers: list[int] = []
    first_error: EventDataError | None = None
    texts = chunk.split(b"\n")
    if texts and texts[-1] == b"":
        texts.pop()
    for offset, raw in enumerate(texts):
        number = first_line + offset
        raw = raw.rstrip(b"\r")
        code, message, column = "", "", None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            code = "bad_encoding"
            message = f"not valid UTF-8 (byte 0x{raw[exc.start]:02x}); save the file as UTF-8"
            text = raw.decode("utf-8", "replace")
        if not code and not text.strip():
            report.dropped["blank_line"] += 1
            continue
        if not code:
            try:
                fields = next(csv.reader([text], delimiter=delimiter, strict=True), [])
            except csv.Error:
                code = "bad_quote"
                message = "unmatched quote: a quoted field does not close on its line"
            else:
                if len(fields) == len(names):
                    rows.append(fields)
                    numbers.append(number)
                    continue
                code = "malformed_row"
                message = f"malformed row: expected {len(names)} fields, found {len(fields)}"
        if is_last and offset == len(texts) - 1 and not chunk.endswith(b"\n"):
            log.warning("%s: last line is cut short (no line break, incomplete record); "
                        "skipped", path)
            report.dropped["truncated_last_line"] += 1
            continue
        error = EventDataError(message, path=path, line=number, column=column, value=text,
                               code=code)
        report.dropped[code] += 1
        report.examples.setdefault(code, str(error))
        first_error = first_error or error
    columns = {name: [row[j] for row in rows] for j, name in enumerate(names)}
    frame = pl.DataFrame(columns, schema=dict.fromkeys(names, pl.String))
    return frame.with_columns(pl.Series(LINE, numbers, dtype=pl.Int64)), first_error


def _csv_batches(path: Path, mapping: ColumnMapping, report: LoadReport, chunk_bytes: int
                 ) -> Iterator[tuple[pl.DataFrame, EventDataError | None, list[str]]]:
    names, header, delimiter = csv_layout(path, mapping)
    chunks = _line_chunks(path, header, chunk_bytes)
    current = next(chunks, None)
    while current is not None:
        following = next(chunks, None)
        first_line, chunk = current
        frame, problem = _split_chunk(chunk, first_line, names, delimiter, str(path), report,
                                      following is None)
        report.rows_read += chunk.count(b"\n") + (not chunk.endswith(b"\n"))
        yield frame, problem, names
        current = following


def _parquet_batches(path: Path, report: LoadReport
                     ) -> Iterator[tuple[pl.DataFrame, EventDataError | None, list[str]]]:
    import pyarrow.parquet as pq

    source = pq.ParquetFile(path)
    names = source.schema_arrow.names
    line = 1
    for batch in source.iter_batches(batch_size=2_000_000):
        frame = pl.from_arrow(batch)
        assert isinstance(frame, pl.DataFrame)
        report.rows_read += frame.height
        yield frame.with_columns(pl.Series(LINE, np.arange(frame.height) + line)), None, names
        line += frame.height


def partition_events(path: str | Path, mapping: ColumnMapping | None = None,
                     on_error: OnError = "raise", sessions: SessionConfig | None = None,
                     partitions: int = 16, work: Path | None = None,
                     chunk_bytes: int = CHUNK_BYTES,
                     time_bounds: TimeBounds | None = DEFAULT_TIME_BOUNDS) -> PartitionedLog:
    """Read, validate and partition an event file (see the module docstring) into a new
    directory under ``work`` (default: the system's temporary directory)."""
    path = input_file(path, on_error)
    mapping = mapping or ColumnMapping()
    fmt = detect_format(path)
    if fmt == "jsonl":
        raise EventDataError("JSON lines are read whole; convert the file to CSV or Parquet "
                             "to read it in parts", path=str(path))
    report = LoadReport(path=str(path), format=fmt)
    directory = Path(tempfile.mkdtemp(prefix="funnelprint-parts-", dir=work))
    writers = _Partitions(directory, partitions)
    encodings: set[str] = set()
    try:
        batches = (_parquet_batches(path, report) if fmt == "parquet"
                   else _csv_batches(path, mapping, report, chunk_bytes))
        resolved: dict[str, str] | None = None
        for raw, problem, names in batches:
            if resolved is None:
                resolved = resolve_required(mapping, names, path)
                report.mapping = {CANONICAL_COLUMN[f]: c for f, c in resolved.items()}
            rows = canonicalise_rows(raw, resolved, mapping, str(path), time_bounds)
            first = min((e for e in (problem, rows.first_error) if e is not None),
                        key=lambda e: e.line or 0, default=None)
            if first is not None and on_error == "raise":
                raise first
            report.dropped.update(rows.dropped)
            for code, example in rows.examples.items():
                report.examples.setdefault(code, example)
            if rows.timestamp_encoding:
                encodings.update(rows.timestamp_encoding.split("+"))
            if rows.report is not None:
                _merge_notes(report, rows.report)
            report.events += rows.events.height
            writers.append(rows.events)
            log.info("%s: %d rows read", path, report.rows_read)
    except BaseException:
        writers.close()
        shutil.rmtree(directory, ignore_errors=True)
        raise
    writers.close()
    report.timestamp_encoding = "+".join(sorted(encodings))
    for reason, count in sorted(report.dropped.items()):
        first_seen = report.examples.get(reason)
        log.warning("%s: dropped %d row(s): %s%s", path, count, reason,
                    f"; first: {first_seen}" if first_seen else "")
    return PartitionedLog(directory, writers.paths, report, sessions or SessionConfig())


def _merge_notes(report: LoadReport, batch: LoadReport) -> None:
    """What the reader noted about a batch besides drops (renamed actions, ids written as
    floats, filled values, whole-batch warnings), added to the file's report."""
    for name in ("normalised", "filled"):
        getattr(report, name).update(getattr(batch, name, {}))
    report.action_mapping.update(getattr(batch, "action_mapping", {}))
    for warning in getattr(batch, "warnings", []):
        if warning not in report.warnings:
            report.warnings.append(warning)


def resolve_required(mapping: ColumnMapping, names: list[str], path: Path) -> dict[str, str]:
    """The file's columns resolved to canonical fields; a missing required one is an error
    naming the file's columns and the ``--columns`` option."""
    resolved = mapping.resolve(names)
    missing = [f for f in REQUIRED_FIELDS if f not in resolved]
    if missing:
        wanted = ", ".join(CANONICAL_COLUMN[f] for f in missing)
        raise EventDataError(
            f"missing required column(s) {wanted}; the file has {', '.join(names)} "
            "(map them with --columns customer=COL,timestamp=COL,action=COL,product=COL)",
            path=str(path))
    return resolved


@dataclass
class Sample:
    """The events of a customer sample of a partitioned log, in the order the local
    pipeline puts them (customers by the reader's hash order, journeys in session order,
    sessions numbered from 0), and what reading every partition removed."""

    events: pl.DataFrame
    fraction: float
    dropped: Counter


def sample_journeys(log_: PartitionedLog, fraction: float, seed: int = 0) -> Sample:
    """Journeys of the customers :func:`in_sample` keeps (every customer at ``fraction``
    1), gathered from every partition."""
    frames = []
    dropped: Counter = Counter()
    for index in range(len(log_.parts)):
        part = log_.journeys(index, fraction, seed)
        dropped.update(part.dropped)
        log_.session_report.dropped_events.update(part.session_report.dropped_events)
        events = part.events
        if events.height:
            frames.append(events)
    if not frames:
        return Sample(pl.DataFrame(), fraction, dropped)
    events = pl.concat(frames, how="diagonal_relaxed")
    del frames
    events = events.sort(customer_order(events["customer_id"]), maintain_order=True)
    change = (pl.col("customer_id") != pl.col("customer_id").shift(1)) | (
        pl.col("session") != pl.col("session").shift(1))
    return Sample(events.with_columns((change.fill_null(True).cum_sum() - 1).cast(pl.Int64)
                                      .alias("session")), fraction, dropped)


def customer_order(customer_ids: pl.Series) -> pl.Series:
    """The sort key that puts customers in the order :func:`~funnelprint.data.load.
    sort_journeys` does (a fixed hash of the id; the id itself after a collision)."""
    key = customer_ids.hash(_HASH_SEED)
    if key.n_unique() != customer_ids.n_unique():
        return customer_ids
    return key


def partitions_for(file_bytes: int, memory_bytes: int) -> int:
    """Partitions so that one partition's journeys (about 40 bytes of file and 1 KB of
    working memory per event) take under a tenth of the memory budget."""
    events = file_bytes / 40
    per_part = max(100_000, memory_bytes / 10 / 1000)
    return int(max(1, min(4096, np.ceil(events / per_part))))


def parse_memory(text: str) -> int:
    """``6GB``, ``512MB``, ``2.5G`` → bytes."""
    units = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
    clean = text.strip().upper().removesuffix("B").removesuffix("I")
    try:
        if clean and clean[-1] in units:
            value = float(clean[:-1]) * units[clean[-1]]
        else:
            value = float(clean)
    except ValueError:
        raise ValueError(f"--memory {text!r}: expected a size such as 6GB or 512MB") from None
    if value < 256 * 2**20:
        raise ValueError(f"--memory {text}: at least 256MB")
    return int(value)


__all__ = ["CHUNK_BYTES", "PartitionedLog", "Sample", "csv_layout", "customer_order",
           "in_sample", "parse_memory", "partition_events", "partitions_for", "resolve_required",
           "sample_journeys"]
