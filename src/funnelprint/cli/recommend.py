"""``funnelprint recommend``: products with a reason each from any saved model, for one
customer (``--customer``) or for many written to a file (``--customers FILE|all --out``).
Both go through :func:`funnelprint.models.serving.answer`, as the report and the service
do, and leave out the same history products (``--exclude``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import polars as pl
import typer
from tqdm import tqdm

from funnelprint.cli.common import (
    JsonOpt,
    KOpt,
    ModelOpt,
    check_output_suffix,
    err_console,
    positive,
    print_rows,
    write_json,
)
from funnelprint.models import load
from funnelprint.models.serving import DEFAULT_EXCLUDE, checked_exclude, recommend_customer

ExcludeOpt = Annotated[str, typer.Option(
    help="History products left out: seen (every product the customer touched), purchased "
         "(only those they bought) or none")]


def recommend(
    model: ModelOpt,
    customer: Annotated[str | None, typer.Option(
        help="One customer id (one the model never saw is answered as a new visitor)")] = None,
    customers: Annotated[str | None, typer.Option(
        help="Many customers: 'all' (every customer of the model's data) or a file of ids "
             "(one per line, or a CSV/Parquet customer_id column); needs --out")] = None,
    out: Annotated[Path | None, typer.Option(
        help="With --customers: write customer_id, rank, product_id, score, reason rows to "
             "this .parquet or .csv file")] = None,
    k: KOpt = 10,
    exclude: ExcludeOpt = DEFAULT_EXCLUDE,
    model_type: Annotated[str | None, typer.Option(
        help="Check the directory holds this model type (traits, sasrec, ...)")] = None,
    heatmap: Annotated[Path | None, typer.Option(
        help="Also write an attention heatmap image, .png or .svg (attention models)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Products for a customer, or for many customers into a file, each with a reason."""
    positive("--k", k)
    excluded = checked_exclude(exclude)
    if (customer is None) == (customers is None):
        raise ValueError("give --customer ID, or --customers FILE|all with --out")
    if customers is not None:
        if out is None or heatmap is not None or as_json:
            raise ValueError("--customers writes a file: give --out FILE.parquet|.csv (and "
                             "neither --heatmap nor --json)")
        check_output_suffix(out, (".parquet", ".csv"), "--out")
    elif out is not None:
        raise ValueError("--out goes with --customers; one customer's products are printed")
    if heatmap is not None:
        check_output_suffix(heatmap, (".png", ".svg", ".pdf"), "--heatmap")
    fitted = load(model)
    if model_type is not None and fitted.key != model_type:
        raise ValueError(f"{model} holds a {fitted.key!r} model, not {model_type!r}")
    if customers is not None:
        assert out is not None
        write_batch(fitted, customers, out, k, excluded)
        return
    assert customer is not None
    if customer not in fitted.dataset_.customer_index():
        err_console.print(f"{customer} is not among the model's customers: answered as a new "
                          "visitor", highlight=False)
    rows = recommend_customer(fitted, customer, k, excluded)
    if heatmap is not None:
        from funnelprint.models.neural.base import SequentialRecommender
        from funnelprint.report.heatmap import attention_heatmap

        if not isinstance(fitted, SequentialRecommender):
            raise ValueError(f"--heatmap needs a sequential model; {model} holds "
                             f"{fitted.key!r}")
        attention_heatmap(fitted, customer, heatmap, k, excluded)
        err_console.print(f"heatmap → {heatmap}")
    if as_json:
        write_json(rows)
        return
    table = pl.DataFrame([{c: r[c] for c in ("rank", "product_id", "score", "reason")}
                          for r in rows],
                         schema={"rank": pl.Int64, "product_id": pl.String,
                                 "score": pl.Float64, "reason": pl.String})
    print_rows(table, False, f"{fitted.key} recommendations for {customer}")
    if not rows and excluded != "none":
        err_console.print(f"nothing to recommend: every product {customer} could be shown "
                          f"is excluded (--exclude {excluded}; --exclude none lists those too)")


def write_batch(fitted: Any, customers: str, out: Path, k: int, exclude: Any) -> None:
    """``--customers``: every listed customer's products into ``out``, block by block."""
    from funnelprint.models.batch import read_customers, write_recommendations

    ids = (fitted.dataset_.customer_ids.astype(str) if customers == "all"
           else read_customers(Path(customers)))
    with tqdm(total=ids.size, unit="customers", desc="recommending", file=sys.stderr,
              disable=not sys.stderr.isatty()) as bar:
        report = write_recommendations(fitted, ids, out, k, exclude, progress=bar.update)
    err_console.print(f"wrote {report.rows:,} recommendations for {report.customers:,} "
                      f"customers → {out}", highlight=False)
    if report.unknown_customers:
        err_console.print(f"{report.unknown_customers:,} of them are not among the model's "
                          "customers: answered as new visitors", highlight=False)


def register(app: typer.Typer) -> None:
    app.command()(recommend)
