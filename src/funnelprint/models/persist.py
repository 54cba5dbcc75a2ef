"""Save and load any registered model: its config, what it learned (``to_state``) and the
dataset it serves from, as one verified model directory (see :mod:`funnelprint.artifacts`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from funnelprint.artifacts import ArtifactError, load_artifact, save_artifact
from funnelprint.data.dataset import Dataset
from funnelprint.models.contract import ModelState, Recommender
from funnelprint.models.registry import model_class

KIND = "recommender"
_MODEL, _DATA = "model.", "dataset."


def save(model: Recommender[Any], directory: str | Path, dataset: Dataset | None = None,
         trained_on: str = "", fingerprint: dict[str, Any] | None = None) -> Path:
    """Write a fitted ``model`` to ``directory`` (replaced atomically).

    ``dataset`` is what the loaded model recommends from (default: the one it was fitted
    on); it must share the fitted dataset's items. ``trained_on`` names the part of it the
    model learned from (``loo-train``: every customer's sequence without its last two
    items), so that evaluation can refuse to score targets the model saw.
    """
    model._check_fitted()
    serving = model.dataset_ if dataset is None else dataset
    if not np.array_equal(serving.item_ids, model.dataset_.item_ids):
        raise ValueError("the serving dataset must index the same items as the fitted one")
    state = model.to_state()
    data_arrays, data_meta = serving.to_arrays()
    arrays = {_MODEL + k: v for k, v in state.arrays.items()}
    arrays.update({_DATA + k: v for k, v in data_arrays.items()})
    json_state = {"model": state.meta, "dataset": data_meta, "trained_on": trained_on,
                  "fit_report": model.fit_report_}
    return save_artifact(directory, KIND, model.get_params(), arrays, json_state,
                         fingerprint or {"dataset": serving.name, **serving.stats()},
                         extra={"model": model.key})


def load(directory: str | Path, **overrides: Any) -> Recommender[Any]:
    """Load a model written by :func:`save`. ``overrides`` replace run-time settings of the
    saved config (``device``, ``progress``). Anything missing, tampered, of the wrong shape
    or non-finite raises :class:`~funnelprint.artifacts.ArtifactError`."""
    manifest, arrays, state = load_artifact(directory, KIND)
    key = manifest.get("model")
    try:
        cls = model_class(str(key))
        params = manifest.get("params")
        if not isinstance(params, dict):
            raise ValueError("the manifest has no parameters")
        config = cls.config_class.from_params({**params, **overrides})
        dataset = Dataset.from_arrays(_prefixed(arrays, _DATA), state["dataset"])
        model_state = ModelState(_prefixed(arrays, _MODEL), dict(state["model"]))
        model = cls.from_state(config, dataset, model_state)
    except ArtifactError as exc:
        raise ArtifactError(f"{directory}: {exc}") from exc
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ArtifactError(f"{directory}: cannot rebuild the {key!r} model ({exc})") from exc
    model.fit_report_ = dict(state.get("fit_report") or {})
    model.trained_on_ = str(state.get("trained_on", ""))
    return model


def _prefixed(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    return {k[len(prefix):]: np.asarray(v) for k, v in arrays.items() if k.startswith(prefix)}
