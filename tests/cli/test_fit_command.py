"""fit: any registered model by key; options the model would ignore are errors."""

from __future__ import annotations

import json

import polars as pl
import pytest

from funnelprint.data.simulate import SimulationConfig, simulate
from funnelprint.models import load


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    sim = simulate(SimulationConfig(customers=120, products=60, seed=3))
    return sim.write(tmp_path_factory.mktemp("shop"))


@pytest.mark.parametrize("args, message", [
    (["--model-type", "pop", "--traits", "4"], "--traits does not apply to pop"),
    (["--model-type", "sasrec", "--traits", "4"], "--traits does not apply to sasrec"),
    (["--model-type", "sasrec", "--products", "{products}"], "--products does not apply"),
    (["--model-type", "sasrec", "--session-gap", "20"], "--session-gap does not apply"),
    (["--model-type", "sasrec", "--aggregation", "mean"], "--aggregation does not apply"),
    (["--model-type", "traits", "--valid-protocol", "full"], "--valid-protocol does not apply"),
    (["--model-type", "itemknn", "--param", "colour=red"], "unknown parameter"),
    (["--model-type", "itemknn", "--param", "neighbours=-1"], "neighbours must be at least 1"),
    (["--model-type", "itemknn", "--param", "neighbours"], "expected KEY=VALUE"),
    (["--model-type", "nope"], "unknown model 'nope'"),
    (["--model-type", "sasrec", "--time-budget", "-5"], "--time-budget must be positive"),
    (["--model-type", "sasrec", "--valid-protocol", "sampled0"], "positive integer"),
])
def test_inapplicable_or_bad_options_fail_before_any_work(cli, shop, tmp_path, args, message):
    out = tmp_path / "model"
    args = [a.format(products=shop["products"]) for a in args]
    result = cli(["fit", shop["events"], "--out", out, *args])
    assert result.code == 2, result.output
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert not out.exists()


def test_fit_any_registered_model_then_recommend(cli, shop, tmp_path):
    out = tmp_path / "knn"
    result = cli(["fit", shop["events"], "--out", out, "--model-type", "itemknn",
                  "--param", "neighbours=20"])
    assert result.code == 0, result.output
    assert load(out).get_params() == {"neighbours": 20, "decay": 0.9}
    result = cli(["recommend", "--model", out, "--customer", "u0001", "--k", "3", "--json"])
    assert result.code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["rank"] for r in rows] == [1, 2, 3]
    result = cli(["recommend", "--model", out, "--customer", "nobody"])
    assert result.code == 0 and "answered as a new visitor" in result.stderr


@pytest.mark.parametrize("key, extra", [
    ("traits", []), ("pop", []), ("itemknn", []), ("markov", []), ("item2vec", []),
    ("sasrec", ["--epochs", "1"]), ("bst", ["--epochs", "1"])])
def test_batch_recommendations_for_every_customer(cli, shop, tmp_path, key, extra):
    model = tmp_path / key
    assert cli(["fit", shop["events"], "--out", model, "--model-type", key, *extra]).code == 0
    out = tmp_path / "recs.parquet"
    result = cli(["recommend", "--model", model, "--customers", "all", "--k", "4",
                  "--out", out])
    assert result.code == 0, result.output
    table = pl.read_parquet(out)
    fitted = load(model)
    assert table.columns == ["customer_id", "rank", "product_id", "score", "reason"]
    assert table["customer_id"].n_unique() == fitted.dataset_.n_customers
    assert table.group_by("customer_id").len()["len"].max() == 4
    assert table["reason"].str.len_chars().min() > 0
    one = json.loads(cli(["recommend", "--model", model, "--customer", "u0001", "--k", "4",
                          "--json"]).stdout)
    mine = table.filter(pl.col("customer_id") == "u0001").sort("rank")
    assert mine["product_id"].to_list() == [r["product_id"] for r in one]
    assert mine["reason"].to_list() == [r["reason"] for r in one]


def test_batch_recommendations_for_listed_customers_to_csv(cli, shop, tmp_path):
    model = tmp_path / "pop"
    assert cli(["fit", shop["events"], "--out", model, "--model-type", "pop"]).code == 0
    ids = tmp_path / "ids.txt"
    ids.write_text("customer_id\nu0002\n\nstranger\nu0002\n")
    out = tmp_path / "recs.csv"
    result = cli(["recommend", "--model", model, "--customers", ids, "--k", "3", "--out", out,
                  "--exclude", "none"])
    assert result.code == 0, result.output
    assert "1 of them are not among the model's customers" in result.stderr
    table = pl.read_csv(out, schema_overrides={"customer_id": pl.String})
    assert table["customer_id"].to_list() == ["u0002"] * 3 + ["stranger"] * 3
    for args in (["--customers", "all"], ["--customers", "all", "--out", tmp_path / "x.txt"],
                 ["--customer", "u0002", "--out", out], ["--customer", "u0002",
                                                         "--exclude", "bought"]):
        result = cli(["recommend", "--model", model, *args])
        assert result.code == 2 and len(result.stderr.strip().splitlines()) == 1, args


def test_output_that_cannot_be_written_is_refused_first(cli, shop, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = cli(["fit", shop["events"], "--out", blocker, "--model-type", "pop"])
    assert result.code == 2 and "not a directory" in result.stderr
    assert blocker.read_text() == "x"


@pytest.mark.parametrize("args", [["fit", "events.csv"], ["frobnicate"],
                                  ["recommend", "--model", "m", "--customer", "c", "--k", "x"]])
def test_usage_errors_exit_2_with_one_line(cli, args):
    result = cli(args)
    assert result.code == 2, result.output
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_profile_reuses_the_session_gap_the_model_was_fitted_with(cli, shop, tmp_path):
    import polars as pl

    out = tmp_path / "traits"
    result = cli(["fit", shop["events"], "--out", out, "--traits", "3", "--session-gap", "5",
                  "--param", "n_init=1", "--param", "min_count=2"])
    assert result.code == 0, result.output
    model = load(out)
    assert model.get_params()["session_gap_minutes"] == 5.0
    result = cli(["profile", shop["events"], "--model", out, "--out", tmp_path / "p.csv"])
    assert result.code == 0, result.output
    fresh = pl.read_csv(tmp_path / "p.csv", schema_overrides={"customer_id": pl.String})
    stored = model.profile_.customer_profiles_
    columns = [f"trait_{j}" for j in range(3)]
    joined = stored.join(fresh, on="customer_id", suffix="_new")
    assert joined.height == stored.height
    for c in columns:
        assert (joined[c] - joined[f"{c}_new"]).abs().max() < 1e-6


@pytest.mark.parametrize("key", ["srgnn", "gcegnn", "seqvae"])
def test_graph_and_latent_models_fit_recommend_and_evaluate(cli, shop, tmp_path, key):
    out = tmp_path / key
    result = cli(["fit", shop["events"], "--out", out, "--model-type", key, "--epochs", "1",
                  "--param", "dim=16", "--param", "maxlen=10"])
    assert result.code == 0, result.output
    assert load(out).key == key
    result = cli(["recommend", "--model", out, "--customer", "u0001", "--k", "3", "--json"])
    assert result.code == 0, result.output
    rows = json.loads(result.stdout)
    assert len(rows) == 3 and all(r["reason"] and r["evidence"] for r in rows)
    result = cli(["evaluate", "--model-dir", out, "--protocol", "loo-full", "--json"])
    assert result.code == 0, result.output
    assert 0.0 <= json.loads(result.stdout)["models"][key]["NDCG@10"] <= 1.0


def test_products_file_columns_mapped_by_name(cli, shop, tmp_path):
    import polars as pl

    original = pl.read_csv(shop["products"], infer_schema=False)
    renamed = original.rename({"product_id": "sku_id", "category": "cat_name",
                               "brand": "maker", "price": "amount"})
    path = tmp_path / "catalogue.csv"
    renamed.write_csv(path)
    out = tmp_path / "traits"
    result = cli(["fit", shop["events"], "--out", out, "--traits", "3", "--param", "n_init=1",
                  "--param", "min_count=2", "--products", path, "--product-columns",
                  "product=sku_id,category=cat_name,brand=maker,price=amount"])
    assert result.code == 0, result.output
    dataset = load(out).dataset_
    brands = dict(zip(original["product_id"], original["brand"], strict=True))
    assert [brands[i] for i in dataset.item_ids] == list(dataset.item_brands)
