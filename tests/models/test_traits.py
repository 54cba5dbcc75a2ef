from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from funnelprint.artifacts import ArtifactError
from funnelprint.data.dataset import Dataset
from funnelprint.data.pipeline import prepare_events, prepare_frame
from funnelprint.data.simulate import SimulationConfig, simulate
from funnelprint.models import affinity, persist
from funnelprint.models.registry import make_model
from funnelprint.models.traits import TraitsConfig, TraitsRecommender
from funnelprint.profile.model import ProfileConfig

SMALL = {"traits": 4, "n_init": 2, "anchors": 32, "epochs": 5}


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    sim = simulate(SimulationConfig(customers=300, products=120, personas=4, seed=3,
                                    scenario="bundled"))
    paths = sim.write(tmp_path_factory.mktemp("shop"))
    log = prepare_events(paths["events"])
    return sim, log, Dataset.from_events(log, collapse_repeats=False, products=sim.products)


@pytest.fixture(scope="module")
def fitted(shop):
    return TraitsRecommender(**SMALL).fit(shop[2])


@pytest.fixture(scope="module")
def loaded(fitted, tmp_path_factory):
    directory = persist.save(fitted, tmp_path_factory.mktemp("model") / "traits")
    return persist.load(directory)


def test_registry_builds_this_class_with_the_profile_defaults():
    model = make_model("traits")
    assert type(model) is TraitsRecommender and type(model.config) is TraitsConfig
    config = model.config
    assert config.profile_config() == ProfileConfig()
    # None: chosen from the data (see ProfileConfig)
    assert (config.aggregation, config.min_count, config.n_init, config.traits) == \
        ("session", None, 1, None)
    assert (config.last_n, config.decay) == (5, 0.7)
    assert make_model("traits", traits=3, seed=2).config.profile_config() == \
        ProfileConfig(traits=3, seed=2)
    assert TraitsRecommender.reads >= {"sessions", "item_metadata", "every_event"}


@pytest.mark.parametrize("bad", [{"trait_weight": 0.3}, {"decay": 0.0}, {"last_n": 0},
                                 {"traits": 0}, {"aggregation": "median"}, {"traits": "4"},
                                 {"unknown": 1}])
def test_config_is_validated(bad):
    with pytest.raises(ValueError):
        TraitsConfig.from_params(bad)


def test_scores_recommendations_and_reasons(fitted, shop):
    dataset = shop[2]
    history = dataset.sequences.select(np.arange(6))
    scores = fitted.score(history)
    assert scores.shape == (6, dataset.n_items) and np.isfinite(scores).all()
    items, _ = fitted.recommend(np.arange(6), k=5)
    assert ((items >= 0) & (items < dataset.n_items)).all()
    for row in range(6):
        assert not set(items[row]) & set(dataset.sequences.row(row).tolist())
    reasons = fitted.reasons(dataset.sequences.select(np.array([0])), items[0])
    assert len(reasons) == 5 and all(r["text"] and r["evidence"] for r in reasons)
    assert all(e["step"] in affinity.FEATURES and e["weight"] > 0
               for r in reasons for e in r["evidence"])
    with pytest.raises(ValueError):
        fitted.reasons(history, items[0])


def test_an_empty_history_gets_the_population_profile(fitted, shop):
    dataset = shop[2]
    empty = dataset.sequences.select(np.array([0])).drop_last(10_000)
    assert empty.items.size == 0
    scores = fitted.score(empty)
    assert np.isfinite(scores).all()
    profile = fitted.profile_
    assert np.allclose(profile.profile(empty).traits[0],
                       profile.population_profile_ / profile.population_profile_.sum())


def test_save_and_load_give_the_same_model(fitted, loaded, shop):
    dataset = shop[2]
    assert type(loaded) is TraitsRecommender and loaded.config == fitted.config
    customers = np.arange(dataset.n_customers)
    a_items, a_scores = fitted.recommend(customers, k=10)
    b_items, b_scores = loaded.recommend(customers, k=10)
    assert np.array_equal(a_items, b_items) and np.array_equal(a_scores, b_scores)
    history = dataset.sequences.select(np.array([4]))
    assert fitted.reasons(history, a_items[4]) == loaded.reasons(history, a_items[4])
    assert fitted.profile_.transform(dataset).equals(loaded.profile_.transform(dataset))
    assert fitted.profile_.customer_profiles_.equals(loaded.profile_.customer_profiles_)
    assert loaded.profile_.trait_info_ == fitted.profile_.trait_info_
    assert loaded.profile_.segment_summary() == fitted.profile_.segment_summary()
    customer = str(dataset.customer_ids[2])
    assert loaded.profile_.similar(customer, 4).equals(fitted.profile_.similar(customer, 4))


def test_a_tampered_state_fails_clearly(fitted, tmp_path: Path):
    state = fitted.to_state()
    state.arrays["profile.token_vectors"] = state.arrays["profile.token_vectors"][:, :3]
    with pytest.raises(ArtifactError, match="token_vectors"):
        TraitsRecommender.from_state(fitted.config, fitted.dataset_, state)
    state = fitted.to_state()
    del state.arrays["profile.event_tokens"]
    with pytest.raises(ArtifactError, match="event_tokens"):
        TraitsRecommender.from_state(fitted.config, fitted.dataset_, state)


def test_profiles_of_a_new_log_skip_unknown_products(loaded, shop):
    _, log, dataset = shop
    events = log.events.drop("session", "token")
    known = events.filter(pl.col("customer_id") == str(dataset.customer_ids[0]))
    stranger = known.head(3).with_columns(pl.lit("stranger").alias("customer_id"),
                                          pl.lit("p-new").alias("product_id"))
    new = prepare_frame(pl.concat([known, stranger]))
    table = loaded.profile_events(new)
    assert table.columns == ["customer_id", *[f"trait_{j}" for j in range(4)], "segment",
                             "cold_start", "known_tokens", "guess", "confidence"]
    by_customer = {row["customer_id"]: row for row in table.iter_rows(named=True)}
    assert by_customer["stranger"]["known_tokens"] == 0 and by_customer["stranger"]["cold_start"]
    _, aligned = loaded.profile_.transform_events(new)
    assert aligned.unknown_events == 3 and aligned.unknown_items == 1
    # A profile is solved jointly with the others in its batch (sklearn stops all rows at
    # once), so it matches the training profile to ~1e-7, not bitwise.
    first = loaded.profile_.customer_profiles_.row(0, named=True)
    assert by_customer[first["customer_id"]] == pytest.approx(first, abs=1e-6)


def test_one_customer_is_refreshed_without_retraining(loaded, shop):
    _, log, dataset = shop
    customer = str(dataset.customer_ids[5])
    events = log.events.drop("session", "token").filter(pl.col("customer_id") == customer)
    before = loaded.profile_events(prepare_frame(events))
    # Five more carts of one product, an hour later: the profile moves, the model does not.
    extra = events.tail(1).with_columns(
        pl.lit("add_to_cart").alias("action"), pl.lit(str(dataset.item_ids[0])).alias(
            "product_id"), pl.col("timestamp") + timedelta(hours=1))
    after = loaded.profile_events(prepare_frame(pl.concat([events] + [extra] * 5)))
    assert after["known_tokens"][0] > before["known_tokens"][0]
    columns = [f"trait_{j}" for j in range(4)]
    assert not np.allclose(after.select(columns).to_numpy(), before.select(columns).to_numpy())
    assert before.row(0, named=True) == pytest.approx(
        loaded.profile_.customer_profiles_.row(5, named=True), abs=1e-6)


def test_products_without_a_brand_column(shop):
    sim, log, _ = shop
    dataset = Dataset.from_events(log, collapse_repeats=False,
                                  products=sim.products.drop("brand"))
    model = TraitsRecommender(**{**SMALL, "n_init": 1}).fit(dataset)
    assert all(info["top_brands"] == [] and info["top_categories"]
               for info in model.profile_.trait_info_)
    assert np.isfinite(model.score(dataset.sequences.select(np.arange(3)))).all()
