"""Profile pipeline: fit + profile time on ~250k events, refresh latency, trait recovery."""

from __future__ import annotations

import json
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl

from funnelprint.data.dataset import Dataset
from funnelprint.data.pipeline import prepare_events, prepare_frame
from funnelprint.data.simulate import SimulationConfig, simulate
from funnelprint.profile.model import ProfileModel
from funnelprint.profile.quality import evaluate_profiles

warnings.filterwarnings("ignore")


def quality(seed: int, customers: int, products: int, tmp: Path) -> dict:
    sim = simulate(SimulationConfig(customers=customers, products=products, seed=seed))
    paths = sim.write(tmp / f"q{seed}")
    log = prepare_events(paths["events"])
    report = evaluate_profiles(log, sim.truth, sim.products, len(sim.personas), seed=seed)
    names = ("profile", "textbook", "flattened")
    return {
        "events": log.events.height,
        **{f"{name}_corr": round(report[name]["mean_correlation"], 3) for name in names},
        **{f"{name}_ari": round(report[name]["segment_ari"], 3) for name in names},
        "truth_mix_ari": round(report["truth_segment_ari"], 3),
        "embedding_purity@10": round(report["embedding_category_purity@10"], 3),
    }


def median_ms(run: Callable[[], object], repeats: int = 30) -> dict:
    latencies = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        latencies.append(time.perf_counter() - start)
    return {"median_ms": round(1000 * float(np.median(latencies)), 2),
            "p95_ms": round(1000 * float(np.quantile(latencies, 0.95)), 2)}


def refresh_latency(model: ProfileModel, events: pl.DataFrame) -> dict:
    """Profile one customer after appending one event to their history: from an event table
    (sessions, mapping onto the fitted items, profile) and from sequences already in the
    fitted codes (what a recommender does per request)."""
    customer = events.filter(pl.col("customer_id") == events["customer_id"][0])
    extra = customer.tail(1).with_columns(pl.col("timestamp") + pl.duration(minutes=5))
    frame = pl.concat([customer, extra]).drop("session", "token")
    codes = Dataset.from_events(prepare_frame(frame), collapse_repeats=False).aligned_to(
        model.item_ids_).dataset
    return {"events_in_history": frame.height,
            **median_ms(lambda: model.transform_events(prepare_frame(frame))),
            "from_sequences": median_ms(lambda: model.profile(codes.sequences,
                                                              codes.action_names))}


def main() -> None:
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        sim = simulate(SimulationConfig(customers=3400, products=3000, seed=0))
        paths = sim.write(tmp / "speed")
        start = time.perf_counter()
        log = prepare_events(paths["events"])
        dataset = Dataset.from_events(log, collapse_repeats=False, products=sim.products)
        model = ProfileModel(traits=6).fit(dataset)
        fitted = time.perf_counter()
        model.transform(dataset)
        done = time.perf_counter()
        out["speed"] = {"events": log.events.height, "fit_seconds": round(fitted - start, 2),
                        "profile_seconds": round(done - fitted, 2),
                        "fit_plus_profile_seconds": round(done - start, 2)}
        out["refresh_one_customer"] = refresh_latency(model, log.events)
        out["quality_sim_seed0"] = quality(0, 3000, 5000, tmp)
        out["quality_sim_seed1"] = quality(1, 3000, 5000, tmp)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
