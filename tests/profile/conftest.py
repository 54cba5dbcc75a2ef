from __future__ import annotations

import pytest

from funnelprint.data.dataset import Dataset
from funnelprint.data.pipeline import prepare_events
from funnelprint.data.simulate import SimulationConfig, simulate
from funnelprint.profile.model import ProfileModel


@pytest.fixture(scope="package")
def shop(tmp_path_factory):
    """A small simulated shop: the simulation, its files, the prepared log and the dataset
    of every event with the products' metadata."""
    sim = simulate(SimulationConfig(customers=400, products=150, personas=4, seed=5))
    paths = sim.write(tmp_path_factory.mktemp("shop"))
    log = prepare_events(paths["events"])
    dataset = Dataset.from_events(log, collapse_repeats=False, products=sim.products)
    return sim, paths, log, dataset


@pytest.fixture(scope="package")
def fitted(shop):
    return ProfileModel(traits=4, n_init=2, anchors=64).fit(shop[3])
