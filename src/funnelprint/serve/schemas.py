"""Request and response schemas of the API (what its OpenAPI document shows), the errors
every route may answer included."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from funnelprint.serve.batches import EVENT_CHARS, ID_CHARS, TEXT_CHARS

#: Longest client event id.
EVENT_ID_CHARS = ID_CHARS

_ID = {"type": ["string", "integer"], "maxLength": ID_CHARS}
EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "One event. Field names, action synonyms and timestamp forms as in event "
                   "files (user_id for customer_id, buy or pay for purchase, fav for favorite, "
                   "epoch or ISO-8601 times...). event_id, when given, makes a retried event "
                   f"count once. Ids hold at most {ID_CHARS} characters, other texts "
                   f"{TEXT_CHARS}, an event {EVENT_CHARS} characters of JSON.",
    "properties": {
        "event_id": {"type": "string", "minLength": 1, "maxLength": EVENT_ID_CHARS},
        "customer_id": _ID,
        "timestamp": {"type": ["string", "number"]},
        "action": {"type": "string",
                   "examples": ["view", "add_to_cart", "remove_from_cart", "purchase"]},
        "product_id": _ID, "session_id": _ID,
        "category": {"type": "string"}, "brand": {"type": "string"},
        "price": {"type": "number"}, "quantity": {"type": "number"},
    },
    "required": ["customer_id", "timestamp", "action", "product_id"],
    "additionalProperties": True,
}


def batch_body(max_batch: int) -> dict[str, Any]:
    """The OpenAPI request body of ``POST /v1/events`` for a server's batch limit. Any
    element is taken: one that is not a valid event is refused alone, by its index, in the
    answer's ``rejected`` (so the item schema is the event, or anything)."""
    batch = {
        "type": "object",
        "properties": {"events": {
            "type": "array", "maxItems": max_batch,
            "description": f"At most {max_batch} events (413 beyond). Each element should "
                           "be an Event; any other is refused alone, with its index and "
                           "reason, and the valid ones are stored.",
            "items": {"anyOf": [{"$ref": "#/components/schemas/Event"}, {}]}}},
        "required": ["events"],
        "additionalProperties": False,
    }
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": batch}}}}


class ReloadBody(BaseModel):
    """What ``POST /v1/admin/reload`` reads (an empty body: the serving directories)."""

    models: list[str] | None = Field(
        None, max_length=16, description="Model directories to serve instead (default: the "
                                         "current ones, read again)")

    model_config = {"extra": "forbid"}


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
    known_events: int = Field(0, description="Events of products the model knows: the "
                                             "evidence the profile rests on")
    guess: str | None = Field(None, description="For a cold-start customer, what the profile "
                                                "is: 'segment S' (the segment nearest to "
                                                "the few known events) or 'everyone'")
    confidence: float | None = Field(None, description="For a cold-start customer, how far "
                                                       "to trust the guess (0 to 1)")
    cold_start_share: float = Field(0.0, description="Share of the model's customers whose "
                                                     "profile is a cold-start guess")
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
    path: str = Field(description="The model directory's name (not where it lies)")


class ErrorBody(BaseModel):
    error: str = Field(description="A stable code")
    detail: Any = Field(description="What was wrong, for a person")


class Status(BaseModel):
    status: str


_ERROR_TEXT = {
    400: "Not HTTP or not JSON",
    401: "No API key, or an unknown one",
    403: "A key without the scope needed, or a directory a reload may not name",
    404: "No such route, model or trait model",
    405: "Method not allowed on this route (the Allow header lists those that are)",
    408: "The request's headers or body did not arrive in time",
    413: "A body or batch over the limit",
    422: "A request that breaks the API's rules (the detail says which)",
    429: "Too many writes running for this key at once; retry after Retry-After seconds",
    500: "An unexpected error (logged)",
    503: "The event store did not answer, or the models are loading; retry after "
         "Retry-After seconds",
}
#: Every error answer a route may give, JSON ``{"error", "detail"}``.
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text} for code, text in _ERROR_TEXT.items()}
