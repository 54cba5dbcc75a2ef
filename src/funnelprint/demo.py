"""``make demo``: the main job end to end on a simulated shop, then the service answering
a new customer's events as they arrive."""

from __future__ import annotations

import argparse
import io
import json
import os
import secrets
import signal
import time
from contextlib import redirect_stdout
from pathlib import Path

import httpx
import polars as pl

from funnelprint.cli import run as run_cli
from funnelprint.cli.evaluate import print_leaderboard
from funnelprint.serve.testing import free_port, start_service


def run(args: list[str]) -> None:
    print(f"\n$ funnelprint {' '.join(args)}", flush=True)
    code = run_cli(args)
    if code != 0:
        raise SystemExit(code)


def run_json(args: list[str], path: Path) -> dict:
    """Run a command with ``--json``, keep its output in ``path`` and return it."""
    print(f"\n$ funnelprint {' '.join(args)} > {path}", flush=True)
    with redirect_stdout(io.StringIO()) as out:
        code = run_cli(args)
    if code != 0:
        raise SystemExit(code)
    path.write_text(out.getvalue())
    return dict(json.loads(out.getvalue()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("out/demo"))
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    data = args.out / "data"
    run(["simulate", "--out", str(data), "--customers", str(args.customers),
         "--seed", str(args.seed)])
    events = str(data / "events.csv")
    model = str(args.out / "model")
    run(["inspect", events])
    products = str(data / "products.csv")
    run(["fit", events, "--out", model, "--products", products, "--seed", str(args.seed)])
    run(["profile", events, "--model", model, "--out", str(args.out / "profiles.parquet")])
    run(["traits", "--model", model])
    run(["similar", "--model", model, "--customer", "u0001", "--k", "5"])
    run(["recommend", "--model", model, "--customer", "u0001", "--k", "5"])
    run(["recommend", "--model", model, "--customers", "all", "--k", "10",
         "--out", str(args.out / "recommendations.parquet")])
    board = args.out / "leaderboard.json"
    record = run_json(["evaluate", "--data", f"events:{events}", "--products", products,
                       "--models", "traits,pop,itemknn,markov", "--protocol", "last-new-full",
                       "--json"], board)
    print_leaderboard(record, (5, 10, 20))
    sequential = str(args.out / "funnelformer")
    run(["fit", events, "--out", sequential, "--model-type", "funnelformer",
         "--time-budget", "60", "--seed", str(args.seed)])
    run(["recommend", "--model", sequential, "--customer", "u0001", "--k", "5",
         "--heatmap", str(args.out / "attention_u0001.png")])
    run(["evaluate", "--model-dir", sequential, "--protocol", "loo-full"])
    report = args.out / "report.html"
    run(["report", "--model", model, "--events", events, "--products", products,
         "--leaderboard", str(board), "--sequential", sequential, "--out", str(report)])
    serve_demo([model, sequential], Path(products), args.out)
    print(f"\nreport: {report.resolve()}  (open it in a browser)")


def serve_demo(models: list[str], products: Path, out: Path) -> None:
    """Start the service, post a new customer's events in three batches and show the
    profile and recommendations after each, then stop the server with SIGTERM."""
    store = out / "events.sqlite"
    for old in out.glob("events.sqlite*"):
        old.unlink()
    key = secrets.token_urlsafe(24)
    port = free_port()
    args = [*[a for m in models for a in ("--model", m)], "--store", f"sqlite:///{store}"]
    print(f"\n$ FUNNELPRINT_API_KEYS=...:write funnelprint serve {' '.join(args)} "
          f"--port {port} &", flush=True)
    log = out / "serve.log"
    log.unlink(missing_ok=True)
    try:
        server = start_service(args, port, log, timeout_s=60,
                               env={**os.environ, "FUNNELPRINT_API_KEYS": f"{key}:write"})
    except RuntimeError as exc:
        raise SystemExit(f"the service did not start; see {log}") from exc
    headers = {"Authorization": f"Bearer {key}"}
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers,
                          timeout=30) as client:
            for number, batch in enumerate(_new_customer(products), start=1):
                stored = client.post("/v1/events", json={"events": batch}).json()
                print(f"\nbatch {number}: {len(batch)} events posted, {stored['stored']} "
                      "stored", flush=True)
                _show(client, "demo-new")
    finally:
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=60)
    # uvicorn finishes its requests, closes the store, then ends by the signal it caught
    how = "cleanly" if code in (0, -signal.SIGTERM) else f"with exit code {code}"
    print(f"\nserver stopped {how} (log in {out / 'serve.log'})", flush=True)


def _new_customer(products: Path) -> list[list[dict]]:
    """Three batches: browsing one category, buying there, then browsing another."""
    table = pl.read_csv(products).filter(pl.col("category").is_not_null())
    first, second = table["category"].unique(maintain_order=True).to_list()[:2]
    a = table.filter(pl.col("category") == first)["product_id"].to_list()[:3]
    b = table.filter(pl.col("category") == second)["product_id"].to_list()[:3]
    start = int(time.time()) - 3600

    def events(steps: list[tuple[str, str]], offset: int) -> list[dict]:
        return [{"event_id": f"demo-{offset + i}", "customer_id": "demo-new",
                 "timestamp": start + 60 * (offset + i), "action": action,
                 "product_id": product} for i, (action, product) in enumerate(steps)]

    return [events([("view", p) for p in a], 0),
            events([("add_to_cart", a[0]), ("purchase", a[0]), ("view", a[1])], 10),
            events([("view", p) for p in b] + [("add_to_cart", b[0])], 20)]


def _show(client: httpx.Client, customer: str) -> None:
    profile = client.get(f"/v1/customers/{customer}/profile").json()
    traits = ", ".join(f"{t['name']} {t['share']:.0%}" for t in profile["traits"][:3])
    print(f"  profile ({profile['n_events']} events, segment {profile['segment']}"
          f"{', cold start' if profile['cold_start'] else ''}): {traits}")
    for model in [m["name"] for m in client.get("/v1/models").json()]:
        recs = client.get(f"/v1/customers/{customer}/recommendations",
                          params={"k": 3, "model": model}).json()
        print(f"  {model}: " + "; ".join(f"{i['product_id']} ({i['reason']})"
                                         for i in recs["items"]))


if __name__ == "__main__":
    main()
