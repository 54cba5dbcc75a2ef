"""Recommenders behind one contract (:mod:`.contract`), built by key from the registry
(:mod:`.registry`) and saved or loaded by :mod:`.persist`."""

from funnelprint.models import catalog  # noqa: F401  (registers the built-in models)
from funnelprint.models.contract import (
    CandidateScorer,
    Explainer,
    ModelConfig,
    ModelState,
    Recommender,
    Validator,
)
from funnelprint.models.persist import load, save
from funnelprint.models.registry import available, make_model, model_class, preset_for, register

__all__ = ["CandidateScorer", "Explainer", "ModelConfig", "ModelState", "Recommender",
           "Validator", "available", "load", "make_model", "model_class", "preset_for", "register",
           "save"]
