"""The versioned routes. Reading routes are plain functions run in the server's thread pool
(the store and the models block); each takes the model set current when it starts, so a
reload never changes the models under a request. The routes with a body read it as bytes
(the key was checked before, by :mod:`.guard`) and parse it in the thread pool, never on the
event loop that serves every other request."""

from __future__ import annotations

import asyncio
import math
import os
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import polars as pl
from fastapi import Path as PathParam
from fastapi import Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from funnelprint.artifacts import ArtifactError
from funnelprint.data.records import check_records
from funnelprint.models import serving
from funnelprint.models.serving import (
    DEFAULT_EXCLUDE,
    Exclude,
    answer,
    model_codes,
    profile_history,
)
from funnelprint.models.traits import TraitsRecommender
from funnelprint.profile.model import ColdStartError
from funnelprint.serve.batches import (
    ID_CHARS,
    BatchError,
    over_batch_limit,
    parse_batch,
    screen,
)
from funnelprint.serve.errors import ApiError
from funnelprint.serve.models import ModelSet
from funnelprint.serve.schemas import (
    EventsResult,
    Item,
    ModelInfo,
    Neighbour,
    Profile,
    Recommendations,
    Rejected,
    ReloadBody,
    Similar,
    TraitShare,
)

if TYPE_CHECKING:
    from funnelprint.serve.app import Service

CustomerId = Annotated[str, PathParam(min_length=1, max_length=ID_CHARS,
                                      pattern=r"^[^\x00]+$", description="Customer id")]
#: Body bytes after which the batch limit is checked on what has arrived so far.
EARLY_CHECK_BYTES = 64 * 1024
#: Largest body of a reload request.
RELOAD_BODY_BYTES = 64 * 1024
#: Seconds /readyz waits for the store.
READY_TIMEOUT_S = 1.0


def _service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


# ---------------------------------------------------------------------- events


async def post_events(request: Request) -> Any:
    """Store a batch: invalid events are reported by index and reason, valid ones stored;
    the answer comes after the transaction commits."""
    service = _service(request)
    limit = service.settings.max_batch
    body = bytearray()
    checked = False
    async for chunk in request.stream():
        body += chunk
        if not checked and len(body) >= EARLY_CHECK_BYTES:
            # The batch limit while the body arrives: a flood of small elements passes it
            # in its first kilobytes, and is refused without reading (or parsing) the rest.
            checked = True
            if await run_in_threadpool(over_batch_limit, bytes(body), limit):
                # The rest of the body is unread: the connection closes after the answer.
                raise ApiError(413, "batch_too_large", f"more than {limit} events in one "
                               "batch", {"Connection": "close"})
    return await run_in_threadpool(store_batch, service, bytes(body))


def store_batch(service: Service, body: bytes) -> EventsResult:
    """Parse, check and store one batch body (in a worker thread)."""
    try:
        elements = parse_batch(body, service.settings.max_batch)
    except BatchError as exc:
        raise ApiError(exc.status, exc.code, exc.detail) from None
    kept, refusals = screen(elements)
    rejected = [Rejected(index=r.index, code=r.code, reason=r.reason) for r in refusals]
    ids: list[Any] = []
    plain: list[dict[str, Any]] = []
    for i in kept:
        fields = dict(elements[i])
        ids.append(fields.pop("event_id", None))
        plain.append(fields)
    events = pl.DataFrame()
    if plain:
        checked = check_records(plain)
        # An id or text over its limit has one code in the API, whichever field it is.
        rejected += [Rejected(index=kept[p.index], reason=p.message,
                              code="too_long" if p.code.startswith("long_") else p.code)
                     for p in checked.problems]
        events, more = _refuse_ids(checked.events, ids)
        rejected += [Rejected(index=kept[i], code=code, reason=reason)
                     for i, code, reason in more]
    rejected.sort(key=lambda r: r.index)
    metrics = service.metrics
    for r in rejected:
        metrics.events_refused.labels(r.code).inc()
    if events.height == 0:
        return EventsResult(stored=0, duplicates=0, unknown_products=0, rejected=rejected)
    added = service.store.add(events.drop("index"), [ids[i] for i in events["index"]])
    known = model_codes(service.models.default.model)[0]
    unknown = sum(product not in known for product in events["product_id"].to_list())
    metrics.events_stored.inc(added.stored)
    metrics.events_duplicate.inc(added.duplicates)
    metrics.unknown_products.inc(unknown)
    return EventsResult(stored=added.stored, duplicates=added.duplicates,
                        unknown_products=unknown, rejected=rejected)


def _refuse_ids(events: pl.DataFrame, ids: list[Any]
                ) -> tuple[pl.DataFrame, list[tuple[int, str, str]]]:
    """Events whose event ids both stores keep; the others as (index, code, reason). (Ids of
    customers, products and sessions over their limit were refused by the reader's checks.)"""
    bad = [i for i in events["index"].to_list() if not _good_event_id(ids[i])]
    if not bad:
        return events, []
    reason = f"event_id: a string of 1 to {ID_CHARS} characters"
    return (events.filter(~pl.col("index").is_in(bad)),
            [(i, "bad_event_id", reason) for i in bad])


def _good_event_id(value: Any) -> bool:
    return value is None or (isinstance(value, str) and 0 < len(value) <= ID_CHARS)


# ---------------------------------------------------------------------- customers


def _trait_model(models: ModelSet) -> TraitsRecommender:
    if models.traits is None:
        raise ApiError(404, "no_trait_model", "no trait model is loaded (fit one with "
                       "funnelprint fit --model-type traits)")
    return models.traits


def get_profile(customer_id: CustomerId, request: Request) -> Any:
    """The customer's trait profile, refreshed from the stored events (no retraining)."""
    service = _service(request)
    model = _trait_model(service.models)
    history = service.history(model, customer_id)
    profiled = profile_history(model, history)
    names = [info["name"] for info in model.profile_.trait_info_]
    shares = profiled.traits[0]
    order = np.argsort(-shares, kind="stable")
    fitted = history.sequences.items.size - (history.new_events - history.unknown_events)
    guess, confidence = model.profile_.guesses(profiled)
    return Profile(customer_id=customer_id,
                   traits=[TraitShare(name=names[j], share=round(float(shares[j]), 4))
                           for j in order],
                   segment=int(profiled.segments[0]), cold_start=bool(profiled.cold[0]),
                   known_events=int(profiled.known[0]), guess=str(guess[0]) or None,
                   confidence=None if np.isnan(confidence[0]) else float(confidence[0]),
                   cold_start_share=round(model.profile_.cold_start_share(), 4),
                   n_events=history.new_events, fitted_events=int(fitted))


def get_recommendations(
    customer_id: CustomerId, request: Request,
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


def get_similar(customer_id: CustomerId, request: Request,
                k: Annotated[int, Query(ge=1, le=100)] = 10) -> Any:
    """Customers of the model's data with the closest trait mix."""
    service = _service(request)
    model = _trait_model(service.models)
    history = service.history(model, customer_id)
    profiles = profile_history(model, history)
    mix, known = profiles.traits[0], int(profiles.known[0])
    if profiles.cold[0]:  # a guess: two guesses would match at 1.000
        return Similar(customer_id=customer_id, customers=[], cold_start=True,
                       known_events=known, note=str(ColdStartError(
                           customer_id, known, model.profile_.min_known_tokens_)))
    try:  # the customer's row among the profile's customers, not the model dataset's
        own: int | None = model.profile_.customer_row(customer_id)
    except KeyError:
        own = None
    table = model.profile_.similar_to(mix, k, exclude=own)
    return Similar(customer_id=customer_id, known_events=known, customers=[
        Neighbour(customer_id=r["customer_id"], similarity=round(_finite(r["similarity"]), 4),
                  reason=r["reason"]) for r in table.iter_rows(named=True)])


# ---------------------------------------------------------------------- model


def get_traits(request: Request) -> Any:
    """Every trait of the trait model: name, kind and evidence."""
    return _plain(_trait_model(_service(request).models).profile_.trait_info_)


def get_segments(request: Request) -> Any:
    """Size and leading traits of each segment."""
    return _plain(_trait_model(_service(request).models).profile_.segment_summary())


def get_models(request: Request) -> list[ModelInfo]:
    """The models serving now (the first is the default)."""
    return model_infos(_service(request).models)


def model_infos(models: ModelSet) -> list[ModelInfo]:
    return [ModelInfo(name=s.name, key=s.key, version=s.version,
                      path=os.path.basename(os.path.normpath(s.path)))
            for s in models.models.values()]


async def post_reload(request: Request) -> Any:
    """Load the model directories again (or the ones given) beside the serving ones, then
    swap; if any fails to load, the serving ones stay and the answer says why. With
    several worker processes every worker swaps."""
    service = _service(request)
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > RELOAD_BODY_BYTES:
            raise ApiError(413, "body_too_large", f"a reload body holds at most "
                           f"{RELOAD_BODY_BYTES} bytes")
    return await run_in_threadpool(reload_from_body, service, body)


def reload_from_body(service: Service, body: bytes) -> list[ModelInfo]:
    paths: list[str] | None = None
    if body.strip():
        try:
            parsed = ReloadBody.model_validate_json(body)
        except ValueError as exc:
            errors: list[dict[str, Any]] = getattr(exc, "errors", list)()
            detail = [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg"))}
                      for e in errors[:20]] or str(exc)
            raise ApiError(422, "invalid_request", detail) from None
        paths = parsed.models
    if paths:
        paths = service.allowed_model_paths(paths)
    try:
        fresh = service.reload(paths, everywhere=True)
    except ArtifactError as exc:
        raise ApiError(422, "reload_failed", str(exc)) from None
    return model_infos(fresh)


# ---------------------------------------------------------------------- operation


async def healthz() -> dict[str, str]:
    """The process is up (answered on the event loop: never queued behind busy request
    threads)."""
    return {"status": "ok"}


async def readyz(request: Request) -> Any:
    """The store answers and the models are loaded, checked within a time limit of its
    own (a store that hangs makes this 503, not a hung probe)."""
    service = _service(request)
    loop = asyncio.get_running_loop()
    try:
        service.models  # noqa: B018  (raises while loading)
        await asyncio.wait_for(loop.run_in_executor(
            service.probe_executor, service.store.ping, READY_TIMEOUT_S),
            READY_TIMEOUT_S + 0.5)
    except Exception as exc:
        service.log_not_ready(exc)
        return JSONResponse({"status": "not ready"}, status_code=503,
                            headers={"Retry-After": "1"})
    return {"status": "ready"}


def metrics(request: Request) -> Response:
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


__all__ = ["get_models", "get_profile", "get_recommendations", "get_segments", "get_similar",
           "get_traits", "healthz", "metrics", "model_infos", "post_events", "post_reload",
           "readyz", "store_batch"]
