from __future__ import annotations

import numpy as np
import pytest

from funnelprint.data.sequences import GAP_US, Sequences, session_ids


def seq(sessions: list[int] | None) -> Sequences:
    return Sequences.from_rows(np.array([0, 0, 0, 1, 1]), np.array([1, 2, 3, 4, 5]),
                               np.zeros(5), np.array([0, 1, GAP_US + 2, 0, 1]), 3,
                               None if sessions is None else np.array(sessions))


def test_sessions_travel_with_select_mask_and_last():
    s = seq([7, 7, 8, 7, 7])
    assert s.select(np.array([1, 0])).sessions.tolist() == [7, 7, 7, 7, 8]
    assert s.mask(s.items != 2).sessions.tolist() == [7, 8, 7, 7]
    assert s.last(1).sessions.tolist() == [8, 7]
    assert seq(None).select(np.array([0])).sessions is None
    with pytest.raises(ValueError, match="sessions"):
        Sequences(s.offsets, s.items, s.actions, s.times, np.zeros(2, np.int64))


def test_session_ids_from_sessions_or_the_gap_rule():
    # Customers 0 and 1 share the session number 7: still two visits.
    assert session_ids(seq([7, 7, 8, 7, 7])).tolist() == [0, 0, 1, 2, 2]
    # Without sessions, a visit ends after 30 idle minutes or with the customer.
    assert session_ids(seq(None)).tolist() == [0, 0, 1, 2, 2]
    assert session_ids(Sequences(np.zeros(1, np.int64), np.zeros(0, np.int32),
                                 np.zeros(0, np.int8), np.zeros(0, np.int64))).size == 0
