from __future__ import annotations

import numpy as np
import pytest

from funnelprint.data.sequences import Sequences
from funnelprint.profile.aggregate import inverse_document_frequency, token_matrix

DAY = 86_400 * 1_000_000
MINUTE = 60 * 1_000_000


def sequences(rows: list[int], times: list[int], sessions: list[int] | None = None
              ) -> Sequences:
    n = len(rows)
    return Sequences.from_rows(np.array(rows), np.zeros(n, np.int64), np.zeros(n, np.int64),
                               np.array(times), max(rows) + 1,
                               None if sessions is None else np.array(sessions))


def test_token_matrix_aggregations_and_unknown_tokens():
    seq = sequences([0, 0, 0, 1], [0, 14 * DAY, 14 * DAY, 0])
    tokens = np.array([0, 0, 1, -1])  # the last event's token was never seen in training
    mean = token_matrix(seq, tokens, 2, "mean")
    assert mean.weights.toarray().tolist() == [[2.0, 1.0], [0.0, 0.0]]
    assert mean.unknown_tokens == 1 and mean.known_tokens.tolist() == [3, 0]
    recency = token_matrix(seq, tokens, 2, "recency", half_life_days=14.0)
    assert recency.weights.toarray()[0].tolist() == pytest.approx([1.5, 1.0])
    idf = inverse_document_frequency(mean.weights)
    with pytest.raises(ValueError, match="aggregation"):
        token_matrix(seq, tokens, 2, "median")
    with pytest.raises(ValueError, match="idf"):
        token_matrix(seq, tokens, 2, "tfidf")
    tfidf = token_matrix(seq, tokens, 2, "tfidf", idf=idf)
    assert tfidf.weights.toarray()[0].tolist() == pytest.approx([2.0 * idf[0], idf[1]])


def test_session_aggregation_counts_each_session_once():
    # Session 0: three views of token 0; session 1: one cart (token 1) and an unknown token,
    # which must not dilute the session's weight.
    seq = sequences([0] * 5, [0, 0, 0, DAY, DAY], sessions=[0, 0, 0, 1, 1])
    matrix = token_matrix(seq, np.array([0, 0, 0, 1, -1]), 2, "session")
    assert matrix.weights.toarray().tolist() == [[pytest.approx(1.0), pytest.approx(1.0)]]
    assert matrix.known_tokens.tolist() == [4] and matrix.unknown_tokens == 1


def test_session_aggregation_keeps_customers_apart_when_session_numbers_repeat():
    seq = sequences([0, 0, 1], [0, 0, 0], sessions=[0, 0, 0])
    matrix = token_matrix(seq, np.array([0, 0, 1]), 2, "session")
    assert matrix.weights.toarray().tolist() == [[pytest.approx(1.0), 0.0],
                                                 [0.0, pytest.approx(1.0)]]


def test_session_aggregation_without_sessions_splits_after_30_idle_minutes():
    seq = sequences([0] * 4, [0, 10 * MINUTE, 20 * MINUTE, 51 * MINUTE])
    matrix = token_matrix(seq, np.array([0, 0, 0, 1]), 2, "session")
    assert matrix.weights.toarray().tolist() == [[pytest.approx(1.0), pytest.approx(1.0)]]


def test_attention_weights_are_a_softmax_over_known_events():
    seq = sequences([0, 0, 0], [0, 1, 2])

    def logits(tokens: np.ndarray, actions: np.ndarray, from_end: np.ndarray) -> np.ndarray:
        assert from_end.tolist() == [1, 0]  # counted among known events, 0 = last
        return np.log(np.array([1.0, 3.0]))

    matrix = token_matrix(seq, np.array([0, -1, 1]), 2, "attention", event_logits=logits)
    row = matrix.weights.toarray()[0]
    assert (row / row.sum()).tolist() == pytest.approx([0.25, 0.75])
    with pytest.raises(ValueError, match="aggregator"):
        token_matrix(seq, np.array([0, -1, 1]), 2, "attention")
