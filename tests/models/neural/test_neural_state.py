"""Sequential models' learned state: ``to_state`` / ``from_state`` through
:mod:`funnelprint.models.persist` (models/neural/base.py, models.py)."""

from __future__ import annotations

import numpy as np
import pytest

from funnelprint.artifacts import ArtifactError
from funnelprint.models import load, make_model, model_class, save
from funnelprint.models.contract import ModelState

from .conftest import FEW_STEPS, cyclic_dataset

KEYS = ("sasrec", "bert4rec", "gru4rec", "funnelformer", "bst", "srgnn", "gcegnn", "seqvae")


@pytest.fixture(scope="module")
def fitted(funnel_split):
    """One briefly trained model per key (on data with two actions)."""
    return {key: make_model(key, **FEW_STEPS).fit(funnel_split.train) for key in KEYS}


@pytest.mark.parametrize("key", KEYS)
def test_save_then_load_recommends_the_same(key, fitted, funnel_split, tmp_path):
    model = fitted[key]
    save(model, tmp_path / key, trained_on="loo-train")
    loaded = load(tmp_path / key, device="cpu", progress=False)
    assert type(loaded) is type(model) and loaded.config.device == "cpu"
    assert loaded.get_params() == {**model.get_params(), "device": "cpu"}
    assert loaded.trained_on_ == "loo-train" and loaded.fit_report_ == model.fit_report_
    customers = np.arange(funnel_split.train.n_customers)
    for a, b in zip(model.recommend(customers, k=5), loaded.recommend(customers, k=5),
                    strict=True):
        assert np.array_equal(a, b)
    history = funnel_split.test.history.select(np.array([0]))
    assert model.reasons(history, np.array([0, 1])) == loaded.reasons(history, np.array([0, 1]))


def test_state_holds_the_network_weights_under_their_own_names(fitted):
    model = fitted["sasrec"]
    state = model.to_state()
    names = {f"net.{name}" for name in model.net_.state_dict()}
    assert set(state.arrays) == names
    weights = state.arrays["net.items.weight"]
    assert weights.shape == (model.dataset_.n_items + 1, 16)
    assert np.array_equal(weights, model.net_.items.weight.detach().numpy())
    assert weights is not model.net_.items.weight.detach().numpy()  # a copy, not a view


def test_bst_saves_its_generator_and_loading_never_refits_it(fitted, funnel_split, tmp_path,
                                                             monkeypatch):
    from funnelprint.models.baselines import Markov

    model = fitted["bst"]
    serving = cyclic_dataset(with_actions=True)  # full histories: not what it trained on
    save(model, tmp_path / "bst", dataset=serving, trained_on="loo-train")

    def refit(*args, **kwargs):
        raise AssertionError("loading refitted the candidate generator")

    monkeypatch.setattr(Markov, "fit", refit)
    loaded = load(tmp_path / "bst")
    assert loaded.generator_.key == "markov" and loaded.dataset_.n_interactions == \
        serving.n_interactions
    saved, restored = model.generator_.to_state(), loaded.generator_.to_state()
    assert set(saved.arrays) == set(restored.arrays)
    for name in saved.arrays:
        assert np.array_equal(saved.arrays[name], restored.arrays[name])
    history = funnel_split.test.history
    assert np.array_equal(model.score(history), loaded.score(history))


def test_bst_refuses_a_generator_other_than_its_setting(fitted):
    model = fitted["bst"]
    state = model.to_state()
    state.meta["generator_model"] = {"key": "pop", "params": {}}
    with pytest.raises(ArtifactError, match="generator is 'pop'"):
        type(model).from_state(model.config, model.dataset_, state)


def test_weights_of_the_wrong_shape_are_refused(fitted, tmp_path):
    save(fitted["sasrec"], tmp_path / "m")
    with pytest.raises(ArtifactError, match=r"does not fit .*'net\.items\.weight' has shape"):
        load(tmp_path / "m", dim=8)
    model = fitted["gru4rec"]
    other = cyclic_dataset(items=7)  # another catalogue
    with pytest.raises(ArtifactError, match="does not fit this dataset"):
        type(model).from_state(model.config, other, model.to_state())


@pytest.mark.parametrize("change, message", [
    (lambda s: s.arrays.pop("net.norm.weight"), "lacks the array 'net.norm.weight'"),
    (lambda s: s.arrays.__setitem__("net.extra", np.zeros(3, np.float32)),
     "unexpected weights extra"),
    (lambda s: s.arrays["net.norm.weight"].__setitem__(0, np.nan), "non-finite"),
])
def test_incomplete_or_corrupt_weights_are_refused(fitted, change, message):
    model = fitted["sasrec"]
    state = model.to_state()
    change(state)
    with pytest.raises(ArtifactError, match=message):
        type(model).from_state(model.config, model.dataset_, state)


def test_damaged_or_missing_artifacts_are_refused(fitted, tmp_path):
    save(fitted["funnelformer"], tmp_path / "m")
    (tmp_path / "m" / "arrays.safetensors").write_bytes(b"garbage")
    with pytest.raises(ArtifactError, match="checksum"):
        load(tmp_path / "m")
    with pytest.raises(ArtifactError, match="no such model directory"):
        load(tmp_path / "nothing")


def test_from_state_builds_an_unfitted_config_into_a_serving_model(fitted):
    model = fitted["funnelformer"]
    config = model_class("funnelformer").config_class.from_params(model.get_params())
    rebuilt = type(model).from_state(config, model.dataset_, ModelState(
        dict(model.to_state().arrays)))
    history = model.dataset_.sequences.select(np.arange(5))
    assert np.array_equal(model.score(history), rebuilt.score(history))
