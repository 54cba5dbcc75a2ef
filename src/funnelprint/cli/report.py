"""``funnelprint report``: one self-contained HTML page about a fitted ``traits`` model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from funnelprint.artifacts import ArtifactError
from funnelprint.cli.common import (
    ActionOpt,
    ActionsOpt,
    ColumnsOpt,
    MissingCustomerOpt,
    ModelOpt,
    NamesOpt,
    OnErrorOpt,
    ProductColumnsOpt,
    check_output_suffix,
    console,
    err_console,
    load_log,
)
from funnelprint.cli.profiles import load_traits


def report(
    model: ModelOpt,
    out: Annotated[Path, typer.Option(help="Output .html file")],
    events: Annotated[Path | None, typer.Option(
        help="Event file the model was fitted on: data summary, segment funnels, journeys")]
    = None,
    products: Annotated[Path | None, typer.Option(
        help="Products file (product_id and any of category, brand, price)")] = None,
    leaderboard: Annotated[list[Path] | None, typer.Option(
        help="JSON written by 'funnelprint evaluate ... --json' (repeatable)")] = None,
    sequential: Annotated[Path | None, typer.Option(
        help="A fitted sequential model directory: attention heatmaps")] = None,
    customers: Annotated[int, typer.Option(help="How many example customers")] = 4,
    compare: Annotated[bool, typer.Option(
        help="With --events: fit the model's settings and the baselines (pop, itemknn, "
             "markov) on the log under the last-new protocol and show their leaderboard")]
    = True,
    product_columns: ProductColumnsOpt = None,
    columns: ColumnsOpt = None,
    actions: ActionsOpt = None,
    names: NamesOpt = None,
    action: ActionOpt = None,
    missing_customer: MissingCustomerOpt = "drop",
    on_error: OnErrorOpt = "raise",
) -> None:
    """Write an HTML report (open it in a browser, offline): data, traits, segments and their
    funnels, example customers, leaderboard and attention."""
    from funnelprint.data.products import read_products
    from funnelprint.report.html import write_report

    check_output_suffix(out, (".html", ".htm"), "--out")
    if not 0 <= customers <= 20:
        raise ValueError(f"--customers must be between 0 and 20, not {customers}")
    records = [(path.name, read_leaderboard(path)) for path in leaderboard or []]
    fitted = load_traits(model)
    seq = load_sequential(sequential) if sequential is not None else None
    if product_columns is not None and products is None:
        raise ValueError("--product-columns maps the columns of --products FILE; give both")
    catalogue = (read_products(products, columns=product_columns) if products is not None
                 else None)
    log = None
    if events is not None:
        log = load_log(events, columns, actions, names, on_error,
                       fitted.config.session_gap_minutes, action=action,
                       missing_customer=missing_customer)
        warn_other_customers(events, log.events["customer_id"].unique().to_list(),
                             fitted.profile_.customer_ids_)
    if log is not None and compare:
        with console.status("comparing the model with the baselines on the log "
                            "(--no-compare skips it)"):
            records.insert(0, (f"{Path(str(events)).name} (this log)",
                               compare_on_log(fitted, log, catalogue)))
    with console.status("writing the report"):
        path = write_report(out, fitted, log, catalogue, records, seq, customers)
    size = path.stat().st_size / 2**20
    console.print(f"wrote the report to {path} ({size:.1f} MiB); open it in a browser")


def compare_on_log(fitted: Any, log: Any, products: Any) -> dict[str, Any]:
    """The leaderboard of the model's settings against the baselines on the report's log
    (``last-new-full``: each customer's last product new to them held out)."""
    from funnelprint.data.dataset import Dataset
    from funnelprint.evaluate.leaderboard import run_leaderboard
    from funnelprint.evaluate.splits import with_catalogue

    dataset = Dataset.from_events(log, name=fitted.dataset_.name)
    listed = None
    if products is not None:
        dataset, listed = with_catalogue(dataset, products)
    return run_leaderboard(dataset, [fitted.key, "pop", "itemknn", "markov"], "last-new-full",
                           ks=(10,), model_params={fitted.key: fitted.get_params()},
                           listed=listed)


def warn_other_customers(path: Path, customers: list[str], fitted: Any) -> None:
    """Say so when ``--events`` is mostly not the log the model was fitted on: its data
    section and funnels then describe other customers than the traits and segments."""
    known = set(map(str, fitted))
    shared = sum(str(c) in known for c in customers)
    if shared < 0.5 * max(len(customers), 1):
        err_console.print(f"[yellow]warning:[/] only {shared:,} of the {len(customers):,} "
                          f"customers in {path} are customers of the model; the report's data "
                          "section and segment funnels describe this file", highlight=False)


def read_leaderboard(path: Path) -> dict[str, Any]:
    """An ``evaluate --json`` record; anything else is the user's error."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"--leaderboard {path}: not JSON ({exc.msg}, line {exc.lineno})"
                         ) from None
    except UnicodeDecodeError:
        raise ValueError(f"--leaderboard {path}: not a UTF-8 text file") from None
    models = record.get("models") if isinstance(record, dict) else None
    if not isinstance(models, dict) or not all(isinstance(r, dict) for r in models.values()):
        raise ValueError(f"--leaderboard {path}: not a leaderboard (write one with "
                         "'funnelprint evaluate ... --json > FILE.json')")
    return record


def load_sequential(path: Path) -> Any:
    from funnelprint.models import load
    from funnelprint.models.neural.base import SequentialRecommender

    fitted = load(path)
    if not isinstance(fitted, SequentialRecommender):
        raise ArtifactError(f"--sequential {path} holds a {fitted.key!r} model; attention "
                            "comes from a sequential model (fit --model-type sasrec, "
                            "funnelformer, ...)")
    return fitted


def register(app: typer.Typer) -> None:
    app.command()(report)
