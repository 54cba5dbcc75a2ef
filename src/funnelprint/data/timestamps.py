"""Vectorised timestamp parsing, decided value by value.

Each value is read on its own: an epoch number in seconds, milliseconds, microseconds or
nanoseconds (chosen by the value's magnitude), an ISO-8601-like string down to hour or day
resolution (``2014-12-06 02``, ``2014-12-06``, ``2014/12/06``), a compact date
(``20141206``, ``201412060230``, ``20141206023000``), or the REES46 form
``2019-10-01 00:00:00 UTC``. A column may mix these; one odd value never changes how the
others are read. Values that cannot be read come back null; values outside a plausible range
are left for :func:`out_of_range` to flag.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Final

import polars as pl

TIME_UNIT: Final = "us"
TIME_ZONE = "UTC"
TIMESTAMP_DTYPE = pl.Datetime(TIME_UNIT, TIME_ZONE)

# Formats tried on the raw strings first; the normalised fallback below covers the rest.
_FAST_FORMATS = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M:%S UTC",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%dT%H:%M:%S%.fZ",
    "%Y-%m-%dT%H:%M:%S%.f%:z",
)
# Applied after normalising "UTC"/"GMT"/"Z" suffixes to "+00:00" and the date-time separator to "T".
_NORMALISED_FORMATS = (
    "%Y-%m-%dT%H:%M:%S%.f%:z",
    "%Y-%m-%dT%H:%M:%S%.f%z",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%dT%H:%M%:z",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d",
    "%a, %d %b %Y %H:%M:%S%:z",  # RFC 2822, as e-mail and HTTP headers write it
)
# Compact dates: as epochs these would fall before 1990 or centuries ahead, never in a
# plausible range, so reading them as dates takes nothing away.
_COMPACT = r"^(?:19|20)\d{6}(?:\d{4}(?:\d{2})?)?$"
_COMPACT_FORMATS = {8: "%Y%m%d", 12: "%Y%m%d%H%M", 14: "%Y%m%d%H%M%S"}
_INTEGER = r"^[+-]?\d+$"
_NUMBER = r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$"
_SAMPLE = 2000

#: Epoch units by magnitude of the value: below 1e11 seconds, below 1e14 milliseconds, below
#: 1e17 microseconds, else nanoseconds. Between 1990 and 2100 the four ranges are decades apart.
EPOCH_UNITS = ("s", "ms", "us", "ns")
_BOUNDS = (1e11, 1e14, 1e17)
_TO_MICROS = (1_000_000, 1_000, 1)
# About 7,900 years either side of 1970, in microseconds: absurd epochs are clipped here so that
# they stay representable (and printable) and then fail the range check.
_CLIP = 2.5e17


@dataclass(frozen=True)
class TimeBounds:
    """The range of plausible event times; values outside it are errors (or skipped rows).

    ``earliest`` defaults to 1990-01-01 UTC. ``latest`` defaults to ``future`` (one day) after
    the moment the file is read.
    """

    earliest: datetime | None = datetime(1990, 1, 1, tzinfo=timezone.utc)
    latest: datetime | None = None
    future: timedelta = timedelta(days=1)

    def resolve(self, now: datetime | None = None) -> tuple[datetime | None, datetime | None]:
        """``(earliest, latest)`` as aware UTC datetimes (``None`` where unbounded)."""
        earliest = _aware(self.earliest)
        latest = _aware(self.latest)
        if latest is None and self.future is not None:
            latest = (now or datetime.now(timezone.utc)) + self.future
        return earliest, latest

    def describe(self) -> str:
        earliest, latest = self.resolve()
        parts = []
        if earliest is not None:
            parts.append(f"before {earliest.isoformat(timespec='seconds')}")
        if latest is not None:
            parts.append(f"after {latest.isoformat(timespec='seconds')}")
        return " or ".join(parts)


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def parse_timestamps(values: pl.Series) -> tuple[pl.Series, str]:
    """Parse a column of timestamps to UTC microseconds, value by value.

    Returns the parsed series (null where a value could not be parsed) and a short
    description of the encodings found (``"epoch-ms"``, ``"iso"``, ``"epoch-s+epoch-ms"``, ...).
    """
    dtype = values.dtype
    name = values.name
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is None:
            parsed = values.dt.replace_time_zone(TIME_ZONE)
        else:
            parsed = values.dt.convert_time_zone(TIME_ZONE)
        return parsed.dt.cast_time_unit(TIME_UNIT), "datetime"
    if dtype == pl.Date:
        return values.cast(pl.Datetime(TIME_UNIT)).dt.replace_time_zone(TIME_ZONE), "date"
    if dtype.is_nested() or dtype in (pl.Object, pl.Binary):
        return pl.Series(name, [None] * values.len(), dtype=TIMESTAMP_DTYPE), "unreadable"
    if dtype.is_integer():
        micros, units = _epoch_micros(values.cast(pl.Int64))
        parsed = _micros_to_datetime(micros, name)
        compact = _compact_dates(values.cast(pl.String))
        if compact.null_count() < compact.len():
            parsed = compact.fill_null(parsed)
            units = _epoch_units(values.cast(pl.Int64).filter(compact.is_null()))
        return parsed.alias(name), _describe(units, iso=False, compact=compact)
    if dtype.is_numeric():
        micros, units = _epoch_micros(values.cast(pl.Float64))
        return _micros_to_datetime(micros, name), _describe(units, iso=False)
    text = values.cast(pl.String).str.strip_chars()
    return _parse_text(text)


def out_of_range(parsed: pl.Series, bounds: TimeBounds | None) -> pl.Series:
    """True where a parsed timestamp lies outside ``bounds`` (false where null)."""
    if bounds is None:
        return pl.Series(parsed.name, [False] * parsed.len(), dtype=pl.Boolean)
    earliest, latest = bounds.resolve()
    micros = parsed.dt.cast_time_unit(TIME_UNIT).cast(pl.Int64)
    outside = pl.repeat(False, parsed.len(), eager=True)
    if earliest is not None:
        outside = outside | (micros < _micros(earliest))
    if latest is not None:
        outside = outside | (micros > _micros(latest))
    return outside.fill_null(False).alias(parsed.name)


def _micros(moment: datetime) -> int:
    delta = moment - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


# ---------------------------------------------------------------------------- epochs


def _unit_code(numbers: pl.Expr) -> pl.Expr:
    magnitude = numbers.abs()
    return (
        pl.when(magnitude < _BOUNDS[0]).then(0)
        .when(magnitude < _BOUNDS[1]).then(1)
        .when(magnitude < _BOUNDS[2]).then(2)
        .otherwise(3)
        .cast(pl.Int8)
    )


def _epoch_micros(numbers: pl.Series) -> tuple[pl.Series, set[str]]:
    """Epoch numbers (Int64 or Float64) to Int64 microseconds, the unit chosen per value."""
    col = pl.col("v")
    if numbers.dtype == pl.Int64:
        # Exact integer arithmetic: |v| < 1e11 s * 1e6 and |v| < 1e14 ms * 1e3 stay below 2**63.
        micros = (
            pl.when(col.abs() < _BOUNDS[0]).then(col * _TO_MICROS[0])
            .when(col.abs() < _BOUNDS[1]).then(col * _TO_MICROS[1])
            .when(col.abs() < _BOUNDS[2]).then(col)
            .otherwise((col + 500).floordiv(1000))
        )
    else:
        scaled = (
            pl.when(col.abs() < _BOUNDS[0]).then(col * float(_TO_MICROS[0]))
            .when(col.abs() < _BOUNDS[1]).then(col * float(_TO_MICROS[1]))
            .when(col.abs() < _BOUNDS[2]).then(col)
            .otherwise(col / 1000.0)
        )
        micros = scaled.round(0).clip(-_CLIP, _CLIP).cast(pl.Int64, strict=False)
    frame = pl.DataFrame({"v": numbers}).select(
        micros.alias("micros"), _unit_code(col).alias("unit")
    )
    present = frame.filter(pl.col("micros").is_not_null())["unit"].unique().to_list()
    return frame["micros"], {EPOCH_UNITS[code] for code in present}


def _micros_to_datetime(micros: pl.Series, name: str) -> pl.Series:
    return micros.cast(pl.Datetime(TIME_UNIT)).dt.replace_time_zone(TIME_ZONE).alias(name)


def _epoch_units(numbers: pl.Series) -> set[str]:
    _, units = _epoch_micros(numbers)
    return units


def _describe(units: set[str], iso: bool, compact: pl.Series | None = None) -> str:
    parts = [f"epoch-{u}" for u in EPOCH_UNITS if u in units]
    if compact is not None and compact.null_count() < compact.len():
        parts.append("yyyymmdd")
    if iso:
        parts.append("iso")
    return "+".join(parts) if parts else "none"


# --------------------------------------------------------------------------- strings


def _to_datetime(text: pl.Series, fmt: str) -> pl.Series:
    return text.str.to_datetime(fmt, strict=False, time_unit=TIME_UNIT, time_zone=TIME_ZONE)


def _compact_dates(text: pl.Series) -> pl.Series:
    """``20141206``, ``201412060230`` and ``20141206023000`` as datetimes; null elsewhere."""
    compact = text.str.contains(_COMPACT).fill_null(False)
    if not compact.any():
        return pl.Series(text.name, [None] * text.len(), dtype=TIMESTAMP_DTYPE)
    length = text.str.len_bytes()
    candidates = [
        _to_datetime(pl.select(pl.when(compact & (length == n)).then(text)).to_series(), fmt)
        for n, fmt in _COMPACT_FORMATS.items()
    ]
    return pl.select(pl.coalesce(candidates)).to_series().alias(text.name)


def _normalise(text: pl.Series) -> pl.Series:
    """Date-time strings in one shape for :data:`_NORMALISED_FORMATS`: a ``+00:00`` zone for
    ``UTC``/``GMT``/``Z``, ``-`` between date parts (``2014/12/06``, ``2014.12.06``), ``T``
    between date and time, minutes after a bare hour (``2014-12-06 02``)."""
    return (
        text.str.replace(r"\s*(?:UTC|GMT|Z)$", "+00:00")
        .str.replace(r"\s+([+-]\d{2}:?\d{2})$", "${1}")
        .str.replace(r"^(\d{4})[/.](\d{1,2})[/.](\d{1,2})", "${1}-${2}-${3}")
        .str.replace(r"^(\d{4}-\d{1,2}-\d{1,2})[ T]+", "${1}T")
        .str.replace(r"^(\d{4}-\d{1,2}-\d{1,2}T\d{1,2})($|[+-])", "${1}:00${2}")
    )


def _parse_text(text: pl.Series) -> tuple[pl.Series, str]:
    """Strings: one fast parser chosen on a sample for the bulk, then every value that parser
    left unread is read on its own (epoch integer, epoch decimal, or any known date format)."""
    name = text.name
    sample = text.head(_SAMPLE).drop_nulls()
    if sample.len() == 0:
        sample = text.drop_nulls().head(_SAMPLE)
    units: set[str] = set()
    iso = False
    parsed: pl.Series | None = None
    compact: pl.Series | None = None
    if sample.len() and sample.str.contains(_INTEGER).all():
        micros, units = _epoch_micros(text.cast(pl.Int64, strict=False))
        parsed = _micros_to_datetime(micros, name)
        compact = _compact_dates(text)
        if compact.null_count() < compact.len():
            parsed = compact.fill_null(parsed)
            units = _epoch_units(text.filter(compact.is_null()).cast(pl.Int64, strict=False))
    else:
        for fmt in _FAST_FORMATS:
            if sample.len() and _to_datetime(sample, fmt).null_count() == 0:
                parsed = _to_datetime(text, fmt)
                iso = parsed.null_count() < text.len()
                break
    if parsed is None:
        parsed = pl.Series(name, [None] * text.len(), dtype=TIMESTAMP_DTYPE)
    if parsed.null_count() > text.null_count():
        positions = (parsed.is_null() & text.is_not_null()).arg_true()
        rest, rest_units, rest_iso, rest_compact = _parse_each(text.gather(positions))
        parsed = parsed.scatter(positions, rest)
        units |= rest_units
        iso = iso or rest_iso
        if compact is None or rest_compact.null_count() < rest_compact.len():
            compact = rest_compact
    return parsed.alias(name), _describe(units, iso, compact)


def _parse_each(text: pl.Series) -> tuple[pl.Series, set[str], bool, pl.Series]:
    """Parse strings of any supported kind; each value by its own form. Also returns the
    compact dates found (null elsewhere)."""
    name = text.name
    compact = _compact_dates(text)
    integer = text.str.contains(_INTEGER) & compact.is_null()
    number = ~integer & compact.is_null() & text.str.contains(_NUMBER)
    int_micros, int_units = _epoch_micros(
        pl.select(pl.when(integer).then(text.cast(pl.Int64, strict=False))).to_series()
    )
    # Integers too long for Int64 are read as floats (and then fail the range check).
    float_micros, float_units = _epoch_micros(
        pl.select(pl.when(integer | number).then(text.cast(pl.Float64, strict=False)))
        .to_series()
    )
    epoch = _micros_to_datetime(int_micros.fill_null(float_micros), name)
    strings = pl.select(pl.when(~integer & ~number & compact.is_null()).then(text)).to_series()
    normalised = _normalise(strings)
    candidates = [_to_datetime(strings, fmt) for fmt in _FAST_FORMATS]
    candidates += [_to_datetime(normalised, fmt) for fmt in _NORMALISED_FORMATS]
    dated = pl.select(pl.coalesce(candidates)).to_series()
    iso = dated.null_count() < dated.len()
    return (compact.fill_null(epoch).fill_null(dated).alias(name), int_units | float_units, iso,
            compact)
