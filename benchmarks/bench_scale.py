"""A real shop's month: 10M, 30M and 100M simulated events (100 per customer, 20,000
products), every command as its own process, with wall and CPU seconds, peak resident
memory (the process and its children, a Spark JVM included) and bytes per event; beside
them the same preparation (read, sort, 30-minute sessions, tokens, per-customer counts) by
Polars' streaming engine and by DuckDB (4 GB memory limit) on the same file, and the Spark
engine on ``local[2]``.

Each step runs under a memory cap (``SCALE_CAP_GB``, default 8): a watchdog reads the
resident memory of the step's process tree every 0.2 s and stops it above the cap, and
the step is reported as such. Steps run one at a time, niced. Generated shops live under
``SCALE_DIR`` (default /tmp/funnelprint-scale) and are deleted afterwards unless
``SCALE_KEEP=1``. ``SCALE_SIZES`` (e.g. ``1M,10M``) picks the sizes; the load average is
recorded beside every timing, since wall times on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

EVENTS_PER_CUSTOMER = 100
SESSIONS = "9.7"  # the simulator's typical sessions per customer for ~100 events
PRODUCTS = 20_000
MEMORY = "6GB"
#: Steps that read the whole log into memory, run only up to this many events.
IN_MEMORY_STEPS = ("recommend_all", "evaluate")
IN_MEMORY_MAX = 10_000_000


def _parse_size(text: str) -> int:
    text = text.strip().upper()
    scale = {"K": 1_000, "M": 1_000_000}.get(text[-1], 1)
    return int(float(text.rstrip("KM")) * scale)


def _tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants."""
    total = 0
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue
    page = os.sysconf("SC_PAGE_SIZE")
    todo = [pid]
    while todo:
        current = todo.pop()
        with contextlib.suppress(OSError, IndexError, ValueError):
            total += int((Path("/proc") / str(current) / "statm").read_text().split()[1]) * page
        todo.extend(children.get(current, []))
    return total


def measure(command: list[str], cap_bytes: int, events: int, env: dict[str, str] | None = None
            ) -> dict:
    """Run ``command`` niced under the memory watchdog: wall and CPU seconds, peak RSS."""
    load = os.getloadavg()[0]
    start = time.perf_counter()
    process = subprocess.Popen(["nice", "-n", "10", *command], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    peak = 0
    killed = False

    def watch() -> None:
        nonlocal peak, killed
        while process.poll() is None:
            rss = _tree_rss(process.pid)
            peak = max(peak, rss)
            if rss > cap_bytes:
                killed = True
                process.kill()
                return
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    output, _ = process.communicate()
    watcher.join()
    wall = time.perf_counter() - start
    result = {"wall_s": round(wall, 1), "peak_rss_gb": round(peak / 1e9, 2),
              "bytes_per_event": round(peak / max(events, 1)), "load_avg": round(load, 1),
              "ok": process.returncode == 0 and not killed}
    if killed:
        result["stopped"] = f"above the {cap_bytes / 1e9:.0f} GB cap"
    elif process.returncode != 0:
        result["error"] = output.decode(errors="replace").strip().splitlines()[-1:]
    return result


class CpuClock:
    """CPU seconds of finished children, step by step."""

    def __init__(self) -> None:
        self.last = self._now()

    @staticmethod
    def _now() -> float:
        t = os.times()
        return t.children_user + t.children_system

    def lap(self) -> float:
        now = self._now()
        spent, self.last = now - self.last, now
        return round(spent, 1)


def polars_prepare(path: str) -> None:
    """Read, sort, 30-minute sessions, tokens and per-customer counts, streaming."""
    import polars as pl

    gap = pl.duration(minutes=30)
    frame = (
        pl.scan_csv(path, schema_overrides={"user_id": pl.String, "product_id": pl.String})
        .with_columns(pl.col("timestamp").str.to_datetime("%Y-%m-%d %H:%M:%S"))
        .sort("user_id", "timestamp", maintain_order=True)
        .with_columns(
            ((pl.col("user_id") != pl.col("user_id").shift(1))
             | ((pl.col("timestamp") - pl.col("timestamp").shift(1)) > gap))
            .fill_null(True).cum_sum().alias("session"),
            pl.concat_str([pl.col("action"), pl.lit("_"), pl.col("product_id")]).alias("token"))
        .group_by("user_id")
        .agg(pl.len().alias("events"), pl.col("session").n_unique().alias("sessions"),
             pl.col("token").n_unique().alias("tokens"))
    )
    out = frame.collect(engine="streaming")
    print(json.dumps({"customers": out.height}))


def duckdb_prepare(path: str) -> None:
    """The same preparation in DuckDB with a 4 GB memory limit (spilling to disk)."""
    import tempfile

    import duckdb

    with tempfile.TemporaryDirectory() as spill:
        con = duckdb.connect(config={"memory_limit": "4GB", "threads": 2,
                                     "temp_directory": spill})
        customers = con.execute(f"""
            WITH e AS (
                SELECT user_id, CAST(timestamp AS TIMESTAMP) AS ts,
                       action || '_' || product_id AS token
                FROM read_csv('{path}', header=true, all_varchar=true)),
            s AS (
                SELECT *, CASE WHEN ts - lag(ts) OVER w > INTERVAL 30 MINUTE
                               OR lag(ts) OVER w IS NULL THEN 1 ELSE 0 END AS new
                FROM e WINDOW w AS (PARTITION BY user_id ORDER BY ts)),
            n AS (SELECT *, sum(new) OVER (PARTITION BY user_id ORDER BY ts
                                           ROWS UNBOUNDED PRECEDING) AS session FROM s)
            SELECT count(*) FROM (
                SELECT user_id, count(*), max(session), count(DISTINCT token)
                FROM n GROUP BY user_id)""").fetchone()
    print(json.dumps({"customers": customers[0] if customers else 0}))


def recovery(directory: str, sample_events: int) -> None:
    """Trait recovery against the simulator's truth: the in-memory fit on every customer
    against ``fit --memory`` on a hash sample of ``sample_events`` events, each profiling
    every customer (``profile`` and ``profile --memory``)."""
    import polars as pl

    from funnelprint.cli import run
    from funnelprint.profile.quality import align, trait_recovery

    shop = Path(directory)
    truth = pl.read_csv(shop / "truth.csv", schema_overrides={"customer_id": pl.String})
    out = {}
    for name, extra in (("in_memory", []),
                        ("sample", ["--memory", MEMORY, "--sample-events", str(sample_events)])):
        model, profiles = shop / f"model-{name}", shop / f"profiles-{name}.parquet"
        started = time.perf_counter()
        assert run(["fit", str(shop / "events.csv"), "--products", str(shop / "products.csv"),
                    "--out", str(model), *extra]) == 0
        assert run(["profile", str(shop / "events.csv"), "--model", str(model), "--out",
                    str(profiles), *(["--memory", MEMORY] if extra else [])]) == 0
        table = pl.read_parquet(profiles)
        traits = table.select(pl.selectors.starts_with("trait_")).to_numpy()
        true, learned, _ = align(truth, table["customer_id"].to_numpy(), traits)
        found = trait_recovery(true, learned)
        out[name] = {"mean_correlation": round(found["mean_correlation"], 4),
                     "traits": traits.shape[1], "seconds": round(time.perf_counter() - started)}
    out["difference"] = round(out["sample"]["mean_correlation"]
                              - out["in_memory"]["mean_correlation"], 4)
    print(json.dumps(out))


def _simulate(directory: Path, events: int) -> Path:
    shop = directory / "events.csv"
    if shop.exists():
        return shop
    customers = max(1, events // EVENTS_PER_CUSTOMER)
    subprocess.run([sys.executable, "-m", "funnelprint.cli", "simulate", "--out",
                    str(directory), "--customers", str(customers), "--products", str(PRODUCTS),
                    "--sessions", SESSIONS, "--block-customers", str(min(customers, 100_000)),
                    "--workers", "2", "--seed", "0"], check=True, capture_output=True)
    return shop


def run_size(events: int, root: Path, cap: int, with_spark: bool) -> dict:
    directory = root / f"shop-{events}"
    started = time.perf_counter()
    shop = _simulate(directory, events)
    with open(shop, "rb") as fh:
        lines = sum(1 for _ in fh) - 1
    result: dict = {"events_in_file": lines, "simulate_s": round(time.perf_counter() - started),
                    "file_gb": round(shop.stat().st_size / 1e9, 2)}
    cli = [sys.executable, "-m", "funnelprint.cli"]
    model, profiles = directory / "model", directory / "profiles.parquet"
    products = str(directory / "products.csv")
    steps = {
        "inspect": [*cli, "inspect", str(shop), "--memory", MEMORY, "--json"],
        "fit": [*cli, "fit", str(shop), "--products", products, "--out", str(model),
                "--memory", MEMORY],
        "profile": [*cli, "profile", str(shop), "--model", str(model), "--out", str(profiles),
                    "--memory", MEMORY],
        "recommend_all": [*cli, "recommend", "--model", str(model), "--customers", "all",
                          "--out", str(directory / "recommendations.parquet")],
        "evaluate": [*cli, "evaluate", "--data", f"events:{shop}", "--products", products,
                     "--models", "pop,itemknn,traits", "--protocol", "loo-full", "--json"],
        "prepare_polars_streaming": [sys.executable, __file__, "--prepare", "polars", str(shop)],
        "prepare_duckdb_4gb": [sys.executable, __file__, "--prepare", "duckdb", str(shop)],
    }
    if events > IN_MEMORY_MAX:
        # No bounded path yet: these hold the whole log in memory (about 350 bytes an event).
        for name in IN_MEMORY_STEPS:
            steps.pop(name)
            result[name] = {"skipped": f"in memory only; not run above {IN_MEMORY_MAX:,} "
                                       "events"}
    if with_spark:
        steps["spark_fit_local2"] = [*cli, "fit", str(shop), "--products", products, "--out",
                                     str(directory / "model-spark"), "--engine", "spark"]
        steps["spark_profile_local2"] = [*cli, "profile", str(shop), "--model",
                                         str(directory / "model-spark"), "--out",
                                         str(directory / "profiles-spark.parquet"),
                                         "--engine", "spark"]
    clock = CpuClock()
    for name, command in steps.items():
        figures = measure(command, cap, lines)
        figures["cpu_s"] = clock.lap()
        result[name] = figures
        print(f"  {events:>11,} {name:<26} {json.dumps(figures)}", file=sys.stderr)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prepare", choices=("polars", "duckdb"))
    parser.add_argument("--recovery", type=int, metavar="SAMPLE_EVENTS")
    parser.add_argument("path", nargs="?")
    args = parser.parse_args()
    if args.prepare:
        (polars_prepare if args.prepare == "polars" else duckdb_prepare)(args.path)
        return
    if args.recovery:
        recovery(args.path, args.recovery)
        return
    sizes = [_parse_size(s) for s in os.environ.get("SCALE_SIZES", "10M,30M,100M").split(",")]
    cap = int(float(os.environ.get("SCALE_CAP_GB", "8")) * 1e9)
    root = Path(os.environ.get("SCALE_DIR", "/tmp/funnelprint-scale"))
    with_spark = os.environ.get("SCALE_SPARK", "1") == "1"
    record: dict = {"cap_gb": cap / 1e9, "memory_option": MEMORY, "sizes": {}}
    try:
        if os.environ.get("SCALE_RECOVERY", "1") == "1":
            shop = _simulate(root / "recovery-1M", 1_000_000)
            done = subprocess.run([sys.executable, __file__, "--recovery", "250000",
                                   str(shop.parent)], capture_output=True, text=True)
            record["recovery_1M"] = (json.loads(done.stdout.strip().splitlines()[-1])
                                     if done.returncode == 0 else {"error": done.stderr[-500:]})
            print(f"  recovery at 1M: {record['recovery_1M']}", file=sys.stderr)
        for events in sizes:
            record["sizes"][str(events)] = run_size(events, root, cap, with_spark)
    finally:
        if os.environ.get("SCALE_KEEP") != "1":
            shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(record))


if __name__ == "__main__":
    main()
