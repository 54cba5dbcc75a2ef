"""Do action types and time gaps help next-item prediction? ``funnelformer`` with each of its
extra inputs switched on and off (both off is SASRec), loo-full, selected on full-ranking
validation: on the REES46 sample (several seeds) and on a simulated shop (one seed)."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from funnelprint.data.dataset import Dataset, load_dataset
from funnelprint.data.simulate import SimulationConfig, simulate
from funnelprint.evaluate.protocol import Protocol, evaluate_model, validator
from funnelprint.evaluate.splits import loo_split
from funnelprint.models import make_model

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
REES46 = DATA / "rees46" / "2019-Oct_head.csv"
VARIANTS = {
    "item": {"use_actions": False, "use_gaps": False},
    "item+action": {"use_actions": True, "use_gaps": False},
    "item+gap": {"use_actions": False, "use_gaps": True},
    "item+action+gap": {"use_actions": True, "use_gaps": True},
}


def ablation(dataset: Dataset, seeds: list[int], budget: float) -> dict:
    split = loo_split(dataset)
    protocol = Protocol.parse("loo-full")
    out: dict = {"customers": int(split.test.n_rows), "budget_s": budget}
    for name, params in VARIANTS.items():
        scores = []
        for seed in seeds:
            model = make_model("funnelformer", protocol.preset, time_budget_s=budget,
                               progress=False, seed=seed, **params)
            model.fit(split.train, validator(split.valid, split.train, protocol, seed=seed))
            result = evaluate_model(model, split.test, split.train, protocol, ks=(10,),
                                    seed=seed)
            scores.append(result["NDCG@10"])
        out[name] = {"NDCG@10_mean": round(float(np.mean(scores)), 4),
                     "NDCG@10_std": round(float(np.std(scores)), 4),
                     "seeds": len(seeds)}
        print(f"{dataset.name} {name}: {out[name]}", file=sys.stderr, flush=True)
    return out


def main() -> None:
    seeds = int(os.environ.get("ABLATION_SEEDS", "3"))
    out: dict = {}
    if REES46.exists():
        out["rees46"] = ablation(load_dataset(f"events:{REES46}"), list(range(seeds)), 60.0)
    else:
        out["rees46"] = {"skipped": f"{REES46} not found"}
    with tempfile.TemporaryDirectory() as tmp:
        paths = simulate(SimulationConfig(customers=3000, seed=0, scenario="bundled")).write(
            Path(tmp) / "sim")
        out["simulator"] = ablation(load_dataset(f"events:{paths['events']}"), [0], 150.0)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
