from __future__ import annotations

import numpy as np

from funnelprint.data.sequences import Sequences
from funnelprint.data.tokens import TokenConfig, encode_tokens


def test_tokens_are_action_item_pairs_or_action_category_for_rare_items():
    # items: 0 seen three times, 1 and 2 once each (2 without a category)
    seq = Sequences.from_rows(np.zeros(6, np.int64), np.array([0, 0, 0, 1, 2, 1]),
                              np.array([0, 1, 0, 0, 0, 3]), np.arange(6), 1)
    actions = ("view", "add_to_cart", "remove_from_cart", "purchase")
    ids = np.array(["p0", "p1", "p2"])
    categories = np.array(["pets", "toys", ""], dtype=object)
    plain = encode_tokens(seq, actions, ids, categories)
    names = np.asarray(plain.names)[plain.codes].tolist()
    assert names == ["view_p0", "cart_p0", "view_p0", "view_p1", "view_p2", "buy_p1"]
    assert not plain.rare.any()
    rare = encode_tokens(seq, actions, ids, categories, TokenConfig(rare_product_min_count=3))
    names = np.asarray(rare.names)[rare.codes].tolist()
    assert names == ["view_p0", "cart_p0", "view_p0", "view_cat:toys", "view_p2",
                     "buy_cat:toys"]
    assert rare.rare.tolist() == [False, True, False]
    category_token = rare.names.index("view_cat:toys")
    assert rare.items[category_token] == -1 and rare.categories[category_token] == "toys"
    assert rare.actions[rare.names.index("buy_cat:toys")] == 3
