from __future__ import annotations

import polars as pl
import pytest

from funnelprint.data.simulate import SCENARIOS, SimulationConfig, simulate


def test_simulation_is_seeded_and_time_ordered():
    a = simulate(SimulationConfig(customers=200, products=100, seed=3, scenario="bundled"))
    b = simulate(SimulationConfig(customers=200, products=100, seed=3, scenario="bundled"))
    c = simulate(SimulationConfig(customers=200, products=100, seed=4, scenario="bundled"))
    assert a.events.equals(b.events)
    assert not a.events.equals(c.events)
    assert a.events["timestamp"].is_sorted()
    for prefix in ("", "prior_"):
        cols = [prefix + p.name for p in a.personas]
        mix = a.truth.select(cols).sum_horizontal()
        assert (mix - 1).abs().max() < 1e-9


def test_personas_differ_in_behaviour():
    sim = simulate(SimulationConfig(customers=1500, products=300, seed=1, scenario="bundled"))
    names = [p.name for p in sim.personas]
    dominant = sim.truth.filter(pl.max_horizontal(names) > 0.8)
    events = sim.events.join(dominant.select(pl.col("customer_id").alias("user_id"),
                                             "dominant_persona"), on="user_id")
    rates = events.group_by("dominant_persona").agg(
        (pl.col("action") == "remove_from_cart").mean().alias("remove"),
        (pl.col("action") == "purchase").mean().alias("buy"),
    )
    by = {r["dominant_persona"]: r for r in rates.iter_rows(named=True)}
    assert by["cart_abandoner"]["remove"] > 2 * by["dog_owner"]["remove"]
    assert by["beauty_impulse"]["buy"] > 2 * by["cart_abandoner"]["buy"]
    cats = events.join(sim.products.rename({"product_id": "pid"}),
                       left_on="product_id", right_on="pid")
    dog = cats.filter(pl.col("dominant_persona") == "dog_owner")
    assert (dog["category"] == "pets.dog").mean() > 0.5


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_sessions_break_between_simulated_sessions(scenario):
    sim = simulate(SimulationConfig(customers=300, products=100, seed=2, scenario=scenario))
    ordered = sim.events.sort("user_id", "timestamp", maintain_order=True)
    gaps = ordered.group_by("user_id", maintain_order=True).agg(
        pl.col("timestamp").diff().dt.total_minutes().alias("gap")
    ).explode("gap")["gap"].drop_nulls()
    assert ((gaps > 20) & (gaps <= 30)).sum() == 0  # gaps are in-session or clearly between
