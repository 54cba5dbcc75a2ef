"""Vectorised timestamp parsing: epoch seconds/ms/us/ns (detected) and ISO-8601-like strings."""

from __future__ import annotations

import polars as pl

TIME_UNIT = "us"
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
)
_EPOCH_UNITS = ((1e11, "s", 1_000_000), (1e14, "ms", 1_000), (1e17, "us", 1))


def parse_timestamps(values: pl.Series) -> tuple[pl.Series, str]:
    """Parse a column of timestamps to UTC microseconds.

    Returns the parsed series (null where a value could not be parsed) and a short
    description of the detected encoding (``"epoch-ms"``, ``"iso"``, ...).
    """
    dtype = values.dtype
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is None:
            parsed = values.dt.replace_time_zone(TIME_ZONE)
        else:
            parsed = values.dt.convert_time_zone(TIME_ZONE)
        return parsed.dt.cast_time_unit(TIME_UNIT), "datetime"
    if dtype == pl.Date:
        return values.cast(pl.Datetime(TIME_UNIT)).dt.replace_time_zone(TIME_ZONE), "date"
    if dtype.is_numeric():
        return _from_epoch(values.cast(pl.Float64))
    text = values.cast(pl.String).str.strip_chars()
    sample = text.drop_nulls().head(2000)
    if sample.len() and sample.str.contains(r"^-?\d+(\.\d+)?$").all():
        return _from_epoch(text.cast(pl.Float64, strict=False))
    return _from_strings(text, sample), "iso"


def _from_epoch(numbers: pl.Series) -> tuple[pl.Series, str]:
    magnitude = numbers.abs().median()
    magnitude = 0.0 if magnitude is None else float(magnitude)
    unit, to_us = "ns", 0.001
    for bound, name, factor in _EPOCH_UNITS:
        if magnitude < bound:
            unit, to_us = name, factor
            break
    micros = (numbers * to_us).round(0).cast(pl.Int64, strict=False)
    parsed = micros.cast(pl.Datetime(TIME_UNIT)).dt.replace_time_zone(TIME_ZONE)
    return parsed, f"epoch-{unit}"


def _to_datetime(text: pl.Series, fmt: str) -> pl.Series:
    return text.str.to_datetime(fmt, strict=False, time_unit=TIME_UNIT, time_zone=TIME_ZONE)


def _from_strings(text: pl.Series, sample: pl.Series) -> pl.Series:
    for fmt in _FAST_FORMATS:
        if sample.len() and _to_datetime(sample, fmt).null_count() == 0:
            parsed = _to_datetime(text, fmt)
            if parsed.null_count() == text.null_count():
                return parsed
            break
    normalised = text.str.replace(r"\s*(?:UTC|GMT|Z)$", "+00:00").str.replace(
        r"^(\d{4}-\d{2}-\d{2})[ T]", "${1}T"
    )
    candidates = [_to_datetime(normalised, fmt) for fmt in _NORMALISED_FORMATS]
    return pl.select(pl.coalesce(candidates)).to_series().alias(text.name)
