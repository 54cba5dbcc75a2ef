"""The served model set: loaded whole, swapped whole, kept on a failed reload."""

from __future__ import annotations

import shutil

import pytest

from funnelprint.artifacts import ArtifactError
from funnelprint.serve.models import Models


def test_reload_swaps_the_whole_set_and_keeps_the_old_one_intact(model_dir, markov_dir,
                                                                 tmp_path):
    models = Models([model_dir])
    in_flight = models.current  # what a running request holds
    fresh = models.reload([model_dir, markov_dir])
    assert list(fresh.models) == ["traits", "markov"] and models.current is fresh
    assert list(in_flight.models) == ["traits"]  # the running request's set is unchanged
    assert in_flight.traits is not None and in_flight.get(None).key == "traits"
    broken = shutil.copytree(model_dir, tmp_path / "broken")
    (broken / "state.json").write_text("{}")
    with pytest.raises(ArtifactError, match="cannot load the model in"):
        models.reload([broken])
    assert models.current is fresh and models.paths == [str(model_dir), str(markov_dir)]
    with pytest.raises(KeyError, match="no model named 'nope'"):
        fresh.get("nope")
