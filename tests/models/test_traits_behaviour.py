"""The trait recommender uses behaviour: price-seeking customers see cheaper items, cart
abandoners the items they left in the cart."""

import numpy as np
import pytest

from funnelprint.data.dataset import Dataset
from funnelprint.data.pipeline import prepare_events
from funnelprint.data.simulate import SimulationConfig, simulate
from funnelprint.models import affinity
from funnelprint.models.traits import TraitsRecommender


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    sim = simulate(SimulationConfig(customers=1500, products=300, seed=1,
                                    scenario="independent"))
    log = prepare_events(sim.write(tmp_path_factory.mktemp("shop"))["events"])
    dataset = Dataset.from_events(log, collapse_repeats=False, products=sim.products)
    truth = dict(zip(sim.truth["customer_id"].to_list(),
                     sim.truth.select("behaviour:price_seeker", "behaviour:cart_abandoner")
                     .to_numpy(), strict=True))
    mixes = np.array([truth[c] for c in dataset.customer_ids])
    return dataset, mixes, TraitsRecommender(seed=0).fit(dataset)


def extremes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return values >= np.quantile(values, 0.8), values <= np.quantile(values, 0.2)


def test_price_weights_move_price_seekers_to_cheaper_items(shop):
    """Against the same model with its price weights zeroed: price-seekers' lists move to
    cheaper items, the least price-seeking customers' lists do not. (On this small shop the
    seekers' lists are not cheaper than everyone else's: their categories and recent items
    weigh more than price.)"""
    dataset, mixes, model = shop
    customers = np.arange(dataset.n_customers)

    def mean_position(weights: np.ndarray) -> np.ndarray:
        model.weights_ = weights
        items, _ = model.recommend(customers, k=10)
        return np.nanmean(model.items_.price_positions[items], axis=1)

    learned = model.weights_.copy()
    blind = learned.copy()
    blind[[affinity.FEATURES.index("price"), affinity.FEATURES.index("carted_price")]] = 0.0
    try:
        with_price, without = mean_position(learned), mean_position(blind)
    finally:
        model.weights_ = learned
    seekers, others = extremes(mixes[:, 0])
    assert with_price[seekers].mean() < without[seekers].mean() - 0.02
    assert abs(with_price[others].mean() - without[others].mean()) < 0.02


def test_abandoners_see_what_they_left_in_the_cart(shop):
    dataset, mixes, model = shop
    rows = np.flatnonzero(extremes(mixes[:, 1])[0])
    left = affinity.left_in_cart(dataset.sequences.select(rows), dataset.action_names,
                                 dataset.n_items)
    items, _ = model.recommend(rows, k=10, exclude_seen=False)
    shown = np.take_along_axis(left, items, axis=1).sum(axis=1) > 0
    has_left = left.sum(axis=1) > 0
    assert has_left.mean() > 0.5 and shown[has_left].mean() > 0.8
    row = int(np.flatnonzero(has_left & shown)[0])
    item = items[row][np.take_along_axis(left, items, axis=1)[row] > 0][0]
    reason = model.reasons(dataset.sequences.select(rows[[row]]), np.array([item]))[0]
    assert "left in the cart" in reason["text"]


def test_learned_weights_are_stored_and_favour_what_predicts(shop):
    model = shop[2]
    weights = dict(zip(affinity.FEATURES, model.weights_, strict=True))
    assert np.isfinite(model.weights_).all()
    assert weights["recent"] > 0 and weights["left_in_cart"] > 0
    assert weights["price"] + weights["carted_price"] > 0
