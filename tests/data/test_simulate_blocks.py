from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from funnelprint.cli import run
from funnelprint.data.simulate import SimulationConfig, simulate
from funnelprint.data.simulate_blocks import simulate_blocks, write_blocks


def _read(path):
    return pl.read_csv(path, schema_overrides={"user_id": pl.String})


def test_blocks_are_seeded_and_number_customers_and_bots_apart(tmp_path):
    config = SimulationConfig(customers=700, products=120, seed=5, scenario="noisy")
    a = write_blocks(config, tmp_path / "a", block_customers=300)
    b = write_blocks(config, tmp_path / "b", block_customers=300, workers=2)
    assert a.blocks == 3 and a.customers == 700 and a.bots == 6 + 6 + 2
    events_a, events_b = _read(a.paths["events"]), _read(b.paths["events"])
    assert events_a.equals(events_b)  # the same draw on one process or two
    truth = pl.read_csv(a.paths["truth"])
    assert truth["customer_id"].n_unique() == 700
    assert truth["customer_id"].sort().to_list() == [f"u{i:04d}" for i in range(700)]
    bots = json.loads(a.paths["archetypes"].read_text())["bots"]
    assert sorted(bots) == [f"u{i:04d}" for i in range(700, 714)]
    assert set(events_a["user_id"].unique()) == set(truth["customer_id"]) | set(bots)
    assert events_a.height == a.events
    c = write_blocks(SimulationConfig(customers=700, products=120, seed=6, scenario="noisy"),
                     tmp_path / "c", block_customers=300)
    assert not _read(c.paths["events"]).equals(events_a)


def test_blocks_follow_the_whole_shop_distributions():
    config = SimulationConfig(customers=4000, products=300, seed=1)
    whole = simulate(config)
    blocks = list(simulate_blocks(config, block_customers=1000))
    events = pl.concat([b.events for b in blocks])
    truth = pl.concat([b.truth for b in blocks])

    def summary(ev: pl.DataFrame, tr: pl.DataFrame) -> np.ndarray:
        actions = ev["action"].value_counts(normalize=True, sort=True, name="share")
        shares = dict(actions.iter_rows())
        mix = tr.select(pl.selectors.starts_with("behaviour:")).mean().row(0)
        return np.array([ev.height / tr.height, shares["view"], shares["add_to_cart"],
                         shares["purchase"], *mix])

    assert summary(events, truth) == pytest.approx(summary(whole.events, whole.truth), rel=0.06)
    assert events["user_id"].n_unique() == 4000
    assert all(b.events["timestamp"].is_sorted() for b in blocks)


def test_bundled_is_not_drawn_in_blocks():
    with pytest.raises(ValueError, match="bundled"):
        next(simulate_blocks(SimulationConfig(customers=10, scenario="bundled"), 5))


def test_cli_writes_blocks_as_parquet(tmp_path, capsys):
    out = tmp_path / "shop"
    code = run(["simulate", "--out", str(out), "--customers", "250", "--products", "60",
                "--block-customers", "100", "--format", "parquet", "--sessions", "4"])
    assert code == 0
    events = pl.read_parquet(out / "events.parquet")
    assert events.schema["timestamp"] == pl.Datetime("us")
    assert events["user_id"].n_unique() == 250
    assert "3 blocks" in capsys.readouterr().out
    assert run(["simulate", "--out", str(tmp_path / "x"), "--format", "parquet"]) == 2
