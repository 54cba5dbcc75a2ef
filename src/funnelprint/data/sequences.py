"""Ragged per-customer sequences in CSR form (offsets + flat arrays), sliced without loops."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def segment_index(offsets: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flat positions of the given rows' elements, and the new offsets."""
    starts = offsets[rows]
    lengths = offsets[rows + 1] - starts
    new_offsets = np.zeros(rows.size + 1, dtype=np.int64)
    np.cumsum(lengths, out=new_offsets[1:])
    within = np.arange(new_offsets[-1], dtype=np.int64) - np.repeat(new_offsets[:-1], lengths)
    return np.repeat(starts, lengths) + within, new_offsets


def row_of(offsets: np.ndarray) -> np.ndarray:
    """Row number of every flat element."""
    return np.repeat(np.arange(offsets.size - 1), np.diff(offsets))


@dataclass
class Sequences:
    """Time-ordered interactions of several customers.

    Attributes
    ----------
    offsets : int64 array (n + 1,)
        Row ``r`` spans ``items[offsets[r]:offsets[r + 1]]``.
    items : int32 array
        Item indices.
    actions : int8 array
        Action indices (into the dataset's ``action_names``).
    times : int64 array
        Timestamps in microseconds since the epoch (or positions where a format has none).
    """

    offsets: np.ndarray
    items: np.ndarray
    actions: np.ndarray
    times: np.ndarray

    def __post_init__(self) -> None:
        n = int(self.offsets[-1]) if self.offsets.size else 0
        if not (self.items.size == self.actions.size == self.times.size == n):
            raise ValueError("sequence arrays disagree in length")

    @property
    def n_rows(self) -> int:
        return self.offsets.size - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def select(self, rows: np.ndarray) -> Sequences:
        index, offsets = segment_index(self.offsets, np.asarray(rows, dtype=np.int64))
        return Sequences(offsets, self.items[index], self.actions[index], self.times[index])

    def mask(self, keep: np.ndarray) -> Sequences:
        """Keep the flagged elements; rows stay (possibly empty)."""
        counts = np.bincount(row_of(self.offsets)[keep], minlength=self.n_rows)
        offsets = np.zeros(self.n_rows + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        return Sequences(offsets, self.items[keep], self.actions[keep], self.times[keep])

    def positions(self) -> np.ndarray:
        """Index of every element within its row (0 = first)."""
        return np.arange(self.items.size) - np.repeat(self.offsets[:-1], self.lengths)

    def from_end(self) -> np.ndarray:
        """Distance of every element from its row's end (1 = last)."""
        return np.repeat(self.lengths, self.lengths) - self.positions()

    def last(self, n: int) -> Sequences:
        """The last ``n`` elements of every row."""
        return self.mask(self.from_end() <= n)

    def drop_last(self, n: int = 1) -> Sequences:
        return self.mask(self.from_end() > n)

    def row(self, r: int) -> np.ndarray:
        return self.items[self.offsets[r]: self.offsets[r + 1]]

    @classmethod
    def from_rows(cls, rows: np.ndarray, items: np.ndarray, actions: np.ndarray,
                  times: np.ndarray, n_rows: int) -> Sequences:
        """Build from flat arrays already sorted by row (then time)."""
        counts = np.bincount(rows, minlength=n_rows)
        offsets = np.zeros(n_rows + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        return cls(offsets, items.astype(np.int32), actions.astype(np.int8),
                   times.astype(np.int64))
