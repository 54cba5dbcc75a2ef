"""The sequential models registered under their ``evaluate`` keys."""

from __future__ import annotations

import torch

from funnelprint.models.base import register
from funnelprint.models.neural.base import SequentialRecommender
from funnelprint.models.neural.sasrec import SASRecNet


@register
class SASRec(SequentialRecommender):
    """Causal self-attention (pre-LayerNorm by default) with learned positions."""

    key = "sasrec"

    def __init__(self, pre_norm: bool = True, **params: object) -> None:
        super().__init__(**params)  # type: ignore[arg-type]
        self.pre_norm = pre_norm

    def build(self, n_items: int) -> torch.nn.Module:
        return SASRecNet(n_items, self.maxlen, self.dim, self.blocks, self.heads, self.dropout,
                         self.pre_norm)
