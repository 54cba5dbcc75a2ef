"""BST head: behaviour sequence + candidate item -> click/buy logit (Chen et al., 2019).

The behaviour sequence is encoded once by causal self-attention; the candidate then attends
over the encoded history (target attention) and an MLP reads the history state, the attended
context, the candidate and their product (and, as a re-ranker, side features of the
candidate: where the candidate generator ranked it). In the paper the candidate is appended to the
sequence; attending from the candidate instead keeps one encoder pass per customer, which is
what makes re-ranking hundreds of candidates cheap.
"""

from __future__ import annotations

import torch
from torch import nn

from funnelprint.models.neural.layers import Dropout
from funnelprint.models.neural.sasrec import SASRecNet


class BSTNet(nn.Module):
    def __init__(self, n_items: int, maxlen: int, dim: int = 64, blocks: int = 1,
                 heads: int = 1, dropout: float = 0.2, n_actions: int = 0, n_gaps: int = 0,
                 hidden: tuple[int, ...] = (128, 64), n_side: int = 0) -> None:
        super().__init__()
        self.n_side = n_side
        self.encoder = SASRecNet(n_items, maxlen, dim, blocks, heads, dropout, True, True,
                                 n_actions, n_gaps)
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        layers: list[nn.Module] = []
        width = 4 * dim + n_side
        for size in hidden:
            layers += [nn.Linear(width, size), nn.GELU(), Dropout(dropout)]
            width = size
        layers.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*layers)

    def forward(self, batch: dict[str, torch.Tensor], candidates: torch.Tensor,
                last_only: bool = False, side: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (batch, steps, candidates) and target-attention weights
        (batch, steps, candidates, length). ``candidates`` holds 0-based item indices of shape
        (batch, steps, C); with ``last_only`` steps = 1 and only the last position is used.
        ``side`` (batch, steps, C, n_side) holds features of each candidate that the MLP
        reads beside the sequence (the candidate generator's view of it)."""
        states, _ = self.encoder(batch)
        real = batch["items"] > 0
        n = states.shape[1]
        if last_only:
            states_t = states[:, -1:]
            allowed = real[:, None, None, :].clone()
            allowed[..., -1] = True  # an empty history still has a defined (padding) context
        else:
            states_t = states
            causal = torch.ones(n, n, dtype=torch.bool, device=states.device).tril()
            allowed = (real[:, None, :] & causal)[:, :, None, :]
            allowed = allowed | torch.eye(n, dtype=torch.bool, device=states.device)[
                None, :, None, :]
        candidate = self.encoder.items(candidates + 1)
        scores = torch.einsum("btcd,bjd->btcj", self.query(candidate), self.key(states))
        scores = scores / states.shape[-1] ** 0.5
        weights = scores.masked_fill(~allowed, float("-inf")).softmax(dim=-1)
        context = torch.einsum("btcj,bjd->btcd", weights, states)
        state = states_t.unsqueeze(2).expand_as(candidate)
        parts = [state, context, candidate, state * candidate]
        if self.n_side:
            if side is None:
                raise ValueError(f"this network reads {self.n_side} side features per "
                                 "candidate")
            parts.append(side.to(candidate.dtype))
        features = torch.cat(parts, dim=-1)
        return self.mlp(features).squeeze(-1), weights
