"""Recommendations and histories for customers the model knows, did not know, or knows
with newer events."""

from __future__ import annotations

import time

import polars as pl
import pytest

from funnelprint.data.dataset import Dataset
from funnelprint.data.pipeline import prepare_events
from funnelprint.data.records import check_records
from funnelprint.data.simulate import SimulationConfig, simulate
from funnelprint.models.serving import (
    events_to_sequences,
    history_for,
    pipeline_sequences,
    profile_history,
    recommend_history,
    recommend_with_reasons,
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


def test_a_known_customer_without_new_events_matches_the_fitted_path(model):
    customer = str(model.dataset_.customer_ids[0])
    history = history_for(model, customer)
    assert history.known_row == 0 and history.new_events == 0
    fitted = recommend_with_reasons(model, customer, k=5, exclude_seen=False)
    served = recommend_history(model, history, k=5, exclude="none")
    assert [i["product_id"] for i in served] == [i["product_id"] for i in fitted]


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


def test_one_row_profiles_are_remembered_as_copies(model):
    history = history_for(model, str(model.dataset_.customer_ids[3])).sequences
    first = model.profile_.profile(history)
    first.traits[:] = -1  # a caller changing its copy does not change the next answer
    second = model.profile_.profile(history)
    assert (second.traits >= 0).all()
    both = model.profile_.profile(model.dataset_.sequences.select([3, 4]))
    assert abs(both.traits[0] - second.traits[0]).max() < 1e-5


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
