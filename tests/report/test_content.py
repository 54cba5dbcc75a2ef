"""The report's numbers (report/content.py): funnels, histograms, reach, the map."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import polars as pl
import pytest

from funnelprint.models import load
from funnelprint.report import content
from funnelprint.report.html import esc, table


def events(rows: list[tuple[str, str, str]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=["customer_id", "product_id", "action"], orient="row")


def test_segment_funnels_count_customer_product_pairs():
    log = events([
        ("a", "p1", "view"), ("a", "p1", "add_to_cart"), ("a", "p1", "purchase"),
        ("a", "p2", "view"), ("a", "p2", "add_to_cart"), ("a", "p2", "remove_from_cart"),
        ("b", "p1", "view"), ("b", "p3", "view"), ("b", "p3", "add_to_cart"),
        ("c", "p9", "view"),  # no segment: counted for everyone only
    ])
    segments = pl.DataFrame({"customer_id": ["a", "b"], "segment": [0, 1]})
    table_ = {r["segment"]: r for r in content.segment_funnels(log, segments).to_dicts()}
    a, b, everyone = table_[0], table_[1], table_[-1]
    assert (a["view_to_cart"], a["cart_to_purchase"], a["removal"], a["abandonment"]) == (
        1.0, 0.5, 0.5, 0.0)
    assert (b["view_to_cart"], b["cart_to_purchase"], b["abandonment"]) == (0.5, 0.0, 1.0)
    assert everyone["customers"] == 3 and everyone["pairs"] == 5
    assert everyone["view_to_cart"] == pytest.approx(3 / 5)
    assert everyone["view_to_purchase"] == pytest.approx(1 / 5)
    assert a["visits_abandoned"] is None  # no sessions in these events


def test_abandoned_visits_are_visits_with_a_cart_and_no_purchase():
    log = events([
        ("a", "p1", "add_to_cart"), ("a", "p1", "purchase"),  # visit 0: completed
        ("a", "p2", "add_to_cart"),  # visit 1: abandoned
        ("a", "p3", "view"),  # visit 2: no cart, not counted
        ("b", "p1", "add_to_cart"),  # visit 3: abandoned
    ]).with_columns(session=pl.Series([0, 0, 1, 2, 3]))
    segments = pl.DataFrame({"customer_id": ["a", "b"], "segment": [0, 0]})
    funnels = content.segment_funnels(log, segments)
    assert funnels["visits_abandoned"].to_list() == pytest.approx([2 / 3, 2 / 3])
    only_a = content.segment_funnels(log, segments.head(1))
    assert only_a["visits_abandoned"].to_list() == pytest.approx([0.5, 2 / 3])


def test_length_histogram_keeps_every_count_and_folds_the_tail():
    lengths = pl.Series(np.r_[np.arange(1, 101), [5000]])
    hist = content.length_histogram(lengths, bins=10)
    assert hist["count"].sum() == 101
    assert hist.height <= 11
    assert hist["high"].max() == 5000  # the top bin names the longest
    assert (hist["low"] <= hist["high"]).all()


def test_reach_map_and_examples_of_a_fitted_model(shop):
    profile = load(shop.model).profile_
    reach = content.trait_reach(profile)
    warm = int((~profile.customer_cold_).sum())
    assert reach["leading"].sum() == warm
    assert (reach["leaning"] <= warm).all()
    points = content.segment_map(profile, max_points=50)
    assert points.height == 50 and points["customer_id"].n_unique() == 50
    assert points["x"].std() > 0
    mix = content.population_action_mix(profile)
    assert set(mix) == {"view", "cart", "remove", "buy"}
    assert sum(mix.values()) == pytest.approx(1.0, abs=0.01)
    examples = content.example_customers(profile, 3)
    assert 1 <= len(examples) <= 3
    segments = profile.customer_profiles_.filter(pl.col("customer_id").is_in(examples))
    assert segments["segment"].n_unique() == len(examples)


def test_dataset_journey_is_the_models_steps_in_time_order(shop):
    model = load(shop.model)
    steps = content.dataset_journey(model.dataset_, "u0001", limit=7)
    assert steps.height == 7
    assert steps["timestamp"].is_sorted()
    assert isinstance(steps["timestamp"][0], datetime)
    assert set(steps["action"]) <= set(model.dataset_.action_names)


def test_tables_escape_what_they_show():
    cell = table(["<b>"], [["<script>alert(1)</script>"]])
    assert "<script>" not in cell and "&lt;script&gt;" in cell
    assert esc('"x"') == "&quot;x&quot;"


def test_funnel_chart_labels_no_rate_where_there_is_nothing_to_rate():
    """A segment with views and no carts has no cart-to-purchase rate: no "nan%" label."""
    import json

    from funnelprint.report.charts import funnels

    table = pl.DataFrame({"segment": [-1, 0], "view_to_cart": [0.2, 0.0],
                          "cart_to_purchase": [0.5, float("nan")]})
    fig = funnels(table, {0: "segment 0"}, [("view_to_cart", "view → cart"),
                                            ("cart_to_purchase", "cart → purchase")])
    text = json.dumps(fig.to_plotly_json(), default=str)
    assert "nan%" not in text and "50%" in text and "0%" in text


def test_the_customer_shown_for_a_segment_shares_its_taste_and_has_a_profile():
    """REES46 head: a segment led by smartphones was shown by a customer with seven views
    of one water heater and no smartphone."""
    from funnelprint.data.dataset import Dataset
    from funnelprint.data.pipeline import prepare_events
    from funnelprint.profile.model import ProfileModel
    from tests.conftest import shared_file

    log = prepare_events(shared_file("rees46/2019-Oct_head.csv"))
    dataset = Dataset.from_events(log, collapse_repeats=False)
    profile = ProfileModel(seed=0).fit(dataset)
    examples = content.segment_examples(profile, dataset, n=4)
    assert examples and any(e.customer for e in examples)
    segments = pl.DataFrame({"customer_id": profile.customer_ids_.astype(str),
                             "segment": profile.assign_segments(profile.customer_traits_),
                             "cold": profile.customer_cold_})
    events = log.events.select(pl.col("customer_id").cast(pl.String), "category").join(
        segments, on="customer_id")
    for example in examples:
        members = events.filter((pl.col("segment") == example.segment) & ~pl.col("cold")
                                & pl.col("category").is_not_null())
        leading = members["category"].value_counts(sort=True)["category"][0]
        assert example.category == leading
        if example.customer is None:
            assert leading in example.why
            continue
        row = profile.customer_row(example.customer)
        assert not profile.customer_cold_[row] and profile.customer_known_[row] >= 5
        theirs = members.filter(pl.col("customer_id") == example.customer)["category"]
        counts = theirs.value_counts()
        assert counts.filter(pl.col("category") == leading)["count"].max() == \
            counts["count"].max()
