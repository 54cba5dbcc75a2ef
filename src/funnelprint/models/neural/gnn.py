"""Graph neural networks over session graphs: SR-GNN (Wu et al., AAAI 2019) and GCE-GNN
(Wang et al., SIGIR 2020).

Both read a window of a customer's last steps as a graph of its distinct items
(:func:`~funnelprint.models.neural.graphs.session_graphs`), propagate item vectors along its
edges, map the node vectors back onto the window's steps and pool the steps into one
session vector whose dot product with each item's embedding scores that item. The pooling is
a weighted sum, so a score splits exactly into one term per step
(:meth:`SessionNet.contributions`): that is what explanations read.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
import torch.nn.functional as F
from torch import nn

from funnelprint.models.neural.graphs import SessionGraphs, normalised_adjacency, session_graphs
from funnelprint.models.neural.layers import Batch, Dropout


def init_items(table: nn.Embedding) -> None:
    """Uniform in +-dim^-0.5, padding row zero, as in the reference implementations of both
    GNNs: with the far smaller xavier init of the transformers' tables (which scale their
    input by sqrt(dim) and normalise it), the graph steps and the pooled session vector
    stay tiny and learning crawls (REES46 by session, SR-GNN loo-full NDCG@10: 0.0219 with
    xavier, see the README for the figure with this init)."""
    bound = table.embedding_dim ** -0.5
    nn.init.uniform_(table.weight, -bound, bound)
    with torch.no_grad():
        table.weight[0].zero_()


def steps_of(nodes: torch.Tensor, graphs: SessionGraphs) -> torch.Tensor:
    """Node vectors (rows, n, dim) placed on the window's steps through ``graphs.alias``."""
    return torch.gather(nodes, 1, graphs.alias.unsqueeze(-1).expand(-1, -1, nodes.shape[-1]))


class SessionNet(nn.Module, ABC):
    """A network that pools a window's steps into one session vector: ``session`` returns
    the step vectors (rows, n, dim) and their pooling weights (rows, n), zero on padding;
    the session vector is the weighted sum of the steps plus ``extra`` (a term of the last
    step's vector alone, or zero)."""

    n_items: int
    items: nn.Embedding
    #: Above 0: session vectors and item embeddings are scored as unit vectors, the score
    #: multiplied by ``scale`` (NISER, Gupta et al., 2019); 0: plain dot products.
    scale: float = 0.0

    def __init__(self, n_items: int, dim: int, scale: float) -> None:
        super().__init__()
        self.n_items = n_items
        self.scale = scale
        self.items = nn.Embedding(n_items + 1, dim, padding_idx=0)
        init_items(self.items)

    @abstractmethod
    def steps(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per step of the window: vectors that add up to the session vector, weighted by
        the second output; the third is a term (rows, dim) added outside the sum."""

    def _pooled(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                             torch.Tensor]:
        """The steps, their weights, the extra term, and the factor (rows, 1) the raw
        session vector is multiplied by."""
        vectors, weights, extra = self.steps(batch)
        session = (weights.unsqueeze(-1) * vectors).sum(dim=1) + extra
        if self.scale > 0:
            factor = self.scale / session.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        else:
            factor = torch.ones_like(session[:, :1])
        return vectors, weights, extra, factor

    def forward(self, batch: Batch) -> torch.Tensor:
        """Session vectors (rows, dim)."""
        vectors, weights, extra, factor = self._pooled(batch)
        return ((weights.unsqueeze(-1) * vectors).sum(dim=1) + extra) * factor

    def contributions(self, batch: Batch, items: torch.Tensor) -> torch.Tensor:
        """Each step's share of the score of each item: (rows, len(items), n); the extra
        term counts to the last step. Summed over steps it is the item's score."""
        vectors, weights, extra, factor = self._pooled(batch)
        table = self.item_weights()[items]
        parts = weights.unsqueeze(1) * torch.einsum("rnd,cd->rcn", vectors, table)
        last = extra @ table.T
        parts[:, :, -1] += last
        return parts * factor.unsqueeze(-1)

    def output_table(self) -> torch.Tensor:
        """The item table as scores read it (row i + 1 = item i; row 0 padding): unit rows
        when ``scale`` is set."""
        table = self.items.weight
        return nn.functional.normalize(table, dim=-1) if self.scale > 0 else table

    def item_weights(self) -> torch.Tensor:
        """Output embeddings of items 0..n_items - 1."""
        return self.output_table()[1: self.n_items + 1]


class GatedGraphStep(nn.Module):
    """One step of SR-GNN's gated graph network: messages along incoming and outgoing
    edges (degree-normalised), then a GRU update of each node."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.incoming = nn.Linear(dim, dim)
        self.outgoing = nn.Linear(dim, dim)
        self.gru = nn.GRUCell(2 * dim, dim)

    def forward(self, h: torch.Tensor, incoming: torch.Tensor, outgoing: torch.Tensor
                ) -> torch.Tensor:
        message = torch.cat([incoming @ self.incoming(h), outgoing @ self.outgoing(h)], dim=-1)
        rows, n, dim = h.shape
        return self.gru(message.reshape(rows * n, 2 * dim), h.reshape(rows * n, dim)).view(
            rows, n, dim)


class SRGNNNet(SessionNet):
    """SR-GNN: ``gnn_steps`` gated graph steps over the session graph; the session vector
    is W [last step ; sum_i a_i v_i] with a_i = q . sigmoid(W1 v_last + W2 v_i + c)."""

    def __init__(self, n_items: int, dim: int = 64, gnn_steps: int = 1, dropout: float = 0.2,
                 scale: float = 0.0) -> None:
        super().__init__(n_items, dim, scale)
        self.dropout = Dropout(dropout)
        self.graph_steps = nn.ModuleList([GatedGraphStep(dim) for _ in range(gnn_steps)])
        self.last_query = nn.Linear(dim, dim)
        self.step_key = nn.Linear(dim, dim, bias=False)
        self.score = nn.Linear(dim, 1, bias=False)
        self.combine_last = nn.Linear(dim, dim, bias=False)
        self.combine_global = nn.Linear(dim, dim, bias=False)

    def steps(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        graphs = session_graphs(batch["items"])
        h = self.dropout(self.items(graphs.nodes))
        incoming, outgoing = normalised_adjacency(graphs.edges)
        for step in self.graph_steps:
            h = step(h, incoming, outgoing)
        v = steps_of(h, graphs)
        last = v[:, -1]
        a = self.score(torch.sigmoid(self.last_query(last).unsqueeze(1) + self.step_key(v)))
        weights = a.squeeze(-1) * graphs.real
        # W [last ; sum a_i v_i] = W_last last + sum a_i (W_global v_i)
        return self.combine_global(v), weights, self.combine_last(last)


class LocalAggregator(nn.Module):
    """GCE-GNN's session-level layer: attention over each node's session-graph neighbours,
    with one attention vector per relation (self, outgoing, incoming, both ways)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.relations = nn.Parameter(torch.randn(4, dim) * dim ** -0.5)

    def forward(self, h: torch.Tensor, graphs: SessionGraphs) -> torch.Tensor:
        edges = graphs.edges
        # relation codes: 1 self, 2 outgoing only, 3 incoming only, 4 both ways
        outgoing, incoming = edges > 0, edges.transpose(1, 2) > 0
        n = edges.shape[1]
        eye = torch.eye(n, dtype=torch.bool, device=edges.device).unsqueeze(0)
        node = graphs.node_mask
        relation = torch.zeros_like(edges, dtype=torch.long)
        relation[outgoing & ~incoming] = 2
        relation[incoming & ~outgoing] = 3
        relation[outgoing & incoming] = 4
        relation[eye & node.unsqueeze(-1)] = 1
        # (h_i * a_r) . h_j for every relation r, then each pair's own relation
        weighted = h.unsqueeze(1) * self.relations[None, :, None, :]  # (rows, 4, n, dim)
        per_relation = weighted @ h.unsqueeze(1).transpose(-1, -2)  # (rows, 4, n, n)
        scores = F.leaky_relu(per_relation.gather(
            1, (relation - 1).clamp_min(0).unsqueeze(1)).squeeze(1), 0.2)
        allowed = relation > 0
        allowed = allowed | (eye & ~node.unsqueeze(-1))  # an empty node keeps itself
        weights = scores.masked_fill(~allowed, float("-inf")).softmax(dim=-1)
        return weights @ h


class GlobalAggregator(nn.Module):
    """GCE-GNN's global-level layer: each node attends over its strongest neighbours in the
    global item graph, weighted by how well each neighbour fits the session (its vector
    times the session mean) and by the edge's (log) count; the result is mixed with the
    node's own vector."""

    def __init__(self, dim: int, dropout: float) -> None:
        super().__init__()
        self.attend = nn.Linear(dim + 1, dim)
        self.score = nn.Linear(dim, 1, bias=False)
        self.mix = nn.Linear(2 * dim, dim)
        self.dropout = Dropout(dropout)

    def forward(self, h: torch.Tensor, neighbours: torch.Tensor, neighbour_h: torch.Tensor,
                counts: torch.Tensor, session: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """``neighbours`` (rows, n, K) item + 1 (0: none), their vectors (rows, n, K, dim)
        and counts (rows, n, K); ``session`` (rows, dim). Returns the new node vectors and
        the attention over neighbours (rows, n, K)."""
        fit = session[:, None, None, :] * neighbour_h
        scores = self.score(F.leaky_relu(self.attend(torch.cat(
            [fit, torch.log1p(counts).unsqueeze(-1)], dim=-1)), 0.2)).squeeze(-1)
        present = neighbours > 0
        # a large finite mask: a node without neighbours gets zero weights, not NaN
        weights = scores.masked_fill(~present, -1e9).softmax(dim=-1) * present
        pooled = (weights.unsqueeze(-1) * neighbour_h).sum(dim=2)
        mixed = torch.relu(self.mix(torch.cat([h, pooled], dim=-1)))
        return self.dropout(mixed), weights


class GCEGNNNet(SessionNet):
    """GCE-GNN: session-level attention over the session graph plus global-level attention
    over each item's strongest neighbours in the global item graph (``neighbours`` /
    ``counts``: (n_items + 1, K) buffers, row i + 1 for item i), summed; the steps then
    carry reversed-position embeddings and are pooled by soft attention against the
    session mean."""

    def __init__(self, n_items: int, maxlen: int, neighbours: torch.Tensor,
                 counts: torch.Tensor, dim: int = 64, dropout: float = 0.2,
                 scale: float = 0.0) -> None:
        super().__init__(n_items, dim, scale)
        self.positions = nn.Embedding(maxlen, dim)
        nn.init.normal_(self.positions.weight, std=dim ** -0.5)
        self.neighbours: torch.Tensor
        self.counts: torch.Tensor
        self.register_buffer("neighbours", neighbours.long())
        self.register_buffer("counts", counts.float())
        self.local = LocalAggregator(dim)
        self.global_ = GlobalAggregator(dim, dropout)
        self.dropout = Dropout(dropout)
        self.position_mix = nn.Linear(2 * dim, dim)
        self.step_key = nn.Linear(dim, dim)
        self.mean_query = nn.Linear(dim, dim, bias=False)
        self.score = nn.Linear(dim, 1, bias=False)

    def node_vectors(self, graphs: SessionGraphs) -> tuple[torch.Tensor, torch.Tensor]:
        """Node vectors after both aggregators, and the global attention over each node's
        neighbours (rows, n, K)."""
        h = self.items(graphs.nodes)
        real = graphs.real.unsqueeze(-1).float()
        session = (steps_of(h, graphs) * real).sum(1) / real.sum(1).clamp_min(1.0)
        neighbours = self.neighbours[graphs.nodes]
        global_h, attention = self.global_(h, neighbours, self.items(neighbours),
                                           self.counts[graphs.nodes], session)
        local_h = self.local(h, graphs)
        return self.dropout(local_h) + global_h, attention

    def steps(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        graphs = session_graphs(batch["items"])
        h, _ = self.node_vectors(graphs)
        v = steps_of(h, graphs)
        real = graphs.real
        n = v.shape[1]
        # position counted from the window's end (the last step is position 0)
        reverse = self.positions(torch.arange(n - 1, -1, -1, device=v.device)).unsqueeze(0)
        z = torch.tanh(self.position_mix(torch.cat([v, reverse.expand_as(v)], dim=-1)))
        mean = (v * real.unsqueeze(-1)).sum(1) / real.sum(1, keepdim=True).clamp_min(1)
        beta = self.score(torch.sigmoid(self.step_key(z) + self.mean_query(mean).unsqueeze(1)))
        weights = beta.squeeze(-1) * real
        return v, weights, torch.zeros_like(mean)
