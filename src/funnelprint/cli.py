"""The ``funnelprint`` command line."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from funnelprint.data import ColumnMapping, EventDataError, EventLog, SessionConfig, TokenConfig
from funnelprint.data.pipeline import prepare_events

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Customer trait profiles and sequence-aware recommendations from funnel event logs.",
)
# Wide enough for the leaderboard when output goes to a file or a pipe.
console = Console(width=None if sys.stdout.isatty() else 140)
err_console = Console(stderr=True, soft_wrap=True)

ColumnsOpt = Annotated[
    str | None,
    typer.Option(help="Map fields to columns: customer=COL,timestamp=COL,action=COL,product=COL"
                 "[,session=COL,category=COL,price=COL,brand=COL,quantity=COL]"),
]
ActionsOpt = Annotated[
    str | None, typer.Option(help="Rename raw actions: RAW=CANONICAL,... (e.g. atc=add_to_cart)")
]
NamesOpt = Annotated[str | None, typer.Option(help="Column names of a headerless CSV: a,b,c,...")]
OnErrorOpt = Annotated[
    str, typer.Option("--on-error", help="'raise' stops at the first bad row; 'skip' drops and "
                      "counts bad rows")
]
GapOpt = Annotated[float, typer.Option(help="Minutes of inactivity that end a session")]
MinSessionOpt = Annotated[int, typer.Option(help="Drop sessions with fewer events")]
MaxSessionOpt = Annotated[
    int, typer.Option(help="Drop sessions with more events (0 keeps all)")
]
MaxRateOpt = Annotated[
    float, typer.Option(help="Drop customers with a session faster than this many events per "
                        "minute (0 keeps all)")
]
RareOpt = Annotated[
    int, typer.Option(help="Tokenise products seen fewer times by their category (0 = off)")
]
AggregationOpt = Annotated[
    str, typer.Option(help="session, mean, tfidf, recency or attention (learned)")
]
NonnegOpt = Annotated[str, typer.Option(help="anchors, split or shift")]


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_time=False, show_path=False)],
        force=True,
    )


def _fail(exc: Exception) -> typer.Exit:
    """Print a bad-input error; the caller raises the returned exit (code 2)."""
    err_console.print(f"[bold red]error:[/] {exc}")
    return typer.Exit(2)


def load_log(
    events: Path, columns: str | None, actions: str | None, names: str | None, on_error: str,
    session_gap: float = 30.0, min_session_length: int = 1, max_session_events: int = 1000,
    max_events_per_minute: float = 60.0, rare_product_min_count: int = 0,
) -> EventLog:
    """Read an event file with the mapping flags every event-reading command shares."""
    try:
        mapping = ColumnMapping.from_options(columns, actions, names)
        sessions = SessionConfig(
            gap_minutes=session_gap,
            min_session_length=min_session_length,
            max_events_per_session=max_session_events or None,
            max_events_per_minute=max_events_per_minute or None,
        )
        if on_error not in ("raise", "skip"):
            raise ValueError(f"--on-error must be 'raise' or 'skip', not {on_error!r}")
        return prepare_events(
            events, mapping, on_error=on_error,  # type: ignore[arg-type]
            sessions=sessions, tokens=TokenConfig(rare_product_min_count),
        )
    except (EventDataError, ValueError) as exc:
        raise _fail(exc) from exc


@app.callback()
def main_options(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress")] = False,
) -> None:
    _setup_logging(verbose)


@app.command()
def simulate(
    out: Annotated[Path, typer.Option(help="Output folder")],
    customers: Annotated[int, typer.Option(help="Number of customers")] = 2000,
    products: Annotated[int, typer.Option(help="Number of products")] = 600,
    personas: Annotated[int, typer.Option(help="Number of personas (1-8)")] = 6,
    days: Annotated[int, typer.Option(help="Days of activity")] = 60,
    seed: Annotated[int, typer.Option(help="Random seed")] = 0,
) -> None:
    """Write a simulated shop: events.csv, products.csv, truth.csv (persona mixes)."""
    from funnelprint.data.simulate import SimulationConfig
    from funnelprint.data.simulate import simulate as run_simulation

    try:
        config = SimulationConfig(
            customers=customers, products=products, personas=personas, days=days, seed=seed
        )
    except ValueError as exc:
        raise _fail(exc) from exc
    sim = run_simulation(config)
    paths = sim.write(out)
    console.print(
        f"wrote {sim.events.height:,} events from {customers:,} customers over "
        f"{products:,} products ({personas} personas) to {out}"
    )
    for name, path in paths.items():
        console.print(f"  {name:<9} {path}")


@app.command()
def inspect(
    events: Annotated[Path, typer.Argument(help="Event file: CSV (optionally .gz), Parquet, "
                                           "JSON lines")],
    columns: ColumnsOpt = None,
    actions: ActionsOpt = None,
    names: NamesOpt = None,
    on_error: OnErrorOpt = "raise",
    session_gap: GapOpt = 30.0,
    min_session_length: MinSessionOpt = 1,
    max_session_events: MaxSessionOpt = 1000,
    max_events_per_minute: MaxRateOpt = 60.0,
    rare_product_min_count: RareOpt = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
) -> None:
    """Validate an event file and summarise it: counts, actions, drops, lengths."""
    from funnelprint.data.summary import summarize

    log = load_log(events, columns, actions, names, on_error, session_gap, min_session_length,
                   max_session_events, max_events_per_minute, rare_product_min_count)
    summary = summarize(log)
    if as_json:
        sys.stdout.write(json.dumps(summary) + "\n")
        return
    _print_summary(summary)


def _print_summary(summary: dict) -> None:
    table = Table(title=f"{summary['path']} ({summary['format']})", show_header=False)
    for key in ("rows_read", "events", "customers", "products", "sessions", "tokens"):
        table.add_row(key.replace("_", " "), f"{summary[key]:,}")
    for action, count in summary["actions"].items():
        table.add_row(f"  {action}", f"{count:,}")
    for reason, count in summary["dropped"].items() or [("none", 0)]:
        table.add_row(f"dropped: {reason}", f"{count:,}")
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
    console.print(table)


@app.command()
def evaluate(
    data: Annotated[str | None, typer.Option(help="PREFIX:PATH with PREFIX events, sasrec, "
                                             "s3rec or recbole")] = None,
    models: Annotated[str, typer.Option(help="Comma-separated model keys")] = "pop,itemknn",
    model_params: Annotated[str | None, typer.Option(
        help='Parameters per model as JSON, e.g. \'{"funnelformer": {"target": "purchase"}}\'')]
    = None,
    model_dir: Annotated[Path | None, typer.Option(
        help="Evaluate a saved sequential model (from fit --model-type) on the data it was "
             "fitted on, instead of fitting models")] = None,
    protocol: Annotated[str, typer.Option(help="SPLIT-full or SPLIT-sampledN; SPLIT is loo, "
                                          "temporal, user or purchase")] = "loo-full",
    k: Annotated[str, typer.Option("--k", help="Cut-offs, comma-separated")] = "5,10,20",
    keep_seen: Annotated[bool, typer.Option(help="Keep history items as candidates")] = False,
    ties: Annotated[str, typer.Option(help="pessimistic or optimistic")] = "pessimistic",
    part: Annotated[str, typer.Option(help="test or valid")] = "test",
    kcore: Annotated[int, typer.Option(help="k-core filter (0 = off)")] = 0,
    seed: Annotated[int, typer.Option(help="Random seed")] = 0,
    markdown: Annotated[Path | None, typer.Option(help="Also write a Markdown table")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
    columns: ColumnsOpt = None,
    actions: ActionsOpt = None,
    names: NamesOpt = None,
    on_error: OnErrorOpt = "raise",
) -> None:
    """Fit and evaluate recommenders on one dataset and protocol; print a leaderboard."""
    from funnelprint.data.dataset import load_dataset
    from funnelprint.evaluate.leaderboard import format_markdown, run_leaderboard

    try:
        if ties not in ("pessimistic", "optimistic") or part not in ("test", "valid"):
            raise ValueError("--ties must be pessimistic|optimistic and --part test|valid")
        ks = tuple(int(x) for x in k.split(","))
        progress = not as_json and sys.stderr.isatty()
        if model_dir is not None:
            record = _evaluate_saved(model_dir, protocol, ks, keep_seen, ties, seed, part,
                                     progress)
        else:
            if data is None:
                raise ValueError("give --data (or --model-dir for a saved model)")
            mapping = ColumnMapping.from_options(columns, actions, names)
            dataset = load_dataset(data, mapping, kcore=kcore, on_error=on_error)
            params = _parse_model_params(model_params)
            record = run_leaderboard(
                dataset, [m.strip() for m in models.split(",") if m.strip()], protocol, ks,
                keep_seen, ties, seed, part,  # type: ignore[arg-type]
                progress=progress, model_params=params,
            )
    except (EventDataError, ValueError) as exc:
        raise _fail(exc) from exc
    if markdown is not None:
        markdown.write_text(format_markdown(record))
    if as_json:
        sys.stdout.write(json.dumps(record) + "\n")
        return
    _print_leaderboard(record, ks)


def _parse_model_params(text: str | None) -> dict[str, dict]:
    if not text:
        return {}
    try:
        params = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--model-params is not valid JSON: {exc}") from exc
    if not isinstance(params, dict) or not all(isinstance(v, dict) for v in params.values()):
        raise ValueError('--model-params must map model keys to objects: {"sasrec": {...}}')
    return params


def _evaluate_saved(path: Path, protocol: str, ks: tuple[int, ...], keep_seen: bool,
                    ties: str, seed: int, part: str, progress: bool) -> dict:
    from funnelprint.evaluate.leaderboard import evaluate_fitted

    fitted = _load_sequential_model(path)
    if fitted.trained_on_ != "loo-train":
        raise ValueError(f"{path} was not fitted on a leave-one-out training split; its "
                         "test items may be in its training data")
    return evaluate_fitted(fitted, fitted.dataset_, protocol, ks, keep_seen, ties,  # type: ignore[arg-type]
                           seed, part, progress)  # type: ignore[arg-type]


def _print_leaderboard(record: dict, ks: tuple[int, ...]) -> None:
    ds = record["dataset"]
    title = (f"{ds['name']} · {record['protocol']} · {record['part']} · ties "
             f"{record['ties']} · {record['split']['evaluated']:,} evaluated")
    table = Table(title=title)
    k = 10 if 10 in ks else ks[0]
    columns = [f"HR@{k}", f"NDCG@{k}", f"Recall@{k}", "MRR", f"Coverage@{k}", f"Novelty@{k}"]
    table.add_column("model", no_wrap=True)
    for col in [*columns, "fit s", "score s", "MiB"]:
        table.add_column(col, justify="right", no_wrap=True)
    for key, result in record["models"].items():
        table.add_row(key, *[f"{result[c]:.4f}" for c in columns[:-1]],
                      f"{result[columns[-1]]:.2f}",
                      f"{result['fit_seconds']:.1f}", f"{result['score_seconds']:.1f}",
                      f"{result['peak_rss_mb']:.0f}")
    console.print(table)


ModelOpt = Annotated[Path, typer.Option("--model", help="Model directory")]
CustomerOpt = Annotated[str, typer.Option("--customer", help="Customer id")]
KOpt = Annotated[int, typer.Option("--k", help="How many results")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON")]


def _load_profile_model(path: Path):
    from funnelprint.artifacts import ArtifactError
    from funnelprint.profile.model import ProfileModel

    try:
        return ProfileModel.load(path)
    except ArtifactError as exc:
        raise _fail(exc) from exc


SEQUENTIAL_TYPES = ("sasrec", "bert4rec", "gru4rec", "funnelformer", "bst")
DATA_PREFIXES = ("events:", "sasrec:", "s3rec:", "recbole:")


def _manifest_kind(path: Path) -> str | None:
    try:
        return json.loads((path / "manifest.json").read_text()).get("kind")
    except (OSError, ValueError, AttributeError):
        return None


@app.command()
def fit(
    events: Annotated[str, typer.Argument(help="Event file, or PREFIX:PATH (sasrec:, s3rec:, "
                                          "recbole:) for a sequential model")],
    out: Annotated[Path, typer.Option(help="Model directory to write")],
    model_type: Annotated[str, typer.Option(help="traits, or a sequential model: "
                                            + ", ".join(SEQUENTIAL_TYPES))] = "traits",
    time_budget: Annotated[float, typer.Option(help="Training seconds at most (sequential "
                                               "models)")] = 540.0,
    epochs: Annotated[int, typer.Option(help="Epochs at most (sequential models)")] = 200,
    products: Annotated[Path | None, typer.Option(help="Product metadata file (category, "
                                                  "brand, price)")] = None,
    traits: Annotated[int, typer.Option(help="Number of traits")] = 8,
    aggregation: AggregationOpt = "session",
    nonneg: NonnegOpt = "anchors",
    seed: Annotated[int, typer.Option(help="Random seed")] = 0,
    columns: ColumnsOpt = None,
    actions: ActionsOpt = None,
    names: NamesOpt = None,
    on_error: OnErrorOpt = "raise",
    session_gap: GapOpt = 30.0,
    rare_product_min_count: RareOpt = 0,
) -> None:
    """Fit a model and save it. ``traits`` (default): Item2Vec tokens, NMF traits, segments,
    trait names. A sequential type trains on each customer's history without the last item,
    which is kept for validation (early stopping and checkpoint choice)."""
    from funnelprint.data.products import read_products
    from funnelprint.profile.model import ProfileModel

    if model_type in SEQUENTIAL_TYPES:
        _fit_sequential(events, out, model_type, time_budget, epochs, seed, columns, actions,
                        names, on_error)
        return
    if model_type != "traits":
        raise _fail(ValueError(f"--model-type must be traits or one of {SEQUENTIAL_TYPES}"))
    log = load_log(Path(events), columns, actions, names, on_error, session_gap,
                   rare_product_min_count=rare_product_min_count)
    try:
        meta = read_products(products) if products else None
        model = ProfileModel(traits=traits, aggregation=aggregation, nonneg=nonneg, seed=seed)
        with console.status("fitting profile model"):
            model.fit(log, meta)
        model.save(out)
    except (EventDataError, ValueError) as exc:
        raise _fail(exc) from exc
    cold = int(model.customer_cold_.sum())
    console.print(f"fitted {traits} traits on {log.events.height:,} events, "
                  f"{model.customer_ids_.size:,} customers ({cold:,} cold start), "
                  f"{len(model.vocabulary_):,} tokens → {out}")
    for info in model.trait_info_:
        console.print(f"  {info['trait']}: {info['name']}")


def _fit_sequential(events: str, out: Path, model_type: str, time_budget: float, epochs: int,
                    seed: int, columns: str | None, actions: str | None, names: str | None,
                    on_error: str) -> None:
    from funnelprint.data.dataset import load_dataset
    from funnelprint.evaluate.splits import loo_split
    from funnelprint.models import make_model

    spec = events if events.startswith(DATA_PREFIXES) else f"events:{events}"
    try:
        mapping = ColumnMapping.from_options(columns, actions, names)
        dataset = load_dataset(spec, mapping, on_error=on_error)
        split = loo_split(dataset)
        model = make_model(model_type, seed=seed, time_budget_s=time_budget, epochs=epochs,
                           progress=sys.stderr.isatty())
        model.fit(split.train, valid=split.valid)  # type: ignore[call-arg]
        # Recommendations read every customer's full history; the network never trained on
        # the held-out last items, so `evaluate --model-dir` can still score them honestly.
        model.dataset_ = dataset
        model.save(out, {"dataset": dataset.name, **dataset.stats()}, trained_on="loo-train")
    except (EventDataError, ValueError) as exc:
        raise _fail(exc) from exc
    info = model.training_
    console.print(f"fitted {model_type} on {dataset.n_interactions:,} interactions, "
                  f"{dataset.n_customers:,} customers, {dataset.n_items:,} items in "
                  f"{info['train_seconds']:.0f} s; best validation NDCG@10 "
                  f"{info['best_valid']:.4f} at epoch {info['best_epoch']} → {out}")


def _load_sequential_model(path: Path, expected: str | None = None):
    from funnelprint.artifacts import ArtifactError
    from funnelprint.models.neural.persist import load_sequential

    try:
        model = load_sequential(path)
    except ArtifactError as exc:
        raise _fail(exc) from exc
    if expected and model.key != expected:
        raise _fail(ValueError(f"{path} holds a {model.key!r} model, not {expected!r}"))
    return model


@app.command()
def profile(
    events: Annotated[Path, typer.Argument(help="Event file (new or refreshed events)")],
    model: ModelOpt,
    out: Annotated[Path, typer.Option(help="Output .parquet or .csv")],
    columns: ColumnsOpt = None,
    actions: ActionsOpt = None,
    names: NamesOpt = None,
    on_error: OnErrorOpt = "raise",
    session_gap: GapOpt = 30.0,
) -> None:
    """Profile customers with a fitted model (no retraining)."""
    fitted = _load_profile_model(model)
    log = load_log(events, columns, actions, names, on_error, session_gap)
    table = fitted.transform(log).drop([f"raw_{j}" for j in range(fitted.traits)])
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".parquet":
        table.write_parquet(out)
    else:
        table.write_csv(out)
    console.print(f"wrote {table.height:,} profiles ({int(table['cold_start'].sum()):,} cold "
                  f"start) to {out}")


@app.command()
def traits(model: ModelOpt, as_json: JsonOpt = False) -> None:
    """Describe each trait: name, top tokens, products, categories, action mix."""
    fitted = _load_profile_model(model)
    if as_json:
        sys.stdout.write(json.dumps(fitted.trait_info_) + "\n")
        return
    for info in fitted.trait_info_:
        console.print(f"[bold]{info['trait']}[/]: {info['name']}")
        mix = " · ".join(f"{k} {v:.0%}" for k, v in info["action_mix"].items())
        console.print(f"  action mix   {mix}")
        if info.get("top_categories"):
            console.print(f"  categories   {', '.join(info['top_categories'][:5])}")
        console.print(f"  products     {', '.join(info['top_products'][:6])}")
        console.print(f"  tokens       {', '.join(info['top_tokens'][:6])}")
    for seg in fitted.segment_summary():
        lead = ", ".join(f"{k} {v:.0%}" for k, v in seg["traits"].items())
        console.print(f"segment {seg['segment']}: {seg['customers']:,} customers · {lead}")


def _print_rows(table, as_json: bool, title: str) -> None:
    if as_json:
        sys.stdout.write(json.dumps(table.to_dicts()) + "\n")
        return
    out = Table(title=title)
    for col in table.columns:
        out.add_column(col)
    for row in table.iter_rows():
        out.add_row(*[f"{v:.3f}" if isinstance(v, float) else str(v) for v in row])
    console.print(out)


@app.command()
def similar(model: ModelOpt, customer: CustomerOpt, k: KOpt = 10,
            as_json: JsonOpt = False) -> None:
    """Customers with the most similar trait mix."""
    fitted = _load_profile_model(model)
    try:
        table = fitted.similar(customer, k)
    except KeyError as exc:
        raise _fail(exc) from exc
    _print_rows(table, as_json, f"customers like {customer}")


@app.command()
def recommend(model: ModelOpt, customer: CustomerOpt, k: KOpt = 10,
              include_purchased: Annotated[bool, typer.Option(help="Allow bought products "
                                                              "(seen items, for sequential "
                                                              "models)")] = False,
              model_type: Annotated[str | None, typer.Option(
                  help="Check the directory holds this model type (traits, sasrec, ...)")]
              = None,
              heatmap: Annotated[Path | None, typer.Option(
                  help="Also write an attention heatmap image (sequential models)")] = None,
              as_json: JsonOpt = False) -> None:
    """Products for a customer, each with a reason: from traits and embeddings, or from a
    sequential model with the history steps it attended to."""
    if _manifest_kind(model) == "sequential":
        _recommend_sequential(model, customer, k, include_purchased, model_type, heatmap,
                              as_json)
        return
    if model_type not in (None, "traits"):
        raise _fail(ValueError(f"{model} holds a traits model, not {model_type!r}"))
    fitted = _load_profile_model(model)
    try:
        table = fitted.recommend(customer, k, include_purchased)
    except KeyError as exc:
        raise _fail(exc) from exc
    _print_rows(table, as_json, f"recommended for {customer}")


def _recommend_sequential(path: Path, customer: str, k: int, include_seen: bool,
                          model_type: str | None, heatmap: Path | None, as_json: bool) -> None:
    import polars as pl

    from funnelprint.models.neural.explain import recommend_with_reasons

    fitted = _load_sequential_model(path, model_type)
    try:
        rows = recommend_with_reasons(fitted, customer, k, exclude_seen=not include_seen)
    except KeyError as exc:
        raise _fail(exc) from exc
    if heatmap is not None:
        from funnelprint.report.heatmap import attention_heatmap

        attention_heatmap(fitted, customer, heatmap, k)
        err_console.print(f"heatmap → {heatmap}")
    if as_json:
        sys.stdout.write(json.dumps(rows) + "\n")
        return
    table = pl.DataFrame([{c: r[c] for c in ("rank", "product_id", "score", "reason")}
                          for r in rows])
    _print_rows(table, False, f"{fitted.key} recommendations for {customer}")


@app.command("evaluate-profiles")
def evaluate_profiles_cmd(
    sim_dir: Annotated[Path, typer.Option(help="Folder written by 'funnelprint simulate'")],
    traits: Annotated[int | None, typer.Option(help="Traits (default: number of personas)")]
    = None,
    aggregation: AggregationOpt = "session",
    nonneg: NonnegOpt = "anchors",
    seed: Annotated[int, typer.Option(help="Random seed")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Trait recovery and segment ARI against the simulator's truth, beside two baselines."""
    import polars as pl

    from funnelprint.data.products import read_products
    from funnelprint.profile.model import ProfileModel
    from funnelprint.profile.quality import evaluate_profiles, persona_columns

    log = load_log(sim_dir / "events.csv", None, None, None, "raise")
    truth = pl.read_csv(sim_dir / "truth.csv", schema_overrides={"customer_id": pl.String})
    products = read_products(sim_dir / "products.csv")
    k = traits or len(persona_columns(truth))
    model = ProfileModel(traits=k, aggregation=aggregation, nonneg=nonneg, seed=seed)
    with console.status("fitting and scoring"):
        model.fit(log, products)
        report = evaluate_profiles(log, truth, products, model, seed)
    if as_json:
        sys.stdout.write(json.dumps(report) + "\n")
        return
    table = Table(title=f"trait recovery on {sim_dir} ({report['customers']:,} customers, "
                  f"{k} traits)")
    for col in ("pipeline", "mean matched corr", "segment ARI", "per persona"):
        table.add_column(col)
    for name in ("profile", "textbook", "flattened"):
        r = report[name]
        table.add_row(name, f"{r['mean_correlation']:.3f}", f"{r['segment_ari']:.3f}",
                      " ".join(f"{c:.2f}" for c in r["matched"]))
    console.print(table)
    console.print(f"segment ARI of the same KMeans on the true persona mixes: "
                  f"{report['truth_segment_ari']:.3f}")
    if "embedding_category_purity@10" in report:
        console.print(f"embedding: {report['embedding_category_purity@10']:.1%} of each "
                      "product's 10 nearest products share its category")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
