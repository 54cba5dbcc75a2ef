"""Recommendations and histories for customers the model knows, did not know, or knows
with newer events: one request, one answer path."""

from __future__ import annotations

import time

import numpy as np
import polars as pl
import pytest

from funnelprint.data.dataset import Dataset
from funnelprint.data.pipeline import prepare_events
from funnelprint.data.records import check_records
from funnelprint.data.simulate import SimulationConfig, simulate
from funnelprint.models.serving import (
    Request,
    answer,
    events_to_sequences,
    history_for,
    pipeline_sequences,
    profile_history,
    recommend_customer,
)
from funnelprint.models.traits import TraitsRecommender


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    sim = simulate(SimulationConfig(customers=200, products=80, seed=5))
    log = prepare_events(sim.write(tmp_path_factory.mktemp("shop"))["events"])
    dataset = Dataset.from_events(log, collapse_repeats=False, products=sim.products)
    return TraitsRecommender(traits=3, n_init=1, anchors=16, epochs=3).fit(dataset)


def events(customer, *steps):
    start = int(time.time()) - 86_400  # later than the simulated history
    return check_records([{"customer_id": customer, "timestamp": start + 60 * i,
                           "action": a, "product_id": p} for i, (a, p) in enumerate(steps)]
                         ).events.drop("index")


def recommend_history(model, history, k=10, exclude="seen"):
    return answer(model, Request.of_history(model, "c", history), k, exclude).lists()[0]


def test_a_known_customer_without_new_events_matches_the_fitted_path(model):
    customer = str(model.dataset_.customer_ids[0])
    history = history_for(model, customer)
    assert history.known_row == 0 and history.new_events == 0
    fitted = recommend_customer(model, customer, k=5, exclude="none")
    served = recommend_history(model, history, k=5, exclude="none")
    assert [i["product_id"] for i in served] == [i["product_id"] for i in fitted]
    items, _ = model.recommend(np.array([0]), k=5, exclude_seen=False)
    assert [i["product_id"] for i in served] == model.dataset_.item_ids[items[0]].tolist()


def test_exclusions_are_the_same_for_every_caller(model):
    customer = str(model.dataset_.customer_ids[1])
    history = model.dataset_.sequences.select(np.array([1]))
    seen = set(model.dataset_.item_ids[history.items])
    bought = set(model.dataset_.item_ids[history.items[
        history.actions == model.dataset_.action_names.index("purchase")]])
    assert bought and seen - bought
    shown = {e: {i["product_id"] for i in recommend_customer(model, customer, 200, e)}
             for e in ("seen", "purchased", "none")}
    assert not shown["seen"] & seen and not shown["purchased"] & bought
    assert shown["purchased"] & (seen - bought) and shown["none"] & bought
    assert {i["product_id"] for i in recommend_customer(model, customer, 200)} == shown["seen"]
    with pytest.raises(ValueError, match="exclude"):
        recommend_customer(model, customer, 5, "bought")  # type: ignore[arg-type]


def test_a_batch_answers_each_customer_as_alone(model):
    ids = [*model.dataset_.customer_ids[:7].tolist(), "stranger"]
    batch = answer(model, Request.of_known(model, ids), k=4).lists()
    assert len(batch) == 8
    for customer, listed in zip(ids, batch, strict=True):
        alone = recommend_customer(model, customer, 4)
        assert [i["product_id"] for i in listed] == [i["product_id"] for i in alone]
        assert [i["reason"] for i in listed] == [i["reason"] for i in alone]


def test_new_events_extend_the_fitted_history(model):
    customer = str(model.dataset_.customer_ids[0])
    base = history_for(model, customer).sequences.items.size
    new = events(customer, ("view", "p0001"), ("add_to_cart", "p0001"), ("view", "nope"))
    history = history_for(model, customer, new)
    assert (history.new_events, history.unknown_events) == (3, 1)
    assert history.sequences.items.size == base + 2
    old = new.with_columns(pl.col("timestamp") - pl.duration(days=365 * 30))
    assert history_for(model, customer, old).new_events == 0  # already in the fitted data


def test_a_new_customer_from_events_alone(model):
    history = history_for(model, "brand-new", events("brand-new", ("view", "p0002"),
                                                     ("purchase", "p0002")))
    assert history.known_row is None and history.sequences.n_rows == 1
    items = recommend_history(model, history, k=4)
    assert len(items) == 4 and "p0002" not in [i["product_id"] for i in items]
    assert all(i["reason"] for i in items)
    nobody = history_for(model, "nobody")  # no events anywhere: a cold start
    assert nobody.known_row is None and nobody.sequences.items.size == 0
    assert len(recommend_history(model, nobody, k=4)) == 4
    assert profile_history(model, nobody).cold[0]
    with pytest.raises(ValueError):
        recommend_history(model, history, k=0)


def test_answering_leaves_the_fitted_model_as_it_was(model):
    before = {k: v for k, v in vars(model.profile_).items()}
    state = {k: v for k, v in vars(model).items()}
    recommend_customer(model, str(model.dataset_.customer_ids[3]), 5)
    recommend_customer(model, "someone-new", 5, events=events("someone-new", ("view", "p0001")))
    assert vars(model.profile_).keys() == before.keys() and vars(model).keys() == state.keys()
    assert all(vars(model)[k] is v for k, v in state.items())
    assert all(vars(model.profile_)[k] is v for k, v in before.items())


def test_the_direct_path_matches_the_event_pipeline(model):
    steps = [("view", "p0003"), ("add_to_cart", "p0003"), ("view", "unknown"),
             ("teleport", "p0004"), ("purchase", "p0003"), ("view", "p0007")]
    frame = events("c", *steps)
    late = frame.with_columns(  # a later visit, past the session gap, given out of order
        pl.when(pl.int_range(pl.len()) >= 4).then(pl.col("timestamp") + pl.duration(hours=2))
        .otherwise(pl.col("timestamp")).alias("timestamp")).reverse()
    for table in (frame, late):
        direct, skipped = events_to_sequences(model, table)
        piped, piped_skipped = pipeline_sequences(model, table, 30.0)
        assert skipped == piped_skipped == 2
        for name in ("offsets", "items", "actions", "times", "sessions"):
            assert (getattr(direct, name) == getattr(piped, name)).all(), name
    assert len(set(events_to_sequences(model, late)[0].sessions.tolist())) == 2


def test_a_history_without_new_events_keeps_the_fitted_profile(model):
    customer = str(model.dataset_.customer_ids[2])
    history = history_for(model, customer)
    fitted = profile_history(model, history)
    solved = model.profile_.profile(history.sequences, model.dataset_.action_names)
    assert abs(fitted.traits - solved.traits).max() < 1e-5
    assert (fitted.segments == solved.segments).all()
    extended = history_for(model, customer, events(customer, *[("purchase", "p0005")] * 3))
    assert abs(profile_history(model, extended).traits - fitted.traits).max() > 1e-4
