"""``funnelprint recommend``: products for a customer from any saved model, each with a
reason (models that are :class:`~funnelprint.models.Explainer` say which history steps or
traits drove it)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import polars as pl
import typer

from funnelprint.cli.common import (
    CustomerOpt,
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
from funnelprint.models.serving import recommend_with_reasons


def recommend(
    model: ModelOpt,
    customer: CustomerOpt,
    k: KOpt = 10,
    include_seen: Annotated[bool, typer.Option(
        help="Allow items already in the customer's history")] = False,
    model_type: Annotated[str | None, typer.Option(
        help="Check the directory holds this model type (traits, sasrec, ...)")] = None,
    heatmap: Annotated[Path | None, typer.Option(
        help="Also write an attention heatmap image, .png or .svg (attention models)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Products for a customer, each with a reason."""
    positive("--k", k)
    if heatmap is not None:
        check_output_suffix(heatmap, (".png", ".svg", ".pdf"), "--heatmap")
    fitted = load(model)
    if model_type is not None and fitted.key != model_type:
        raise ValueError(f"{model} holds a {fitted.key!r} model, not {model_type!r}")
    rows = recommend_with_reasons(fitted, customer, k, exclude_seen=not include_seen)
    if heatmap is not None:
        from funnelprint.models.neural.base import SequentialRecommender
        from funnelprint.report.heatmap import attention_heatmap

        if not isinstance(fitted, SequentialRecommender):
            raise ValueError(f"--heatmap needs a sequential model; {model} holds "
                             f"{fitted.key!r}")
        attention_heatmap(fitted, customer, heatmap, k, exclude_seen=not include_seen)
        err_console.print(f"heatmap → {heatmap}")
    if as_json:
        write_json(rows)
        return
    table = pl.DataFrame([{c: r[c] for c in ("rank", "product_id", "score", "reason")}
                          for r in rows],
                         schema={"rank": pl.Int64, "product_id": pl.String,
                                 "score": pl.Float64, "reason": pl.String})
    print_rows(table, False, f"{fitted.key} recommendations for {customer}")
    if not rows and not include_seen:
        err_console.print(f"nothing to recommend: every product {customer} could be shown "
                          "is in their history (--include-seen lists those too)")


def register(app: typer.Typer) -> None:
    app.command()(recommend)
