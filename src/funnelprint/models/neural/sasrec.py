"""SASRec: causal self-attention over the item sequence (Kang & McAuley, 2018), with the
standard transformer block or the gated LiGR block of eSASRec."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from funnelprint.models.neural.layers import (
    Batch,
    Dropout,
    NextItemNet,
    dropout,
    init_embedding,
)


def attention_mask(real: torch.Tensor, causal: bool) -> torch.Tensor:
    """(batch, 1, n, n) boolean mask: attend to real items (earlier ones when causal), and
    always to oneself, so that no row is fully masked (a fully masked row gives NaN)."""
    n = real.shape[1]
    allowed = real[:, None, None, :].expand(-1, 1, n, n)
    if causal:
        allowed = allowed & torch.ones(n, n, dtype=torch.bool, device=real.device).tril()
    return allowed | torch.eye(n, dtype=torch.bool, device=real.device)


class CausalBlock(nn.Module):
    """One transformer block on ``scaled_dot_product_attention`` with an explicit mask.

    Padding keys are masked and every position may attend to itself; this keeps clear of the
    eval-mode fast path of ``nn.TransformerEncoder`` that returned NaN with padding masks.
    """

    def __init__(self, dim: int, heads: int, dropout: float, pre_norm: bool = True,
                 ff: nn.Module | None = None) -> None:
        super().__init__()
        self.heads = heads
        self.pre_norm = pre_norm
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.ff = ff if ff is not None else nn.Sequential(
            nn.Linear(dim, dim), nn.GELU(), Dropout(dropout), nn.Linear(dim, dim))
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.dropout = Dropout(dropout)
        self.attn_dropout = dropout

    def attention(self, x: torch.Tensor, mask: torch.Tensor, return_weights: bool = False
                  ) -> tuple[torch.Tensor, torch.Tensor | None]:
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        weights = None
        if return_weights or (self.training and self.attn_dropout > 0):
            # Explicit attention: the weights are wanted, or dropout on them (the fused kernel
            # draws its dropout mask with the slow CPU bernoulli).
            scores = q @ k.transpose(-1, -2) / (d // self.heads) ** 0.5
            weights = scores.masked_fill(~mask, float("-inf")).softmax(dim=-1)
            out = dropout(weights, self.attn_dropout, self.training) @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out(out.transpose(1, 2).reshape(b, n, d)), \
            weights if return_weights else None

    def forward(self, x: torch.Tensor, mask: torch.Tensor, return_weights: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.pre_norm:
            attended, weights = self.attention(self.norm1(x), mask, return_weights)
            x = x + self.dropout(attended)
            x = x + self.dropout(self.ff(self.norm2(x)))
        else:
            attended, weights = self.attention(x, mask, return_weights)
            x = self.norm1(x + self.dropout(attended))
            x = self.norm2(x + self.dropout(self.ff(x)))
        return x, weights


class SwiGLU(nn.Module):
    """Feed-forward layer ``multiplier`` times as wide as ``dim`` with a SiLU-gated inner
    layer (Shazeer, 2020), no biases."""

    def __init__(self, dim: int, multiplier: int, dropout: float) -> None:
        super().__init__()
        self.inner = nn.Linear(dim, 2 * dim * multiplier, bias=False)  # gate and value
        self.outer = nn.Linear(dim * multiplier, dim, bias=False)
        self.dropout = Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, value = self.inner(x).chunk(2, dim=-1)
        return self.outer(self.dropout(F.silu(gate) * value))


class LiGRBlock(CausalBlock):
    """The gated block of LiGR (LinkedIn, 2025), as eSASRec uses it: pre-LayerNorm attention
    and a SwiGLU feed-forward layer, each added to the residual stream through a sigmoid
    gate computed from the stream itself."""

    def __init__(self, dim: int, heads: int, dropout: float, ff_multiplier: int = 4) -> None:
        super().__init__(dim, heads, dropout, pre_norm=True,
                         ff=SwiGLU(dim, ff_multiplier, dropout))
        self.gate1 = nn.Linear(dim, dim)
        self.gate2 = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, return_weights: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        attended, weights = self.attention(self.norm1(x), mask, return_weights)
        x = x + torch.sigmoid(self.gate1(x)) * self.dropout(attended)
        x = x + torch.sigmoid(self.gate2(x)) * self.dropout(self.ff(self.norm2(x)))
        return x, weights


def make_block(kind: str, dim: int, heads: int, dropout: float, pre_norm: bool = True,
               ff_multiplier: int = 4) -> CausalBlock:
    """A ``"standard"`` transformer block or a gated ``"ligr"`` one."""
    if kind == "ligr":
        return LiGRBlock(dim, heads, dropout, ff_multiplier)
    if kind == "standard":
        return CausalBlock(dim, heads, dropout, pre_norm)
    raise ValueError(f"block must be 'standard' or 'ligr', not {kind!r}")


class SASRecNet(NextItemNet):
    """Item + learned position (+ optional action and time-gap) embeddings -> attention blocks
    -> hidden state per position.

    With ``causal`` (SASRec) position t sees items up to t; without it (BERT4Rec) every real
    item sees every other, and ``mask_token`` adds one extra input token for masked steps.
    ``n_actions`` / ``n_gaps`` > 0 add embeddings of the action type and of the time-gap
    bucket of each step (the action-aware model). ``block`` picks the block type (see
    :func:`make_block`).
    """

    def __init__(self, n_items: int, maxlen: int, dim: int = 64, blocks: int = 2, heads: int = 1,
                 dropout: float = 0.2, pre_norm: bool = True, causal: bool = True,
                 n_actions: int = 0, n_gaps: int = 0, mask_token: bool = False,
                 block: str = "standard", ff_multiplier: int = 4) -> None:
        super().__init__()
        self.causal = causal
        self.maxlen = maxlen
        self.n_items = n_items
        self.items = nn.Embedding(n_items + 1 + int(mask_token), dim, padding_idx=0)
        self.positions = nn.Embedding(maxlen, dim)
        self.actions = nn.Embedding(n_actions + 1, dim, padding_idx=0) if n_actions else None
        self.gaps = nn.Embedding(n_gaps + 1, dim, padding_idx=0) if n_gaps else None
        self.dropout = Dropout(dropout)
        self.blocks = nn.ModuleList([make_block(block, dim, heads, dropout, pre_norm,
                                                ff_multiplier) for _ in range(blocks)])
        self.norm = nn.LayerNorm(dim)
        for table in (self.items, self.actions, self.gaps):
            if table is not None:
                init_embedding(table)
        # Positions on the scale of the (sqrt(dim)-scaled) item input: much smaller and order
        # is hard to learn; much larger and they drown a large catalogue's items.
        item_std = (2.0 / (self.items.num_embeddings + dim)) ** 0.5
        nn.init.normal_(self.positions.weight, std=item_std * dim ** 0.5)

    def embed(self, batch: Batch) -> torch.Tensor:
        # Windows are right-aligned: the last column is always position maxlen - 1, so a batch
        # trimmed of leading padding columns keeps every item's position.
        inputs = batch["items"]
        n = inputs.shape[1]
        positions = torch.arange(self.maxlen - n, self.maxlen, device=inputs.device)
        x = self.items(inputs) * self.items.embedding_dim ** 0.5 + self.positions(positions)
        if self.actions is not None:
            x = x + self.actions(batch["actions"])
        if self.gaps is not None:
            x = x + self.gaps(batch["gaps"])
        return x

    def encode(self, x: torch.Tensor, batch: Batch, return_weights: bool = False
               ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        real = batch["items"] > 0
        x = self.dropout(x) * real.unsqueeze(-1)
        mask = attention_mask(real, self.causal)
        weights = []
        for block in self.blocks:
            x, w = block(x, mask, return_weights)
            if w is not None:
                weights.append(w)
        return self.norm(x), weights

    def item_weights(self) -> torch.Tensor:
        """Output embeddings of items 1..n (shared with the input table)."""
        return self.items.weight[1: self.n_items + 1]
