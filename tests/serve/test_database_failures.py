"""A PostgreSQL store that restarts, freezes (SIGSTOP) or is killed (SIGKILL) under a
running service: every request is answered within the store's time limit (503 with
Retry-After while the database is away, never a hang), ``/readyz`` says so within its own
limit, the first request after a restart succeeds (no stale pooled connection), and once
the clients have retried, every acknowledged event is stored exactly once."""

from __future__ import annotations

import os
import time

import httpx
import pytest

from funnelprint.serve.store import open_store
from funnelprint.serve.testing import (
    Prober,
    Streamer,
    find_binaries,
    free_port,
    start_postgres,
    start_service,
)
from tests.serve.conftest import READ, READ_KEY, REQUIRE_POSTGRES, WRITE, WRITE_KEY

STORE_TIMEOUT_S = 1.0
#: Longest answer while the database is away: the store's limit and the queue before it.
ANSWER_S = 4 * STORE_TIMEOUT_S + 2


@pytest.fixture
def database():
    if find_binaries() is None:
        if os.environ.get(REQUIRE_POSTGRES):
            pytest.fail(f"PostgreSQL binaries not found and {REQUIRE_POSTGRES} is set")
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) not installed")
    server = start_postgres(port=free_port(), settings={"fsync": "off"})
    yield server
    server.stop()


def test_a_database_that_restarts_freezes_or_dies_costs_bounded_503s_and_no_event(
        database, model_dir, tmp_path):
    url = database.create_database("chaos")
    port = free_port()
    env = {**os.environ, "FUNNELPRINT_API_KEYS": f"{WRITE_KEY}:write,{READ_KEY}:read"}
    service = start_service(["--model", str(model_dir), "--store", url, "--store-timeout",
                             str(STORE_TIMEOUT_S)], port, tmp_path / "server.log", env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            assert client.get("/v1/customers/u0001/profile", headers=READ).status_code == 200
            database.restart()  # a clean restart with the pool full of open connections
            first = client.get("/v1/customers/u0001/profile", headers=READ)
            assert first.status_code == 200, first.text
            assert client.post("/v1/events", json={"events": [
                {"customer_id": "r", "timestamp": 1772359200, "action": "view",
                 "product_id": "p0001", "event_id": "after-restart"}]},
                headers=WRITE).status_code == 200

            with Prober(port, READ, rate=20, seconds=60) as probe, \
                    Streamer(port, "chaos", WRITE, seconds=60, pause_s=0.05) as stream:
                probe.wait_until_answering()
                frozen_at = probe.mark()
                database.freeze()
                ready = None
                try:
                    time.sleep(0.5)
                    asked = time.monotonic()
                    ready = client.get("/readyz")
                    ready_s = time.monotonic() - asked
                    time.sleep(2.5)
                finally:
                    database.resume()
                assert ready is not None and ready.status_code == 503
                assert ready_s < 2.5
                time.sleep(2)
                database.kill()
                time.sleep(1)
                database.start()
                time.sleep(3)
                database.restart()
                time.sleep(3)
                stream._stop.set()
            during = probe.between(frozen_at, time.monotonic())
            assert during and max(latency for _, latency, _ in during) < ANSWER_S
            assert {status for _, _, status in during} <= {200, 503}
            assert 503 in {status for _, _, status in during}  # it noticed the freeze
            assert stream.statuses.get(0, 0) == 0  # never a dropped connection
            assert stream.longest_wait_s < 20
            assert client.get("/readyz").status_code == 200
    finally:
        service.terminate()
        service.wait(timeout=30)
    store = open_store(url)
    stored = store.event_ids()
    store.close()
    assert len(stored) == len(set(stored)), "an event stored twice"
    assert stream.acknowledged and stream.acknowledged <= set(stored)
    assert set(stored) - {"after-restart"} <= stream.sent
    print(f"answers while away: {sorted({s for _, _, s in during})}, slowest "
          f"{max(latency for _, latency, _ in during):.2f} s; batches {stream.statuses}, "
          f"longest wait for an acknowledgement {stream.longest_wait_s:.1f} s; "
          f"{len(stream.acknowledged)} events acknowledged, all stored once")
