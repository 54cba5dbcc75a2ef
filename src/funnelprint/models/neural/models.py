"""The sequential models registered under their ``evaluate`` keys."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from funnelprint.data.dataset import Dataset
from funnelprint.data.sequences import Sequences
from funnelprint.evaluate.splits import EvalSet
from funnelprint.models.base import Recommender, make_model, mask_seen, register, top_k
from funnelprint.models.neural.base import Batch, SequentialRecommender
from funnelprint.models.neural.batching import (
    N_GAP_BUCKETS,
    first_real_column,
    last_window,
    training_windows,
)
from funnelprint.models.neural.bst import BSTNet
from funnelprint.models.neural.gru import GRUNet
from funnelprint.models.neural.sasrec import SASRecNet
from funnelprint.models.neural.training import TrainConfig, position_mean, sequence_loss


@register
class SASRec(SequentialRecommender):
    """Causal self-attention (pre-LayerNorm by default) with learned positions."""

    key = "sasrec"

    def __init__(self, pre_norm: bool = True, **params: object) -> None:
        super().__init__(**params)  # type: ignore[arg-type]
        self.pre_norm = pre_norm

    def build(self, dataset: Dataset) -> torch.nn.Module:
        return SASRecNet(dataset.n_items, self.maxlen, self.dim, self.blocks, self.heads,
                         self.setting("dropout"), self.pre_norm)


@register
class Funnelformer(SequentialRecommender):
    """Action-aware transformer: each step embeds item + action type + position + time-gap
    bucket (time since the customer's previous event).

    ``target="any"`` predicts the next item whatever the action; ``target="purchase"`` trains
    on the next *purchased* item from every step before it. ``use_actions`` / ``use_gaps``
    switch the extra inputs off (with both off it is SASRec), for ablations.
    """

    key = "funnelformer"

    def __init__(self, use_actions: bool = True, use_gaps: bool = True, target: str = "any",
                 pre_norm: bool = True, **params: object) -> None:
        super().__init__(**params)  # type: ignore[arg-type]
        self.use_actions = use_actions
        self.use_gaps = use_gaps
        self.target = target
        self.pre_norm = pre_norm

    @property
    def features(self) -> tuple[str, ...]:
        return ("items",) + ("actions",) * self.use_actions + ("gaps",) * self.use_gaps

    def build(self, dataset: Dataset) -> torch.nn.Module:
        if self.target not in ("any", "purchase"):
            raise ValueError(f"target must be 'any' or 'purchase', not {self.target!r}")
        n_actions = len(dataset.action_names) if self.use_actions else 0
        return SASRecNet(dataset.n_items, self.maxlen, self.dim, self.blocks, self.heads,
                         self.setting("dropout"), self.pre_norm, n_actions=n_actions,
                         n_gaps=N_GAP_BUCKETS if self.use_gaps else 0)

    def training_arrays(self, sequences: Sequences) -> dict[str, np.ndarray]:
        arrays = training_windows(sequences, self.maxlen, self.features)
        if self.target == "purchase":
            purchase = self.dataset_.action_names.index("purchase")
            usable = sequences.select(np.flatnonzero(sequences.lengths >= 2))
            ahead = next_action_items(usable, purchase)
            arrays["targets"] = last_window(usable, self.maxlen + 1, ahead)[:, :-1]
        return arrays


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
class BERT4Rec(SequentialRecommender):
    """Bidirectional self-attention trained to recover randomly masked items (Sun et al.,
    2019); at scoring time a mask token is appended after the history."""

    key = "bert4rec"

    def __init__(self, mask_prob: float = 0.2, pre_norm: bool = True, **params: object) -> None:
        super().__init__(**params)  # type: ignore[arg-type]
        self.mask_prob = mask_prob
        self.pre_norm = pre_norm

    def build(self, dataset: Dataset) -> torch.nn.Module:
        return SASRecNet(dataset.n_items, self.maxlen, self.dim, self.blocks, self.heads,
                         self.setting("dropout"), self.pre_norm, causal=False, mask_token=True)

    def training_arrays(self, sequences: Sequences) -> dict[str, np.ndarray]:
        rows = sequences.select(np.flatnonzero(sequences.lengths >= 2))
        items = last_window(rows, self.maxlen)
        return {"items": items, "targets": items}

    def loss_positions(self, arrays: dict[str, np.ndarray], lengths: np.ndarray) -> float:
        # each real item is masked with mask_prob; a row with none masked trains on its last
        return float((self.mask_prob * lengths + (1.0 - self.mask_prob) ** lengths).sum())

    def batch_loss(self, batch: Batch, config: TrainConfig, generator: torch.Generator
                   ) -> torch.Tensor:
        items = batch["items"]
        real = items > 0
        draw = torch.rand(items.shape, device=items.device, generator=generator)
        masked = (draw < self.mask_prob) & real
        # every row trains on at least its last item, the step that scoring asks about
        masked[:, -1] |= ~masked.any(dim=1)
        inputs = torch.where(masked, torch.full_like(items, self.net_.n_items + 1), items)
        hidden = self.net_({"items": inputs})[0]
        return sequence_loss(hidden, torch.where(masked, items, 0), self.net_.items.weight,
                             self.net_.n_items, config, generator)

    def inputs(self, history: Sequences) -> Batch:
        window = last_window(history, self.maxlen - 1)
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
class GRU4Rec(SequentialRecommender):
    """Recurrent baseline (Hidasi et al., 2016) trained with the shared losses; explanations
    come from gradient x input attribution."""

    key = "gru4rec"
    explain_with = "gradient"

    def __init__(self, layers: int = 1, **params: object) -> None:
        params.setdefault("dropout", 0.1)
        super().__init__(**params)  # type: ignore[arg-type]
        self.layers = layers

    def build(self, dataset: Dataset) -> torch.nn.Module:
        return GRUNet(dataset.n_items, self.dim, self.layers, self.setting("dropout"))


@register
class BST(SequentialRecommender):
    """Behavioral Sequence Transformer as a re-ranker: a candidate generator
    (``candidates_from``, any registered model) proposes ``n_candidates`` items per customer,
    and BST scores each (history, candidate) pair with a click/buy logit. Trained with
    ``bst_negatives`` negatives per step, half uniform and half drawn from other steps'
    targets, so popular items are negatives too (binary cross-entropy, CTR-style).

    Items outside the candidate list keep the generator's order, below every candidate.
    """

    key = "bst"
    explain_with = "target-attention"

    def __init__(self, candidates_from: str = "markov", n_candidates: int = 200,
                 bst_negatives: int = 4, use_actions: bool = True, use_gaps: bool = True,
                 **params: object) -> None:
        params.setdefault("blocks", 1)
        super().__init__(**params)  # type: ignore[arg-type]
        self.candidates_from = candidates_from
        self.n_candidates = n_candidates
        self.bst_negatives = bst_negatives
        self.use_actions = use_actions
        self.use_gaps = use_gaps

    @property
    def features(self) -> tuple[str, ...]:
        return ("items",) + ("actions",) * self.use_actions + ("gaps",) * self.use_gaps

    def build(self, dataset: Dataset) -> torch.nn.Module:
        return BSTNet(dataset.n_items, self.maxlen, self.dim, self.blocks, self.heads,
                      self.setting("dropout"), len(dataset.action_names) if self.use_actions else 0,
                      N_GAP_BUCKETS if self.use_gaps else 0)

    def prepare(self, dataset: Dataset, valid: EvalSet | None) -> None:
        if self.candidates_from in ("bst",):
            raise ValueError("BST cannot generate its own candidates")
        generator: Recommender = make_model(self.candidates_from)
        if getattr(generator, "uses_validation", False):
            generator.fit(dataset, valid=valid)  # type: ignore[call-arg]
        else:
            generator.fit(dataset)
        self.generator_ = generator

    def batch_loss(self, batch: Batch, config: TrainConfig, generator: torch.Generator
                   ) -> torch.Tensor:
        targets = batch["targets"]
        keep = targets > 0
        b, n = targets.shape
        # Half uniform negatives, half other steps' targets (popularity-distributed): a
        # re-ranker must separate the popular items a candidate generator proposes too.
        n_popular = self.bst_negatives // 2
        uniform = torch.randint(0, self.dataset_.n_items, (b, n, self.bst_negatives - n_popular),
                                device=targets.device, generator=generator)
        pool = targets[keep] - 1
        picks = torch.randint(0, pool.numel(), (b, n, n_popular), device=targets.device,
                              generator=generator)
        candidates = torch.cat([(targets - 1).clamp_min(0).unsqueeze(-1), uniform, pool[picks]],
                               dim=-1)
        logits, _ = self.net_(batch, candidates)
        labels = torch.zeros_like(logits)
        labels[..., 0] = 1.0
        loss = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
        return position_mean(loss[keep].mean(dim=-1), config)

    def score_candidates(self, history: Sequences, customers: np.ndarray | None,
                         candidates: np.ndarray) -> np.ndarray:
        """Click/buy logits of each row's ``candidates`` (rows, C)."""
        self._check_fitted()
        self.net_.eval()
        with torch.no_grad():
            cand = torch.from_numpy(np.asarray(candidates, dtype=np.int64)).to(self.device_)
            logits, _ = self.net_(self.inputs(history), cand.unsqueeze(1), last_only=True)
        return logits[:, 0].float().cpu().numpy()

    def score(self, history: Sequences, customers: np.ndarray | None = None) -> np.ndarray:
        self._check_fitted()
        base = self.generator_.score(history, customers).astype(np.float32, copy=False)
        base = np.where(np.isfinite(base), base, -np.inf)
        masked = base.copy()
        mask_seen(masked, history)
        top, _ = top_k(masked, min(self.n_candidates, base.shape[1]))
        listed = top >= 0
        top = np.where(listed, top, 0)
        finite = np.isfinite(base)
        high = base[finite].max() if finite.any() else 0.0
        out = np.where(finite, base - high - 1.0, -np.inf).astype(np.float32)
        logits = self.score_candidates(history, customers, top)
        # candidates rank above everything else, in the order of their BST probability
        rows = np.broadcast_to(np.arange(top.shape[0])[:, None], top.shape)
        out[rows[listed], top[listed]] = 1.0 / (1.0 + np.exp(-logits[listed]))
        return out

    def explain(self, history: Sequences, items: np.ndarray) -> np.ndarray:
        self._check_fitted()
        self.net_.eval()
        with torch.no_grad():
            cand = torch.from_numpy(np.asarray(items, dtype=np.int64)[None, None, :])
            _, weights = self.net_(self.inputs(history), cand.to(self.device_), last_only=True)
        return weights[0, 0].float().cpu().numpy()

    def final_states(self, batch: Batch) -> torch.Tensor:  # pragma: no cover - unused
        raise NotImplementedError("BST scores (history, candidate) pairs")
