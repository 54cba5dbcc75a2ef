"""Customer x token weights (``mean``, ``session``, ``tfidf``, ``recency``, ``attention``),
vectorised."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl
import scipy.sparse as sp

from funnelprint.data.sessions import gap_sessions

log = logging.getLogger(__name__)

AGGREGATIONS = ("tfidf", "mean", "session", "recency", "attention")
EventLogits = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


@dataclass
class TokenMatrix:
    """Which customers, their weighted token counts, and what was unknown."""

    customer_ids: np.ndarray
    weights: sp.csr_matrix  # customers x vocabulary
    known_tokens: np.ndarray  # per customer: events whose token has a vector
    unknown_tokens: int  # events skipped because their token was never seen in training


def token_matrix(
    events: pl.DataFrame, vocabulary: dict[str, int], aggregation: str = "tfidf",
    idf: np.ndarray | None = None, half_life_days: float = 14.0,
    event_logits: EventLogits | None = None,
) -> TokenMatrix:
    """Weighted customer x token matrix from events with ``customer_id, timestamp, token``
    (and ``action`` for ``attention``), in time order within each customer.

    ``mean`` counts events; ``session`` weights each event by 1 / (known events in its
    session), so that every session counts once (sessions from the ``session`` column within
    each customer, or 30-minute inactivity sessions when there is none); ``tfidf`` multiplies
    counts by ``idf``; ``recency`` weights each event by 0.5 ** (age / half-life), the age
    measured from the customer's last event; ``attention`` weights each event by
    exp(``event_logits(token column, action, events from the customer's end)``), a softmax
    over the customer's known events once rows are normalised.
    """
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {AGGREGATIONS}, not {aggregation!r}")
    if aggregation == "session" and "session" not in events.columns:
        events = events.with_columns(gap_sessions().alias("session"))
    lookup = pl.DataFrame({"token": list(vocabulary), "col": np.arange(len(vocabulary))},
                          schema={"token": pl.String, "col": pl.Int64})
    wanted = (["customer_id", "timestamp", "token"] + ["action"] * (aggregation == "attention")
              + ["session"] * (aggregation == "session"))
    frame = events.select(wanted).join(
        lookup, on="token", how="left", maintain_order="left"
    )
    customers = frame["customer_id"].unique(maintain_order=True)
    frame = frame.join(
        pl.DataFrame({"customer_id": customers, "row": np.arange(customers.len())}),
        on="customer_id", how="left", maintain_order="left",
    )
    known = frame["col"].is_not_null()
    unknown = int((~known).sum())
    if unknown:
        log.info("%d event(s) with tokens unseen in training skipped", unknown)
    if aggregation == "recency":
        age_days = (pl.col("timestamp").max().over("customer_id") - pl.col("timestamp")
                    ).dt.total_seconds() / 86_400.0
        weight = frame.select(0.5 ** (age_days / half_life_days)).to_series().to_numpy()
    elif aggregation == "session":
        in_vocabulary = pl.col("col").is_not_null().cast(pl.Float64)
        session_size = in_vocabulary.sum().over("customer_id", "session").clip(lower_bound=1.0)
        weight = frame.select(in_vocabulary / session_size).to_series().to_numpy()
    elif aggregation == "attention":
        if event_logits is None:
            raise ValueError("attention aggregation needs a fitted aggregator")
        weight = _attention_weights(frame, known, event_logits)
    else:
        weight = np.ones(frame.height)
    rows = frame["row"].to_numpy()
    cols = frame["col"].fill_null(0).to_numpy()
    mask = known.to_numpy()
    matrix = sp.csr_matrix((weight[mask], (rows[mask], cols[mask])),
                           shape=(customers.len(), len(vocabulary)))
    matrix.sum_duplicates()
    if aggregation == "tfidf":
        if idf is None:
            raise ValueError("tfidf aggregation needs idf")
        matrix = matrix @ sp.diags(idf)
    known_count = np.bincount(rows[mask], minlength=customers.len())
    return TokenMatrix(customers.to_numpy().astype(str), matrix.tocsr(), known_count, unknown)


def _attention_weights(frame: pl.DataFrame, known: pl.Series, event_logits: EventLogits
                       ) -> np.ndarray:
    """exp(logit - customer's max logit) for known events; 0 for unknown ones."""
    from funnelprint.profile.attention import action_codes

    kept = frame.filter(known).with_columns(
        (pl.len().over("row") - 1 - pl.int_range(pl.len()).over("row")).alias("from_end"))
    logits = event_logits(kept["col"].to_numpy(), action_codes(kept["action"].to_numpy()),
                          kept["from_end"].to_numpy())
    rows = kept["row"].to_numpy()
    top = np.full(int(rows.max()) + 1 if rows.size else 0, -np.inf)
    np.maximum.at(top, rows, logits)
    weight = np.zeros(frame.height)
    weight[known.to_numpy()] = np.exp(logits - top[rows])
    return weight


def inverse_document_frequency(counts: sp.csr_matrix) -> np.ndarray:
    """Smoothed idf over customers: log((1 + n) / (1 + df)) + 1."""
    n = counts.shape[0]
    df = np.bincount(counts.indices, minlength=counts.shape[1])
    return np.log((1.0 + n) / (1.0 + df)) + 1.0


def weighted_mean(weights: sp.csr_matrix, features: np.ndarray) -> np.ndarray:
    """Row-normalised weights times token features: each customer's weighted mean feature."""
    totals = np.asarray(weights.sum(axis=1)).ravel()
    inv = np.where(totals > 0, 1.0 / np.maximum(totals, 1e-12), 0.0)
    return np.asarray(sp.diags(inv) @ weights @ features, dtype=np.float64)
