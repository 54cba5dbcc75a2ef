"""JSON records checked by the file reader's rules, refused one by one by position."""

from __future__ import annotations

from funnelprint.data.records import check_records


def test_aliases_synonyms_and_timestamp_forms_as_in_files():
    checked = check_records([
        {"user_id": "a", "ts": "2026-03-01T10:00:00+02:00", "event": "cart", "item_id": 7},
        {"customer_id": "b", "timestamp": 1772359200000, "action": "buy", "product_id": "p"},
        {"visitorid": "c", "event_time": "2026-03-01 08:00:00 UTC", "event_type": "pv",
         "sku": "q", "price": "9.5"},
    ])
    assert not checked.problems
    events = checked.events
    assert events["customer_id"].to_list() == ["a", "b", "c"]
    assert events["action"].to_list() == ["add_to_cart", "purchase", "view"]
    assert events["product_id"].to_list() == ["7", "p", "q"]
    assert [t.hour for t in events["timestamp"].to_list()] == [8, 10, 8]
    assert events["price"].to_list() == [None, None, 9.5]


def test_each_bad_record_is_refused_on_its_own():
    checked = check_records([
        {"customer_id": "a", "timestamp": "2026-03-01T10:00:00Z", "action": "view",
         "product_id": "p"},
        "not an object",
        {"customer_id": "nan", "timestamp": "2026-03-01T10:00:00Z", "action": "view",
         "product_id": "p"},
        {"customer_id": "a", "timestamp": "1800-01-01T00:00:00Z", "action": "view",
         "product_id": "p"},
        {"customer_id": "a", "timestamp": "2026-03-01T10:00:00Z", "action": "view",
         "product_id": {"nested": 1}},
        {"customer_id": "a", "timestamp": "2026-03-01T10:00:00Z", "product_id": "p"},
    ])
    assert checked.events["index"].to_list() == [0]
    assert [(p.index, p.code) for p in checked.problems] == [
        (1, "bad_record"), (2, "empty_customer_id"), (3, "timestamp_out_of_range"),
        (4, "bad_product_id"), (5, "empty_action")]


def test_a_batch_missing_a_required_field_everywhere():
    checked = check_records([{"customer_id": "a", "timestamp": 1772359200}])
    assert checked.events.height == 0
    assert checked.problems[0].code == "missing_field"
    assert "action, product_id" in checked.problems[0].message


def test_objects_without_fields_are_refused_each_as_missing_fields():
    checked = check_records([{}, {}])
    assert checked.events.height == 0
    assert [(p.index, p.code) for p in checked.problems] == [(0, "missing_field"),
                                                              (1, "missing_field")]
