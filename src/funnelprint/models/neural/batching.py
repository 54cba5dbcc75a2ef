"""Left-padded fixed-length windows of item sequences (index 0 is padding; items shift by 1)."""

from __future__ import annotations

import numpy as np

from funnelprint.data.sequences import Sequences


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


def training_windows(sequences: Sequences, maxlen: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and next-item targets for every customer with at least two items:
    input = items[:-1] (last ``maxlen``), target = items[1:], both left-padded with 0."""
    usable = np.flatnonzero(sequences.lengths >= 2)
    rows = sequences.select(usable)
    inputs = last_window(rows.drop_last(1), maxlen)
    targets = last_window(rows.mask(rows.positions() >= 1), maxlen)
    return inputs, targets


def trim_padding(window: np.ndarray) -> np.ndarray:
    """Drop leading columns that are padding in every row (at least one column stays)."""
    real = (window > 0).any(axis=0)
    first = int(np.argmax(real)) if real.any() else window.shape[1] - 1
    return window[:, first:]


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
