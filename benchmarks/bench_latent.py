"""Do the sequential VAE's latent dimensions recover what generated a simulated shop? The
``seqvae`` profile (the mean of each customer's last-step Gaussian) against the simulator's
true taste and behaviour mixes, beside the trait profile on the same events.

Each true dimension is matched to one latent dimension by the Hungarian method on the
absolute correlation (a latent axis has no preferred sign; its sign is flipped to match),
as the trait profile's dimensions are matched on correlation (traits are non-negative
shares). The VAE profile is read two ways: the last step's Gaussian (the customer now) and
the average over the window's steps. Also reported: the same matching on a random rotation
of the latent means (what the axes themselves add beyond the subspace), and the next-item
NDCG@10 of the VAE.
Environment: ``LATENT_CUSTOMERS`` (2000), ``LATENT_EPOCHS`` (60), ``LATENT_DIMS`` (16).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
import torch
from scipy.optimize import linear_sum_assignment

from funnelprint.data.dataset import Dataset
from funnelprint.data.pipeline import prepare_events
from funnelprint.data.simulate import SimulationConfig, simulate
from funnelprint.evaluate.protocol import Protocol, evaluate_model, validator
from funnelprint.evaluate.splits import loo_split
from funnelprint.models import make_model
from funnelprint.profile.model import ProfileModel
from funnelprint.profile.quality import align, persona_columns, trait_recovery

SCENARIOS = ("independent", "sparse")


def signless_recovery(truth: np.ndarray, learned: np.ndarray) -> dict:
    """Hungarian matching of true dimensions to learned ones on |correlation|."""
    a = (truth - truth.mean(0)) / np.maximum(truth.std(0), 1e-12)
    b = (learned - learned.mean(0)) / np.maximum(learned.std(0), 1e-12)
    corr = np.abs(a.T @ b / a.shape[0])
    rows, cols = linear_sum_assignment(-corr)
    return {"mean_correlation": round(float(corr[rows, cols].mean()), 3),
            "matched": [round(float(c), 3) for c in corr[rows, cols]]}


def one_shop(scenario: str, customers: int, epochs: int, latent: int, tmp: Path) -> dict:
    sim = simulate(SimulationConfig(customers=customers, seed=0, scenario=scenario))
    paths = sim.write(tmp / scenario)
    log = prepare_events(paths["events"])
    events = Dataset.from_events(log, collapse_repeats=False, products=sim.products)
    steps = Dataset.from_events(log)  # what the sequential models read
    truth = pl.read_csv(paths["truth"], schema_overrides={"customer_id": pl.String})
    columns = persona_columns(truth)

    start = time.perf_counter()
    traits = ProfileModel(seed=0).fit(events)
    warm = ~traits.customer_cold_
    true_mix, found, _ = align(truth, traits.customer_ids_[warm], traits.customer_traits_[warm])
    trait_result = trait_recovery(true_mix, found)
    trait_seconds = time.perf_counter() - start

    split = loo_split(steps)
    protocol = Protocol.parse("loo-full")
    model = make_model("seqvae", "full", latent=latent, use_actions=True, use_gaps=True,
                       epochs=epochs, time_budget_s=None, progress=False)
    start = time.perf_counter()
    model.fit(split.train, validator(split.valid, split.train, protocol))
    vae_seconds = time.perf_counter() - start
    ndcg = evaluate_model(model, split.test, split.train, protocol, ks=(10,))["NDCG@10"]
    out: dict = {
        "customers": 0, "dimensions": len(columns),
        "traits": {**trait_result, "mean_correlation": round(trait_result["mean_correlation"], 3),
                   "k": traits.traits, "seconds": round(trait_seconds, 1)},
        "seqvae": {"latent": latent, "seconds": round(vae_seconds, 1),
                   "loo-full NDCG@10": round(ndcg, 4)},
        "dimension_names": columns,
    }
    for pooling in ("last", "mean"):
        profile = model.profiles(pooling=pooling)
        means = profile.select([f"latent_{k}" for k in range(latent)]).to_numpy()
        true_mix, found, _ = align(truth, profile["customer_id"].to_numpy(), means)
        spread = profile.select([f"latent_{k}_sd" for k in range(latent)]).to_numpy()
        rotation = np.linalg.qr(np.random.default_rng(0).normal(size=(latent, latent)))[0]
        out["customers"] = int(true_mix.shape[0])
        out["seqvae"][pooling] = {**signless_recovery(true_mix, found),
                                  "rotated": signless_recovery(true_mix, found @ rotation),
                                  "median_sd": round(float(np.median(spread)), 3)}
    return out


def main() -> None:
    torch.set_num_threads(int(os.environ.get("LATENT_THREADS", "2")))
    customers = int(os.environ.get("LATENT_CUSTOMERS", "2000"))
    epochs = int(os.environ.get("LATENT_EPOCHS", "60"))
    latent = int(os.environ.get("LATENT_DIMS", "16"))
    out: dict = {"load_start": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        for scenario in SCENARIOS:
            out[scenario] = one_shop(scenario, customers, epochs, latent, Path(tmp))
            print(f"{scenario}: {out[scenario]}", file=sys.stderr, flush=True)
    out["load_end"] = os.getloadavg()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
