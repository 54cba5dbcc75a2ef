"""What every command shares: consoles, logging, the event-reading options, output
helpers, and which exceptions count as the user's input being wrong."""

from __future__ import annotations

import json
import logging
import math
import os
import sys
from pathlib import Path
from typing import Annotated, Any, Literal, cast

import polars as pl
import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from funnelprint.artifacts import ArtifactError, check_target
from funnelprint.data import (
    ColumnMapping,
    EventDataError,
    EventLog,
    SessionConfig,
    TokenConfig,
)
from funnelprint.data.load import check_events_left
from funnelprint.data.pipeline import prepare_events

#: Failures caused by what the user handed us: one line, exit code 2.
KNOWN_ERRORS: tuple[type[BaseException], ...] = (EventDataError, ArtifactError, ValueError,
                                                 KeyError, OSError)

# Wide enough for the leaderboard when output goes to a file or a pipe.
console = Console(width=None if sys.stdout.isatty() else 140)
err_console = Console(stderr=True, soft_wrap=True)

ColumnsOpt = Annotated[
    str | None,
    typer.Option(help="Map fields to columns: customer=COL,timestamp=COL,action=COL,product=COL"
                 "[,session=COL,category=COL,price=COL,brand=COL,quantity=COL]"),
]
ActionsOpt = Annotated[
    str | None, typer.Option(help="Name raw actions: RAW=NAME,... (e.g. atc=add_to_cart,"
                             "5=favorite); a name outside the funnel is an action type of its "
                             "own")
]
ActionOpt = Annotated[
    str | None, typer.Option("--action", help="One action for every row, for a log without "
                             "an action column (e.g. view)")
]
MissingCustomerOpt = Annotated[
    str, typer.Option("--missing-customer", help="Rows without a customer id (empty, NA, "
                      "null...): 'drop' them (counted), or use their 'session' id as the "
                      "customer")
]
ProductColumnsOpt = Annotated[
    str | None, typer.Option(help="Map products-file fields to columns: product=COL"
                             "[,category=COL,brand=COL,price=COL]")
]
NamesOpt = Annotated[str | None, typer.Option(help="Column names of a headerless CSV: a,b,c,...")]
OnErrorOpt = Annotated[
    str, typer.Option("--on-error", help="'raise' stops at the first bad row; 'skip' drops and "
                      "counts bad rows")
]
GapOpt = Annotated[float, typer.Option(help="Minutes of inactivity that end a session")]
ModelOpt = Annotated[Path, typer.Option("--model", help="Model directory")]
CustomerOpt = Annotated[str, typer.Option("--customer", help="Customer id")]
KOpt = Annotated[int, typer.Option("--k", help="How many results")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON")]
EngineOpt = Annotated[str, typer.Option(
    help="local (this process) or spark (Apache Spark; pip install 'funnelprint\\[spark]')")]
SparkMasterOpt = Annotated[str | None, typer.Option(
    help="Spark master URL with --engine spark (default local[2]; spark://HOST:PORT for a "
         "standalone cluster)")]

MemoryOpt = Annotated[str | None, typer.Option(
    help="Memory budget, e.g. 6GB: read the file in parts into partitions of whole "
         "customers on disk and work one partition at a time (logs larger than memory)")]


def check_reader_options(parts: bool, **given: Any) -> None:
    """Refuse reader options that the chunked and Spark readers do not take yet, rather
    than ignore them (``parts``: ``--memory`` or ``--engine spark`` was given)."""
    if not parts:
        return
    unsupported = {"--action": given.get("action"), "--product-columns":
                   given.get("product_columns"),
                   "--missing-customer": None if given.get("missing_customer") in (None, "drop")
                   else given.get("missing_customer")}
    named = [flag for flag, value in unsupported.items() if value is not None]
    if named:
        raise ValueError(f"{named[0]} is read by the in-memory reader only; leave out "
                         "--memory and --engine spark to use it")


def check_engine(engine: str, spark_master: str | None, spark_only: dict[str, Any]) -> None:
    """Refuse an unknown engine, and Spark options without ``--engine spark``."""
    if engine not in ("local", "spark"):
        raise ValueError(f"--engine must be local or spark, not {engine!r}")
    if engine != "spark":
        given = [flag for flag, value in {"--spark-master": spark_master, **spark_only}.items()
                 if value is not None]
        if given:
            raise ValueError(f"{given[0]} applies with --engine spark")
    else:
        from funnelprint.spark.session import require_spark

        require_spark()


def setup_logging(verbose: bool) -> None:
    """Our log lines at WARNING (INFO with -v); libraries' warnings (convergence, numpy
    runtime warnings) only with -v, as log lines, never raw on stderr."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_time=False, show_path=False)],
        force=True,
    )
    logging.captureWarnings(True)
    logging.getLogger("py.warnings").setLevel(logging.WARNING if verbose else logging.ERROR)


def on_error_mode(value: str) -> Literal["raise", "skip"]:
    if value not in ("raise", "skip"):
        raise ValueError(f"--on-error must be 'raise' or 'skip', not {value!r}")
    return cast(Literal["raise", "skip"], value)


def positive(name: str, value: float | None, allow_zero: bool = False) -> None:
    """Refuse a negative (or zero) option value before any work starts."""
    if value is not None and not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, not {value}")
    if value is not None and (value < 0 or (value == 0 and not allow_zero)):
        raise ValueError(f"{name} must be {'0 or more' if allow_zero else 'positive'}, "
                         f"not {value:g}")


def load_log(
    events: Path, columns: str | None, actions: str | None, names: str | None, on_error: str,
    session_gap: float = 30.0, min_session_length: int = 1, max_session_events: int = 1000,
    max_events_per_minute: float = 60.0, rare_product_min_count: int = 0,
    action: str | None = None, missing_customer: str = "drop",
) -> EventLog:
    """Read an event file with the mapping flags every event-reading command shares. A file
    without rows is an error; so is one whose rows were all dropped (one line with the
    counts by reason and the first dropped value)."""
    positive("--session-gap", session_gap)
    positive("--min-session-length", min_session_length, allow_zero=True)
    positive("--max-session-events", max_session_events, allow_zero=True)
    positive("--max-events-per-minute", max_events_per_minute, allow_zero=True)
    positive("--rare-product-min-count", rare_product_min_count, allow_zero=True)
    mapping = ColumnMapping.from_options(columns, actions, names, action, missing_customer)
    sessions = SessionConfig(
        gap_minutes=session_gap,
        min_session_length=min_session_length,
        max_events_per_session=max_session_events or None,
        max_events_per_minute=max_events_per_minute or None,
    )
    log = prepare_events(events, mapping, on_error=on_error_mode(on_error), sessions=sessions,
                         tokens=TokenConfig(rare_product_min_count))
    check_events_left(log.load_report, log.events.height, log.dropped)
    return log


def write_json(value: Any) -> None:
    """Strict JSON: numpy scalars as plain numbers, NaN and infinities as null."""
    sys.stdout.write(json.dumps(_plain(value), default=_json_default, allow_nan=False) + "\n")


def _plain(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # a numpy scalar
        return _plain(value.item())
    return value


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return _plain(value.tolist())
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def print_rows(table: pl.DataFrame, as_json: bool, title: str) -> None:
    if as_json:
        write_json(table.to_dicts())
        return
    out = Table(title=title)
    for col in table.columns:
        out.add_column(col)
    for row in table.iter_rows():
        out.add_row(*[f"{v:.3f}" if isinstance(v, float) else str(v) for v in row])
    console.print(out)


def check_output_suffix(path: Path, allowed: tuple[str, ...], option: str) -> None:
    """Refuse an output name whose extension we cannot write, before any work starts."""
    if path.suffix.lower() not in allowed:
        raise ValueError(f"{option} {path}: the file name must end in "
                         f"{' or '.join(allowed)}")
    if path.exists() and path.is_dir():
        raise ValueError(f"{option} {path} is a directory")
    parent = path.resolve().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"{option} {path}: {parent} is a file, not a directory")
    if not os.access(parent, os.W_OK):
        raise ValueError(f"{option} {path}: {parent} is not writable")


def check_output_directory(out: Path) -> None:
    """Refuse an output we could not write, before the work starts."""
    if not str(out).strip() or out.resolve() == Path.cwd().resolve():
        raise ValueError(f"--out {str(out)!r} is empty or the current directory; give a new "
                         "directory name")
    check_target(out)
    parent = out.resolve().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"--out {out}: {parent} is a file, not a directory")
    if not os.access(parent, os.W_OK):
        raise ValueError(f"--out {out}: {parent} is not writable")
