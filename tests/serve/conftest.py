"""Shared by the service tests: one small fitted trait model per session, an event store
of each kind (SQLite always; PostgreSQL from a throwaway server when installed) and an
in-process client."""

from __future__ import annotations

import itertools
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

with warnings.catch_warnings():  # starlette's notice that its test client will move to httpx2
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from funnelprint.data.dataset import Dataset
from funnelprint.data.pipeline import prepare_events
from funnelprint.data.simulate import SimulationConfig, simulate
from funnelprint.models import make_model, persist
from funnelprint.models.traits import TraitsRecommender
from funnelprint.serve.app import Settings, create_app
from funnelprint.serve.testing import TempPostgres, find_binaries, start_postgres

WRITE_KEY = "w" * 24
READ_KEY = "r" * 24
WRITE = {"Authorization": f"Bearer {WRITE_KEY}"}
READ = {"Authorization": f"Bearer {READ_KEY}"}
REQUIRE_POSTGRES = "FUNNELPRINT_REQUIRE_POSTGRES"


@pytest.fixture(scope="session")
def shop(tmp_path_factory) -> dict[str, Path]:
    sim = simulate(SimulationConfig(customers=300, products=120, seed=3))
    return sim.write(tmp_path_factory.mktemp("shop"))


@pytest.fixture(scope="session")
def model_dir(shop, tmp_path_factory) -> Path:
    log = prepare_events(shop["events"])
    products = pl.read_csv(shop["products"])
    dataset = Dataset.from_events(log, collapse_repeats=False, products=products)
    model = TraitsRecommender(traits=4, n_init=2, anchors=32, epochs=5).fit(dataset)
    return persist.save(model, tmp_path_factory.mktemp("model") / "traits")


@pytest.fixture(scope="session")
def markov_dir(shop, tmp_path_factory) -> Path:
    """A sequential baseline (first-order transitions between collapsed steps)."""
    dataset = Dataset.from_events(prepare_events(shop["events"]))
    return persist.save(make_model("markov").fit(dataset),
                        tmp_path_factory.mktemp("model") / "markov")


@pytest.fixture(scope="session")
def postgres() -> Iterator[TempPostgres]:
    if find_binaries() is None:
        if os.environ.get(REQUIRE_POSTGRES):
            pytest.fail(f"PostgreSQL binaries not found and {REQUIRE_POSTGRES} is set")
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) not installed: PostgreSQL tests "
                    "skipped")
    # The tests kill the service, never the database: its own fsyncs only cost time here.
    server = start_postgres(settings={"fsync": "off"})
    yield server
    server.stop()


_names = itertools.count()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path) -> str:
    """A fresh, empty store of each kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'events.sqlite'}"
    server: TempPostgres = request.getfixturevalue("postgres")
    return server.create_database(f"test_{next(_names)}")


@pytest.fixture
def keys(monkeypatch) -> None:
    monkeypatch.setenv("FUNNELPRINT_API_KEYS", f"{WRITE_KEY}:write,{READ_KEY}:read")


@pytest.fixture
def client(model_dir, store_url, keys) -> Iterator[TestClient]:
    """A client of a service on the fitted model and a fresh store (of each kind)."""
    settings = Settings(models=(str(model_dir),), store=store_url, max_batch=50,
                        max_body_bytes=64 * 1024)
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


def event(customer: str, minute: int, action: str, product: str, **extra) -> dict:
    return {"customer_id": customer, "timestamp": f"2026-03-01T10:{minute:02d}:00Z",
            "action": action, "product_id": product, **extra}
