from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import adjusted_rand_score

from funnelprint.data.dataset import Dataset
from funnelprint.data.pipeline import prepare_frame
from funnelprint.data.tokens import TokenConfig, encode_tokens
from funnelprint.profile.model import ColdStartError, ProfileConfig, ProfileModel, token_sentences
from funnelprint.profile.quality import category_purity, trait_recovery

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def new_log(rows: list[tuple[str, str, str]]) -> pl.DataFrame:
    """Events (customer, action, product) one minute apart, prepared as a log's table."""
    frame = pl.DataFrame({
        "customer_id": [r[0] for r in rows],
        "timestamp": [T0.replace(minute=i) for i in range(len(rows))],
        "action": [r[1] for r in rows],
        "product_id": [r[2] for r in rows],
    }).with_columns(pl.col("timestamp").dt.cast_time_unit("us"))
    return prepare_frame(frame).events


def trait_columns(k: int) -> list[str]:
    return [f"trait_{j}" for j in range(k)]


def test_config_is_validated():
    assert ProfileConfig().aggregation == "session" and ProfileConfig().traits is None
    for bad in ({"aggregation": "median"}, {"traits": 1}, {"nonneg": "clip"}, {"max_traits": 1},
                {"segments": 0}, {"temperature": 0.0}, {"context": "day"}):
        with pytest.raises(ValueError):
            ProfileConfig(**bad)
    with pytest.raises(TypeError):
        ProfileModel(ProfileConfig(), traits=3)


def test_config_types_are_checked_like_every_config():
    # The same check as every model's configuration: a wrong type is refused by name.
    for bad, message in (({"behaviour": "no"}, "behaviour must be bool, not 'no'"),
                         ({"traits": 2.5}, "traits must be int or None, not 2.5"),
                         ({"aggregation": "median"}, "aggregation must be one of")):
        with pytest.raises(ValueError, match=message):
            ProfileConfig(**bad)
    assert ProfileConfig(temperature=1).temperature == 1.0  # an int where a float goes
    with pytest.raises(ValueError, match="min_count must be at least 1, not 0"):
        ProfileConfig(min_count=0)
    assert ProfileConfig.from_params({"traits": 3}).replace(seed=2) == ProfileConfig(traits=3,
                                                                                     seed=2)
    with pytest.raises(ValueError, match="unknown parameter"):
        ProfileConfig.from_params({"trait": 3})


def test_sentences_follow_sessions(shop):
    _, _, log, dataset = shop
    seq = dataset.sequences
    names = np.arange(seq.items.size).astype(str).astype(object)
    sessions = token_sentences(names, seq, "session")
    assert len(sessions) == log.session_report.sessions
    journeys = token_sentences(names, seq, "journey")
    assert len(journeys) == log.events["customer_id"].n_unique()
    assert [t for j in journeys for t in j] == [t for s in sessions for t in s] \
        == names.tolist()


def test_tokens_are_the_event_logs_tokens(shop, fitted):
    _, _, log, dataset = shop
    encoded = encode_tokens(dataset.sequences, dataset.action_names, dataset.item_ids)
    names = np.asarray(encoded.names)[encoded.codes]
    assert names.tolist() == log.events["token"].to_list()
    assert set(fitted.vocabulary_) <= set(names.tolist())
    tokens = fitted.event_tokens(dataset.sequences)
    known = tokens >= 0
    assert (np.asarray(fitted.vocabulary_)[tokens[known]] == names[known]).all()
    assert not set(names[~known].tolist()) & set(fitted.vocabulary_)


def test_profiles_are_normalised_and_traits_named(fitted, shop):
    _, _, log, _ = shop
    traits = fitted.customer_traits_
    assert traits.shape == (log.events["customer_id"].n_unique(), 4)
    assert np.allclose(traits.sum(axis=1), 1.0) and (traits >= 0).all()
    names = [t["name"] for t in fitted.trait_info_]
    assert len(set(names)) == 4
    for info in fitted.trait_info_:
        assert set(info["action_mix"]) == {"view", "cart", "remove", "buy"}
        assert sum(info["action_mix"].values()) == pytest.approx(1.0, abs=0.01)
        assert info["top_categories"] and info["top_tokens"] and info["top_brands"]


def test_traits_recover_personas_better_than_chance(fitted, shop):
    sim = shop[0]
    names = [p.name for p in sim.personas]
    truth = sim.truth.join(pl.DataFrame({"customer_id": fitted.customer_ids_,
                                         "row": np.arange(fitted.customer_ids_.size)}),
                           on="customer_id")
    recovery = trait_recovery(truth.select(names).to_numpy(),
                              fitted.customer_traits_[truth["row"].to_numpy()])
    assert recovery["mean_correlation"] > 0.8


def test_embeddings_group_items_by_category(fitted, shop):
    dataset = shop[3]
    has = np.linalg.norm(fitted.item_vectors_, axis=1) > 0
    assert has.sum() > 100
    assert category_purity(fitted.item_vectors_[has],
                           dataset.item_categories[has].astype(str)) > 0.5


def test_refresh_matches_fit_and_flags_cold_start(fitted, shop):
    _, _, log, dataset = shop
    cols = trait_columns(4)
    again = fitted.transform(dataset)
    assert again.columns == ["customer_id", *cols, "segment", "cold_start", "known_tokens",
                             "guess", "confidence"]
    assert np.allclose(again.select(cols).to_numpy(), fitted.customer_traits_, atol=1e-9)
    assert again.equals(fitted.customer_profiles_)
    same, aligned = fitted.transform_events(log)
    assert aligned.unknown_events == 0 and same.equals(again)
    known = str(fitted.item_ids_[0])
    profiles, aligned = fitted.transform_events(new_log([
        ("newbie", "view", known), ("stranger", "view", "never-seen-product")]))
    assert aligned.unknown_events == 1 and aligned.unknown_items == 1
    assert profiles["customer_id"].to_list() == ["newbie", "stranger"]
    assert profiles["cold_start"].to_list() == [True, True]
    assert profiles["known_tokens"].to_list() == [1, 0]
    # a labelled guess: the nearest segment to what one event shows, or everyone's profile
    newbie, stranger_row = profiles.row(0, named=True), profiles.row(1, named=True)
    assert newbie["guess"] == f"segment {newbie['segment']}"
    assert 0 < newbie["confidence"] <= 1 / 3  # one known event of the three needed
    assert stranger_row["guess"] == "everyone" and stranger_row["confidence"] == 0
    warm = again.filter(~pl.col("cold_start"))
    assert warm.height and warm["guess"].null_count() == warm["confidence"].null_count() \
        == warm.height
    assert np.allclose(profiles.select(cols).to_numpy().sum(axis=1), 1.0)
    stranger = profiles.filter(pl.col("customer_id") == "stranger")
    assert np.allclose(stranger.select(cols).to_numpy()[0], fitted.population_profile_ /
                       fitted.population_profile_.sum())
    with pytest.raises(ValueError, match="fitted items"):
        fitted.transform(Dataset.from_events(new_log([("a", "view", known)])))


def test_profile_of_sequences_in_fitted_codes(fitted, shop):
    dataset = shop[3]
    rows = np.array([3, 0, 7])
    profiles = fitted.profile(dataset.sequences.select(rows))
    # Solved in another batch than at fit time: equal to ~1e-7 (see Profiles).
    assert np.allclose(profiles.traits, fitted.customer_traits_[rows], atol=1e-6)
    frame = fitted.transform(dataset.sequences.select(rows))
    assert frame["customer_id"].to_list() == [0, 1, 2]
    # One more event refreshes one customer's profile without retraining.
    seq = dataset.sequences.select(np.array([3]))
    item = int(seq.items[-1])
    longer = type(seq)(np.array([0, seq.items.size + 1]), np.append(seq.items, item),
                       np.append(seq.actions, 1), np.append(seq.times, seq.times[-1] + 1),
                       None if seq.sessions is None else np.append(seq.sessions,
                                                                   seq.sessions[-1]))
    refreshed = fitted.profile(longer)
    assert refreshed.known[0] == profiles.known[0] + (fitted.event_tokens_[1, item] >= 0)
    assert np.isclose(refreshed.traits.sum(), 1.0)


def test_segments_follow_dominant_personas(fitted, shop):
    sim = shop[0]
    segments = fitted.customer_profiles_.join(sim.truth, on="customer_id")
    # 400 customers, 4 personas: a chance segmentation scores about 0.
    assert adjusted_rand_score(segments["dominant_persona"], segments["segment"]) > 0.65
    profiles = fitted.segment_profiles_
    assert np.allclose(profiles.sum(axis=1), 1.0) and (profiles >= 0).all()
    assert len(set(profiles.argmax(axis=1))) == len(profiles)
    assert (fitted.assign_segments(profiles) == np.arange(len(profiles))).all()
    prior, _ = fitted.transform_events(new_log([("newbie", "view", str(fitted.item_ids_[0]))]))
    # A cold start takes its segment's taste and everyone's behaviour, trait by trait.
    share = fitted.trait_behaviour_shares()
    segment = prior["segment"][0]
    expected = (1 - share) * profiles[segment] + share * fitted.population_profile_
    assert np.allclose(prior.select(trait_columns(4)).to_numpy()[0], expected / expected.sum())
    assert prior["guess"][0] == f"segment {segment}"
    summary = fitted.segment_summary()
    assert sum(s["customers"] for s in summary) == (~fitted.customer_cold_).sum()
    assert sum(s["customers"] + s["cold_start"] for s in summary) == fitted.customer_ids_.size


def test_similar_customers(fitted):
    customer = str(fitted.customer_ids_[~fitted.customer_cold_][0])
    similar = fitted.similar(customer, k=5)
    assert similar.columns == ["customer_id", "similarity", "reason"]
    assert similar.height == 5 and customer not in similar["customer_id"].to_list()
    assert similar["similarity"].is_sorted(descending=True)
    assert all("both lean on" in r for r in similar["reason"])
    everyone = fitted.similar(customer, k=10_000)
    assert everyone.height == (~fitted.customer_cold_).sum() - 1  # guesses are no neighbours
    cold = set(fitted.customer_ids_[fitted.customer_cold_].astype(str))
    assert not cold & set(everyone["customer_id"])
    assert np.isfinite(everyone["similarity"].to_numpy()).all()
    with pytest.raises(KeyError):
        fitted.similar("nobody")
    with pytest.raises(ValueError):
        fitted.similar(customer, k=0)


def test_a_cold_start_customer_has_no_similar_customers_on_evidence(fitted):
    # their mix is a prior: two priors would match at 1.000
    assert fitted.customer_cold_.sum() >= 2
    customer = str(fitted.customer_ids_[fitted.customer_cold_][0])
    with pytest.raises(ColdStartError, match=r"is cold start: .* a guess"):
        fitted.similar(customer)


def test_state_round_trip(fitted, shop):
    arrays = fitted.state_arrays()
    assert set(arrays) == set(fitted.array_shapes())

    def read(name: str, shape: tuple[int | None, ...]) -> np.ndarray:
        value = arrays[name]
        assert value.ndim == len(shape)
        assert all(s is None or s == v for s, v in zip(shape, value.shape, strict=True))
        return value

    loaded = ProfileModel.from_state(fitted.config, fitted.item_ids_, read,
                                     fitted.state_meta())
    assert loaded.transform(shop[3]).equals(fitted.transform(shop[3]))
    assert loaded.trait_info_ == fitted.trait_info_
    assert np.array_equal(loaded.item_traits_, fitted.item_traits_)
    broken = dict(arrays, event_tokens=arrays["event_tokens"] + 10_000)
    with pytest.raises(ValueError, match="inconsistent"):
        ProfileModel.from_state(fitted.config, fitted.item_ids_, lambda n, s: broken[n],
                                fitted.state_meta())


def test_fit_is_reproducible_and_refit_replaces_state(shop):
    dataset = shop[3]
    a = ProfileModel(traits=3, epochs=2, n_init=1, anchors=16, seed=1).fit(dataset)
    b = ProfileModel(traits=3, epochs=2, n_init=1, anchors=16, seed=1).fit(dataset)
    assert np.array_equal(a.customer_traits_, b.customer_traits_)
    first = set(a.vocabulary_)
    views = dataset.with_sequences(dataset.sequences.mask(dataset.sequences.actions == 0))
    a.fit(views)
    assert set(a.vocabulary_) != first and all(t.startswith("view_") for t in a.vocabulary_)
    assert a.token_features.shape[0] == len(a.vocabulary_)


def test_products_without_brand_or_price(shop):
    sim, _, log, _ = shop
    for drop in (["brand"], ["brand", "price"], ["category", "brand", "price"]):
        dataset = Dataset.from_events(log, collapse_repeats=False,
                                      products=sim.products.drop(drop))
        model = ProfileModel(traits=3, epochs=2, n_init=1, anchors=16).fit(dataset)
        for info in model.trait_info_:
            assert info["top_brands"] == []
            assert bool(info["top_categories"]) == ("category" not in drop)


def test_rare_items_become_category_tokens(shop):
    sim, _, log, _ = shop
    dataset = Dataset.from_events(log, collapse_repeats=False, products=sim.products)
    model = ProfileModel(traits=3, epochs=2, n_init=1, anchors=16, min_count=1,
                         rare_product_min_count=40).fit(dataset)
    counts = np.bincount(dataset.sequences.items, minlength=dataset.n_items)
    rare = np.flatnonzero(counts < 40)
    assert rare.size and any(t.split("_", 1)[1].startswith("cat:") for t in model.vocabulary_)
    assert not np.isin(model.token_items_, rare).any()
    # A rare item's view is the view token of its category.
    item = rare[0]
    token = model.vocabulary_[model.event_tokens_[0, item]]
    assert token == f"view_cat:{dataset.item_categories[item]}"
    encoded = encode_tokens(dataset.sequences, dataset.action_names, dataset.item_ids,
                            dataset.item_categories, TokenConfig(40))
    assert encoded.rare[rare].all()


def test_attention_aggregation_learns_event_weights_and_round_trips(shop):
    dataset = shop[3]
    model = ProfileModel(traits=3, epochs=3, n_init=1, anchors=16, aggregation="attention")
    model.fit(dataset)
    losses = model.aggregator_.history_
    assert losses[-1] < losses[0]  # next-item prediction improved
    importance = model.aggregator_.action_importance()
    assert importance["view"] == 1.0 and set(importance) >= {"add_to_cart", "purchase"}
    assert len(set(importance.values())) > 1  # action weights moved away from equal
    traits = model.transform(dataset).select(trait_columns(3)).to_numpy()
    assert np.allclose(traits.sum(axis=1), 1.0)
    arrays = model.state_arrays()
    assert any(name.startswith("attention.") for name in arrays)
    loaded = ProfileModel.from_state(model.config, model.item_ids_, lambda n, s: arrays[n],
                                     model.state_meta())
    again = loaded.transform(dataset).select(trait_columns(3)).to_numpy()
    assert np.allclose(again, traits, atol=1e-9)
