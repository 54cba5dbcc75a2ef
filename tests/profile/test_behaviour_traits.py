"""Traits about how customers shop: recovered on a shop whose taste and behaviour vary
independently, named from their evidence, refreshed like the taste traits."""

import logging

import numpy as np
import pytest

from funnelprint.data.dataset import Dataset
from funnelprint.data.pipeline import prepare_events
from funnelprint.data.simulate import SimulationConfig, simulate
from funnelprint.profile.audit import check_traits
from funnelprint.profile.evidence import verdict
from funnelprint.profile.joint import BALANCE_GRID, ELBOW
from funnelprint.profile.model import ProfileModel
from funnelprint.profile.quality import align, persona_columns, trait_recovery

WORDS = {"price_seeker": "price-seeking", "impulse_buyer": "impulse",
         "window_shopper": "window", "cart_abandoner": "abandon", "regular": "regular"}


@pytest.fixture(scope="module")
def independent(tmp_path_factory):
    sim = simulate(SimulationConfig(customers=1500, products=300, seed=0,
                                    scenario="independent"))
    log = prepare_events(sim.write(tmp_path_factory.mktemp("independent"))["events"])
    dataset = Dataset.from_events(log, collapse_repeats=False, products=sim.products)
    return sim, log, dataset, ProfileModel(seed=0).fit(dataset)


def test_taste_and_behaviour_dimensions_are_both_recovered_and_named(independent):
    sim, _, _, model = independent
    warm = ~model.customer_cold_
    truth, found, _ = align(sim.truth, model.customer_ids_[warm], model.customer_traits_[warm])
    result = trait_recovery(truth, found)
    for column, corr, trait in zip(persona_columns(sim.truth), result["matched"],
                                   result["assignment"], strict=True):
        assert corr >= 0.6, (column, corr)
        kind, name = column.split(":")
        if kind == "behaviour":
            info = model.trait_info_[trait]
            assert WORDS[name] in info["name"] and info["kind"] in ("behaviour", "mixed")
    assert result["mean_correlation"] >= 0.8


def test_every_trait_has_a_kind_a_name_and_evidence_that_holds(independent):
    model = independent[3]
    kinds = {info["kind"] for info in model.trait_info_}
    assert kinds <= {"taste", "behaviour", "mixed"} and "taste" in kinds and kinds - {"taste"}
    for info in model.trait_info_:
        assert info["name"] and 0 <= info["behaviour_share"] <= 1
        for row in info["evidence"]:
            assert {"feature", "value", "low", "high", "population", "lift", "reads"} <= set(row)
            assert row["lift"] == pytest.approx(row["value"] / row["population"], rel=0.01)
            # a line is printed only where its interval lies wholly on its word's side
            assert row["low"] > row["population"] or row["high"] < row["population"]
        assert sum(info["action_mix"].values()) == pytest.approx(1.0, abs=0.01)
        assert set(info["population_action_mix"]) == set(info["action_mix"])
        typical = info["typical_customers"]
        assert typical["customers"] == round(0.1 * typical["of_warm"])


def test_the_check_finds_no_word_that_the_customers_contradict(independent):
    _, _, dataset, model = independent
    report = check_traits(model, dataset)
    summary = report.summary()
    assert summary["name_words_contradicted"] == 0, report.table()
    assert summary["evidence_contradicted"] == 0, report.table()
    assert summary["bare_ids"] == summary["duplicate_names"] == 0
    assert summary["unchecked_words"] == 0, report.unchecked
    # the words of the names are claims the data backs, not only ones it cannot refute
    assert summary["name_words_supported"] >= 0.8 * summary["name_words"]


def test_balance_and_number_of_traits_come_from_the_selection(independent):
    """The weight is the one nearest 1 within ELBOW of the best criterion; the number of
    traits fitted is one of the scored candidates, and merging only ever lowers it."""
    model = independent[3]
    weight = model.behaviour_weight_
    assert weight in BALANCE_GRID
    scores = {float(w): v for w, v in model.selection_["behaviour_weight"].items()}
    assert scores[weight] <= (1 + ELBOW) * min(scores.values())
    assert not [w for w, v in scores.items() if abs(np.log(w)) < abs(np.log(weight))
                and v <= (1 + ELBOW) * min(scores.values())]
    trait_scores = {int(k): v for k, v in model.selection_["traits"].items()}
    fitted = model.selection_["merged"]["fitted"]
    assert fitted in trait_scores
    assert model.traits == model.selection_["merged"]["kept"] <= fitted


def test_refreshing_from_events_gives_the_fitted_profiles(independent):
    _, log, _, model = independent
    table, _ = model.transform_events(log)
    traits = table.sort("customer_id").select(
        [f"trait_{j}" for j in range(model.traits)]).to_numpy()
    fitted = model.customer_traits_[np.argsort(model.customer_ids_)]
    assert traits.shape == fitted.shape and np.abs(traits - fitted).max() < 1e-6


def test_without_prices_the_price_features_are_left_out(independent, caplog):
    _, log, _, _ = independent
    dataset = Dataset.from_events(log, collapse_repeats=False)
    with caplog.at_level(logging.INFO):
        model = ProfileModel(seed=0, traits=6).fit(dataset)
    assert "price-position behaviour features are omitted" in caplog.text
    features = {row["feature"] for info in model.trait_info_ for row in info["evidence"]}
    assert features and not {f for f in features if "price" in f}


def test_figures_of_the_typical_customers_are_raw_and_beside_everyone(independent):
    _, _, _, model = independent
    window = next(i for i in model.trait_info_ if i["name"] == "window shopper")
    figures = window["figures"]
    for name in ("view_to_cart", "views_per_visit", "minutes_per_visit"):
        row = figures[name]
        assert row["low"] <= row["value"] <= row["high"] and row["customers"] > 0
    assert verdict_of(figures["view_to_cart"], -1) == "supported"
    assert verdict_of(figures["views_per_visit"], 1) == "supported"


def verdict_of(row: dict, sign: int) -> str:
    from funnelprint.profile.evidence import Interval

    return verdict(Interval(row["value"], row["low"], row["high"], row["customers"]),
                   row["population"], sign)
