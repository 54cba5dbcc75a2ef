"""Is BST ahead of its own candidate generator? ``markov`` proposes each customer's top 200
and BST re-orders them, loo-full, on a simulated shop and on the REES46 head; beside it, BST
without the generator's rank as an input and BST trained on uniform negatives only (what it
did before), to show what each ingredient adds. Selected on validation; at most
``RERANK_EPOCHS`` epochs (60), no time limit. ``RERANK_SEEDS`` (1) seeds;
``RERANK_VARIANTS`` (comma-separated names of :data:`VARIANTS`, all by default). BST's
blend with the generator's order is chosen on validation; the record keeps it."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from _common import chosen_keys

from funnelprint.data.dataset import Dataset, load_dataset
from funnelprint.data.simulate import SimulationConfig, simulate
from funnelprint.evaluate.protocol import Protocol, evaluate_model, validator
from funnelprint.evaluate.splits import loo_split
from funnelprint.models import make_model

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
VARIANTS = {
    "bst": {},
    "bst without ranks": {"use_ranks": False},
    "bst, uniform negatives only": {"hard_negatives": 0, "uniform_negatives": 12,
                                    "use_ranks": False},
}


def compare(dataset: Dataset, seeds: list[int], epochs: int) -> dict:
    split = loo_split(dataset)
    protocol = Protocol.parse("loo-full")
    out: dict = {"evaluated": int(split.test.n_rows)}
    generator = make_model("markov").fit(split.train)
    result = evaluate_model(generator, split.test, split.train, protocol, ks=(10,))
    out["markov"] = {"HR@10": round(result["HR@10"], 4), "NDCG@10": round(result["NDCG@10"], 4)}
    chosen = chosen_keys("RERANK_VARIANTS", VARIANTS)
    for name, params in VARIANTS.items():
        if name not in chosen:
            continue
        runs, blends = [], []
        for seed in seeds:
            model = make_model("bst", "full", candidates_from="markov", epochs=epochs,
                               time_budget_s=None, progress=False, seed=seed, **params)
            model.fit(split.train, validator(split.valid, split.train, protocol, seed=seed))
            blends.append(model.fit_report_.get("blend_valid"))
            runs.append(evaluate_model(model, split.test, split.train, protocol, ks=(10,)))
        out[name] = {k: round(float(np.mean([r[k] for r in runs])), 4)
                     for k in ("HR@10", "NDCG@10")}
        out[name]["NDCG@10_std"] = round(float(np.std([r["NDCG@10"] for r in runs])), 4)
        out[name]["blend_valid"] = blends
        print(f"{dataset.name} {name}: {out[name]} (markov {out['markov']})", file=sys.stderr,
              flush=True)
    return out


def main() -> None:
    torch.set_num_threads(int(os.environ.get("RERANK_THREADS", "2")))
    seeds = list(range(int(os.environ.get("RERANK_SEEDS", "1"))))
    epochs = int(os.environ.get("RERANK_EPOCHS", "60"))
    out: dict = {"epochs": epochs, "seeds": len(seeds), "load_start": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        paths = simulate(SimulationConfig(customers=3000, seed=0, scenario="bundled")).write(
            Path(tmp) / "sim")
        out["simulator"] = compare(load_dataset(f"events:{paths['events']}"), seeds, epochs)
    head = DATA / "rees46" / "2019-Oct_head.csv"
    if head.exists():
        out["rees46"] = compare(load_dataset(f"events:{head}"), seeds, epochs)
    out["load_end"] = os.getloadavg()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
