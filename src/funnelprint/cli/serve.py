"""serve: the HTTP service over an event store; ingest: bulk-load an event file into it."""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path
from typing import Annotated

import typer

from funnelprint.cli.common import (
    ActionOpt,
    ActionsOpt,
    ColumnsOpt,
    MissingCustomerOpt,
    NamesOpt,
    OnErrorOpt,
    console,
    on_error_mode,
    positive,
)
from funnelprint.data import ColumnMapping
from funnelprint.data.load import check_events_left, read_events
from funnelprint.serve import DEFAULT_STORE, SETTINGS_ENV

StoreOpt = Annotated[str, typer.Option(
    "--store", help="sqlite:///PATH (default, a file in the current directory) or "
                    "postgresql://USER@HOST/DB")]


def serve(
    model: Annotated[list[Path], typer.Option(
        "--model", help="Model directory; repeat for several (the first is the default)")],
    store: StoreOpt = DEFAULT_STORE,
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes")] = 1,
    threads: Annotated[int, typer.Option(help="Requests each worker handles at once")] = 2,
    api_keys: Annotated[Path | None, typer.Option(
        "--api-keys", help="File of KEY:read or KEY:write entries, one a line (added to "
                           "FUNNELPRINT_API_KEYS)")] = None,
    insecure: Annotated[bool, typer.Option(
        "--insecure", help="Serve without API keys (only where nothing else can reach "
                           "the port)")] = False,
    max_body_bytes: Annotated[int, typer.Option(help="Largest request body")] = 4 * 2**20,
    max_batch: Annotated[int, typer.Option(help="Most events in one batch")] = 5000,
    cors_origin: Annotated[list[str] | None, typer.Option(
        "--cors-origin", help="Allow browser requests from this origin (repeatable); "
                              "none by default")] = None,
    store_timeout: Annotated[float, typer.Option(
        help="Seconds a store call may take before the request gets 503")] = 5.0,
    header_timeout: Annotated[float, typer.Option(
        help="Seconds a request's headers may take to arrive")] = 5.0,
    body_timeout: Annotated[float, typer.Option(
        help="Seconds a request's body may take to arrive")] = 10.0,
    keep_alive: Annotated[float, typer.Option(
        help="Seconds an idle kept-alive connection stays open")] = 5.0,
    max_connections: Annotated[int, typer.Option(
        help="Open connections per worker (more are closed at once)")] = 1000,
    writes_per_key: Annotated[int, typer.Option(
        help="Batches one key may have running at once per worker (429 beyond)")] = 4,
) -> None:
    """Serve profiles, similar customers and recommendations over HTTP; events posted to
    it are stored and used on the next request, without retraining."""
    _check_keys(api_keys, insecure)  # before the heavy imports: a refusal comes at once
    import uvicorn

    from funnelprint.serve.app import Settings, configure_logging, create_app
    from funnelprint.serve.models import Models
    from funnelprint.serve.server import (
        RUN_DIR_ENV,
        GuardedHttpTools,
        configure,
        make_run_dir,
        run_workers,
    )

    for name, value in (("--workers", workers), ("--threads", threads),
                        ("--max-body-bytes", max_body_bytes), ("--max-batch", max_batch),
                        ("--store-timeout", store_timeout), ("--header-timeout", header_timeout),
                        ("--body-timeout", body_timeout), ("--keep-alive", keep_alive),
                        ("--max-connections", max_connections),
                        ("--writes-per-key", writes_per_key)):
        positive(name, value)
    if not 0 < port < 65536:
        raise ValueError(f"--port must be 1 to 65535, not {port}")
    settings = Settings(models=tuple(str(m) for m in model), store=store,
                        api_keys_file=str(api_keys) if api_keys else None, insecure=insecure,
                        max_body_bytes=max_body_bytes, max_batch=max_batch, threads=threads,
                        cors_origins=tuple(cors_origin or ()), store_timeout_s=store_timeout,
                        header_timeout_s=header_timeout, body_timeout_s=body_timeout,
                        keep_alive_s=keep_alive, max_connections=max_connections,
                        writes_per_key=writes_per_key)
    models = Models(settings.models)  # a bad directory fails here, before anything listens
    _migrate(store)
    configure_logging(logging.INFO)
    # Connections are uvicorn's, with the header deadline and the connection cap it lacks;
    # shutdown waits for running requests at most as long as a store call may take.
    options: dict = {"host": host, "port": port, "log_config": None, "access_log": False,
                     "http": GuardedHttpTools, "timeout_keep_alive": keep_alive,
                     "timeout_graceful_shutdown": max(store_timeout * 2, 10)}
    if workers == 1:
        configure(header_timeout, max_connections)
        uvicorn.run(create_app(settings, models=models), **options)
        return
    del models
    os.environ[SETTINGS_ENV] = settings.to_json()
    os.environ.setdefault("POLARS_MAX_THREADS", "1")  # read when a worker imports polars
    run_dir = make_run_dir()
    os.environ[RUN_DIR_ENV] = os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(run_dir)
    try:
        config = uvicorn.Config("funnelprint.serve.app:app_from_env", factory=True,
                                workers=workers, **options)
        run_workers(config)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def _check_keys(path: Path | None, insecure: bool) -> None:
    from funnelprint.serve.auth import ApiKeyError, check_key_file, load_keys

    try:
        if path is not None:
            check_key_file(path)
        keys = load_keys(path)
    except ApiKeyError as exc:
        raise ValueError(str(exc)) from None
    if not keys and not insecure:
        raise ValueError("no API key configured: set FUNNELPRINT_API_KEYS or give --api-keys "
                         "FILE (KEY:read or KEY:write entries), or run with --insecure")


def _migrate(url: str) -> None:
    from funnelprint.serve.store import StoreError, open_store

    try:
        store = open_store(url)
        try:
            store.migrate()
        finally:
            store.close()
    except StoreError as exc:
        raise ValueError(str(exc)) from None


def ingest(
    events: Annotated[Path, typer.Argument(help="Event file (CSV, gzip'd CSV, Parquet, "
                                                "JSON lines)")],
    store: StoreOpt = DEFAULT_STORE,
    columns: ColumnsOpt = None,
    actions: ActionsOpt = None,
    names: NamesOpt = None,
    action: ActionOpt = None,
    missing_customer: MissingCustomerOpt = "drop",
    on_error: OnErrorOpt = "raise",
) -> None:
    """Bulk-load a historical event export into the store, validated as every command
    validates event files."""
    from funnelprint.serve.store import StoreError, open_store

    mapping = ColumnMapping.from_options(columns, actions, names, action, missing_customer)
    frame, report = read_events(events, mapping, on_error=on_error_mode(on_error))
    check_events_left(report, frame.height)
    start = time.perf_counter()
    try:
        target = open_store(store, timeout_s=600.0)
        try:
            target.migrate()
            stored = target.bulk_load(frame)
        finally:
            target.close()
    except StoreError as exc:
        raise ValueError(str(exc)) from None
    seconds = time.perf_counter() - start
    dropped = sum(report.dropped.values())
    console.print(f"stored {stored:,} events in {seconds:.1f} s "
                  f"({stored / max(seconds, 1e-9):,.0f} events/s)"
                  + (f"; {dropped:,} rows dropped" if dropped else ""), highlight=False)


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.command()(ingest)
