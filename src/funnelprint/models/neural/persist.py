"""Save and load sequential models: network weights and the dataset they index, as
safetensors + JSON (no pickle)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from funnelprint.artifacts import ArtifactError, load_artifact, save_artifact
from funnelprint.data.dataset import Dataset
from funnelprint.data.sequences import Sequences
from funnelprint.models.neural.training import pick_device

if TYPE_CHECKING:
    from funnelprint.models.neural.base import SequentialRecommender

KIND = "sequential"
_NET = "net."


def save_sequential(model: SequentialRecommender, directory: str | Path, fingerprint: dict,
                    trained_on: str) -> Path:
    data = model.dataset_
    seq = data.sequences
    arrays = {_NET + k: v.detach().cpu().numpy() for k, v in model.net_.state_dict().items()}
    arrays.update({"seq_offsets": seq.offsets, "seq_items": seq.items,
                   "seq_actions": seq.actions, "seq_times": seq.times})
    params = {k: v for k, v in model.get_params().items() if k not in ("device", "progress")}
    state = {
        "model": model.key,
        "customer_ids": data.customer_ids.tolist(),
        "item_ids": data.item_ids.tolist(),
        "action_names": list(data.action_names),
        "item_categories": None if data.item_categories is None
        else [str(c) for c in data.item_categories],
        "dataset_name": data.name,
        "synthetic_time": data.synthetic_time,
        "trained_on": trained_on,
        "training": {k: v for k, v in getattr(model, "training_", {}).items() if k != "epochs"},
    }
    return save_artifact(directory, KIND, params, arrays, state, fingerprint)


def load_sequential(directory: str | Path, device: str = "auto") -> SequentialRecommender:
    """Load a model written by :meth:`SequentialRecommender.save`."""
    from funnelprint.models.base import make_model

    manifest, arrays, state = load_artifact(directory, KIND)
    try:
        model = make_model(state["model"], **manifest["params"], device=device,
                           progress=False)
        categories = state["item_categories"]
        dataset = Dataset(
            np.asarray(state["customer_ids"], dtype=str), np.asarray(state["item_ids"], dtype=str),
            Sequences(arrays["seq_offsets"], arrays["seq_items"], arrays["seq_actions"],
                      arrays["seq_times"]),
            tuple(state["action_names"]),
            None if categories is None else np.asarray(categories, dtype=object),
            state["dataset_name"], bool(state["synthetic_time"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ArtifactError(f"{directory}: incomplete sequential model ({exc})") from exc
    model.dataset_ = dataset
    model.device_ = pick_device(device)
    model.net_ = model.build(dataset).to(model.device_)
    weights = {k[len(_NET):]: torch.from_numpy(np.asarray(v)) for k, v in arrays.items()
               if k.startswith(_NET)}
    try:
        model.net_.load_state_dict(weights)
    except RuntimeError as exc:
        raise ArtifactError(f"{directory}: weights do not match the model ({exc})") from exc
    model.net_.eval()
    model.training_ = dict(state.get("training", {}))
    model.trained_on_ = state.get("trained_on", "")
    model.fingerprint_ = manifest.get("data_fingerprint", {})
    model.prepare(dataset, None)
    return model
