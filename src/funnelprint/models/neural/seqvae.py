"""A sequential variational autoencoder (in the line of SVAE, Sachdeva et al., WSDM 2019, and
ContrastVAE, Wang et al., CIKM 2022): a causal self-attention encoder maps every prefix of a
customer's sequence to a Gaussian over a small latent space, and a decoder maps a draw from
it to the next item's scores. The Gaussian of the last step is the customer's profile: a
mean and a standard deviation per latent dimension."""

from __future__ import annotations

import torch
from torch import nn

from funnelprint.models.neural.layers import Batch, NextItemNet
from funnelprint.models.neural.sasrec import SASRecNet


class SeqVAENet(NextItemNet):
    """:class:`SASRecNet` states -> ``latent``-dimensional mean and log-variance per step ->
    (a draw in training, the mean otherwise) -> a two-layer decoder into the item
    embedding space."""

    def __init__(self, encoder: SASRecNet, latent: int) -> None:
        super().__init__()
        dim = encoder.items.embedding_dim
        self.encoder = encoder
        self.n_items = encoder.n_items
        self.items = encoder.items
        self.to_mean = nn.Linear(dim, latent)
        self.to_log_var = nn.Linear(dim, latent)
        self.decoder = nn.Sequential(nn.Linear(latent, dim), nn.GELU(), nn.Linear(dim, dim))

    def embed(self, batch: Batch) -> torch.Tensor:
        return self.encoder.embed(batch)

    def posterior(self, x: torch.Tensor, batch: Batch, return_weights: bool = False
                  ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """Mean and log-variance (batch, steps, latent) of each step's latent Gaussian, and
        the encoder's attention weights when asked for."""
        hidden, weights = self.encoder.encode(x, batch, return_weights)
        log_var = self.to_log_var(hidden).clamp(-10.0, 10.0)
        return self.to_mean(hidden), log_var, weights

    def encode(self, x: torch.Tensor, batch: Batch, return_weights: bool = False
               ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Decoded latent means: the deterministic scoring path."""
        mean, _, weights = self.posterior(x, batch, return_weights)
        return self.decoder(mean), weights

    def item_weights(self) -> torch.Tensor:
        return self.encoder.item_weights()


def kl_to_standard_normal(mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(log_var)) || N(0, I)) per step, summed over latent dimensions."""
    return 0.5 * (mean.square() + log_var.exp() - 1.0 - log_var).sum(dim=-1)
