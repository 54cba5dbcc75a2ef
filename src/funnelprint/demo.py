"""``make demo``: the main job end to end on a simulated shop."""

from __future__ import annotations

import argparse
from pathlib import Path

from funnelprint.cli import run as run_cli


def run(args: list[str]) -> None:
    print(f"\n$ funnelprint {' '.join(args)}", flush=True)
    code = run_cli(args)
    if code != 0:
        raise SystemExit(code)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("out/demo"))
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    data = args.out / "data"
    run(["simulate", "--out", str(data), "--customers", str(args.customers),
         "--seed", str(args.seed)])
    events = str(data / "events.csv")
    model = str(args.out / "model")
    run(["inspect", events])
    products = str(data / "products.csv")
    run(["fit", events, "--out", model, "--products", products, "--seed", str(args.seed)])
    run(["profile", events, "--model", model, "--out", str(args.out / "profiles.parquet")])
    run(["traits", "--model", model])
    run(["similar", "--model", model, "--customer", "u0001", "--k", "5"])
    run(["recommend", "--model", model, "--customer", "u0001", "--k", "5"])
    run(["evaluate", "--data", f"events:{events}", "--products", products, "--models",
         "traits,pop,itemknn,markov", "--protocol", "temporal-full"])
    sequential = str(args.out / "funnelformer")
    run(["fit", events, "--out", sequential, "--model-type", "funnelformer",
         "--time-budget", "60", "--seed", str(args.seed)])
    run(["recommend", "--model", sequential, "--customer", "u0001", "--k", "5",
         "--heatmap", str(args.out / "attention_u0001.png")])
    run(["evaluate", "--model-dir", sequential, "--protocol", "loo-full"])


if __name__ == "__main__":
    main()
