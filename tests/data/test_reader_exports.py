"""Real exports read as they come: missing-id markers, integer ids written as floats, hour and
day timestamps, action synonyms and names of one's own, a constant action, mapped products
files, and one vocabulary for files and the service's event batches."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import numpy as np
import polars as pl
import pytest

from funnelprint.data import ColumnMapping, EventDataError, prepare_events, read_events
from funnelprint.data.dataset import Dataset
from funnelprint.data.products import load_products
from funnelprint.data.records import check_records
from funnelprint.data.schema import ACTION_SYNONYMS, MISSING_VALUES, action_verb
from funnelprint.data.summary import summarize
from funnelprint.data.tokens import encode_tokens
from funnelprint.models.neural.explain import step_labels
from tests.conftest import shared_file

HEADER = "user_id,timestamp,action,product_id\n"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


# ------------------------------------------------------------------ missing ids


@pytest.mark.parametrize("marker", ["NA", "N/A", "null", "NULL", "None", "nan", "NaN", "",
                                    "#N/A", "nil", "<NA>"])
def test_each_missing_marker_is_a_missing_customer_dropped_and_counted(write, marker):
    text = HEADER + "".join(f"u{i},1700000000,view,p{i}\n" for i in range(4)) + (
        f"{marker},1700000060,view,p9\n")
    for mode in ("raise", "skip"):
        events, report = read_events(write("e.csv", text), on_error=mode)
        assert sorted(events["customer_id"].to_list()) == ["u0", "u1", "u2", "u3"]
        assert report.dropped == {"empty_customer_id": 1}
        assert "e.csv:6: column 'user_id'" in report.examples["empty_customer_id"]


def test_markers_in_the_session_column_fall_back_to_the_inactivity_gap(write):
    text = "user_id,timestamp,action,product_id,session_id\n" + (
        "u1,1700000000,view,p1,s1\nu1,1700000060,view,p2,NA\nu1,1700009000,view,p3,null\n")
    log = prepare_events(write("e.csv", text))
    assert log.events.height == 3 and not log.dropped
    assert log.load_report.filled == {"session_id_from_gap": 2}
    assert log.session_report.sessions == 3  # s1, then two gap sessions 2.5 hours apart


def diginetica(rows: int = 10, anonymous: int = 7) -> str:
    """The DIGINETICA view log's shape: `;`-separated, `NA` for anonymous users, a date."""
    lines = ["sessionId;userId;itemId;timeframe;eventdate"]
    for i in range(rows):
        user = "NA" if i < anonymous else str(100 + i)
        lines.append(f"{i // 2 + 1};{user};{8000 + i};{1000 * i};2016-05-0{1 + i % 9}")
    return "\n".join(lines) + "\n"


def test_most_customers_missing_is_one_line_naming_the_share_and_the_options(write):
    path = write("views.csv", diginetica())
    with pytest.raises(EventDataError) as info:
        read_events(path, ColumnMapping(constant_action="view"))
    err = info.value
    assert (err.line, err.column, err.value, err.code) == (2, "userId", "NA",
                                                            "empty_customer_id")
    message = str(err)
    assert "\n" not in message
    assert "no customer id in 7 of 10 rows (70%)" in message
    assert "--missing-customer session" in message and "--on-error skip" in message
    events, report = read_events(path, ColumnMapping(constant_action="view"), on_error="skip")
    assert events.height == 3 and report.dropped == {"empty_customer_id": 7}
    assert len(report.warnings) == 1 and "7 of 10 rows (70%)" in report.warnings[0]
    assert "--missing-customer session" in report.warnings[0]


def test_missing_customer_session_reads_anonymous_rows_as_their_session(write):
    mapping = ColumnMapping(constant_action="view", missing_customer="session")
    events, report = read_events(write("views.csv", diginetica()), mapping)
    assert events.height == 10 and not report.dropped
    assert report.filled == {"customer_id_from_session": 7}
    customers = set(events["customer_id"].to_list())
    # Sessions 1..4 stand for customers of their own; a session id never meets a user id.
    assert {"session:1", "session:2", "session:3", "session:4"} <= customers
    assert {"107", "108", "109"} <= customers
    assert events.filter(pl.col("customer_id") == "session:1")["product_id"].to_list() == [
        "8000", "8001"]


def test_missing_customer_session_needs_a_session_column(write):
    path = write("e.csv", HEADER + "NA,1700000000,view,p1\n")
    with pytest.raises(EventDataError, match="needs a session column"):
        read_events(path, ColumnMapping(missing_customer="session"))
    with pytest.raises(ValueError, match="drop, session"):
        ColumnMapping(missing_customer="guess")


def test_a_missing_value_next_to_a_bad_one_still_names_the_bad_one(write):
    text = HEADER + "u1,1700000000,view,p1\nNA,1700000001,view,p2\nu2,yesterday,view,p3\n" \
        + "".join(f"u{i},1700000000,view,q{i}\n" for i in range(5))
    with pytest.raises(EventDataError) as info:
        read_events(write("e.csv", text))
    assert (info.value.line, info.value.code) == (4, "bad_timestamp")


# ------------------------------------------------------------------ float ids


def test_integer_ids_written_as_floats_are_read_as_integers_and_counted(write):
    text = "user_id,timestamp,action,product_id,session_id,category_id\n" + (
        "208995.0,1700000000,view,12.0,7.0,4.0\n"
        "208995,1700000060,view,12,7,4\n"
        "3.5,1700000120,view,1.50,x.0,-2.00\n")
    events, report = read_events(write("e.csv", text))
    assert events["customer_id"].to_list() == ["208995", "208995", "3.5"]
    assert events["product_id"].to_list() == ["12", "12", "1.50"]
    assert events["session_id"].to_list() == ["7", "7", "x.0"]
    assert events["category"].to_list() == ["4", "4", "-2"]
    assert report.normalised == {"customer_id": 1, "product_id": 1, "session_id": 1,
                                 "category": 2}


def test_float_ids_from_parquet_and_json_match_their_integer_form(tmp_path):
    parquet = tmp_path / "e.parquet"
    pl.DataFrame({"user_id": [1.0, 2.0], "timestamp": [1_700_000_000, 1_700_000_060],
                  "action": ["view", "pay"], "product_id": [208995.0, 5.0]}
                 ).write_parquet(parquet)
    events, report = read_events(parquet)
    assert sorted(events.select("customer_id", "product_id").rows()) == [("1", "208995"),
                                                                         ("2", "5")]
    assert report.normalised == {"customer_id": 2, "product_id": 2}
    checked = check_records([{"user_id": 208995.0, "timestamp": 1_700_000_000,
                              "event": "paid", "item_id": 12.0}])
    assert checked.events.select("customer_id", "product_id", "action").row(0) == (
        "208995", "12", "purchase")


def test_a_products_file_with_float_ids_describes_the_events_items(write):
    events = write("e.csv", HEADER + "u1,1700000000,view,208995\nu1,1700000060,buy,17\n")
    products = write("p.csv", "product_id,brand\n208995.0,acme\n17.0,zenith\n")
    catalogue, report = load_products(products)
    assert catalogue["product_id"].to_list() == ["208995", "17"]
    assert report.normalised == {"product_id": 2}
    dataset = Dataset.from_events(prepare_events(events), products=catalogue)
    assert dict(zip(dataset.item_ids, dataset.item_brands, strict=True)) == {
        "208995": "acme", "17": "zenith"}


# ------------------------------------------------------------------ timestamps


@pytest.mark.parametrize("written, moment", [
    ("2014-12-06 02", utc(2014, 12, 6, 2)),
    ("2014-12-06T02", utc(2014, 12, 6, 2)),
    ("2014-12-06", utc(2014, 12, 6)),
    ("2014/12/06", utc(2014, 12, 6)),
    ("2014/12/06 02:30", utc(2014, 12, 6, 2, 30)),
    ("2014.12.06 02:30:05", utc(2014, 12, 6, 2, 30, 5)),
    ("2014-1-6", utc(2014, 1, 6)),
    ("2014-12-06 02 UTC", utc(2014, 12, 6, 2)),
    ("2014-12-06T02+01:00", utc(2014, 12, 6, 1)),
    ("2014-12-06 02:30:00 +0100", utc(2014, 12, 6, 1, 30)),
    ("20141206", utc(2014, 12, 6)),
    ("201412060230", utc(2014, 12, 6, 2, 30)),
    ("20141206023005", utc(2014, 12, 6, 2, 30, 5)),
    ("Sat, 06 Dec 2014 02:30:00 GMT", utc(2014, 12, 6, 2, 30)),
])
def test_hour_and_day_resolution_timestamps(write, written, moment):
    quoted = f'"{written}"' if "," in written else written
    text = HEADER + f"u1,{quoted},view,p1\nu1,1700000000,view,p2\n"
    events, report = read_events(write("e.csv", text))
    stamps = dict(zip(events["product_id"], events["timestamp"], strict=True))
    assert stamps == {"p1": moment, "p2": utc(2023, 11, 14, 22, 13, 20)}
    assert not report.dropped


def test_a_column_of_dates_alone_and_in_a_parquet_integer_column(write, tmp_path):
    events, report = read_events(write("e.csv", HEADER + "u1,20141206,view,p1\n"
                                                "u1,20141207,view,p2\n"))
    assert report.timestamp_encoding == "yyyymmdd"
    assert events["timestamp"].to_list() == [utc(2014, 12, 6), utc(2014, 12, 7)]
    path = tmp_path / "e.parquet"
    pl.DataFrame({"user_id": ["u1", "u1"], "timestamp": [20141206, 1_700_000_000],
                  "action": ["view", "view"], "product_id": ["p1", "p2"]}).write_parquet(path)
    events, report = read_events(path)
    assert report.timestamp_encoding == "epoch-s+yyyymmdd"
    assert events["timestamp"].to_list() == [utc(2014, 12, 6), utc(2023, 11, 14, 22, 13, 20)]


@pytest.mark.parametrize("written", ["2014-13-06", "2014-12-06 25", "06/12/2014", "2014120",
                                     "20141306"])
def test_malformed_or_ambiguous_dates_stay_errors(write, written):
    text = HEADER + f"u1,{written},view,p1\n"
    with pytest.raises(EventDataError) as info:
        read_events(write("e.csv", text))
    assert info.value.code in ("bad_timestamp", "timestamp_out_of_range")
    assert info.value.value == written


# ------------------------------------------------------------------ actions


def test_every_synonym_is_read_by_files_and_service_batches_alike(write):
    raws = sorted(ACTION_SYNONYMS)
    # Case, spaces, hyphens and underscores do not matter.
    written = [r.upper() if i % 3 == 0 else r for i, r in enumerate(raws)]
    written[1] = "Add To Cart"
    written[2] = "add-to-cart"
    text = HEADER + "".join(f"u1,{1_700_000_000 + i},{w},p{i}\n"
                            for i, w in enumerate(written))
    events, report = read_events(write("e.csv", text))
    assert not report.warnings and not report.other_actions
    from_file = dict(zip(events["product_id"], events["action"], strict=True))
    checked = check_records([{"customer_id": "u1", "timestamp": 1_700_000_000 + i,
                              "action": w, "product_id": f"p{i}"}
                             for i, w in enumerate(written)])
    assert not checked.problems
    from_batch = dict(zip(checked.events["product_id"], checked.events["action"], strict=True))
    assert from_file == from_batch
    expected = {f"p{i}": ACTION_SYNONYMS.get(w.lower().replace(" ", "").replace("-", "")
                                             .replace("_", ""))
                for i, w in enumerate(written)}
    assert from_file == expected
    assert set(from_file.values()) == {"view", "add_to_cart", "remove_from_cart", "purchase",
                                       "favorite"}


@pytest.mark.parametrize("raw", ["pay", "paid", "checkout", "order", "buy", "transaction",
                                 "conversion", "sale", "Purchase"])
def test_purchase_synonyms(raw):
    assert ColumnMapping().action_of(raw) == "purchase"


@pytest.mark.parametrize("raw", ["fav", "favorite", "favourite", "wishlist",
                                 "add_to_wishlist"])
def test_favourites_are_their_own_action_type_not_the_cart(raw):
    assert ColumnMapping().action_of(raw) == "favorite"


def test_renamed_values_are_reported_and_the_rest_kept_as_their_own_type(write):
    text = HEADER + ("u1,1700000000,PV,p1\nu1,1700000001,pv,p2\nu1,1700000002,fav,p3\n"
                     "u1,1700000003,pay,p4\nu1,1700000004,view,p5\nu1,1700000005,share,p6\n")
    events, report = read_events(write("e.csv", text))
    assert report.action_mapping == {"fav": "favorite", "pay": "purchase", "pv": "view"}
    assert report.other_actions == {"share": 1}
    assert events["action"].to_list() == ["view", "view", "favorite", "purchase", "view",
                                          "share"]
    assert not report.warnings


def test_a_log_without_a_recognised_purchase_is_warned_about_by_value(write, caplog):
    text = HEADER + "u1,1700000000,view,p1\nu1,1700000001,acquire,p1\nu1,1700000002,like,p2\n"
    _, report = read_events(write("e.csv", text))
    assert len(report.warnings) == 1
    warning = report.warnings[0]
    assert "no purchase" in warning and "'acquire'" in warning and "'like'" in warning
    assert "--actions VALUE=purchase" in warning
    assert warning in caplog.text
    codes = HEADER + "u1,1700000000,1,p1\nu1,1700000001,4,p1\n"
    _, report = read_events(write("c.csv", codes))
    assert "codes" in report.warnings[0] and "--actions CODE=NAME" in report.warnings[0]


def test_actions_take_any_name_and_the_name_is_read_everywhere(write):
    text = HEADER + ("u1,1700000000,1,p1\nu1,1700000001,5,p1\nu1,1700000002,6,p2\n"
                     "u1,1700000003,4,p2\nu2,1700000000,6,p1\n")
    mapping = ColumnMapping.from_options(actions="1=view,4=buy,5=favorite,6=consult")
    log = prepare_events(write("e.csv", text), mapping)
    assert log.events["action"].to_list() == ["view", "favorite", "consult", "purchase",
                                              "consult"]
    assert log.load_report.action_mapping == {"1": "view", "4": "purchase", "5": "favorite",
                                              "6": "consult"}
    assert sorted(log.events["token"].unique().to_list()) == [
        "buy_p2", "consult_p1", "consult_p2", "fav_p1", "view_p1"]
    dataset = Dataset.from_events(log, collapse_repeats=False)
    assert set(dataset.action_names) >= {"favorite", "consult"}
    tokens = encode_tokens(dataset.sequences, dataset.action_names, dataset.item_ids)
    assert sorted(tokens.names) == ["buy_p2", "consult_p1", "consult_p2", "fav_p1", "view_p1"]
    first = dataset.sequences.select(np.array([dataset.customer_index()["u1"]]))
    assert step_labels(dataset, first) == ["viewed p1", "favorited p1", "consult p2",
                                           "bought p2"]
    assert action_verb("consult") == "consult"


@pytest.mark.parametrize("bad", ["5=", "5=null", "5=NA"])
def test_an_empty_or_missing_action_name_is_refused(bad):
    with pytest.raises(ValueError, match="--actions"):
        ColumnMapping.from_options(actions=bad)


def test_a_rename_can_name_a_missing_marker_as_an_action(write):
    text = HEADER + "u1,1700000000,NA,p1\nu1,1700000001,buy,p1\n"
    events, _ = read_events(write("e.csv", text), ColumnMapping.from_options(actions="NA=view"))
    assert events["action"].to_list() == ["view", "purchase"]


def test_a_constant_action_for_a_log_without_one(write, caplog):
    path = write("e.csv", "user_id,timestamp,product_id\nu1,1700000000,p1\nu2,1700000060,p2\n")
    with pytest.raises(EventDataError, match="--action view"):
        read_events(path)
    events, report = read_events(path, ColumnMapping(constant_action="view"))
    assert events["action"].to_list() == ["view", "view"]
    assert report.mapping["action"] == "constant: view"
    assert not report.warnings  # no purchase is expected of a view log
    mapping = ColumnMapping.from_options(action="pay")
    assert read_events(path, mapping)[0]["action"].to_list() == ["purchase", "purchase"]
    # A file that has an action column: the constant wins, and the log says so.
    with_column = write("a.csv", HEADER + "u1,1700000000,cart,p1\n")
    events, _ = read_events(with_column, ColumnMapping(constant_action="view"))
    assert events["action"].to_list() == ["view"]
    assert "column 'action' ignored" in caplog.text
    with pytest.raises(ValueError, match="not both"):
        ColumnMapping.from_options(columns="action=action", action="view")


def test_recbole_typed_headers_are_recognised(write):
    text = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n196\t242\t3\t881250949\n"
    events, report = read_events(write("ml.inter", text), ColumnMapping(constant_action="view"))
    assert events.row(0) == ("196", utc(1997, 12, 4, 15, 55, 49), "view", "242")
    assert report.mapping["customer_id"] == "user_id:token"


def test_a_sequence_file_is_pointed_to_its_loader(write):
    with pytest.raises(EventDataError, match="sasrec:PATH"):
        read_events(write("Video.txt", "1 6393\n1 13504\n"))


# ------------------------------------------------------------------ products files


def test_products_columns_mapped_by_name(write):
    path = write("sku.csv", "sku_id,cat_name,maker,amount\n7.0,shoes,acme,9.5\n8,hats,,1\n")
    for columns in ({"product": "sku_id", "category": "cat_name", "brand": "maker",
                     "price": "amount"},
                    "product=sku_id,category=cat_name,brand=maker,price=amount"):
        products, report = load_products(path, columns=columns)
        assert products.rows() == [("7", "shoes", "acme", 9.5), ("8", "hats", None, 1.0)]
        assert report.mapping == {"product_id": "sku_id", "category": "cat_name",
                                  "brand": "maker", "price": "amount"}
    with pytest.raises(EventDataError, match="product=sku: no such column"):
        load_products(path, columns={"product": "sku"})
    with pytest.raises(ValueError, match="unknown field"):
        load_products(path, columns={"colour": "maker"})


def test_products_category_falls_back_to_the_id_and_repeats_take_the_first_known(write):
    text = ("product_id,category_id,category_code,brand\n"
            "1,100,shoes.running,\n2,200,,acme\n1,100,,zenith\n3,,,\n3,300,,beta\n")
    products, report = load_products(write("item.csv", text))
    assert products.rows() == [("1", "shoes.running", "zenith"), ("2", "200", "acme"),
                               ("3", "300", "beta")]
    assert report.dropped == {"duplicate_product_id": 2}


# ------------------------------------------------------------------ real logs


def test_taobao_sample_reads_pay_as_purchase_and_fav_as_favorite_without_flags(tmp_path):
    source = shared_file("taobao/userbehavior_active_sample.csv")
    with open(source) as fh:
        head = "".join(line for _, line in zip(range(20_001), fh, strict=False))
    path = tmp_path / "taobao.csv"
    path.write_text(head)
    log = prepare_events(path)
    summary = summarize(log)
    assert summary["actions"]["purchase"] > 0 and summary["actions"]["favorite"] > 0
    assert summary["actions"]["view"] > 10 * summary["actions"]["add_to_cart"] > 0
    assert "fav" not in summary["other_actions"] and "pay" not in summary["other_actions"]
    assert summary["action_mapping"] == {"cart": "add_to_cart", "fav": "favorite",
                                         "pay": "purchase"}
    assert not summary["warnings"] and not summary["dropped"]
    json.dumps(summary)  # inspect --json prints it


def test_rees46_heads_read_as_before(tmp_path):
    october = read_events(shared_file("rees46/2019-Oct_head.csv"))[1]
    assert (october.events, october.dropped) == (17_429, {"truncated_last_line": 1,
                                                          "duplicate": 5})
    assert october.action_mapping == {"cart": "add_to_cart"} and not october.warnings
    cosmetics = read_events(shared_file("rees46-cosmetics/data_2022_oct.csv"))[1]
    assert (cosmetics.events, dict(cosmetics.dropped)) == (924, {"duplicate": 75})
    assert not cosmetics.normalised and not cosmetics.warnings
    products, report = load_products(shared_file("rees46-cosmetics/item.csv"))
    assert report.products == 54_043 and products["category"].null_count() == 0
    assert products["brand"].null_count() < products.height / 2


@pytest.mark.parametrize("marker", sorted(MISSING_VALUES))
def test_service_batches_refuse_a_missing_customer_as_files_drop_it(marker):
    checked = check_records([{"customer_id": marker, "timestamp": 1_700_000_000,
                              "action": "view", "product_id": "p"}])
    assert [p.code for p in checked.problems] == ["empty_customer_id"]
