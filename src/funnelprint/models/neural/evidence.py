"""Funnel actions as direct evidence about items already in a customer's history.

A cart is evidence that the item will be bought, a removal that it will not, a view of little
either way; how much depends on how long ago it was. :class:`Evidence` learns one number per
(action, steps back) pair and adds, to the score of every item in the window, the numbers of
the steps on which it occurs. Training compares the target with the window's own items
(besides sampled negatives), so the numbers are calibrated against the alternatives they
must beat, not pushed up without limit.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: Upper edges (inclusive) of the "steps back" buckets: the step itself, 1, 2, 3-4, 5-8,
#: 9-16, 17 or more.
RECENCY_EDGES = (0, 1, 2, 4, 8, 16)
N_RECENCY = len(RECENCY_EDGES) + 1


def recency(n: int, device: torch.device) -> torch.Tensor:
    """(n, n) bucket of t - s for window steps s <= t; -1 above the diagonal (the future)."""
    back = torch.arange(n, device=device)[None, :] - torch.arange(n, device=device)[:, None]
    edges = torch.tensor(RECENCY_EDGES, device=device)
    buckets = torch.bucketize(back, edges)
    return torch.where(back >= 0, buckets, torch.full_like(buckets, -1))


#: The evidence is ``SCALE`` times its stored table: an optimiser step moves it as far, in
#: score units, as it moves a score built from dozens of embedding weights.
SCALE = 10.0


class Evidence(nn.Module):
    """A learned weight per (action, recency bucket); ``heads`` independent tables (e.g.
    one for the next item, one for the next purchase). Starts at zero: no evidence."""

    def __init__(self, n_actions: int, heads: int = 1) -> None:
        super().__init__()
        self.table = nn.Parameter(torch.zeros(heads, n_actions + 1, N_RECENCY))

    def weights(self, head: int = 0) -> torch.Tensor:
        """(n_actions + 1, N_RECENCY) score added per (shifted action, recency bucket)."""
        return self.table[head] * SCALE

    def step_weights(self, actions: torch.Tensor, head: int = 0) -> torch.Tensor:
        """(batch, n_s, n_t): what step s adds to its item's score at position t (zero for
        padding steps and for s > t). ``actions`` are shifted by 1 (0 = padding)."""
        n = actions.shape[1]
        buckets = recency(n, actions.device)  # (s, t)
        weights = self.weights(head)[actions.unsqueeze(-1), buckets.clamp_min(0).unsqueeze(0)]
        keep = (buckets >= 0).unsqueeze(0) & (actions > 0).unsqueeze(-1)
        return weights * keep

    def bias(self, items: torch.Tensor, actions: torch.Tensor, candidates: torch.Tensor,
             head: int = 0) -> torch.Tensor:
        """(batch, n_t, K) evidence for ``candidates`` (batch, n_t, K; item + 1) at each
        position t from the window ``items`` / ``actions`` (batch, n_s)."""
        weights = self.step_weights(actions, head)  # (b, s, t)
        same = candidates.unsqueeze(-1) == items[:, None, None, :]  # (b, t, k, s)
        return torch.einsum("btks,bst->btk", same.to(weights.dtype), weights)

    def last_scores(self, items: torch.Tensor, actions: torch.Tensor, n_items: int,
                    head: int = 0) -> torch.Tensor:
        """(batch, n_items) evidence for every item at the window's last position."""
        weights = self.step_weights(actions, head)[:, :, -1]  # (b, s)
        out = torch.zeros(items.shape[0], n_items + 1, device=items.device,
                          dtype=weights.dtype)
        out.scatter_add_(1, items, weights)
        return out[:, 1:]


def history_softmax_loss(hidden: torch.Tensor, targets: torch.Tensor, items: torch.Tensor,
                         actions: torch.Tensor, table: torch.Tensor, n_items: int,
                         evidence: Evidence, head: int, negatives: int,
                         generator: torch.Generator | None = None) -> torch.Tensor:
    """Per-position softmax loss of the target against ``negatives`` shared uniform items
    and the window's own earlier items (each once, the target excluded), every score plus
    its evidence. ``hidden`` (b, n, dim), ``targets`` / ``items`` / ``actions`` (b, n) with
    item + 1 (0 = no target / padding); ``table`` the item embeddings (row i + 1 = item i).
    Returns the losses of the positions with a target, in row order."""
    b, n = targets.shape
    keep = targets > 0
    sampled = torch.randint(1, n_items + 1, (negatives,), device=hidden.device,
                            generator=generator)
    rows = F.embedding(torch.cat([targets.reshape(-1), sampled]), table)
    positive = (hidden * rows[: b * n].view(b, n, -1)).sum(-1, keepdim=True)
    positive = positive + evidence.bias(items, actions, targets.unsqueeze(-1), head)
    negative = hidden @ rows[b * n:].T  # (b, n, negatives)
    in_window = (sampled[None, :, None] == items[:, None, :]).any(-1)  # (b, negatives)
    clash = in_window.unsqueeze(1) | (sampled[None, None, :] == targets.unsqueeze(-1))
    negative = negative.masked_fill(clash, float("-inf"))
    # the window's items as candidates at every later position (their last occurrence)
    own = hidden @ F.embedding(items, table).transpose(1, 2)  # (b, t, p)
    same = items.unsqueeze(2) == items.unsqueeze(1)  # (b, p, q)
    weights = evidence.step_weights(actions, head)  # (b, s, t)
    own = own + torch.einsum("bps,bst->btp", same.to(weights.dtype), weights)
    later = torch.ones(n, n, dtype=torch.bool, device=items.device).triu(1)  # q > p
    repeats = (same & later).float().cumsum(dim=2) > 0  # (b, p, t): repeated by t
    usable = (items.unsqueeze(1) > 0) & ~repeats.transpose(1, 2)
    usable = usable & torch.ones(n, n, dtype=torch.bool, device=items.device).tril()
    usable = usable & (items.unsqueeze(1) != targets.unsqueeze(-1))
    own = own.masked_fill(~usable, float("-inf"))
    logits = torch.cat([positive, negative, own], dim=-1)[keep]
    return F.cross_entropy(logits, torch.zeros(logits.shape[0], dtype=torch.long,
                                               device=logits.device), reduction="none")
