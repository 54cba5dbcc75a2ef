"""The action-aware network of ``funnelformer``: SASRec's encoder over item + action +
time-gap embeddings, plus two optional parts that put funnel actions to work directly: a
purchase-intent head (a second projection of the hidden state, trained on the next
purchased item) and :class:`~funnelprint.models.neural.evidence.Evidence` (a learned score
for the items already in the window, by the action taken on them and how long ago)."""

from __future__ import annotations

import torch
from torch import nn

from funnelprint.models.neural.evidence import Evidence
from funnelprint.models.neural.layers import Batch
from funnelprint.models.neural.sasrec import SASRecNet


class FunnelNet(SASRecNet):
    """:class:`SASRecNet` plus, with ``purchase_head``, a linear map of the hidden state
    that scores the next *purchase*, and, with ``evidence``, one evidence table per head
    (head 0: the next item, head 1: the next purchase)."""

    def __init__(self, n_items: int, maxlen: int, dim: int, blocks: int, heads: int,
                 dropout: float, pre_norm: bool, n_actions: int, n_gaps: int, block: str,
                 ff_multiplier: int, purchase_head: bool = False, evidence: bool = False
                 ) -> None:
        super().__init__(n_items, maxlen, dim, blocks, heads, dropout, pre_norm,
                         n_actions=n_actions, n_gaps=n_gaps, block=block,
                         ff_multiplier=ff_multiplier)
        self.purchase = nn.Linear(dim, dim) if purchase_head else None
        if evidence and not n_actions:
            raise ValueError("evidence reads the actions: it needs the action input")
        self.evidence = Evidence(n_actions, 1 + int(purchase_head)) if evidence else None

    def head_states(self, hidden: torch.Tensor, head: int) -> torch.Tensor:
        """The hidden states as read by ``head`` (0: next item, 1: next purchase)."""
        if head == 0:
            return hidden
        if self.purchase is None:
            raise ValueError("this network has no purchase head")
        out: torch.Tensor = self.purchase(hidden)
        return out

    def last_scores(self, batch: Batch, head: int) -> torch.Tensor:
        """Scores of every item after each row's last step, by ``head``, evidence
        included."""
        hidden = self.head_states(self(batch)[0][:, -1], head)
        scores = hidden @ self.item_weights().T
        if self.evidence is not None:
            scores = scores + self.evidence.last_scores(batch["items"], batch["actions"],
                                                        self.n_items, head)
        return scores
