"""Example tests of the event reader on the kinds of damage found in real exports."""

from __future__ import annotations

import gzip
import json
import logging
from datetime import datetime, timedelta, timezone

import polars as pl
import pytest

from funnelprint.data import EventDataError, prepare_frame, read_events
from funnelprint.data.summary import summarize
from funnelprint.data.timestamps import TimeBounds, parse_timestamps

HEADER = "user_id,timestamp,action,product_id\n"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def rows(count: int, start: int = 1_700_000_000, customer: str = "u") -> str:
    """Valid filler lines (products ``q0, q1, ...``)."""
    return "".join(f"{customer}{i % 7},{start + i},view,q{i}\n" for i in range(count))


# ------------------------------------------------------------------------- timestamps


def test_mixed_seconds_and_milliseconds_are_each_read_by_magnitude(write):
    text = HEADER + (
        "u1,1700000000,view,p1\n"
        "u1,1700000060000,view,p2\n"
        "u2,1700000120,view,p3\n"
        "u2,1700000180500,view,p4\n"
    )
    events, report = read_events(write("e.csv", text))
    assert report.timestamp_encoding == "epoch-s+epoch-ms"
    stamps = dict(zip(events["product_id"], events["timestamp"], strict=True))
    assert stamps == {
        "p1": utc(2023, 11, 14, 22, 13, 20),
        "p2": utc(2023, 11, 14, 22, 14, 20),
        "p3": utc(2023, 11, 14, 22, 15, 20),
        "p4": utc(2023, 11, 14, 22, 16, 20, 500000),
    }


def test_mixed_units_in_a_parquet_integer_column(tmp_path):
    path = tmp_path / "e.parquet"
    pl.DataFrame({
        "user_id": ["a", "a", "a"],
        "timestamp": [1_700_000_000, 1_700_000_001_000, 1_700_000_002_000_000],
        "action": ["view"] * 3,
        "product_id": ["p1", "p2", "p3"],
    }).write_parquet(path)
    events, report = read_events(path)
    assert report.timestamp_encoding == "epoch-s+epoch-ms+epoch-us"
    assert events["timestamp"].to_list() == [utc(2023, 11, 14, 22, 13, s) for s in (20, 21, 22)]


def test_one_bad_timestamp_on_line_3_is_named_and_skipping_keeps_every_other_row(write):
    text = HEADER + "u1,1700000000,view,p1\nu1,17000x0060,view,p2\n" + rows(50, customer="v")
    path = write("e.csv", text)
    with pytest.raises(EventDataError) as info:
        read_events(path)
    err = info.value
    assert (err.line, err.column, err.value, err.code) == (
        3, "timestamp", "17000x0060", "bad_timestamp")
    assert str(err).startswith(f"{path}:3: column 'timestamp': cannot parse timestamp")
    events, report = read_events(path, on_error="skip")
    assert events.height == 51
    assert report.dropped == {"bad_timestamp": 1}
    assert "p2" not in events["product_id"].to_list()


def test_scientific_notation_epoch(write):
    text = HEADER + "u1,1700000000,view,p1\nu1,1.7000001e9,view,p2\nu1,1.7e12,view,p3\n"
    events, _ = read_events(write("e.csv", text))
    stamps = dict(zip(events["product_id"], events["timestamp"], strict=True))
    assert stamps["p2"] == utc(2023, 11, 14, 22, 15, 0)
    assert stamps["p3"] == utc(2023, 11, 14, 22, 13, 20)


def test_scientific_notation_alone_blames_its_own_line(write):
    text = HEADER + "u1,1.7e9,view,p1\nu1,1.7e9x,view,p2\n"
    with pytest.raises(EventDataError) as info:
        read_events(write("e.csv", text))
    assert (info.value.line, info.value.value) == (3, "1.7e9x")


def test_iso_and_epoch_values_in_one_column(write):
    text = HEADER + "u1,2023-11-14 22:13:20 UTC,view,p1\nu1,1700000001,view,p2\n"
    events, report = read_events(write("e.csv", text))
    assert report.timestamp_encoding == "epoch-s+iso"
    assert events["timestamp"].to_list() == [utc(2023, 11, 14, 22, 13, 20),
                                             utc(2023, 11, 14, 22, 13, 21)]


def test_out_of_range_dates_are_errors_or_counted_skips(write):
    future = (datetime.now(timezone.utc) + timedelta(days=30)).strftime("%Y-%m-%d %H:%M:%S")
    text = HEADER + (
        "u1,2024-01-01 00:00:00,view,p1\n"
        "u1,1985-06-01 00:00:00,view,p2\n"
        f"u1,{future},view,p3\n"
        "u1,12345,view,p4\n"
    )
    path = write("e.csv", text)
    with pytest.raises(EventDataError) as info:
        read_events(path)
    assert (info.value.line, info.value.code) == (3, "timestamp_out_of_range")
    assert "1990-01-01" in str(info.value) and "1985-06-01" in str(info.value)
    events, report = read_events(path, on_error="skip")
    assert events["product_id"].to_list() == ["p1"]
    assert report.dropped == {"timestamp_out_of_range": 3}


def test_time_bounds_are_configurable(write):
    text = HEADER + "u1,1985-06-01 00:00:00,view,p1\nu1,2024-06-01 00:00:00,view,p2\n"
    path = write("e.csv", text)
    early = TimeBounds(earliest=datetime(1980, 1, 1))
    assert read_events(path, time_bounds=early)[0].height == 2
    tight = TimeBounds(earliest=datetime(1980, 1, 1), latest=datetime(2020, 1, 1))
    events, report = read_events(path, on_error="skip", time_bounds=tight)
    assert events["product_id"].to_list() == ["p1"]
    assert report.dropped == {"timestamp_out_of_range": 1}
    assert read_events(path, time_bounds=None)[0].height == 2


def test_wrongly_scaled_epochs_no_longer_reach_the_summary(write):
    # Seconds read as microseconds once made 1970 dates; nanoseconds as seconds, year 50000.
    text = HEADER + "u1,1700000000,view,p1\nu1,99999999999,view,p2\n"
    events, report = read_events(write("e.csv", text), on_error="skip")
    assert report.dropped == {"timestamp_out_of_range": 1}
    log = prepare_frame(events, report)
    assert summarize(log)["time_range"]["last"] == "2023-11-14T22:13:20+00:00"


def test_summary_of_an_unchecked_frame_with_far_future_times_does_not_crash():
    events = pl.DataFrame({
        "customer_id": ["a", "a"],
        "timestamp": pl.Series([1_700_000_000_000_000, 3 * 10**17]).cast(
            pl.Datetime("us", "UTC")),
        "action": ["view", "view"],
        "product_id": ["p1", "p2"],
    })
    summary = summarize(prepare_frame(events))
    assert summary["time_range"]["first"] == "2023-11-14T22:13:20+00:00"
    assert summary["time_range"]["last"].startswith("+11476-")


def test_parse_timestamps_leaves_unreadable_values_null_not_shifted():
    values = pl.Series(["1700000000", "garbage", "1700000000000", None, "nan"])
    parsed, encoding = parse_timestamps(values)
    assert parsed.to_list() == [utc(2023, 11, 14, 22, 13, 20), None,
                                utc(2023, 11, 14, 22, 13, 20), None, None]
    assert encoding == "epoch-s+epoch-ms"


# ---------------------------------------------------------------------------- parsing


def test_quoted_header_field_with_a_comma(write):
    text = 'user_id,timestamp,action,product_id,"price, EUR"\nu1,1700000000,view,p1,"9,99"\n'
    events, report = read_events(write("e.csv", text))
    assert events["product_id"].to_list() == ["p1"]
    assert report.mapping["product_id"] == "product_id"


def test_quoted_header_field_with_a_comma_can_be_mapped(write):
    from funnelprint.data import ColumnMapping

    text = 'user_id,"time, UTC",action,product_id\nu1,1700000000,view,p1\n'
    mapping = ColumnMapping(columns={"timestamp": "time, UTC"})
    events, _ = read_events(write("e.csv", text), mapping)
    assert events["timestamp"].to_list() == [utc(2023, 11, 14, 22, 13, 20)]


def test_unmatched_quote_does_not_swallow_the_following_rows(write):
    # A lenient parser reads from the open quote on line 2 to the stray one on line 1302.
    text = HEADER + 'u1,1700000000,view,"p1\n' + rows(1300) + 'u9,1700000000,view,p9"\n'
    path = write("e.csv", text)
    with pytest.raises(EventDataError) as info:
        read_events(path)
    err = info.value
    assert (err.line, err.column, err.code) == (2, "product_id", "bad_quote")
    assert "unmatched quote" in str(err)
    events, report = read_events(path, on_error="skip")
    assert report.dropped == {"bad_quote": 1}
    assert report.rows_read == 1302
    assert events.height == 1301
    assert events.filter(pl.col("customer_id") == "u9")["product_id"].to_list() == ['p9"']
    assert events["product_id"].str.contains("\n").sum() == 0


def test_cr_only_line_endings(write):
    text = (HEADER + "u1,1700000000,view,p1\nu1,bad,view,p2\nu2,1700000002,view,p3\n")
    path = write("e.csv", text.replace("\n", "\r"))
    with pytest.raises(EventDataError) as info:
        read_events(path)
    assert info.value.line == 3
    events, report = read_events(path, on_error="skip")
    assert events["product_id"].to_list() == ["p1", "p3"]
    assert report.dropped == {"bad_timestamp": 1}


def test_crlf_line_endings_with_a_malformed_row(write):
    text = HEADER + "u1,1700000000,view,p1\nu1,1700000001,view,p2,extra\nu2,1700000002,view,p3\n"
    path = write("e.csv", text.replace("\n", "\r\n"))
    with pytest.raises(EventDataError, match="malformed row: expected 4 fields, found 5"):
        read_events(path)
    events, _ = read_events(path, on_error="skip")
    assert events["product_id"].to_list() == ["p1", "p3"]


def test_non_utf8_bytes_name_line_and_column(tmp_path):
    path = tmp_path / "e.csv"
    path.write_bytes(HEADER.encode() + b"u1,1700000000,view,p1\nu2,1700000001,view,p\xe92\n"
                     + rows(3).encode())
    with pytest.raises(EventDataError) as info:
        read_events(path)
    err = info.value
    assert (err.line, err.column, err.code) == (3, "product_id", "bad_encoding")
    assert "not valid UTF-8 (byte 0xe9)" in str(err)
    events, report = read_events(path, on_error="skip")
    assert events.height == 4
    assert report.dropped == {"bad_encoding": 1}


def test_latin1_file_is_refused_at_its_first_bad_line(tmp_path):
    path = tmp_path / "e.csv"
    path.write_bytes((HEADER + "u1,1700000000,view,café\n").encode("latin-1"))
    with pytest.raises(EventDataError, match=r"e\.csv:2: column 'product_id': not valid UTF-8"):
        read_events(path)


def test_missing_value_markers_as_ids(write):
    text = HEADER + (
        "NaN,1700000000,view,p1\nu1,1700000000,view,null\nNone,1700000000,view,p3\n"
        "u2,1700000000,NULL,p4\nu3,1700000000,view,p5\n"
    )
    path = write("e.csv", text)
    for mode in ("raise", "skip"):  # a minority of rows: dropped and counted either way
        events, report = read_events(path, on_error=mode)
        assert events["customer_id"].to_list() == ["u3"]
        assert report.dropped == {"empty_customer_id": 2, "empty_product_id": 1,
                                  "empty_action": 1}
        assert report.examples["empty_customer_id"].endswith(
            "e.csv:2: column 'user_id': missing value (value 'NaN')")


def test_structural_and_value_errors_raise_in_file_order(write):
    text = HEADER + "u1,1700000000,view,p1\nu1,1700000000,view\nu1,bad,view,p3\n"
    with pytest.raises(EventDataError, match="malformed row") as info:
        read_events(write("a.csv", text))
    assert info.value.line == 3
    text = HEADER + "u1,bad,view,p1\nu1,1700000000,view\n"
    with pytest.raises(EventDataError, match="cannot parse timestamp") as info:
        read_events(write("b.csv", text))
    assert info.value.line == 2


def test_gzip_file_with_a_bad_row(tmp_path):
    path = tmp_path / "e.csv.gz"
    text = HEADER + rows(5) + "u1,1700000000\n" + rows(5, start=1_700_001_000)
    path.write_bytes(gzip.compress(text.encode()))
    with pytest.raises(EventDataError) as info:
        read_events(path)
    assert info.value.line == 7
    _, report = read_events(path, on_error="skip")
    assert report.dropped == {"malformed_row": 1}
    assert report.rows_read == 11


def test_blank_lines_are_counted_not_fatal(write):
    text = HEADER + "u1,1700000000,view,p1\n\n   \nu1,1700000001,view,p2\n"
    events, report = read_events(write("e.csv", text))
    assert events.height == 2
    assert report.dropped == {"blank_line": 2}


def test_repeated_header_names_do_not_stop_the_reader(write):
    text = "user_id,timestamp,action,product_id,note,note\nu1,1700000000,view,p1,a,b\n"
    events, _ = read_events(write("e.csv", text))
    assert events["product_id"].to_list() == ["p1"]


def test_file_of_blank_lines_says_so(tmp_path):
    path = tmp_path / "e.jsonl"
    path.write_text("\n\n")
    with pytest.raises(EventDataError, match="only blank lines"):
        read_events(path)


def test_skipped_rows_are_logged_with_the_first_example(write, caplog):
    text = HEADER + "u1,1700000000,view,p1\nu1,bad,view,p2\n"
    with caplog.at_level(logging.WARNING):
        read_events(write("e.csv", text), on_error="skip")
    assert "dropped 1 row(s): bad_timestamp; first:" in caplog.text
    assert "e.csv:3: column 'timestamp'" in caplog.text


# ------------------------------------------------------------------------- JSON lines


def _jsonl(tmp_path, lines: list[str], name: str = "e.jsonl"):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def _event(i: int, **override) -> str:
    obj = {"user_id": f"u{i}", "timestamp": 1_700_000_000 + i, "action": "view",
           "product_id": f"p{i}"}
    obj.update(override)
    return json.dumps(obj)


def test_one_bad_json_line_is_named_and_skipped(tmp_path):
    path = _jsonl(tmp_path, [_event(1), '{"user_id": "u2", "timestamp": ', _event(3)])
    with pytest.raises(EventDataError, match=r"e\.jsonl:2: not valid JSON") as info:
        read_events(path)
    assert info.value.code == "bad_json"
    events, report = read_events(path, on_error="skip")
    assert sorted(events["product_id"].to_list()) == ["p1", "p3"]
    assert report.dropped == {"bad_json": 1}


def test_json_object_as_an_id_is_refused(tmp_path):
    path = _jsonl(tmp_path, [_event(1), _event(2, product_id={"sku": 2}), _event(3)])
    with pytest.raises(EventDataError) as info:
        read_events(path)
    err = info.value
    assert (err.line, err.column, err.code) == (2, "product_id", "bad_product_id")
    events, report = read_events(path, on_error="skip")
    assert report.dropped == {"bad_product_id": 1}
    assert events.height == 2


def test_json_string_that_looks_like_an_object_is_an_id(tmp_path):
    path = _jsonl(tmp_path, [_event(1, product_id='{"sku": 2}'), _event(2, product_id=[1])])
    events, report = read_events(path, on_error="skip")
    assert events["product_id"].to_list() == ['{"sku": 2}']
    assert report.dropped == {"bad_product_id": 1}


def test_json_null_and_nan_ids(tmp_path):
    path = _jsonl(tmp_path, [_event(1, user_id=None), _event(2, user_id="NaN"),
                             '{"user_id": NaN, "timestamp": 1700000000, "action": "view", '
                             '"product_id": "p3"}', _event(4)])
    events, report = read_events(path, on_error="skip")
    assert events["customer_id"].to_list() == ["u4"]
    assert report.dropped == {"empty_customer_id": 2, "bad_json": 1}


def test_json_numeric_ids_keep_their_written_form(tmp_path):
    path = _jsonl(tmp_path, [_event(1, user_id=7), _event(2, user_id=7.5), _event(3)])
    events, _ = read_events(path)
    assert sorted(events["customer_id"].to_list()) == ["7", "7.5", "u3"]


def test_jsonl_truncated_last_line_and_blank_lines(tmp_path):
    path = tmp_path / "e.jsonl"
    path.write_text(_event(1) + "\n\n" + _event(2) + "\n" + _event(3)[:20])
    events, report = read_events(path)
    assert events.height == 2
    assert report.dropped == {"blank_line": 1, "truncated_last_line": 1}


def test_jsonl_non_utf8_line(tmp_path):
    path = tmp_path / "e.jsonl"
    path.write_bytes(_event(1).encode() + b"\n" + _event(2).encode().replace(b"u2", b"u\xff2")
                     + b"\n" + _event(3).encode() + b"\n")
    with pytest.raises(EventDataError, match=r"e\.jsonl:2: not valid UTF-8"):
        read_events(path)
    events, report = read_events(path, on_error="skip")
    assert report.dropped == {"bad_encoding": 1}
    assert sorted(events["product_id"].to_list()) == ["p1", "p3"]


def test_jsonl_where_every_line_is_bad(tmp_path):
    path = _jsonl(tmp_path, ["{oops", "[1]"])
    with pytest.raises(EventDataError, match=r"e\.jsonl:1: not valid JSON"):
        read_events(path)
    events, report = read_events(path, on_error="skip")
    assert events.height == 0
    assert report.dropped == {"bad_json": 2}


# ---------------------------------------------------------------- event metadata


@pytest.mark.parametrize("columns", [("category",), ("brand",), ("price",),
                                     ("category", "price"), ("price", "brand")])
def test_events_with_any_subset_of_category_brand_price(write, columns):
    values = {"category": "shoes", "brand": "acme", "price": "9.5"}
    header = HEADER.strip() + "," + ",".join(columns) + "\n"
    line = "u1,1700000000,view,p1," + ",".join(values[c] for c in columns) + "\n"
    events, _ = read_events(write("e.csv", header + line))
    assert events.columns == ["customer_id", "timestamp", "action", "product_id",
                              *[c for c in ("category", "price", "brand") if c in columns]]


def test_missing_category_code_falls_back_to_category_id(write):
    text = ("user_id,timestamp,action,product_id,category_code,category_id\n"
            "u1,1700000000,view,p1,NaN,123\nu1,1700000001,view,p2,a.b,124\n"
            "u1,1700000002,view,p3,,125\n")
    events, _ = read_events(write("e.csv", text))
    assert events["category"].to_list() == ["123", "a.b", "125"]


def test_event_price_that_is_not_a_number(write):
    text = "user_id,timestamp,action,product_id,price\nu,1700000000,view,p,9.5\n" \
           "u,1700000001,view,p,ten\nu,1700000002,view,p,NaN\nu,1700000003,view,p,n/a\n"
    path = write("e.csv", text)
    with pytest.raises(EventDataError) as info:
        read_events(path)
    assert (info.value.line, info.value.column, info.value.value) == (3, "price", "ten")
    events, report = read_events(path, on_error="skip")
    assert report.dropped == {"bad_price": 1}
    assert events["price"].to_list() == [9.5, None, None]  # NaN and n/a: no price
