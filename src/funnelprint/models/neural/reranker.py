"""BST as a re-ranker of another model's candidates, registered as ``bst``.

A candidate generator (any registered model) is fitted first. BST then trains on every
prefix of every training sequence: the next item against negatives drawn from the
generator's own top candidates for that prefix (hard negatives) and a few uniform ones,
with a softmax over them. Each candidate also carries where the generator ranked it
(:func:`rank_features`), so BST learns how far to trust the generator's order and
re-orders its list rather than starting from nothing.
"""

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
from funnelprint.models.neural.base import SequentialRecommender
from funnelprint.models.neural.batching import N_GAP_BUCKETS, PrefixWindows, Windows
from funnelprint.models.neural.bst import BSTNet
from funnelprint.models.neural.config import BSTConfig
from funnelprint.models.neural.layers import Batch
from funnelprint.models.neural.training import TrainConfig, position_mean
from funnelprint.models.ranking import batch_rows, mask_seen
from funnelprint.models.registry import make_model, model_class, register

#: Where BST's state keeps its candidate generator's state and how to rebuild it, and the
#: blend of their orders.
GENERATOR, GENERATOR_MODEL, BLEND = "generator", "generator_model", "blend"
#: Side features per candidate: the generator's (scaled log) rank, and whether the
#: candidate is on its list.
N_SIDE = 2
#: Weights of BST's scores against the generator's order tried on validation, BST alone
#: first (a tie keeps the larger weight).
BLENDS = (1.0, 0.75, 0.5, 0.25, 0.0)


def generator_ranks(scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Items in the generator's order per row (best first), and each item's rank: the
    number of items with a strictly higher score (ties share the best rank among them)."""
    ordered, order = scores.sort(dim=1, descending=True, stable=True)
    n = scores.shape[1]
    position = torch.arange(n, device=scores.device).expand_as(order)
    new = torch.ones_like(order, dtype=torch.bool)
    new[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    first = torch.where(new, position, torch.zeros_like(position)).cummax(dim=1).values
    return order, torch.empty_like(first).scatter_(1, order, first)


def rank_features(ranks: torch.Tensor, n_candidates: int) -> torch.Tensor:
    """(..., 2) features of generator ranks: log(1 + rank) / log(1 + n_candidates) (below 1
    on the list, 1 or more off it) and 1 for a rank on the list, else 0."""
    scaled = torch.log1p(ranks.float()) / float(np.log1p(n_candidates))
    return torch.stack([scaled, (ranks < n_candidates).float()], dim=-1)


def _standardised(scores: np.ndarray, use: np.ndarray) -> np.ndarray:
    """Each row's scores less the mean of its ``use``d ones, over their standard deviation."""
    scores = scores.astype(np.float64)
    n = np.maximum(use.sum(axis=1, keepdims=True), 1)
    mean = np.where(use, scores, 0.0).sum(axis=1, keepdims=True) / n
    spread = np.sqrt(np.where(use, (scores - mean) ** 2, 0.0).sum(axis=1, keepdims=True) / n)
    return (scores - mean) / np.where(spread > 0, spread, 1.0)


@register
class BST(SequentialRecommender[BSTConfig, BSTNet], CandidateScorer):
    """Behavioral Sequence Transformer as a re-ranker: a candidate generator
    (``candidates_from``, any registered model, fitted by :meth:`fit` with the same
    validator and saved with BST) proposes ``n_candidates`` items per customer, and BST
    scores each (history, candidate) pair. It trains on every prefix of the training
    sequences: the next item against ``hard_negatives`` drawn from the generator's top
    ``n_candidates`` for that prefix and ``uniform_negatives`` from the catalogue, each with
    the generator's rank as an input (``use_ranks``), under a softmax.

    The final order of the candidates blends BST's scores with the generator's order
    (``blend``, chosen on validation unless given: ``blend_``), so that where BST learned
    less than the generator knows, the generator's order stands. Items outside the
    candidate list keep the generator's order, below every candidate. Explanations are the
    candidate's target attention over the history.
    """

    key = "bst"
    config_class = BSTConfig
    explain_with = "target-attention"

    generator_: Recommender[Any]
    blend_: float

    def build(self, dataset: Dataset) -> BSTNet:
        c = self.config
        return BSTNet(dataset.n_items, c.maxlen, c.dim, c.blocks, c.heads, c.dropout,
                      len(dataset.action_names) if c.use_actions else 0,
                      N_GAP_BUCKETS if c.use_gaps else 0, n_side=N_SIDE if c.use_ranks else 0)

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

    def fit(self, train: Dataset, valid: Validator | None = None) -> Self:
        """Fit the generator and BST, then the blend of their orders: the configured one,
        else the one of :data:`BLENDS` with the best validation NDCG@10 (BST alone without
        a validator)."""
        self.blend_ = 1.0
        super().fit(train, valid)
        if self.config.blend is not None:
            self.blend_ = float(self.config.blend)
        elif valid is not None:
            tried = {}
            for blend in BLENDS:
                self.blend_ = blend
                tried[blend] = float(valid(self))
            self.blend_ = max(BLENDS, key=lambda b: (tried[b], b))
            self.fit_report_ = {**self.fit_report_, "blend": self.blend_,
                                "blend_valid": {str(b): round(v, 4) for b, v in tried.items()}}
        return self

    def extra_report(self) -> dict[str, Any]:
        report = self.generator_.fit_report_
        return {GENERATOR: dict(report)} if report else {}

    def to_state(self) -> ModelState:
        state = super().to_state().with_nested(GENERATOR, self.generator_.to_state())
        state.meta[GENERATOR_MODEL] = {"key": self.generator_.key,
                                       "params": self.generator_.get_params()}
        state.meta[BLEND] = self.blend_
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
        blend = state.meta.get(BLEND, 1.0)  # saved before blending: BST's order alone
        if not isinstance(blend, (int, float)) or not 0.0 <= blend <= 1.0:
            raise ArtifactError(f"the saved blend {blend!r} is not a number from 0 to 1")
        model.blend_ = float(blend)
        return model

    def _generator_scores(self, history: Sequences, customers: np.ndarray | None = None
                          ) -> tuple[np.ndarray, torch.Tensor]:
        """The generator's scores of every item (non-finite ones at -inf), and the same with
        the history's items at -inf too: what BST may propose."""
        raw = self.generator_.score(history, customers).astype(np.float32, copy=False)
        raw = np.where(np.isfinite(raw), raw, -np.inf)
        proposable = raw.copy()
        mask_seen(proposable, history)
        return raw, torch.from_numpy(proposable)

    # ------------------------------------------------------------------ training

    def training_data(self, sequences: Sequences) -> Windows | PrefixWindows:
        data = PrefixWindows.of(sequences, self.config.maxlen, self.features)
        data.extra = self._training_candidates(sequences, data)
        return data

    def _training_candidates(self, sequences: Sequences, data: PrefixWindows
                             ) -> dict[str, np.ndarray]:
        """Per prefix: ``candidates`` = [target, hard negatives, uniform negatives] (-1 where
        a drawn negative is unusable: the target itself, or an item the generator would
        never propose) and their generator ``ranks``. The generator reads each prefix's last
        ``maxlen`` steps, in batches of at most 20M scores."""
        c = self.config
        n_items = self.dataset_.n_items
        rng = np.random.default_rng(c.seed)
        width = 1 + c.hard_negatives + c.uniform_negatives
        candidates = np.empty((data.n_rows, width), dtype=np.int64)
        ranks = np.empty((data.n_rows, width), dtype=np.int32)
        step = batch_rows(n_items)
        for start in range(0, data.n_rows, step):
            rows = np.arange(start, min(start + step, data.n_rows))
            index, real = data.steps(rows, c.maxlen)
            flat = index[real]
            history = Sequences.from_rows(
                np.repeat(np.arange(rows.size), real.sum(axis=1)), sequences.items[flat],
                sequences.actions[flat], sequences.times[flat], rows.size)
            _, scores = self._generator_scores(history)
            order, rank_of = generator_ranks(scores)
            targets = torch.from_numpy(data.items[data.ends[rows]])
            listed = min(c.n_candidates, n_items)
            picks = torch.from_numpy(rng.integers(0, listed, (rows.size, c.hard_negatives)))
            hard = torch.gather(order, 1, picks)
            uniform = torch.from_numpy(rng.integers(0, n_items, (rows.size,
                                                                 c.uniform_negatives)))
            drawn = torch.cat([hard, uniform], dim=1)
            usable = (drawn != targets[:, None]) & torch.isfinite(
                torch.gather(scores, 1, drawn))
            chosen = torch.cat([targets[:, None], torch.where(usable, drawn, -1)], dim=1)
            candidates[rows] = chosen.numpy()
            ranks[rows] = torch.gather(rank_of, 1, chosen.clamp_min(0)).numpy()
        return {"candidates": candidates, "ranks": ranks}

    def batch_loss(self, batch: Batch, config: TrainConfig, generator: torch.Generator
                   ) -> torch.Tensor:
        candidates = batch["candidates"]
        usable = candidates >= 0
        side = rank_features(batch["ranks"], self.config.n_candidates)
        logits, _ = self.net_(batch, candidates.clamp_min(0).unsqueeze(1), last_only=True,
                              side=side.unsqueeze(1) if self.config.use_ranks else None)
        logits = logits[:, 0].masked_fill(~usable, float("-inf"))
        loss = F.cross_entropy(logits, torch.zeros_like(candidates[:, 0]), reduction="none")
        return position_mean(loss, config)

    # ------------------------------------------------------------------ scoring

    def _logits(self, history: Sequences, candidates: torch.Tensor, ranks: torch.Tensor,
                listed: np.ndarray | None = None) -> np.ndarray:
        """BST's score of each candidate, blended with the generator's order (``listed``:
        the candidates that count; the others take no part in the blend's scaling)."""
        self.net_.eval()
        side = rank_features(ranks, self.config.n_candidates).unsqueeze(1).to(self.device_) \
            if self.config.use_ranks else None
        with torch.no_grad():
            logits, _ = self.net_(self.inputs(history), candidates.unsqueeze(1).to(
                self.device_), last_only=True, side=side)
        out: np.ndarray = logits[:, 0].float().cpu().numpy()
        if self.blend_ >= 1.0:
            return out
        # The generator's order as a score (ties stay ties), both standardised per row.
        order = -np.log1p(ranks.numpy().astype(np.float64))
        use = np.ones(out.shape, dtype=bool) if listed is None else listed
        mixed = (self.blend_ * _standardised(out, use)
                 + (1.0 - self.blend_) * _standardised(order, use))
        return mixed.astype(np.float32)

    def score_candidates(self, history: Sequences, customers: np.ndarray | None,
                         candidates: np.ndarray) -> np.ndarray:
        """Logits of each row's ``candidates`` (rows, C)."""
        self._check_fitted()
        chosen = torch.from_numpy(np.asarray(candidates, dtype=np.int64))
        _, rank_of = generator_ranks(self._generator_scores(history, customers)[1])
        return self._logits(history, chosen, torch.gather(rank_of, 1, chosen))

    def score(self, history: Sequences, customers: np.ndarray | None = None) -> np.ndarray:
        self._check_fitted()
        raw, scores = self._generator_scores(history, customers)
        order, rank_of = generator_ranks(scores)
        top = order[:, : min(self.config.n_candidates, scores.shape[1])]
        listed = torch.isfinite(torch.gather(scores, 1, top)).numpy()
        finite = np.isfinite(raw)
        high = raw[finite].max() if finite.any() else 0.0
        # off the list, items keep the generator's order below every candidate
        out = np.where(finite, raw - high - 1.0, -np.inf).astype(np.float32)
        logits = self._logits(history, top, torch.gather(rank_of, 1, top), listed)
        # candidates rank above everything else (at 0 and up), in the order of BST's logits
        logits = np.where(listed, logits, np.inf)
        logits = logits - logits.min(axis=1, keepdims=True)
        top_np = top.numpy()
        rows = np.broadcast_to(np.arange(top_np.shape[0])[:, None], top_np.shape)
        out[rows[listed], top_np[listed]] = logits[listed]
        return out

    def explain(self, history: Sequences, items: np.ndarray) -> np.ndarray:
        """Each item's target attention over one customer's window."""
        self._check_fitted()
        if history.n_rows != 1:
            raise ValueError("explain takes the history of one customer")
        items = self._checked_items(items)
        chosen = torch.from_numpy(items[None, :])
        _, rank_of = generator_ranks(self._generator_scores(history)[1])
        side = rank_features(torch.gather(rank_of, 1, chosen), self.config.n_candidates
                             ).unsqueeze(1).to(self.device_) if self.config.use_ranks else None
        self.net_.eval()
        with torch.no_grad():
            _, weights = self.net_(self.inputs(history), chosen.unsqueeze(1).to(self.device_),
                                   last_only=True, side=side)
        rows: np.ndarray = weights[0, 0].float().cpu().numpy()
        return rows
