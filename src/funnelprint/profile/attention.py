"""Learned attention aggregation: how much each of a customer's events counts in the profile.

Each event gets a logit from its action type, its recency (events from the customer's end)
and its token's embedding; a softmax over the customer's events weights the average of token
vectors. The weights are trained by predicting each customer's next product from the
weighted average of the events before it, so which actions and which moments matter is
learned from data rather than set by hand.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm
from typing_extensions import Self

from funnelprint.data.schema import CANONICAL_ACTIONS

log = logging.getLogger(__name__)
#: Events-from-the-end bucket edges: last, 2nd, 3rd-4th, 5th-8th, ... , 33rd and older.
RECENCY_EDGES = np.array([1, 2, 4, 8, 16, 32])
#: Action codes: the canonical actions in order, then one code for any other action.
N_ACTIONS = len(CANONICAL_ACTIONS) + 1


def recency_buckets(from_end: np.ndarray) -> np.ndarray:
    return np.searchsorted(RECENCY_EDGES, from_end, side="right").astype(np.int64)


class _Scorer(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.action_bias = nn.Parameter(torch.zeros(N_ACTIONS))
        self.recency_bias = nn.Parameter(torch.zeros(RECENCY_EDGES.size + 1))
        self.content = nn.Linear(dim, hidden)
        self.content_out = nn.Linear(hidden, 1, bias=False)
        nn.init.zeros_(self.content_out.weight)

    def forward(self, vectors: torch.Tensor, actions: torch.Tensor, recency: torch.Tensor
                ) -> torch.Tensor:
        content = self.content_out(torch.tanh(self.content(vectors))).squeeze(-1)
        return self.action_bias[actions] + self.recency_bias[recency] + content


class AttentionAggregator:
    """Event weights for profile aggregation, trained on next-product prediction.

    Parameters
    ----------
    hidden : int
        Width of the token-content scorer.
    maxlen : int
        Events before the predicted one that the training softmax sees.
    epochs, batch_size, lr, negatives
        Training settings (sampled softmax over products with shared negatives).
    seed : int
    """

    def __init__(self, hidden: int = 32, maxlen: int = 50, epochs: int = 8,
                 batch_size: int = 256, lr: float = 1e-2, negatives: int = 512,
                 seed: int = 0) -> None:
        self.hidden = hidden
        self.maxlen = maxlen
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.negatives = negatives
        self.seed = seed

    def fit(self, token_vectors: np.ndarray, offsets: np.ndarray, tokens: np.ndarray,
            actions: np.ndarray, products: np.ndarray, n_products: int,
            progress: bool = False) -> Self:
        """Learn from journeys in CSR form: ``offsets`` per customer over events with a known
        ``tokens`` index, an action code and a product index, in time order."""
        torch.manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        dim = token_vectors.shape[1]
        vectors = torch.from_numpy(np.asarray(token_vectors, dtype=np.float32))
        self.net_ = _Scorer(dim, self.hidden)
        query = nn.Linear(dim, dim)
        product_table = nn.Embedding(n_products, dim)
        nn.init.normal_(product_table.weight, std=dim ** -0.5)
        params = [*self.net_.parameters(), *query.parameters(), *product_table.parameters()]
        optimizer = torch.optim.Adam(params, lr=self.lr)
        lengths = np.diff(offsets)
        usable = np.flatnonzero(lengths >= 2)
        self.history_ = []
        for epoch in range(self.epochs):
            order = rng.permutation(usable)
            total = 0.0
            steps = range(0, order.size, self.batch_size)
            for start in tqdm(steps, desc=f"attention epoch {epoch + 1}", leave=False,
                              disable=not progress):
                rows = order[start: start + self.batch_size]
                cut = rng.integers(1, lengths[rows])  # predict event `cut` from those before
                pos = cut[:, None] - self.maxlen + np.arange(self.maxlen)[None, :]
                real = pos >= 0
                flat = offsets[rows][:, None] + np.maximum(pos, 0)
                recency = recency_buckets(cut[:, None] - 1 - pos)
                logits = self.net_(vectors[tokens[flat]], torch.from_numpy(actions[flat]),
                                   torch.from_numpy(recency))
                weights = logits.masked_fill(~torch.from_numpy(real), float("-inf"))
                weights = weights.softmax(dim=1)
                customer = (weights.unsqueeze(-1) * vectors[tokens[flat]]).sum(dim=1)
                target = torch.from_numpy(products[offsets[rows] + cut])
                negatives = torch.from_numpy(rng.integers(0, n_products, self.negatives))
                q = query(customer)
                pos_score = (q * product_table(target)).sum(-1, keepdim=True)
                neg_score = q @ product_table(negatives).T
                neg_score = neg_score.masked_fill(negatives[None, :] == target[:, None],
                                                  float("-inf"))
                loss = F.cross_entropy(torch.cat([pos_score, neg_score], dim=1),
                                       torch.zeros(rows.size, dtype=torch.long))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += loss.item() * rows.size
            self.history_.append(total / max(1, usable.size))
            log.info("attention aggregation epoch %d: loss %.4f", epoch + 1, self.history_[-1])
        self.net_.eval()
        return self

    def event_logits(self, token_vectors: np.ndarray, tokens: np.ndarray, actions: np.ndarray,
                     from_end: np.ndarray) -> np.ndarray:
        """Unnormalised log-weights of events (softmax them per customer)."""
        with torch.no_grad():
            out = self.net_(torch.from_numpy(np.asarray(token_vectors[tokens], np.float32)),
                            torch.from_numpy(actions.astype(np.int64)),
                            torch.from_numpy(recency_buckets(from_end)))
        return out.numpy().astype(np.float64)

    def action_importance(self) -> dict[str, float]:
        """Relative weight of each action type (exp of its learned bias, view = 1)."""
        bias = self.net_.action_bias.detach().numpy()
        names = [*CANONICAL_ACTIONS, "other"]
        return {n: round(float(np.exp(b - bias[0])), 3) for n, b in zip(names, bias, strict=True)}

    def recency_importance(self) -> list[float]:
        """Relative weight per recency bucket (last event = 1)."""
        bias = self.net_.recency_bias.detach().numpy()
        return [round(float(np.exp(b - bias[0])), 3) for b in bias]

    @staticmethod
    def array_shapes(dim: int) -> dict[str, tuple[int | None, ...]]:
        """The scorer's arrays (as :meth:`state_arrays` names them) and their shapes; None
        is the hidden width."""
        return {"attention.action_bias": (N_ACTIONS,),
                "attention.recency_bias": (RECENCY_EDGES.size + 1,),
                "attention.content.weight": (None, dim), "attention.content.bias": (None,),
                "attention.content_out.weight": (1, None)}

    def state_arrays(self) -> dict[str, np.ndarray]:
        return {f"attention.{k}": v.detach().numpy() for k, v in self.net_.state_dict().items()}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], dim: int) -> AttentionAggregator:
        state = {k.removeprefix("attention."): torch.from_numpy(np.array(v))
                 for k, v in arrays.items() if k.startswith("attention.")}
        hidden = state["content.weight"].shape[0]
        if state["content.bias"].shape[0] != hidden or state["content_out.weight"].shape[1] \
                != hidden:
            raise ValueError("attention arrays disagree on the hidden width")
        model = cls(hidden=hidden)
        model.net_ = _Scorer(dim, model.hidden)
        model.net_.load_state_dict(state)
        model.net_.eval()
        return model
