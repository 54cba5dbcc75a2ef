"""No acknowledged event is lost: batches stream in from clients, the server process is
killed with SIGKILL at a random moment and restarted, and every acknowledged event is
stored exactly once (retries of the unanswered batches included)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx

from funnelprint.serve.store import open_store
from funnelprint.serve.testing import free_port, start_service

BATCH = 25


def start_server(model_dir: Path, store_url: str, port: int, log: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "FUNNELPRINT_API_KEYS"}
    return start_service(["--model", str(model_dir), "--store", store_url, "--insecure"], port,
                         log, env=env)


def batch(client_id: int, number: int) -> list[dict]:
    return [{"event_id": f"c{client_id}-{number}-{i}", "customer_id": f"dur{client_id}",
             "timestamp": 1_772_000_000 + number * 60 + i, "action": "view",
             "product_id": f"p{(number + i) % 120:04d}"} for i in range(BATCH)]


class Streamer(threading.Thread):
    """Posts numbered batches until the server goes away; remembers what was answered."""

    def __init__(self, client_id: int, port: int) -> None:
        super().__init__(daemon=True)
        self.client_id, self.port = client_id, port
        self.acknowledged: set[str] = set()
        self.unanswered: list[list[dict]] = []
        self.number = 0

    def run(self) -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=10) as client:
            while True:
                events = batch(self.client_id, self.number)
                self.number += 1
                try:
                    response = client.post("/v1/events", json={"events": events})
                except httpx.HTTPError:
                    self.unanswered.append(events)
                    return
                assert response.status_code == 200, response.text
                assert not response.json()["rejected"]
                self.acknowledged.update(e["event_id"] for e in events)


def test_acknowledged_events_survive_sigkill(model_dir, store_url, tmp_path):
    seed = random.randrange(1_000_000)
    kill_after = random.Random(seed).uniform(0.0, 1.5)
    port, log = free_port(), tmp_path / "server.log"
    server = start_server(model_dir, store_url, port, log)
    streamers = [Streamer(c, port) for c in range(2)]
    for s in streamers:
        s.start()
    deadline = time.monotonic() + 60
    while not any(s.acknowledged for s in streamers) and time.monotonic() < deadline:
        time.sleep(0.01)  # events are flowing before the clock starts
    time.sleep(kill_after)  # the random moment, not a measurement
    server.send_signal(signal.SIGKILL)
    server.wait(timeout=30)
    for s in streamers:
        s.join(timeout=30)
    acknowledged = set().union(*(s.acknowledged for s in streamers))
    assert acknowledged, f"no batch was answered before the kill (seed {seed})"

    server = start_server(model_dir, store_url, port, log)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            retried = [e for s in streamers for events in s.unanswered for e in events]
            if retried:  # the client's retry of what was never answered
                response = client.post("/v1/events", json={"events": retried})
                assert response.status_code == 200, response.text
            again = client.post("/v1/events", json={"events": retried or batch(0, 0)})
            assert again.json()["stored"] == 0  # a second retry stores nothing
            server.send_signal(signal.SIGHUP)  # reload the models in place
            deadline = time.monotonic() + 30
            while "models reloaded" not in log.read_text() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert "models reloaded" in log.read_text()
            assert client.get("/v1/customers/dur0/profile").status_code == 200
    finally:
        server.send_signal(signal.SIGTERM)
        # uvicorn shuts down, then ends by the signal it caught
        assert server.wait(timeout=30) in (0, -signal.SIGTERM), log.read_text()[-2000:]

    store = open_store(store_url)
    stored = store.event_ids()
    store.close()
    sent = acknowledged | {e["event_id"] for s in streamers for b in s.unanswered for e in b}
    assert len(stored) == len(set(stored)), "an event stored twice"
    assert acknowledged <= set(stored), f"acknowledged events lost (seed {seed})"
    assert set(stored) == sent
    assert "stopped; store closed" in log.read_text()  # SIGTERM shut down cleanly
    print(f"{len(acknowledged)} events acknowledged before SIGKILL at {kill_after:.2f} s, "
          f"{len(sent) - len(acknowledged)} unanswered and retried; all stored once")
