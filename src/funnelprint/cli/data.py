"""Commands about event data: ``simulate`` a shop, ``inspect`` a file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from funnelprint.cli.common import (
    ActionOpt,
    ActionsOpt,
    ColumnsOpt,
    GapOpt,
    MemoryOpt,
    MissingCustomerOpt,
    NamesOpt,
    OnErrorOpt,
    check_output_directory,
    check_reader_options,
    console,
    load_log,
    positive,
    write_json,
)

MinSessionOpt = Annotated[int, typer.Option(help="Drop sessions with fewer events")]
MaxSessionOpt = Annotated[int, typer.Option(help="Drop sessions with more events (0 keeps all)")]
MaxRateOpt = Annotated[
    float, typer.Option(help="Drop customers with a session faster than this many events per "
                        "minute (0 keeps all)")
]
RareOpt = Annotated[
    int, typer.Option(help="Tokenise products seen fewer times by their category (0 = off)")
]


def simulate(
    out: Annotated[Path, typer.Option(help="Output folder")],
    customers: Annotated[int, typer.Option(help="Number of customers")] = 2000,
    products: Annotated[int, typer.Option(help="Number of products")] = 600,
    scenario: Annotated[str, typer.Option(
        help="independent (taste and behaviour mixes drawn independently), bundled (the "
             "original personas, which tie categories to behaviour), sparse (1-3 short sessions "
             "per customer), many (12 tastes, 6 behaviours), noisy (off-mix sessions, bots, "
             "duplicated events, timestamp jitter)")] = "independent",
    personas: Annotated[int | None, typer.Option(
        help="bundled only: number of personas (1-8, default 6)")] = None,
    tastes: Annotated[int | None, typer.Option(
        help="Mixed scenarios: number of taste archetypes (1-12; default per scenario)")] = None,
    behaviours: Annotated[int | None, typer.Option(
        help="Mixed scenarios: number of behaviour archetypes (1-6; default per scenario)")
    ] = None,
    days: Annotated[int, typer.Option(help="Days of activity")] = 60,
    sessions: Annotated[float, typer.Option(
        help="Typical number of sessions per customer (about 10 events each)")] = 8.0,
    seed: Annotated[int, typer.Option(help="Random seed")] = 0,
    block_customers: Annotated[int, typer.Option(
        help="Draw and write customers in blocks of this many, in bounded memory (for "
             "shops of millions of customers; 0: the whole shop at once). A shop written in "
             "blocks follows the same distributions but is a different draw")] = 0,
    event_format: Annotated[str, typer.Option(
        "--format", help="Events file: csv, or parquet (with --block-customers)")] = "csv",
    workers: Annotated[int, typer.Option(
        help="Processes drawing blocks side by side (with --block-customers)")] = 1,
) -> None:
    """Write a simulated shop: events.csv, products.csv, truth.csv (the mixes behind each
    customer) and personas.json (bundled) or archetypes.json (the other scenarios)."""
    from funnelprint.data.simulate import SimulationConfig
    from funnelprint.data.simulate import simulate as run_simulation

    for flag, value, most in (("--customers", customers, 100_000_000),
                              ("--products", products, 1_000_000), ("--days", days, 36_500)):
        if not 1 <= value <= most:
            raise ValueError(f"{flag} must be between 1 and {most:,}, not {value}")
    if seed < 0:
        raise ValueError(f"--seed must be 0 or more, not {seed}")
    positive("--sessions", sessions)
    positive("--block-customers", block_customers, allow_zero=True)
    positive("--workers", workers)
    if event_format not in ("csv", "parquet"):
        raise ValueError(f"--format must be csv or parquet, not {event_format!r}")
    if not block_customers and (event_format != "csv" or workers != 1):
        raise ValueError("--format parquet and --workers apply with --block-customers")
    if not block_customers and customers > 10_000_000:
        raise ValueError(f"--customers {customers:,} at once would not fit in memory; "
                         "draw them with --block-customers (e.g. 100000)")
    check_output_directory(out)
    config = SimulationConfig(customers=customers, products=products, personas=personas,
                              days=days, seed=seed, scenario=scenario, tastes=tastes,
                              behaviours=behaviours, sessions_mean=sessions)
    if block_customers:
        from funnelprint.data.simulate_blocks import write_blocks

        with console.status("simulating blocks"):
            done = write_blocks(config, out, block_customers, event_format,  # type: ignore[arg-type]
                                workers)
        bots = f", {done.bots:,} bots" if done.bots else ""
        console.print(f"wrote {done.events:,} events from {done.customers:,} customers{bots} "
                      f"over {products:,} products ({scenario}, {done.blocks:,} blocks of up "
                      f"to {block_customers:,} customers) to {out}")
        for name, path in done.paths.items():
            console.print(f"  {name:<10} {path}")
        return
    sim = run_simulation(config)
    paths = sim.write(out)
    mixes = (f"{len(sim.personas)} personas" if scenario == "bundled" else
             f"{len(sim.tastes)} tastes x {len(sim.behaviours)} behaviours")
    bots = f", {len(sim.bots)} bots" if sim.bots else ""
    console.print(
        f"wrote {sim.events.height:,} events from {customers:,} customers{bots} over "
        f"{products:,} products ({scenario}: {mixes}) to {out}"
    )
    for name, path in paths.items():
        console.print(f"  {name:<10} {path}")


def inspect(
    events: Annotated[Path, typer.Argument(help="Event file: CSV (optionally .gz), Parquet, "
                                           "JSON lines")],
    columns: ColumnsOpt = None,
    actions: ActionsOpt = None,
    names: NamesOpt = None,
    on_error: OnErrorOpt = "raise",
    action: ActionOpt = None,
    missing_customer: MissingCustomerOpt = "drop",
    session_gap: GapOpt = 30.0,
    min_session_length: MinSessionOpt = 1,
    max_session_events: MaxSessionOpt = 1000,
    max_events_per_minute: MaxRateOpt = 60.0,
    rare_product_min_count: RareOpt = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
    memory: MemoryOpt = None,
) -> None:
    """Validate an event file and summarise it: counts, actions, drops, lengths."""
    from funnelprint.data.summary import summarize

    if memory is not None:
        check_reader_options(True, action=action, missing_customer=missing_customer)
        summary = _summarize_within(events, columns, actions, names, on_error, session_gap,
                                    min_session_length, max_session_events,
                                    max_events_per_minute, rare_product_min_count, memory)
        write_json(summary) if as_json else print_summary(summary)
        return
    log = load_log(events, columns, actions, names, on_error, session_gap, min_session_length,
                   max_session_events, max_events_per_minute, rare_product_min_count,
                   action=action, missing_customer=missing_customer)
    summary = summarize(log)
    if as_json:
        write_json(summary)
        return
    print_summary(summary)


def _summarize_within(events: Path, columns: str | None, actions: str | None,
                      names: str | None, on_error: str, session_gap: float,
                      min_session_length: int, max_session_events: int,
                      max_events_per_minute: float, rare_product_min_count: int,
                      memory: str) -> dict:
    """``inspect --memory``: the summary from partitions of whole customers."""
    from dataclasses import replace

    from funnelprint.cli.outofcore import partitioned
    from funnelprint.data.summary import summarize_partitions

    if rare_product_min_count:
        raise ValueError("--rare-product-min-count counts products over the whole file; it "
                         "does not apply with --memory")
    positive("--min-session-length", min_session_length, allow_zero=True)
    with partitioned(events, columns, actions, names, on_error, session_gap, memory) as (
            log, _):
        log.sessions = replace(log.sessions, min_session_length=min_session_length,
                               max_events_per_session=max_session_events or None,
                               max_events_per_minute=max_events_per_minute or None)
        return summarize_partitions(log)


def print_summary(summary: dict) -> None:
    table = Table(title=f"{summary['path']} ({summary['format']})", show_header=False)
    for key in ("rows_read", "events", "customers", "products", "sessions", "tokens"):
        table.add_row(key.replace("_", " "), f"{summary[key]:,}")
    for action, count in summary["actions"].items():
        table.add_row(f"  {action}", f"{count:,}")
    for reason, count in summary["dropped"].items() or [("none", 0)]:
        table.add_row(f"dropped: {reason}", f"{count:,}")
    for column, count in summary["normalised"].items():
        table.add_row(f"float ids read as integers: {column}", f"{count:,}")
    for what, count in summary["filled"].items():
        table.add_row(f"filled: {what}", f"{count:,}")
    tr = summary["time_range"]
    table.add_row("time range", f"{tr['first']} → {tr['last']}")
    table.add_row("timestamps", summary["timestamp_encoding"])
    for key in ("session_length", "journey_length"):
        q = summary[key]
        if q:
            table.add_row(key.replace("_", " "),
                          f"p50 {q['p50']:g} · p90 {q['p90']:g} · p99 {q['p99']:g} · "
                          f"mean {q['mean']:g} · max {q['max']:g}")
    table.add_row("columns", ", ".join(f"{k}←{v}" for k, v in summary["mapping"].items()))
    if summary["action_mapping"]:
        table.add_row("actions read as", ", ".join(
            f"{raw}→{name}" for raw, name in summary["action_mapping"].items()))
    for warning in summary["warnings"]:
        table.add_row("warning", warning)
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command()(simulate)
    app.command()(inspect)
