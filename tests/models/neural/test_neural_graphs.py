"""Session graphs, the global item graph and prefix windows (models/neural/graphs.py,
batching.py), and the GNN networks built on them (gnn.py)."""

from __future__ import annotations

import numpy as np
import torch

from funnelprint.data.sequences import Sequences
from funnelprint.models.neural.batching import PrefixWindows
from funnelprint.models.neural.gnn import GCEGNNNet, SRGNNNet
from funnelprint.models.neural.graphs import (
    global_neighbours,
    normalised_adjacency,
    session_graphs,
)


def sequences(*rows: list[int]) -> Sequences:
    lengths = [len(r) for r in rows]
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    items = np.array([i for r in rows for i in r], dtype=np.int32)
    return Sequences(offsets, items, np.zeros(items.size, np.int8),
                     np.arange(items.size, dtype=np.int64))


def test_session_graph_has_one_node_per_distinct_item_and_an_edge_per_transition():
    # items (+1): 5 -> 3 -> 5 -> 7, left-padded; and a row without padding
    window = torch.tensor([[0, 0, 5, 3, 5, 7], [2, 2, 2, 2, 2, 2]])
    graphs = session_graphs(window)
    nodes = graphs.nodes[0][graphs.node_mask[0]].tolist()
    assert sorted(nodes) == [3, 5, 7]
    # every real step points at the node of its own item
    real = graphs.real[0]
    assert torch.equal(graphs.nodes[0][graphs.alias[0]][real], window[0][real])
    edges = {(int(graphs.nodes[0][i]), int(graphs.nodes[0][j]))
             for i, j in graphs.edges[0].nonzero().tolist()}
    assert edges == {(5, 3), (3, 5), (5, 7)}
    assert graphs.node_mask[1].sum() == 1 and graphs.edges[1].sum() == 1  # a self-loop
    incoming, outgoing = normalised_adjacency(graphs.edges)
    node5 = int((graphs.nodes[0] == 5).nonzero())
    assert torch.isclose(outgoing[0, node5].sum(), torch.tensor(1.0))
    assert torch.isclose(outgoing[0, node5].max(), torch.tensor(0.5))  # to 3 and to 7
    node7 = int((graphs.nodes[0] == 7).nonzero())
    assert incoming[0, node7, node5] == 1.0 and outgoing[0, node7].sum() == 0  # from 5 only


def test_global_neighbours_count_links_within_the_hops_in_both_directions():
    seq = sequences([0, 1, 2, 3], [1, 0], [4])
    neighbours, counts = global_neighbours(seq, n_items=5, hops=2, top=2)
    assert neighbours.shape == counts.shape == (6, 2)
    # item 0 meets 1 twice (row 0 and row 1) and 2 once; 3 is three steps away
    assert neighbours[1].tolist() == [2, 3] and counts[1].tolist() == [2.0, 1.0]
    assert neighbours[5].tolist() == [0, 0] and counts[5].sum() == 0  # item 4: alone
    assert neighbours[0].sum() == 0  # the padding row


def test_prefix_windows_give_every_prefix_its_next_item():
    seq = sequences([4, 5, 6], [7], [8, 9])
    data = PrefixWindows.of(seq, maxlen=2)
    assert data.n_rows == 3 and data.loss_positions == 3.0
    batches = list(data.batches(8, np.random.default_rng(0), torch.device("cpu")))
    windows = {tuple(b["items"][r].tolist()): int(b["targets"][r, 0])
               for b in batches for r in range(b["items"].shape[0])}
    # (item + 1), left-padded to the batch's width, cut to the last maxlen items
    assert windows == {(0, 5): 6, (5, 6): 7, (0, 9): 10}


def test_gnn_scores_split_exactly_into_step_contributions():
    torch.manual_seed(0)
    neighbours = torch.tensor([[0, 0], [2, 3], [1, 0], [1, 0]])
    counts = torch.tensor([[0.0, 0.0], [2.0, 1.0], [2.0, 0.0], [1.0, 0.0]])
    batch = {"items": torch.tensor([[0, 1, 2, 1, 3], [0, 0, 0, 0, 2]])}
    items = torch.tensor([0, 1, 2])
    for net in (SRGNNNet(n_items=3, dim=8), GCEGNNNet(3, 5, neighbours, counts, dim=8),
                SRGNNNet(n_items=3, dim=8, scale=16.0),
                GCEGNNNet(3, 5, neighbours, counts, dim=8, scale=16.0)):
        net.eval()
        with torch.no_grad():
            scores = net(batch) @ net.item_weights()[items].T
            parts = net.contributions(batch, items)
        assert torch.isfinite(scores).all()
        assert torch.allclose(parts.sum(dim=-1), scores, atol=1e-5)
        assert torch.all(parts[1, :, :-1] == 0)  # padding steps contribute nothing
        if net.scale:  # unit vectors: every score within +-scale
            assert scores.abs().max() <= net.scale + 1e-4
