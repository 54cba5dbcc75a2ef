from __future__ import annotations

import json

import polars as pl
from typer.testing import CliRunner

from funnelprint.cli import app
from funnelprint.data.simulate import SimulationConfig, simulate

runner = CliRunner()


def test_simulation_is_seeded_and_time_ordered():
    a = simulate(SimulationConfig(customers=200, products=100, seed=3))
    b = simulate(SimulationConfig(customers=200, products=100, seed=3))
    c = simulate(SimulationConfig(customers=200, products=100, seed=4))
    assert a.events.equals(b.events)
    assert not a.events.equals(c.events)
    assert a.events["timestamp"].is_sorted()
    for prefix in ("", "prior_"):
        cols = [prefix + p.name for p in a.personas]
        mix = a.truth.select(cols).sum_horizontal()
        assert (mix - 1).abs().max() < 1e-9


def test_personas_differ_in_behaviour():
    sim = simulate(SimulationConfig(customers=1500, products=300, seed=1))
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


def test_sessions_break_between_simulated_sessions(tmp_path):
    sim = simulate(SimulationConfig(customers=300, products=100, seed=2))
    ordered = sim.events.sort("user_id", "timestamp", maintain_order=True)
    gaps = ordered.group_by("user_id", maintain_order=True).agg(
        pl.col("timestamp").diff().dt.total_minutes().alias("gap")
    ).explode("gap")["gap"].drop_nulls()
    assert ((gaps > 20) & (gaps <= 30)).sum() == 0  # gaps are in-session or clearly between


def test_cli_simulate_then_inspect_json(tmp_path):
    out = tmp_path / "sim"
    result = runner.invoke(app, ["simulate", "--out", str(out), "--customers", "100",
                                 "--products", "50", "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert {p.name for p in out.iterdir()} >= {"events.csv", "products.csv", "truth.csv"}
    result = runner.invoke(app, ["inspect", str(out / "events.csv"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    for key in ("events", "customers", "products", "sessions", "actions", "dropped"):
        assert key in summary
    assert summary["customers"] == 100
    assert set(summary["actions"]) >= {"view", "add_to_cart", "remove_from_cart", "purchase"}
    assert sum(summary["actions"].values()) == summary["events"]
    assert summary["session_filter"]["sessions"] == summary["sessions"]


def test_cli_bad_row_exits_nonzero_with_location(write):
    path = write("bad.csv", "user_id,timestamp,action,product_id\nu,yesterday,view,p\n")
    result = runner.invoke(app, ["inspect", str(path)])
    assert result.exit_code == 2
    assert "bad.csv:2" in result.output and "timestamp" in result.output
    result = runner.invoke(app, ["inspect", str(path), "--on-error", "skip", "--json"])
    assert result.exit_code == 0
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["dropped"] == {"bad_timestamp": 1} and summary["events"] == 0


def test_cli_names_for_headerless(write):
    path = write("h.csv", "1700000000000,alice,view,42\n1700000001000,alice,purchase,42\n")
    result = runner.invoke(app, ["inspect", str(path), "--names", "ts,user,event,item", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["timestamp_encoding"] == "epoch-ms"
    assert summary["actions"]["purchase"] == 1
