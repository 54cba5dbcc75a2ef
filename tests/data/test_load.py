from __future__ import annotations

import csv
import gzip
import json
import logging
from datetime import datetime, timezone

import polars as pl
import pytest

from funnelprint.data import ColumnMapping, EventDataError, read_events
from tests.conftest import shared_file

SEED = """user_id,timestamp,action,product_id
u1,2024-01-01 10:00:00,view,p1
u1,2024-01-01 10:01:00,cart,p1
u2,2024-01-01 10:00:30,view,p2
u1,2024-01-01 10:02:00,buy,p1
"""


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def test_seed_schema_with_header(write):
    events, report = read_events(write("e.csv", SEED))
    assert report.rows_read == 4 and events.height == 4
    assert events.columns == ["customer_id", "timestamp", "action", "product_id"]
    u1 = events.filter(pl.col("customer_id") == "u1")
    assert u1["action"].to_list() == ["view", "add_to_cart", "purchase"]
    assert u1["timestamp"][0] == utc(2024, 1, 1, 10, 0, 0)


def test_unsorted_input_is_sorted_by_customer_then_time(write):
    text = "user_id,timestamp,action,product_id\n" + "\n".join(
        [
            "b,2024-01-01 10:05:00,view,p3",
            "a,2024-01-01 10:09:00,view,p2",
            "b,2024-01-01 10:01:00,view,p1",
            "a,2024-01-01 10:00:00,view,p1",
        ]
    )
    events, _ = read_events(write("e.csv", text))
    for _, group in events.group_by("customer_id"):
        assert group["timestamp"].is_sorted()
    # each customer's events are contiguous
    assert events["customer_id"].rle_id().n_unique() == 2


def test_headerless_file_with_names(write):
    path = write("e.csv", "1700000000,view,42,alice\n1700000060,cart,42,alice\n")
    mapping = ColumnMapping.from_options(names="ts,event,item,user")
    events, report = read_events(path, mapping)
    assert events["customer_id"].to_list() == ["alice", "alice"]
    assert events["action"].to_list() == ["view", "add_to_cart"]
    assert report.mapping["timestamp"] == "ts"


def test_headerless_four_columns_assume_seed_order(write):
    events, _ = read_events(write("e.csv", "u1,1700000000,view,p1\nu1,1700000001,pv,p2\n"))
    assert events["product_id"].to_list() == ["p1", "p2"]
    assert events["action"].to_list() == ["view", "view"]


def test_headerless_other_width_asks_for_names(write):
    with pytest.raises(EventDataError, match="--names"):
        read_events(write("e.csv", "u1,1700000000,view,p1,9.99\n"))


@pytest.mark.parametrize(
    ("stamp", "encoding"),
    [
        ("1700000000", "epoch-s"),
        ("1700000000000", "epoch-ms"),
        ("1700000000000000", "epoch-us"),
        ("2023-11-14T22:13:20Z", "iso"),
        ("2023-11-15T00:13:20+02:00", "iso"),
        ("2023-11-14 22:13:20 UTC", "iso"),
        ("2023-11-14T22:13:20.000", "iso"),
    ],
)
def test_timestamp_encodings(write, stamp, encoding):
    text = f"user_id,timestamp,action,product_id\nu,{stamp},view,p\n"
    events, report = read_events(write("e.csv", text))
    assert report.timestamp_encoding == encoding
    assert events["timestamp"][0] == utc(2023, 11, 14, 22, 13, 20)


def test_retailrocket_export_without_flags(write):
    text = (
        "timestamp,visitorid,event,itemid,transactionid\n"
        "1433221332117,257597,view,355908,\n"
        "1433224214164,257597,addtocart,355908,\n"
        "1433221999827,111016,transaction,248676,4000\n"
    )
    events, report = read_events(write("rr.csv", text))
    assert report.timestamp_encoding == "epoch-ms"
    assert report.mapping["customer_id"] == "visitorid"
    assert sorted(events["action"].to_list()) == ["add_to_cart", "purchase", "view"]
    assert events.filter(pl.col("customer_id") == "111016")["timestamp"][0] == utc(
        2015, 6, 2, 5, 13, 19, 827000
    )


def test_explicit_columns_and_actions(write):
    text = (
        "who,when,what,sku,extra\n"
        "x,2024-01-01 00:00:00,atc,s1,1\nx,2024-01-01 00:00:05,wish,s1,2\n"
    )
    mapping = ColumnMapping.from_options(
        columns="customer=who,timestamp=when,action=what,product=sku", actions="atc=add_to_cart"
    )
    events, report = read_events(write("e.csv", text), mapping)
    assert events["action"].to_list() == ["add_to_cart", "wish"]
    assert report.other_actions == {"wish": 1}


def test_unknown_column_in_mapping_is_an_error(write):
    mapping = ColumnMapping.from_options(columns="customer=nope")
    with pytest.raises(ValueError, match="no such column"):
        read_events(write("e.csv", SEED), mapping)


def test_missing_required_column_names_file(write):
    path = write("e.csv", "user_id,timestamp,product_id\nu,2024-01-01,p\n")
    with pytest.raises(EventDataError, match=r"e\.csv: missing required column\(s\) action"):
        read_events(path)


def test_bad_timestamp_names_file_line_and_column(write):
    text = SEED + "u3,not-a-time,view,p9\n"
    with pytest.raises(EventDataError) as info:
        read_events(write("e.csv", text))
    err = info.value
    assert (err.line, err.column, err.value) == (6, "timestamp", "not-a-time")
    assert "e.csv:6" in str(err)


def test_a_few_empty_ids_are_dropped_and_counted_in_either_mode(write):
    text = SEED + " ,2024-01-01 10:03:00,view,p9\nu4,2024-01-01 10:03:00,view,\n"
    path = write("e.csv", text)
    for mode in ("raise", "skip"):
        events, report = read_events(path, on_error=mode)
        assert events.height == 4
        assert report.dropped == {"empty_customer_id": 1, "empty_product_id": 1}
        assert "e.csv:6: column 'user_id'" in report.examples["empty_customer_id"]


def test_malformed_row_reports_line(write):
    text = SEED + "u3,2024-01-01 10:03:00,view,p9,EXTRA\nu3,2024-01-01 10:04:00,view,p8\n"
    path = write("e.csv", text)
    with pytest.raises(EventDataError, match="malformed row") as info:
        read_events(path)
    assert info.value.line == 6
    events, report = read_events(path, on_error="skip")
    assert events.height == 5
    assert report.dropped["malformed_row"] == 1
    assert report.rows_read == 6


def test_skip_counts_each_bad_row_once(write):
    text = SEED + ",garbage,view,p1\nu5,garbage,view,p1\n"
    events, report = read_events(write("e.csv", text), on_error="skip")
    assert events.height == 4
    assert report.dropped == {"empty_customer_id": 1, "bad_timestamp": 1}


def test_exact_duplicates_removed_and_counted(write):
    text = SEED + "u1,2024-01-01 10:00:00,view,p1\nu1,2024-01-01 10:00:00,view,p7\n"
    events, report = read_events(write("e.csv", text))
    assert report.dropped["duplicate"] == 1
    assert events.height == 5


def test_truncated_last_line_is_dropped_and_counted(write):
    events, report = read_events(write("e.csv", SEED + "u9,2024-01-01 10:09:00,vi"))
    assert report.dropped == {"truncated_last_line": 1}
    assert events.height == 4


def test_gzip_parquet_and_jsonl_agree(write, tmp_path):
    reference, _ = read_events(write("e.csv", SEED))
    gz = tmp_path / "e.csv.gz"
    gz.write_bytes(gzip.compress(SEED.encode()))
    rows = list(csv.DictReader(SEED.splitlines()))
    jsonl = tmp_path / "e.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    parquet = tmp_path / "e.parquet"
    pl.DataFrame(rows).write_parquet(parquet)
    for path in (gz, jsonl, parquet):
        events, _ = read_events(path)
        assert events.equals(reference), path


def test_parquet_with_native_types(tmp_path):
    path = tmp_path / "e.parquet"
    pl.DataFrame(
        {
            "user_id": [1, 1],
            "timestamp": [datetime(2024, 1, 1, 10), datetime(2024, 1, 1, 11)],
            "action": ["view", "purchase"],
            "product_id": [10, 10],
            "price": [9.5, 9.5],
        }
    ).write_parquet(path)
    events, _ = read_events(path)
    assert events["customer_id"].to_list() == ["1", "1"]
    assert events["price"].to_list() == [9.5, 9.5]
    assert events["timestamp"][1] == utc(2024, 1, 1, 11)


def test_bad_price_is_an_error(write):
    text = "user_id,timestamp,action,product_id,price\nu,2024-01-01,view,p,abc\n"
    with pytest.raises(EventDataError, match="column 'price': not a finite, non-negative number"):
        read_events(write("e.csv", text))


def test_a_negative_price_is_refused_or_counted(write):
    text = ("user_id,timestamp,action,product_id,price\nu,2024-01-01,view,p,3.5\n"
            "u,2024-01-02,view,p,-79.37\nv,2024-01-01,view,p,0\n")
    path = write("e.csv", text)
    with pytest.raises(EventDataError, match=r"e\.csv:3: column 'price': not a finite, "
                                             r"non-negative number \(value '-79\.37'\)"):
        read_events(path)
    events, report = read_events(path, on_error="skip")
    assert events["price"].to_list() == [3.5, 0.0]
    assert report.dropped == {"bad_price": 1}


def test_a_negative_quantity_is_a_return_and_is_kept(write):
    text = ("user_id,timestamp,action,product_id,quantity\nu,2024-01-01,purchase,p,2\n"
            "u,2024-01-02,purchase,p,-1\n")
    events, report = read_events(write("e.csv", text))
    assert events["quantity"].to_list() == [2.0, -1.0]
    assert not report.dropped


def test_an_id_longer_than_the_service_takes_is_refused_or_counted(write):
    long_id = "x" * 300_000  # a stray quote can swallow a file into one field
    text = (f"user_id,timestamp,action,product_id,brand\nu,2024-01-01,view,p,b\n"
            f"{long_id},2024-01-01,view,p,b\nv,2024-01-01,view,{'p' * 201},b\n"
            f"w,2024-01-01,view,p,{'b' * 1001}\n")
    path = write("e.csv", text)
    with pytest.raises(EventDataError, match=r"e\.csv:3: column 'user_id': longer than "
                                             r"200 characters") as refused:
        read_events(path)
    assert len(str(refused.value)) < len(str(path)) + 300  # a readable line, not the value
    events, report = read_events(path, on_error="skip")
    assert events["customer_id"].to_list() == ["u"]
    assert report.dropped == {"long_customer_id": 1, "long_product_id": 1, "long_brand": 1}


def test_rees46_sample_without_flags():
    path = shared_file("rees46/2019-Oct_head.csv")
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    complete = [tuple(r) for r in rows[1:] if len(r) == 9]
    unique = set(complete)
    events, report = read_events(path)
    assert report.rows_read == len(rows) - 1
    assert report.dropped == {
        "truncated_last_line": len(rows) - 1 - len(complete),
        "duplicate": len(complete) - len(unique),
    }
    assert events.height == len(unique)
    assert events["customer_id"].n_unique() == len({r[7] for r in unique})
    assert events["product_id"].n_unique() == len({r[2] for r in unique})
    purchases = sum(r[1] == "purchase" for r in unique)
    assert events.filter(pl.col("action") == "purchase").height == purchases
    assert {"session_id", "category", "price", "brand"} <= set(events.columns)


def test_rows_with_empty_optional_fields_survive_a_refused_row(write):
    """Every row read is an event or counted under a reason, whatever is empty in it."""
    text = ("user_id,timestamp,action,product_id,category,brand,price,user_session\n"
            "u,2024-01-01 00:00,view,p1,,,,\n"
            "u,2024-01-01 00:01,view,p2,a.b,acme,3,s1\n"
            "v,not a time,view,p3,,,,\n"
            "w,2024-01-01 00:02,cart,p4,,b,,\n")
    events, report = read_events(write("e.csv", text), on_error="skip")
    assert events["product_id"].sort().to_list() == ["p1", "p2", "p4"]
    assert report.dropped == {"bad_timestamp": 1}
    assert report.rows_read == events.height + sum(report.dropped.values())


def test_duplicates_of_minute_timestamps_come_with_a_warning(write, caplog):
    text = ("user_id,timestamp,action,product_id\nu,2024-01-01 10:00,view,p\n"
            "u,2024-01-01 10:00,view,p\nu,2024-01-01 10:01,view,q\n")
    with caplog.at_level(logging.WARNING):
        events, report = read_events(write("e.csv", text))
    assert report.dropped == {"duplicate": 1} and events.height == 2
    assert "no seconds" in caplog.text and "real repeats" in caplog.text
