"""The sequential models' configurations and presets (models/neural/config.py)."""

from __future__ import annotations

from dataclasses import FrozenInstanceError

import pytest

from funnelprint.models import make_model, model_class
from funnelprint.models.neural.config import (
    FULL_PRESET,
    SAMPLED_PRESET,
    AttentionConfig,
    GRU4RecConfig,
    SequentialConfig,
)

KEYS = ("sasrec", "bert4rec", "gru4rec", "funnelformer", "bst", "srgnn", "gcegnn", "seqvae")


@pytest.mark.parametrize("key", KEYS)
def test_the_defaults_are_the_full_preset(key):
    config_class = model_class(key).config_class
    assert set(config_class.PRESETS) == {"full", "sampled"}
    assert make_model(key).config == make_model(key, preset="full").config
    assert config_class() == config_class.from_params({}, "full")


@pytest.mark.parametrize("key", ("sasrec", "bert4rec", "funnelformer", "bst"))
def test_presets_hold_the_tuned_settings(key):
    sampled = make_model(key, preset="sampled").config
    full = make_model(key, preset="full").config
    assert sampled.get_params() | SAMPLED_PRESET == sampled.get_params()
    assert full.get_params() | FULL_PRESET == full.get_params()
    assert (sampled.loss, sampled.bce_negatives, sampled.weight_decay, sampled.ema_decay,
            sampled.dropout) == ("bce", 16, 0.3, 0.999, 0.5)
    assert (full.loss, full.lr, full.patience, full.weight_decay, full.ema_decay) == (
        "sampled", 1e-3, 3, 0.3, 0.999)


def test_model_specific_defaults_hold_under_every_preset():
    for preset in ("full", "sampled"):
        assert make_model("gru4rec", preset=preset).config.dropout == 0.1
        assert make_model("bst", preset=preset).config.blocks == 1
        assert make_model("sasrec", preset=preset).config.blocks == 2
    # parameters given explicitly win over the preset
    assert make_model("sasrec", preset="sampled", dropout=0.3).config.dropout == 0.3


def test_gru4rec_has_no_attention_settings():
    assert not issubclass(GRU4RecConfig, AttentionConfig)
    assert "blocks" not in make_model("gru4rec").get_params()
    assert "heads" not in make_model("gru4rec").get_params()
    with pytest.raises(ValueError, match="unknown parameter"):
        make_model("gru4rec", blocks=2)


def test_validation_is_no_longer_a_model_setting():
    params = make_model("sasrec").get_params()
    assert "valid_protocol" not in params and "valid_customers" not in params
    assert {"device", "progress", "seed"} <= set(params)


@pytest.mark.parametrize("params, message", [
    ({"maxlen_": 5}, "unknown parameter"),
    ({"dim": "64"}, "dim must be int"),
    ({"progress": 1}, "progress must be bool"),
    ({"time_budget_s": "soon"}, "time_budget_s must be float or None"),
    ({"loss": "hinge"}, "loss must be one of"),
    ({"dropout": 1.0}, "dropout must be in"),
    ({"lr_decay": 0.0}, "lr_decay must be in"),
    ({"ema_decay": 1.0}, "ema_decay must be in"),
    ({"lr": 0}, "lr must be positive"),
    ({"epochs": 0}, "epochs must be at least 1"),
    ({"batch_size": -1}, "batch_size must be at least 1"),
    ({"time_budget_s": 0}, "time_budget_s must be positive"),
    ({"heads": 3}, "multiple of heads"),
    ({"device": "toaster"}, "device must be"),
])
def test_bad_settings_raise_value_error(params, message):
    with pytest.raises(ValueError, match=message):
        make_model("sasrec", **params)


@pytest.mark.parametrize("key, params, message", [
    ("funnelformer", {"target": "click"}, "target must be one of"),
    ("bert4rec", {"mask_prob": 0.0}, "mask_prob must be in"),
    ("bst", {"candidates_from": "bst"}, "its own candidates"),
    ("bst", {"candidates_from": "nonesuch"}, "unknown model"),
    ("bst", {"n_candidates": 0}, "n_candidates must be at least 1"),
    ("gru4rec", {"layers": 0}, "layers must be at least 1"),
])
def test_model_specific_settings_are_checked(key, params, message):
    with pytest.raises(ValueError, match=message):
        make_model(key, **params)


def test_configs_are_frozen_and_round_trip_through_their_parameters():
    config = make_model("funnelformer", preset="sampled", use_gaps=False).config
    name = "dim"
    with pytest.raises(FrozenInstanceError):
        setattr(config, name, 8)
    assert type(config).from_params(config.get_params()) == config
    assert config.replace(dim=32).dim == 32 and config.dim == 64
    assert SequentialConfig().time_budget_s == 540.0
