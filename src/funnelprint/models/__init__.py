"""Recommenders behind one interface; ``make_model(key)`` builds one by its key."""

from funnelprint.models import baselines, item2vec  # noqa: F401  (register the models)
from funnelprint.models.base import MODEL_REGISTRY, Recommender, make_model

__all__ = ["MODEL_REGISTRY", "Recommender", "make_model"]
