"""The HTTP service on loopback, for SQLite and PostgreSQL: bulk ingest of a historical
export, batched ingestion over HTTP, then mixed traffic (event batches, profiles,
recommendations, similar customers) at fixed request rates (100 to 400 per second by
default) from concurrent clients (an asyncio driver on keep-alive connections).

Figures: events/s of each ingestion; for the mixed run, the request rate achieved, errors,
and p50/p95/p99 latency per route (ms, measured by the client from the moment each request
was due, so that time queued behind a busy server counts), the CPU time the server
processes spent per request (what bounds the rate on a machine shared with other work), and
the capacity: the highest rate tried at which profile p99 ≤ 25 ms and recommendations
p99 ≤ 50 ms without an error. Every figure stands beside the load average of its run.
The PostgreSQL run uses a throwaway server (skipped, and said so, where PostgreSQL is not
installed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

from funnelprint.data.simulate import SimulationConfig, simulate
from funnelprint.serve.testing import find_binaries, free_port, start_postgres, start_service

CUSTOMERS, PRODUCTS = 2000, 600
#: Mixed traffic: share of each kind of request.
MIX = {"events": 0.1, "profile": 0.4, "recommendations": 0.35, "similar": 0.15}
MIXED_EVENTS = 20


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "funnelprint.cli", *args], check=True,
                          capture_output=True, text=True)


def start_server(model: Path, store: str, port: int, workers: int, log: Path
                 ) -> subprocess.Popen:
    return start_service(["--model", str(model), "--store", store, "--workers", str(workers),
                          "--insecure", "--max-batch", "5000"], port, log, timeout_s=180)


def stop(server: subprocess.Popen) -> None:
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=60)
    except subprocess.TimeoutExpired:
        server.kill()


class Pool:
    """Keep-alive HTTP/1.1 connections on loopback: a driver lighter than a general client,
    so that the two cores go to the server rather than to the load generator."""

    def __init__(self, port: int, size: int) -> None:
        self.port, self.size = port, size
        self.idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = \
            asyncio.Queue()

    async def __aenter__(self) -> Pool:
        for _ in range(self.size):
            self.idle.put_nowait(await asyncio.open_connection("127.0.0.1", self.port))
        return self

    async def __aexit__(self, *exc: object) -> None:
        while not self.idle.empty():
            self.idle.get_nowait()[1].close()

    async def request(self, method: str, path: str, payload: object = None) -> int:
        """Send one request and read the whole answer; returns its status."""
        body = b"" if payload is None else json.dumps(payload).encode()
        head = (f"{method} {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json"
                f"\r\nContent-Length: {len(body)}\r\n\r\n").encode()
        reader, writer = await self.idle.get()
        try:
            writer.write(head + body)
            status = int((await reader.readline()).split()[1])
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
        finally:
            self.idle.put_nowait((reader, writer))
        return status


def new_events(customer: str, n: int, start: int, rng: random.Random) -> list[dict]:
    actions = ["view"] * 6 + ["add_to_cart"] * 2 + ["purchase"]
    return [{"customer_id": customer, "timestamp": start + 30 * i,
             "action": rng.choice(actions), "product_id": f"p{rng.randrange(PRODUCTS):04d}"}
            for i in range(n)]


async def http_ingest(port: int, batches: int, size: int, clients: int) -> dict:
    """``batches`` batches of ``size`` events from ``clients`` concurrent clients."""
    rng = random.Random(1)
    now = int(time.time()) - 3 * 86_400
    queue = [new_events(f"bulk{b % 500}", size, now + b, rng) for b in range(batches)]
    errors = 0

    async def worker(pool: Pool) -> None:
        nonlocal errors
        while queue:
            errors += await pool.request("POST", "/v1/events", {"events": queue.pop()}) != 200
    async with Pool(port, clients) as pool:
        start = time.perf_counter()
        await asyncio.gather(*(worker(pool) for _ in range(clients)))
        seconds = time.perf_counter() - start
    return {"events": batches * size, "batch": size, "clients": clients,
            "events_per_s": round(batches * size / seconds), "errors": errors}


async def mixed(port: int, known: list[str], requests: int, rate: float, clients: int,
                server: int, seed: int = 0) -> dict:
    """``requests`` requests started at ``rate`` per second (at most ``clients`` open)."""
    rng = random.Random(seed)
    kinds = rng.choices(list(MIX), weights=list(MIX.values()), k=requests)
    fresh = [f"new{i}" for i in range(200)]
    latencies: dict[str, list[float]] = {k: [] for k in MIX}
    errors: dict[str, int] = dict.fromkeys(MIX, 0)
    gate = asyncio.Semaphore(clients)
    now = int(time.time()) - 3 * 86_400  # the run's events stay in the past

    async def one(pool: Pool, kind: str, i: int) -> None:
        start = time.perf_counter()  # from the request's turn: waiting for a slot counts
        async with gate:
            if kind == "events":
                who = rng.choice(fresh)
                call = pool.request("POST", "/v1/events", {"events": new_events(
                    who, MIXED_EVENTS, now + i * 10, rng)})
            else:
                who = rng.choice(known) if rng.random() < 0.7 else rng.choice(fresh)
                query = "?k=10" if kind != "profile" else ""
                call = pool.request("GET", f"/v1/customers/{who}/{kind}{query}")
            status = await call
            latencies[kind].append(time.perf_counter() - start)
            errors[kind] += status != 200

    async with Pool(port, clients) as pool:
        for who in fresh:  # every fresh customer has events before the run
            await pool.request("POST", "/v1/events", {"events": new_events(who, 3, now, rng)})
        start, cpu = time.perf_counter(), cpu_seconds(server)
        tasks = []
        for i, kind in enumerate(kinds):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(pool, kind, i)))
        await asyncio.gather(*tasks)
        seconds = time.perf_counter() - start
        cpu = cpu_seconds(server) - cpu
    routes = {kind: {"n": len(v), **percentiles(v), "errors": errors[kind]}
              for kind, v in latencies.items()}
    return {"requests": requests, "target_rate": rate, "clients": clients,
            "load_average": round(os.getloadavg()[0], 2),
            "requests_per_s": round(requests / seconds, 1),
            "server_cpu_ms_per_request": round(cpu / requests * 1000, 2),
            "errors": sum(errors.values()), "routes": routes}


def cpu_seconds(pid: int) -> float:
    """CPU time of a process and its children now (the server and its workers; Linux)."""
    total, pending = 0.0, [pid]
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        pending += [int(c) for c in children]
    return total


def percentiles(seconds: list[float]) -> dict:
    ms = np.array(seconds) * 1000
    return {f"p{q}": round(float(np.percentile(ms, q)), 1) for q in (50, 95, 99)}


def run_store(name: str, url: str, model: Path, events: Path, args: argparse.Namespace,
              tmp: Path) -> dict:
    ingest = cli("ingest", str(events), "--store", url).stdout
    bulk = float(ingest.split("(")[1].split(" events/s")[0].replace(",", ""))
    port = free_port()
    server = start_server(model, url, port, args.workers, tmp / f"{name}.log")
    known = pl.read_csv(events)["user_id"].unique().sort().to_list()
    try:
        http = asyncio.run(http_ingest(port, args.batches, args.batch, 4))
        traffic = {f"at_{rate:g}_per_s": asyncio.run(mixed(
            port, known, args.requests, rate, args.clients, server.pid, seed))
            for seed, rate in enumerate(float(r) for r in args.rates.split(","))}
    finally:
        stop(server)
    return {"bulk_ingest_events_per_s": round(bulk), "http_ingest": http, "mixed": traffic,
            "capacity_per_s": capacity(traffic)}


#: The latency targets of the capacity figure: p99 in ms per route.
TARGETS = {"profile": 25.0, "recommendations": 50.0}


def capacity(traffic: dict) -> float:
    """The highest rate tried whose run met every target without an error (0: none)."""
    met = [run["target_rate"] for run in traffic.values()
           if not run["errors"] and all(run["routes"][route]["p99"] <= limit
                                        for route, limit in TARGETS.items())]
    return max(met, default=0.0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rates", default="100,200,300,400",
                        help="request rates of the mixed runs")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batches", type=int, default=80)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--stores", default="sqlite,postgresql")
    args = parser.parse_args()
    out: dict = {"workers": args.workers, "cpus": os.cpu_count(),
                 "load_average_at_start": round(os.getloadavg()[0], 2),
                 "shop": {"customers": CUSTOMERS, "products": PRODUCTS}}
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        paths = simulate(SimulationConfig(customers=CUSTOMERS, products=PRODUCTS, seed=0)
                         ).write(tmp / "shop")
        model = tmp / "model"
        cli("fit", str(paths["events"]), "--products", str(paths["products"]), "--out",
            str(model))
        for name in args.stores.split(","):
            if name == "sqlite":
                out["sqlite"] = run_store(name, f"sqlite:///{tmp / 'events.sqlite'}", model,
                                          paths["events"], args, tmp)
            elif find_binaries() is None:
                out[name] = "skipped: PostgreSQL binaries not installed"
            else:
                server = start_postgres(port=free_port())
                try:
                    out[name] = run_store(name, server.url, model, paths["events"], args, tmp)
                finally:
                    server.stop()
            print(name, json.dumps(out[name]), file=sys.stderr, flush=True)
    out["load_average_at_end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
