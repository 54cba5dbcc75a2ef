"""Where do funnel actions help? SASRec against ``funnelformer`` (item + action + time gap)
and ``funnelformer`` with the actions as direct evidence (and, for purchases, its
purchase-intent head), full ranking, several seeds, on real funnel logs and simulated shops,
for three targets:

* the next new item (``loo-full``: history items excluded),
* the next purchase with history items allowed (``purchase-full --keep-seen``: carted items
  get bought later),
* the next purchase of an item not seen before (``purchase-full``).

Every model is selected on validation under the protocol it is reported on (keep-seen rule
included), trained for at most ``ABLATION_EPOCHS`` epochs (no time budget, so the figures
do not depend on the machine's load). ``markov`` is the reference that knows nothing but the
last item. Environment: ``ABLATION_SEEDS`` (3), ``ABLATION_EPOCHS`` (200), ``ABLATION_ONLY``
(comma-separated log names), ``ABLATION_TARGETS`` (comma-separated: ``new``,
``purchase-seen``, ``purchase-unseen``; all by default), ``ABLATION_VARIANTS`` (comma-separated
keys of ``VARIANTS``; all by default), ``ABLATION_SIM_CUSTOMERS`` (2000), ``ABLATION_THREADS``
(2).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
import torch
from _common import chosen_keys

from funnelprint.data import ColumnMapping
from funnelprint.data.dataset import Dataset, load_dataset
from funnelprint.data.simulate import SimulationConfig, simulate
from funnelprint.evaluate.protocol import Protocol, evaluate_model, validator
from funnelprint.evaluate.splits import split as make_split
from funnelprint.models import make_model

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
#: (split, keep_seen) per target.
TARGETS = {"next new item": ("loo", False), "next purchase, seen allowed": ("purchase", True),
           "next purchase, unseen": ("purchase", False)}
#: Short names of the targets for ``ABLATION_TARGETS``.
TARGET_KEYS = {"new": "next new item", "purchase-seen": "next purchase, seen allowed",
               "purchase-unseen": "next purchase, unseen"}
#: Model variants: (registry key, parameters); the purchase-intent head is switched on for
#: purchase targets where a variant asks for it.
VARIANTS: dict[str, tuple[str, dict]] = {
    "markov": ("markov", {}),
    "sasrec": ("sasrec", {}),
    "funnelformer": ("funnelformer", {}),
    "funnelformer+evidence": ("funnelformer", {"evidence": True, "purchase_head": True}),
}


def logs(tmp: Path) -> Iterator[tuple[str, Dataset]]:
    """The funnel logs: REES46 head (multi-category, carts and purchases), REES46 cosmetics
    (five months' heads, removals), the Taobao sample (carts, favourites, purchases) and two
    simulated shops."""
    only = {s for s in os.environ.get("ABLATION_ONLY", "").split(",") if s}

    def wanted(name: str) -> bool:
        return not only or name in only

    head = DATA / "rees46" / "2019-Oct_head.csv"
    if wanted("rees46") and head.exists():
        yield "rees46", load_dataset(f"events:{head}")
    months = sorted((DATA / "rees46-cosmetics").glob("data_*.csv"))
    if wanted("cosmetics") and months:
        joined = tmp / "cosmetics.csv"
        pl.concat([pl.read_csv(m, infer_schema_length=0) for m in months]).write_csv(joined)
        yield "cosmetics", load_dataset(f"events:{joined}")
    taobao = DATA / "taobao" / "userbehavior_active_sample.csv"
    if wanted("taobao") and taobao.exists():
        yield "taobao", load_dataset(f"events:{taobao}",
                                     ColumnMapping.from_options(None, "pay=purchase", None))
    customers = int(os.environ.get("ABLATION_SIM_CUSTOMERS", "2000"))
    for scenario in ("independent", "noisy"):
        if wanted(f"sim-{scenario}"):
            paths = simulate(SimulationConfig(customers=customers, seed=0,
                                              scenario=scenario)).write(tmp / scenario)
            yield f"sim-{scenario}", load_dataset(f"events:{paths['events']}")


def fit_and_score(dataset: Dataset, variant: str, target: str, seed: int, epochs: int
                  ) -> dict:
    split_kind, keep_seen = TARGETS[target]
    data = make_split(dataset, split_kind)
    protocol = Protocol.parse(f"{split_kind}-full")
    key, params = VARIANTS[variant]
    params = dict(params)
    purchase_head = params.pop("purchase_head", False)
    if key in ("sasrec", "funnelformer"):
        params.update(time_budget_s=None, epochs=epochs, progress=False, seed=seed)
        if key == "funnelformer" and purchase_head and split_kind == "purchase":
            params["target"] = "purchase"
    model = make_model(key, protocol.preset if key != "markov" else None, **params)
    start = time.perf_counter()
    model.fit(data.train, validator(data.valid, data.train, protocol, seed=seed,
                                    keep_seen=keep_seen))
    seconds = time.perf_counter() - start
    result = evaluate_model(model, data.test, data.train, protocol, ks=(10,),
                            keep_seen=keep_seen, seed=seed)
    return {"NDCG@10": result["NDCG@10"], "HR@10": result["HR@10"],
            "evaluated": int(data.test.n_rows), "fit_seconds": round(seconds, 1),
            "best_epoch": model.fit_report_.get("best_epoch")}


def main() -> None:
    torch.set_num_threads(int(os.environ.get("ABLATION_THREADS", "2")))
    seeds = list(range(int(os.environ.get("ABLATION_SEEDS", "3"))))
    epochs = int(os.environ.get("ABLATION_EPOCHS", "200"))
    targets = [TARGET_KEYS[key] for key in chosen_keys("ABLATION_TARGETS", TARGET_KEYS)]
    variants = chosen_keys("ABLATION_VARIANTS", VARIANTS)
    out: dict = {"seeds": len(seeds), "epochs": epochs, "targets": targets, "variants": variants,
                 "load_start": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        for name, dataset in logs(Path(tmp)):
            table: dict = {}
            for target in targets:
                for variant in variants:
                    runs = [fit_and_score(dataset, variant, target, seed, epochs)
                            for seed in (seeds if variant != "markov" else seeds[:1])]
                    scores = [r["NDCG@10"] for r in runs]
                    table.setdefault(target, {})[variant] = {
                        "NDCG@10_mean": round(float(np.mean(scores)), 4),
                        "NDCG@10_std": round(float(np.std(scores)), 4),
                        "HR@10_mean": round(float(np.mean([r["HR@10"] for r in runs])), 4),
                        "evaluated": runs[0]["evaluated"],
                        "fit_seconds": [r["fit_seconds"] for r in runs],
                        "best_epochs": [r["best_epoch"] for r in runs]}
                    print(f"{name} | {target} | {variant}: {table[target][variant]} "
                          f"(load {os.getloadavg()[0]:.1f})", file=sys.stderr, flush=True)
            out[name] = table
    out["load_end"] = os.getloadavg()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
