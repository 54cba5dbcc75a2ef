"""The next-item sequential models, registered under their keys: SASRec, Funnelformer,
BERT4Rec and GRU4Rec. (BST, a re-ranker of another model's candidates, lives in
:mod:`.reranker`; the GNNs in :mod:`.graph_models`; the sequential VAE in
:mod:`.vae_models`.)"""

from __future__ import annotations

import numpy as np
import torch

from funnelprint.data.dataset import Dataset
from funnelprint.data.sequences import Sequences
from funnelprint.models.neural.base import NextItemRecommender
from funnelprint.models.neural.batching import (
    N_GAP_BUCKETS,
    first_real_column,
    last_window,
    training_windows,
)
from funnelprint.models.neural.config import (
    BERT4RecConfig,
    FunnelformerConfig,
    GRU4RecConfig,
    SASRecConfig,
)
from funnelprint.models.neural.evidence import history_softmax_loss
from funnelprint.models.neural.funnel import FunnelNet
from funnelprint.models.neural.gru import GRUNet
from funnelprint.models.neural.layers import Batch, NextItemNet
from funnelprint.models.neural.sasrec import SASRecNet
from funnelprint.models.neural.training import TrainConfig, position_mean, sequence_loss
from funnelprint.models.registry import register


@register
class SASRec(NextItemRecommender[SASRecConfig]):
    """Causal self-attention (pre-LayerNorm by default) with learned positions (Kang &
    McAuley, 2018)."""

    key = "sasrec"
    config_class = SASRecConfig

    def build(self, dataset: Dataset) -> NextItemNet:
        c = self.config
        return SASRecNet(dataset.n_items, c.maxlen, c.dim, c.blocks, c.heads, c.dropout,
                         c.pre_norm, block=c.block, ff_multiplier=c.ff_multiplier)


@register
class Funnelformer(NextItemRecommender[FunnelformerConfig]):
    """Action-aware transformer: each step embeds item + action type + position + time-gap
    bucket (time since the customer's previous event).

    ``target="any"`` predicts the next item whatever the action. ``target="purchase"`` adds
    a purchase-intent head trained on the next *purchased* item from every step before it
    (beside the next item, which keeps every step a target) and scores with it.
    ``evidence`` adds a learned score to the items already in the window, by the action
    taken on them and how many steps ago (a cart for, a removal against), trained against
    the window's own items. ``use_actions`` / ``use_gaps`` switch the extra inputs off
    (with both off and no evidence it is SASRec), for ablations.
    """

    key = "funnelformer"
    config_class = FunnelformerConfig

    @property
    def _head(self) -> int:
        return 1 if self.config.target == "purchase" else 0

    def build(self, dataset: Dataset) -> NextItemNet:
        c = self.config
        n_actions = len(dataset.action_names) if c.use_actions else 0
        return FunnelNet(dataset.n_items, c.maxlen, c.dim, c.blocks, c.heads, c.dropout,
                         c.pre_norm, n_actions, N_GAP_BUCKETS if c.use_gaps else 0, c.block,
                         c.ff_multiplier, purchase_head=c.target == "purchase",
                         evidence=c.evidence)

    @property
    def _funnel(self) -> FunnelNet:
        net = self.net_
        if not isinstance(net, FunnelNet):
            raise TypeError("the funnelformer network is not a FunnelNet")
        return net

    def training_arrays(self, sequences: Sequences) -> dict[str, np.ndarray]:
        maxlen = self.config.maxlen
        arrays = training_windows(sequences, maxlen, self.features)
        if self.config.target == "purchase":
            if "purchase" not in self.dataset_.action_names:
                raise ValueError("target='purchase' needs a dataset with purchases")
            purchase = self.dataset_.action_names.index("purchase")
            usable = sequences.select(np.flatnonzero(sequences.lengths >= 2))
            ahead = next_action_items(usable, purchase)
            arrays["purchase_targets"] = last_window(usable, maxlen + 1, ahead)[:, :-1]
        return arrays

    def batch_loss(self, batch: Batch, config: TrainConfig, generator: torch.Generator
                   ) -> torch.Tensor:
        net = self._funnel
        hidden = net(batch)[0]
        names = ("targets", "purchase_targets")[: 1 + self._head]
        loss = torch.zeros((), device=hidden.device)
        for head, name in enumerate(names):
            states = net.head_states(hidden, head)
            if net.evidence is None:
                loss = loss + sequence_loss(states, batch[name], net.items.weight,
                                            net.n_items, config, generator)
            else:
                loss = loss + position_mean(history_softmax_loss(
                    states, batch[name], batch["items"], batch["actions"], net.items.weight,
                    net.n_items, net.evidence, head, self.config.negatives, generator),
                    config)
        return loss

    def _item_scores(self, x: torch.Tensor, batch: Batch, items: np.ndarray
                     ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The network part of the scores (the head the model scores with), for
        explanations."""
        hidden, weights = self.net_.encode(x, batch, return_weights=True)
        states = self._funnel.head_states(hidden[:, -1], self._head)
        wanted = torch.as_tensor(items, device=self.device_)
        return (states @ self.net_.item_weights()[wanted].T)[0], weights

    def explain(self, history: Sequences, items: np.ndarray) -> np.ndarray:
        """See :meth:`NextItemRecommender.explain`; with ``evidence``, each item's steps also
        carry their evidence for it: the network's share (its attribution times its positive
        score) plus each step's positive evidence, normalised."""
        rows = super().explain(history, items)
        evidence = self._funnel.evidence
        if evidence is None or not rows.size:
            return rows
        items = self._checked_items(items)
        batch = self.inputs(history)
        with torch.no_grad():
            network, _ = self._item_scores(self.net_.embed(batch), batch, items)
            steps = evidence.step_weights(batch["actions"], self._head)[0, :, -1]
            on_item = batch["items"][0][None, :] == torch.as_tensor(items + 1)[:, None]
            own = (on_item * steps[None, :]).clamp_min(0.0).numpy()
        combined = rows * np.maximum(network.numpy(), 0.0)[:, None] + own
        total = combined.sum(axis=1, keepdims=True)
        return np.where(total > 0, combined / np.maximum(total, 1e-12), rows)

    def score(self, history: Sequences, customers: np.ndarray | None = None) -> np.ndarray:
        self._check_fitted()
        net = self._funnel
        net.eval()
        with torch.no_grad():
            scores = net.last_scores(self.inputs(history), self._head)
        return scores.float().cpu().numpy()


def next_action_items(seq: Sequences, action: int) -> np.ndarray:
    """Per step, the item of the customer's next later step with ``action`` (-1 if none)."""
    hits = np.flatnonzero(seq.actions == action)
    after = np.searchsorted(hits, np.arange(seq.items.size), side="right")
    found = after < hits.size
    nxt = hits[np.minimum(after, max(hits.size - 1, 0))] if hits.size else after
    row_end = np.repeat(seq.offsets[1:], seq.lengths)
    ok = found & (nxt < row_end) if hits.size else np.zeros(seq.items.size, dtype=bool)
    out = np.full(seq.items.size, -1, dtype=np.int64)
    out[ok] = seq.items[nxt[ok]]
    return out


@register
class BERT4Rec(NextItemRecommender[BERT4RecConfig]):
    """Bidirectional self-attention trained to recover randomly masked items (Sun et al.,
    2019); at scoring time a mask token is appended after the history."""

    key = "bert4rec"
    config_class = BERT4RecConfig

    def build(self, dataset: Dataset) -> NextItemNet:
        c = self.config
        return SASRecNet(dataset.n_items, c.maxlen, c.dim, c.blocks, c.heads, c.dropout,
                         c.pre_norm, causal=False, mask_token=True, block=c.block,
                         ff_multiplier=c.ff_multiplier)

    def training_arrays(self, sequences: Sequences) -> dict[str, np.ndarray]:
        rows = sequences.select(np.flatnonzero(sequences.lengths >= 2))
        items = last_window(rows, self.config.maxlen)
        return {"items": items, "targets": items}

    def loss_positions(self, arrays: dict[str, np.ndarray], lengths: np.ndarray) -> float:
        # each real item is masked with mask_prob; a row with none masked trains on its last
        p = self.config.mask_prob
        return float((p * lengths + (1.0 - p) ** lengths).sum())

    def batch_loss(self, batch: Batch, config: TrainConfig, generator: torch.Generator
                   ) -> torch.Tensor:
        items = batch["items"]
        real = items > 0
        draw = torch.rand(items.shape, device=items.device, generator=generator)
        masked = (draw < self.config.mask_prob) & real
        # every row trains on at least its last item, the step that scoring asks about
        masked[:, -1] |= ~masked.any(dim=1)
        inputs = torch.where(masked, torch.full_like(items, self.net_.n_items + 1), items)
        hidden = self.net_({"items": inputs})[0]
        return sequence_loss(hidden, torch.where(masked, items, 0), self.net_.items.weight,
                             self.net_.n_items, config, generator)

    def inputs(self, history: Sequences) -> Batch:
        window = last_window(history, self.config.maxlen - 1)
        mask = np.full((history.n_rows, 1), self.dataset_.n_items + 1, dtype=np.int64)
        items = np.concatenate([window, mask], axis=1)
        first = first_real_column(items)
        return {"items": torch.from_numpy(items[:, first:]).to(self.device_)}

    def explain(self, history: Sequences, items: np.ndarray) -> np.ndarray:
        weights = super().explain(history, items)[:, :-1]  # drop the appended mask step
        return weights / np.maximum(weights.sum(axis=1, keepdims=True), 1e-12)

    def self_attention(self, history: Sequences) -> np.ndarray | None:
        matrix = super().self_attention(history)
        return None if matrix is None else matrix[:-1, :-1]


@register
class GRU4Rec(NextItemRecommender[GRU4RecConfig]):
    """Recurrent baseline (Hidasi et al., 2016) trained with the shared losses; explanations
    come from gradient x input attribution."""

    key = "gru4rec"
    config_class = GRU4RecConfig
    explain_with = "gradient"

    def build(self, dataset: Dataset) -> NextItemNet:
        c = self.config
        return GRUNet(dataset.n_items, c.dim, c.layers, c.dropout)
