"""Item-to-item links learned from training sequences, and how strongly a history points at
every item through them: the signals that predict the next product on real shop logs.

``transitions``  P(next step's item | this step's item), from consecutive steps of a customer
``covisits``     cosine of two items' co-occurrence within visits (sessions)
``neighbours``   cosine of two items' co-occurrence in customers' histories (item-kNN)

The co-occurrence links keep each item's ``top`` strongest neighbours, so memory grows with
the catalogue, not its square.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from funnelprint.data.sequences import Sequences, row_of, session_ids

#: Neighbours kept per item in the co-occurrence links.
TOP_NEIGHBOURS = 100
#: Distinct items of one visit (its latest) that count towards co-visitation: bounds the
#: pairs one very long visit adds.
VISIT_ITEMS = 50


@dataclass(frozen=True)
class ItemLinks:
    """Sparse (items x items) links: ``transitions`` (rows sum to 1 where the item has a
    successor), ``covisits`` and ``neighbours`` (cosines, top neighbours per row)."""

    transitions: sp.csr_matrix
    covisits: sp.csr_matrix
    neighbours: sp.csr_matrix

    NAMES = ("transitions", "covisits", "neighbours")

    @classmethod
    def learn(cls, sequences: Sequences, n_items: int, top: int = TOP_NEIGHBOURS) -> ItemLinks:
        return cls(transitions(sequences, n_items), covisits(sequences, n_items, top),
                   neighbours(sequences, n_items, top))

    def matrices(self) -> dict[str, sp.csr_matrix]:
        return {name: getattr(self, name) for name in self.NAMES}


def transitions(sequences: Sequences, n_items: int) -> sp.csr_matrix:
    """Row-normalised counts of consecutive steps (a customer's step and their next one on
    another product: a view then a cart of one product is no transition)."""
    rows = row_of(sequences.offsets)
    prev, nxt = sequences.items[:-1], sequences.items[1:]
    moved = (rows[1:] == rows[:-1]) & (prev != nxt)
    prev, nxt = prev[moved], nxt[moved]
    counts = sp.csr_matrix((np.ones(prev.size), (prev, nxt)), shape=(n_items, n_items))
    counts.sum_duplicates()
    out = np.asarray(counts.sum(axis=1)).ravel()
    return (sp.diags(np.where(out > 0, 1.0 / np.maximum(out, 1), 0.0)) @ counts).tocsr()


def covisits(sequences: Sequences, n_items: int, top: int = TOP_NEIGHBOURS) -> sp.csr_matrix:
    """Cosine of the visits two items share (each visit counts a pair once)."""
    visit = session_ids(sequences)
    # Only the latest VISIT_ITEMS steps of each visit count (bounded pairs per visit).
    order = np.lexsort((-np.arange(visit.size), visit))
    rank = np.empty(visit.size, dtype=np.int64)
    starts = np.r_[0, np.flatnonzero(np.diff(visit[order])) + 1]
    rank[order] = np.arange(visit.size) - np.repeat(starts, np.diff(np.r_[starts, visit.size]))
    keep = rank < VISIT_ITEMS
    return _cosine(visit[keep], sequences.items[keep], n_items, top)


def neighbours(sequences: Sequences, n_items: int, top: int = TOP_NEIGHBOURS) -> sp.csr_matrix:
    """Cosine of the customers two items share."""
    return _cosine(row_of(sequences.offsets), sequences.items, n_items, top)


def _cosine(groups: np.ndarray, items: np.ndarray, n_items: int, top: int) -> sp.csr_matrix:
    n_groups = int(groups.max(initial=-1)) + 1
    x = sp.csr_matrix((np.ones(items.size), (groups, items)), shape=(n_groups, n_items))
    x.sum_duplicates()
    x.data[:] = 1.0
    norms = np.sqrt(np.asarray(x.sum(axis=0)).ravel())
    inv = sp.diags(np.where(norms > 0, 1.0 / np.maximum(norms, 1e-12), 0.0))
    co = (x.T @ x).tocsr()
    co.setdiag(0)
    co.eliminate_zeros()
    return keep_top(inv @ co @ inv, top)


def keep_top(matrix: sp.spmatrix, n: int) -> sp.csr_matrix:
    """The ``n`` largest entries of every row (vectorised)."""
    matrix = sp.csr_matrix(matrix)
    matrix.sort_indices()
    rows = row_of(matrix.indptr)
    order = np.lexsort((-matrix.data, rows))
    rank = np.arange(order.size) - np.repeat(matrix.indptr[:-1], np.diff(matrix.indptr))
    keep = np.sort(order[rank < n])
    return sp.csr_matrix((matrix.data[keep].astype(np.float32),
                          (rows[keep], matrix.indices[keep])), shape=matrix.shape)


def recency_matrix(history: Sequences, n_items: int, last_n: int | None, decay: float
                   ) -> sp.csr_matrix:
    """Rows x items: decay**k summed over the k-th most recent steps on each item (the last
    ``last_n`` steps, or all)."""
    recent = history if last_n is None else history.last(last_n)
    weights = decay ** (recent.from_end() - 1).astype(np.float64)
    out = sp.csr_matrix((weights, (row_of(recent.offsets), recent.items)),
                        shape=(recent.n_rows, n_items))
    out.sum_duplicates()
    return out


def reach(history: Sequences, links: sp.csr_matrix, last_n: int | None, decay: float
          ) -> np.ndarray:
    """How strongly each row's (recent) history points at every item through ``links``:
    the recency-weighted sum of its items' link rows (dense rows x items)."""
    query = recency_matrix(history, links.shape[0], last_n, decay)
    return (query @ links).toarray().astype(np.float32)


def incidence(groups: np.ndarray, items: np.ndarray, n_items: int) -> sp.csr_matrix:
    """Items x groups (customers, visits): 1 where the item has a step in the group."""
    n_groups = int(groups.max(initial=-1)) + 1
    out = sp.csr_matrix((np.ones(items.size, dtype=np.float32), (items, groups)),
                        shape=(n_items, n_groups))
    out.sum_duplicates()
    out.data[:] = 1.0
    return out


def successors(sequences: Sequences, n_items: int) -> np.ndarray:
    """Per item: its steps followed by a step on another product (what :func:`transitions`
    divides by, so that a transition probability times it is a count)."""
    rows = row_of(sequences.offsets)
    prev, nxt = sequences.items[:-1], sequences.items[1:]
    moved = (rows[1:] == rows[:-1]) & (prev != nxt)
    return np.bincount(prev[moved], minlength=n_items)


#: Pairs whose shared groups are counted at once (bounds the rows copied).
PAIR_CHUNK = 20_000


def shared(by_group: sp.csr_matrix, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per pair of items ``(a[i], b[i])``: the groups of ``by_group`` (items x groups,
    :func:`incidence`) both have steps in; each distinct pair is counted once."""
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    if not a.size:
        return np.zeros(0, dtype=np.int64)
    keys, inverse = np.unique(a * by_group.shape[0] + b, return_inverse=True)
    first, second = np.divmod(keys, by_group.shape[0])
    counts = np.empty(keys.size, dtype=np.int64)
    for start in range(0, keys.size, PAIR_CHUNK):
        part = slice(start, start + PAIR_CHUNK)
        both = by_group[first[part]].multiply(by_group[second[part]])
        counts[part] = np.rint(np.asarray(both.sum(axis=1)).ravel())
    return counts[inverse.ravel()]
