"""Do the trait names and evidence hold on real shop logs? Fit a profile with the default
settings on every real log in ``../shared/data`` that has funnel actions (the REES46
October head, each REES46 cosmetics month and all five together with ``item.csv``, the
Taobao sample) and on small simulated shops, then check every name word and evidence line
against the raw figures of the trait's typical customers (``profile.audit``).

Per log: events, customers, days covered, whether the default fit succeeds (else why), the
traits, the cold-start share, name words and evidence lines (how many are contradicted and
how many are supported by their 95% interval), bare ids and duplicate names in the names,
and fit seconds (with the load average beside them: the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from funnelprint.data.dataset import Dataset
from funnelprint.data.pipeline import EventLog, prepare_events
from funnelprint.data.products import read_products
from funnelprint.data.simulate import SimulationConfig, simulate
from funnelprint.profile.audit import check_traits
from funnelprint.profile.model import ProfileModel

warnings.filterwarnings("ignore")
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
COSMETICS = ("2022_oct", "2022_nov", "2022_dec", "2023_jan", "2023_feb")
SCENARIOS = ("independent", "sparse", "many", "noisy", "bundled")


@dataclass
class Log:
    name: str
    events: EventLog
    products: pl.DataFrame | None


def real_logs(shared: Path, workdir: Path) -> Iterator[Log]:
    """The real logs with funnel actions, as a user would read them."""
    rees46 = shared / "rees46" / "2019-Oct_head.csv"
    if rees46.exists():
        yield Log("REES46 October head", prepare_events(rees46), None)
    cosmetics = shared / "rees46-cosmetics"
    if (cosmetics / "item.csv").exists():
        items = read_products(cosmetics / "item.csv")
        months = [cosmetics / f"data_{m}.csv" for m in COSMETICS
                  if (cosmetics / f"data_{m}.csv").exists()]
        for path in months:
            yield Log(f"REES46 cosmetics {path.stem[5:]}", prepare_events(path), items)
        if months:
            together = workdir / "cosmetics_months.csv"
            pl.concat([pl.read_csv(p, infer_schema=False) for p in months]).write_csv(together)
            yield Log("REES46 cosmetics, 5 months", prepare_events(together), items)
    taobao = shared / "taobao" / "userbehavior_active_sample.csv"
    if taobao.exists():
        yield Log("Taobao active sample", prepare_events(taobao), None)


def simulated_logs(workdir: Path, customers: int) -> Iterator[Log]:
    for scenario in SCENARIOS:
        sim = simulate(SimulationConfig(customers=customers, products=300, seed=0,
                                        scenario=scenario))
        paths = sim.write(workdir / scenario)
        yield Log(f"simulated {scenario}", prepare_events(paths["events"]), sim.products)


def run(log: Log, seed: int = 0) -> dict:
    events = log.events.events
    span = events["timestamp"].max() - events["timestamp"].min()  # type: ignore[operator]
    row: dict = {"log": log.name, "events": events.height,
                 "customers": events["customer_id"].n_unique(),
                 "days": round(span.total_seconds() / 86_400, 2)}
    dataset = Dataset.from_events(log.events, collapse_repeats=False, products=log.products)
    start = time.perf_counter()
    try:
        model = ProfileModel(seed=seed).fit(dataset)
    except ValueError as exc:
        return row | {"fit": f"fails: {exc}"}
    row |= {"fit": "ok", "fit_s": round(time.perf_counter() - start, 2),
            "load": round(os.getloadavg()[0], 2), "traits": model.n_traits_,
            "cold_start": round(float(model.customer_cold_.mean()), 3)}
    check = check_traits(model, dataset, seed=seed)
    row |= check.summary()
    row["names"] = list(check.names.values())
    row["contradicted"] = sorted({f"{t}: {w}" for t, w, v in check.words("name")
                                  + check.words("evidence") if v == "contradicted"})
    return row


def table(rows: list[dict]) -> list[str]:
    """The check as a table: name words and evidence lines contradicted (✗) and backed by
    their interval (✓) of all read, bare ids, duplicate names."""
    lines = [f"{'log':<30} {'events':>7} {'cust':>6} {'days':>6} {'traits':>6} {'cold':>5} "
             f"{'name words':>15} {'evidence lines':>15} {'bare':>4} {'dup':>3} {'fit s':>6}"]
    for r in rows:
        if r["fit"] != "ok":
            lines.append(f"{r['log']:<30} {r['events']:>7,} {r['customers']:>6,} "
                         f"{r['days']:>6} {r['fit']}")
            continue
        names = (f"{r['name_words_contradicted']}✗ {r['name_words_supported']}✓ "
                 f"/{r['name_words']}")
        evidence = (f"{r['evidence_contradicted']}✗ {r['evidence_supported']}✓ "
                    f"/{r['evidence_lines']}")
        lines.append(f"{r['log']:<30} {r['events']:>7,} {r['customers']:>6,} {r['days']:>6} "
                     f"{r['traits']:>6} {r['cold_start']:>5.0%} {names:>15} {evidence:>15} "
                     f"{r['bare_ids']:>4} {r['duplicate_names']:>3} {r['fit_s']:>6}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shared", type=Path, default=SHARED)
    parser.add_argument("--customers", type=int, default=1500,
                        help="customers of each simulated shop")
    parser.add_argument("--only-real", action="store_true")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        logs = list(real_logs(args.shared, Path(tmp)))
        if not args.only_real:
            logs += list(simulated_logs(Path(tmp), args.customers))
        for log in logs:
            rows.append(run(log))
            print(json.dumps(rows[-1]), file=sys.stderr)
    lines = table(rows)
    print("\n".join(lines), file=sys.stderr)
    print(json.dumps({"table": lines,
                      "logs": {r["log"]: {k: v for k, v in r.items() if k != "log"}
                               for r in rows}}))


if __name__ == "__main__":
    main()
