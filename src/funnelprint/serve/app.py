"""The HTTP application: what its routes share (:class:`Service`), the versioned routes,
API-key checks, JSON errors and the lifecycle (startup, SIGHUP reload, shutdown). Schemas
live in :mod:`.schemas`, the per-request limits, metrics and logs in :mod:`.limits`.

Handlers are plain functions run in the server's thread pool (the store and the models
block); each takes the model set current when it starts, so a reload never changes the
models under a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import signal
import sys
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any

import anyio
import numpy as np
import polars as pl
from fastapi import Depends, FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException
from threadpoolctl import threadpool_limits

from funnelprint.artifacts import ArtifactError
from funnelprint.data.records import check_records
from funnelprint.models import serving
from funnelprint.models.serving import (
    DEFAULT_EXCLUDE,
    Exclude,
    History,
    answer,
    fitted_until,
    history_for,
    model_codes,
    profile_history,
)
from funnelprint.models.traits import TraitsRecommender
from funnelprint.serve import DEFAULT_STORE, SETTINGS_ENV
from funnelprint.serve.auth import KeyRing, Scope, allows, load_keys
from funnelprint.serve.limits import Limits
from funnelprint.serve.logs import configure_logging
from funnelprint.serve.metrics import Metrics
from funnelprint.serve.models import Models, ModelSet
from funnelprint.serve.schemas import (
    ERRORS,
    EVENT_ID_CHARS,
    EventBatch,
    EventsResult,
    Item,
    ModelInfo,
    Neighbour,
    Profile,
    Recommendations,
    Rejected,
    ReloadRequest,
    Similar,
    TraitShare,
)
from funnelprint.serve.store import STORE_FAILURES, Store, open_store

log = logging.getLogger("funnelprint.serve")

API_VERSION = "v1"
_ID = Annotated[str, PathParam(min_length=1, max_length=200, pattern=r"^[^\x00]+$",
                               description="Customer id")]


@dataclass(frozen=True)
class Settings:
    """How a service runs. ``max_body_bytes`` and ``max_batch`` bound a request (413
    beyond); ``history_limit``: most recent stored events read per customer; ``threads``:
    requests handled at once by each process."""

    models: tuple[str, ...]
    store: str = DEFAULT_STORE
    api_keys_file: str | None = None
    insecure: bool = False
    max_body_bytes: int = 4 * 1024 * 1024
    max_batch: int = 5000
    history_limit: int = 1000
    threads: int = 2
    cors_origins: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Settings:
        data = json.loads(text)
        data["models"] = tuple(data["models"])
        data["cors_origins"] = tuple(data.get("cors_origins") or ())
        return cls(**data)


class ApiError(Exception):
    """An answer other than success: HTTP status, a stable code and a message."""

    def __init__(self, status: int, code: str, detail: Any) -> None:
        super().__init__(str(detail))
        self.status, self.code, self.detail = status, code, detail


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
        self.store = store or open_store(settings.store)
        self._models = models

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
            self._models = Models(self.settings.models)
        self.metrics.set_models(self._models.current.versions())

    def reload(self, paths: list[str] | None = None) -> ModelSet:
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
        return fresh

    def history(self, model: Any, customer_id: str) -> History:
        """The customer's history for ``model``: its fitted one and the stored events after
        (empty for a visitor with neither: a cold start)."""
        events = self.store.customer_events(customer_id, self.settings.history_limit,
                                            after_us=fitted_until(model, customer_id))
        return history_for(model, customer_id, events)


_bearer = HTTPBearer(auto_error=False, description="API key (KEY:read or KEY:write)")


def _require(needed: Scope) -> Callable[..., None]:
    def check(request: Request,
              credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> None:
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


read_access = Depends(_require("read"))
write_access = Depends(_require("write"))


def _service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


# ---------------------------------------------------------------------- routes


def post_events(batch: EventBatch, request: Request, _: None = write_access) -> Any:
    """Store a batch: invalid events are reported by index and reason, valid ones stored;
    the answer comes after the transaction commits."""
    service = _service(request)
    records = batch.events
    if len(records) > service.settings.max_batch:
        raise ApiError(413, "batch_too_large", f"{len(records)} events in one batch; at most "
                       f"{service.settings.max_batch}")
    ids: list[Any] = []
    plain: list[dict[str, Any]] = []
    for record in records:
        body = dict(record)
        ids.append(body.pop("event_id", None))
        plain.append(body)
    checked = check_records(plain)
    rejected = [Rejected(index=p.index, code=p.code, reason=p.message)
                for p in checked.problems]
    bad_ids = {i for i, e in enumerate(ids) if e is not None and not _good_event_id(e)}
    events = checked.events
    if bad_ids:
        flagged = [i for i in events["index"].to_list() if i in bad_ids]
        rejected += [Rejected(index=i, code="bad_event_id", reason=f"event_id: a string of "
                              f"1 to {EVENT_ID_CHARS} characters") for i in flagged]
        events = events.filter(~pl.col("index").is_in(flagged))
        rejected.sort(key=lambda r: r.index)
    for r in rejected:
        service.metrics.events_refused.labels(r.code).inc()
    if records and events.height == 0:
        raise ApiError(422, "no_valid_event", [r.model_dump() for r in rejected])
    added = service.store.add(events.drop("index"), [ids[i] for i in events["index"]])
    known = model_codes(service.models.default.model)[0]
    unknown = sum(product not in known for product in events["product_id"].to_list())
    service.metrics.events_stored.inc(added.stored)
    service.metrics.events_duplicate.inc(added.duplicates)
    service.metrics.unknown_products.inc(unknown)
    return EventsResult(stored=added.stored, duplicates=added.duplicates,
                        unknown_products=unknown, rejected=rejected)


def _good_event_id(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= EVENT_ID_CHARS and "\x00" not in value


def _trait_model(models: ModelSet) -> TraitsRecommender:
    if models.traits is None:
        raise ApiError(404, "no_trait_model", "no trait model is loaded (fit one with "
                       "funnelprint fit --model-type traits)")
    return models.traits


def get_profile(customer_id: _ID, request: Request, _: None = read_access) -> Any:
    """The customer's trait profile, refreshed from the stored events (no retraining)."""
    service = _service(request)
    model = _trait_model(service.models)
    history = service.history(model, customer_id)
    profiled = profile_history(model, history)
    names = [info["name"] for info in model.profile_.trait_info_]
    shares = profiled.traits[0]
    order = np.argsort(-shares, kind="stable")
    fitted = history.sequences.items.size - (history.new_events - history.unknown_events)
    return Profile(customer_id=customer_id,
                   traits=[TraitShare(name=names[j], share=round(float(shares[j]), 4))
                           for j in order],
                   segment=int(profiled.segments[0]), cold_start=bool(profiled.cold[0]),
                   n_events=history.new_events, fitted_events=int(fitted))


def get_recommendations(
    customer_id: _ID, request: Request, _: None = read_access,
    k: Annotated[int, Query(ge=1, le=100)] = 10,
    model: Annotated[str | None, Query(max_length=100, description="Model name (default: "
                                                                   "the first loaded)")] = None,
    exclude: Annotated[Exclude, Query(description="History products left out: seen (every "
                                                  "one), purchased or none")]
    = DEFAULT_EXCLUDE,
) -> Any:
    """Top-k products with a reason each, from the customer's fitted and stored events."""
    service = _service(request)
    try:
        served = service.models.get(model)
    except KeyError as exc:
        raise ApiError(404, "unknown_model", exc.args[0]) from None
    history = service.history(served.model, customer_id)
    asked = serving.Request.of_history(served.model, customer_id, history)
    items = answer(served.model, asked, k, exclude).lists()[0]
    return Recommendations(customer_id=customer_id, model=served.name, items=[
        Item(product_id=i["product_id"], score=_finite(i["score"]), reason=i["reason"])
        for i in items])


def get_similar(customer_id: _ID, request: Request, _: None = read_access,
                k: Annotated[int, Query(ge=1, le=100)] = 10) -> Any:
    """Customers of the model's data with the closest trait mix."""
    service = _service(request)
    model = _trait_model(service.models)
    history = service.history(model, customer_id)
    mix = profile_history(model, history).traits[0]
    try:  # the customer's row among the profile's customers, not the model dataset's
        own: int | None = model.profile_.customer_row(customer_id)
    except KeyError:
        own = None
    table = model.profile_.similar_to(mix, k, exclude=own)
    return Similar(customer_id=customer_id, customers=[
        Neighbour(customer_id=r["customer_id"], similarity=round(_finite(r["similarity"]), 4),
                  reason=r["reason"]) for r in table.iter_rows(named=True)])


def get_traits(request: Request, _: None = read_access) -> Any:
    """Every trait of the trait model: name, kind and evidence."""
    return _plain(_trait_model(_service(request).models).profile_.trait_info_)


def get_segments(request: Request, _: None = read_access) -> Any:
    """Size and leading traits of each segment."""
    return _plain(_trait_model(_service(request).models).profile_.segment_summary())


def get_models(request: Request, _: None = read_access) -> list[ModelInfo]:
    """The models serving now (the first is the default)."""
    return [ModelInfo(name=s.name, key=s.key, version=s.version, path=s.path)
            for s in _service(request).models.models.values()]


def post_reload(request: Request, body: ReloadRequest | None = None,
                _: None = write_access) -> list[ModelInfo]:
    """Load the model directories again (or the ones given) beside the serving ones, then
    swap; if any fails to load, the serving ones stay and the answer says why."""
    service = _service(request)
    paths = body.models if body is not None else None
    if paths:
        _check_model_paths(paths, service.settings.models)
    try:
        fresh = service.reload(paths)
    except ArtifactError as exc:
        raise ApiError(422, "reload_failed", str(exc)) from None
    return [ModelInfo(name=s.name, key=s.key, version=s.version, path=s.path)
            for s in fresh.models.values()]


def _check_model_paths(paths: list[str], configured: tuple[str, ...]) -> None:
    """A reload may name model directories only inside the folders of the ones the server
    was started with: a write key is for posting events, not for making the server read
    any path on its machine."""
    roots = {os.path.realpath(os.path.dirname(os.path.abspath(p))) for p in configured}
    for path in paths:
        parent = os.path.realpath(os.path.dirname(os.path.abspath(path)))
        if parent not in roots:
            raise ApiError(403, "path_not_allowed", "a reload may name model directories only "
                           "beside the ones the server was started with")


async def healthz() -> dict[str, str]:
    """The process is up (answered on the event loop: never queued behind busy request
    threads)."""
    return {"status": "ok"}


def readyz(request: Request) -> Any:
    """The store answers and the models are loaded."""
    service = _service(request)
    try:
        service.store.ping()
        service.models  # noqa: B018  (raises while loading)
    except Exception as exc:
        log.warning("not ready: %s", exc)
        return JSONResponse({"status": "not ready"}, status_code=503)
    return {"status": "ready"}


def metrics(request: Request, _: None = read_access) -> Response:
    """Prometheus metrics."""
    body, content_type = _service(request).metrics.render()
    return Response(body, media_type=content_type)


def _finite(value: Any) -> float:
    number = float(value)
    return number if math.isfinite(number) else 0.0


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return _plain(value.item())
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _error(status: int, code: str, detail: Any, headers: dict[str, str] | None = None
           ) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status_code=status, headers=headers)


def _install_errors(app: FastAPI) -> None:
    async def api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return _error(exc.status, exc.code, exc.detail, headers)

    async def invalid(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        detail = [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))}
                  for e in exc.errors()[:20]]
        return _error(422, "invalid_request", detail)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = {404: "not_found", 405: "method_not_allowed",
                413: "body_too_large"}.get(exc.status_code, "http_error")
        return _error(exc.status_code, code, str(exc.detail))

    async def store_down(request: Request, exc: Exception) -> JSONResponse:
        log.error("store unavailable: %s", " ".join(str(exc).split()))
        return _error(503, "store_unavailable", "the event store did not answer; retry",
                      {"Retry-After": "1"})

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error", exc_info=exc)
        return _error(500, "internal_error", "the server could not answer this request")

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(StarletteHTTPException, http_error)
    for failure in STORE_FAILURES:
        app.add_exception_handler(failure, store_down)
    app.add_exception_handler(Exception, unexpected)


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
            service.store.close()
            log.info("stopped; store closed")

    app = FastAPI(title="funnelprint", version=API_VERSION, lifespan=lifespan,
                  description="Funnel events in; customer trait profiles, similar customers "
                              "and recommendations with reasons out.")
    app.state.service = service
    v1 = f"/{API_VERSION}"
    app.post(f"{v1}/events", response_model=EventsResult, responses=ERRORS,
             tags=["events"])(post_events)
    app.get(f"{v1}/customers/{{customer_id}}/profile", response_model=Profile,
            responses=ERRORS, tags=["customers"])(get_profile)
    app.get(f"{v1}/customers/{{customer_id}}/recommendations", response_model=Recommendations,
            responses=ERRORS, tags=["customers"])(get_recommendations)
    app.get(f"{v1}/customers/{{customer_id}}/similar", response_model=Similar,
            responses=ERRORS, tags=["customers"])(get_similar)
    app.get(f"{v1}/traits", responses=ERRORS, tags=["model"])(get_traits)
    app.get(f"{v1}/segments", responses=ERRORS, tags=["model"])(get_segments)
    app.get(f"{v1}/models", response_model=list[ModelInfo], responses=ERRORS,
            tags=["model"])(get_models)
    app.post(f"{v1}/admin/reload", response_model=list[ModelInfo], responses=ERRORS,
             tags=["admin"])(post_reload)
    app.get("/healthz", tags=["operation"])(healthz)
    app.get("/readyz", tags=["operation"])(readyz)
    app.get("/metrics", tags=["operation"], response_class=Response,
            responses=ERRORS)(metrics)
    _install_errors(app)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins),
                           allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"])
    app.add_middleware(Limits, limit=settings.max_body_bytes, metrics=service.metrics)
    return app


def _on_sighup(service: Service) -> None:
    """SIGHUP reloads the models (where the process handles signals in this thread)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal,
                                                                                 "SIGHUP"):
        return

    def reload_quietly() -> None:
        with contextlib.suppress(ArtifactError):  # logged; the serving models stay
            service.reload()

    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGHUP, lambda: loop.run_in_executor(None,
                                                                             reload_quietly))
    except (NotImplementedError, RuntimeError, ValueError):
        return


def app_from_env() -> FastAPI:
    """The application of ``funnelprint serve`` worker processes, from the settings the
    command passed in ``FUNNELPRINT_SERVE_SETTINGS``."""
    configure_logging()
    return create_app(Settings.from_json(os.environ[SETTINGS_ENV]))


__all__ = ["DEFAULT_STORE", "SETTINGS_ENV", "Settings", "app_from_env", "configure_logging",
           "create_app"]
