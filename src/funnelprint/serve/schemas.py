"""Request and response schemas of the API (what its OpenAPI document shows)."""

from __future__ import annotations

from typing import Any, cast

from pydantic import BaseModel, Field

#: Longest client event id.
EVENT_ID_CHARS = 200

_EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "One event. Field names, action synonyms and timestamp forms as in event "
                   "files (user_id for customer_id, buy or pay for purchase, fav for favorite, "
                   "epoch or ISO-8601 times...). event_id, when given, makes a retried event "
                   "count once.",
    "properties": {
        "event_id": {"type": "string", "maxLength": EVENT_ID_CHARS},
        "customer_id": {"type": ["string", "integer"]},
        "timestamp": {"type": ["string", "number"]},
        "action": {"type": "string",
                   "examples": ["view", "add_to_cart", "remove_from_cart", "purchase"]},
        "product_id": {"type": ["string", "integer"]},
        "session_id": {"type": ["string", "integer"]},
        "category": {"type": "string"}, "brand": {"type": "string"},
        "price": {"type": "number"}, "quantity": {"type": "number"},
    },
    "additionalProperties": True,
}


class EventBatch(BaseModel):
    events: list[dict[str, Any]] = Field(
        description="The events, at most the server's batch limit (413 beyond)",
        json_schema_extra=cast(Any, {"items": _EVENT_SCHEMA}))


class Rejected(BaseModel):
    index: int
    code: str
    reason: str


class EventsResult(BaseModel):
    stored: int = Field(description="Events committed")
    duplicates: int = Field(description="Events whose event_id was already stored")
    unknown_products: int = Field(description="Valid events of products the default model "
                                              "does not know (stored all the same)")
    rejected: list[Rejected]


class TraitShare(BaseModel):
    name: str
    share: float


class Profile(BaseModel):
    customer_id: str
    traits: list[TraitShare]
    segment: int
    cold_start: bool
    n_events: int = Field(description="Stored events the profile rests on (beyond the "
                                      "model's fitted history of the customer)")
    fitted_events: int = Field(description="Events of the customer in the model's data")


class Item(BaseModel):
    product_id: str
    score: float
    reason: str


class Recommendations(BaseModel):
    customer_id: str
    model: str
    items: list[Item]


class Neighbour(BaseModel):
    customer_id: str
    similarity: float
    reason: str


class Similar(BaseModel):
    customer_id: str
    customers: list[Neighbour]


class ModelInfo(BaseModel):
    name: str
    key: str
    version: str
    path: str


class ReloadRequest(BaseModel):
    models: list[str] | None = Field(
        None, max_length=16, description="Model directories to serve instead (default: the "
                                         "current ones, read again)")


class ErrorBody(BaseModel):
    error: str
    detail: Any


ERRORS: dict[int | str, dict[str, Any]] = {
    s: {"model": ErrorBody} for s in (401, 403, 404, 413, 422)}
