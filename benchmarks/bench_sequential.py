"""Sequential models with default settings: SASRec on Video (selected on sampled validation,
scored sampled and full), SASRec / BERT4Rec / GRU4Rec on Beauty (full ranking). Each model is
fitted once per dataset (validation-based early stopping within its time budget, under the
first protocol of its row) and scored under each protocol."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from funnelprint.data.dataset import Dataset, load_dataset
from funnelprint.data.sequences import Sequences
from funnelprint.evaluate.leaderboard import peak_memory
from funnelprint.evaluate.protocol import Protocol, evaluate_model, validator
from funnelprint.evaluate.splits import loo_split
from funnelprint.models import make_model

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
RUNS = (
    ("sasrec", DATA / "sasrec" / "Video.txt", ["sasrec"], ("loo-sampled100", "loo-full")),
    ("s3rec", DATA / "s3rec" / "Beauty.txt", ["sasrec", "bert4rec", "gru4rec"], ("loo-full",)),
)
KEEP = ("HR@10", "NDCG@10", "MRR", "Coverage@10", "score_seconds")


def large_catalogue(items: int = 300_000, customers: int = 50_000, seed: int = 0) -> dict:
    """One epoch of SASRec with sampled softmax on random journeys over a huge catalogue:
    memory must stay bounded (no customers x items or positions x items matrix)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(5, 30, customers)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    seq = Sequences(offsets, rng.integers(0, items, offsets[-1]),
                    np.zeros(offsets[-1], np.int8), np.arange(offsets[-1], dtype=np.int64))
    data = Dataset(np.arange(customers).astype(str), np.arange(items).astype(str), seq)
    model = make_model("sasrec", epochs=1, progress=False, time_budget_s=None)
    with peak_memory() as peak:
        start = time.perf_counter()
        model.fit(data)
        seconds = time.perf_counter() - start
        model.recommend(np.arange(1000), k=10)
    return {"items": items, "interactions": int(offsets[-1]), "epoch_seconds": round(seconds, 1),
            "peak_rss_mb": round(peak(), 1)}


def main() -> None:
    budget = float(os.environ.get("SEQUENTIAL_BUDGET_S", "540"))
    out: dict = {"time_budget_s": budget, "large_catalogue": large_catalogue()}
    print(f"large catalogue: {out['large_catalogue']}", file=sys.stderr, flush=True)
    for prefix, path, models, protocols in RUNS:
        if not path.exists():
            out[path.stem] = {"skipped": f"{path} not found"}
            continue
        split = loo_split(load_dataset(f"{prefix}:{path}"))
        # checkpoints are selected on validation under the first protocol reported, with
        # the preset tuned for it
        selection = Protocol.parse(protocols[0])
        valid = validator(split.valid, split.train, selection)
        for key in models:
            model = make_model(key, selection.preset, time_budget_s=budget, progress=False)
            with peak_memory() as peak:
                start = time.perf_counter()
                model.fit(split.train, valid)
                fit_seconds = time.perf_counter() - start
                row: dict = {"fit_seconds": round(fit_seconds, 1),
                             "epochs": len(model.fit_report_["epochs"]),
                             "best_epoch": model.fit_report_["best_epoch"]}
                for protocol in protocols:
                    result = evaluate_model(model, split.test, split.train,
                                            Protocol.parse(protocol), ks=(10,))
                    row[protocol] = {k: round(result[k], 4) for k in KEEP}
            row["peak_rss_mb"] = round(peak(), 1)
            out.setdefault(path.stem, {})[key] = row
            print(f"{path.stem} {key}: {row}", file=sys.stderr, flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
