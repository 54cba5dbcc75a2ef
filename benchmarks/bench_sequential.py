"""Sequential models with default settings: SASRec on Video (selected on sampled validation,
scored sampled and full), every sequential model on Beauty, the full-ranking models on Video,
and SASRec against the GNNs and the sequential VAE on the REES46 head read by session (each
visit a sequence). Each model is fitted once per row (validation-based early stopping within
its budget, under the first protocol of its row) and scored under each protocol.

Budget: ``SEQUENTIAL_BUDGET_S`` seconds (540) per model, or, with ``SEQUENTIAL_EPOCHS`` set,
that many epochs at most and no time limit (figures that do not depend on the machine's
load). ``SEQUENTIAL_ONLY`` (comma-separated row names: Video, Beauty, Video-full, rees46)
runs a subset; ``SEQUENTIAL_MODELS`` restricts the models."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from funnelprint.data import ColumnMapping
from funnelprint.data.dataset import Dataset, load_dataset
from funnelprint.data.sequences import Sequences
from funnelprint.evaluate.leaderboard import peak_memory
from funnelprint.evaluate.protocol import Protocol, evaluate_model, validator
from funnelprint.evaluate.splits import loo_split
from funnelprint.models import make_model

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
GRAPHS_AND_VAE = ["srgnn", "gcegnn", "seqvae"]
#: (row name, dataset spec, column mapping of an event file, models, protocols)
RUNS = (
    ("Video", f"sasrec:{DATA / 'sasrec' / 'Video.txt'}", None, ["sasrec"],
     ("loo-sampled100", "loo-full")),
    ("Beauty", f"s3rec:{DATA / 's3rec' / 'Beauty.txt'}", None,
     ["sasrec", "bert4rec", "gru4rec", *GRAPHS_AND_VAE], ("loo-full",)),
    ("Video-full", f"sasrec:{DATA / 'sasrec' / 'Video.txt'}", None,
     ["sasrec", "bert4rec", "gru4rec", *GRAPHS_AND_VAE], ("loo-full", "loo-sampled100")),
    ("rees46", f"events:{DATA / 'rees46' / '2019-Oct_head.csv'}", "customer=user_session",
     ["sasrec", *GRAPHS_AND_VAE], ("loo-full",)),
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
    epochs = os.environ.get("SEQUENTIAL_EPOCHS")
    limits: dict = ({"time_budget_s": None, "epochs": int(epochs)} if epochs
                    else {"time_budget_s": budget})
    only = {s for s in os.environ.get("SEQUENTIAL_ONLY", "").split(",") if s}
    keep = {s for s in os.environ.get("SEQUENTIAL_MODELS", "").split(",") if s}
    out: dict = {**limits, "load_start": os.getloadavg()}
    if not only:
        out["large_catalogue"] = large_catalogue()
        print(f"large catalogue: {out['large_catalogue']}", file=sys.stderr, flush=True)
    for name, spec, columns, models, protocols in RUNS:
        path = Path(spec.partition(":")[2])
        if only and name not in only:
            continue
        if not path.exists():
            out[name] = {"skipped": f"{path} not found"}
            continue
        mapping = ColumnMapping.from_options(columns, None, None) if columns else None
        split = loo_split(load_dataset(spec, mapping))
        # checkpoints are selected on validation under the first protocol reported, with
        # the preset tuned for it
        selection = Protocol.parse(protocols[0])
        valid = validator(split.valid, split.train, selection)
        for key in models:
            if keep and key not in keep:
                continue
            model = make_model(key, selection.preset, progress=False, **limits)
            with peak_memory() as peak:
                start, cpu = time.perf_counter(), time.process_time()
                model.fit(split.train, valid)
                fit_seconds = time.perf_counter() - start
                row: dict = {"fit_seconds": round(fit_seconds, 1),
                             "fit_cpu_seconds": round(time.process_time() - cpu, 1),
                             "epochs": len(model.fit_report_["epochs"]),
                             "best_epoch": model.fit_report_["best_epoch"],
                             "load": round(os.getloadavg()[0], 1)}
                for protocol in protocols:
                    result = evaluate_model(model, split.test, split.train,
                                            Protocol.parse(protocol), ks=(10,))
                    row[protocol] = {k: round(result[k], 4) for k in KEEP}
            row["peak_rss_mb"] = round(peak(), 1)
            out.setdefault(name, {})[key] = row
            print(f"{name} {key}: {row}", file=sys.stderr, flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
