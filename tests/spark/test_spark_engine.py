"""The Spark engine against the local one on the same files: the same fitted model, the
same profiles (per customer within 1e-5), the same errors; and a Spark-fitted model served
by ``funnelprint serve``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import polars as pl
import pytest
from safetensors.numpy import load_file

from funnelprint.cli import run
from funnelprint.data.simulate import SimulationConfig, simulate
from funnelprint.serve.testing import free_port, start_service


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> dict[str, Path]:
    # The noisy scenario: duplicated events, bots and shuffled ties exercise the
    # de-duplication, the bot filter and the file-order tie rule on both engines.
    sim = simulate(SimulationConfig(customers=260, products=90, seed=4, scenario="noisy"))
    return sim.write(tmp_path_factory.mktemp("shop"))


@pytest.fixture(scope="module")
def fitted(spark, shop, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    common = [str(shop["events"]), "--products", str(shop["products"]), "--traits", "5",
              "--seed", "2"]
    assert run(["fit", *common, "--out", str(root / "local")]) == 0
    assert run(["fit", *common, "--out", str(root / "spark"), "--engine", "spark"]) == 0
    return {"local": root / "local", "spark": root / "spark"}


def test_a_log_fitted_whole_on_spark_gives_the_local_model(fitted):
    local = load_file(fitted["local"] / "arrays.safetensors")
    spark = load_file(fitted["spark"] / "arrays.safetensors")
    assert local.keys() == spark.keys()
    for name, values in local.items():
        assert np.array_equal(values, spark[name]), name
    # The same traits, with the same names.
    assert run(["traits", "--model", str(fitted["local"]), "--json"]) == 0


def test_spark_profiles_equal_local_profiles(fitted, shop, tmp_path):
    model = str(fitted["spark"])
    assert run(["profile", str(shop["events"]), "--model", model,
                "--out", str(tmp_path / "local.parquet")]) == 0
    assert run(["profile", str(shop["events"]), "--model", model, "--engine", "spark",
                "--out", str(tmp_path / "spark.parquet")]) == 0
    local = pl.read_parquet(tmp_path / "local.parquet").sort("customer_id")
    spark = pl.read_parquet(tmp_path / "spark.parquet" / "*.parquet").sort("customer_id")
    assert local.height == spark.height > 250  # bots dropped on both engines
    assert local["customer_id"].equals(spark["customer_id"])
    traits = [c for c in local.columns if c.startswith("trait_")]
    gap = np.abs(local.select(traits).to_numpy() - spark.select(traits).to_numpy()).max()
    assert gap < 1e-5
    for column in ("segment", "cold_start", "known_tokens"):
        assert local[column].equals(spark[column]), column


def test_spark_refuses_bad_rows_with_the_local_message(spark, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("user_id,timestamp,action,product_id\n"
                   "u1,2024-01-01 10:00:00,view,p1\nu1,2024-01-01 10:01:00,view,p2\n"
                   "u2,2024-01-01 10:02:00,view,p1\nu2,yesterday,view,p2\n"
                   "u3,2024-01-01 10:03:00,,p1\n")
    messages = []
    for engine in ("local", "spark"):
        capsys.readouterr()
        code = run(["fit", str(bad), "--out", str(tmp_path / engine), "--engine", engine])
        messages.append(capsys.readouterr().err)
        assert code == 2
    assert "bad.csv:5: column 'timestamp': cannot parse timestamp (value 'yesterday')" \
        in " ".join(messages[1].split())
    assert " ".join(messages[0].split()) == " ".join(messages[1].split())


def test_a_spark_fitted_model_is_served(fitted, tmp_path):
    port = free_port()
    service = start_service(["--model", str(fitted["spark"]), "--store",
                             f"sqlite:///{tmp_path / 'events.sqlite'}", "--insecure"], port,
                            tmp_path / "serve.log")
    try:
        base = f"http://127.0.0.1:{port}/v1"
        customer = "u0007"
        profile = httpx.get(f"{base}/customers/{customer}/profile", timeout=30)
        assert profile.status_code == 200, profile.text
        assert profile.json()["fitted_events"] > 0
        recommendations = httpx.get(f"{base}/customers/{customer}/recommendations", timeout=30)
        assert recommendations.status_code == 200 and recommendations.json()["items"]
    finally:
        service.terminate()
        service.wait(30)


def test_fit_and_profile_on_a_standalone_cluster(fitted, shop, tmp_path):
    """A master and a worker on 127.0.0.1, driven through the command line."""
    from funnelprint.spark.testing import start_standalone

    cluster = start_standalone(cores=1, memory="1g")
    try:
        def cli(*args: str) -> None:
            done = subprocess.run([sys.executable, "-m", "funnelprint.cli", *args,
                                   "--engine", "spark", "--spark-master", cluster.url],
                                  capture_output=True, text=True, timeout=600)
            assert done.returncode == 0, done.stderr[-3000:] + cluster.logs()

        cli("fit", str(shop["events"]), "--products", str(shop["products"]), "--traits", "5",
            "--seed", "2", "--out", str(tmp_path / "model"))
        cli("profile", str(shop["events"]), "--model", str(tmp_path / "model"),
            "--out", str(tmp_path / "profiles.parquet"))
    finally:
        cluster.stop()
    local = load_file(fitted["local"] / "arrays.safetensors")
    on_cluster = load_file(tmp_path / "model" / "arrays.safetensors")
    assert all(np.array_equal(values, on_cluster[name]) for name, values in local.items())
    profiles = pl.read_parquet(tmp_path / "profiles.parquet" / "*.parquet")
    assert profiles["customer_id"].n_unique() == profiles.height > 250
