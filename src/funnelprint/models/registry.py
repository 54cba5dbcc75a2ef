"""Model keys (``--models``, ``--model-type``) to classes; building a model by its key.

The built-in models register themselves when :mod:`funnelprint.models` is imported (it
imports :mod:`funnelprint.models.catalog`), which importing this module always does first;
the neural ones when their key is first asked for (:data:`DEFERRED`), so that commands
that use none of them do not pay for importing PyTorch.
"""

from __future__ import annotations

import importlib
from typing import Any, TypeVar

from funnelprint.models.contract import Recommender

REGISTRY: dict[str, type[Recommender[Any]]] = {}
#: Keys of built-in models registered by importing their module on first use.
DEFERRED: dict[str, str] = {
    **{key: "funnelprint.models.neural.models"
       for key in ("sasrec", "funnelformer", "bert4rec", "gru4rec")},
    "bst": "funnelprint.models.neural.reranker",
    **{key: "funnelprint.models.neural.graph_models" for key in ("srgnn", "gcegnn")},
    "seqvae": "funnelprint.models.neural.vae_models",
}
R = TypeVar("R", bound=type[Recommender[Any]])


def register(cls: R) -> R:
    """Class decorator: make ``cls`` available under ``cls.key``."""
    if not cls.key:
        raise ValueError(f"{cls.__name__} needs a non-empty key")
    if REGISTRY.get(cls.key, cls) is not cls:
        raise ValueError(f"model key {cls.key!r} is already taken by "
                         f"{REGISTRY[cls.key].__name__}")
    REGISTRY[cls.key] = cls
    return cls


def available() -> list[str]:
    return sorted(set(REGISTRY) | set(DEFERRED))


def model_class(key: str) -> type[Recommender[Any]]:
    if key not in REGISTRY and key in DEFERRED:
        importlib.import_module(DEFERRED[key])
    if key not in REGISTRY:
        raise ValueError(f"unknown model {key!r}; available: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[key]


def make_model(key: str, preset: str | None = None, **params: Any) -> Recommender[Any]:
    """A new model of type ``key``: its config from ``preset`` (if any) with ``params``
    on top."""
    cls = model_class(key)
    return cls(cls.config_class.from_params(params, preset))


def preset_for(key: str, name: str) -> str | None:
    """``name`` if model ``key`` has such a preset, else None."""
    return name if name in model_class(key).config_class.PRESETS else None
