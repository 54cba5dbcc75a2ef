"""Recommendations under the ``last-new`` protocol on real logs and simulated shops: the
default model (``traits``) against the simple baselines and the sequential models.

Protocol (``funnelprint evaluate --protocol last-new-full`` runs the same on any log): each
customer's last step to a product new to them is held out; the new-product step before it
is the validation target (checkpoints of the sequential models are chosen on it); every
model is fitted on each customer's steps before their validation target (before the test
target where there is none) and ranks the training catalogue, history items excluded, ties
pessimistic. Targets outside the catalogue (products no training step touched, and not in
the products file) are counted, not scored.

Logs: the REES46 October head, the Taobao active sample (``pay`` read as a purchase), the
five REES46 cosmetics months concatenated (with ``item.csv`` as the products file), the five
simulator scenarios and the outside shop of :mod:`bench_outside`. Sequential models train
for ``RECS_BUDGET_S`` seconds at most (default 60). ``--batch N`` times batch
recommendations instead (a simulated shop of N customers).

    python benchmarks/bench_recs.py [--only rees46-oct ...] [--models traits,pop,...]
    python benchmarks/bench_recs.py --events mine.csv [--products p.csv] [--actions pay=buy]
    python benchmarks/bench_recs.py --batch 100000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl

from funnelprint.data.dataset import Dataset
from funnelprint.data.pipeline import prepare_events
from funnelprint.data.products import read_products
from funnelprint.data.schema import ColumnMapping
from funnelprint.evaluate.leaderboard import run_leaderboard
from funnelprint.evaluate.splits import with_catalogue

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
BASELINES = ("traits", "pop", "itemknn", "markov")
SEQUENTIAL = ("sasrec", "funnelformer", "bert4rec", "gru4rec", "bst")
SCENARIOS = ("independent", "sparse", "many", "noisy", "bundled")
KEEP = ("NDCG@10", "HR@10", "MRR", "fit_seconds", "best_epoch")
Loaded = tuple[Dataset, "np.ndarray | None"]


def rees46_october(work: Path) -> Loaded:
    return _events(DATA / "rees46" / "2019-Oct_head.csv"), None


def taobao(work: Path) -> Loaded:
    return _events(DATA / "taobao" / "userbehavior_active_sample.csv", "pay=purchase"), None


def rees46_cosmetics(work: Path) -> Loaded:
    """The five monthly heads as one log, described and catalogued by ``item.csv``."""
    folder = DATA / "rees46-cosmetics"
    months = sorted(folder.glob("data_*.csv"))
    frames = [pl.read_csv(p, infer_schema_length=0) for p in months]
    path = work / "cosmetics.csv"
    pl.concat(frames).write_csv(path)
    return with_catalogue(_events(path), read_products(folder / "item.csv"))


def simulated(scenario: str) -> Callable[[Path], Loaded]:
    def load(work: Path) -> Loaded:
        from funnelprint.data.simulate import SimulationConfig, simulate

        sim = simulate(SimulationConfig(customers=5000, products=1000, seed=0,
                                        scenario=scenario))
        paths = sim.write(work / scenario)
        return _events(paths["events"]).with_products(sim.products), None
    return load


def outside(work: Path) -> Loaded:
    from bench_outside import generate

    paths = generate(5000, 0, 3, 3, work / "outside")
    return _events(paths["events"]).with_products(read_products(paths["products"])), None


def _events(path: Path, actions: str | None = None) -> Dataset:
    log = prepare_events(path, ColumnMapping.from_options(None, actions, None))
    return Dataset.from_events(log, name=path.stem)


def own_log(path: Path, products: Path | None, actions: str | None
            ) -> Callable[[Path], Loaded]:
    def load(work: Path) -> Loaded:
        dataset = _events(path, actions)
        return (dataset, None) if products is None else \
            with_catalogue(dataset, read_products(products))
    return load


LOGS: dict[str, Callable[[Path], Loaded]] = {
    "rees46-oct": rees46_october, "taobao": taobao, "rees46-cosmetics": rees46_cosmetics,
    **{f"sim-{s}": simulated(s) for s in SCENARIOS}, "outside": outside,
}
REAL = ("rees46-oct", "taobao", "rees46-cosmetics")


def one_log(name: str, models: list[str], budget: float, work: Path) -> dict:
    """Every model on one log; each model's fit also records the CPU seconds it used (the
    sequential models' budget is wall-clock time, which a busy machine shortens)."""
    dataset, listed = LOGS[name](work)
    out: dict = {"models": {}}
    for key in models:
        params = {key: {"time_budget_s": budget, "progress": False}} if key in SEQUENTIAL \
            else {}
        cpu = time.process_time()
        record = run_leaderboard(dataset, [key], "last-new-full", ks=(10,),
                                 model_params=params, listed=listed)
        result = record["models"][key]
        split = record["split"]
        out |= {"dataset": record["dataset"], "evaluated": split["evaluated"],
                "catalogue_items": split["catalogue_items"],
                "test_targets_outside_catalogue": split["test_targets_outside_catalogue"]}
        out["models"][key] = ({"error": result["error"]} if "error" in result else
                              {k: round(result[k], 4) for k in KEEP if k in result}
                              | {"cpu_seconds": round(time.process_time() - cpu, 1)})
    return out


def batch_throughput(customers: int, work: Path, k: int = 10) -> dict:
    """Fit the default model on a simulated shop of ``customers`` customers (the sparse
    scenario, about ten events each) and time ``recommend --customers all`` into Parquet."""
    import resource

    from funnelprint.data.simulate import SimulationConfig, simulate
    from funnelprint.models import make_model
    from funnelprint.models.batch import write_recommendations

    sim = simulate(SimulationConfig(customers=customers, products=1000, seed=0,
                                    scenario="sparse"))
    paths = sim.write(work / "batch")
    dataset = Dataset.from_events(prepare_events(paths["events"]), collapse_repeats=False,
                                  products=sim.products)
    began = time.perf_counter()
    model = make_model("traits").fit(dataset)
    fit_s = time.perf_counter() - began
    began = time.perf_counter()
    report = write_recommendations(model, dataset.customer_ids, work / "recs.parquet", k)
    seconds = time.perf_counter() - began
    return {"customers": report.customers, "events": dataset.n_interactions,
            "items": dataset.n_items, "rows": report.rows, "fit_s": round(fit_s, 1),
            "recommend_s": round(seconds, 1),
            "customers_per_s": round(report.customers / seconds),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "load": [round(x, 2) for x in os.getloadavg()]}


def table(results: dict) -> str:
    """Markdown: one row per log, NDCG@10 per model, the best in bold."""
    keys = list(dict.fromkeys(k for r in results.values() for k in r["models"]))
    lines = ["| log | evaluated | " + " | ".join(keys) + " |", "|---" * (len(keys) + 2) + "|"]
    for name, r in results.items():
        scores = {k: v.get("NDCG@10") for k, v in r["models"].items()}
        best = max((v for v in scores.values() if v is not None), default=None)
        cells = ["–" if scores.get(k) is None else
                 (f"**{scores[k]:.4f}**" if scores[k] == best else f"{scores[k]:.4f}")
                 for k in keys]
        lines.append(f"| {name} | {r['evaluated']:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    warnings.filterwarnings("ignore")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=list(LOGS))
    parser.add_argument("--models", default=os.environ.get(
        "RECS_MODELS", ",".join((*BASELINES, "sasrec"))),
        help=f"Model keys (default: RECS_MODELS or {','.join((*BASELINES, 'sasrec'))}; the "
             f"other sequential ones: {','.join(SEQUENTIAL[1:])})")
    parser.add_argument("--events", type=Path, action="append", default=[],
                        help="Also an event file of your own (repeatable)")
    parser.add_argument("--products", type=Path, help="Products file of --events")
    parser.add_argument("--actions", help="--actions mapping of --events (RAW=CANONICAL,...)")
    parser.add_argument("--batch", type=int, default=0, metavar="CUSTOMERS",
                        help="Only time batch recommendations for a simulated shop this size")
    args = parser.parse_args()
    if args.batch:
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps({"batch": batch_throughput(args.batch, Path(tmp))}))
        return
    budget = float(os.environ.get("RECS_BUDGET_S", "60"))
    models = [m for m in args.models.split(",") if m]
    results: dict = {}
    for path in args.events:
        LOGS[path.stem] = own_log(path, args.products, args.actions)
    chosen = (args.only or []) + [p.stem for p in args.events] or list(LOGS)
    with tempfile.TemporaryDirectory() as tmp:
        for name in chosen:
            results[name] = one_log(name, models, budget, Path(tmp))
            print(f"{name}: " + ", ".join(
                f"{k} {v.get('NDCG@10', v.get('error'))}" for k, v in
                results[name]["models"].items()), file=sys.stderr, flush=True)
    print(table(results), file=sys.stderr)
    out = {"protocol": "last-new-full", "ties": "pessimistic", "budget_s": budget,
           "load": [round(x, 2) for x in os.getloadavg()], "logs": results}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
