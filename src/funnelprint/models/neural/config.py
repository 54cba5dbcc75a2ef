"""The sequential models' configurations: one frozen, validated dataclass per model, with the
named presets (``"full"`` and ``"sampled"``) that suit selection under each validation
protocol. Field defaults are the ``"full"`` preset."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch

from funnelprint.checks import at_least, fraction
from funnelprint.models.contract import ModelConfig
from funnelprint.models.neural.training import LOSSES, Loss
from funnelprint.models.registry import model_class

Target = Literal["any", "purchase"]
Block = Literal["standard", "ligr"]

#: Settings that suit selection on full-ranking validation (the field defaults).
FULL_PRESET: dict[str, Any] = {
    "loss": "sampled", "dropout": 0.2, "lr": 1e-3, "bce_negatives": 1, "eval_every": 2,
    "patience": 3, "lr_decay": 0.5, "weight_decay": 0.3, "ema_decay": 0.999}
#: Settings that suit selection on validation against sampled negatives.
SAMPLED_PRESET: dict[str, Any] = {
    "loss": "bce", "dropout": 0.5, "lr": 3e-3, "bce_negatives": 16, "eval_every": 4,
    "patience": 5, "lr_decay": 0.5, "weight_decay": 0.3, "ema_decay": 0.999}


@dataclass(frozen=True)
class SequentialConfig(ModelConfig):
    """Settings shared by every sequential model: the window, the network width, the loss
    and the training loop.

    Training runs for at most ``epochs`` and ``time_budget_s`` (None: no time limit). With a
    validator, early stopping and the kept checkpoint follow its score: a validation every
    ``eval_every`` epochs, training stops after ``patience`` validations without gain. The
    first ``min_steps`` optimiser steps are a warm-up in which no validation counts against
    ``patience`` (REES46 sample, 12 steps per epoch, SASRec valid NDCG@10: 0.016 stopping from
    the first validation, 0.049 with the warm-up).

    ``loss``: ``sampled`` (softmax over the target and ``negatives`` shared uniform
    negatives; memory stays bounded on huge catalogues; SASRec on Beauty, valid full NDCG@10
    0.0679 with 1,024, 0.0721 with 4,096), ``ce`` (full softmax) or ``bce``
    (``bce_negatives`` uniform negatives per position). ``lr_decay`` multiplies the learning
    rate after each validation without gain; ``ema_decay`` > 0 makes validation score (and
    the kept checkpoint hold) an exponential moving average of the weights.

    Presets, by the validation protocol checkpoints are selected on. Sampled softmax suits
    selection on full ranking; BCE with 16 uniform negatives per step matches a protocol that
    ranks against uniform negatives (SASRec on Video, loo-sampled100 HR@10: 0.7036 against
    0.6562 for sampled softmax, measured before position weighting). Halving the learning
    rate after a validation without gain: SASRec on Video, valid full NDCG@10 0.0510 without,
    0.0554 with (dropout 0.3: 0.0524). Under both presets validation scores a moving
    average of the weights, and decoupled weight decay regularises them (SASRec on Video,
    valid sampled100 NDCG@10 after 180 s: 0.556 plain, 0.562 averaged; with weight decay
    0.01 / 0.1 / 0.3 / 1.0 on top: 0.565 / 0.574 / 0.583 / 0.488; under the full preset,
    valid full NDCG@10 with the whole budget: Beauty 0.0634 without either, 0.0676 with
    both, Video 0.0654 and 0.0674).

    ``device`` (``"auto"``: CUDA when available) and ``progress`` (progress bars on stderr)
    are run-time settings that loading a saved model may override.
    """

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {"full": FULL_PRESET,
                                                     "sampled": SAMPLED_PRESET}

    maxlen: int = 50
    dim: int = 64
    dropout: float = 0.2
    loss: Loss = "sampled"
    negatives: int = 4096
    bce_negatives: int = 1
    epochs: int = 200
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.3
    patience: int = 3
    lr_decay: float = 0.5
    ema_decay: float = 0.999
    min_steps: int = 1000
    eval_every: int = 2
    time_budget_s: float | None = 540.0
    device: str = "auto"
    progress: bool = True
    seed: int = 0

    def validate(self) -> None:
        at_least(self, 1, "maxlen", "dim", "negatives", "bce_negatives", "epochs", "batch_size",
                 "patience", "eval_every")
        at_least(self, 0, "min_steps")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}, not {self.loss!r}")
        fraction(self, "dropout", zero=True, one=False)
        if not self.lr > 0.0:
            raise ValueError(f"lr must be positive, not {self.lr}")
        if not self.weight_decay >= 0.0:
            raise ValueError(f"weight_decay must be at least 0, not {self.weight_decay}")
        fraction(self, "lr_decay")
        fraction(self, "ema_decay", zero=True, one=False)
        if self.time_budget_s is not None and not self.time_budget_s > 0.0:
            raise ValueError(f"time_budget_s must be positive or None, not {self.time_budget_s}")
        if self.device != "auto":
            try:
                torch.device(self.device)
            except RuntimeError as exc:
                raise ValueError(f"device must be 'auto' or a torch device such as 'cpu' or "
                                 f"'cuda:0', not {self.device!r}") from exc


@dataclass(frozen=True)
class GRU4RecConfig(SequentialConfig):
    """:class:`SequentialConfig` plus the number of GRU ``layers``; dropout 0.1 under both
    presets."""

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "full": {**FULL_PRESET, "dropout": 0.1},
        "sampled": {**SAMPLED_PRESET, "dropout": 0.1},
    }

    dropout: float = 0.1
    layers: int = 1

    def validate(self) -> None:
        super().validate()
        at_least(self, 1, "layers")


@dataclass(frozen=True)
class AttentionConfig(SequentialConfig):
    """:class:`SequentialConfig` plus the self-attention ``blocks`` and ``heads`` (``dim``
    must split evenly into heads)."""

    blocks: int = 2
    heads: int = 1

    def validate(self) -> None:
        super().validate()
        at_least(self, 1, "blocks", "heads")
        if self.dim % self.heads:
            raise ValueError(f"dim ({self.dim}) must be a multiple of heads ({self.heads})")


@dataclass(frozen=True)
class SASRecConfig(AttentionConfig):
    """:class:`AttentionConfig` plus ``pre_norm`` (LayerNorm before attention and the
    feed-forward layer rather than after) and the ``block`` type: ``"standard"`` or the gated
    ``"ligr"`` block of eSASRec (always pre-norm; a SwiGLU feed-forward layer
    ``ff_multiplier`` times as wide as ``dim``)."""

    pre_norm: bool = True
    block: Block = "standard"
    ff_multiplier: int = 4

    def validate(self) -> None:
        super().validate()
        at_least(self, 1, "ff_multiplier")


@dataclass(frozen=True)
class BERT4RecConfig(SASRecConfig):
    """:class:`SASRecConfig` plus ``mask_prob``, the share of items masked in training."""

    mask_prob: float = 0.2

    def validate(self) -> None:
        super().validate()
        if not 0.0 < self.mask_prob < 1.0:
            raise ValueError(f"mask_prob must be in (0, 1), not {self.mask_prob}")


@dataclass(frozen=True)
class FunnelformerConfig(SASRecConfig):
    """:class:`SASRecConfig` plus the action (``use_actions``) and time-gap (``use_gaps``)
    inputs, the ``target`` it scores (the next item, ``"any"``, or the next purchased item,
    ``"purchase"``, through a purchase-intent head), and whether the actions on items
    already in the window count as direct ``evidence`` for them (needs ``use_actions``)."""

    use_actions: bool = True
    use_gaps: bool = True
    target: Target = "any"
    evidence: bool = False

    def validate(self) -> None:
        super().validate()
        if self.evidence and not self.use_actions:
            raise ValueError("evidence reads the actions: it needs use_actions=True")


@dataclass(frozen=True)
class BSTConfig(AttentionConfig):
    """:class:`AttentionConfig` (one block by default) plus the candidate generator
    (``candidates_from``, a registered model key, built with its default settings), the
    ``n_candidates`` it proposes per customer, the negatives per training prefix (
    ``hard_negatives`` from the generator's list, ``uniform_negatives`` from the
    catalogue), whether BST reads the generator's rank of each candidate (``use_ranks``),
    the action and time-gap inputs, and ``blend``: the weight of BST's own scores against
    the generator's order in the final order (0: the generator's, 1: BST's; None: chosen on
    validation among 0, 0.25, 0.5, 0.75 and 1)."""

    blocks: int = 1
    candidates_from: str = "markov"
    n_candidates: int = 200
    hard_negatives: int = 8
    uniform_negatives: int = 4
    use_ranks: bool = True
    use_actions: bool = True
    use_gaps: bool = True
    blend: float | None = None

    def validate(self) -> None:
        super().validate()
        at_least(self, 1, "n_candidates")
        if self.blend is not None and not 0.0 <= self.blend <= 1.0:
            raise ValueError(f"blend must be between 0 and 1 (or None: chosen on "
                             f"validation), not {self.blend}")
        at_least(self, 0, "hard_negatives", "uniform_negatives")
        if self.hard_negatives + self.uniform_negatives < 1:
            raise ValueError("BST needs at least one negative per training prefix "
                             "(hard_negatives + uniform_negatives)")
        if self.candidates_from == "bst":
            raise ValueError("BST cannot generate its own candidates (candidates_from='bst')")
        model_class(self.candidates_from)  # an unknown key raises ValueError


@dataclass(frozen=True)
class GraphConfig(SequentialConfig):
    """:class:`SequentialConfig` plus, for the session-graph models, ``scale``: above 0,
    session vectors and item embeddings are scored as unit vectors times ``scale``
    (NISER); 0 scores plain dot products. Every prefix of a training sequence is one
    example, so an epoch has as many examples as there are training steps."""

    scale: float = 0.0

    def validate(self) -> None:
        super().validate()
        if not self.scale >= 0.0:
            raise ValueError(f"scale must be at least 0, not {self.scale}")


@dataclass(frozen=True)
class SRGNNConfig(GraphConfig):
    """:class:`GraphConfig` plus the number of gated graph steps (``gnn_steps``). Scores
    unit vectors times 12 by default (REES46 by session, validation loo-full NDCG@10:
    0.0457 with plain dot products, 0.0492 with scale 12). GCE-GNN keeps plain dot
    products: its 0.0624 fell with the scale."""

    scale: float = 12.0
    gnn_steps: int = 1

    def validate(self) -> None:
        super().validate()
        at_least(self, 1, "gnn_steps")


@dataclass(frozen=True)
class GCEGNNConfig(GraphConfig):
    """:class:`GraphConfig` plus GCE-GNN's global item graph: items within ``hops``
    steps of each other in a training sequence are linked, and each item keeps its
    ``neighbours`` most frequent links."""

    hops: int = 3
    neighbours: int = 12

    def validate(self) -> None:
        super().validate()
        at_least(self, 1, "hops", "neighbours")


@dataclass(frozen=True)
class SeqVAEConfig(SASRecConfig):
    """:class:`SASRecConfig` plus the ``latent`` dimensions of each step's Gaussian, the
    weight of its KL term, raised linearly from 0 to ``beta`` over the first
    ``anneal_steps`` optimiser steps (KL annealing, as in SVAE), and the action
    (``use_actions``) and time-gap (``use_gaps``) inputs of ``funnelformer``, off by
    default."""

    use_actions: bool = False
    use_gaps: bool = False
    latent: int = 32
    beta: float = 0.2
    anneal_steps: int = 2000

    def validate(self) -> None:
        super().validate()
        at_least(self, 1, "latent")
        at_least(self, 0, "anneal_steps")
        if not self.beta >= 0.0:
            raise ValueError(f"beta must be at least 0, not {self.beta}")
