"""The trait recommender's affinity features and their learned weights."""

import numpy as np
import pytest

from funnelprint.data.sequences import Sequences
from funnelprint.models import affinity, weights
from funnelprint.models.affinity import FEATURES, ItemSide
from funnelprint.models.signals import ItemLinks

ACTIONS = ("view", "add_to_cart", "remove_from_cart", "purchase")
V, C, R, P = range(4)


def one_row(items, actions) -> Sequences:
    n = len(items)
    return Sequences.from_rows(np.zeros(n, dtype=np.int64), np.array(items), np.array(actions),
                               np.arange(n) * 1_000_000, 1)


def item_side(n_items: int = 6, links: ItemLinks | None = None) -> ItemSide:
    rng = np.random.default_rng(0)
    if links is None:
        links = ItemLinks.learn(one_row([0, 1, 0, 2], [V, V, V, V]), n_items)
    return ItemSide.build(np.arange(1, n_items + 1), rng.random((n_items, 3)),
                          rng.normal(size=(n_items, 4)),
                          np.array(["a", "a", "a", "b", "b", ""])[:n_items],
                          np.array([0.1, 0.5, 0.9, 0.2, 0.8, np.nan])[:n_items], links)


def test_left_in_cart_is_carted_and_neither_bought_nor_removed_after():
    # A carted; B carted then bought; C carted then removed; D removed then carted again.
    a, b, c, d = 0, 1, 2, 3
    history = one_row([a, b, b, c, c, d, d, d], [C, C, P, C, R, C, R, C])
    left = affinity.left_in_cart(history, ACTIONS, 6)[0]
    assert np.flatnonzero(left).tolist() == [a, d]
    assert not affinity.left_in_cart(one_row([a], [V]), ACTIONS, 6).any()


def test_price_fit_favours_items_priced_like_the_customers_carts():
    items = item_side()
    history = one_row([0, 3, 2], [C, C, V])  # carts the cheap end, views a dear item
    stack = affinity.features(history, np.ones((1, 3)), items, ACTIONS, 5, 0.7)
    carted = stack[FEATURES.index("carted_price"), 0]
    assert carted[0] > carted[1] > carted[2]  # 0.1 < 0.5 < 0.9 in category a
    assert carted[5] == 0.0  # unknown price: neutral
    viewed = stack[FEATURES.index("price"), 0]
    assert viewed[2] > carted[2]  # counting the view moves the mean up


def test_category_shares_and_seen():
    items = item_side()
    history = one_row([0, 1, 3, 5], [V, V, V, V])
    stack = affinity.features(history, np.ones((1, 3)), items, ACTIONS, 2, 0.7)
    share = stack[FEATURES.index("category"), 0]
    assert share[:3] == pytest.approx([0.5] * 3) and share[3:5] == pytest.approx([0.25] * 2)
    assert share[5] == 0.0
    recent = stack[FEATURES.index("recent_category"), 0]  # the last two: items 3 and 5
    assert recent[3] == pytest.approx(0.5) and recent[0] == 0.0
    assert stack[FEATURES.index("seen"), 0].tolist() == [1, 1, 0, 1, 0, 1]
    touches = stack[FEATURES.index("touches"), 0]  # the last step weighs 1, the one before 0.7
    assert touches[5] == pytest.approx(1.0) and touches[0] == pytest.approx(0.7 ** 3)


def test_link_features_follow_the_training_links():
    # 0 is followed by 1 twice and by 2 once; 3 and 4 share visits with 0 only in row 1.
    train = Sequences.from_rows(np.array([0, 0, 0, 0, 0, 1, 1]), np.array([0, 1, 0, 1, 0, 3, 4]),
                                np.zeros(7), np.arange(7) * 1_000_000, 2)
    items = item_side(links=ItemLinks.learn(train, 6))
    stack = affinity.features(one_row([0], [V]), np.ones((1, 3)), items, ACTIONS, 5, 0.7)
    transition = stack[FEATURES.index("transition"), 0]
    assert transition[1] > 0 and transition[2] == transition[3] == 0
    assert transition[1] == pytest.approx(np.log1p(1.0 / affinity.LINK_SCALE))  # 0 -> 1 always
    neighbour = stack[FEATURES.index("neighbour"), 0]
    assert neighbour[1] > 0 and neighbour[3] == 0  # 3 never shares a customer with 0


def test_last_new_step_skips_returns_to_earlier_items():
    seq = Sequences.from_rows(np.array([0, 0, 0, 0, 1, 1]), np.array([4, 2, 4, 2, 1, 1]),
                              np.zeros(6), np.arange(6), 2)
    assert weights.last_new_step(seq).tolist() == [1, 0]


def test_learned_weights_recover_a_planted_preference():
    rng = np.random.default_rng(1)
    rows, n, f = 3000, 30, 3
    stack = rng.normal(size=(rows, n, f)).astype(np.float32)
    planted = np.array([2.0, -1.0, 0.0])
    logits = stack @ planted
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    targets = (p.cumsum(axis=1) > rng.random((rows, 1))).argmax(axis=1)
    allowed = np.ones((rows, n), dtype=bool)
    free = np.array([True, True, True])
    learned = weights.learn_weights(stack, targets, allowed, free, np.zeros(f))
    assert learned == pytest.approx(planted, abs=0.15)
    pinned = weights.learn_weights(stack, targets, allowed, np.array([False, True, True]),
                                    np.array([5.0, 0.0, 0.0]))
    assert pinned[0] == 5.0 and pinned[1] < 0


def test_scores_in_blocks_equal_one_block(monkeypatch):
    items = item_side()
    seq = Sequences.from_rows(np.array([0, 0, 1, 2, 2, 2]), np.array([0, 1, 3, 2, 4, 0]),
                              np.array([V, C, V, C, P, V]), np.arange(6), 3)
    mix = np.random.default_rng(2).random((3, 3))
    learned = np.arange(len(FEATURES), dtype=np.float64)
    whole = affinity.weighted_scores(seq, mix, items, ACTIONS, 5, 0.7, learned)
    monkeypatch.setattr(affinity, "BLOCK_CELLS", 1)
    assert affinity.weighted_scores(seq, mix, items, ACTIONS, 5, 0.7, learned) == \
        pytest.approx(whole)


def test_sampled_candidates_hold_the_target_the_history_the_hardest_and_corrected_draws():
    n_items = 10_000
    history = Sequences.from_rows(np.array([0, 0, 0, 1]), np.array([7, 9, 7, 3]),
                                  np.zeros(4), np.arange(4), 2)
    targets = np.array([9, 5])
    block = np.random.default_rng(0).random((len(FEATURES), 2, n_items)).astype(np.float32)
    block[FEATURES.index("transition"), 0, 42] = 10.0  # the hardest candidate of row 0
    columns, allowed, correction = weights.candidates(block, targets, history,
                                                      np.random.default_rng(0))
    assert columns.shape == allowed.shape == correction.shape
    assert (columns[:, 0] == targets).all() and allowed[:, 0].all()
    fixed = 1 + weights.HISTORY_CANDIDATES + len(weights.HARD_FEATURES) * weights.HARD_PER_FEATURE
    row0 = columns[0, :fixed][allowed[0, :fixed]].tolist()
    assert 7 in row0 and 42 in row0 and row0.count(7) == 1 and row0.count(9) == 1
    assert 3 in columns[1, :fixed][allowed[1, :fixed]].tolist()
    drawn, fresh = columns[:, fixed:], allowed[:, fixed:]
    assert drawn.shape[1] == weights.SAMPLED_CANDIDATES
    assert not np.isin(drawn[0][fresh[0]], row0).any()  # draws stand for the other items
    others = n_items - allowed[0, :fixed].sum()
    assert correction[0, -1] == pytest.approx(np.log(others / fresh[0].sum()))
    assert (correction[:, :fixed] == 0).all()


def test_features_at_listed_items_agree_with_the_whole_stack():
    rng = np.random.default_rng(4)
    n, rows = 40, 6
    lengths = rng.integers(0, 9, rows)
    owner = np.repeat(np.arange(rows), lengths)
    seq = Sequences.from_rows(owner, rng.integers(0, n, owner.size),
                              rng.integers(0, 4, owner.size), np.arange(owner.size), rows)
    links = ItemLinks.learn(Sequences.from_rows(
        np.repeat(np.arange(30), 6), rng.integers(0, n, 180), np.zeros(180), np.arange(180), 30),
        n)
    categories = np.array(["a", "b", "", "c"] * 10)
    prices = np.where(rng.random(n) < 0.3, np.nan, rng.random(n))
    items = ItemSide.build(rng.integers(1, 50, n), rng.random((n, 3)), rng.normal(size=(n, 4)),
                           categories, prices, links)
    mix = rng.random((rows, 3))
    stack = affinity.features(seq, mix, items, ACTIONS, 5, 0.7)
    columns = rng.integers(0, n, (rows, 7))
    picked, mean = affinity.features_at(seq, mix, items, ACTIONS, 5, 0.7, columns)
    assert picked == pytest.approx(np.take_along_axis(stack, columns[None], axis=2), abs=1e-5)
    assert mean == pytest.approx(stack.astype(np.float64).mean(axis=2), abs=1e-5)


def test_catalogue_sums_are_computed_once_and_match_the_catalogue():
    rng = np.random.default_rng(3)
    n = 40
    positions = np.where(rng.random(n) < 0.3, np.nan, rng.random(n))
    categories = rng.choice(["a", "b", "", "c"], n)
    items = ItemSide.build(rng.integers(1, 50, n), rng.random((n, 3)), rng.normal(size=(n, 4)),
                           categories, positions,
                           ItemLinks.learn(one_row([0, 1, 0, 2], [V, V, V, V]), n))
    assert np.allclose(items.trait_mean, items.traits.mean(axis=0))
    assert np.allclose(items.vector_mean, items.vectors.mean(axis=0))
    known = np.sort(positions[np.isfinite(positions)])
    assert np.array_equal(items.known_positions, known)
    assert np.isclose(items.position_prefix[-1], known.sum())
    codes = items.categories
    assert items.category_sizes.tolist() == np.bincount(codes[codes >= 0],
                                                        minlength=items.n_categories).tolist()
