"""The bases of the sequential recommenders: a PyTorch network behind the model contract.

:class:`SequentialRecommender` owns what every sequential model shares: fitting (windows,
length-grouped batches, the training loop, checkpoint selection through the caller's
validator), the network's state (``to_state`` / ``from_state``) and reasons built from
per-step weights. :class:`NextItemRecommender` adds what models that predict the next item
from a hidden state share: dot-product scoring against the item embeddings, and explanations
by attention rollout or gradient x input.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from functools import partial
from typing import Any, ClassVar, Generic, TypeVar

import numpy as np
import torch
from typing_extensions import Self

from funnelprint.artifacts import ArtifactError
from funnelprint.data.dataset import Dataset
from funnelprint.data.sequences import Sequences
from funnelprint.models.contract import Explainer, ModelState, Reason, Recommender, Validator
from funnelprint.models.neural import training
from funnelprint.models.neural.batching import (
    PrefixWindows,
    Windows,
    feature_windows,
    first_real_column,
    training_windows,
)
from funnelprint.models.neural.config import SequentialConfig
from funnelprint.models.neural.explain import (
    gradient_rollout,
    reason,
    records_actions,
    step_labels,
)
from funnelprint.models.neural.layers import Batch, NextItemNet
from funnelprint.models.neural.training import (
    TrainConfig,
    pick_device,
    seed_everything,
    sequence_loss,
)

SC = TypeVar("SC", bound=SequentialConfig)
N = TypeVar("N", bound=torch.nn.Module)
#: Prefix of the network's weights in the model state.
NET = "net."


class SequentialRecommender(Recommender[SC], Explainer, Generic[SC, N]):
    """Trains a network ``N`` on left-padded windows of the last ``maxlen`` steps (settings:
    :class:`~funnelprint.models.neural.config.SequentialConfig` and its subclasses).

    With a validator, :meth:`fit` validates every ``eval_every`` epochs, stops early and
    keeps the best-scoring weights; without one, it trains for ``epochs`` or
    ``time_budget_s``. ``fit_report_`` then holds ``train_seconds`` and the per-epoch
    ``epochs`` records, plus ``best_valid`` and ``best_epoch`` when a validator was given.
    """

    #: Optional inputs the model reads: a validator in ``fit``.
    reads: ClassVar[frozenset[str]] = frozenset({"validation"})
    #: How :meth:`explain` weights history steps: "attention", "gradient" or
    #: "target-attention" (it also words the reasons).
    explain_with: ClassVar[str] = "attention"

    net_: N
    device_: torch.device
    #: Whether step labels name the action (the dataset records more than one kind).
    label_actions_: bool

    # ------------------------------------------------------------------ the network

    @property
    def features(self) -> tuple[str, ...]:
        """Step features the network reads: items, and actions and gaps where the model's
        config has them switched on (``use_actions``, ``use_gaps``)."""
        c = self.config
        return (("items",) + ("actions",) * bool(getattr(c, "use_actions", False))
                + ("gaps",) * bool(getattr(c, "use_gaps", False)))

    @abstractmethod
    def build(self, dataset: Dataset) -> N:
        """The network for ``dataset``'s catalogue (and action vocabulary)."""

    def _attach(self, dataset: Dataset) -> None:
        """Serve from ``dataset`` with a new network for it, on the configured device."""
        self.dataset_ = dataset
        self.device_ = pick_device(self.config.device)
        self.net_ = self.build(dataset).to(self.device_)
        self.label_actions_ = records_actions(dataset)

    # ------------------------------------------------------------------ training

    def train_config(self, positions_per_batch: float | None = None) -> TrainConfig:
        c = self.config
        return TrainConfig(epochs=c.epochs, batch_size=c.batch_size, lr=c.lr,
                           weight_decay=c.weight_decay, loss=c.loss, negatives=c.negatives,
                           bce_negatives=c.bce_negatives, patience=c.patience,
                           lr_decay=c.lr_decay, min_steps=c.min_steps,
                           eval_every=c.eval_every, time_budget_s=c.time_budget_s,
                           progress=c.progress, positions_per_batch=positions_per_batch,
                           ema_decay=c.ema_decay)

    def training_arrays(self, sequences: Sequences) -> dict[str, np.ndarray]:
        """Input windows and ``targets`` (0 = no loss at that step)."""
        return training_windows(sequences, self.config.maxlen, self.features)

    def training_data(self, sequences: Sequences) -> Windows | PrefixWindows:
        """What one training pass reads: by default every customer's window, with a target
        at each step (:meth:`training_arrays`)."""
        arrays = self.training_arrays(sequences)
        lengths = (arrays["items"] > 0).sum(axis=1)
        return Windows(arrays, lengths, self.loss_positions(arrays, lengths))

    def fit(self, train: Dataset, valid: Validator | None = None) -> Self:
        c = self.config
        seed_everything(c.seed)
        self._attach(train)
        self.prepare(train, valid)
        data = self.training_data(train.sequences)
        n_batches = max(1, -(-data.n_rows // c.batch_size))
        config = self.train_config(max(1.0, data.loss_positions / n_batches))
        generator = torch.Generator(device=self.device_).manual_seed(c.seed)

        def batches(rng: np.random.Generator) -> Sequence[Batch]:
            return data.batches(c.batch_size, rng, self.device_)

        def step_loss(batch: Batch) -> torch.Tensor:
            return self.batch_loss(batch, config, generator)

        report = training.train(self.net_, batches, step_loss,
                                None if valid is None else partial(valid, self), config,
                                c.seed, self.key)
        if valid is None:  # nothing was selected on validation
            del report["best_epoch"], report["best_valid"]
        self.fit_report_ = {**report, **self.extra_report()}
        return self

    def loss_positions(self, arrays: dict[str, np.ndarray], lengths: np.ndarray) -> float:
        """Expected number of positions with a loss in one pass over ``arrays`` (whose rows
        hold ``lengths`` real items)."""
        return float((arrays["targets"] > 0).sum())

    def prepare(self, train: Dataset, valid: Validator | None) -> None:
        """Hook run before training (e.g. fitting a candidate generator)."""

    def extra_report(self) -> dict[str, Any]:
        """What the model adds to ``fit_report_`` beside the training loop's record."""
        return {}

    @abstractmethod
    def batch_loss(self, batch: Batch, config: TrainConfig, generator: torch.Generator
                   ) -> torch.Tensor:
        """The training loss of one batch of windows."""

    # ------------------------------------------------------------------ scoring

    def inputs(self, history: Sequences) -> Batch:
        """Windows of the last ``maxlen`` steps, trimmed of columns that are all padding."""
        windows = feature_windows(history, self.config.maxlen, self.features)
        first = first_real_column(windows["items"])
        return {n: torch.from_numpy(w[:, first:]).to(self.device_) for n, w in windows.items()}

    def _checked_items(self, items: np.ndarray) -> np.ndarray:
        items = np.asarray(items, dtype=np.int64).reshape(-1)
        if items.size and (items.min() < 0 or items.max() >= self.dataset_.n_items):
            raise ValueError(f"item indices must be in 0..{self.dataset_.n_items - 1}")
        return items

    # ------------------------------------------------------------------ explanations

    @abstractmethod
    def explain(self, history: Sequences, items: np.ndarray) -> np.ndarray:
        """Weights over one customer's scored window (oldest to newest) for each item in
        ``items``: shape (len(items), window length), each row sums to 1."""

    def self_attention(self, history: Sequences) -> np.ndarray | None:
        """Last block's self-attention (heads averaged) over one customer's window, or None
        for models without one."""
        return None

    def step_labels(self, history: Sequences) -> list[str]:
        """'viewed p001' per step of a one-row ``history``'s scored window, oldest first."""
        self._check_fitted()
        return step_labels(self.dataset_, history.last(self.config.maxlen),
                           self.label_actions_)

    def reasons(self, history: Sequences, items: np.ndarray, top_steps: int = 3
                ) -> list[Reason]:
        """Per item, the ``top_steps`` history steps with the most weight in :meth:`explain`
        ("attended to viewed p001 (40%), carted p002 (30%)"), with their weights as
        evidence."""
        self._check_fitted()
        if history.n_rows != 1:
            raise ValueError("reasons take the history of one customer")
        items = self._checked_items(items)
        if not items.size:
            return []
        labels = self.step_labels(history)
        return [reason(self.explain_with, labels, w, top_steps)
                for w in self.explain(history, items)]

    # ------------------------------------------------------------------ state

    def to_state(self) -> ModelState:
        self._check_fitted()
        return ModelState({NET + k: v.detach().cpu().numpy().copy()
                           for k, v in self.net_.state_dict().items()})

    @classmethod
    def from_state(cls, config: SC, dataset: Dataset, state: ModelState) -> Self:
        model = cls(config)
        model._attach(dataset)
        model._load_weights(state)
        return model

    def _load_weights(self, state: ModelState) -> None:
        """Load the network weights from ``state``; any missing, extra, misshapen or
        non-finite weight raises :class:`ArtifactError`."""
        expected = self.net_.state_dict()
        saved = {k[len(NET):] for k in state.arrays if k.startswith(NET)}
        extra = sorted(saved - set(expected))
        problem = f"the saved {self.key} network does not fit this dataset and configuration"
        if extra:
            raise ArtifactError(f"{problem}: unexpected weights {', '.join(extra)}")
        weights = {}
        for name, tensor in expected.items():
            try:
                array = state.array(NET + name, tuple(tensor.shape))
            except ArtifactError as exc:
                raise ArtifactError(f"{problem}: {exc}") from exc
            weights[name] = torch.tensor(array, dtype=tensor.dtype)
        self.net_.load_state_dict(weights)
        self.net_.eval()


class NextItemRecommender(SequentialRecommender[SC, NextItemNet]):
    """A network whose last hidden state scores every item by a dot product with the item
    embeddings; trained with the next-item losses of :mod:`.training`."""

    def batch_loss(self, batch: Batch, config: TrainConfig, generator: torch.Generator
                   ) -> torch.Tensor:
        hidden = self.net_(batch)[0]
        return sequence_loss(hidden, batch["targets"], self.net_.items.weight,
                             self.net_.n_items, config, generator)

    def final_states(self, batch: Batch) -> torch.Tensor:
        """The hidden state after each row's last step, shape (rows, dim)."""
        hidden: torch.Tensor = self.net_(batch)[0]
        return hidden[:, -1]

    def score(self, history: Sequences, customers: np.ndarray | None = None) -> np.ndarray:
        self._check_fitted()
        self.net_.eval()
        with torch.no_grad():
            scores = self.final_states(self.inputs(history)) @ self.net_.item_weights().T
        return scores.float().cpu().numpy()

    def explain(self, history: Sequences, items: np.ndarray) -> np.ndarray:
        """See :meth:`SequentialRecommender.explain`. Attention models weight the steps by
        each item's gradient on the attention maps, rolled out through the blocks (so the
        steps differ from item to item where the causes differ); others use gradient x
        input of each item's score."""
        self._check_fitted()
        if history.n_rows != 1:
            raise ValueError("explain takes the history of one customer")
        items = self._checked_items(items)
        self.net_.eval()
        batch = self.inputs(history)
        if self.explain_with == "attention":
            rows = self._attention_attribution(batch, items)
        else:
            rows = self._gradient_attribution(batch, items)
        rows = rows / rows.sum(dim=1, keepdim=True).clamp_min(1e-12)
        return rows.float().cpu().numpy()

    def _item_scores(self, x: torch.Tensor, batch: Batch, items: np.ndarray
                     ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Scores of ``items`` for the one row of ``batch`` from embedded inputs ``x``, and
        the attention weights of each block."""
        hidden, weights = self.net_.encode(x, batch, return_weights=True)
        wanted = torch.as_tensor(items, device=self.device_)
        return (hidden[:, -1] @ self.net_.item_weights()[wanted].T)[0], weights

    def _attention_attribution(self, batch: Batch, items: np.ndarray) -> torch.Tensor:
        with torch.enable_grad():
            scores, weights = self._item_scores(self.net_.embed(batch), batch, items)
            rows = [gradient_rollout(weights, torch.autograd.grad(
                scores[i], weights, retain_graph=i + 1 < len(items)))[0, -1]
                for i in range(len(items))]
        if not rows:
            return torch.zeros((0, batch["items"].shape[1]), device=self.device_)
        return torch.stack(rows).detach()

    def _gradient_attribution(self, batch: Batch, items: np.ndarray) -> torch.Tensor:
        x = self.net_.embed(batch).detach().requires_grad_(True)
        final = self.net_.encode(x, batch)[0][:, -1]
        wanted = torch.as_tensor(items, device=self.device_)
        scores = (final @ self.net_.item_weights()[wanted].T)[0]
        rows = []
        for i in range(len(items)):
            (grad,) = torch.autograd.grad(scores[i], x, retain_graph=True)
            rows.append((grad * x).sum(-1)[0].abs())
        if not rows:
            return torch.zeros((0, x.shape[1]), device=x.device)
        return torch.stack(rows).detach()

    def self_attention(self, history: Sequences) -> np.ndarray | None:
        self._check_fitted()
        if self.explain_with != "attention":
            return None
        self.net_.eval()
        with torch.no_grad():
            _, weights = self.net_(self.inputs(history), return_weights=True)
        matrix: np.ndarray = weights[-1][0].mean(0).float().cpu().numpy()
        return matrix
