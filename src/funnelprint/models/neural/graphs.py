"""Graphs the GNN recommenders read, built without a Python loop per session or event.

:func:`session_graphs` turns a batch of left-padded windows into one small directed graph
per row (its distinct items as nodes, consecutive steps as edges), as SR-GNN and GCE-GNN
read it; :func:`global_neighbours` counts, over every training sequence, which items occur
within a few steps of each other (GCE-GNN's global graph) and keeps each item's strongest
neighbours.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from funnelprint.data.sequences import Sequences, row_of


@dataclass
class SessionGraphs:
    """One graph per window row, on at most ``n`` nodes (``n`` = the window's width).

    Attributes
    ----------
    nodes : (rows, n) long
        Item index + 1 of each node (0: no node); a row's nodes are its distinct items.
    alias : (rows, n) long
        Node of each window step (padding steps point at node 0 of their row, which is
        the padding node wherever the row has padding; read ``real`` before using them).
    real : (rows, n) bool
        Which window steps are items rather than padding.
    edges : (rows, n, n) float
        ``edges[r, i, j]`` = 1 where some step on node i is directly followed by a step on
        node j (self-loops where an item repeats).
    """

    nodes: torch.Tensor
    alias: torch.Tensor
    real: torch.Tensor
    edges: torch.Tensor

    @property
    def node_mask(self) -> torch.Tensor:
        return self.nodes > 0


def session_graphs(window: torch.Tensor) -> SessionGraphs:
    """The session graph of each row of ``window`` (rows, n; item + 1, 0 = padding).

    Items are numbered by sorting each row: equal items share a node, and padding (0) sorts
    first, so it can only ever be node 0.
    """
    rows, n = window.shape
    ordered, order = window.sort(dim=1)
    new = torch.ones_like(ordered, dtype=torch.bool)
    new[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    node_of_sorted = new.long().cumsum(dim=1) - 1
    alias = torch.empty_like(window).scatter_(1, order, node_of_sorted)
    nodes = torch.zeros_like(window).scatter_(1, node_of_sorted, ordered)
    real = window > 0
    edges = torch.zeros(rows, n, n, dtype=torch.float32, device=window.device)
    linked = real[:, :-1] & real[:, 1:]
    row_index = torch.arange(rows, device=window.device).unsqueeze(1).expand(-1, n - 1)
    edges[row_index[linked], alias[:, :-1][linked], alias[:, 1:][linked]] = 1.0
    return SessionGraphs(nodes, alias, real, edges)


def normalised_adjacency(edges: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """SR-GNN's incoming and outgoing adjacency: each node's edges divided by its in- or
    out-degree (rows of nodes without such edges stay zero)."""
    outgoing = edges / edges.sum(dim=2, keepdim=True).clamp_min(1.0)
    incoming_edges = edges.transpose(1, 2)
    incoming = incoming_edges / incoming_edges.sum(dim=2, keepdim=True).clamp_min(1.0)
    return incoming, outgoing


def global_neighbours(sequences: Sequences, n_items: int, hops: int = 3, top: int = 12
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Each item's ``top`` most frequent neighbours within ``hops`` steps (either direction)
    in any training sequence, by count: arrays (n_items + 1, top) of neighbour index + 1 (0:
    none) and counts (0 for none), row i + 1 for item i; row 0 is padding. Memory is
    proportional to the number of distinct neighbour pairs."""
    items = sequences.items.astype(np.int64)
    rows = row_of(sequences.offsets)
    pairs = []
    for hop in range(1, hops + 1):
        same = rows[hop:] == rows[:-hop]
        a, b = items[:-hop][same], items[hop:][same]
        distinct = a != b
        pairs += [a[distinct] * n_items + b[distinct], b[distinct] * n_items + a[distinct]]
    keys, counts = np.unique(np.concatenate(pairs) if pairs else np.zeros(0, np.int64),
                             return_counts=True)
    source, target = keys // n_items, keys % n_items
    # strongest first within each source item (ties: lower item index first)
    order = np.lexsort((target, -counts, source))
    source, target, counts = source[order], target[order], counts[order]
    starts = np.searchsorted(source, np.arange(n_items))
    rank = np.arange(source.size) - starts[source]
    keep = rank < top
    neighbours = np.zeros((n_items + 1, top), dtype=np.int64)
    weights = np.zeros((n_items + 1, top), dtype=np.float32)
    neighbours[source[keep] + 1, rank[keep]] = target[keep] + 1
    weights[source[keep] + 1, rank[keep]] = counts[keep]
    return neighbours, weights
