"""All baselines on SASRec's Video Games data: sampled and full-ranking protocols."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from funnelprint.data.dataset import load_dataset
from funnelprint.evaluate.leaderboard import run_leaderboard

VIDEO = Path(__file__).resolve().parents[2] / "shared" / "data" / "sasrec" / "Video.txt"
BASELINES = ["pop", "recent-pop", "itemknn", "markov", "item2vec"]
KEEP = ("HR@10", "NDCG@10", "MRR", "Coverage@10", "fit_seconds", "score_seconds", "peak_rss_mb")


def main() -> None:
    if not VIDEO.exists():
        print(json.dumps({"skipped": f"{VIDEO} not found"}))
        return
    dataset = load_dataset(f"sasrec:{VIDEO}")
    out: dict = {"dataset": dataset.stats()}
    for models in (BASELINES, ["traits"]):
        start = time.perf_counter()
        for protocol in ("loo-sampled100", "loo-full"):
            record = run_leaderboard(dataset, models, protocol)
            out.setdefault(protocol, {}).update(
                {m: {k: round(r[k], 4) for k in KEEP} for m, r in record["models"].items()})
        out[f"{'baselines' if len(models) > 1 else models[0]}_both_protocols_seconds"] = round(
            time.perf_counter() - start, 1)
    optimistic = run_leaderboard(dataset, ["pop"], "loo-sampled100", ties="optimistic")
    out["pop_sampled100_HR@10_optimistic"] = round(optimistic["models"]["pop"]["HR@10"], 4)
    print(json.dumps(out), file=sys.stdout)


if __name__ == "__main__":
    main()
