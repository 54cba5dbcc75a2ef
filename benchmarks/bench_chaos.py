"""The service under attack and under failure, on the loopback, for SQLite and PostgreSQL:
the figures behind the service tests' wide bounds.

* ``hostile``: while a steady client reads profiles (50/s), each hostile request is sent
  ``--repeats`` times; figures: the slowest answer to it and the steady client's p50/p99
  during the attack against its p99 before (one worker: a blocked event loop shows).
* ``reload``: two workers under about 100 requests/s (reads and event batches); SIGHUP
  and ``POST /v1/admin/reload`` every few seconds; figure: failed requests.
* ``kill``: two workers, event batches streaming, SIGKILL of the main process at a random
  moment, restart, retry of the unanswered batches; figures: acknowledged events lost,
  events stored twice, seconds until no worker was left.
* ``ingest``: ``funnelprint ingest`` of a whole export into the store a running service
  writes to, while the steady client reads; figure: its p99 before and during.

Every loop is bounded in requests and time; every figure is printed with the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from funnelprint.data.simulate import SimulationConfig, simulate
from funnelprint.serve.store import open_store
from funnelprint.serve.testing import (
    Prober,
    Streamer,
    alive,
    children,
    find_binaries,
    free_port,
    percentile,
    start_postgres,
    start_service,
)

WRITE_KEY, READ_KEY = "w" * 24, "r" * 24
WRITE = {"Authorization": f"Bearer {WRITE_KEY}"}
READ = {"Authorization": f"Bearer {READ_KEY}"}
MIB4 = 4 * 1024 * 1024


def serve(model: Path, store: str, port: int, log: Path, *extra: str):
    env = {**os.environ, "FUNNELPRINT_API_KEYS": f"{WRITE_KEY}:write,{READ_KEY}:read"}
    return start_service(["--model", str(model), "--store", store, *extra], port, log,
                         env=env, timeout_s=180)


def stop(process) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()


def latency(samples: list[tuple[float, float, int]]) -> dict:
    ms = [s[1] * 1000 for s in samples]
    return {"n": len(ms), "p50_ms": round(percentile(ms, 50), 1),
            "p99_ms": round(percentile(ms, 99), 1), "max_ms": round(max(ms, default=0), 1),
            "failed": sum(s[2] != 200 for s in samples)}


def load() -> float:
    return round(os.getloadavg()[0], 2)


# ---------------------------------------------------------------------- hostile


def hostile_bodies(tmp: Path) -> dict[str, tuple[Path, dict[str, str]]]:
    """name -> (a file holding the body, the request's headers)."""
    event = ('{"customer_id":"%s","timestamp":1772359200,"action":"view",'
             '"product_id":"p0001"}')
    bodies = {
        "4 MiB [[],...] without a key": (
            b"[" + b",".join([b"[]"] * (MIB4 // 3 - 1)) + b"]", {}),
        "4 MiB {events:[1,1,...]} with a write key": (
            b'{"events":[' + b",".join([b"1"] * (MIB4 // 2 - 8)) + b"]}", WRITE),
        "a lone surrogate": (
            ('{"events":[' + event % "ok" + "," + event % "\\ud800" + "]}").encode(), WRITE),
        "a non-object element": (('{"events":[' + event % "ok" + ",7]}").encode(), WRITE),
        "a 3,000-character customer id": (
            ('{"events":[' + event % ("x" * 3000) + "]}").encode(), WRITE),
    }
    files = {}
    for i, (name, (body, headers)) in enumerate(bodies.items()):
        path = tmp / f"hostile-{i}.json"
        path.write_bytes(body)
        files[name] = (path, headers)
    return files


def send(port: int, body: Path, headers: dict[str, str]) -> tuple[int, float]:
    """POST ``body`` from another process (curl where installed), so that the sender
    never competes with the steady client for this process's interpreter; returns the
    status and the seconds to the answer."""
    url = f"http://127.0.0.1:{port}/v1/events"
    if shutil.which("curl"):
        command = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{time_total}",
                   "-H", "Content-Type: application/json", "--data-binary", f"@{body}", url]
        for name, value in headers.items():
            command += ["-H", f"{name}: {value}"]
        status, seconds = subprocess.run(command, capture_output=True, text=True,
                                         check=True, timeout=120).stdout.split()
        return int(status), float(seconds)
    began = time.monotonic()
    answer = httpx.post(url, content=body.read_bytes(), timeout=120, headers={
        **headers, "content-type": "application/json"})
    return answer.status_code, time.monotonic() - began


def run_hostile(model: Path, store: str, tmp: Path, repeats: int) -> dict:
    port = free_port()
    bodies = hostile_bodies(tmp)
    server = serve(model, store, port, tmp / "hostile.log")
    out: dict = {"load_at_start": load()}
    try:
        with Prober(port, READ, rate=50, seconds=600) as probe:
            probe.wait_until_answering()
            time.sleep(5)
            out["before"] = latency(probe.between(probe.mark() - 4.5, probe.mark()))
            for name, (body, headers) in bodies.items():
                start, slowest, statuses = probe.mark(), 0.0, set()
                for _ in range(repeats):
                    status, seconds = send(port, body, headers)
                    statuses.add(status)
                    slowest = max(slowest, seconds)
                    time.sleep(0.2)
                out[name] = {"statuses": sorted(statuses), "slowest_answer_s": round(
                    slowest, 3), "steady_client": latency(probe.between(start, probe.mark()))}
            start = probe.mark()
            held = []
            for i in range(200):
                sock = socket.create_connection(("127.0.0.1", port))
                if i % 2:
                    sock.sendall(b"GET /v1/traits HTTP/1.1\r\nHost: x\r\n")
                held.append(sock)
            time.sleep(8)
            closed = 0
            for sock in held:
                sock.settimeout(0.01)
                try:  # the server's end: end-of-file, or a 408 before it
                    data = sock.recv(4096)
                    closed += data == b"" or data.startswith(b"HTTP/1.1 408")
                except OSError:
                    pass
                sock.close()
            out["200 slow sockets"] = {"closed_by_server": closed,
                                       "steady_client": latency(probe.between(start,
                                                                              probe.mark()))}
    finally:
        stop(server)
    out["load_at_end"] = load()
    return out


# ---------------------------------------------------------------------- reload


def run_reload(model: Path, store: str, tmp: Path, seconds: float) -> dict:
    port = free_port()
    server = serve(model, store, port, tmp / "reload.log", "--workers", "2")
    reloads = 0
    try:
        with Prober(port, READ, rate=80, seconds=seconds + 10) as probe, \
                Streamer(port, "reload", WRITE, batch=5, seconds=seconds + 10,
                         pause_s=0.05) as stream:
            time.sleep(2)
            start = probe.mark()
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
                while probe.mark() - start < seconds:
                    server.send_signal(signal.SIGHUP)
                    time.sleep(2)
                    answer = client.post("/v1/admin/reload", headers=WRITE)
                    reloads += 2
                    assert answer.status_code == 200, answer.text
                    time.sleep(2)
            end = probe.mark()
            stream._stop.set()
        reads = latency(probe.between(start, end))
    finally:
        stop(server)
    return {"load": load(), "reloads": reloads, "reads": reads,
            "batches": stream.statuses, "requests_per_s": round(
                (reads["n"] + sum(stream.statuses.values())) / (end - start), 1),
            "failed": reads["failed"] + sum(n for s, n in stream.statuses.items() if s != 200)}


# ---------------------------------------------------------------------- kill


def run_kill(model: Path, store: str, tmp: Path, runs: int) -> dict:
    results = []
    rng = random.Random(0)
    for run in range(runs):
        port = free_port()
        server = serve(model, store, port, tmp / f"kill{run}.log", "--workers", "2")
        workers = children(server.pid)
        streams = [Streamer(port, f"k{run}-{c}", WRITE, seconds=30, pause_s=0.0)
                   for c in range(2)]
        for s in streams:
            s.__enter__()
        time.sleep(1 + rng.uniform(0, 2))
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=30)
        killed = time.monotonic()
        while any(alive(w) for w in workers) and time.monotonic() - killed < 30:
            time.sleep(0.05)
        orphan_s = time.monotonic() - killed
        server = serve(model, store, port, tmp / f"kill{run}.log", "--workers", "2")
        time.sleep(2)  # the streamers retry their unanswered batch on the new server
        for s in streams:
            s.__exit__()
        stop(server)
        store_ = open_store(store)
        stored = store_.event_ids()
        store_.close()
        acknowledged = set().union(*(s.acknowledged for s in streams))
        results.append({"acknowledged": len(acknowledged),
                        "lost": len(acknowledged - set(stored)),
                        "stored_twice": len(stored) - len(set(stored)),
                        "workers_gone_after_s": round(orphan_s, 2)})
    return {"load": load(), "runs": results}


# ---------------------------------------------------------------------- ingest


def run_ingest(model: Path, store: str, events: Path, tmp: Path) -> dict:
    port = free_port()
    server = serve(model, store, port, tmp / "ingest.log", "--workers", "2")
    try:
        with Prober(port, READ, rate=50, seconds=600) as probe, \
                Streamer(port, "ingest", WRITE, batch=5, seconds=600, pause_s=0.1) as stream:
            time.sleep(5)
            before = latency(probe.between(probe.mark() - 4.5, probe.mark()))
            start = probe.mark()
            done = subprocess.run([sys.executable, "-m", "funnelprint.cli", "ingest",
                                   str(events), "--store", store], capture_output=True,
                                  text=True, check=True)
            during = latency(probe.between(start, probe.mark()))
            stream._stop.set()
    finally:
        stop(server)
    return {"load": load(), "ingest": done.stdout.strip().splitlines()[-1],
            "ingest_s": round(probe.mark() - start, 1), "reads_before": before,
            "reads_during": during, "batches": stream.statuses,
            "longest_batch_wait_s": round(stream.longest_wait_s, 2)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stores", default="sqlite,postgresql")
    parser.add_argument("--parts", default="hostile,reload,kill,ingest")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--reload-seconds", type=float, default=20)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--customers", type=int, default=2000)
    args = parser.parse_args()
    out: dict = {"cpus": os.cpu_count(), "load_average_at_start": load()}
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        shop = simulate(SimulationConfig(customers=args.customers, products=600, seed=0)).write(
            tmp / "shop")
        model = tmp / "model"
        subprocess.run([sys.executable, "-m", "funnelprint.cli", "fit", str(shop["events"]),
                        "--products", str(shop["products"]), "--out", str(model)],
                       check=True, capture_output=True)
        for name in args.stores.split(","):
            if name == "postgresql" and find_binaries() is None:
                out[name] = "skipped: PostgreSQL binaries not installed"
                continue
            pg = start_postgres(port=free_port()) if name == "postgresql" else None
            counter = iter(range(100))

            def fresh(pg=pg, counter=counter, name=name) -> str:
                if pg is None:
                    return f"sqlite:///{tmp / f'{name}-{next(counter)}.sqlite'}"
                return pg.create_database(f"chaos_{next(counter)}")
            result: dict = {}
            try:
                parts = args.parts.split(",")
                if "hostile" in parts:
                    result["hostile"] = run_hostile(model, fresh(), tmp, args.repeats)
                if "reload" in parts:
                    result["reload"] = run_reload(model, fresh(), tmp, args.reload_seconds)
                if "kill" in parts:
                    result["kill"] = run_kill(model, fresh(), tmp, args.kills)
                if "ingest" in parts:
                    result["ingest"] = run_ingest(model, fresh(), shop["events"], tmp)
            finally:
                if pg is not None:
                    pg.stop()
            out[name] = result
            print(name, json.dumps(result), file=sys.stderr, flush=True)
    out["load_average_at_end"] = load()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
