"""Simulator scenarios: reproducible, the original one unchanged, taste and behaviour drawn
independently, and every behaviour archetype visible in statistics of the events alone."""

from __future__ import annotations

import hashlib

import numpy as np
import polars as pl
import pytest

from funnelprint.data.simulate import (
    BEHAVIOURS,
    SCENARIOS,
    TASTES,
    SimulationConfig,
    behaviour_columns,
    simulate,
    taste_columns,
)

ACTIONS = {"view", "add_to_cart", "remove_from_cart", "purchase"}


def _sha256(data: bytes | str) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def _canonical(frame: pl.DataFrame, digits: int) -> str:
    """Rows as text with floats at fixed precision: independent of CSV float formatting."""
    return "\n".join(
        ",".join(f"{v:.{digits}f}" if isinstance(v, float) else str(v) for v in row)
        for row in frame.iter_rows()
    )


def customer_statistics(events: pl.DataFrame, products: pl.DataFrame) -> pl.DataFrame:
    """Per customer, from the events (and the catalogue's prices) alone: the behaviour signals
    the simulator is meant to produce. Sessions break at gaps over 30 minutes."""
    price_pct = products.select(
        "product_id",
        (pl.col("price").rank("average").over("category") / pl.len().over("category"))
        .alias("price_pct"),
    )
    ev = (
        events.sort("user_id", "timestamp", maintain_order=True)
        .with_columns(gap=pl.col("timestamp").diff().over("user_id").dt.total_seconds())
        .with_columns(session=(pl.col("gap").is_null() | (pl.col("gap") > 1800))
                      .cum_sum().over("user_id"))
        .join(price_pct, on="product_id", how="left")
    )
    is_ = {a: pl.col("action") == a for a in ACTIONS}
    # View -> cart latency: first cart of a product in a session minus its first view there.
    latency = (
        ev.group_by("user_id", "session", "product_id")
        .agg(pl.col("timestamp").filter(is_["view"]).min().alias("seen"),
             pl.col("timestamp").filter(is_["add_to_cart"]).min().alias("carted"))
        .drop_nulls()
        .group_by("user_id")
        .agg((pl.col("carted") - pl.col("seen")).dt.total_seconds().median()
             .alias("view_to_cart_s"))
    )
    bought = ev.filter(is_["purchase"]).select("user_id", "product_id").unique()
    never = (
        ev.filter(is_["add_to_cart"]).select("user_id", "product_id").unique()
        .join(bought.with_columns(bought=pl.lit(True)), on=["user_id", "product_id"],
              how="left")
        .group_by("user_id").agg(pl.col("bought").is_null().mean().alias("carts_never_bought"))
    )
    cadence = (
        ev.group_by("user_id", "session").agg(pl.col("timestamp").min().alias("t0"))
        .sort("user_id", "t0")
        .group_by("user_id")
        .agg(pl.len().alias("sessions"),
             (pl.col("t0").diff().dt.total_seconds().std()
              / pl.col("t0").diff().dt.total_seconds().mean()).alias("gap_cv"))
    )
    # Purchases of a product the customer had bought in an earlier session.
    rebuy = (
        ev.filter(is_["purchase"])
        .with_columns(first=pl.col("session").min().over("user_id", "product_id"))
        .group_by("user_id").agg((pl.col("session") > pl.col("first")).mean().alias("rebuy"))
    )
    counts = ev.group_by("user_id").agg(
        *(a.sum().alias(name) for name, a in
          (("views", is_["view"]), ("carts", is_["add_to_cart"]),
           ("removes", is_["remove_from_cart"]), ("buys", is_["purchase"]))),
        pl.col("price_pct").filter(is_["add_to_cart"]).mean().alias("cart_price_pct"),
    )
    sessions = ev.group_by("user_id").agg(pl.col("session").n_unique().alias("n_sessions"))
    return (
        counts.join(sessions, on="user_id")
        .with_columns(
            views_per_session=pl.col("views") / pl.col("n_sessions"),
            cart_rate=pl.col("carts") / pl.col("views"),
            conversion=pl.col("buys") / pl.col("views"),
            remove_rate=pl.col("removes") / pl.col("carts").clip(1),
        )
        .join(latency, on="user_id", how="left")
        .join(never, on="user_id", how="left")
        .join(cadence, on="user_id", how="left")
        .join(rebuy, on="user_id", how="left")
    )


def dominant(truth: pl.DataFrame, columns: list[str], threshold: float) -> pl.DataFrame:
    """Customers whose largest share in ``columns`` exceeds ``threshold``, with its name."""
    names = [c.split(":", 1)[1] for c in columns]
    return truth.select(
        pl.col("customer_id").alias("user_id"),
        pl.concat_list(columns).list.arg_max().alias("index"),
        pl.max_horizontal(columns).alias("top"),
    ).filter(pl.col("top") > threshold).with_columns(
        pl.col("index").replace_strict(list(range(len(names))), names).alias("dominant")
    )


def by_dominant_behaviour(sim, threshold: float = 0.6) -> dict[str, dict[str, float]]:
    stats = customer_statistics(sim.events, sim.products).join(
        dominant(sim.truth, behaviour_columns(sim.truth), threshold), on="user_id")
    table = stats.group_by("dominant").agg(
        pl.len().alias("customers"),
        *(pl.col(c).fill_nan(None).mean() for c in stats.columns
          if c not in ("user_id", "dominant", "index", "top")),
    )
    return {row.pop("dominant"): row for row in table.iter_rows(named=True)}


@pytest.fixture(scope="module")
def independent():
    return simulate(SimulationConfig(customers=3000, seed=0))


@pytest.fixture(scope="module")
def behaviour_table(independent):
    return by_dominant_behaviour(independent)


# --- every scenario ---------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_scenario_is_seeded_and_well_formed(scenario):
    config = SimulationConfig(customers=150, products=80, seed=11, scenario=scenario)
    a, b = simulate(config), simulate(config)
    other = simulate(SimulationConfig(customers=150, products=80, seed=12, scenario=scenario))
    assert a.events.equals(b.events) and a.truth.equals(b.truth)
    assert a.products.equals(b.products)
    assert not a.events.equals(other.events)
    events = a.events
    assert events.columns == ["user_id", "timestamp", "action", "product_id"]
    assert events["timestamp"].is_sorted()
    assert set(events["action"].unique()) == ACTIONS
    assert a.products.columns == ["product_id", "category", "brand", "price"]
    assert set(events["product_id"]) <= set(a.products["product_id"])
    customers = set(a.truth["customer_id"])
    assert len(customers) == 150
    assert set(events["user_id"]) == customers | set(a.bots)
    assert not customers & set(a.bots)
    if scenario == "bundled":
        groups = [[p.name for p in a.personas]]
    else:
        groups = [taste_columns(a.truth), behaviour_columns(a.truth)]
        assert len(groups[0]) == len(a.tastes) and len(groups[1]) == len(a.behaviours)
    for cols in groups:
        for prefix in ("", "prior_"):
            mix = a.truth.select(prefix + c for c in cols).sum_horizontal()
            assert (mix - 1).abs().max() < 1e-9


def test_scenarios_write_their_archetypes(tmp_path):
    import json

    paths = simulate(SimulationConfig(customers=60, products=40, scenario="noisy")).write(
        tmp_path / "noisy")
    assert set(paths) == {"events", "products", "truth", "archetypes"}
    described = json.loads(paths["archetypes"].read_text())
    assert described["scenario"]["name"] == "noisy"
    assert [t["name"] for t in described["tastes"]] == [t.name for t in TASTES[:6]]
    assert [b["name"] for b in described["behaviours"]] == [b.name for b in BEHAVIOURS[:5]]
    assert described["truth_columns"]["behaviour"][0] == "behaviour:price_seeker"
    assert len(described["bots"]) == 1
    truth = pl.read_csv(paths["truth"])
    assert truth.columns[:3] == ["customer_id", "dominant_persona", "taste:dog_owner"]
    bundled = simulate(SimulationConfig(customers=60, products=40, scenario="bundled")).write(
        tmp_path / "bundled")
    assert set(bundled) == {"events", "products", "truth", "personas"}


def test_config_rejects_options_of_other_scenarios():
    with pytest.raises(ValueError, match="unknown scenario"):
        SimulationConfig(scenario="chaos")
    with pytest.raises(ValueError, match="personas apply only to the bundled"):
        SimulationConfig(personas=4)
    with pytest.raises(ValueError, match="do not apply to the bundled"):
        SimulationConfig(scenario="bundled", tastes=3)
    with pytest.raises(ValueError, match="tastes must be between"):
        SimulationConfig(tastes=len(TASTES) + 1)
    with pytest.raises(ValueError, match="behaviours must be between"):
        SimulationConfig(scenario="many", behaviours=0)
    sim = simulate(SimulationConfig(customers=50, products=40, tastes=2, behaviours=1))
    assert taste_columns(sim.truth) == ["taste:dog_owner", "taste:gadget_lover"]
    assert behaviour_columns(sim.truth) == ["behaviour:price_seeker"]


# --- bundled: the original simulator, file for file -------------------------------------------


def test_bundled_writes_the_same_files_as_before(tmp_path):
    sim = simulate(SimulationConfig(customers=200, products=100, seed=3, scenario="bundled"))
    paths = sim.write(tmp_path)
    # Checksums of the files the simulator wrote before it had scenarios (same seed).
    assert _sha256(paths["events"].read_bytes()) == (
        "dcdcd02c0d5e8874080117b024e87ebd56e2c97e211679495f427cf153b63575")
    assert _sha256(paths["personas"].read_bytes()) == (
        "ba563277eccdaff3f5725a7c6e0b060727eeaecd9d73d502c1a75fc3295d28a7")
    assert paths["events"].read_text().splitlines()[1:4] == [
        "u0107,2024-01-01 02:25:42,view,p0041",
        "u0107,2024-01-01 02:26:11,view,p0041",
        "u0107,2024-01-01 02:26:21,add_to_cart,p0041",
    ]
    assert _sha256(_canonical(sim.truth, 4)) == (
        "f0c80e257d0ff6157fecb267a84293b7a806d2386f8a76acec79f687246446b1")
    assert _sha256(_canonical(sim.products, 2)) == (
        "bbd77cbd90d9c16298778ad2cdd642222d94c2a59c4bf56c11278b61f83378c2")


def test_quality_code_finds_the_mix_columns():
    quality = pytest.importorskip("funnelprint.profile.quality")
    bundled = simulate(SimulationConfig(customers=80, products=40, scenario="bundled"))
    assert quality.persona_columns(bundled.truth) == [p.name for p in bundled.personas]
    mixed = simulate(SimulationConfig(customers=80, products=40))
    assert quality.persona_columns(mixed.truth) == (
        taste_columns(mixed.truth) + behaviour_columns(mixed.truth))


# --- independent: taste and behaviour drawn independently, behaviour visible ------------------


def test_taste_and_behaviour_mixes_are_independent(independent):
    truth = independent.truth
    tastes = truth.select("prior_" + c for c in taste_columns(truth)).to_numpy()
    behaviours = truth.select("prior_" + c for c in behaviour_columns(truth)).to_numpy()
    corr = np.corrcoef(tastes.T, behaviours.T)[: tastes.shape[1], tastes.shape[1]:]
    assert np.abs(corr).max() < 0.08
    # Dominant taste against dominant behaviour: Cramér's V near zero.
    t = tastes.argmax(axis=1)
    b = behaviours.argmax(axis=1)
    table = np.zeros((tastes.shape[1], behaviours.shape[1]))
    np.add.at(table, (t, b), 1.0)
    expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / table.sum()
    chi2 = ((table - expected) ** 2 / expected).sum()
    cramers_v = np.sqrt(chi2 / (table.sum() * (min(table.shape) - 1)))
    assert cramers_v < 0.08
    # ... while the taste mix still decides the categories.
    events = independent.events.join(independent.products.select("product_id", "category"),
                                     on="product_id")
    dogs = dominant(truth, taste_columns(truth), 0.8).filter(pl.col("dominant") == "dog_owner")
    dog_events = events.join(dogs.select("user_id"), on="user_id")
    assert (dog_events["category"] == "pets.dog").mean() > 0.5


def test_every_behaviour_is_represented(behaviour_table):
    assert set(behaviour_table) == {b.name for b in BEHAVIOURS[:5]}
    assert min(row["customers"] for row in behaviour_table.values()) > 200


def _others(table: dict, name: str, stat: str) -> list[float]:
    return [row[stat] for key, row in table.items() if key != name]


def test_price_seekers_cart_the_cheaper_items_of_a_category(behaviour_table):
    seeker = behaviour_table["price_seeker"]["cart_price_pct"]
    assert seeker < min(_others(behaviour_table, "price_seeker", "cart_price_pct")) - 0.15


def test_impulse_buyers_convert_fast_after_few_views(behaviour_table):
    row, name = behaviour_table["impulse_buyer"], "impulse_buyer"
    assert row["conversion"] > 1.4 * max(_others(behaviour_table, name, "conversion"))
    assert row["views_per_session"] < 0.8 * min(_others(behaviour_table, name,
                                                        "views_per_session"))
    assert row["view_to_cart_s"] < 0.5 * min(_others(behaviour_table, name, "view_to_cart_s"))


def test_window_shoppers_browse_long_and_cart_little(behaviour_table):
    row, name = behaviour_table["window_shopper"], "window_shopper"
    assert row["views_per_session"] > 1.5 * max(_others(behaviour_table, name,
                                                        "views_per_session"))
    assert row["cart_rate"] < 0.5 * min(_others(behaviour_table, name, "cart_rate"))


def test_cart_abandoners_remove_and_leave_carts(behaviour_table):
    row, name = behaviour_table["cart_abandoner"], "cart_abandoner"
    assert row["remove_rate"] > 1.5 * max(_others(behaviour_table, name, "remove_rate"))
    assert row["carts_never_bought"] > max(_others(behaviour_table, name,
                                                   "carts_never_bought")) + 0.2


def test_regulars_visit_often_on_a_rhythm_and_rebuy(behaviour_table):
    row, name = behaviour_table["regular"], "regular"
    assert row["n_sessions"] > 1.3 * max(_others(behaviour_table, name, "n_sessions"))
    assert row["gap_cv"] < 0.6 * min(_others(behaviour_table, name, "gap_cv"))
    # Weaker: price seekers also rebuy, the few cheapest items of their categories.
    assert row["rebuy"] > 1.25 * max(_others(behaviour_table, name, "rebuy"))


def test_expensive_items_are_removed_more_often(independent):
    ev = independent.events.join(
        independent.products.select(
            "product_id",
            (pl.col("price").rank().over("category") / pl.len().over("category")).alias("pct")),
        on="product_id")
    pct = ev.group_by("action").agg(pl.col("pct").mean())
    pct_of = dict(pct.iter_rows())
    assert pct_of["remove_from_cart"] > pct_of["add_to_cart"] + 0.05


# --- the other scenarios -----------------------------------------------------------------------


def test_sparse_customers_have_one_to_three_short_sessions():
    sim = simulate(SimulationConfig(customers=1000, seed=1, scenario="sparse"))
    stats = customer_statistics(sim.events, sim.products)
    assert stats["n_sessions"].max() <= 3 and stats["n_sessions"].min() >= 1
    dense = simulate(SimulationConfig(customers=1000, seed=1))
    assert sim.events.height < 0.25 * dense.events.height
    assert stats["views_per_session"].mean() < 0.75 * customer_statistics(
        dense.events, dense.products)["views_per_session"].mean()


def test_many_has_every_archetype_and_premium_seekers_buy_dear():
    sim = simulate(SimulationConfig(customers=2000, seed=2, scenario="many"))
    assert len(taste_columns(sim.truth)) == len(TASTES) == 12
    assert len(behaviour_columns(sim.truth)) == len(BEHAVIOURS) == 6
    table = by_dominant_behaviour(sim)
    assert table["premium_seeker"]["cart_price_pct"] > (
        table["price_seeker"]["cart_price_pct"] + 0.3)
    assert table["premium_seeker"]["cart_price_pct"] > max(
        _others(table, "premium_seeker", "cart_price_pct")) + 0.1


def _view_cart_ties(events: pl.DataFrame) -> pl.DataFrame:
    """Row numbers of the first view and first cart of a product by a customer within the same
    second, where both exist."""
    return events.with_row_index("row").group_by("user_id", "product_id", "timestamp").agg(
        pl.col("row").filter(pl.col("action") == "view").min().alias("view_row"),
        pl.col("row").filter(pl.col("action") == "add_to_cart").min().alias("cart_row"),
    ).drop_nulls()


def test_noisy_has_bots_duplicates_and_jitter():
    sim = simulate(SimulationConfig(customers=1000, seed=3, scenario="noisy"))
    events = sim.events
    assert len(sim.bots) == 20
    bots = events.filter(pl.col("user_id").is_in(list(sim.bots)))
    assert set(bots["action"].unique()) == {"view"}
    assert bots.group_by("user_id").len()["len"].min() >= 150
    assert not set(sim.bots) & set(sim.truth["customer_id"])
    assert events.is_duplicated().sum() > 0.02 * events.height
    # Some carts share their view's second and ties come in random order: a cart can come first.
    ties = _view_cart_ties(events)
    assert (ties["cart_row"] < ties["view_row"]).sum() > 10
    assert (ties["cart_row"] > ties["view_row"]).sum() > 10
    clean = simulate(SimulationConfig(customers=1000, seed=3))
    assert clean.events.is_duplicated().mean() < 0.001
    assert len(clean.bots) == 0
    ties = _view_cart_ties(clean.events)
    assert (ties["cart_row"] < ties["view_row"]).sum() == 0


# --- the command line --------------------------------------------------------------------------


def test_cli_scenario_option(tmp_path, capsys):
    cli = pytest.importorskip("funnelprint.cli")
    out = tmp_path / "sim"
    code = cli.run(["simulate", "--out", str(out), "--customers", "60", "--products", "40",
                    "--scenario", "sparse", "--tastes", "3"])
    assert code == 0, capsys.readouterr()
    truth = pl.read_csv(out / "truth.csv")
    assert taste_columns(truth) == [f"taste:{t.name}" for t in TASTES[:3]]
    assert (out / "archetypes.json").exists()
    assert cli.run(["simulate", "--out", str(tmp_path / "x"), "--personas", "4"]) == 2
    assert cli.run(["simulate", "--out", str(tmp_path / "y"), "--scenario", "nope"]) == 2
