from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import polars as pl
import pytest

from funnelprint.data.dataset import Dataset, kcore_filter
from funnelprint.data.pipeline import prepare_frame

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def log(with_meta: bool = True) -> pl.DataFrame:
    """Customer a: two visits (view, cart, buy of p1; later a view of p2); b: one view."""
    minutes = [0, 1, 2, 120, 0]
    frame = pl.DataFrame({
        "customer_id": ["a", "a", "a", "a", "b"],
        "timestamp": [T0 + timedelta(minutes=m) for m in minutes],
        "action": ["view", "add_to_cart", "purchase", "view", "view"],
        "product_id": ["p1", "p1", "p1", "p2", "p3"],
    }).with_columns(pl.col("timestamp").dt.cast_time_unit("us"))
    if with_meta:
        frame = frame.with_columns(pl.Series("category", ["pets", None, "pets", "toys", None]),
                                   pl.Series("brand", ["acme"] * 3 + [None, None]),
                                   pl.Series("price", [5.0, 5.0, 6.0, None, None]))
    return prepare_frame(frame).events


def meta(data: Dataset, values: np.ndarray | None) -> dict[str, object]:
    assert values is not None
    return dict(zip(data.item_ids.tolist(), values.tolist(), strict=True))


def row_of(data: Dataset, customer: str) -> dict[str, list]:
    seq = data.sequences.select(np.array([data.customer_index()[customer]]))
    assert seq.sessions is not None
    return {"items": data.item_ids[seq.items].tolist(), "actions": seq.actions.tolist(),
            "sessions": seq.sessions.tolist()}


def test_from_events_keeps_sessions_and_describes_items():
    every = Dataset.from_events(log(), collapse_repeats=False)
    assert every.n_interactions == 5
    a = row_of(every, "a")
    assert a["items"] == ["p1", "p1", "p1", "p2"]
    sessions = a["sessions"]
    assert sessions[:3] == [sessions[0]] * 3 and sessions[3] != sessions[0]
    assert meta(every, every.item_categories) == {"p1": "pets", "p2": "toys", "p3": ""}
    assert meta(every, every.item_brands) == {"p1": "acme", "p2": "", "p3": ""}
    prices = meta(every, every.item_prices)
    assert prices["p1"] == 6.0 and np.isnan([prices["p2"], prices["p3"]]).all()
    collapsed = row_of(Dataset.from_events(log()), "a")
    assert collapsed["items"] == ["p1", "p2"]
    assert collapsed["sessions"] == [sessions[0], sessions[3]]
    assert collapsed["actions"] == [3, 0]  # view → cart → buy of p1: a purchase
    bare = Dataset.from_events(log(with_meta=False))
    assert bare.item_categories is None and bare.item_brands is None
    assert bare.item_prices is None


def test_products_table_adds_to_the_events_metadata():
    products = pl.DataFrame({"product_id": ["p2", "p3", "p9"], "category": ["games", None, "x"],
                             "price": [30.0, 1.5, 2.0]})
    data = Dataset.from_events(log(), collapse_repeats=False, products=products)
    assert meta(data, data.item_categories) == {"p1": "pets", "p2": "games", "p3": ""}
    # the table has no brand column: the events' brands stay
    assert meta(data, data.item_brands) == {"p1": "acme", "p2": "", "p3": ""}
    assert meta(data, data.item_prices) == {"p1": 6.0, "p2": 30.0, "p3": 1.5}
    bare = Dataset.from_events(log(with_meta=False), products=products.drop("category"))
    assert bare.item_categories is None
    assert meta(bare, bare.item_prices) == {"p1": pytest.approx(np.nan, nan_ok=True),
                                            "p2": 30.0, "p3": 1.5}
    table = data.item_table()
    assert table.columns == ["item", "product_id", "category", "brand", "price"]
    assert table["category"].null_count() == 1


def test_aligned_to_maps_onto_fitted_items_and_counts_the_rest():
    data = Dataset.from_events(log(), collapse_repeats=False)
    fitted_items = np.array(["p0", "p3", "p1"])
    aligned = data.aligned_to(fitted_items)
    assert aligned.unknown_events == 1 and aligned.unknown_items == 1  # p2
    moved = aligned.dataset
    assert moved.item_ids.tolist() == fitted_items.tolist()
    assert moved.customer_ids.tolist() == data.customer_ids.tolist()
    assert row_of(moved, "a")["items"] == ["p1", "p1", "p1"]
    assert row_of(moved, "b")["items"] == ["p3"]
    assert moved.item_categories is not None
    assert moved.item_categories.tolist() == ["", "", "pets"]
    nothing = data.aligned_to(np.array(["zz"]))
    assert nothing.dataset.n_interactions == 0 and nothing.unknown_events == 5
    assert nothing.dataset.sequences.lengths.tolist() == [0, 0]


def test_arrays_round_trip_with_sessions_and_metadata():
    data = Dataset.from_events(log(), collapse_repeats=False)
    arrays, meta = data.to_arrays()
    back = Dataset.from_arrays(arrays, meta)
    assert np.array_equal(back.sequences.sessions, data.sequences.sessions)
    assert back.item_brands.tolist() == data.item_brands.tolist()
    assert np.array_equal(back.item_prices, data.item_prices, equal_nan=True)
    bare = Dataset.from_events(log(with_meta=False))
    arrays, meta = bare.to_arrays()
    assert "sessions" in arrays and "item_prices" not in arrays
    assert Dataset.from_arrays(arrays, meta).item_brands is None
    with pytest.raises(ValueError, match="brands"):
        Dataset(data.customer_ids, data.item_ids, data.sequences,
                item_brands=np.array(["x"], dtype=object)).check()


def test_kcore_keeps_item_metadata():
    rows = [("a", "1"), ("a", "2"), ("b", "1"), ("b", "2"), ("c", "3"), ("c", "1")]
    frame = pl.DataFrame({"customer_id": [r[0] for r in rows], "item_id": [r[1] for r in rows],
                          "action": ["view"] * 6, "time": list(range(6))})
    products = pl.DataFrame({"product_id": ["1", "2", "3"], "brand": ["x", "y", "z"],
                             "price": [1.0, 2.0, 3.0]})
    core = kcore_filter(Dataset.from_frame(frame, products=products), 2)
    assert sorted(core.item_ids.tolist()) == ["1", "2"]
    assert dict(zip(core.item_ids, core.item_brands, strict=True)) == {"1": "x", "2": "y"}
    assert core.item_prices.size == 2


def test_a_products_table_of_another_shop_is_refused():
    frame = pl.DataFrame({"customer_id": ["u1", "u1"], "product_id": ["p1", "p2"],
                          "action": ["view", "purchase"],
                          "timestamp": [1_700_000_000_000_000, 1_700_000_060_000_000]})
    dataset = Dataset.from_events(prepare_frame(frame.with_columns(
        pl.col("timestamp").cast(pl.Datetime("us", "UTC")))))
    other = pl.DataFrame({"product_id": ["SKU-1", "SKU-2"], "price": [1.0, 2.0]})
    with pytest.raises(ValueError, match="describes none of the 2 items"):
        dataset.with_products(other)
    half = pl.DataFrame({"product_id": ["p1", "SKU-2"], "price": [1.0, 2.0]})
    assert dataset.with_products(half).item_prices is not None


def test_an_item_takes_its_latest_price_whoever_saw_it_last_in_the_file():
    """The log is sorted by customer: the customer that comes last saw p1 and p2 first (at
    the old prices); the other saw them a month later at the new ones, which the items keep."""
    def frame(early: str, late: str) -> pl.DataFrame:
        return pl.DataFrame({
            "customer_id": [early, early, late, late],
            "timestamp": [T0, T0 + timedelta(minutes=1), T0 + timedelta(days=30),
                          T0 + timedelta(days=30, minutes=1)],
            "action": ["view"] * 4, "product_id": ["p1", "p2", "p1", "p2"],
            "price": [3.0, 7.0, 4.0, 6.0],
        }).with_columns(pl.col("timestamp").dt.cast_time_unit("us").dt.replace_time_zone("UTC"))

    last = prepare_frame(frame("a", "z")).events["customer_id"][-1]
    events = prepare_frame(frame(last, "z" if last == "a" else "a")).events
    assert events["customer_id"][-1] == last  # the old prices are the file's last rows
    dataset = Dataset.from_events(events)
    prices = dict(zip(dataset.item_ids, dataset.item_prices, strict=True))
    assert prices == {"p1": 4.0, "p2": 6.0}
