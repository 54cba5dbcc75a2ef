"""The processes of ``funnelprint serve --workers 2``, for real: a reload (SIGHUP or the
admin route) under steady traffic fails no request and reaches every worker; a worker
killed with SIGKILL is replaced without losing an acknowledged event; when the main
process is killed with SIGKILL the workers stop, the port is free again and the run
directory is gone."""

from __future__ import annotations

import os
import shutil
import signal
import time
import uuid
from pathlib import Path

import httpx
import pytest

from funnelprint.serve.store import open_store
from funnelprint.serve.testing import (
    Prober,
    Streamer,
    alive,
    children,
    free_port,
    start_service,
)
from tests.serve.conftest import READ, READ_KEY, WRITE, WRITE_KEY


def start(model_dir: Path, store_url: str, tmp_path: Path, port: int):
    env = {**os.environ, "FUNNELPRINT_API_KEYS": f"{WRITE_KEY}:write,{READ_KEY}:read"}
    return start_service(["--model", str(model_dir), "--store", store_url, "--workers", "2"],
                         port, tmp_path / "server.log", env=env)


def stop(process) -> None:
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)


def workers_of(process) -> list[int]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = [p for p in children(process.pid) if _is_worker(p)]
        if len(found) == 2:
            return found
        time.sleep(0.1)
    raise AssertionError("two workers did not start")


def _is_worker(pid: int) -> bool:
    try:
        return b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def models_seen(port: int, tries: int = 30) -> set[str]:
    """The model directory names the workers answer, over fresh connections."""
    seen = set()
    for _ in range(tries):
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            seen.add(client.get("/v1/models", headers=READ).json()[0]["path"])
    return seen


def models_seen_within(port: int, wanted: set[str], within_s: float) -> bool:
    """Whether the workers answer exactly ``wanted`` before the deadline."""
    deadline = time.monotonic() + within_s
    while models_seen(port) != wanted:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


def reloads_counted(port: int, at_least: int, within_s: float) -> float:
    """The service's count of successful reloads, read until it reaches ``at_least`` or the
    deadline passes."""
    deadline = time.monotonic() + within_s
    while True:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            text = client.get("/metrics", headers=READ).text
        ok = [float(line.split()[-1]) for line in text.splitlines()
              if line.startswith('funnelprint_model_reloads_total{outcome="ok"}')]
        count = ok[0] if ok else 0.0
        if count >= at_least or time.monotonic() > deadline:
            return count
        time.sleep(0.5)


@pytest.fixture
def model_copy(model_dir):
    copy = shutil.copytree(model_dir, model_dir.parent / f"reload-{uuid.uuid4().hex[:8]}")
    yield copy
    shutil.rmtree(copy, ignore_errors=True)


def test_reloads_under_traffic_fail_no_request_and_reach_every_worker(
        model_dir, model_copy, store_url, tmp_path):
    port = free_port()
    server = start(model_dir, store_url, tmp_path, port)
    try:
        with Prober(port, READ, rate=60, seconds=30) as probe, \
                Streamer(port, "reload", WRITE, batch=5, seconds=30, pause_s=0.05) as stream:
            probe.wait_until_answering()
            start_at = probe.mark()
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
                answer = client.post("/v1/admin/reload", json={"models": [str(model_copy)]},
                                     headers=WRITE)
                assert answer.status_code == 200, answer.text
            # Both workers switch (the route's worker relays SIGHUP through the supervisor)
            # before the second SIGHUP, which would otherwise coalesce with the relayed one;
            # on a busy machine that can take a while, so it is polled up to a deadline.
            assert models_seen_within(port, {model_copy.name}, within_s=60)
            server.send_signal(signal.SIGHUP)
            time.sleep(1.5)
            assert models_seen(port) == {model_copy.name}
        during = probe.between(start_at, time.monotonic())
        assert len(during) > 100
        assert [s for s in during if s[2] != 200] == []
        assert set(stream.statuses) == {200}, stream.statuses  # not one batch failed
        # The route's reload at least (a worker the supervisor replaced on a busy machine
        # loads the announced models at start, uncounted).
        assert reloads_counted(port, at_least=1, within_s=60) >= 1
    finally:
        stop(server)
    store = open_store(store_url)
    stored = store.event_ids()
    store.close()
    assert len(stored) == len(set(stored)) and stream.acknowledged <= set(stored)


def test_a_killed_worker_is_replaced_and_no_acknowledged_event_is_lost(
        model_dir, store_url, tmp_path):
    port = free_port()
    server = start(model_dir, store_url, tmp_path, port)
    try:
        with Streamer(port, "a", WRITE, seconds=20) as one, \
                Streamer(port, "b", WRITE, seconds=20) as two:
            time.sleep(1)
            victim = workers_of(server)[0]
            os.kill(victim, signal.SIGKILL)
            time.sleep(4)
            one._stop.set()
            two._stop.set()
        replaced = workers_of(server)
        assert victim not in replaced
        # The dead worker's gauges are gone once the supervisor has noticed the death (it
        # polls its workers; on a busy machine that can take a few seconds).
        deadline = time.monotonic() + 90
        while True:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
                text = client.get("/metrics", headers=READ).text
            if f'pid="{victim}"' not in text or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert f'pid="{victim}"' not in text
        assert "funnelprint_model_info{" in text
    finally:
        stop(server)
    store = open_store(store_url)
    stored = store.event_ids()
    store.close()
    assert len(stored) == len(set(stored)), "an event stored twice"
    acknowledged = one.acknowledged | two.acknowledged
    assert acknowledged and acknowledged <= set(stored)
    assert set(stored) <= one.sent | two.sent
    assert max(one.longest_wait_s, two.longest_wait_s) < 15  # a bounded stall


def test_workers_stop_when_the_main_process_is_killed(model_dir, tmp_path):
    port = free_port()
    store_url = f"sqlite:///{tmp_path / 'events.sqlite'}"
    server = start(model_dir, store_url, tmp_path, port)
    workers = workers_of(server)
    run_dirs = [Path(p) for p in Path("/tmp").glob(f"funnelprint-run-{server.pid}-*")]
    assert len(run_dirs) == 1
    server.send_signal(signal.SIGKILL)
    server.wait(timeout=10)
    deadline = time.monotonic() + 5
    while any(alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(w) for w in workers), "a worker outlived the main process by 5 s"
    assert not run_dirs[0].exists()
    again = start(model_dir, store_url, tmp_path, port)  # the port is free again
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            assert client.get("/v1/traits", headers=READ).status_code == 200
    finally:
        stop(again)
