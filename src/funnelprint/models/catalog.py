"""The built-in models: importing this module registers the light ones; the neural ones
(PyTorch) register on first use (``registry.DEFERRED``)."""

from funnelprint.models import baselines, item2vec, traits  # noqa: F401
