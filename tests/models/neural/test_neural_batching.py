"""Windows, length-grouped batches and step features (models/neural/batching.py)."""

from __future__ import annotations

import numpy as np

from funnelprint.data.sequences import Sequences
from funnelprint.models.neural.batching import last_window, length_batches, training_windows
from funnelprint.models.neural.models import next_action_items


def test_windows_are_right_aligned_and_shifted():
    seq = Sequences(np.array([0, 3, 4]), np.array([5, 6, 7, 8]), np.zeros(4, np.int8),
                    np.zeros(4, np.int64))
    assert last_window(seq, 4).tolist() == [[0, 6, 7, 8], [0, 0, 0, 9]]
    assert last_window(seq, 2).tolist() == [[7, 8], [0, 9]]
    arrays = training_windows(seq, 3)
    assert arrays["items"].tolist() == [[0, 6, 7]] and arrays["targets"].tolist() == [[0, 7, 8]]


def test_length_batches_cover_every_row_once():
    lengths = np.array([1, 5, 2, 5, 3])
    data = np.arange(25).reshape(5, 5)
    batches = length_batches([data], lengths, 2, np.random.default_rng(0))
    firsts = sorted(int(b[0][r, -1]) for b in batches for r in range(b[0].shape[0]))
    assert firsts == [4, 9, 14, 19, 24]
    assert all(b[0].shape[1] == lengths[(data[:, -1][:, None] == b[0][:, -1]).argmax(0)].max()
               for b in batches)


def test_training_windows_carry_actions_gaps_and_target_actions():
    minute = 60_000_000
    seq = Sequences(np.array([0, 4]), np.array([5, 6, 7, 8]), np.array([0, 1, 3, 0], np.int8),
                    np.array([0, 30 * 1_000_000, 10 * minute, 3 * 86_400_000_000]))
    arrays = training_windows(seq, 4, ("items", "actions", "gaps"))
    assert arrays["items"].tolist() == [[0, 6, 7, 8]]
    assert arrays["actions"].tolist() == [[0, 1, 2, 4]]  # shifted by one, 0 = padding
    # first event, then 30 s (< 1 min), then ~10 min (< 30 min): buckets 0, 1, 3 (+1 shift)
    assert arrays["gaps"].tolist() == [[0, 1, 2, 4]]
    assert arrays["targets"].tolist() == [[0, 7, 8, 9]]
    assert arrays["target_actions"].tolist() == [[0, 2, 4, 1]]


def test_next_purchase_targets_look_ahead_within_the_customer():
    seq = Sequences(np.array([0, 4, 6]), np.array([1, 2, 3, 4, 5, 6]),
                    np.array([0, 3, 0, 0, 0, 3], np.int8), np.zeros(6, np.int64))
    assert next_action_items(seq, 3).tolist() == [2, -1, -1, -1, 6, -1]
