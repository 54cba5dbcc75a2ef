"""Profile pipeline: trait recovery and time on several simulated shops, side by side with
the literal pipeline (Item2Vec on sessions -> weighted mean -> shift -> NMF 16) and the
flattened baseline (counts -> TF-IDF -> NMF); refresh latency of one customer.

Every scenario runs with two seeds. For each run: mean matched correlation over every true
dimension (taste and behaviour), the matched correlation of each dimension, segment ARI
against the dominant (taste, behaviour) pair, and fit + profile seconds of funnelprint and of
the literal pipeline on the same dataset in the same process; and the loo-full NDCG@10 of
the trait recommender against pop and itemknn.
"""

from __future__ import annotations

import json
import sys
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
from funnelprint.evaluate.leaderboard import run_leaderboard
from funnelprint.profile.model import ProfileModel
from funnelprint.profile.quality import (
    align,
    flattened_baseline,
    literal_baseline,
    persona_columns,
    segment_agreement,
    trait_recovery,
)

warnings.filterwarnings("ignore")
SCENARIOS = ("independent", "sparse", "many", "noisy", "bundled")
SEEDS = (0, 1)
CUSTOMERS, PRODUCTS = 5000, 1000
#: A behaviour dimension's word that the name of its matched trait should carry.
BEHAVIOUR_WORDS = {"price_seeker": "price-seeking", "impulse_buyer": "impulse",
                   "window_shopper": "window", "cart_abandoner": "abandon",
                   "regular": "regular", "premium_seeker": "premium"}


def timed(run: Callable[[], object]) -> tuple[object, float]:
    start = time.perf_counter()
    out = run()
    return out, round(time.perf_counter() - start, 2)


def recovery(truth: pl.DataFrame, ids: np.ndarray, traits: np.ndarray, seed: int) -> dict:
    true_mix, found, dominant = align(truth, ids, traits)
    result = trait_recovery(true_mix, found)
    columns = persona_columns(truth)
    return {"mean_corr": round(result["mean_correlation"], 3),
            "per_dimension": dict(zip(columns, result["matched"], strict=True)),
            "assignment": result["assignment"],
            "segment_ari": round(segment_agreement(dominant, found, len(columns), seed), 3)}


def one_run(scenario: str, seed: int, tmp: Path) -> dict:
    sim = simulate(SimulationConfig(customers=CUSTOMERS, products=PRODUCTS, seed=seed,
                                    scenario=scenario))
    paths = sim.write(tmp / f"{scenario}{seed}")
    log = prepare_events(paths["events"])
    dataset = Dataset.from_events(log, collapse_repeats=False, products=sim.products)

    def ours() -> ProfileModel:
        model = ProfileModel(seed=seed).fit(dataset)
        model.transform(dataset)
        return model

    model, seconds = timed(ours)
    assert isinstance(model, ProfileModel)
    (literal_ids, literal_traits), literal_seconds = timed(
        lambda: literal_baseline(dataset, 16, seed))
    (flat_ids, flat_traits), flat_seconds = timed(
        lambda: flattened_baseline(dataset, model.traits, seed))
    warm = ~model.customer_cold_
    profile = recovery(sim.truth, model.customer_ids_[warm], model.customer_traits_[warm], seed)
    columns = persona_columns(sim.truth)
    matched = [model.trait_info_[j] if j < model.traits else {"name": "", "kind": ""}
               for j in profile.pop("assignment")]
    behaviour = {c: v for c, v in profile["per_dimension"].items() if c.startswith("behaviour:")}
    named = {c: BEHAVIOUR_WORDS.get(c.split(":", 1)[1], "?") in info["name"]
             for c, info in zip(columns, matched, strict=True) if c.startswith("behaviour:")}
    return {
        "events": log.events.height, "traits": model.traits,
        "behaviour_weight": model.behaviour_weight_,
        "funnelprint": {**profile, "seconds": seconds,
                        "min_behaviour_corr": min(behaviour.values()) if behaviour else None,
                        "matched_names": {c: i["name"] for c, i in zip(columns, matched,
                                                                        strict=True)},
                        "matched_kinds": {c: i["kind"] for c, i in zip(columns, matched,
                                                                        strict=True)},
                        "behaviour_named": named},
        "literal": {**_drop(recovery(sim.truth, literal_ids, literal_traits, seed)),
                    "seconds": literal_seconds},
        "flattened": {**_drop(recovery(sim.truth, flat_ids, flat_traits, seed)),
                      "seconds": flat_seconds},
        "recommenders_ndcg10": recommenders(paths["events"], sim.products, seed),
    }


def recommenders(events: Path, products: pl.DataFrame, seed: int) -> dict:
    """loo-full NDCG@10 (pessimistic ties) of the trait recommender and the baselines, as
    ``funnelprint evaluate --products`` measures them."""
    dataset = Dataset.from_events(prepare_events(events)).with_products(products)
    record = run_leaderboard(dataset, ["traits", "pop", "itemknn"], "loo-full", (10,),
                             seed=seed)
    return {name: round(r["NDCG@10"], 4) for name, r in record["models"].items()}


def _drop(result: dict) -> dict:
    result.pop("assignment", None)
    return result


def median_ms(run: Callable[[], object], repeats: int = 30) -> dict:
    latencies = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        latencies.append(time.perf_counter() - start)
    return {"median_ms": round(1000 * float(np.median(latencies)), 2),
            "p95_ms": round(1000 * float(np.quantile(latencies, 0.95)), 2)}


def refresh_latency(tmp: Path) -> dict:
    """Profile one customer after appending one event to their history: from an event table
    (sessions, mapping onto the fitted items, profile) and from sequences already in the
    fitted codes (what a recommender does per request)."""
    sim = simulate(SimulationConfig(customers=2000, products=600, seed=0))
    paths = sim.write(tmp / "refresh")
    log = prepare_events(paths["events"])
    model = ProfileModel().fit(Dataset.from_events(log, collapse_repeats=False,
                                                   products=sim.products))
    events = log.events
    customer = events.filter(pl.col("customer_id") == events["customer_id"][0])
    extra = customer.tail(1).with_columns(pl.col("timestamp") + pl.duration(minutes=5))
    frame = pl.concat([customer, extra]).drop("session", "token", strict=False)
    codes = Dataset.from_events(prepare_frame(frame), collapse_repeats=False).aligned_to(
        model.item_ids_).dataset
    return {"events_in_history": frame.height,
            **median_ms(lambda: model.transform_events(prepare_frame(frame))),
            "from_sequences": median_ms(lambda: model.profile(codes.sequences,
                                                              codes.action_names))}


def summary(runs: dict) -> dict:
    """Per scenario: mean over seeds of the headline figures."""
    out = {}
    for scenario in SCENARIOS:
        rows = [runs[f"{scenario}/seed{s}"] for s in SEEDS]
        out[scenario] = {
            "funnelprint_corr": round(float(np.mean([r["funnelprint"]["mean_corr"]
                                                     for r in rows])), 3),
            "literal_corr": round(float(np.mean([r["literal"]["mean_corr"] for r in rows])), 3),
            "flattened_corr": round(float(np.mean([r["flattened"]["mean_corr"]
                                                   for r in rows])), 3),
            "funnelprint_ari": round(float(np.mean([r["funnelprint"]["segment_ari"]
                                                    for r in rows])), 3),
            "literal_ari": round(float(np.mean([r["literal"]["segment_ari"] for r in rows])), 3),
            "funnelprint_s": round(float(np.mean([r["funnelprint"]["seconds"] for r in rows])), 2),
            "literal_s": round(float(np.mean([r["literal"]["seconds"] for r in rows])), 2),
            "ndcg10_traits_pop_itemknn": [round(float(np.mean(
                [r["recommenders_ndcg10"][m] for r in rows])), 4)
                for m in ("traits", "pop", "itemknn")],
        }
    return out


def main() -> None:
    scenarios = sys.argv[1:] or SCENARIOS
    runs: dict = {}
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        for scenario in scenarios:
            for seed in SEEDS:
                runs[f"{scenario}/seed{seed}"] = one_run(scenario, seed, tmp)
                print(f"{scenario}/seed{seed}", json.dumps(runs[f"{scenario}/seed{seed}"]),
                      file=sys.stderr, flush=True)
        refresh = refresh_latency(tmp)
    out = {"summary": summary(runs) if not sys.argv[1:] else {}, "runs": runs,
           "refresh_one_customer": refresh}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
