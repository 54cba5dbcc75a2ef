"""``funnelprint evaluate``: fit registered models on a split and rank their held-out
targets, or score a saved model; prints a leaderboard."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, cast

import typer
from rich.table import Table

from funnelprint.cli.common import (
    ActionOpt,
    ActionsOpt,
    ColumnsOpt,
    MissingCustomerOpt,
    NamesOpt,
    OnErrorOpt,
    ProductColumnsOpt,
    check_output_suffix,
    console,
    on_error_mode,
    write_json,
)
from funnelprint.data import ColumnMapping
from funnelprint.evaluate.metrics import Ties


def evaluate(
    data: Annotated[str | None, typer.Option(help="PREFIX:PATH with PREFIX events, sasrec, "
                                             "s3rec or recbole")] = None,
    models: Annotated[str, typer.Option(
        help="Comma-separated model keys (the default model and the simple baselines by "
             "default)")] = "traits,pop,itemknn,markov",
    model_params: Annotated[str | None, typer.Option(
        help='Parameters per model as JSON, e.g. \'{"funnelformer": {"target": "purchase"}}\'')]
    = None,
    model_dir: Annotated[Path | None, typer.Option(
        help="Evaluate a saved model (from fit) on the data it was fitted on, instead of "
             "fitting models")] = None,
    protocol: Annotated[str, typer.Option(help="SPLIT-full or SPLIT-sampledN; SPLIT is loo, "
                                          "last-new, temporal, user or purchase")] = "loo-full",
    k: Annotated[str, typer.Option("--k", help="Cut-offs, comma-separated")] = "5,10,20",
    keep_seen: Annotated[bool, typer.Option(help="Keep history items as candidates")] = False,
    ties: Annotated[str, typer.Option(help="pessimistic or optimistic")] = "pessimistic",
    part: Annotated[str, typer.Option(help="test or valid")] = "test",
    kcore: Annotated[int, typer.Option(help="k-core filter (0 = off)")] = 0,
    products: Annotated[Path | None, typer.Option(
        help="Products file (product_id and any of category, brand, price)")] = None,
    seed: Annotated[int, typer.Option(help="Random seed")] = 0,
    markdown: Annotated[Path | None, typer.Option(help="Also write a Markdown table")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
    product_columns: ProductColumnsOpt = None,
    columns: ColumnsOpt = None,
    actions: ActionsOpt = None,
    names: NamesOpt = None,
    action: ActionOpt = None,
    missing_customer: MissingCustomerOpt = "drop",
    on_error: OnErrorOpt = "raise",
) -> None:
    """Fit and evaluate recommenders on one dataset and protocol; print a leaderboard."""
    from funnelprint.data.dataset import load_dataset
    from funnelprint.evaluate.leaderboard import format_markdown, run_leaderboard
    from funnelprint.evaluate.protocol import Protocol

    if ties not in ("pessimistic", "optimistic") or part not in ("test", "valid"):
        raise ValueError("--ties must be pessimistic|optimistic and --part test|valid")
    ks = cutoffs(k)
    parsed = Protocol.parse(protocol)
    if kcore < 0:
        raise ValueError(f"--kcore must be 0 or more, not {kcore}")
    if markdown is not None:
        check_output_suffix(markdown, (".md", ".markdown"), "--markdown")
    progress = not as_json and sys.stderr.isatty()
    if model_dir is not None:
        if data is not None or products is not None:
            raise ValueError("give --data (and --products) or --model-dir, not both")
        record = evaluate_saved(model_dir, parsed, ks, keep_seen, cast(Ties, ties), seed, part,
                                progress)
    else:
        if data is None:
            raise ValueError("give --data (or --model-dir for a saved model)")
        if product_columns is not None and products is None:
            raise ValueError("--product-columns maps the columns of --products FILE; give both")
        mapping = ColumnMapping.from_options(columns, actions, names, action, missing_customer)
        dataset = load_dataset(data, mapping, kcore=kcore, on_error=on_error_mode(on_error))
        listed = None
        if products is not None:
            from funnelprint.data.products import read_products
            from funnelprint.evaluate.splits import with_catalogue

            dataset, listed = with_catalogue(dataset,
                                             read_products(products, columns=product_columns))
        keys = [m.strip() for m in models.split(",") if m.strip()]
        if not keys:
            raise ValueError("--models names no model")
        params = parse_model_params(model_params)
        unused = sorted(set(params) - set(keys))
        if unused:
            raise ValueError(f"--model-params names {', '.join(unused)}, which --models does "
                             f"not list ({', '.join(keys)})")
        if parsed.negatives >= dataset.n_items:
            raise ValueError(f"{parsed}: {parsed.negatives:,} sampled negatives need more "
                             f"than the {dataset.n_items:,} items of {dataset.name}; use "
                             "SPLIT-full or a smaller N")
        record = run_leaderboard(dataset, keys, parsed, ks, keep_seen, cast(Ties, ties), seed,
                                 part, progress=progress, model_params=params, listed=listed)
    failed = [r["error"] for r in record["models"].values() if "error" in r]
    if failed and len(failed) == len(record["models"]):
        raise ValueError(f"no model could be fitted: {failed[0]}")
    if not record["split"]["evaluated"]:
        raise ValueError(f"no customer can be evaluated under {parsed} (too few steps or "
                         "targets)")
    if markdown is not None:
        markdown.write_text(format_markdown(record))
    if as_json:
        write_json(record)
        return
    print_leaderboard(record, ks)


def cutoffs(text: str) -> tuple[int, ...]:
    try:
        ks = tuple(int(x) for x in text.split(","))
    except ValueError:
        raise ValueError(f"--k must be comma-separated whole numbers, not {text!r}") from None
    if not ks or min(ks) < 1 or max(ks) > 1000:
        raise ValueError(f"--k cut-offs must be between 1 and 1000, not {text!r}")
    return ks


def parse_model_params(text: str | None) -> dict[str, dict[str, Any]]:
    if not text:
        return {}
    try:
        params = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--model-params is not valid JSON: {exc}") from exc
    if not isinstance(params, dict) or not all(isinstance(v, dict) for v in params.values()):
        raise ValueError('--model-params must map model keys to objects: {"sasrec": {...}}')
    return params


def evaluate_saved(path: Path, protocol: Any, ks: tuple[int, ...], keep_seen: bool,
                   ties: Ties, seed: int, part: str, progress: bool) -> dict[str, Any]:
    from funnelprint.evaluate.leaderboard import evaluate_fitted
    from funnelprint.models import load

    fitted = load(path)
    if fitted.trained_on_ != "loo-train" or protocol.split != "loo":
        raise ValueError(f"{path} was fitted on {fitted.trained_on_ or 'unknown data'}; only "
                         "a model fitted on a leave-one-out training split (fit of a model "
                         "that reads validation) can be scored on loo protocols without "
                         "its test items in its training data")
    return evaluate_fitted(fitted, fitted.dataset_, protocol, ks, keep_seen, ties, seed, part,
                           progress)


def print_leaderboard(record: dict[str, Any], ks: tuple[int, ...]) -> None:
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
        if "error" in result:
            table.add_row(key, *["—"] * (len(columns) + 3))
            continue
        table.add_row(key, *[f"{result[c]:.4f}" for c in columns[:-1]],
                      f"{result[columns[-1]]:.2f}",
                      f"{result['fit_seconds']:.1f}", f"{result['score_seconds']:.1f}",
                      f"{result['peak_rss_mb']:.0f}")
    console.print(table)
    split, part = record["split"], record["part"]
    if "catalogue_items" in split:
        console.print(f"catalogue: {split['catalogue_items']:,} items (those of the training "
                      f"interactions, and of --products when given); "
                      f"{split.get(f'{part}_targets_outside_catalogue', 0):,} held-out "
                      "targets outside it are not scored", highlight=False)
    for key, result in record["models"].items():
        if "error" in result:
            console.print(f"[red]{key}[/]: {result['error']}", highlight=False)
        elif "note" in result:
            console.print(f"[yellow]{key}[/]: {result['note']}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command()(evaluate)
