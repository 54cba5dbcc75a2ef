"""The sequential VAE, registered as ``seqvae``: a next-item recommender whose customer state
is a Gaussian, exposed as a profile with uncertainty (:meth:`SeqVAE.profiles`)."""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np
import polars as pl
import torch

from funnelprint.data.dataset import Dataset
from funnelprint.data.sequences import Sequences
from funnelprint.models.neural.base import NextItemRecommender
from funnelprint.models.neural.batching import N_GAP_BUCKETS, PrefixWindows, Windows
from funnelprint.models.neural.config import SeqVAEConfig
from funnelprint.models.neural.layers import Batch, NextItemNet
from funnelprint.models.neural.sasrec import SASRecNet
from funnelprint.models.neural.seqvae import SeqVAENet, kl_to_standard_normal
from funnelprint.models.neural.training import TrainConfig, position_mean, sequence_loss
from funnelprint.models.registry import register

Pooling = Literal["last", "mean"]
POOLINGS: tuple[str, ...] = get_args(Pooling)


@register
class SeqVAE(NextItemRecommender[SeqVAEConfig]):
    """Sequential VAE: causal self-attention -> a Gaussian over ``latent`` dimensions per
    step -> decoder -> next-item scores. Trained on the next item at every step with the
    shared losses plus ``beta`` times the KL divergence of each step's Gaussian from a
    standard normal (annealed); scored from the means. Explanations are attention rollout,
    as for SASRec."""

    key = "seqvae"
    config_class = SeqVAEConfig
    _steps = 0

    def build(self, dataset: Dataset) -> NextItemNet:
        c = self.config
        encoder = SASRecNet(dataset.n_items, c.maxlen, c.dim, c.blocks, c.heads, c.dropout,
                            c.pre_norm, n_actions=len(dataset.action_names) if c.use_actions
                            else 0, n_gaps=N_GAP_BUCKETS if c.use_gaps else 0,
                            block=c.block, ff_multiplier=c.ff_multiplier)
        return SeqVAENet(encoder, c.latent)

    def training_data(self, sequences: Sequences) -> Windows | PrefixWindows:
        self._steps = 0  # the KL weight's warm-up restarts with every fit
        return super().training_data(sequences)

    def batch_loss(self, batch: Batch, config: TrainConfig, generator: torch.Generator
                   ) -> torch.Tensor:
        net = self._vae
        mean, log_var, _ = net.posterior(net.embed(batch), batch)
        draw = mean + torch.randn(mean.shape, device=mean.device, generator=generator) \
            * (0.5 * log_var).exp()
        targets = batch["targets"]
        loss = sequence_loss(net.decoder(draw), targets, net.items.weight, net.n_items,
                             config, generator)
        c = self.config
        weight = c.beta * min(1.0, self._steps / c.anneal_steps) if c.anneal_steps else c.beta
        self._steps += 1
        kl = kl_to_standard_normal(mean, log_var)[targets > 0]
        return loss + weight * position_mean(kl, config)

    @property
    def _vae(self) -> SeqVAENet:
        net = self.net_
        if not isinstance(net, SeqVAENet):
            raise TypeError("the seqvae network is not a SeqVAENet")
        return net

    def latent_profile(self, history: Sequences, pooling: Pooling = "last"
                       ) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation (rows, latent) of each history's latent Gaussian:
        the last step's (``pooling="last"``: the customer now), or the average over the
        window's steps of their means and variances (``"mean"``: the customer over the
        window). An empty history gives the encoder's state for no steps."""
        self._check_fitted()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, not {pooling!r}")
        net = self._vae
        net.eval()
        batch = self.inputs(history)
        with torch.no_grad():
            mean, log_var, _ = net.posterior(net.embed(batch), batch)
            if pooling == "last":
                mean, variance = mean[:, -1], log_var[:, -1].exp()
            else:
                real = (batch["items"] > 0).unsqueeze(-1).float()
                real[:, -1] = 1.0  # an empty history keeps its one (padding) step
                count = real.sum(dim=1)
                mean = (mean * real).sum(dim=1) / count
                variance = (log_var.exp() * real).sum(dim=1) / count
        return mean.float().cpu().numpy(), variance.sqrt().float().cpu().numpy()

    def profiles(self, customers: np.ndarray | None = None, pooling: Pooling = "last"
                 ) -> pl.DataFrame:
        """One row per customer (default: all of the dataset's): ``customer_id``, then
        ``latent_<k>`` (mean) and ``latent_<k>_sd`` (standard deviation) per dimension, from
        the customer's sequence (see :meth:`latent_profile` for ``pooling``)."""
        self._check_fitted()
        if customers is None:
            customers = np.arange(self.dataset_.n_customers)
        customers = np.asarray(customers, dtype=np.int64)
        latent = self.config.latent
        means, sds = [np.zeros((0, latent), np.float32)], [np.zeros((0, latent), np.float32)]
        for start in range(0, customers.size, 4096):
            part = self.dataset_.sequences.select(customers[start: start + 4096])
            mean, sd = self.latent_profile(part, pooling)
            means.append(mean)
            sds.append(sd)
        mean, sd = np.concatenate(means), np.concatenate(sds)
        columns: dict[str, object] = {"customer_id": self.dataset_.customer_ids[customers]}
        for k in range(mean.shape[1]):
            columns[f"latent_{k}"] = mean[:, k]
            columns[f"latent_{k}_sd"] = sd[:, k]
        return pl.DataFrame(columns)
