"""The session-graph recommenders, registered under their keys: SR-GNN (``srgnn``) and
GCE-GNN (``gcegnn``).

Each reads the window of a customer's last ``maxlen`` steps as a session graph
(:mod:`.graphs`), trains on every prefix of every training sequence (the next step is the
target) with the shared losses, and scores the whole catalogue. A score is a sum of one
term per history step (:meth:`.gnn.SessionNet.contributions`), so the reasons name the
steps that added most to *that* item's score. GCE-GNN also says which of a step's
neighbours in the global item graph weighed most (:meth:`GCEGNN.neighbour_weights`).
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

from funnelprint.data.dataset import Dataset
from funnelprint.data.sequences import Sequences
from funnelprint.models.contract import Reason, Validator
from funnelprint.models.neural.base import SequentialRecommender
from funnelprint.models.neural.batching import PrefixWindows, Windows
from funnelprint.models.neural.config import GCEGNNConfig, SequentialConfig, SRGNNConfig
from funnelprint.models.neural.gnn import GCEGNNNet, SessionNet, SRGNNNet
from funnelprint.models.neural.graphs import global_neighbours, session_graphs
from funnelprint.models.neural.layers import Batch
from funnelprint.models.neural.training import TrainConfig, sequence_loss
from funnelprint.models.registry import register

SC = TypeVar("SC", bound=SequentialConfig)
SN = TypeVar("SN", bound=SessionNet)


class SessionGraphRecommender(SequentialRecommender[SC, SN]):
    """Shared training, scoring and explanations of the session-graph networks."""

    explain_with = "graph"

    def training_data(self, sequences: Sequences) -> Windows | PrefixWindows:
        return PrefixWindows.of(sequences, self.config.maxlen)

    def batch_loss(self, batch: Batch, config: TrainConfig, generator: torch.Generator
                   ) -> torch.Tensor:
        session = self.net_(batch).unsqueeze(1)
        return sequence_loss(session, batch["targets"], self.net_.output_table(),
                             self.net_.n_items, config, generator)

    def score(self, history: Sequences, customers: np.ndarray | None = None) -> np.ndarray:
        self._check_fitted()
        self.net_.eval()
        with torch.no_grad():
            scores = self.net_(self.inputs(history)) @ self.net_.item_weights().T
        return scores.float().cpu().numpy()

    def explain(self, history: Sequences, items: np.ndarray) -> np.ndarray:
        """Each step's share of each item's score (the positive parts, normalised; the
        magnitudes where no step adds to it)."""
        self._check_fitted()
        if history.n_rows != 1:
            raise ValueError("explain takes the history of one customer")
        items = self._checked_items(items)
        self.net_.eval()
        with torch.no_grad():
            parts = self.net_.contributions(self.inputs(history),
                                            torch.as_tensor(items, device=self.device_))[0]
        positive = parts.clamp_min(0.0)
        none = positive.sum(dim=1, keepdim=True) <= 0
        rows = torch.where(none, parts.abs(), positive)
        rows = rows / rows.sum(dim=1, keepdim=True).clamp_min(1e-12)
        out: np.ndarray = rows.float().cpu().numpy()
        return out


@register
class SRGNN(SessionGraphRecommender[SRGNNConfig, SRGNNNet]):
    """SR-GNN (Wu et al., AAAI 2019): gated graph steps over the session graph, then the
    last step and an attention-pooled sum of all steps."""

    key = "srgnn"
    config_class = SRGNNConfig

    def build(self, dataset: Dataset) -> SRGNNNet:
        c = self.config
        return SRGNNNet(dataset.n_items, c.dim, c.gnn_steps, c.dropout, c.scale)


@register
class GCEGNN(SessionGraphRecommender[GCEGNNConfig, GCEGNNNet]):
    """GCE-GNN (Wang et al., SIGIR 2020): session-level attention over the session graph
    plus global-level attention over each item's strongest neighbours in the item graph of
    all training sequences, pooled with reversed-position attention.

    The global graph is counted from the training data in :meth:`fit` and saved with the
    weights."""

    key = "gcegnn"
    config_class = GCEGNNConfig

    def build(self, dataset: Dataset) -> GCEGNNNet:
        c = self.config
        shape = (dataset.n_items + 1, c.neighbours)
        return GCEGNNNet(dataset.n_items, c.maxlen, torch.zeros(shape, dtype=torch.long),
                         torch.zeros(shape), c.dim, c.dropout, c.scale)

    def prepare(self, train: Dataset, valid: Validator | None) -> None:
        """Count the global item graph of the training sequences."""
        c = self.config
        neighbours, counts = global_neighbours(train.sequences, train.n_items, c.hops,
                                               c.neighbours)
        self.net_.neighbours.copy_(torch.from_numpy(neighbours))
        self.net_.counts.copy_(torch.from_numpy(counts))

    def neighbour_weights(self, history: Sequences, top: int = 3
                          ) -> list[list[tuple[int, float]]]:
        """Per step of one customer's scored window (oldest first): the ``top`` global
        neighbours of its item (item indices) with the attention each got."""
        self._check_fitted()
        if history.n_rows != 1:
            raise ValueError("neighbour weights take the history of one customer")
        net = self.net_
        net.eval()
        with torch.no_grad():
            graphs = session_graphs(self.inputs(history)["items"])
            _, attention = net.node_vectors(graphs)
            alias = graphs.alias[0][graphs.real[0]]
            neighbours = net.neighbours[graphs.nodes[0]][alias]
            weights = attention[0][alias]
        out = []
        for ids, w in zip(neighbours.cpu().numpy(), weights.cpu().numpy(), strict=True):
            order = np.argsort(-w, kind="stable")[:top]
            out.append([(int(ids[j]) - 1, round(float(w[j]), 4)) for j in order if ids[j] > 0])
        return out

    def reasons(self, history: Sequences, items: np.ndarray, top_steps: int = 3
                ) -> list[Reason]:
        """See :meth:`SequentialRecommender.reasons`; the text also names the global
        neighbour that weighed most for the leading step."""
        found = super().reasons(history, items, top_steps)
        if not found:
            return found
        leading = self.explain(history, self._checked_items(items)).argmax(axis=1)
        window = self.neighbour_weights(history, top=1)
        ids = self.dataset_.item_ids
        for reason, step in zip(found, leading, strict=True):
            if reason["evidence"] and step < len(window) and window[step]:
                item, weight = window[step][0]
                reason["text"] += f"; its closest link elsewhere: {ids[item]} ({weight:.0%})"
        return found
