"""Commands that read customer profiles from a fitted ``traits`` model: ``profile``,
``traits``, ``similar``, and ``evaluate-profiles`` on a simulated shop."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
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
from funnelprint.profile import naming
from funnelprint.profile.model import ProfileModel


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
    """Profile customers with a fitted model (no retraining). With `--engine spark` the
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
    cold = int(table["cold_start"].sum())
    console.print(f"wrote {table.height:,} profiles to {out}; {cold:,} "
                  f"({cold / max(table.height, 1):.0%}) are cold start: fewer than "
                  f"{fitted.profile_.min_known_tokens_} known events, so their profile is a "
                  "guess (columns guess, confidence, known_tokens)")


def traits(model: ModelOpt, as_json: JsonOpt = False) -> None:
    """Describe each trait: name, kind (taste, behaviour or mixed), the evidence of its
    typical customers beside everyone (each figure with its 95% interval), their action mix
    and price bands, top categories, brands, products, tokens; then the segments, the
    cold-start share and what the log cannot show."""
    fitted = load_traits(model).profile_
    summary = traits_summary(fitted)
    if as_json:
        write_json(summary)
        return
    for info in fitted.trait_info_:
        # The name's kind (what its words speak of) and where the trait's weight lies.
        kind = (f"  [dim]({info['kind']} name; {info['behaviour_share']:.0%} of its weight "
                f"on behaviour)[/]" if "kind" in info else "")
        console.print(f"[bold]{info['trait']}[/]: {escape(info['name'])}{kind}")
        typical = info.get("typical_customers")
        if typical:
            console.print(f"  customers    the {typical['customers']:,} of {typical['of_warm']:,}"
                          f" customers leaning most on it ({typical['share']:.0%}; "
                          f"{typical['cold_start_left_out']:,} cold-start customers left out)")
        for row in _shown_lines(info.get("evidence", [])):
            console.print(f"  evidence     {row['reads']}: {row['description']} "
                          f"{_figure(row['value'])} [{_figure(row['low'])}–"
                          f"{_figure(row['high'])}] vs {_figure(row['population'])} everyone")
        if not info.get("evidence"):
            console.print("  evidence     none: no figure of its customers stands apart "
                          "from everyone's by more than its interval")
        console.print(f"  action mix   {_mix(info['action_mix'])}   "
                      f"[dim](everyone: {_mix(info.get('population_action_mix', {}))})[/]")
        if info.get("price_bands"):
            console.print(f"  price bands  {_mix(info['price_bands'])}   "
                          f"[dim](everyone: {_mix(info.get('population_price_bands', {}))})[/]")
        for label, key, n, field_ in (("categories", "top_categories", 5, "category"),
                                      ("brands", "top_brands", 5, "brand"),
                                      ("products", "top_products", 6, ""),
                                      ("tokens", "top_tokens", 6, "")):
            if info.get(key):
                values = [_listed(field_, str(v)) for v in info[key][:n]]
                console.print(f"  {label:<12} {escape(', '.join(values))}")
    for seg in summary["segments"]:
        lead = ", ".join(f"{k} {v:.0%}" for k, v in seg["traits"].items())
        console.print(f"segment {seg['segment']}: {seg['customers']:,} customers "
                      f"(+{seg.get('cold_start', 0):,} cold start) · {escape(lead)}")
    cold = summary["cold_start"]
    console.print(f"cold start: {cold['customers']:,} of {summary['customers']:,} customers "
                  f"({cold['share']:.0%}) have fewer than {cold['min_known_tokens']} known "
                  "events; their profiles are guesses (profile's guess and confidence columns)")
    for feature, why in summary["left_out"].items():
        console.print(f"[dim]left out: {feature} ({why})[/]")


def traits_summary(profile: ProfileModel) -> dict[str, Any]:
    """What ``traits --json`` prints: every trait, the segments, the cold-start share, the
    thresholds chosen and the features the log cannot show."""
    cold = int(profile.customer_cold_.sum())
    return {"traits": profile.trait_info_, "segments": profile.segment_summary(),
            "customers": int(profile.customer_ids_.size),
            "cold_start": {"customers": cold, "share": round(profile.cold_start_share(), 4),
                           "min_known_tokens": profile.min_known_tokens_},
            "thresholds": asdict(profile.thresholds_), "log_days": profile.log_days_,
            "left_out": profile.left_out_}


#: Evidence lines ``traits`` prints beyond those that back the trait's name.
SHOWN_LINES = 4


def _shown_lines(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every line that backs a word of the name, then the others to :data:`SHOWN_LINES`."""
    backing = [line for line in lines if line.get("backs_name")]
    others = [line for line in lines if not line.get("backs_name")]
    return [*backing, *others][:max(SHOWN_LINES, len(backing))]


def _listed(field_: str, value: str) -> str:
    """A category or brand as it reads, an id with its field (``category 2053013563651392361``)."""
    return value if not field_ or naming.readable(value) else f"{field_} {value}"


def _mix(shares: dict[str, float]) -> str:
    return " · ".join(f"{k} {v:.0%}" for k, v in shares.items())


def _figure(value: float | None) -> str:
    return "–" if value is None else f"{value:.3g}"


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
