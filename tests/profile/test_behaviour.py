"""Behaviour features on a log small enough to compute by hand."""

import math

import numpy as np
import pytest

from funnelprint.data.sequences import Sequences
from funnelprint.profile.behaviour import (
    FEATURE_NAMES,
    PRIOR_TRIALS,
    BehaviourScaler,
    behaviour_features,
    price_positions,
)

ACTIONS = ("view", "add_to_cart", "remove_from_cart", "purchase")
V, C, R, P = range(4)
S = 1_000_000  # one second in microseconds
DAY = 86_400 * S
GAP = 30 * 60 * S


def hand_log() -> Sequences:
    """Customer 0, one visit: views item 0, carts it after 60 s, buys it after 120 s, views
    item 1. Customer 1: views item 1, carts it after 10 s, removes it; two days later views
    item 1 again and item 2."""
    rows = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1])
    items = np.array([0, 0, 0, 1, 1, 1, 1, 1, 2])
    actions = np.array([V, C, P, V, V, C, R, V, V])
    times = np.array([0, 60, 120, 200, 0, 10, 20, 2 * 86_400, 2 * 86_400 + 30]) * S
    return Sequences.from_rows(rows, items, actions, times, 2)


PRICES = np.array([10.0, 20.0, 30.0])


def table(prices: np.ndarray | None = PRICES):
    positions = price_positions(prices, np.array(["a", "a", "a"])) if prices is not None \
        else None
    out = behaviour_features(hand_log(), ACTIONS, positions, GAP)
    return out, {name: out.values[:, j] for j, name in enumerate(out.names)}


def smoothed(hits: float, trials: float, rate: float) -> float:
    return (hits + PRIOR_TRIALS * rate) / (trials + PRIOR_TRIALS)


def test_funnel_rates_are_smoothed_towards_the_pooled_rate():
    out, f = table()
    # 2 carts over 5 views; 1 purchase over 2 carts; 1 of 2 carted products never bought.
    assert f["view_to_cart"] == pytest.approx([smoothed(1, 2, 0.4), smoothed(1, 3, 0.4)])
    assert f["cart_to_purchase"] == pytest.approx([smoothed(1, 1, 0.5), smoothed(0, 1, 0.5)])
    assert f["carts_never_bought"] == pytest.approx([smoothed(0, 1, 0.5),
                                                     smoothed(1, 1, 0.5)])
    assert f["cart_to_remove"] == pytest.approx([smoothed(0, 1, 0.5), smoothed(1, 1, 0.5)])
    # Customer 1's second view of item 1 returns to it in a later visit: 1 of 5 views.
    assert f["repeat_views"] == pytest.approx([smoothed(0, 2, 0.2), smoothed(1, 3, 0.2)])
    population = dict(zip(out.names, out.population, strict=True))
    assert population["view_to_cart"] == pytest.approx(0.4)
    assert out.events.tolist() == [4, 5]


def test_visits_speed_and_cadence():
    _, f = table()
    assert f["views_per_session"] == pytest.approx([2.0, 1.5])
    assert f["sessions"] == pytest.approx([0.0, math.log(2)])
    assert f["session_minutes"] == pytest.approx([200 / 60, (20 / 60 + 30 / 60) / 2])
    assert f["seconds_view_to_cart"] == pytest.approx([math.log1p(60), math.log1p(10)])
    # Customer 1 bought nothing: the population value (the only buyer's) fills in.
    assert f["seconds_view_to_purchase"] == pytest.approx([math.log1p(120)] * 2)
    assert f["views_before_cart"] == pytest.approx([1.0, 1.0])
    # One gap of two days between customer 1's visits; customer 0 gets the population's.
    assert f["visits_per_week"] == pytest.approx([3.5, 3.5])


def test_price_position_within_category():
    _, f = table()
    cheap, middle, dear = 1 / 6, 1 / 2, 5 / 6  # mid-rank percentiles of 10, 20, 30
    assert f["carted_price_position"] == pytest.approx([cheap, middle])
    assert f["viewed_price_position"] == pytest.approx([(cheap + middle) / 2,
                                                        (middle + middle + dear) / 3])
    assert f["bought_price_position"] == pytest.approx([cheap, cheap])


def test_price_features_are_omitted_without_prices():
    out, _ = table(prices=None)
    assert not [n for n in out.names if "price" in n]
    assert set(out.names) < set(FEATURE_NAMES) and out.values.shape == (2, len(out.names))
    assert price_positions(np.array([np.nan, np.nan]), None) is None


def test_price_positions_rank_within_each_category_and_skip_unknown_prices():
    prices = np.array([5.0, 50.0, np.nan, 1.0, 100.0])
    categories = np.array(["a", "a", "a", "b", "b"])
    positions = price_positions(prices, categories)
    assert positions is not None
    assert positions[[0, 1, 3, 4]] == pytest.approx([0.25, 0.75, 0.25, 0.75])
    assert np.isnan(positions[2])
    ties = price_positions(np.array([1.0, 2.0, 2.0, 3.0, 7.0]), np.array(["a"] * 4 + ["b"]))
    assert ties == pytest.approx([0.125, 0.5, 0.5, 0.875, 0.5])  # tied prices share a rank


def test_price_positions_without_categories_are_shop_wide_and_need_a_spread(caplog):
    # a log with prices but no categories (REES46 cosmetics without item.csv): percentiles
    # among every product, said once, rather than no price features at all
    shop = price_positions(np.array([3.0, 4.0, 5.0, 4.0]), None)
    assert shop is not None and shop.tolist() == pytest.approx([0.125, 0.5, 0.875, 0.5])
    assert "shop-wide" in caplog.text
    assert price_positions(np.array([3.0, 4.0]), np.array(["", ""])) is not None
    assert price_positions(np.full(4, 10.0), np.array(["a", "a", "b", "b"])) is None
    assert "single price" in caplog.text
    unknown = price_positions(np.array([1.0, 2.0, 3.0]), np.array(["a", "", "a"]))
    assert unknown is not None and np.isnan(unknown[1])


def test_given_population_is_what_new_rows_are_smoothed_towards():
    fitted, _ = table()
    again = behaviour_features(hand_log().select(np.array([1])), ACTIONS,
                               price_positions(PRICES, np.array(["a", "a", "a"])), GAP,
                               fitted.population)
    assert again.values[0] == pytest.approx(fitted.values[1])


def test_scaler_splits_population_ranks_at_the_median():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(501, 2))
    scaler = BehaviourScaler().fit(values)
    out = scaler.transform(values)
    assert out.shape == (501, 4) and (out >= 0).all() and (out <= 1).all()
    assert not ((out[:, 0] > 0) & (out[:, 1] > 0)).any()  # high or low, never both
    order = np.argsort(values[:, 0])
    high = out[order, 0]
    assert (np.diff(high) >= 0).all() and high[-1] == pytest.approx(1.0, abs=0.01)
    assert out[order[0], 1] == pytest.approx(1.0, abs=0.01)
