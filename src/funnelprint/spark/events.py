"""Event files into customer journeys on Spark: the reader's checks, exact duplicates,
sessions and the bot filter, as the local pipeline does them.

Spark splits the file into fields (CSV or Parquet); each batch of rows is then mapped and
validated by :func:`~funnelprint.data.load.canonicalise_rows` — the local reader's own
checks and messages — on the executors. Exact duplicates, 30-minute sessions (window
functions over each customer's events in time order, ties in file order), the bot and
session-length filters are Spark SQL. What comes out is what
:func:`~funnelprint.data.pipeline.prepare_events` gives locally: the same events, in the
same sessions, every removal counted by reason.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from funnelprint.data.errors import EventDataError, input_file
from funnelprint.data.load import (
    DEFAULT_TIME_BOUNDS,
    LINE,
    OnError,
    canonicalise_rows,
    detect_format,
)
from funnelprint.data.partitioned import csv_layout, resolve_required
from funnelprint.data.schema import (
    CANONICAL_COLUMN,
    ColumnMapping,
)
from funnelprint.data.sessions import MIN_EVENTS_FOR_RATE, SessionConfig
from funnelprint.data.timestamps import TimeBounds

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession

POS = "__pos"
SESSION = "session"
_PROBLEM, _COUNT, _DETAIL = "__problem", "__count", "__detail"
_CORRUPT = "__corrupt"
#: Marks the summary row that carries a batch's first refused row (for ``raise``).
FIRST = "__first"
_NUMBERS = ("price", "quantity")


@dataclass
class SparkEvents:
    """Prepared events on Spark (``customer_id, timestamp`` (microseconds since the epoch,
    UTC), ``action, product_id``, the optional fields the file has, ``session``, and
    ``__pos``, the row's place in the file) and what was read and removed."""

    frame: DataFrame
    path: str
    rows_read: int = 0
    events: int = 0
    dropped: Counter = field(default_factory=Counter)
    columns: tuple[str, ...] = ()


def _raw_frame(spark: SparkSession, path: Path, mapping: ColumnMapping
               ) -> tuple[DataFrame, list[str], int]:
    """The file's rows split into fields, ``__pos`` numbering them in file order; the
    columns and the number of header lines."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType, StructField, StructType

    fmt = detect_format(path)
    if fmt == "parquet":
        raw = spark.read.parquet(str(path))
        names, header = list(raw.columns), 0
    elif fmt == "csv":
        names, has_header, delimiter = csv_layout(path, mapping)
        schema = StructType([StructField(n, StringType()) for n in names]
                            + [StructField(_CORRUPT, StringType())])
        raw = spark.read.csv(str(path), schema=schema, header=has_header, sep=delimiter,
                             quote='"', escape='"', mode="PERMISSIVE",
                             columnNameOfCorruptRecord=_CORRUPT, enforceSchema=True,
                             ignoreLeadingWhiteSpace=False, ignoreTrailingWhiteSpace=False)
        header = int(has_header)
    else:
        raise EventDataError("the spark engine reads CSV and Parquet files; convert JSON "
                             "lines first, or use the local engine", path=str(path))
    return raw.withColumn(POS, F.monotonically_increasing_id()), names, header


def _output_schema(fields_present: list[str]) -> Any:
    from pyspark.sql.types import DoubleType, LongType, StringType, StructField, StructType

    columns = []
    for fld in fields_present:
        name = CANONICAL_COLUMN[fld]
        kind = LongType() if fld == "timestamp" else DoubleType() if fld in _NUMBERS \
            else StringType()
        columns.append(StructField(name, kind))
    return StructType([*columns, StructField(POS, LongType()), StructField(_PROBLEM, StringType()),
                       StructField(_COUNT, LongType()), StructField(_DETAIL, StringType())])


def _error_detail(error: EventDataError) -> str:
    value = error.value if isinstance(error.value, (str, int, float)) or error.value is None \
        else str(error.value)
    return json.dumps({"message": error.reason, "column": error.column, "value": value,
                       "code": error.code})


def _canonical_batches(batches: Iterator[pa.RecordBatch], resolved: dict[str, str],
                       mapping: ColumnMapping, path: str, bounds: TimeBounds | None,
                       width: int, out_columns: list[str]) -> Iterator[pa.RecordBatch]:
    """One Spark partition: valid events, then one summary row per refusal reason."""
    import pyarrow as pa

    def summary(code: str, count: int, pos: int, detail: str) -> pa.RecordBatch:
        row: dict[str, list[Any]] = {c: [None] for c in out_columns}
        row |= {POS: [pos], _PROBLEM: [code], _COUNT: [count], _DETAIL: [detail]}
        return pa.RecordBatch.from_pydict(row)

    for batch in batches:
        frame = pl.from_arrow(batch)
        assert isinstance(frame, pl.DataFrame)
        if _CORRUPT in frame.columns:
            corrupt = frame[_CORRUPT].is_not_null()
            if corrupt.any():
                bad = frame.filter(corrupt)
                text = str(bad[_CORRUPT][0])
                found = len(next(csv.reader([text]), []))
                detail = json.dumps({"message": f"malformed row: expected {width} fields, "
                                                f"found {found}", "column": None,
                                     "value": text, "code": "malformed_row"})
                yield summary("malformed_row", bad.height, int(bad[POS][0]), detail)
                yield summary(FIRST, 1, int(bad[POS][0]), detail)
                frame = frame.filter(~corrupt)
            frame = frame.drop(_CORRUPT)
        rows = canonicalise_rows(frame.rename({POS: LINE}), resolved, mapping, path, bounds)
        for code, count in rows.dropped.items():
            yield summary(code, count, -1, json.dumps(rows.examples.get(code, "")))
        if rows.first_error is not None:
            line = rows.first_error.line
            yield summary(FIRST, 1, -1 if line is None else int(line),
                          _error_detail(rows.first_error))
        events = rows.events.rename({LINE: POS}).with_columns(
            pl.col("timestamp").dt.epoch("us"),
            *(pl.col(c).cast(pl.Float64) for c in _NUMBERS if c in rows.events.columns),
            pl.lit(None, pl.String).alias(_PROBLEM), pl.lit(None, pl.Int64).alias(_COUNT),
            pl.lit(None, pl.String).alias(_DETAIL),
        ).select(*out_columns, POS, _PROBLEM, _COUNT, _DETAIL)
        if events.height:
            yield from events.with_columns(pl.col(POS).cast(pl.Int64)).to_arrow().to_batches()


def read_journeys(spark: SparkSession, path: str | Path, work: Path,
                  mapping: ColumnMapping | None = None, on_error: OnError = "raise",
                  sessions: SessionConfig | None = None,
                  time_bounds: TimeBounds | None = DEFAULT_TIME_BOUNDS) -> SparkEvents:
    """Read, validate, de-duplicate and sessionize an event file on Spark; the validated
    rows are kept as Parquet under ``work``."""
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import to_arrow_schema

    mapping = mapping or ColumnMapping()
    sessions = sessions or SessionConfig()
    path = input_file(path)
    raw, names, header = _raw_frame(spark, path, mapping)
    resolved = resolve_required(mapping, names, path)
    present = [f for f in CANONICAL_COLUMN if f in resolved]
    out_columns = [CANONICAL_COLUMN[f] for f in present]
    schema = _output_schema(present)
    arrow_schema = to_arrow_schema(schema)
    text_path = str(path)

    def canonical(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in _canonical_batches(batches, resolved, mapping, text_path, time_bounds,
                                        len(names), out_columns):
            yield batch.cast(arrow_schema)

    checked = work / "checked"
    raw.mapInArrow(canonical, schema).write.mode("overwrite").parquet(str(checked))
    table = spark.read.parquet(str(checked))
    problems = table.filter(F.col(_PROBLEM).isNotNull()).collect()
    result = SparkEvents(table, str(path), columns=tuple(out_columns))
    firsts = [p for p in problems if p[_PROBLEM] == FIRST]
    if on_error == "raise" and firsts:
        first = min(firsts, key=lambda p: p[POS])
        detail = json.loads(first[_DETAIL])
        line = raw.filter(F.col(POS) < first[POS]).count() + 1 + header
        raise EventDataError(detail["message"], path=str(path), line=line,
                             column=detail["column"], value=detail["value"],
                             code=detail["code"])
    for problem in problems:
        if problem[_PROBLEM] != FIRST:
            result.dropped[problem[_PROBLEM]] += int(problem[_COUNT])
    events = table.filter(F.col(_PROBLEM).isNull()).drop(_PROBLEM, _COUNT, _DETAIL)
    read = events.count()
    result.rows_read = read + sum(result.dropped.values())
    events = _drop_duplicates(events, out_columns, result)
    events = _sessionize(events, sessions, result)
    result.frame = events
    return result


def _drop_duplicates(events: DataFrame, columns: list[str], result: SparkEvents) -> DataFrame:
    """Exact duplicate events (every field equal): the first in file order is kept."""
    from pyspark.sql import functions as F

    grouped = events.groupBy(*columns).agg(F.min(POS).alias(POS), F.count("*").alias("__n"))
    repeats = grouped.agg(F.sum(F.col("__n") - 1)).first()
    twice = int(repeats[0] or 0) if repeats is not None else 0
    if twice:
        result.dropped["duplicate"] += twice
        return grouped.drop("__n")
    return events


def _sessionize(events: DataFrame, config: SessionConfig, result: SparkEvents) -> DataFrame:
    """Session numbers (the rule of :func:`~funnelprint.data.sessions.sessionize`: a new
    session after ``gap_minutes`` idle or at a change of the file's session id), the bot and
    length filters, and each session's first event's place as its number."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    journey = Window.partitionBy("customer_id").orderBy("timestamp", POS)
    gap_us = int(config.gap_minutes * 60_000_000)
    previous = F.lag("timestamp").over(journey)
    new = (previous.isNull() | ((F.col("timestamp") - previous) > gap_us)).cast("long")
    frame = events.withColumn("__new", new).withColumn(
        "__gap", F.sum("__new").over(journey.rowsBetween(Window.unboundedPreceding, 0)) - 1)
    frame = frame.withColumn("__rank", F.row_number().over(journey))
    if config.use_session_column and "session_id" in events.columns:
        key = F.coalesce(F.col("session_id"),
                         F.concat(F.lit("\x00gap"), F.col("__gap").cast("string")))
    else:
        key = F.col("__gap").cast("string")
    frame = frame.withColumn("__key", key)
    per_session = Window.partitionBy("customer_id", "__key")
    frame = frame.withColumn(SESSION, F.min("__rank").over(per_session).cast("long"))
    frame = frame.drop("__new", "__gap", "__rank", "__key")
    frame = _drop_bots(frame, config, result)
    if config.min_session_length > 1:
        size = F.count("*").over(Window.partitionBy("customer_id", SESSION))
        frame = frame.withColumn("__size", size)
        short = frame.filter(F.col("__size") < config.min_session_length).count()
        if short:
            result.dropped["short_session"] += short
        frame = frame.filter(F.col("__size") >= config.min_session_length).drop("__size")
    return frame


def _drop_bots(frame: DataFrame, config: SessionConfig, result: SparkEvents) -> DataFrame:
    from pyspark.sql import functions as F

    if config.max_events_per_minute is None and config.max_events_per_session is None:
        return frame
    stats = frame.groupBy("customer_id", SESSION).agg(
        F.count("*").alias("n"),
        ((F.max("timestamp") - F.min("timestamp")) / 60_000_000.0).alias("minutes"))
    if config.max_events_per_minute is not None:
        rate = F.col("n") / F.greatest(F.col("minutes"), F.lit(1.0))
        bots = stats.filter((F.col("n") >= MIN_EVENTS_FOR_RATE)
                            & (rate > config.max_events_per_minute)).select("customer_id")
        bots = bots.distinct()
        hit = frame.join(bots, "customer_id", "left_semi").count()
        if hit:
            result.dropped["bot_rate"] += hit
            frame = frame.join(bots, "customer_id", "left_anti")
            stats = stats.join(bots, "customer_id", "left_anti")
    if config.max_events_per_session is not None:
        long_sessions = stats.filter(F.col("n") > config.max_events_per_session).select(
            "customer_id", SESSION)
        hit = frame.join(long_sessions, ["customer_id", SESSION], "left_semi").count()
        if hit:
            result.dropped["long_session"] += hit
            frame = frame.join(long_sessions, ["customer_id", SESSION], "left_anti")
    return frame


def to_local(table: pa.Table | pl.DataFrame) -> pl.DataFrame:
    """Spark rows of whole customers as the local pipeline's event table: sorted into
    journeys as :func:`~funnelprint.data.load.sort_journeys` sorts them (ties in file
    order), sessions contiguous, timestamps as UTC datetimes."""
    from funnelprint.data.load import sort_journeys
    from funnelprint.data.timestamps import TIMESTAMP_DTYPE

    frame = table if isinstance(table, pl.DataFrame) else pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    frame = frame.sort(POS).with_columns(
        pl.from_epoch(pl.col("timestamp"), time_unit="us").cast(TIMESTAMP_DTYPE))
    frame = sort_journeys(frame).with_row_index("__row")
    first = pl.col("__row").min().over("customer_id")
    frame = frame.sort(first, SESSION, "__row").drop("__row")
    # Sessions numbered 0.. in journey order, as the local sessionizer numbers them.
    change = (pl.col("customer_id") != pl.col("customer_id").shift(1)) | (
        pl.col(SESSION) != pl.col(SESSION).shift(1))
    return frame.with_columns((change.fill_null(True).cum_sum() - 1).cast(pl.Int64)
                              .alias(SESSION))


__all__ = ["FIRST", "POS", "SESSION", "SparkEvents", "read_journeys", "to_local"]
