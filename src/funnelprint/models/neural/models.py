"""The sequential models, registered under their keys: SASRec, Funnelformer, BERT4Rec and
GRU4Rec (next-item networks) and BST (a re-ranker of another model's candidates)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from typing_extensions import Self

from funnelprint.artifacts import ArtifactError
from funnelprint.data.dataset import Dataset
from funnelprint.data.sequences import Sequences
from funnelprint.models.contract import CandidateScorer, ModelState, Recommender, Validator
from funnelprint.models.neural.base import NextItemRecommender, SequentialRecommender
from funnelprint.models.neural.batching import (
    N_GAP_BUCKETS,
    first_real_column,
    last_window,
    training_windows,
)
from funnelprint.models.neural.bst import BSTNet
from funnelprint.models.neural.config import (
    BERT4RecConfig,
    BSTConfig,
    FunnelformerConfig,
    GRU4RecConfig,
    SASRecConfig,
)
from funnelprint.models.neural.gru import GRUNet
from funnelprint.models.neural.layers import Batch, NextItemNet
from funnelprint.models.neural.sasrec import SASRecNet
from funnelprint.models.neural.training import TrainConfig, position_mean, sequence_loss
from funnelprint.models.ranking import mask_seen, top_k
from funnelprint.models.registry import make_model, model_class, register


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

    ``target="any"`` predicts the next item whatever the action; ``target="purchase"`` trains
    on the next *purchased* item from every step before it. ``use_actions`` / ``use_gaps``
    switch the extra inputs off (with both off it is SASRec), for ablations.
    """

    key = "funnelformer"
    config_class = FunnelformerConfig

    @property
    def features(self) -> tuple[str, ...]:
        c = self.config
        return ("items",) + ("actions",) * c.use_actions + ("gaps",) * c.use_gaps

    def build(self, dataset: Dataset) -> NextItemNet:
        c = self.config
        n_actions = len(dataset.action_names) if c.use_actions else 0
        return SASRecNet(dataset.n_items, c.maxlen, c.dim, c.blocks, c.heads, c.dropout,
                         c.pre_norm, n_actions=n_actions,
                         n_gaps=N_GAP_BUCKETS if c.use_gaps else 0, block=c.block,
                         ff_multiplier=c.ff_multiplier)

    def training_arrays(self, sequences: Sequences) -> dict[str, np.ndarray]:
        maxlen = self.config.maxlen
        arrays = training_windows(sequences, maxlen, self.features)
        if self.config.target == "purchase":
            if "purchase" not in self.dataset_.action_names:
                raise ValueError("target='purchase' needs a dataset with purchases")
            purchase = self.dataset_.action_names.index("purchase")
            usable = sequences.select(np.flatnonzero(sequences.lengths >= 2))
            ahead = next_action_items(usable, purchase)
            arrays["targets"] = last_window(usable, maxlen + 1, ahead)[:, :-1]
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


#: Where BST's state keeps its candidate generator's state and how to rebuild it.
GENERATOR, GENERATOR_MODEL = "generator", "generator_model"


@register
class BST(SequentialRecommender[BSTConfig, BSTNet], CandidateScorer):
    """Behavioral Sequence Transformer as a re-ranker: a candidate generator
    (``candidates_from``, any registered model, fitted by :meth:`fit` with the same
    validator and saved with BST) proposes ``n_candidates`` items per customer, and BST
    scores each (history, candidate) pair with a click/buy logit. Trained with
    ``bst_negatives`` negatives per step, half uniform and half drawn from other steps'
    targets, so popular items are negatives too (binary cross-entropy, CTR-style).

    Items outside the candidate list keep the generator's order, below every candidate.
    Explanations are the candidate's target attention over the history.
    """

    key = "bst"
    config_class = BSTConfig
    explain_with = "target-attention"

    generator_: Recommender[Any]

    @property
    def features(self) -> tuple[str, ...]:
        c = self.config
        return ("items",) + ("actions",) * c.use_actions + ("gaps",) * c.use_gaps

    def build(self, dataset: Dataset) -> BSTNet:
        c = self.config
        return BSTNet(dataset.n_items, c.maxlen, c.dim, c.blocks, c.heads, c.dropout,
                      len(dataset.action_names) if c.use_actions else 0,
                      N_GAP_BUCKETS if c.use_gaps else 0)

    # ------------------------------------------------------------------ the generator

    def _generator_runtime(self, key: str,
                           names: tuple[str, ...] = ("device", "progress")) -> dict[str, Any]:
        """BST's settings among ``names`` that the generator's config also has."""
        fields = model_class(key).config_class.field_names()
        return {name: getattr(self.config, name) for name in names if name in fields}

    def prepare(self, train: Dataset, valid: Validator | None) -> None:
        """Fit the candidate generator with BST's run-time settings, seed and time budget
        (a sequential generator trains within the same budget before BST does)."""
        key = self.config.candidates_from
        shared = self._generator_runtime(key, ("device", "progress", "seed", "time_budget_s"))
        self.generator_ = make_model(key, **shared).fit(train, valid)

    def extra_report(self) -> dict[str, Any]:
        report = self.generator_.fit_report_
        return {GENERATOR: dict(report)} if report else {}

    def to_state(self) -> ModelState:
        state = super().to_state().with_nested(GENERATOR, self.generator_.to_state())
        state.meta[GENERATOR_MODEL] = {"key": self.generator_.key,
                                       "params": self.generator_.get_params()}
        return state

    @classmethod
    def from_state(cls, config: BSTConfig, dataset: Dataset, state: ModelState) -> Self:
        model = super().from_state(config, dataset, state)
        saved = state.value(GENERATOR_MODEL)
        if not isinstance(saved, dict) or not isinstance(saved.get("params"), dict):
            raise ArtifactError("the candidate generator's settings are incomplete")
        key = saved.get("key")
        if key != config.candidates_from:
            raise ArtifactError(f"the saved candidate generator is {key!r}, but "
                                f"candidates_from is {config.candidates_from!r}")
        generator_class = model_class(key)
        generator_config = generator_class.config_class.from_params(
            {**saved["params"], **model._generator_runtime(key)})
        model.generator_ = generator_class.from_state(generator_config, dataset,
                                                      state.nested(GENERATOR))
        return model

    # ------------------------------------------------------------------ training

    def batch_loss(self, batch: Batch, config: TrainConfig, generator: torch.Generator
                   ) -> torch.Tensor:
        targets = batch["targets"]
        keep = targets > 0
        b, n = targets.shape
        n_negatives = self.config.bst_negatives
        # Half uniform negatives, half other steps' targets (popularity-distributed): a
        # re-ranker must separate the popular items a candidate generator proposes too.
        n_popular = n_negatives // 2
        uniform = torch.randint(0, self.dataset_.n_items, (b, n, n_negatives - n_popular),
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

    # ------------------------------------------------------------------ scoring

    def score_candidates(self, history: Sequences, customers: np.ndarray | None,
                         candidates: np.ndarray) -> np.ndarray:
        """Click/buy logits of each row's ``candidates`` (rows, C)."""
        self._check_fitted()
        self.net_.eval()
        with torch.no_grad():
            cand = torch.from_numpy(np.asarray(candidates, dtype=np.int64)).to(self.device_)
            logits, _ = self.net_(self.inputs(history), cand.unsqueeze(1), last_only=True)
        scores: np.ndarray = logits[:, 0].float().cpu().numpy()
        return scores

    def score(self, history: Sequences, customers: np.ndarray | None = None) -> np.ndarray:
        self._check_fitted()
        base = self.generator_.score(history, customers).astype(np.float32, copy=False)
        base = np.where(np.isfinite(base), base, -np.inf)
        masked = base.copy()
        mask_seen(masked, history)
        top, _ = top_k(masked, min(self.config.n_candidates, base.shape[1]))
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
        """Each item's target attention over one customer's window."""
        self._check_fitted()
        if history.n_rows != 1:
            raise ValueError("explain takes the history of one customer")
        items = self._checked_items(items)
        self.net_.eval()
        with torch.no_grad():
            cand = torch.from_numpy(items[None, None, :]).to(self.device_)
            _, weights = self.net_(self.inputs(history), cand, last_only=True)
        rows: np.ndarray = weights[0, 0].float().cpu().numpy()
        return rows
