"""Each sequential model learns, scores, re-ranks and explains (models/neural/models.py,
base.py, explain.py)."""

from __future__ import annotations

import numpy as np
import pytest

from funnelprint.data.sequences import Sequences
from funnelprint.evaluate.leaderboard import run_leaderboard
from funnelprint.evaluate.protocol import Protocol, evaluate_model
from funnelprint.evaluate.splits import loo_split
from funnelprint.models import CandidateScorer, Explainer, make_model

from .conftest import FAST, FEW_STEPS, cyclic_dataset


@pytest.mark.parametrize("loss", ["ce", "bce", "sampled"])
def test_sasrec_learns_a_simple_sequence(loss, cyclic_split, cyclic_valid):
    model = make_model("sasrec", maxlen=10, dim=32, epochs=30, eval_every=5, patience=10,
                       loss=loss, negatives=8, lr=5e-3, progress=False, dropout=0.0)
    model.fit(cyclic_split.train, cyclic_valid)
    losses = [e["loss"] for e in model.fit_report_["epochs"]]
    assert losses[-1] < losses[0]
    scores = model.score(cyclic_split.test.history.select(np.arange(20)))
    assert np.isfinite(scores).all()
    top = scores.argmax(axis=1)
    assert (top == cyclic_split.test.target_items[:20]).mean() > 0.5  # chance: 1 in 12
    items, _ = model.recommend(np.arange(5), k=3)
    assert ((items >= 0) & (items < cyclic_split.train.n_items)).all()


@pytest.mark.parametrize("key", ["bert4rec", "gru4rec", "funnelformer", "bst", "srgnn", "gcegnn",
                                 "seqvae"])
def test_each_sequential_model_learns_and_returns_valid_items(key, cyclic_split, cyclic_valid):
    model = make_model(key, **FAST)
    model.fit(cyclic_split.train, cyclic_valid)
    losses = [e["loss"] for e in model.fit_report_["epochs"]]
    assert losses[-1] < 0.8 * losses[0]
    assert 0.0 < model.fit_report_["best_valid"] <= 1.0
    history = cyclic_split.test.history.select(np.arange(20))
    scores = model.score(history)
    assert scores.shape == (20, cyclic_split.train.n_items)
    assert np.isfinite(scores).all()
    items, _ = model.recommend(np.arange(5), k=3)
    assert ((items >= 0) & (items < cyclic_split.train.n_items)).all()
    # the next item is fully determined: a trained model must find it far above chance (1/12)
    result = evaluate_model(model, cyclic_split.test, cyclic_split.train,
                            Protocol.parse("loo-full"), ks=(1,))
    assert result["HR@1"] > 0.5


def test_eval_mode_scores_stay_finite_for_empty_and_padded_histories(cyclic_split):
    empty = Sequences(np.zeros(2, np.int64), np.zeros(0, np.int32), np.zeros(0, np.int8),
                      np.zeros(0, np.int64))
    for key in ("sasrec", "bert4rec", "gru4rec", "funnelformer", "bst", "srgnn", "gcegnn",
                "seqvae"):
        model = make_model(key, **{**FEW_STEPS, "epochs": 1}).fit(cyclic_split.train)
        assert np.isfinite(model.score(empty)).all(), key
        assert np.isfinite(model.score(cyclic_split.test.history)).any(axis=1).all(), key


def test_abilities_are_declared_by_the_classes():
    assert isinstance(make_model("bst"), CandidateScorer)
    assert not isinstance(make_model("sasrec"), CandidateScorer)
    for key in ("sasrec", "bert4rec", "gru4rec", "funnelformer", "bst", "srgnn", "gcegnn",
                "seqvae"):
        assert isinstance(make_model(key), Explainer)


def test_bst_reranks_the_generator_candidates(cyclic_split, cyclic_valid):
    model = make_model("bst", n_candidates=4, **FAST)
    model.fit(cyclic_split.train, cyclic_valid)
    assert model.generator_.key == "markov"
    history = cyclic_split.test.history.select(np.arange(6))
    scores = model.score(history)
    # exactly n_candidates items per row get a probability in (0, 1); the rest stay below 0
    assert ((scores > 0).sum(axis=1) == 4).all() and (scores < 1).all()
    candidates = np.argsort(-scores, axis=1)[:, :4]
    direct = model.score_candidates(history, None, candidates)
    assert np.allclose(1 / (1 + np.exp(-direct)),
                       np.take_along_axis(scores, candidates, axis=1), atol=1e-5)


def test_bst_fits_its_generator_with_the_same_validator(cyclic_split, cyclic_valid,
                                                       monkeypatch):
    from funnelprint.models.baselines import Markov

    seen = []
    original = Markov.fit

    def spy(self, train, valid=None):
        seen.append((train, valid))
        return original(self, train, valid)

    monkeypatch.setattr(Markov, "fit", spy)
    make_model("bst", **FEW_STEPS).fit(cyclic_split.train, cyclic_valid)
    assert len(seen) == 1
    assert seen[0][0] is cyclic_split.train and seen[0][1] is cyclic_valid


def test_explanations_are_distributions_over_the_window(cyclic_split, cyclic_valid):
    model = make_model("sasrec", **FAST).fit(cyclic_split.train, cyclic_valid)
    history = cyclic_split.test.history.select(np.array([0]))
    weights = model.explain(history, np.array([0, 1, 2]))
    assert weights.shape == (3, min(history.lengths[0], 10))
    assert np.allclose(weights.sum(axis=1), 1.0) and (weights >= 0).all()
    attention = model.self_attention(history)
    assert attention is not None and attention.shape == (weights.shape[1],) * 2
    gru = make_model("gru4rec", **FAST).fit(cyclic_split.train, cyclic_valid)
    grads = gru.explain(history, np.array([0, 5]))
    assert np.allclose(grads.sum(axis=1), 1.0)
    assert not np.allclose(grads[0], grads[1])  # gradient attribution depends on the item
    assert gru.self_attention(history) is None
    with pytest.raises(ValueError, match="one customer"):
        model.explain(cyclic_split.test.history.select(np.arange(2)), np.array([0]))
    with pytest.raises(ValueError, match="item indices"):
        model.explain(history, np.array([cyclic_split.train.n_items]))


@pytest.mark.parametrize("key, method", [("funnelformer", "attended to"),
                                         ("gru4rec", "driven by"), ("bst", "matches"),
                                         ("bert4rec", "attended to")])
def test_reasons_name_steps_of_the_given_history(key, method, funnel_split):
    model = make_model(key, **FEW_STEPS).fit(funnel_split.train)
    data = funnel_split.train
    # a history that is no customer's: labels come from it and the dataset's id maps
    items = np.array([3, 4, 5, 6, 7], dtype=np.int32)
    actions = np.array([0, 0, 1, 0, 3], dtype=np.int8)
    history = Sequences(np.array([0, 5]), items, actions, np.arange(5, dtype=np.int64))
    labels = model.step_labels(history)
    words = {0: "viewed", 1: "carted", 3: "bought"}
    assert labels == [f"{words[int(a)]} {data.item_ids[i]}"
                      for i, a in zip(items, actions, strict=True)]
    wanted = np.array([0, 1, 2])
    reasons = model.reasons(history, wanted)
    assert len(reasons) == 3
    weights = model.explain(history, wanted)
    for reason, row in zip(reasons, weights, strict=True):
        assert reason["text"].startswith(method)
        steps = [e["step"] for e in reason["evidence"]]
        assert 1 <= len(steps) <= 3 and set(steps) <= set(labels)
        assert reason["evidence"][0]["weight"] == pytest.approx(row.max(), abs=1e-4)
        assert all(f"{e['step']} (" in reason["text"] for e in reason["evidence"])
    assert model.reasons(history, np.array([], dtype=np.int64)) == []


def test_reasons_omit_actions_when_the_data_has_one_kind(cyclic_split):
    model = make_model("sasrec", **FEW_STEPS).fit(cyclic_split.train)
    history = cyclic_split.test.history.select(np.array([0]))
    reason = model.reasons(history, np.array([1]))[0]
    assert all(e["step"].startswith("i") for e in reason["evidence"])


def test_leaderboard_selects_a_sequential_model_on_its_protocol():
    data = loo_split(cyclic_dataset(customers=60, items=15)).train
    record = run_leaderboard(data, ["sasrec", "pop"], "loo-sampled10",
                             model_params={"sasrec": {"epochs": 4, "dim": 16, "maxlen": 8}})
    result = record["models"]["sasrec"]
    assert 0.0 < result["best_valid_NDCG@10"] <= 1.0 and result["best_epoch"] >= 1
    assert 0.0 <= result["HR@10"] <= 1.0
