"""Shared wrapper: a PyTorch sequence network behind the recommender interface."""

from __future__ import annotations

import logging
from abc import abstractmethod

import numpy as np
import torch
from typing_extensions import Self

from funnelprint.data.dataset import Dataset
from funnelprint.data.sequences import Sequences
from funnelprint.evaluate.splits import EvalSet
from funnelprint.models.base import Recommender
from funnelprint.models.neural.batching import (
    last_window,
    length_batches,
    training_windows,
    trim_padding,
)
from funnelprint.models.neural.training import (
    LOSSES,
    TrainConfig,
    pick_device,
    seed_everything,
    sequence_loss,
    train,
)

log = logging.getLogger(__name__)


class SequentialRecommender(Recommender):
    """Trains a next-item network on left-padded windows of the last ``maxlen`` items.

    Early stopping and the kept checkpoint follow validation NDCG@10 (full ranking, history
    excluded) on at most ``valid_customers`` customers of the validation set given to
    :meth:`fit`; with none, training runs for ``epochs`` (or ``time_budget_s``).
    """

    uses_validation = True

    def __init__(self, maxlen: int = 50, dim: int = 64, blocks: int = 2, heads: int = 1,
                 dropout: float = 0.2, loss: str = "sampled", negatives: int = 1024,
                 epochs: int = 200, batch_size: int = 128, lr: float = 1e-3,
                 weight_decay: float = 0.0, patience: int = 3, eval_every: int = 2,
                 time_budget_s: float | None = 540.0, valid_customers: int = 5000,
                 device: str = "auto", progress: bool = True, seed: int = 0) -> None:
        self.maxlen = maxlen
        self.dim = dim
        self.blocks = blocks
        self.heads = heads
        self.dropout = dropout
        self.loss = loss
        self.negatives = negatives
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.patience = patience
        self.eval_every = eval_every
        self.time_budget_s = time_budget_s
        self.valid_customers = valid_customers
        self.device = device
        self.progress = progress
        self.seed = seed

    @abstractmethod
    def build(self, n_items: int) -> torch.nn.Module:
        """The network for a catalogue of ``n_items``."""

    def hidden_states(self, inputs: torch.Tensor) -> torch.Tensor:
        """(batch, maxlen, dim) hidden states; position t predicts item t + 1."""
        return self.net_(inputs)[0]

    def train_config(self) -> TrainConfig:
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}")
        return TrainConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                           weight_decay=self.weight_decay, loss=self.loss,
                           negatives=self.negatives, patience=self.patience,
                           eval_every=self.eval_every, time_budget_s=self.time_budget_s,
                           progress=self.progress)

    def fit(self, dataset: Dataset, valid: EvalSet | None = None) -> Self:
        config = self.train_config()
        seed_everything(self.seed)
        self.dataset_ = dataset
        self.device_ = pick_device(self.device)
        self.net_ = self.build(dataset.n_items).to(self.device_)
        inputs, targets = training_windows(dataset.sequences, self.maxlen)
        generator = torch.Generator(device=self.device_).manual_seed(self.seed)

        lengths = (inputs > 0).sum(axis=1)

        def batches(rng: np.random.Generator) -> list[tuple[torch.Tensor, ...]]:
            return [tuple(torch.from_numpy(a).to(self.device_) for a in arrays)
                    for arrays in length_batches([inputs, targets], lengths,
                                                 config.batch_size, rng)]

        def step_loss(batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
            return self.batch_loss(batch, config, generator)

        validate = None
        if valid is not None and valid.n_rows:
            subset = valid.subset(np.random.default_rng(self.seed).permutation(valid.n_rows)
                                  [: self.valid_customers])
            validate = lambda: self._validation_ndcg(subset)  # noqa: E731
        self.training_ = train(self.net_, batches, step_loss, validate, config, self.seed,
                               self.key)
        return self

    def batch_loss(self, batch: tuple[torch.Tensor, ...], config: TrainConfig,
                   generator: torch.Generator) -> torch.Tensor:
        inputs, targets = batch
        hidden = self.hidden_states(inputs)
        return sequence_loss(hidden, targets, self.net_.item_weights(), config, generator)

    def _validation_ndcg(self, subset: EvalSet) -> float:
        from funnelprint.evaluate.protocol import Protocol, evaluate_model

        result = evaluate_model(self, subset, self.dataset_, Protocol("loo", 0), ks=(10,))
        return result["NDCG@10"]

    def score(self, history: Sequences, customers: np.ndarray | None = None) -> np.ndarray:
        self._check_fitted()
        self.net_.eval()
        window = trim_padding(last_window(history, self.maxlen))
        inputs = torch.from_numpy(window).to(self.device_)
        with torch.no_grad():
            final = self.hidden_states(inputs)[:, -1]
            scores = final @ self.net_.item_weights().T
        return scores.float().cpu().numpy()
