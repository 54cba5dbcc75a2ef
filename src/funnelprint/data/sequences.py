"""Ragged per-customer sequences in CSR form (offsets + flat arrays), sliced without loops.

:class:`Sequences` owns the event arrays every model reads (items, actions, times and,
where the source had them, sessions); :func:`session_ids` gives each event its visit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Inactivity that starts a new visit where events carry no session ids (microseconds).
GAP_US = 30 * 60 * 1_000_000


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
    sessions : int64 array or None
        Session id of every event where the source had sessions (ids need only be distinct
        within a row); None otherwise.
    """

    offsets: np.ndarray
    items: np.ndarray
    actions: np.ndarray
    times: np.ndarray
    sessions: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = int(self.offsets[-1]) if self.offsets.size else 0
        if not (self.items.size == self.actions.size == self.times.size == n):
            raise ValueError("sequence arrays disagree in length")
        if self.sessions is not None and self.sessions.size != n:
            raise ValueError("sessions disagree in length with the sequences")

    @property
    def n_rows(self) -> int:
        return self.offsets.size - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def _take(self, index: np.ndarray, offsets: np.ndarray) -> Sequences:
        return Sequences(offsets, self.items[index], self.actions[index], self.times[index],
                         None if self.sessions is None else self.sessions[index])

    def select(self, rows: np.ndarray) -> Sequences:
        index, offsets = segment_index(self.offsets, np.asarray(rows, dtype=np.int64))
        return self._take(index, offsets)

    def mask(self, keep: np.ndarray) -> Sequences:
        """Keep the flagged elements; rows stay (possibly empty)."""
        counts = np.bincount(row_of(self.offsets)[keep], minlength=self.n_rows)
        offsets = np.zeros(self.n_rows + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        return self._take(keep, offsets)

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
                  times: np.ndarray, n_rows: int, sessions: np.ndarray | None = None
                  ) -> Sequences:
        """Build from flat arrays already sorted by row (then time)."""
        counts = np.bincount(rows, minlength=n_rows)
        offsets = np.zeros(n_rows + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        return cls(offsets, items.astype(np.int32), actions.astype(np.int8),
                   times.astype(np.int64),
                   None if sessions is None else np.asarray(sessions).astype(np.int64))


def session_ids(sequences: Sequences, gap_us: int = GAP_US) -> np.ndarray:
    """A visit number for every event, distinct across rows: the rows' own sessions where
    the sequences carry them (numbered by (row, session), so ids repeated by different
    customers stay apart), else a new visit at each row start and after more than ``gap_us``
    without events (the rule of :func:`funnelprint.data.sessions.gap_sessions`)."""
    n = sequences.items.size
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    rows = row_of(sequences.offsets)
    if sequences.sessions is None:
        new = np.ones(n, dtype=bool)
        new[1:] = (rows[1:] != rows[:-1]) | (np.diff(sequences.times) > gap_us)
        return np.cumsum(new) - 1
    sessions = sequences.sessions
    order = np.lexsort((sessions, rows))
    new = np.ones(n, dtype=bool)
    new[1:] = (np.diff(rows[order]) != 0) | (np.diff(sessions[order]) != 0)
    ids = np.empty(n, dtype=np.int64)
    ids[order] = np.cumsum(new) - 1
    return ids
