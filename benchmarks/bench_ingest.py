"""Ingest + validate + sessionize + tokenize simulated events on one core."""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import pyarrow as pa
from _common import customers_for, peak_rss_mb

from funnelprint.data.pipeline import prepare_events
from funnelprint.data.simulate import SimulationConfig, simulate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()
    pa.set_cpu_count(1)
    with tempfile.TemporaryDirectory() as tmp:
        sim = simulate(SimulationConfig(customers=customers_for(args.events), products=5000,
                                        scenario="bundled"))
        paths = sim.write(Path(tmp))
        del sim
        size_mb = paths["events"].stat().st_size / 2**20
        base_rss = peak_rss_mb()
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            log = prepare_events(paths["events"])
            best = min(best, time.perf_counter() - start)
        events = log.events.height
    print(json.dumps({
        "events": events,
        "file_mb": round(size_mb, 1),
        "seconds": round(best, 3),
        "events_per_second": round(events / best),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "rss_before_ingest_mb": round(base_rss, 1),
        "threads": 1,
    }))


if __name__ == "__main__":
    main()
