"""Benchmarks: print figures and write one JSON record per run.

Each benchmark runs in its own process so that thread limits and peak memory are its own.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = ("ingest", "profile", "outside", "check", "evaluate", "sequential", "serve", "chaos",
           "recs")
#: Run only when named with --only: the action ablation (four models, three targets, three
#: seeds on five funnel logs), the sequential VAE's latent recovery and BST against its
#: candidate generator train many models; the scale part generates 10M to 100M events and
#: takes hours.
OPTIONAL = ("ablation", "latent", "rerank", "scale")


def run_one(name: str, args: argparse.Namespace, env_extra: dict[str, str]) -> dict:
    env = {**os.environ, **env_extra}
    cmd = [sys.executable, str(HERE / f"bench_{name}.py")]
    if name == "ingest":
        cmd += ["--events", str(args.events)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        sys.stderr.write(out.stderr)
        raise SystemExit(f"benchmark {name} failed")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _print(value: dict, indent: int) -> None:
    for key, item in value.items():
        if isinstance(item, dict) and all(not isinstance(v, dict) for v in item.values()):
            cells = "  ".join(f"{k}={v}" for k, v in item.items())
            print(f"{' ' * indent}{key:<16} {cells}")
        elif isinstance(item, dict):
            print(f"{' ' * indent}{key}")
            _print(item, indent + 2)
        else:
            print(f"{' ' * indent}{key:<32} {item}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--only", choices=BENCHES + OPTIONAL, action="append")
    args = parser.parse_args()
    one_core = {"POLARS_MAX_THREADS": "1", "OMP_NUM_THREADS": "1"}
    record = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "results": {},
    }
    for name in args.only or BENCHES:
        result = run_one(name, args, one_core if name == "ingest" else {})
        record["results"][name] = result
        print(f"[{name}]")
        shown = dict(result)
        for line in shown.pop("table", []):  # a part's own table, printed as it is
            print(f"  {line}")
        _print(shown, indent=2)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(record, indent=2))
    (args.out / "latest.json").write_text(json.dumps(record, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
