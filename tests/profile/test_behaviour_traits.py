"""Traits about how customers shop: recovered on a shop whose taste and behaviour vary
independently, named from their evidence, refreshed like the taste traits."""

import logging

import numpy as np
import pytest

from funnelprint.data.dataset import Dataset
from funnelprint.data.pipeline import prepare_events
from funnelprint.data.simulate import SimulationConfig, simulate
from funnelprint.profile.interpret import behaviour_name
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


def test_every_trait_has_a_kind_a_name_and_checkable_evidence(independent):
    model = independent[3]
    kinds = {info["kind"] for info in model.trait_info_}
    assert kinds <= {"taste", "behaviour", "mixed"} and "taste" in kinds and kinds - {"taste"}
    for info in model.trait_info_:
        assert info["name"] and 0 <= info["behaviour_share"] <= 1
        for row in info["evidence"]:
            assert {"feature", "value", "population", "lift", "reads"} <= set(row)
            assert row["lift"] == pytest.approx(row["value"] / row["population"], rel=0.01)
        assert sum(info["action_mix"].values()) == pytest.approx(1.0, abs=0.01)
        if info["kind"] == "mixed":  # behaviour words only where behaviour stands out
            assert max(abs(row["percentile"] - 50) for row in info["evidence"]) >= 10


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


def test_price_names_need_the_items_side_of_the_category_median_too():
    """Where many customers seek low prices, everyone else ranks above the population's
    median; that alone is not premium-seeking."""
    effects = {"carted_price_position": 0.3, "viewed_price_position": 0.25,
               "bought_price_position": 0.2, "view_to_purchase": 0.05}
    cheap_shop = {"carted_price_position": 0.45, "viewed_price_position": 0.42,
                  "bought_price_position": 0.44}
    dear_items = {"carted_price_position": 0.75, "viewed_price_position": 0.7,
                  "bought_price_position": 0.72}
    assert behaviour_name(effects, "fallback") == "premium-seeking"
    assert behaviour_name(effects, "fallback", dear_items) == "premium-seeking"
    assert behaviour_name(effects, "fallback", cheap_shop) == "fallback"
    seeking = {f: -v for f, v in effects.items()}
    low = {f: 1 - v for f, v in dear_items.items()}
    assert behaviour_name(seeking, "fallback", low) == "price-seeking"
    assert behaviour_name(seeking, "fallback", dear_items) == "fallback"
