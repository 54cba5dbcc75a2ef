"""A batch body from bytes to elements: parsed element by element, the batch limit found
while parsing (and on the start of a body still arriving), every bad element kept apart."""

from __future__ import annotations

import json

import pytest

from funnelprint.serve.batches import (
    EVENT_CHARS,
    BatchError,
    TooLarge,
    over_batch_limit,
    parse_batch,
    screen,
)

EVENT = {"customer_id": "c", "timestamp": 1772359200, "action": "view", "product_id": "p"}


def body(*elements) -> bytes:
    return json.dumps({"events": list(elements)}).encode()


def test_elements_are_parsed_as_json_would_parse_them():
    elements = [EVENT, 7, "x", None, [], {"nested": {"a": [1, "b"]}}, {"s": "é \u00e9"}]
    assert parse_batch(body(*elements), 100) == elements
    assert parse_batch(b' { "events" : [ ] } ', 5) == []


@pytest.mark.parametrize("raw, status, code", [
    (b"[1, 2]", 422, "invalid_batch"),
    (b'{"events": {}}', 422, "invalid_batch"),
    (b'{"other": 1}', 422, "invalid_batch"),
    (b'{"events": [], "events": []}', 422, "invalid_batch"),
    (b"{}", 422, "invalid_batch"),
    (b'{"events": [1, 2', 400, "invalid_json"),
    (b'{"events": [1,, 2]}', 400, "invalid_json"),
    (b'{"events": []} trailing', 400, "invalid_json"),
    (b'{"events": ["\xff"]}', 400, "invalid_json"),
    (b'{"events": [' + b"[" * 5000 + b"]" * 5000 + b"]}", 400, "invalid_json"),
    (b'{"events": [1, 1, 1, 1]}', 413, "batch_too_large"),
])
def test_a_body_that_is_not_a_batch_is_refused_whole(raw, status, code):
    with pytest.raises(BatchError) as refused:
        parse_batch(raw, 3)
    assert (refused.value.status, refused.value.code) == (status, code)


def test_the_batch_limit_is_found_on_the_start_of_a_body():
    flood = b'{"events":[' + b",".join([b"1"] * 100_000) + b"]}"
    assert over_batch_limit(flood[:4096], 1000)
    assert not over_batch_limit(body(*[EVENT] * 10)[:200], 1000)  # cut mid-element: later
    assert not over_batch_limit(b'{"events": [1, 2', 1000)


def test_an_element_too_large_is_skipped_without_parsing_and_refused_alone():
    huge = b"[" + b",".join([b"[]"] * (EVENT_CHARS // 2)) + b"]"
    raw = b'{"events": [' + json.dumps(EVENT).encode() + b"," + huge + b"," + \
        json.dumps(EVENT).encode() + b"]}"
    elements = parse_batch(raw, 10)
    assert elements[0] == elements[2] == EVENT and isinstance(elements[1], TooLarge)
    kept, refused = screen(elements)
    assert kept == [0, 2] and [(r.index, r.code) for r in refused] == [(1, "event_too_large")]


def test_screening_refuses_what_no_store_keeps():
    elements = parse_batch(b'{"events": [' + b",".join([
        json.dumps(EVENT).encode(),
        b'{"customer_id": "\\ud800", "timestamp": 1, "action": "view", "product_id": "p"}',
        b'{"customer_id": "c", "timestamp": 1, "action": "view", "product_id": "p", '
        b'"extra": {"k\\udfff": 1}}',
        json.dumps({**EVENT, "brand": "b\x00"}).encode(),
        json.dumps({**EVENT, "category": "c" * 1001}).encode(),
        b"{}", b"3"]) + b"]}", 100)
    kept, refused = screen(elements)
    assert kept == [0]
    assert [(r.index, r.code) for r in refused] == [
        (1, "bad_value"), (2, "bad_value"), (3, "bad_value"), (4, "too_long"),
        (5, "missing_field"), (6, "bad_record")]
    assert "surrogate" in refused[0].reason and "NUL" in refused[2].reason
