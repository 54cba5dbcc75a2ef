"""Property tests of the event reader: valid files in each format with a random subset of rows
corrupted. ``raise`` must name the first corrupted line (and its column), rows whose id or
action is missing aside: those are dropped and counted, unless they are most of the file;
``skip`` must keep exactly the other rows, values unchanged, and count each corrupted row
under its reason."""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from funnelprint.data import EventDataError, read_events

SETTINGS = settings(
    max_examples=int(__import__("os").environ.get("READER_EXAMPLES", 25)),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
NAMES = ["user_id", "timestamp", "action", "product_id"]
ACTIONS = {"view": "view", "cart": "add_to_cart", "purchase": "purchase",
           "add_to_cart": "add_to_cart", "remove": "remove_from_cart", "wishlist": "favorite",
           "Pay": "purchase", "wish": "wish"}
CUSTOMERS = ["u1", "u2", "alice", "42", "c-7", "Bob Smith"]
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
MISSING = ["", "  ", "NaN", "nan", "null", "NULL", "None", "<NA>", "NA", "N/A", "#N/A"]
MISSING_KINDS = ("empty_customer_id", "empty_product_id", "empty_action")
BAD_TIMES = ["not-a-time", "2024-13-45 00:00:00", "12:30", "1.2.3", "--", "2024-01-01X"]
OUT_OF_RANGE = ["5", "-1700000000", "1980-06-01 00:00:00", "2999-01-01T00:00:00Z",
                "99999999999"]


@dataclass
class Row:
    customer: str
    stamp: object  # as written: text, or an int/float for JSON
    action: str
    product: str
    moment: datetime

    def expected(self) -> tuple:
        return (self.customer.strip(), self.moment, ACTIONS[self.action], self.product.strip())


def _stamp(seconds: int, millis: int, form: str, json_numbers: bool) -> tuple[object, datetime]:
    exact = EPOCH + timedelta(seconds=seconds, milliseconds=millis)
    whole = EPOCH + timedelta(seconds=seconds)
    number = {
        "s": (seconds, whole),
        "ms": (seconds * 1000 + millis, exact),
        "us": ((seconds * 1000 + millis) * 1000, exact),
        "ns": ((seconds * 1000 + millis) * 1_000_000, exact),
    }
    if form in number:
        value, moment = number[form]
        return (value if json_numbers else str(value)), moment
    if form == "sci":
        return (float(seconds) if json_numbers else f"{seconds:.9e}"), whole
    if form == "iso-space":
        return whole.strftime("%Y-%m-%d %H:%M:%S"), whole
    if form == "rees46":
        return whole.strftime("%Y-%m-%d %H:%M:%S UTC"), whole
    return exact.strftime("%Y-%m-%dT%H:%M:%S.") + f"{millis:03d}Z", exact


@st.composite
def rows(draw, json_numbers: bool = False, plain: bool = False) -> list[Row]:
    count = draw(st.integers(1, 25))
    out = []
    for i in range(count):
        seconds = draw(st.integers(946_684_800, 1_735_689_600))  # 2000 to 2025
        millis = draw(st.integers(0, 999))
        form = draw(st.sampled_from(["s", "ms", "us", "ns", "sci", "iso-space", "rees46", "iso"]))
        stamp, moment = _stamp(seconds, millis, form, json_numbers)
        extra = "" if plain else draw(st.sampled_from(["", "", ",x", '"q', " y", "é"]))
        out.append(Row(draw(st.sampled_from(CUSTOMERS)), stamp, draw(st.sampled_from(
            list(ACTIONS))), f"p{i}{extra}", moment))
    return out


@dataclass
class Corruption:
    index: int
    reason: str
    column: str | None


def _kind(draw, focus: str, kinds: list[str]) -> str:
    """Mostly the kind under test, sometimes another, so that reasons compete for the first
    line and for the counts."""
    return focus if draw(st.integers(0, 2)) else draw(st.sampled_from(kinds))


def _check(path: Path, good: list[Row], bad: list[Corruption], first_line: int) -> None:
    """Both modes against what the corruption predicts; ``first_line`` is the line of row 0."""
    bad = sorted(bad, key=lambda c: c.index)
    rows = len(good) + len(bad)
    kinds = Counter(c.reason for c in bad)
    # What raise stops at: the first corrupted row, missing ids aside unless most rows lack one.
    stops = [c for c in bad if c.reason not in MISSING_KINDS or 2 * kinds[c.reason] > rows]
    if stops:
        with pytest.raises(EventDataError) as info:
            read_events(path)
        err = info.value
        assert err.line == stops[0].index + first_line, str(err)
        assert err.column == stops[0].column, str(err)
        assert err.code == stops[0].reason, str(err)
        assert str(err).startswith(f"{path}:{err.line}: ")
    else:
        events, report = read_events(path)
        assert dict(report.dropped) == dict(kinds)
        assert events.height == len(good)
    events, report = read_events(path, on_error="skip")
    assert report.rows_read == len(good) + len(bad)
    assert dict(report.dropped) == dict(Counter(c.reason for c in bad))
    got = sorted(events.select("customer_id", "timestamp", "action", "product_id").rows(),
                 key=lambda r: r[3])
    assert got == sorted((r.expected() for r in good), key=lambda r: r[3])


# ------------------------------------------------------------------------------- CSV

CSV_KINDS = ["bad_timestamp", "timestamp_out_of_range", "empty_customer_id",
             "empty_product_id", "empty_action", "malformed_row", "bad_encoding",
             "bad_quote"]


def _csv_line(fields: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(fields)
    return out.getvalue()


@st.composite
def corrupted_csv(draw, focus: str):
    # Plain rows need no quoting, so polars reads them directly; the others hold commas and
    # quotes in product ids (quoted as CSV requires).
    data = draw(rows(plain=draw(st.booleans())))
    chosen = draw(st.sets(st.integers(0, len(data) - 1), max_size=len(data)))
    lines: list[bytes] = []
    good, bad = [], []
    for i, row in enumerate(data):
        fields = [row.customer, str(row.stamp), row.action, row.product]
        if i not in chosen:
            if draw(st.integers(0, 2 if focus == "bad_quote" else 9)) == 0:
                # A stray quote inside an unquoted field is part of the value (as Python's
                # csv reads it); after an unmatched quote it is where polars would stop.
                row.product = f"p{i}" + draw(st.sampled_from(['"', '"', '"x', 'x"y']))
                fields[3] = row.product
                lines.append(",".join(fields).encode())
            else:
                lines.append(_csv_line(fields).encode())
            good.append(row)
            continue
        kind = _kind(draw, focus, CSV_KINDS)
        column = None
        if kind == "bad_timestamp":
            fields[1], column = draw(st.sampled_from(BAD_TIMES)), "timestamp"
        elif kind == "timestamp_out_of_range":
            fields[1], column = draw(st.sampled_from(OUT_OF_RANGE)), "timestamp"
        elif kind.startswith("empty_"):
            j = {"empty_customer_id": 0, "empty_product_id": 3, "empty_action": 2}[kind]
            fields[j], column = draw(st.sampled_from(MISSING)), NAMES[j]
        elif kind == "malformed_row":
            if draw(st.booleans()):
                fields = fields[:draw(st.integers(1, 3))]
            else:
                fields = fields + ["extra"] * draw(st.integers(1, 2))
        elif kind == "bad_encoding":
            j = draw(st.integers(0, 3))
            column = NAMES[j]
            fields[3] = f"p{i}"
            raw = [f.encode() for f in fields]
            invalid = draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xe9"]))
            raw[j] = raw[j][:1] + invalid + raw[j][1:]
            lines.append(b",".join(raw))
            bad.append(Corruption(i, kind, column))
            continue
        else:  # a quote opens a field and never closes
            # Often the last field: a later stray quote then closes it for a lenient parser,
            # which would swallow the lines between into one value.
            j = draw(st.sampled_from([0, 1, 2, 3, 3, 3]))
            fields[3] = f"p{i}"
            fields[j] = '"' + (fields[j] or "x")
            column = NAMES[j]
            lines.append(",".join(fields).encode())
            bad.append(Corruption(i, kind, column))
            continue
        lines.append(_csv_line(fields).encode())
        bad.append(Corruption(i, kind, column))
    ending = draw(st.sampled_from([b"\n", b"\r\n", b"\r"]))
    text = ending.join([",".join(NAMES).encode(), *lines]) + ending
    return text, good, bad, draw(st.booleans())


@pytest.mark.parametrize("focus", CSV_KINDS)
@SETTINGS
@given(data=st.data())
def test_csv_raise_names_first_bad_line_and_skip_keeps_the_rest(tmp_path_factory, focus, data):
    text, good, bad, compressed = data.draw(corrupted_csv(focus))
    folder = tmp_path_factory.mktemp("csv")
    if compressed:
        path = folder / "events.csv.gz"
        path.write_bytes(gzip.compress(text))
    else:
        path = folder / "events.csv"
        path.write_bytes(text)
    _check(path, good, bad, first_line=2)


# ------------------------------------------------------------------------ JSON lines

JSON_KINDS = ["bad_timestamp", "timestamp_out_of_range", "empty_customer_id",
              "empty_product_id", "empty_action", "bad_customer_id", "bad_product_id",
              "bad_json", "bad_encoding"]


@st.composite
def corrupted_jsonl(draw, focus: str):
    data = draw(rows(json_numbers=True))
    chosen = draw(st.sets(st.integers(0, len(data) - 1), max_size=len(data)))
    lines: list[bytes] = []
    good, bad = [], []
    for i, row in enumerate(data):
        customer: object = row.customer
        if row.customer == "42" and draw(st.booleans()):
            customer = 42  # a number where other lines have text
        obj: dict = {"user_id": customer, "timestamp": row.stamp, "action": row.action,
                     "product_id": row.product}
        if i not in chosen:
            good.append(row)
            lines.append(json.dumps(obj, ensure_ascii=draw(st.booleans())).encode())
            continue
        kind = _kind(draw, focus, JSON_KINDS)
        column = None
        if kind == "bad_timestamp":
            obj["timestamp"], column = draw(st.sampled_from(BAD_TIMES)), "timestamp"
        elif kind == "timestamp_out_of_range":
            value = draw(st.sampled_from(OUT_OF_RANGE))
            obj["timestamp"] = int(value) if value.lstrip("-").isdigit() else value
            column = "timestamp"
        elif kind.startswith("empty_"):
            key = {"empty_customer_id": "user_id", "empty_product_id": "product_id",
                   "empty_action": "action"}[kind]
            # A key may be left out only where some good line still has it (else the whole
            # column is missing, a different error).
            absent = ["<absent>"] if len(chosen) < len(data) else []
            missing = draw(st.sampled_from([*MISSING, None, *absent]))
            if missing == "<absent>":
                del obj[key]
            else:
                obj[key] = missing
            column = key
        elif kind.startswith("bad_") and kind.endswith("_id"):
            key = "user_id" if kind == "bad_customer_id" else "product_id"
            obj[key] = draw(st.sampled_from([{"id": 1}, [1, 2], {}, ["x"]]))
            column = key
        elif kind == "bad_json":
            text = json.dumps(obj)
            lines.append(draw(st.sampled_from([
                text[: len(text) // 2].encode(),
                text.replace(json.dumps(row.product), "NaN").encode(),
                b"[1, 2, 3]",
                b"42",
                text.encode() + b" }",
            ])))
            bad.append(Corruption(i, kind, None))
            continue
        else:
            obj["product_id"] = f"p{i}"
            lines.append(json.dumps(obj).encode().replace(b'"p', b'"\xffp', 1))
            bad.append(Corruption(i, kind, None))
            continue
        lines.append(json.dumps(obj).encode())
        bad.append(Corruption(i, kind, column))
    return b"\n".join(lines) + b"\n", good, bad


@pytest.mark.parametrize("focus", JSON_KINDS)
@SETTINGS
@given(data=st.data())
def test_jsonl_raise_names_first_bad_line_and_skip_keeps_the_rest(tmp_path_factory, focus,
                                                                  data):
    text, good, bad = data.draw(corrupted_jsonl(focus))
    path = tmp_path_factory.mktemp("jsonl") / "events.jsonl"
    path.write_bytes(text)
    _check(path, good, bad, first_line=1)


# --------------------------------------------------------------------------- Parquet

PARQUET_KINDS = ["bad_timestamp", "timestamp_out_of_range", "empty_customer_id",
                 "empty_product_id", "empty_action"]


@st.composite
def corrupted_parquet(draw, focus: str):
    data = draw(rows())
    chosen = draw(st.sets(st.integers(0, len(data) - 1), max_size=len(data)))
    records, good, bad = [], [], []
    for i, row in enumerate(data):
        record: dict[str, str | None] = {"user_id": row.customer, "timestamp": str(row.stamp),
                                         "action": row.action, "product_id": row.product}
        if i in chosen:
            kind = _kind(draw, focus, PARQUET_KINDS)
            if kind == "bad_timestamp":
                record["timestamp"], column = draw(st.sampled_from(BAD_TIMES)), "timestamp"
            elif kind == "timestamp_out_of_range":
                record["timestamp"], column = draw(st.sampled_from(OUT_OF_RANGE)), "timestamp"
            else:
                column = {"empty_customer_id": "user_id", "empty_product_id": "product_id",
                          "empty_action": "action"}[kind]
                record[column] = draw(st.sampled_from([*MISSING, None]))
            bad.append(Corruption(i, kind, column))
        else:
            good.append(row)
        records.append(record)
    return records, good, bad


@pytest.mark.parametrize("focus", PARQUET_KINDS)
@SETTINGS
@given(data=st.data())
def test_parquet_raise_names_first_bad_row_and_skip_keeps_the_rest(tmp_path_factory, focus,
                                                                   data):
    records, good, bad = data.draw(corrupted_parquet(focus))
    path = tmp_path_factory.mktemp("parquet") / "events.parquet"
    pl.DataFrame(records, schema=dict.fromkeys(NAMES, pl.String)).write_parquet(path)
    _check(path, good, bad, first_line=1)
