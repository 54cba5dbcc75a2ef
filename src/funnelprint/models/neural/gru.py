"""GRU4Rec: a recurrent next-item network (Hidasi et al., 2016)."""

from __future__ import annotations

import torch
from torch import nn

from funnelprint.models.neural.layers import Batch, Dropout, NextItemNet


def left_to_right_order(real: torch.Tensor) -> torch.Tensor:
    """Column order that moves each row's left padding to its end (a per-row rotation)."""
    n = real.shape[1]
    pads = n - real.sum(dim=1, keepdim=True)
    return (torch.arange(n, device=real.device).unsqueeze(0) + pads) % n


class GRUNet(NextItemNet):
    """Item embeddings -> GRU -> projection into the item embedding space.

    Windows are left-padded; the GRU would read the padding first and drift, so each row is
    rotated to put its padding at the end (where it cannot affect earlier steps) and back.
    """

    def __init__(self, n_items: int, dim: int = 64, layers: int = 1, dropout: float = 0.2
                 ) -> None:
        super().__init__()
        self.n_items = n_items
        self.items = nn.Embedding(n_items + 1, dim, padding_idx=0)
        self.dropout = Dropout(dropout)
        self.gru = nn.GRU(dim, dim, num_layers=layers, batch_first=True,
                          dropout=dropout if layers > 1 else 0.0)
        self.project = nn.Linear(dim, dim)
        nn.init.normal_(self.items.weight, std=dim ** -0.5)
        with torch.no_grad():
            self.items.weight[0].zero_()

    def embed(self, batch: Batch) -> torch.Tensor:
        return self.items(batch["items"])

    def encode(self, x: torch.Tensor, batch: Batch, return_weights: bool = False
               ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        real = batch["items"] > 0
        order = left_to_right_order(real)
        index = order.unsqueeze(-1).expand(-1, -1, x.shape[-1])
        right = torch.gather(self.dropout(x), 1, index)
        out, _ = self.gru(right)
        back = torch.empty_like(out).scatter_(1, index, out)
        return self.project(back) * real.unsqueeze(-1), []

    def item_weights(self) -> torch.Tensor:
        return self.items.weight[1:]
