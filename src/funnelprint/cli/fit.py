"""``funnelprint fit``: build any registered model from its key, fit it and save it.

Options that set a model parameter are checked against the chosen model's config, and data
options against what the model reads (:attr:`Recommender.reads`): an option the model would
ignore is an error.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from funnelprint.cli.common import (
    ActionOpt,
    ActionsOpt,
    ColumnsOpt,
    EngineOpt,
    MemoryOpt,
    MissingCustomerOpt,
    NamesOpt,
    ProductColumnsOpt,
    SparkMasterOpt,
    check_engine,
    check_output_directory,
    check_reader_options,
    console,
    load_log,
    positive,
)
from funnelprint.data.dataset import LOADERS, Dataset, load_dataset
from funnelprint.models import Recommender, make_model, model_class, preset_for, save

#: Options that set a config field of the same meaning, by the field they set.
PARAMETER_OPTIONS = {"traits": "--traits", "aggregation": "--aggregation",
                     "nonneg": "--nonneg", "time_budget_s": "--time-budget",
                     "epochs": "--epochs", "seed": "--seed",
                     "rare_product_min_count": "--rare-product-min-count",
                     "session_gap_minutes": "--session-gap"}
#: Options that prepare an input, by the input a model must read for them to apply.
INPUT_OPTIONS = {"--products": "item_metadata", "--valid-protocol": "validation"}


def fit(
    events: Annotated[str, typer.Argument(help="Event file, or PREFIX:PATH with PREFIX one "
                                          "of " + ", ".join(LOADERS))],
    out: Annotated[Path, typer.Option(help="Model directory to write (replaced atomically)")],
    model_type: Annotated[str, typer.Option(help="A registered model key: traits (default), "
                                            "sasrec, bert4rec, gru4rec, funnelformer, bst, "
                                            "pop, itemknn, markov, ...")] = "traits",
    param: Annotated[list[str] | None, typer.Option(
        "--param", help="Model parameter KEY=VALUE (VALUE read as JSON, else text); "
                        "repeatable")] = None,
    traits: Annotated[int | None, typer.Option(help="Number of traits (traits)")] = None,
    aggregation: Annotated[str | None, typer.Option(
        help="session, mean, tfidf, recency or attention (traits)")] = None,
    nonneg: Annotated[str | None, typer.Option(help="anchors, split or shift (traits)")] = None,
    time_budget: Annotated[float | None, typer.Option(
        help="Training seconds at most (sequential models)")] = None,
    epochs: Annotated[int | None, typer.Option(
        help="Epochs at most (sequential models); Item2Vec's epochs (traits, item2vec)")]
    = None,
    valid_protocol: Annotated[str | None, typer.Option(
        help="full or sampledN: checkpoints are chosen on the held-out last item under this "
             "protocol, and the model's preset follows it (sequential models; default full)")]
    = None,
    products: Annotated[Path | None, typer.Option(
        help="Product metadata file: product id and any of category, brand, price")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed")] = None,
    product_columns: ProductColumnsOpt = None,
    columns: ColumnsOpt = None,
    actions: ActionsOpt = None,
    names: NamesOpt = None,
    action: ActionOpt = None,
    missing_customer: MissingCustomerOpt = "drop",
    on_error: Annotated[str | None, typer.Option(
        "--on-error", help="'raise' (default) stops at the first bad row; 'skip' drops and "
                           "counts bad rows")] = None,
    session_gap: Annotated[float | None, typer.Option(
        help="Minutes of inactivity that end a session (default 30)")] = None,
    rare_product_min_count: Annotated[int | None, typer.Option(
        help="Tokenise products seen fewer times by their category (traits)")] = None,
    engine: EngineOpt = "local",
    spark_master: SparkMasterOpt = None,
    sample_events: Annotated[int | None, typer.Option(
        help="With --engine spark or --memory: fit on a hash sample of customers holding "
             "about this many events (default: 10,000,000 on Spark, what the memory budget "
             "allows locally; a smaller log is taken whole)")] = None,
    memory: MemoryOpt = None,
) -> None:
    """Fit a model and save it. Models that read a validator (the sequential ones) train on
    each customer's history without its last two items, choose checkpoints on the item
    before the last, and are saved with every customer's full history to recommend from."""
    cls = model_class(model_type)
    check_engine(engine, spark_master, {})
    check_reader_options(engine == "spark" or memory is not None, action=action,
                         missing_customer=missing_customer, product_columns=product_columns)
    if sample_events is not None and engine != "spark" and memory is None:
        raise ValueError("--sample-events applies with --engine spark or --memory")
    if memory is not None and (engine == "spark" or model_type != "traits"):
        raise ValueError("--memory fits the traits model on the local engine")
    if engine == "spark" and model_type != "traits":
        raise ValueError(f"--engine spark fits the traits model, not {model_type!r}")
    given = {"--traits": traits, "--aggregation": aggregation, "--nonneg": nonneg,
             "--time-budget": time_budget, "--epochs": epochs, "--seed": seed,
             "--rare-product-min-count": rare_product_min_count, "--products": products,
             "--session-gap": session_gap, "--valid-protocol": valid_protocol}
    params = parameters(cls, given, param or [])
    check_inputs(cls, {flag: value for flag, value in given.items() if value is not None})
    check_output_directory(out)
    positive("--time-budget", time_budget)
    positive("--epochs", epochs)
    positive("--traits", traits)
    if product_columns is not None and products is None:
        raise ValueError("--product-columns maps the columns of --products FILE; give both")
    prefixed = events.partition(":")[0] in LOADERS and ":" in events
    if prefixed and (missing_customer != "drop" or any(
            v is not None for v in (columns, actions, names, action, on_error, session_gap,
                                    products))):
        raise ValueError(f"{events}: --columns, --actions, --names, --action, "
                         "--missing-customer, --on-error, --session-gap and --products apply "
                         "to event files only")
    mode = valid_protocol or "full"
    from funnelprint.evaluate.protocol import Protocol

    protocol = Protocol.parse(f"loo-{mode}")
    model = make_model(model_type, preset_for(model_type, protocol.preset),
                       **{"progress": sys.stderr.isatty()} if "progress" in
                       cls.config_class.field_names() else {}, **params)
    if prefixed:
        dataset = load_dataset(events)
    elif engine == "spark":
        positive("--sample-events", sample_events)
        dataset = spark_fit_dataset(Path(events), columns, actions, names, on_error or "raise",
                                    float(params.get("session_gap_minutes", 30.0)), products,
                                    spark_master, sample_events, int(params.get("seed", 0)))
    elif memory is not None:
        from funnelprint.cli.outofcore import sample_dataset

        positive("--sample-events", sample_events)
        dataset = sample_dataset(Path(events), columns, actions, names, on_error or "raise",
                                 float(params.get("session_gap_minutes", 30.0)), products,
                                 memory, sample_events, int(params.get("seed", 0)))
    else:
        dataset = events_dataset(cls, Path(events), columns, actions, names, on_error or "raise",
                                 float(params.get("session_gap_minutes", 30.0)), products,
                                 action=action, missing_customer=missing_customer,
                                 product_columns=product_columns)
    if "validation" in cls.reads:
        fit_with_validation(model, dataset, protocol, out)
    else:
        with console.status(f"fitting {model_type}"):
            try:
                model.fit(dataset)
            except RuntimeError as exc:
                if "vocabulary" not in str(exc):
                    raise
                raise ValueError(f"{events}: too little data to fit {model_type} "
                                 f"({dataset.n_interactions:,} interactions, "
                                 f"{dataset.n_items:,} items); give it a larger event file"
                                 ) from None
        save(model, out, trained_on="all")
        console.print(f"fitted {model_type} on {dataset.n_interactions:,} interactions, "
                      f"{dataset.n_customers:,} customers, {dataset.n_items:,} items → {out}")
    describe(model)


def parameters(cls: type[Recommender[Any]], given: dict[str, Any], pairs: list[str]
               ) -> dict[str, Any]:
    """Config parameters from the dedicated options and ``--param KEY=VALUE`` pairs; an
    option that sets a field the model does not have is an error."""
    fields = cls.config_class.field_names()
    params: dict[str, Any] = {}
    for field, flag in PARAMETER_OPTIONS.items():
        if given.get(flag) is None:
            continue
        if field not in fields:
            raise ValueError(f"{flag} does not apply to {cls.key} (its parameters: "
                             f"{', '.join(fields) or 'none'})")
        params[field] = given[flag]
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--param {pair!r}: expected KEY=VALUE")
        if key in params:
            raise ValueError(f"--param {key} repeats a parameter already set")
        try:
            params[key] = json.loads(text)
        except json.JSONDecodeError:
            params[key] = text
    return params


def check_inputs(cls: type[Recommender[Any]], given: dict[str, Any]) -> None:
    for flag, needed in INPUT_OPTIONS.items():
        if flag in given and needed not in cls.reads:
            raise ValueError(f"{flag} does not apply to {cls.key}: it reads no "
                             f"{needed.replace('_', ' ')}")


def events_dataset(cls: type[Recommender[Any]], path: Path, columns: str | None,
                   actions: str | None, names: str | None, on_error: str, session_gap: float,
                   products: Path | None, *, action: str | None = None,
                   missing_customer: str = "drop", product_columns: str | None = None
                   ) -> Dataset:
    """The dataset a model of ``cls`` reads from an event file."""
    log = load_log(path, columns, actions, names, on_error, session_gap, action=action,
                   missing_customer=missing_customer)
    metadata = None
    if products is not None:
        from funnelprint.data.products import read_products

        metadata = read_products(products, columns=product_columns)
    return Dataset.from_events(log, name=path.stem,
                               collapse_repeats="every_event" not in cls.reads,
                               products=metadata)


def spark_fit_dataset(path: Path, columns: str | None, actions: str | None, names: str | None,
                      on_error: str, session_gap: float, products: Path | None,
                      master: str | None, sample_events: int | None, seed: int) -> Dataset:
    """The dataset the traits model is fitted on, prepared on Spark from a customer sample
    (see :mod:`funnelprint.spark.engine`)."""
    from funnelprint.cli.common import on_error_mode
    from funnelprint.data import ColumnMapping
    from funnelprint.spark.engine import SAMPLE_EVENTS, spark_dataset

    positive("--session-gap", session_gap)
    metadata = None
    if products is not None:
        from funnelprint.data.products import read_products

        metadata = read_products(products)
    with console.status("preparing events on spark"):
        dataset, summary = spark_dataset(
            path, ColumnMapping.from_options(columns, actions, names), on_error_mode(on_error),
            session_gap, metadata, master, sample_events or SAMPLE_EVENTS, seed)
    console.print(f"spark ({summary['master']}): {summary['events']:,} events, sample of "
                  f"{summary['sample_customers']:,} customers ({summary['sample_events']:,} "
                  f"events, {summary['sample_fraction']:.1%} of customers by hash)")
    return dataset


def fit_with_validation(model: Recommender[Any], dataset: Dataset, protocol: Any,
                        out: Path) -> None:
    from funnelprint.evaluate.protocol import validator
    from funnelprint.evaluate.splits import loo_split

    split = loo_split(dataset)
    if not split.valid.n_rows:
        raise ValueError(f"{dataset.name}: no customer has the 3 or more steps that "
                         "validation needs")
    model.fit(split.train, validator(split.valid, split.train, protocol,
                                     seed=int(model.get_params().get("seed", 0))))
    # Recommendations read every customer's full history; the model never trained on the
    # held-out last items, so `evaluate --model-dir` can still score them honestly.
    save(model, out, dataset=dataset, trained_on="loo-train")
    report = model.fit_report_
    console.print(f"fitted {model.key} on {dataset.n_interactions:,} interactions, "
                  f"{dataset.n_customers:,} customers, {dataset.n_items:,} items in "
                  f"{report.get('train_seconds', 0.0):.0f} s; best validation NDCG@10 "
                  f"{report.get('best_valid', float('nan')):.4f} at epoch "
                  f"{report.get('best_epoch', '-')} → {out}")


def describe(model: Recommender[Any]) -> None:
    """A line per trait for models that have traits."""
    from funnelprint.models.traits import TraitsRecommender

    if isinstance(model, TraitsRecommender):
        profile = model.profile_
        cold = int(profile.customer_cold_.sum())
        chosen = profile.thresholds_
        console.print(f"  {profile.traits} traits, {cold:,} cold-start customers "
                      f"({profile.cold_start_share():.0%}: fewer than "
                      f"{chosen.min_known_tokens} known events), {len(profile.vocabulary_):,} "
                      f"tokens (seen {chosen.min_count} or more times)")
        for info in profile.trait_info_:
            console.print(f"  {info['trait']}: {escape(info['name'])}")
        if profile.left_out_:
            console.print(f"  left out, as this log cannot show them: "
                          f"{', '.join(profile.left_out_)} (funnelprint traits says why)")


def register(app: typer.Typer) -> None:
    app.command()(fit)

