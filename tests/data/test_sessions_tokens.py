from __future__ import annotations

from datetime import datetime, timedelta, timezone

import polars as pl
import pytest

from funnelprint.data import SessionConfig, TokenConfig, prepare_frame, sessionize, tokenize

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def frame(rows: list[tuple[str, float, str, str]], **extra: list) -> pl.DataFrame:
    """rows: (customer, minutes after T0, action, product)."""
    return pl.DataFrame(
        {
            "customer_id": [r[0] for r in rows],
            "timestamp": [T0 + timedelta(minutes=r[1]) for r in rows],
            "action": [r[2] for r in rows],
            "product_id": [r[3] for r in rows],
            **extra,
        }
    ).with_columns(pl.col("timestamp").dt.cast_time_unit("us"))


def test_gap_splits_sessions_per_customer():
    events = frame([("a", 0, "view", "p"), ("a", 29, "view", "p"), ("a", 60, "view", "p"),
                    ("b", 61, "view", "p")])
    out, report = sessionize(events)
    a = out.filter(pl.col("customer_id") == "a")["session"].to_list()
    assert a[0] == a[1] != a[2]
    assert report.sessions == 3 and out["session"].n_unique() == 3
    assert out["session"].is_sorted()
    out, report = sessionize(events, SessionConfig(gap_minutes=20))
    assert report.sessions == 4 and out["session"].n_unique() == 4


def test_session_column_is_used_and_kept_contiguous():
    events = frame(
        [("a", 0, "view", "p1"), ("a", 1, "view", "p2"), ("a", 2, "view", "p3")],
        session_id=["s1", "s2", "s1"],
    )
    out, report = sessionize(events)
    assert report.sessions == 2
    assert out["session"].to_list() == [0, 0, 1]
    assert out["product_id"].to_list() == ["p1", "p3", "p2"]


def test_min_session_length_drops_and_counts():
    events = frame([("a", 0, "view", "p"), ("a", 1, "view", "p"), ("a", 100, "view", "p")])
    out, report = sessionize(events, SessionConfig(min_session_length=2))
    assert out.height == 2
    assert report.dropped_events == {"short_session": 1}
    assert out["session"].to_list() == [0, 0]


def test_bot_filter_removes_fast_customers():
    bot = [("bot", i / 10, "view", f"p{i}") for i in range(30)]  # 10 events per minute... x6
    human = [("h", i, "view", "p") for i in range(5)]
    out, report = sessionize(frame(bot + human), SessionConfig(max_events_per_minute=5))
    assert set(out["customer_id"]) == {"h"}
    assert report.dropped_events == {"bot_rate": 30}
    assert report.dropped_customers == {"bot_rate": 1}


def test_long_sessions_dropped():
    events = frame([("a", i, "view", "p") for i in range(12)] + [("b", 0, "view", "p")])
    out, report = sessionize(events, SessionConfig(max_events_per_session=10,
                                                   max_events_per_minute=None))
    assert set(out["customer_id"]) == {"b"}
    assert report.dropped_sessions == {"long_session": 1}


def test_tokens_distinguish_actions():
    events = frame([("a", 0, "view", "p001"), ("a", 1, "add_to_cart", "p001"),
                    ("a", 2, "remove_from_cart", "p001"), ("a", 3, "purchase", "p001"),
                    ("a", 4, "wishlist", "p001")])
    assert tokenize(events)["token"].to_list() == [
        "view_p001", "cart_p001", "remove_p001", "buy_p001", "wishlist_p001"
    ]


def test_rare_products_become_category_tokens():
    events = frame([("a", 0, "view", "p1"), ("a", 1, "view", "p1"), ("a", 2, "view", "p2")],
                   category=["dog", "dog", "cat"])
    tokens = tokenize(events, TokenConfig(rare_product_min_count=2))["token"].to_list()
    assert tokens == ["view_p1", "view_p1", "view_cat:cat"]


def test_prepare_frame_sorts_unsorted_input():
    events = frame([("b", 5, "view", "p"), ("a", 3, "view", "p"), ("a", 1, "view", "q")])
    log = prepare_frame(events)
    a = log.events.filter(pl.col("customer_id") == "a")
    assert a["product_id"].to_list() == ["q", "p"]
    assert log.session_report.sessions == 2


def test_invalid_config():
    with pytest.raises(ValueError):
        SessionConfig(gap_minutes=0)
