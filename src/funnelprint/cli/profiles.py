"""Commands that read customer profiles from a fitted ``traits`` model: ``profile``,
``traits``, ``similar``, and ``evaluate-profiles`` on a simulated shop."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from funnelprint.artifacts import ArtifactError
from funnelprint.cli.common import (
    ActionOpt,
    ActionsOpt,
    ColumnsOpt,
    CustomerOpt,
    EngineOpt,
    JsonOpt,
    KOpt,
    MemoryOpt,
    MissingCustomerOpt,
    ModelOpt,
    NamesOpt,
    OnErrorOpt,
    SparkMasterOpt,
    check_engine,
    check_output_suffix,
    check_reader_options,
    console,
    load_log,
    on_error_mode,
    positive,
    print_rows,
    write_json,
)
from funnelprint.models import load
from funnelprint.models.traits import TraitsRecommender


def load_traits(path: Path) -> TraitsRecommender:
    model = load(path)
    if not isinstance(model, TraitsRecommender):
        raise ArtifactError(f"{path} holds a {model.key!r} model; profiles come from a "
                            "'traits' model (funnelprint fit EVENTS --out DIR)")
    return model


def profile(
    events: Annotated[Path, typer.Argument(help="Event file (new or refreshed events)")],
    model: ModelOpt,
    out: Annotated[Path, typer.Option(help="Output .parquet or .csv")],
    columns: ColumnsOpt = None,
    actions: ActionsOpt = None,
    names: NamesOpt = None,
    action: ActionOpt = None,
    missing_customer: MissingCustomerOpt = "drop",
    on_error: OnErrorOpt = "raise",
    session_gap: Annotated[float | None, typer.Option(
        help="Minutes of inactivity that end a session (default: the model's)")] = None,
    engine: EngineOpt = "local",
    spark_master: SparkMasterOpt = None,
    memory: MemoryOpt = None,
) -> None:
    """Profile customers with a fitted model (no retraining). With ``--engine spark`` the
    profiles are written as a directory of Parquet parts (one table)."""
    check_engine(engine, spark_master, {})
    check_reader_options(engine == "spark" or memory is not None, action=action,
                         missing_customer=missing_customer)
    check_output_suffix(out, (".parquet",) if engine == "spark" else (".parquet", ".csv"),
                        "--out")
    fitted = load_traits(model)
    gap = fitted.config.session_gap_minutes if session_gap is None else session_gap
    if memory is not None:
        if engine == "spark":
            raise ValueError("--memory applies to the local engine")
        from funnelprint.cli.outofcore import profile_partitions

        written, cold = profile_partitions(fitted, events, out, columns, actions, names,
                                           on_error, gap, memory)
        console.print(f"wrote {written:,} profiles ({cold:,} cold start) to {out}")
        return
    if engine == "spark":
        from funnelprint.data import ColumnMapping
        from funnelprint.spark.engine import profile_spark

        positive("--session-gap", gap)
        with console.status("profiling on spark"):
            done = profile_spark(events, model, out, fitted.profile_.traits,
                                 ColumnMapping.from_options(columns, actions, names),
                                 on_error_mode(on_error), gap, spark_master)
        console.print(f"wrote {done['profiles']:,} profiles ({done['cold_start']:,} cold "
                      f"start) to {out} (spark, {done['master']})")
        return
    log = load_log(events, columns, actions, names, on_error, gap, action=action,
                   missing_customer=missing_customer)
    table = fitted.profile_events(log)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    if out.suffix.lower() == ".parquet":
        table.write_parquet(partial)
    else:
        table.write_csv(partial)
    partial.replace(out)
    console.print(f"wrote {table.height:,} profiles ({int(table['cold_start'].sum()):,} cold "
                  f"start) to {out}")


def traits(model: ModelOpt, as_json: JsonOpt = False) -> None:
    """Describe each trait: name, kind (taste, behaviour or mixed), the behaviour evidence
    with lifts over the population, top categories, brands, products, tokens, action mix."""
    fitted = load_traits(model).profile_
    if as_json:
        write_json(fitted.trait_info_)
        return
    for info in fitted.trait_info_:
        kind = (f"  [dim]({info['kind']}, {info['behaviour_share']:.0%} behaviour)[/]"
                if "kind" in info else "")
        console.print(f"[bold]{info['trait']}[/]: {info['name']}{kind}")
        for row in info.get("evidence", [])[:3]:
            console.print(f"  evidence     {row['reads']}: {row['feature']} {row['value']:.3g} "
                          f"vs {row['population']:.3g} population (x{row['lift']:.2f})")
        mix = " · ".join(f"{k} {v:.0%}" for k, v in info["action_mix"].items())
        console.print(f"  action mix   {mix}")
        if info.get("top_categories"):
            console.print(f"  categories   {', '.join(info['top_categories'][:5])}")
        if info.get("top_brands"):
            console.print(f"  brands       {', '.join(info['top_brands'][:5])}")
        console.print(f"  products     {', '.join(info['top_products'][:6])}")
        console.print(f"  tokens       {', '.join(info['top_tokens'][:6])}")
    for seg in fitted.segment_summary():
        lead = ", ".join(f"{k} {v:.0%}" for k, v in seg["traits"].items())
        console.print(f"segment {seg['segment']}: {seg['customers']:,} customers · {lead}")


def similar(model: ModelOpt, customer: CustomerOpt, k: KOpt = 10,
            as_json: JsonOpt = False) -> None:
    """Customers with the most similar trait mix."""
    positive("--k", k)
    table = load_traits(model).profile_.similar(customer, k)
    print_rows(table, as_json, f"customers like {customer}")


def evaluate_profiles(
    sim_dir: Annotated[Path, typer.Option(help="Folder written by 'funnelprint simulate'")],
    traits: Annotated[int | None, typer.Option(help="Traits (default: chosen from the data)")]
    = None,
    aggregation: Annotated[str, typer.Option(help="session, mean, tfidf, recency or "
                                             "attention")] = "session",
    nonneg: Annotated[str, typer.Option(help="anchors, split or shift")] = "anchors",
    seed: Annotated[int, typer.Option(help="Random seed")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Trait recovery and segment ARI against the simulator's truth, beside two baselines."""
    import polars as pl

    from funnelprint.data.products import read_products
    from funnelprint.profile.quality import evaluate_profiles as measure

    positive("--traits", traits)
    log = load_log(sim_dir / "events.csv", None, None, None, "raise")
    truth = pl.read_csv(sim_dir / "truth.csv", schema_overrides={"customer_id": pl.String})
    products = read_products(sim_dir / "products.csv")
    with console.status("fitting and scoring"):
        report = measure(log, truth, products, traits, aggregation, nonneg, seed)
    k = report["traits"]
    if as_json:
        write_json(report)
        return
    table = Table(title=f"trait recovery on {sim_dir} ({report['customers']:,} customers, "
                  f"{k} traits)")
    for col in ("pipeline", "mean matched corr", "segment ARI", "per persona"):
        table.add_column(col)
    for name in ("profile", "literal", "textbook", "flattened"):
        r = report[name]
        table.add_row(name, f"{r['mean_correlation']:.3f}", f"{r['segment_ari']:.3f}",
                      " ".join(f"{c:.2f}" for c in r["matched"]))
    console.print(table)
    console.print(f"segment ARI of the same KMeans on the true persona mixes: "
                  f"{report['truth_segment_ari']:.3f}")
    if "embedding_category_purity@10" in report:
        console.print(f"embedding: {report['embedding_category_purity@10']:.1%} of each "
                      "product's 10 nearest products share its category")


def register(app: typer.Typer) -> None:
    app.command()(profile)
    app.command()(traits)
    app.command()(similar)
    app.command("evaluate-profiles")(evaluate_profiles)
