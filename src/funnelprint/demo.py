"""``make demo``: the main job end to end on a simulated shop."""

from __future__ import annotations

import argparse
import io
import json
from contextlib import redirect_stdout
from pathlib import Path

from funnelprint.cli import run as run_cli
from funnelprint.cli.evaluate import print_leaderboard


def run(args: list[str]) -> None:
    print(f"\n$ funnelprint {' '.join(args)}", flush=True)
    code = run_cli(args)
    if code != 0:
        raise SystemExit(code)


def run_json(args: list[str], path: Path) -> dict:
    """Run a command with ``--json``, keep its output in ``path`` and return it."""
    print(f"\n$ funnelprint {' '.join(args)} > {path}", flush=True)
    with redirect_stdout(io.StringIO()) as out:
        code = run_cli(args)
    if code != 0:
        raise SystemExit(code)
    path.write_text(out.getvalue())
    return dict(json.loads(out.getvalue()))


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
    board = args.out / "leaderboard.json"
    record = run_json(["evaluate", "--data", f"events:{events}", "--products", products,
                       "--models", "traits,pop,itemknn,markov", "--protocol", "temporal-full",
                       "--json"], board)
    print_leaderboard(record, (5, 10, 20))
    sequential = str(args.out / "funnelformer")
    run(["fit", events, "--out", sequential, "--model-type", "funnelformer",
         "--time-budget", "60", "--seed", str(args.seed)])
    run(["recommend", "--model", sequential, "--customer", "u0001", "--k", "5",
         "--heatmap", str(args.out / "attention_u0001.png")])
    run(["evaluate", "--model-dir", sequential, "--protocol", "loo-full"])
    report = args.out / "report.html"
    run(["report", "--model", model, "--events", events, "--products", products,
         "--leaderboard", str(board), "--sequential", sequential, "--out", str(report)])
    print(f"\nreport: {report.resolve()}  (open it in a browser)")


if __name__ == "__main__":
    main()
