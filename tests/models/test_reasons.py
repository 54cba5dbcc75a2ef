"""Reasons name the true causes of a product's score: checked against the score's own
decomposition (learned weights x features) on sampled customers."""

from __future__ import annotations

import re

import numpy as np
import pytest

from funnelprint.data.dataset import Dataset
from funnelprint.data.pipeline import prepare_events
from funnelprint.data.simulate import SimulationConfig, simulate
from funnelprint.models import affinity, reasons
from funnelprint.models.serving import Request, answer
from funnelprint.models.traits import TraitsRecommender


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    sim = simulate(SimulationConfig(customers=400, products=150, seed=11))
    log = prepare_events(sim.write(tmp_path_factory.mktemp("shop"))["events"])
    dataset = Dataset.from_events(log, collapse_repeats=False, products=sim.products)
    return TraitsRecommender(traits=6, n_init=1, anchors=16, epochs=3).fit(dataset)


@pytest.fixture(scope="module")
def sampled(model):
    rng = np.random.default_rng(0)
    ids = rng.choice(model.dataset_.customer_ids, 40, replace=False)
    request = Request.of_known(model, ids)
    results = {e: answer(model, request, k=10, exclude=e) for e in ("seen", "none")}
    return request, results


def decomposition(model, request, items):
    """Centred contributions computed here from the features and the weights."""
    c = model.config
    stack = affinity.features(request.history, request.prepared.traits, model.items_,
                              model.dataset_.action_names, c.last_n, c.decay)
    centred = stack - stack.mean(axis=2, keepdims=True)
    picked = np.take_along_axis(centred, np.maximum(items, 0)[None], axis=2)
    return picked.transpose(1, 2, 0) * model.weights_, stack


@pytest.mark.parametrize("exclude", ["seen", "none"])
def test_the_first_factor_is_the_largest_contribution(model, sampled, exclude):
    request, results = sampled
    result = results[exclude]
    parts, stack = decomposition(model, request, result.items)
    score = np.tensordot(model.weights_, stack, axes=1)
    listed = result.items >= 0
    # The contributions are the score, less the row's mean score.
    rebuilt = parts.sum(axis=2) + score.mean(axis=1, keepdims=True)
    exact = np.take_along_axis(score, np.maximum(result.items, 0), axis=1)
    assert np.allclose(rebuilt[listed], exact[listed], atol=1e-3)
    checked = 0
    for row, row_reasons in enumerate(result.reasons):
        for col, reason in enumerate(row_reasons):
            largest = affinity.FEATURES[int(parts[row, col].argmax())]
            assert reason["evidence"][0]["step"] == largest, reason
            weights = [e["weight"] for e in reason["evidence"]]
            assert weights == sorted(weights, reverse=True) and weights[0] > 0
            checked += 1
    assert checked == listed.sum() > 300


def test_a_cited_trait_leads_the_profile_and_the_item_loads_on_it(model, sampled):
    request, results = sampled
    names = [info["name"] for info in model.profile_.trait_info_]
    shares = model.catalogue_.trait_shares
    cited = 0
    for result in results.values():
        for row, row_reasons in enumerate(result.reasons):
            mix = request.prepared.traits[row]
            leading = set(np.argsort(-mix)[:reasons.LEADING][
                mix[np.argsort(-mix)[:reasons.LEADING]] >= reasons.LEADING_SHARE].tolist())
            for col, reason in enumerate(row_reasons):
                found = re.search(r"fits trait '(.+?)' \((\d+)%", reason["text"])
                if not found:
                    continue
                j = names.index(found.group(1))
                item = result.items[row, col]
                assert j in leading and shares[item, j] >= reasons.LOADS
                assert int(found.group(2)) == round(100 * mix[j])
                cited += 1
    assert cited > 0


def test_popular_is_said_only_of_the_popular_head(model, sampled):
    _, results = sampled
    counts = model.dataset_.item_counts()
    order = np.argsort(-counts, kind="stable")
    head_size = int(np.searchsorted(np.cumsum(counts[order]), 0.25 * counts.sum()) + 1)
    head = set(order[:head_size].tolist())
    for result in results.values():
        for row, row_reasons in enumerate(result.reasons):
            for col, reason in enumerate(row_reasons):
                if "most popular" in reason["text"]:
                    assert int(result.items[row, col]) in head


def test_the_popular_head_holds_a_quarter_of_the_interactions():
    counts = np.array([50, 30, 10, 5, 3, 2, 0])
    assert np.flatnonzero(reasons.popular_head(counts)).tolist() == [0]
    assert np.flatnonzero(reasons.popular_head(counts, 0.6)).tolist() == [0, 1]
    assert not reasons.popular_head(np.zeros(3)).any()


def test_a_link_reason_names_the_history_product_behind_it(model, sampled):
    request, results = sampled
    ids = model.dataset_.item_ids
    named = 0
    for row, row_reasons in enumerate(results["seen"].reasons):
        recent = set(ids[request.history.last(model.config.last_n).row(row)].tolist())
        for reason in row_reasons:
            for phrase in ("often the next product after ", "often in the same visits as "):
                if phrase in reason["text"]:
                    product = reason["text"].split(phrase)[1].split(";")[0]
                    assert product in recent
                    named += 1
    assert named > 0
