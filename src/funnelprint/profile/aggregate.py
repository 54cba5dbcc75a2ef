"""Customer x token weights (``mean``, ``session``, ``tfidf``, ``recency``, ``attention``)
from integer event tokens, vectorised."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from funnelprint.data.sequences import Sequences, row_of, session_ids

log = logging.getLogger(__name__)

AGGREGATIONS = ("tfidf", "mean", "session", "recency", "attention")
#: Event logits from (token index, action index, events from the row's end, 0 = last).
EventLogits = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
_DAY_US = 86_400 * 1_000_000


@dataclass
class TokenMatrix:
    """Weighted token counts of every sequence row, and what was unknown."""

    weights: sp.csr_matrix  # rows x vocabulary
    known_tokens: np.ndarray  # per row: events whose token has a vector
    unknown_tokens: int  # events skipped because their token was never seen in training


def token_matrix(
    sequences: Sequences, tokens: np.ndarray, n_tokens: int, aggregation: str = "tfidf",
    idf: np.ndarray | None = None, half_life_days: float = 14.0,
    event_logits: EventLogits | None = None, session_gap_minutes: float = 30.0,
) -> TokenMatrix:
    """Weighted rows x tokens matrix; ``tokens`` holds every event's vocabulary index, or
    -1 for a token without a vector (counted and skipped).

    ``mean`` counts events; ``session`` weights each event by 1 / (known events in its
    session), so that every session counts once (the sequences' own sessions, else
    ``session_gap_minutes`` inactivity sessions: see
    :func:`~funnelprint.data.sequences.session_ids`);
    ``tfidf`` multiplies counts by ``idf``; ``recency`` weights each event by
    0.5 ** (age / half-life), the age in whole seconds from the row's last event;
    ``attention`` weights each event by exp(``event_logits``), a softmax over the row's
    known events once rows are normalised.
    """
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {AGGREGATIONS}, not {aggregation!r}")
    tokens = np.asarray(tokens, dtype=np.int64)
    rows = row_of(sequences.offsets)
    known = tokens >= 0
    unknown = int((~known).sum())
    if unknown:
        log.info("%d event(s) with tokens unseen in training skipped", unknown)
    if aggregation == "session":
        sessions = session_ids(sequences, round(session_gap_minutes * 60e6))
        size = np.bincount(sessions, weights=known.astype(np.float64))
        weight = known / np.maximum(size, 1.0)[sessions]
    elif aggregation == "recency":
        last = np.zeros(sequences.n_rows, dtype=np.int64)
        has = sequences.lengths > 0
        last[has] = np.maximum.reduceat(sequences.times, sequences.offsets[:-1][has])
        age_days = ((last[rows] - sequences.times) // 1_000_000) / 86_400.0
        weight = 0.5 ** (age_days / half_life_days)
    elif aggregation == "attention":
        if event_logits is None:
            raise ValueError("attention aggregation needs a fitted aggregator")
        weight = _attention_weights(sequences, tokens, known, event_logits)
    else:
        weight = np.ones(tokens.size)
    matrix = sp.csr_matrix((weight[known], (rows[known], tokens[known])),
                           shape=(sequences.n_rows, n_tokens))
    matrix.sum_duplicates()
    if aggregation == "tfidf":
        if idf is None:
            raise ValueError("tfidf aggregation needs idf")
        matrix = matrix @ sp.diags(idf)
    known_count = np.bincount(rows[known], minlength=sequences.n_rows)
    return TokenMatrix(matrix.tocsr(), known_count, unknown)


def _attention_weights(sequences: Sequences, tokens: np.ndarray, known: np.ndarray,
                       event_logits: EventLogits) -> np.ndarray:
    """exp(logit - row's max logit) for known events; 0 for unknown ones."""
    kept = sequences.mask(known)
    logits = event_logits(tokens[known], kept.actions.astype(np.int64), kept.from_end() - 1)
    rows = row_of(kept.offsets)
    top = np.full(sequences.n_rows, -np.inf)
    np.maximum.at(top, rows, logits)
    weight = np.zeros(tokens.size)
    weight[known] = np.exp(logits - top[rows])
    return weight


def inverse_document_frequency(counts: sp.csr_matrix) -> np.ndarray:
    """Smoothed idf over customers: log((1 + n) / (1 + df)) + 1."""
    n = counts.shape[0]
    df = np.bincount(counts.indices, minlength=counts.shape[1])
    return np.log((1.0 + n) / (1.0 + df)) + 1.0


def weighted_mean(weights: sp.csr_matrix, features: np.ndarray) -> np.ndarray:
    """Row-normalised weights times token features: each customer's weighted mean feature.
    Only the tokens some row uses are read: one customer's profile must not cost a pass (and
    a type conversion) over the whole token table."""
    weights = sp.csr_matrix(weights)
    totals = np.asarray(weights.sum(axis=1)).ravel()
    inv = np.where(totals > 0, 1.0 / np.maximum(totals, 1e-12), 0.0)
    used = np.unique(weights.indices)
    compact = sp.csr_matrix((weights.data, np.searchsorted(used, weights.indices),
                             weights.indptr), shape=(weights.shape[0], used.size))
    rows = np.asarray(features[used], dtype=np.float64)
    return np.asarray(sp.diags(inv) @ compact @ rows, dtype=np.float64)
