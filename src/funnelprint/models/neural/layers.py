"""Small building blocks shared by the networks."""

from __future__ import annotations

import torch
from torch import nn


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Inverted dropout from a uniform draw.

    Same distribution as ``F.dropout``; on CPU ``bernoulli_`` (which ``F.dropout`` uses) took
    about 4x as long as ``rand_like`` + compare and was a fifth of a SASRec training step.
    """
    if not training or p <= 0.0:
        return x
    if p >= 1.0:
        return torch.zeros_like(x)
    keep = torch.rand_like(x) >= p
    return x * keep / (1.0 - p)


class Dropout(nn.Module):
    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
