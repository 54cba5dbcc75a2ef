"""Left-padded fixed-length windows of item sequences (index 0 is padding; values shift by 1),
and the training data built from them: every customer's window with a target at each step
(:class:`Windows`), or one window per prefix with its next step as the only target
(:class:`PrefixWindows`, for models that read a whole window to predict one item)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from funnelprint.data.sequences import Sequences
from funnelprint.models.neural.layers import Batch

#: Upper edges (seconds) of the time-gap buckets: 1 min, 5 min, 30 min, 2 h, 1 day, 1 week,
#: 30 days. Bucket 0 is a customer's first event, the last bucket is anything longer.
GAP_EDGES_S = np.array([60, 300, 1800, 7200, 86_400, 604_800, 2_592_000], dtype=np.float64)
N_GAP_BUCKETS = GAP_EDGES_S.size + 2
FEATURES = ("items", "actions", "gaps")


def gap_buckets(seq: Sequences) -> np.ndarray:
    """Bucket of the time since the customer's previous event, per event (0 = first event)."""
    times = seq.times.astype(np.float64)
    gap_s = np.diff(times, prepend=times[:1]) / 1e6
    buckets = 1 + np.searchsorted(GAP_EDGES_S, gap_s, side="right")
    buckets[seq.positions() == 0] = 0
    return buckets.astype(np.int64)


def step_values(seq: Sequences, feature: str) -> np.ndarray:
    if feature == "items":
        return seq.items
    if feature == "actions":
        return seq.actions
    if feature == "gaps":
        return gap_buckets(seq)
    raise ValueError(f"feature must be one of {FEATURES}, not {feature!r}")


def last_window(history: Sequences, maxlen: int, values: np.ndarray | None = None,
                shift: int = 1) -> np.ndarray:
    """(rows, maxlen) array of each row's last ``maxlen`` values, left-padded with 0.

    ``values`` defaults to the items; ``shift`` is added to non-padding entries.
    """
    values = history.items if values is None else values
    out = np.zeros((history.n_rows, maxlen), dtype=np.int64)
    column = maxlen - history.from_end()
    keep = column >= 0
    rows = np.repeat(np.arange(history.n_rows), history.lengths)
    out[rows[keep], column[keep]] = values[keep].astype(np.int64) + shift
    return out


def feature_windows(history: Sequences, maxlen: int, features: tuple[str, ...]
                    ) -> dict[str, np.ndarray]:
    """One left-padded window per step feature (items, actions, time-gap buckets)."""
    return {f: last_window(history, maxlen, step_values(history, f)) for f in features}


def training_windows(sequences: Sequences, maxlen: int,
                     features: tuple[str, ...] = ("items",)) -> dict[str, np.ndarray]:
    """Inputs and next-step targets for every customer with at least two items.

    Inputs are the features of items[:-1] (last ``maxlen``); ``targets`` is items[1:] and
    ``target_actions`` the action of each target, all left-padded with 0.
    """
    usable = np.flatnonzero(sequences.lengths >= 2)
    rows = sequences.select(usable)
    later = rows.mask(rows.positions() >= 1)
    out = {f: last_window(rows, maxlen + 1, step_values(rows, f))[:, :-1] for f in features}
    out["targets"] = last_window(later, maxlen)
    out["target_actions"] = last_window(later, maxlen, later.actions)
    return out


def first_real_column(window: np.ndarray) -> int:
    """Index of the first column that is not padding in every row (the last if all are)."""
    real = (window > 0).any(axis=0)
    return int(np.argmax(real)) if real.any() else window.shape[1] - 1


def length_batches(arrays: list[np.ndarray], lengths: np.ndarray, batch_size: int,
                   rng: np.random.Generator) -> list[list[np.ndarray]]:
    """Batches of rows of similar length (random within a length), in random order, each
    trimmed of all-padding leading columns: most sequences are far shorter than maxlen."""
    order = np.lexsort((rng.random(lengths.size), lengths))
    chunks = [order[i: i + batch_size] for i in range(0, order.size, batch_size)]
    out = []
    for index in rng.permutation(len(chunks)):
        rows = chunks[index]
        width = max(1, int(lengths[rows].max()))
        out.append([a[rows][:, -width:] for a in arrays])
    return out


@dataclass
class Windows:
    """Training windows held whole: ``arrays`` of equal row count (``items`` among them),
    ``lengths`` real steps per row, ``loss_positions`` the expected number of steps with a
    loss per pass."""

    arrays: dict[str, np.ndarray]
    lengths: np.ndarray
    loss_positions: float

    @property
    def n_rows(self) -> int:
        return int(self.lengths.size)

    def batches(self, batch_size: int, rng: np.random.Generator, device: torch.device
                ) -> Sequence[Batch]:
        names = list(self.arrays)
        parts = length_batches([self.arrays[n] for n in names], self.lengths, batch_size, rng)
        return [{n: torch.from_numpy(a).to(device) for n, a in zip(names, part, strict=True)}
                for part in parts]


@dataclass
class PrefixWindows:
    """Every prefix of every sequence with at least two steps, as one window of its last
    ``maxlen`` steps with the next item as the only target (``targets`` of shape (rows, 1)).
    Only the prefix ends are held; windows are cut per batch, so memory stays proportional
    to the number of events rather than events x ``maxlen``. ``extra`` holds arrays with
    one row per prefix that every batch carries along (e.g. candidates to score)."""

    values: dict[str, np.ndarray]  # flat step values of each feature (items first)
    starts: np.ndarray  # per prefix: flat index of its row's first step
    ends: np.ndarray  # per prefix: flat index of its target (the prefix is [start, end))
    maxlen: int
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def of(cls, sequences: Sequences, maxlen: int, features: tuple[str, ...] = ("items",)
           ) -> PrefixWindows:
        targets = np.flatnonzero(sequences.positions() >= 1)
        starts = np.repeat(sequences.offsets[:-1], sequences.lengths)[targets]
        values = {f: step_values(sequences, f).astype(np.int64) for f in features}
        return cls(values, starts, targets, maxlen)

    @property
    def items(self) -> np.ndarray:
        return self.values["items"]

    @property
    def n_rows(self) -> int:
        return int(self.ends.size)

    @property
    def lengths(self) -> np.ndarray:
        return np.minimum(self.ends - self.starts, self.maxlen)

    @property
    def loss_positions(self) -> float:
        return float(self.n_rows)

    def steps(self, rows: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
        """Flat indices (rows, ``width``) of the last ``width`` steps of the given prefixes,
        left-aligned with padding, and which of them are real steps."""
        index = self.ends[rows, None] - width + np.arange(width)
        return np.maximum(index, 0), index >= self.starts[rows, None]

    def window(self, rows: np.ndarray, width: int, feature: str = "items") -> np.ndarray:
        """Left-padded windows (rows, ``width``) of one feature of the given prefixes,
        values shifted by 1."""
        index, real = self.steps(rows, width)
        return np.where(real, self.values[feature][index] + 1, 0)

    def batches(self, batch_size: int, rng: np.random.Generator, device: torch.device
                ) -> Sequence[Batch]:
        return _PrefixBatches(self, batch_size, rng, device)


class _PrefixBatches(Sequence[Batch]):
    """One epoch of :class:`PrefixWindows` batches (similar lengths together, random order),
    each cut when it is read."""

    def __init__(self, data: PrefixWindows, batch_size: int, rng: np.random.Generator,
                 device: torch.device) -> None:
        lengths = data.lengths
        order = np.lexsort((rng.random(lengths.size), lengths))
        chunks = [order[i: i + batch_size] for i in range(0, order.size, batch_size)]
        self.chunks = [chunks[i] for i in rng.permutation(len(chunks))]
        self.data, self.lengths, self.device = data, lengths, device

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, index: int) -> Batch:  # type: ignore[override]
        rows = self.chunks[index]
        width = max(1, int(self.lengths[rows].max()))
        data = self.data
        arrays = {f: data.window(rows, width, f) for f in data.values}
        arrays["targets"] = data.items[data.ends[rows]][:, None] + 1
        arrays.update({name: values[rows] for name, values in data.extra.items()})
        return {name: torch.from_numpy(a).to(self.device) for name, a in arrays.items()}
