from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import adjusted_rand_score
from typer.testing import CliRunner

from funnelprint.artifacts import FORMAT_VERSION, MANIFEST, ArtifactError
from funnelprint.cli import app
from funnelprint.data.pipeline import prepare_events, prepare_frame
from funnelprint.data.simulate import SimulationConfig, simulate
from funnelprint.profile.aggregate import inverse_document_frequency, token_matrix
from funnelprint.profile.features import TokenFeaturizer
from funnelprint.profile.model import ProfileModel, token_sentences
from funnelprint.profile.quality import category_purity, trait_recovery

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    sim = simulate(SimulationConfig(customers=400, products=150, personas=4, seed=5))
    paths = sim.write(tmp_path_factory.mktemp("shop"))
    return sim, paths, prepare_events(paths["events"])


@pytest.fixture(scope="module")
def fitted(shop):
    sim, _, log = shop
    return ProfileModel(traits=4, n_init=2, anchors=64).fit(log, sim.products)


def test_token_matrix_aggregations_and_unknown_tokens():
    events = pl.DataFrame({
        "customer_id": ["a", "a", "a", "b"],
        "timestamp": [T0, T0 + timedelta(days=14), T0 + timedelta(days=14), T0],
        "token": ["view_1", "view_1", "cart_1", "never_seen"],
    })
    vocab = {"view_1": 0, "cart_1": 1}
    mean = token_matrix(events, vocab, "mean")
    assert mean.weights.toarray().tolist() == [[2.0, 1.0], [0.0, 0.0]]
    assert mean.unknown_tokens == 1 and mean.known_tokens.tolist() == [3, 0]
    recency = token_matrix(events, vocab, "recency", half_life_days=14.0)
    assert recency.weights.toarray()[0].tolist() == pytest.approx([1.5, 1.0])
    idf = inverse_document_frequency(mean.weights)
    with pytest.raises(ValueError, match="aggregation"):
        token_matrix(events, vocab, "median")
    tfidf = token_matrix(events, vocab, "tfidf", idf=idf)
    assert tfidf.weights.toarray()[0].tolist() == pytest.approx([2.0 * idf[0], idf[1]])


def test_session_aggregation_counts_each_session_once():
    # Session 0: three views of product 1; session 1: one cart of product 2 and an unseen
    # token, which must not dilute the session's weight.
    events = pl.DataFrame({
        "customer_id": ["a"] * 5,
        "timestamp": [T0] * 3 + [T0 + timedelta(days=1)] * 2,
        "token": ["view_1", "view_1", "view_1", "cart_2", "never_seen"],
        "session": [0, 0, 0, 1, 1],
    })
    matrix = token_matrix(events, {"view_1": 0, "cart_2": 1}, "session")
    assert matrix.weights.toarray().tolist() == [[pytest.approx(1.0), pytest.approx(1.0)]]
    assert matrix.known_tokens.tolist() == [4] and matrix.unknown_tokens == 1


def test_session_aggregation_keeps_customers_apart_when_session_numbers_repeat():
    events = pl.DataFrame({
        "customer_id": ["a", "a", "b"],
        "timestamp": [T0] * 3,
        "token": ["view_1", "view_1", "cart_2"],
        "session": [0, 0, 0],
    })
    matrix = token_matrix(events, {"view_1": 0, "cart_2": 1}, "session")
    assert matrix.weights.toarray().tolist() == [[pytest.approx(1.0), 0.0],
                                                 [0.0, pytest.approx(1.0)]]


def test_session_aggregation_without_sessions_splits_after_30_idle_minutes():
    events = pl.DataFrame({
        "customer_id": ["a"] * 4,
        "timestamp": [T0, T0 + timedelta(minutes=10), T0 + timedelta(minutes=20),
                      T0 + timedelta(minutes=51)],
        "token": ["view_1", "view_1", "view_1", "cart_2"],
    })
    matrix = token_matrix(events, {"view_1": 0, "cart_2": 1}, "session")
    assert matrix.weights.toarray().tolist() == [[pytest.approx(1.0), pytest.approx(1.0)]]


@pytest.mark.parametrize("method", ["anchors", "split", "shift"])
def test_token_features_are_non_negative(method):
    vectors = np.random.default_rng(0).normal(size=(50, 8)).astype(np.float32)
    features = TokenFeaturizer(method, anchors=5).fit(vectors).transform(vectors)
    assert (features >= 0).all()
    if method == "anchors":
        assert np.allclose(features.sum(axis=1), 1.0)
    if method == "split":
        assert np.allclose(features[:, :8] - features[:, 8:], vectors)


def test_sentences_follow_sessions(shop):
    _, _, log = shop
    sessions = token_sentences(log.events, "session")
    assert len(sessions) == log.session_report.sessions
    assert sum(len(s) for s in sessions) == log.events.height
    journeys = token_sentences(log.events, "journey")
    assert len(journeys) == log.events["customer_id"].n_unique()
    assert [t for j in journeys for t in j] == [t for s in sessions for t in s]


def test_profiles_are_normalised_and_traits_named(fitted, shop):
    _, _, log = shop
    traits = fitted.customer_traits_
    assert traits.shape == (log.events["customer_id"].n_unique(), 4)
    assert np.allclose(traits.sum(axis=1), 1.0) and (traits >= 0).all()
    names = [t["name"] for t in fitted.trait_info_]
    assert len(set(names)) == 4
    for info in fitted.trait_info_:
        assert set(info["action_mix"]) == {"view", "cart", "remove", "buy"}
        assert sum(info["action_mix"].values()) == pytest.approx(1.0, abs=0.01)
        assert info["top_categories"] and info["top_tokens"]


def test_traits_recover_personas_better_than_chance(fitted, shop):
    sim, _, _ = shop
    names = [p.name for p in sim.personas]
    truth = sim.truth.join(pl.DataFrame({"customer_id": fitted.customer_ids_,
                                         "row": np.arange(fitted.customer_ids_.size)}),
                           on="customer_id")
    recovery = trait_recovery(truth.select(names).to_numpy(),
                              fitted.customer_traits_[truth["row"].to_numpy()])
    assert recovery["mean_correlation"] > 0.8


def test_embeddings_group_products_by_category(fitted, shop):
    sim, _, _ = shop
    cats = dict(sim.products.select("product_id", "category").iter_rows())
    categories = np.array([cats[p] for p in fitted.product_ids_])
    assert category_purity(fitted.product_vectors_, categories) > 0.5


def test_refresh_matches_fit_and_flags_cold_start(fitted, shop):
    _, _, log = shop
    again = fitted.transform(log)
    cols = [f"trait_{j}" for j in range(4)]
    assert np.allclose(again.select(cols).to_numpy(), fitted.customer_traits_, atol=1e-6)
    new = pl.DataFrame({
        "customer_id": ["newbie", "stranger"],
        "timestamp": [T0, T0],
        "action": ["view", "view"],
        "product_id": [fitted.product_ids_[0], "never-seen-product"],
    }).with_columns(pl.col("timestamp").dt.cast_time_unit("us"))
    profiles = fitted.transform(prepare_frame(new))
    assert profiles["cold_start"].to_list() == [True, True]
    assert np.allclose(profiles.select(cols).to_numpy().sum(axis=1), 1.0)
    stranger = profiles.filter(pl.col("customer_id") == "stranger")
    assert np.allclose(stranger.select(cols).to_numpy()[0], fitted.population_profile_ /
                       fitted.population_profile_.sum())


def test_segments_follow_dominant_personas(fitted, shop):
    sim, _, _ = shop
    segments = fitted.customer_profiles_.join(sim.truth, on="customer_id")
    assert adjusted_rand_score(segments["dominant_persona"], segments["segment"]) > 0.7
    profiles = fitted.segment_profiles_
    assert np.allclose(profiles.sum(axis=1), 1.0) and (profiles >= 0).all()
    assert len(set(profiles.argmax(axis=1))) == len(profiles)
    assert (fitted.assign_segments(profiles) == np.arange(len(profiles))).all()
    newbie = pl.DataFrame({"customer_id": ["newbie"], "timestamp": [T0], "action": ["view"],
                           "product_id": [fitted.product_ids_[0]]}
                          ).with_columns(pl.col("timestamp").dt.cast_time_unit("us"))
    prior = fitted.transform(prepare_frame(newbie))
    cols = [f"trait_{j}" for j in range(4)]
    assert np.allclose(prior.select(cols).to_numpy()[0], profiles[prior["segment"][0]])


def test_similar_and_recommend(fitted, shop):
    _, _, log = shop
    customer = str(fitted.customer_ids_[0])
    similar = fitted.similar(customer, k=5)
    assert similar.height == 5 and customer not in similar["customer_id"].to_list()
    assert similar["similarity"].is_sorted(descending=True)
    recs = fitted.recommend(customer, k=5)
    bought = set(log.events.filter((pl.col("customer_id") == customer) &
                                   (pl.col("action") == "purchase"))["product_id"])
    assert recs.height == 5 and not bought & set(recs["product_id"])
    assert all("trait" in r for r in recs["reason"])
    with pytest.raises(KeyError):
        fitted.recommend("nobody")


def test_artifact_round_trip(fitted, shop, tmp_path):
    _, _, log = shop
    fitted.save(tmp_path / "m")
    loaded = ProfileModel.load(tmp_path / "m")
    assert loaded.get_params() == fitted.get_params()
    assert loaded.trait_info_ == json.loads(json.dumps(fitted.trait_info_))
    a, b = fitted.transform(log), loaded.transform(log)
    assert a.select("customer_id", "segment", "cold_start").equals(
        b.select("customer_id", "segment", "cold_start"))
    assert np.allclose(a.drop("customer_id").to_numpy(), b.drop("customer_id").to_numpy(),
                       rtol=1e-9, atol=1e-12)
    customer = str(fitted.customer_ids_[3])
    assert fitted.recommend(customer).equals(loaded.recommend(customer))


def test_bad_artifacts_fail_clearly(fitted, tmp_path):
    with pytest.raises(ArtifactError, match=r"no manifest\.json"):
        ProfileModel.load(tmp_path)
    path = fitted.save(tmp_path / "m")
    (path / "arrays.safetensors").write_bytes(b"garbage")
    with pytest.raises(ArtifactError, match="checksum mismatch"):
        ProfileModel.load(path)
    path = fitted.save(tmp_path / "m2")
    manifest = json.loads((path / MANIFEST).read_text())
    manifest["format_version"] = 99
    (path / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="format version 99"):
        ProfileModel.load(path)
    manifest["format_version"], manifest["kind"] = FORMAT_VERSION, "sasrec"
    (path / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="not a 'profile' model"):
        ProfileModel.load(path)
    (path / MANIFEST).write_text("{not json")
    with pytest.raises(ArtifactError, match="corrupt manifest"):
        ProfileModel.load(path)


def test_fit_is_reproducible(shop):
    _, _, log = shop
    a = ProfileModel(traits=3, epochs=2, n_init=1, anchors=16, seed=1).fit(log)
    b = ProfileModel(traits=3, epochs=2, n_init=1, anchors=16, seed=1).fit(log)
    assert np.array_equal(a.customer_traits_, b.customer_traits_)


def test_cli_fit_profile_traits_recommend(shop, tmp_path):
    _, paths, _ = shop
    runner = CliRunner()
    model = tmp_path / "model"
    result = runner.invoke(app, ["fit", str(paths["events"]), "--out", str(model),
                                 "--products", str(paths["products"]), "--traits", "3"])
    assert result.exit_code == 0, result.output
    out = tmp_path / "profiles.csv"
    result = runner.invoke(app, ["profile", str(paths["events"]), "--model", str(model),
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    table = pl.read_csv(out)
    assert table.columns[:4] == ["customer_id", "trait_0", "trait_1", "trait_2"]
    assert {"segment", "cold_start"} <= set(table.columns)
    result = runner.invoke(app, ["traits", "--model", str(model), "--json"])
    traits = json.loads(result.stdout.strip().splitlines()[-1])
    assert len(traits) == 3
    for key in ("name", "top_tokens", "top_products", "top_categories", "action_mix"):
        assert key in traits[0]
    customer = str(table["customer_id"][0])
    for command in ("similar", "recommend"):
        result = runner.invoke(app, [command, "--model", str(model), "--customer", customer,
                                     "--k", "4", "--json"])
        assert result.exit_code == 0, result.output
        rows = json.loads(result.stdout.strip().splitlines()[-1])
        assert len(rows) == 4 and all(r["reason"] for r in rows)
    result = runner.invoke(app, ["traits", "--model", str(tmp_path)])
    assert result.exit_code == 2 and "not a funnelprint model directory" in result.output


def test_refit_replaces_cached_vocabulary(shop):
    _, _, log = shop
    model = ProfileModel(traits=3, epochs=2, n_init=1, anchors=16).fit(log)
    first = set(model.vocabulary_index)
    fewer = log.events.filter(pl.col("action") == "view")
    model.fit(fewer)
    assert set(model.vocabulary_index) == set(model.vocabulary_) != first
    assert model.token_features.shape[0] == len(model.vocabulary_)


def test_attention_aggregation_learns_event_weights_and_round_trips(shop, tmp_path):
    _, _, log = shop
    model = ProfileModel(traits=3, epochs=3, n_init=1, anchors=16, aggregation="attention")
    model.fit(log)
    losses = model.aggregator_.history_
    assert losses[-1] < losses[0]  # next-product prediction improved
    importance = model.aggregator_.action_importance()
    assert importance["view"] == 1.0 and set(importance) >= {"add_to_cart", "purchase"}
    assert len(set(importance.values())) > 1  # action weights moved away from equal
    profiles = model.transform(log)
    traits = profiles.select([f"trait_{j}" for j in range(3)]).to_numpy()
    assert np.allclose(traits.sum(axis=1), 1.0)
    model.save(tmp_path / "att")
    again = ProfileModel.load(tmp_path / "att").transform(log)
    assert np.allclose(again.select([f"trait_{j}" for j in range(3)]).to_numpy(), traits,
                       atol=1e-6)
