"""How any fitted model answers customers, the same way for the command line, batch scoring,
the report and the HTTP service.

A :class:`Request` is built once: each customer's history in the model's codes (what the
model was fitted on, followed by newer events it never saw) and whatever the model solves
from a history before scoring it (the trait model's profiles), solved once. :func:`answer`
is the one function that turns a request into ranked products with a reason each. Nothing
is cached on the model: the history is an argument, as in ``recommend(user, history)``.

Exclusions are the same everywhere: ``seen`` (the default: products the customer has not
touched yet), ``purchased`` (everything but what they bought) or ``none``.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import polars as pl

from funnelprint.data.dataset import Dataset
from funnelprint.data.pipeline import prepare_frame
from funnelprint.data.sequences import Sequences, session_ids
from funnelprint.data.sessions import SessionConfig
from funnelprint.models.contract import Explainer, Prepares, Reason, Recommender
from funnelprint.models.ranking import batch_rows, exclude_items, top_k

Exclude = Literal["seen", "purchased", "none"]
EXCLUDES: tuple[Exclude, ...] = ("seen", "purchased", "none")
#: What every answer leaves out unless told otherwise.
DEFAULT_EXCLUDE: Exclude = "seen"


def checked_exclude(value: str) -> Exclude:
    if value not in EXCLUDES:
        raise ValueError(f"exclude must be one of {', '.join(EXCLUDES)}, not {value!r}")
    return value


# ---------------------------------------------------------------------- histories


@dataclass(frozen=True)
class History:
    """One customer's history in a fitted model's codes (a one-row :class:`Sequences`).

    ``known_row``: the customer's row in the model's dataset, or None for a customer it
    never saw; ``new_events``: events from outside the model used; ``unknown_events``: those
    skipped for a product or action the model does not know."""

    sequences: Sequences
    known_row: int | None
    new_events: int
    unknown_events: int


def fitted_until(model: Recommender[Any], customer_id: str) -> int | None:
    """Time (microseconds) of the customer's last event in the model's data; None for a
    customer it does not know (events after it are what :func:`history_for` adds)."""
    row = model.dataset_.customer_index().get(str(customer_id))
    if row is None:
        return None
    times = model.dataset_.sequences.select(np.array([row])).times
    return int(times.max()) if times.size else None


def history_for(model: Recommender[Any], customer_id: str,
                events: pl.DataFrame | None = None) -> History:
    """A customer's history: what the model was fitted on (when it knows the customer)
    followed by ``events`` (a canonical event table of that customer, e.g. from a store)
    later than its last fitted event. A customer with neither has an empty history: models
    answer it as a new visitor (the trait model with its new-customer prior)."""
    row = model.dataset_.customer_index().get(str(customer_id))
    base = None if row is None else model.dataset_.sequences.select(np.array([row]))
    if events is not None and events.height and base is not None and base.times.size:
        later = events["timestamp"].dt.epoch("us").to_numpy() > int(base.times.max())
        events = events.filter(pl.Series(later)) if not later.all() else events
    if events is None or events.height == 0:
        return History(base if base is not None else _no_events(), row, 0, 0)
    new, unknown = events_to_sequences(model, events)
    return History(new if base is None else _concat(base, new), row, events.height, unknown)


def _no_events() -> Sequences:
    return Sequences(np.zeros(2, dtype=np.int64), np.zeros(0, dtype=np.int32),
                     np.zeros(0, dtype=np.int8), np.zeros(0, dtype=np.int64),
                     np.zeros(0, dtype=np.int64))


def events_to_sequences(model: Recommender[Any], events: pl.DataFrame
                        ) -> tuple[Sequences, int]:
    """One customer's canonical events as a one-row history in the model's item and action
    codes, sessions cut with the model's gap; events of products or actions the model does
    not know are skipped and counted.

    A model that reads every event, given events without session ids, takes a direct path
    (the sessions and codes of the event pipeline, without building tables for a few
    events); any other goes through :func:`pipeline_sequences`."""
    gap = float(getattr(model.config, "session_gap_minutes", 30.0))
    direct = "every_event" in model.reads and (
        "session_id" not in events.columns or events["session_id"].null_count() == events.height)
    if not direct:
        return pipeline_sequences(model, events, gap)
    order = np.argsort(events["timestamp"].dt.epoch("us").to_numpy(), kind="stable")
    times = events["timestamp"].dt.epoch("us").to_numpy()[order].astype(np.int64)
    items_by_id, actions_by_name = model_codes(model)
    products, actions = events["product_id"].to_list(), events["action"].to_list()
    items = np.array([items_by_id.get(products[i], -1) for i in order], dtype=np.int64)
    codes = np.array([actions_by_name.get(actions[i], -1) for i in order], dtype=np.int64)
    every = Sequences(np.array([0, times.size], dtype=np.int64), np.maximum(items, 0),
                      np.maximum(codes, 0).astype(np.int8), times)
    sessions = session_ids(every, int(gap * 60_000_000))  # on every event, as the pipeline
    keep = (items >= 0) & (codes >= 0)
    seq = Sequences(np.array([0, int(keep.sum())], dtype=np.int64), items[keep].astype(np.int32),
                    codes[keep].astype(np.int8), times[keep], sessions[keep].astype(np.int64))
    return seq, int((~keep).sum())


_CODES: weakref.WeakKeyDictionary[Any, tuple[dict[str, int], dict[str, int]]] = \
    weakref.WeakKeyDictionary()


def model_codes(model: Recommender[Any]) -> tuple[dict[str, int], dict[str, int]]:
    """The model's item index by product id and action index by name (built once per
    model, kept beside it rather than on it)."""
    found = _CODES.get(model)
    if found is None:
        found = ({str(p): i for i, p in enumerate(model.dataset_.item_ids)},
                 {a: i for i, a in enumerate(model.dataset_.action_names)})
        _CODES[model] = found
    return found


def pipeline_sequences(model: Recommender[Any], events: pl.DataFrame, gap_minutes: float
                       ) -> tuple[Sequences, int]:
    """:func:`events_to_sequences` through the event pipeline (sessionize, build a dataset,
    align it on the model's items)."""
    sessions = SessionConfig(gap_minutes=gap_minutes, max_events_per_session=None,
                             max_events_per_minute=None)
    log = prepare_frame(events, sessions=sessions)
    collapse = "every_event" not in model.reads
    aligned = Dataset.from_events(log, collapse_repeats=collapse).aligned_to(
        model.dataset_.item_ids)
    seq = aligned.dataset.sequences
    _, actions_by_name = model_codes(model)
    codes = np.array([actions_by_name.get(a, -1) for a in aligned.dataset.action_names],
                     dtype=np.int64)
    mapped = codes[seq.actions.astype(np.int64)] if seq.actions.size else seq.actions
    keep = mapped >= 0
    seq = seq.mask(keep)
    seq.actions = mapped[keep].astype(np.int8)
    return seq, aligned.unknown_events + int((~keep).sum())


def _concat(first: Sequences, second: Sequences) -> Sequences:
    """Two one-row histories, one after the other (sessions kept apart)."""
    sessions = None
    if first.sessions is not None and second.sessions is not None:
        shift = int(first.sessions.max()) + 1 if first.sessions.size else 0
        sessions = np.concatenate([first.sessions, second.sessions + shift])
    n = first.items.size + second.items.size
    return Sequences(np.array([0, n], dtype=np.int64),
                     np.concatenate([first.items, second.items]).astype(np.int32),
                     np.concatenate([first.actions, second.actions]).astype(np.int8),
                     np.concatenate([first.times, second.times]).astype(np.int64), sessions)


# ---------------------------------------------------------------------- requests


@dataclass(frozen=True)
class Request:
    """Customers to answer, built once: one history row per customer in the model's codes,
    the model's dataset row of each (-1: a customer it never saw), and ``prepared``, what
    the model solves from the histories before scoring them (a
    :class:`~funnelprint.models.contract.Prepares` model's; None for others)."""

    customer_ids: np.ndarray
    history: Sequences
    known_rows: np.ndarray
    prepared: Any = None

    @classmethod
    def build(cls, model: Recommender[Any], customer_ids: np.ndarray, history: Sequences,
              known_rows: np.ndarray) -> Request:
        prepared = model.prepare_rows(history) if isinstance(model, Prepares) else None
        return cls(np.asarray(customer_ids).astype(str), history,
                   np.asarray(known_rows, dtype=np.int64), prepared)

    @classmethod
    def of_history(cls, model: Recommender[Any], customer_id: str, history: History
                   ) -> Request:
        """One customer's request from :func:`history_for`."""
        row = -1 if history.known_row is None else history.known_row
        return cls.build(model, np.array([customer_id]), history.sequences, np.array([row]))

    @classmethod
    def of_customer(cls, model: Recommender[Any], customer_id: str,
                    events: pl.DataFrame | None = None) -> Request:
        """One customer's request: their fitted history, followed by ``events``."""
        return cls.of_history(model, customer_id, history_for(model, customer_id, events))

    @classmethod
    def of_known(cls, model: Recommender[Any], customer_ids: Any) -> Request:
        """The fitted histories of several customers (one the model never saw has an empty
        history: answered as a new visitor)."""
        ids = np.asarray(customer_ids).astype(str)
        index = model.dataset_.customer_index()
        rows = np.array([index.get(c, -1) for c in ids.tolist()], dtype=np.int64)
        history = model.dataset_.sequences.select(np.maximum(rows, 0))
        if (rows < 0).any():
            history = history.mask(np.repeat(rows >= 0, history.lengths))
        return cls.build(model, ids, history, rows)

    @property
    def n_rows(self) -> int:
        return self.customer_ids.size


# ---------------------------------------------------------------------- answers


@dataclass(frozen=True)
class Answer:
    """Ranked products per customer: ``items`` (dataset item indices, -1 padding) and
    ``scores`` of shape (customers, k), and a reason per listed item."""

    customer_ids: np.ndarray
    items: np.ndarray
    scores: np.ndarray
    reasons: list[list[Reason]]
    item_ids: np.ndarray

    def lists(self) -> list[list[dict[str, Any]]]:
        """Per customer: ``rank, product_id, score, reason, evidence`` of each product."""
        out = []
        for items, scores, reasons in zip(self.items, self.scores, self.reasons, strict=True):
            listed = items >= 0
            out.append([{"rank": rank, "product_id": str(self.item_ids[item]),
                         "score": round(float(score), 4), "reason": reason["text"],
                         "evidence": reason["evidence"]}
                        for rank, (item, score, reason) in enumerate(
                            zip(items[listed], scores[listed], reasons, strict=True), start=1)])
        return out

    def frame(self) -> pl.DataFrame:
        """One row per listed product: ``customer_id, rank, product_id, score, reason``."""
        listed = self.items >= 0
        rows, ranks = np.nonzero(listed)
        return pl.DataFrame({
            "customer_id": pl.Series(self.customer_ids[rows], dtype=pl.String),
            "rank": pl.Series(ranks + 1, dtype=pl.Int32),
            "product_id": pl.Series(self.item_ids[self.items[listed]], dtype=pl.String),
            "score": pl.Series(self.scores[listed], dtype=pl.Float32),
            "reason": pl.Series([r["text"] for row in self.reasons for r in row],
                                dtype=pl.String)})


def answer(model: Recommender[Any], request: Request, k: int = 10,
           exclude: Exclude = DEFAULT_EXCLUDE) -> Answer:
    """The top-``k`` products of every customer of ``request`` (``exclude``: which of their
    history's products may not be shown), each with a reason: the one answer path of the
    command line, batch scoring, the report and the service.

    A request is scored in one block: larger batches are cut into requests of at most
    :func:`~funnelprint.models.ranking.batch_rows` customers (see :func:`answer_all`)."""
    model._check_fitted()
    if k < 1:
        raise ValueError(f"k must be at least 1, not {k}")
    exclude = checked_exclude(exclude)
    history = request.history
    if isinstance(model, Prepares):
        scores = model.score_prepared(history, request.prepared)
    else:
        known = request.known_rows
        scores = model.score(history, known if (known >= 0).all() else None)
    scores = np.where(np.isfinite(scores), scores, -np.inf).astype(np.float32, copy=False)
    exclude_items(scores, history, exclude, model.dataset_.action_names)
    items, values = top_k(scores, min(k, model.dataset_.n_items))
    if isinstance(model, Explainer):
        reasons = model.reasons_for(history, items, request.prepared)
    else:
        reasons = [[{"text": f"ranked by {model.key}", "evidence": []}
                    for _ in np.flatnonzero(row >= 0)] for row in items]
    return Answer(request.customer_ids, items, values, reasons, model.dataset_.item_ids)


def answer_all(model: Recommender[Any], customer_ids: Any, k: int = 10,
               exclude: Exclude = DEFAULT_EXCLUDE, rows: int | None = None
               ) -> Iterator[Answer]:
    """:func:`answer` for many customers (fitted histories), a request of ``rows``
    customers at a time (default: what one score block holds): memory stays bounded."""
    ids = np.asarray(customer_ids).astype(str)
    step = rows or batch_rows(model.dataset_.n_items)
    for start in range(0, ids.size, step):
        yield answer(model, Request.of_known(model, ids[start:start + step]), k, exclude)


def answer_known(model: Recommender[Any], customer_id: str, k: int = 10,
                 exclude: Exclude = DEFAULT_EXCLUDE) -> tuple[Request, Answer]:
    """The request and answer of a customer of the model's data (``KeyError`` for one it
    does not know)."""
    if str(customer_id) not in model.dataset_.customer_index():
        raise KeyError(f"unknown customer {customer_id!r}")
    request = Request.of_known(model, [customer_id])
    return request, answer(model, request, k, exclude)


def recommend_customer(model: Recommender[Any], customer_id: str, k: int = 10,
                       exclude: Exclude = DEFAULT_EXCLUDE,
                       events: pl.DataFrame | None = None) -> list[dict[str, Any]]:
    """Top-k products for one customer, each with a reason and its evidence (an unknown
    customer without ``events`` is answered as a new visitor)."""
    return answer(model, Request.of_customer(model, customer_id, events), k, exclude).lists()[0]


def profile_history(model: Any, history: History) -> Any:
    """The trait profile of ``history`` (see :func:`history_for`), solved from it (no
    retraining): what a request to a trait model holds as ``prepared``."""
    return model.prepare_rows(history.sequences)
