"""A fitted profile's learned state as named arrays and JSON-ready metadata, and back:
what the model artifact stores (``models.persist`` writes the arrays as safetensors).

Every learned array is listed once, with its shape, in :func:`array_shapes`; reading one
back checks that shape, and :func:`restore` checks the token tables against each other, so
that a tampered or inconsistent state fails with one message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import numpy as np

from funnelprint.profile import solving
from funnelprint.profile.behaviour import (
    FEATURE_NAMES,
    VISIT_FEATURES,
    BehaviourScaler,
    VisitStyles,
)
from funnelprint.profile.fitting import Thresholds

if TYPE_CHECKING:
    from funnelprint.profile.model import ProfileModel

#: Reads one learned array by name, checking its shape (None matches any size).
ArrayReader = Callable[[str, tuple[int | None, ...]], np.ndarray]
#: Arrays of the behaviour state, held by the model's styles and scaler.
BEHAVIOUR_ARRAYS = frozenset({"item_price_position", "style_centers", "style_center",
                              "style_scale", "behaviour_quantiles"})


def array_shapes(model: ProfileModel) -> dict[str, tuple[int | None, ...]]:
    """Every learned array by name (attribute ``<name>_``, or the attention aggregator's
    ``attention.*``) with its shape."""
    c = model.config
    v, k, d = len(model.vocabulary_), model.n_traits_, c.dimension
    n, a, i = model.customer_ids_.size, len(model.action_names_), model.item_ids_.size
    shapes: dict[str, tuple[int | None, ...]] = {
        "token_vectors": (v, d), "token_counts": (v,), "token_actions": (v,),
        "token_items": (v,), "event_tokens": (a, i), "idf": (v,),
        "anchor_centers": (None, d), "components": (k, None), "token_loadings": (v, k),
        "segment_centers": (None, k), "population_profile": (k,),
        "customer_traits": (n, k), "customer_raw": (n, k), "customer_cold": (n,),
        "customer_known": (n,), "block_scales": (3,),
    }
    if c.behaviour:
        shapes |= {"item_price_position": (i,), "style_centers": (None, len(VISIT_FEATURES)),
                   "style_center": (len(VISIT_FEATURES),),
                   "style_scale": (len(VISIT_FEATURES),),
                   "behaviour_quantiles": (None, len(model.behaviour_names_)),
                   "behaviour_population": (len(model.behaviour_names_),)}
    if c.aggregation == "attention":
        from funnelprint.profile.attention import AttentionAggregator

        shapes |= AttentionAggregator.array_shapes(d)
    return shapes


def state_arrays(model: ProfileModel) -> dict[str, np.ndarray]:
    """The learned arrays named by :func:`array_shapes`."""
    attention = model.aggregator_.state_arrays() if model.config.aggregation == "attention" \
        else {}
    behaviour = _behaviour_arrays(model) if model.config.behaviour else {}
    own = attention | behaviour
    return {name: own[name] if name in own else getattr(model, name + "_")
            for name in array_shapes(model)}


def _behaviour_arrays(model: ProfileModel) -> dict[str, np.ndarray]:
    return {"item_price_position": np.nan_to_num(model.item_price_position_, nan=-1.0),
            "style_centers": model.styles_.centers_, "style_center": model.styles_.center_,
            "style_scale": model.styles_.scale_,
            "behaviour_quantiles": model.behaviour_scaler_.quantiles_}


def state_meta(model: ProfileModel) -> dict[str, Any]:
    """What :func:`restore` needs besides the arrays (JSON-ready)."""
    return {"vocabulary": model.vocabulary_, "action_names": list(model.action_names_),
            "customer_ids": [str(c) for c in model.customer_ids_],
            "trait_info": model.trait_info_, "feature_shift": model.feature_shift_,
            "reconstruction_err": model.reconstruction_err_, "traits": model.n_traits_,
            "behaviour_weight": model.behaviour_weight_, "selection": model.selection_,
            "behaviour_names": list(getattr(model, "behaviour_names_", ())),
            "thresholds": asdict(model.thresholds_), "log_days": model.log_days_,
            "left_out": model.left_out_}


def restore(model: ProfileModel, item_ids: np.ndarray, read: ArrayReader,
            meta: dict[str, Any]) -> None:
    """Set the learned state of the unfitted ``model`` from :func:`state_arrays` (through
    ``read``, which checks each array's shape) and :func:`state_meta`; ``item_ids`` are the
    fitted items. An inconsistent state raises ``ValueError``."""
    config = model.config
    model.item_ids_ = np.asarray(item_ids).astype(str)
    model.vocabulary_ = [str(t) for t in meta["vocabulary"]]
    model.action_names_ = tuple(str(a) for a in meta["action_names"])
    model.customer_ids_ = np.asarray(meta["customer_ids"], dtype=str)
    model.trait_info_ = list(meta["trait_info"])
    model.feature_shift_ = float(meta["feature_shift"])
    model.reconstruction_err_ = float(meta["reconstruction_err"])
    model.n_traits_ = int(meta["traits"])
    model.behaviour_weight_ = float(meta["behaviour_weight"])
    model.selection_ = dict(meta["selection"])
    model.behaviour_names_ = tuple(str(n) for n in meta["behaviour_names"])
    # Models saved before the thresholds adapted to the data had them configured.
    thresholds = meta.get("thresholds") or {
        "min_count": config.min_count or 5, "min_known_tokens": config.min_known_tokens or 3,
        "warm": len(meta["customer_ids"]), "customers": len(meta["customer_ids"])}
    model.thresholds_ = Thresholds(**{k: int(v) for k, v in thresholds.items()})
    model.min_known_tokens_ = model.thresholds_.min_known_tokens
    days = meta.get("log_days")
    model.log_days_ = None if days is None else float(days)
    model.left_out_ = {str(k): str(v) for k, v in meta.get("left_out", {}).items()}
    attention, behaviour = {}, {}
    for name, shape in array_shapes(model).items():
        value = read(name, shape)
        if name.startswith("attention."):
            attention[name] = value
        elif name in BEHAVIOUR_ARRAYS:
            behaviour[name] = value
        else:
            setattr(model, name + "_", value)
    if config.behaviour:
        _restore_behaviour(model, behaviour)
    if attention:
        from funnelprint.profile.attention import AttentionAggregator

        model.aggregator_ = AttentionAggregator.from_arrays(attention, config.dimension)
    model.customer_cold_ = model.customer_cold_.astype(bool)
    # Cold starts under the current prior rule, whichever version saved them: what the
    # stored profiles say and what a refresh of the same events gives stay one answer.
    model.customer_traits_, _ = solving.with_priors(
        model.customer_known_, model.customer_raw_, model.min_known_tokens_,
        model.population_profile_, model.segment_centers_, model.trait_behaviour_shares())
    v, n_items = len(model.vocabulary_), model.item_ids_.size
    if (len(model.trait_info_) != model.n_traits_
            or (config.traits is not None and model.n_traits_ != config.traits)
            or np.any((model.event_tokens_ < -1) | (model.event_tokens_ >= v))
            or np.any((model.token_items_ < -1) | (model.token_items_ >= n_items))
            or np.any((model.token_actions_ < 0)
                      | (model.token_actions_ >= len(model.action_names_)))):
        raise ValueError("the profile's token tables are inconsistent")


def _restore_behaviour(model: ProfileModel, arrays: dict[str, np.ndarray]) -> None:
    position = arrays["item_price_position"]
    model.item_price_position_ = np.where(position < 0, np.nan, position)
    model.styles_ = VisitStyles(model.config.styles, seed=model.config.seed)
    model.styles_.centers_ = arrays["style_centers"]
    model.styles_.center_, model.styles_.scale_ = arrays["style_center"], arrays["style_scale"]
    model.behaviour_scaler_ = BehaviourScaler()
    model.behaviour_scaler_.quantiles_ = arrays["behaviour_quantiles"]
    if set(model.behaviour_names_) - set(FEATURE_NAMES) or np.any(model.styles_.scale_ <= 0):
        raise ValueError("the profile's behaviour state is inconsistent")


__all__ = ["BEHAVIOUR_ARRAYS", "ArrayReader", "array_shapes", "restore", "state_arrays",
           "state_meta"]
