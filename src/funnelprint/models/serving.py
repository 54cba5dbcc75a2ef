"""What a shop's front end asks of any fitted model: recommendations for a customer by
external id, each with a reason a person can read, from the fitted history or from one
refreshed with events the model never saw (no retraining)."""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import polars as pl

from funnelprint.data.dataset import Dataset
from funnelprint.data.pipeline import prepare_frame
from funnelprint.data.sequences import Sequences
from funnelprint.data.sessions import SessionConfig
from funnelprint.models.contract import Explainer, Recommender
from funnelprint.models.ranking import mask_seen, top_k
from funnelprint.models.traits import TraitsRecommender
from funnelprint.profile.model import Profiles


def top_items(model: Recommender[Any], customer_id: str, k: int = 10,
              exclude_seen: bool = True) -> tuple[Sequences, np.ndarray, np.ndarray]:
    """A known customer's history (one row) and their top-k item indices and scores (the
    padding of short lists dropped)."""
    index = model.dataset_.customer_index()
    if customer_id not in index:
        raise KeyError(f"unknown customer {customer_id!r}")
    row = np.array([index[customer_id]])
    history = model.dataset_.sequences.select(row)
    items, scores = model.recommend(row, k, exclude_seen, history=history)
    listed = items[0] >= 0
    return history, items[0][listed], scores[0][listed]


def recommend_with_reasons(model: Recommender[Any], customer_id: str, k: int = 10,
                           exclude_seen: bool = True) -> list[dict[str, Any]]:
    """Top-k products for a known customer, each with a reason and its evidence."""
    history, items, scores = top_items(model, customer_id, k, exclude_seen)
    return _with_reasons(model, history, items, scores)


# ------------------------------------------------------------- histories from new events


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
    (the same sessions and codes as the event pipeline, without building tables for a few
    events); any other goes through :func:`pipeline_sequences`."""
    gap = float(getattr(model.config, "session_gap_minutes", 30.0))
    direct = "every_event" in model.reads and (
        "session_id" not in events.columns or events["session_id"].null_count() == events.height)
    if not direct:
        return pipeline_sequences(model, events, gap)
    order = np.argsort(events["timestamp"].dt.epoch("us").to_numpy(), kind="stable")
    times = events["timestamp"].dt.epoch("us").to_numpy()[order].astype(np.int64)
    new = np.ones(times.size, dtype=bool)
    new[1:] = np.diff(times) > int(gap * 60_000_000)  # the rule of data.sessions
    sessions = np.cumsum(new) - 1
    items_by_id, actions_by_name = model_codes(model)
    products, actions = events["product_id"].to_list(), events["action"].to_list()
    items = np.array([items_by_id.get(products[i], -1) for i in order], dtype=np.int64)
    codes = np.array([actions_by_name.get(actions[i], -1) for i in order], dtype=np.int64)
    keep = (items >= 0) & (codes >= 0)
    seq = Sequences(np.array([0, int(keep.sum())], dtype=np.int64), items[keep].astype(np.int32),
                    codes[keep].astype(np.int8), times[keep], sessions[keep].astype(np.int64))
    return seq, int((~keep).sum())


_CODES: weakref.WeakKeyDictionary[Any, tuple[dict[str, int], dict[str, int]]] = \
    weakref.WeakKeyDictionary()


def model_codes(model: Recommender[Any]) -> tuple[dict[str, int], dict[str, int]]:
    """The model's item index by product id and action index by name (built once)."""
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


def recommend_history(model: Recommender[Any], history: History, k: int = 10,
                      exclude: Literal["seen", "purchased", "none"] = "purchased"
                      ) -> list[dict[str, Any]]:
    """Top-k products for any history (see :func:`history_for`), each with a reason.
    ``exclude``: leave out every item of the history, only the bought ones, or none."""
    if k < 1:
        raise ValueError(f"k must be at least 1, not {k}")
    seq = history.sequences
    if isinstance(model, TraitsRecommender):
        profile_history(model, history)  # a known customer's fitted profile, for the scores
    customers = None if history.known_row is None else np.array([history.known_row])
    scores = model.score(seq, customers).astype(np.float32, copy=True)
    scores = np.where(np.isfinite(scores), scores, -np.inf)
    if exclude == "seen":
        mask_seen(scores, seq)
    elif exclude == "purchased" and "purchase" in model.dataset_.action_names:
        bought = seq.actions == model.dataset_.action_names.index("purchase")
        scores[0, seq.items[bought]] = -np.inf
    items, values = top_k(scores, min(k, model.dataset_.n_items))
    listed = items[0] >= 0
    return _with_reasons(model, seq, items[0][listed], values[0][listed])


def _with_reasons(model: Recommender[Any], history: Sequences, items: np.ndarray,
                  scores: np.ndarray) -> list[dict[str, Any]]:
    if isinstance(model, Explainer):
        reasons = model.reasons(history, items)
    else:
        reasons = [{"text": f"ranked by {model.key}", "evidence": []} for _ in items]
    return [{"rank": rank, "product_id": str(model.dataset_.item_ids[item]),
             "score": round(float(score), 4), "reason": reason["text"],
             "evidence": reason["evidence"]}
            for rank, (item, score, reason) in enumerate(zip(items, scores, reasons,
                                                             strict=True), start=1)]


def profile_history(model: TraitsRecommender, history: History) -> Profiles:
    """The trait profile of ``history`` (see :func:`history_for`): the fitted profile when
    it adds nothing to what the model was fitted on (remembered for the model's own scores
    and reasons of the same history), else solved from it (no retraining)."""
    profile = model.profile_
    if history.known_row is not None and history.new_events == 0:
        customer = str(model.dataset_.customer_ids[history.known_row])
        try:
            row = profile.customer_row(customer)  # the profile's own row of the customer
        except KeyError:
            row = None
        if row is not None:
            traits = profile.customer_traits_[row:row + 1]
            fitted = Profiles(traits, profile.customer_raw_[row:row + 1],
                              profile.customer_cold_[row:row + 1],
                              profile.customer_known_[row:row + 1],
                              profile.assign_segments(traits), 0)
            profile.remember(history.sequences, fitted)
    return profile.profile(history.sequences, model.dataset_.action_names)
