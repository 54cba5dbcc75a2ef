"""The project checks itself: on real shop logs and on every simulated scenario, a profile
fitted with the default settings says nothing its customers' raw figures contradict, names
no bare id and gives every trait its own name (``profile.audit``). And the check itself
counts right and catches a false word."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import polars as pl
import pytest

from funnelprint.data.dataset import Dataset
from funnelprint.data.pipeline import prepare_events, prepare_frame
from funnelprint.data.products import read_products
from funnelprint.data.simulate import SimulationConfig, simulate
from funnelprint.profile.audit import check_traits
from funnelprint.profile.evidence import FIGURES, customer_counts, event_frame
from funnelprint.profile.model import ProfileModel
from tests.conftest import shared_file

SCENARIOS = ("independent", "sparse", "many", "noisy", "bundled")
COSMETICS = ("2022_oct", "2022_nov", "2022_dec", "2023_jan", "2023_feb")


def assert_honest(model: ProfileModel, dataset: Dataset) -> None:
    report = check_traits(model, dataset, resamples=400)
    summary = report.summary()
    table = report.table().filter(pl.col("verdict") == "contradicted")
    assert summary["name_words_contradicted"] == 0, table
    assert summary["evidence_contradicted"] == 0, table
    assert report.bare_ids == [] and report.duplicates == [], report.names
    assert report.unchecked == [], report.unchecked
    assert summary["name_words"] >= summary["traits"]  # every trait says something


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_simulated_shops(scenario, tmp_path):
    sim = simulate(SimulationConfig(customers=600, products=200, seed=3, scenario=scenario))
    log = prepare_events(sim.write(tmp_path)["events"])
    dataset = Dataset.from_events(log, collapse_repeats=False, products=sim.products)
    assert_honest(ProfileModel(seed=0).fit(dataset), dataset)


def test_rees46_october_head():
    log = prepare_events(shared_file("rees46/2019-Oct_head.csv"))
    dataset = Dataset.from_events(log, collapse_repeats=False)
    model = ProfileModel(seed=0).fit(dataset)
    assert_honest(model, dataset)
    # three hours show one visit per customer: cadence is not claimed, and it says so
    assert {"sessions", "visit_regularity", "visits_per_week"} <= set(model.left_out_)
    assert model.cold_start_share() > 0.5  # most customers of three hours have 1-2 events


@pytest.mark.parametrize("month", COSMETICS)
def test_rees46_cosmetics_months(month):
    """999 events a month: too sparse for the old defaults, which failed to fit."""
    items = read_products(shared_file("rees46-cosmetics/item.csv"))
    log = prepare_events(shared_file(f"rees46-cosmetics/data_{month}.csv"))
    dataset = Dataset.from_events(log, collapse_repeats=False, products=items)
    model = ProfileModel(seed=0).fit(dataset)
    assert model.thresholds_.min_count < 5  # chosen from the data, and said so
    assert_honest(model, dataset)


def test_taobao_sample_slice():
    log = prepare_events(shared_file("taobao/userbehavior_active_sample.csv"))
    assert log.events["action"].value_counts().height == 4  # view, cart, purchase, favorite
    customers = log.events["customer_id"].unique().sort().head(300)
    events = log.events.filter(pl.col("customer_id").is_in(customers.implode()))
    dataset = Dataset.from_events(events, collapse_repeats=False)
    model = ProfileModel(seed=0).fit(dataset)
    assert_honest(model, dataset)
    # numeric category ids are labelled with their field
    assert all(not part.isdigit() for info in model.trait_info_
               for part in info["name"].split(" · "))


def test_a_log_too_small_for_any_profile_says_how_to_fix_it():
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    frame = pl.DataFrame({"customer_id": ["a", "a", "b", "c"],
                          "timestamp": [start + timedelta(minutes=i) for i in range(4)],
                          "action": ["view"] * 4, "product_id": ["p", "q", "p", "q"]})
    dataset = Dataset.from_events(prepare_frame(frame.with_columns(
        pl.col("timestamp").dt.cast_time_unit("us"))), collapse_repeats=False)
    with pytest.raises(ValueError, match="add the events of at least 5 more customer"):
        ProfileModel().fit(dataset)
    with pytest.raises(ValueError, match="lower --param min_count=1"):
        ProfileModel(min_count=3, min_known_tokens=1).fit(dataset)


# ------------------------------------------------------------------ the check itself


def hand_log() -> Dataset:
    """Customer a: views p, q, r in one visit, carts p, buys p; a day later views p again.
    Customer b: views q twice in one visit, carts q, removes q."""
    t0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
    rows = [("a", 0, "view", "p"), ("a", 1, "view", "q"), ("a", 2, "view", "r"),
            ("a", 3, "add_to_cart", "p"), ("a", 4, "purchase", "p"),
            ("a", 24 * 60, "view", "p"),
            ("b", 0, "view", "q"), ("b", 1, "view", "q"), ("b", 2, "add_to_cart", "q"),
            ("b", 3, "remove_from_cart", "q")]
    frame = pl.DataFrame({"customer_id": [r[0] for r in rows],
                          "timestamp": [t0 + timedelta(minutes=r[1]) for r in rows],
                          "action": [r[2] for r in rows], "product_id": [r[3] for r in rows]})
    frame = frame.with_columns(pl.col("timestamp").dt.cast_time_unit("us"))
    return Dataset.from_events(prepare_frame(frame), collapse_repeats=False)


def test_raw_figures_are_counted_from_the_events():
    dataset = hand_log()
    counts = customer_counts(event_frame(dataset), dataset.n_customers)
    index = dataset.customer_index()
    a, b = counts.row(index["a"], named=True), counts.row(index["b"], named=True)

    def ratio(row: dict, figure: str) -> float:
        return row[f"{figure}.hits"] / row[f"{figure}.trials"]

    assert ratio(a, "view_to_cart") == pytest.approx(1 / 3)  # p of p, q, r
    assert ratio(a, "view_to_purchase") == pytest.approx(1 / 3)
    assert ratio(a, "cart_to_purchase") == 1.0 and ratio(b, "cart_to_purchase") == 0.0
    assert ratio(b, "removals_per_cart") == 1.0 and a["removals_per_cart.hits"] == 0
    assert a["visits.hits"] == 2 and b["visits.hits"] == 1
    assert ratio(a, "views_per_visit") == pytest.approx(2.0)  # 3 views, then 1
    assert ratio(a, "repeat_views") == pytest.approx(1 / 4)  # p again, a day later
    assert ratio(b, "views_before_cart") == 2.0  # q viewed twice before its cart
    assert ratio(a, "seconds_to_cart") == pytest.approx(np.log1p(180.0))  # p: 3 minutes
    assert set(FIGURES) == {c.split(".")[0] for c in counts.columns if c != "row"}


def test_the_check_catches_a_word_the_customers_contradict(tmp_path):
    sim = simulate(SimulationConfig(customers=600, products=200, seed=3,
                                    scenario="independent"))
    log = prepare_events(sim.write(tmp_path)["events"])
    dataset = Dataset.from_events(log, collapse_repeats=False, products=sim.products)
    model = ProfileModel(seed=0).fit(dataset)
    window = next(i for i in model.trait_info_ if "window shopper" in i["name"])
    window["name"] = "window shopper · carts readily · 12345"
    window["evidence"] = [*window["evidence"], {"reads": "converts"}]
    report = check_traits(model, dataset, resamples=400)
    wrong = {(t, w) for t, w, v in report.words("name") + report.words("evidence")
             if v == "contradicted"}
    assert (window["trait"], "carts readily") in wrong
    assert (window["trait"], "converts") in wrong
    assert report.bare_ids == [(window["trait"], "12345")]
