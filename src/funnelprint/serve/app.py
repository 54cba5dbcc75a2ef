"""The HTTP application: what its routes share (:class:`Service`), the routes' table, and
the lifecycle (startup, SIGHUP reload, shutdown). The routes live in :mod:`.routes`, their
schemas in :mod:`.schemas`, the checks made before a route runs in :mod:`.guard` (keys of
the routes with a body, customer ids of paths) and :mod:`.limits` (body size and time,
metrics, logs), the JSON errors in :mod:`.errors`, the server processes in :mod:`.server`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import anyio
from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import Request
from threadpoolctl import threadpool_limits

from funnelprint.artifacts import ArtifactError, read_manifest
from funnelprint.models.serving import History, fitted_until, history_for
from funnelprint.serve import DEFAULT_STORE, SETTINGS_ENV
from funnelprint.serve import routes as r
from funnelprint.serve.auth import KeyRing, Scope, allows, load_keys
from funnelprint.serve.errors import ApiError, install_errors
from funnelprint.serve.guard import Guard
from funnelprint.serve.limits import Limits
from funnelprint.serve.logs import configure_logging
from funnelprint.serve.metrics import Metrics
from funnelprint.serve.models import Models, ModelSet
from funnelprint.serve.schemas import (
    ERRORS,
    EVENT_SCHEMA,
    EventsResult,
    ModelInfo,
    Profile,
    Recommendations,
    ReloadBody,
    Similar,
    Status,
    batch_body,
)
from funnelprint.serve.server import (
    RUN_DIR_ENV,
    announce_models,
    announced_models,
    configure,
    watch_parent,
)
from funnelprint.serve.store import Store, open_store

log = logging.getLogger("funnelprint.serve")

API_VERSION = "v1"


@dataclass(frozen=True)
class Settings:
    """How a service runs. ``max_body_bytes`` and ``max_batch`` bound a request (413
    beyond); ``history_limit``: most recent stored events read per customer; ``threads``:
    requests handled at once by each process; ``store_timeout_s``: longest store call (503
    beyond); ``header_timeout_s``, ``body_timeout_s``: time for a request's headers and
    body to arrive; ``keep_alive_s``: idle time before a kept-alive connection is closed;
    ``max_connections``: open connections per worker; ``writes_per_key``: batches one key
    may have running at once per worker (429 beyond)."""

    models: tuple[str, ...]
    store: str = DEFAULT_STORE
    api_keys_file: str | None = None
    insecure: bool = False
    max_body_bytes: int = 4 * 1024 * 1024
    max_batch: int = 5000
    history_limit: int = 1000
    threads: int = 2
    cors_origins: tuple[str, ...] = field(default_factory=tuple)
    store_timeout_s: float = 5.0
    header_timeout_s: float = 5.0
    body_timeout_s: float = 10.0
    keep_alive_s: float = 5.0
    max_connections: int = 1000
    writes_per_key: int = 4

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Settings:
        data = json.loads(text)
        data["models"] = tuple(data["models"])
        data["cors_origins"] = tuple(data.get("cors_origins") or ())
        return cls(**data)


# ---------------------------------------------------------------------- the service


class Service:
    """What the routes share: settings, keys, store, models and metrics."""

    def __init__(self, settings: Settings, models: Models | None = None,
                 store: Store | None = None) -> None:
        self.settings = settings
        self.keys = KeyRing(load_keys(Path(settings.api_keys_file)
                                      if settings.api_keys_file else None))
        if not self.keys and not settings.insecure:
            raise ValueError("no API key configured: set FUNNELPRINT_API_KEYS or "
                             "--api-keys FILE (KEY:read or KEY:write entries), or run with "
                             "--insecure")
        self.metrics = Metrics()
        self.store = store or open_store(settings.store, timeout_s=settings.store_timeout_s)
        self._models = models
        #: Where the workers of one server meet (None with a single process).
        self.run_dir = os.environ.get(RUN_DIR_ENV) or None
        #: /readyz's own threads: never queued behind requests waiting for a slow store.
        self.probe_executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="probe")
        self._announced: list[str] | None = None
        self._last_not_ready = ""

    @property
    def models(self) -> ModelSet:
        if self._models is None:
            raise ApiError(503, "not_ready", "models are still loading")
        return self._models.current

    def start(self) -> None:
        # One request is small: numerical libraries' own thread pools only add contention to
        # the requests already running side by side.
        threadpool_limits(limits=1)
        if "torch" in sys.modules:  # a neural model is loaded
            sys.modules["torch"].set_num_threads(1)
        self.store.migrate()
        if self._models is None:
            self._models = Models(announced_models(self.run_dir) or self.settings.models)
        self.metrics.set_models(self._models.current.versions())

    def stop(self) -> None:
        self.store.close()
        self.probe_executor.shutdown(wait=False, cancel_futures=True)

    def reload(self, paths: list[str] | None = None, everywhere: bool = False) -> ModelSet:
        """Load ``paths`` (default: the serving directories, read again) beside the
        serving models and swap. ``everywhere``: then tell the other workers of this
        server to serve the same (each loads and swaps on its own)."""
        assert self._models is not None
        try:
            fresh = self._models.reload(paths)
        except ArtifactError as exc:
            self.metrics.reloads.labels("failed").inc()
            log.warning("reload failed; the previous models keep serving: %s", exc)
            raise
        self.metrics.reloads.labels("ok").inc()
        self.metrics.set_models(fresh.versions())
        log.info("models reloaded: %s", ", ".join(f"{n} {v[1]}"
                                                   for n, v in fresh.versions().items()))
        if everywhere and self.run_dir:
            self._announced = list(self._models.paths)
            announce_models(self.run_dir, self._announced)
            os.kill(os.getppid(), signal.SIGHUP)  # the supervisor passes it to every worker
        return fresh

    def reload_on_signal(self) -> None:
        """SIGHUP: serve the models the server was told to (or the same directories, read
        again); the worker that announced them has already loaded them."""
        assert self._models is not None
        wanted = announced_models(self.run_dir)
        if wanted is not None and wanted == self._announced:
            self._announced = None
            if self._unchanged(wanted):
                return
        with contextlib.suppress(ArtifactError):  # logged; the serving models stay
            self.reload(wanted)

    def _unchanged(self, paths: list[str]) -> bool:
        assert self._models is not None
        serving = self._models.current
        try:
            versions = [str(read_manifest(p).get("checksum", ""))[:12] for p in paths]
        except (ArtifactError, OSError):
            return False
        return (paths == self._models.paths
                and versions == [s.version for s in serving.models.values()])

    def allowed_model_paths(self, paths: list[str]) -> list[str]:
        """``paths`` resolved (symbolic links followed), each a directory directly inside
        a folder of the directories the server started with; one refusal for every other
        case (elsewhere, missing, not a directory), so that the answer tells nothing of
        what exists on the machine."""
        roots = {os.path.dirname(os.path.realpath(p)) for p in self.settings.models}
        resolved = []
        for path in paths:
            real = os.path.realpath(path) if path and "\x00" not in path else ""
            if not (real and os.path.dirname(real) in roots and os.path.isdir(real)):
                raise ApiError(403, "path_not_allowed", "a reload may name only model "
                               "directories beside the ones the server was started with")
            resolved.append(real)
        return resolved

    def log_not_ready(self, exc: BaseException) -> None:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        if reason != self._last_not_ready:  # a probe every second would flood the log
            log.warning("not ready: %s", reason)
        self._last_not_ready = reason

    def history(self, model: Any, customer_id: str) -> History:
        """The customer's history for ``model``: its fitted one and the stored events after
        (empty for a visitor with neither: a cold start)."""
        events = self.store.customer_events(customer_id, self.settings.history_limit,
                                            after_us=fitted_until(model, customer_id))
        return history_for(model, customer_id, events)


# ---------------------------------------------------------------------- keys

_bearer = HTTPBearer(auto_error=False, description="API key (KEY:read or KEY:write)")


def _require(needed: Scope) -> Any:
    # A coroutine: FastAPI would run a plain function in the thread pool, one more hop (and
    # one more wait for a free thread) per request for a check of a few microseconds.
    async def check(request: Request,
                    credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)
                    ) -> None:
        service: Service = request.app.state.service
        if not service.keys:
            return
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise ApiError(401, "unauthorized", "missing API key (Authorization: Bearer KEY)")
        granted = service.keys.scope_of(credentials.credentials)
        if granted is None:
            raise ApiError(401, "unauthorized", "unknown API key")
        if not allows(granted, needed):
            raise ApiError(403, "forbidden", f"this key has {granted} scope; {needed} needed")
    return check


read_access = [Depends(_require("read"))]
write_access = [Depends(_require("write"))]


# ---------------------------------------------------------------------- the app


def create_app(settings: Settings, models: Models | None = None,
               store: Store | None = None) -> FastAPI:
    """The application. ``models`` and ``store`` are opened from ``settings`` when not
    given; the store is migrated and the models loaded at startup."""
    service = Service(settings, models, store)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Few threads per process: the handlers hold the GIL most of the time, and more
        # threads only add switching (measured: twice the CPU per request at 8 as at 2).
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.threads
        await asyncio.to_thread(service.start)
        _on_sighup(service)
        log.info("serving", extra={"fields": {
            "store": service.store.dialect, "models": service.models.versions()}})
        try:
            yield
        finally:
            service.stop()
            log.info("stopped; store closed")

    # No redirect to the slashed or unslashed path: it would be built from the Host header.
    app = FastAPI(title="funnelprint", version=API_VERSION, lifespan=lifespan,
                  redirect_slashes=False,
                  description="Funnel events in; customer trait profiles, similar customers "
                              "and recommendations with reasons out.")
    app.state.service = service
    v1 = f"/{API_VERSION}"
    customer = f"{v1}/customers/{{customer_id:path}}"  # an id may hold a slash
    app.post(f"{v1}/events", response_model=EventsResult, responses=ERRORS, tags=["events"],
             dependencies=write_access, openapi_extra=batch_body(settings.max_batch))(
        r.post_events)
    app.get(f"{customer}/profile", response_model=Profile, responses=ERRORS,
            tags=["customers"], dependencies=read_access)(r.get_profile)
    app.get(f"{customer}/recommendations", response_model=Recommendations, responses=ERRORS,
            tags=["customers"], dependencies=read_access)(r.get_recommendations)
    app.get(f"{customer}/similar", response_model=Similar, responses=ERRORS,
            tags=["customers"], dependencies=read_access)(r.get_similar)
    app.get(f"{v1}/traits", response_model=list[dict[str, Any]], responses=ERRORS,
            tags=["model"], dependencies=read_access)(r.get_traits)
    app.get(f"{v1}/segments", response_model=list[dict[str, Any]], responses=ERRORS,
            tags=["model"], dependencies=read_access)(r.get_segments)
    app.get(f"{v1}/models", response_model=list[ModelInfo], responses=ERRORS,
            tags=["model"], dependencies=read_access)(r.get_models)
    app.post(f"{v1}/admin/reload", response_model=list[ModelInfo], responses=ERRORS,
             tags=["admin"], dependencies=write_access, openapi_extra={"requestBody": {
                 "required": False, "content": {"application/json": {
                     "schema": {"$ref": "#/components/schemas/ReloadBody"}}}}})(r.post_reload)
    app.get("/healthz", response_model=Status, responses=ERRORS, tags=["operation"])(
        r.healthz)
    app.get("/readyz", response_model=Status, responses=ERRORS, tags=["operation"])(r.readyz)
    app.get("/metrics", tags=["operation"], response_class=Response, responses={
        **ERRORS, 200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                        "description": "Prometheus text"}}, dependencies=read_access)(
        r.metrics)
    install_errors(app)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins),
                           allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"])
    app.add_middleware(Guard, keys=service.keys, writes_per_key=settings.writes_per_key)
    app.add_middleware(Limits, limit=settings.max_body_bytes, metrics=service.metrics,
                       body_timeout_s=settings.body_timeout_s)
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, with the schemas of the bodies the routes read themselves."""
    if app.openapi_schema is None:
        document = get_openapi(title=app.title, version=app.version,
                               description=app.description, routes=app.routes)
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        schemas["Event"] = EVENT_SCHEMA
        schemas["ReloadBody"] = ReloadBody.model_json_schema()
        app.openapi_schema = document
    return app.openapi_schema


def _on_sighup(service: Service) -> None:
    """SIGHUP reloads the models (where the process handles signals in this thread)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal,
                                                                                 "SIGHUP"):
        return
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGHUP, lambda: loop.run_in_executor(
            None, service.reload_on_signal))
    except (NotImplementedError, RuntimeError, ValueError):
        return


def app_from_env() -> FastAPI:
    """The application of ``funnelprint serve`` worker processes, from the settings the
    command passed in ``FUNNELPRINT_SERVE_SETTINGS``; the worker stops when the command's
    process goes away."""
    configure_logging()
    settings = Settings.from_json(os.environ[SETTINGS_ENV])
    configure(settings.header_timeout_s, settings.max_connections)
    if os.environ.get(RUN_DIR_ENV):
        watch_parent(os.environ[RUN_DIR_ENV])
    return create_app(settings)


__all__ = ["DEFAULT_STORE", "SETTINGS_ENV", "Settings", "app_from_env", "configure_logging",
           "create_app"]
