"""Item-to-item links counted from training sequences."""

import numpy as np
import pytest

from funnelprint.data.sequences import Sequences
from funnelprint.models import signals


def rows(*journeys: list[int], sessions: list[list[int]] | None = None) -> Sequences:
    owner = np.concatenate([[r] * len(j) for r, j in enumerate(journeys)])
    items = np.concatenate(journeys)
    times = np.arange(items.size) * 60_000_000
    flat = None if sessions is None else np.concatenate(sessions)
    return Sequences.from_rows(owner, items, np.zeros(items.size), times, len(journeys), flat)


def test_transitions_count_moves_to_another_product():
    # 0 -> 0 (a view then a cart of one product) is no transition.
    links = signals.transitions(rows([0, 0, 1, 0, 2], [0, 1]), 3).toarray()
    assert links[0].tolist() == pytest.approx([0, 2 / 3, 1 / 3])
    assert links[1].tolist() == pytest.approx([1, 0, 0])
    assert links[2].sum() == 0  # never followed by anything


def test_covisits_are_within_visits_and_neighbours_within_customers():
    seq = rows([0, 1, 2, 3], [0, 1], sessions=[[0, 0, 1, 1], [5, 5]])
    covisit = signals.covisits(seq, 4).toarray()
    assert covisit[0, 1] > 0 and covisit[2, 3] > 0
    assert covisit[0, 2] == 0 and covisit[1, 3] == 0  # different visits
    assert covisit[0, 1] == pytest.approx(1.0)  # always together
    neighbour = signals.neighbours(seq, 4).toarray()
    assert neighbour[0, 2] > 0 and np.diag(neighbour).sum() == 0
    assert np.allclose(neighbour, neighbour.T)


def test_keep_top_keeps_the_strongest_of_each_row():
    matrix = np.array([[0, 3, 1, 2], [5, 0, 0, 4], [0, 0, 0, 0], [1, 1, 1, 0]], dtype=float)
    kept = signals.keep_top(matrix, 2).toarray()
    assert kept[0].tolist() == [0, 3, 0, 2] and kept[1].tolist() == [5, 0, 0, 4]
    assert kept[2].sum() == 0 and (kept[3] > 0).sum() == 2


def test_reach_sums_recency_weighted_link_rows():
    links = signals.transitions(rows([0, 1], [2, 3]), 4)
    history = rows([2, 0])  # the last step weighs 1, the one before 0.5
    reach = signals.reach(history, links, None, 0.5)[0]
    assert reach.tolist() == pytest.approx([0, 1, 0, 0.5])
    assert signals.reach(history, links, 1, 0.5)[0].tolist() == pytest.approx([0, 1, 0, 0])
