"""Recommenders behind one interface; ``make_model(key)`` builds one by its key."""

from funnelprint.models import baselines, item2vec, traits  # noqa: F401  (registers models)
from funnelprint.models.base import MODEL_REGISTRY, Recommender, make_model
from funnelprint.models.neural import models as neural_models  # noqa: F401

__all__ = ["MODEL_REGISTRY", "Recommender", "make_model"]
