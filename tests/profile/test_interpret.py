from __future__ import annotations

import numpy as np

from funnelprint.profile.interpret import TokenTable, describe_traits


def table(brand: bool, price: bool) -> TokenTable:
    names = ["view_a", "buy_a", "view_b", "cart_b", "view_cat:toys"]
    return TokenTable(
        names=names,
        prefix=np.array(["view", "buy", "view", "cart", "view"], dtype=object),
        product=np.array(["a", "a", "b", "b", ""], dtype=object),
        category=np.array(["pets", "pets", "audio", "audio", "toys"], dtype=object),
        brand=np.array(["acme", "acme", "", "", ""] if brand else [""] * 5, dtype=object),
        price=np.array([5.0, 5.0, 300.0, 300.0, np.nan]) if price else np.full(5, np.nan))


def test_traits_are_described_with_or_without_brands_and_prices():
    loadings = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.5, 0.5]])
    counts = np.array([10.0, 3.0, 8.0, 4.0, 2.0])
    for brand, price in ((True, True), (False, True), (True, False), (False, False)):
        info = describe_traits(loadings, counts, table(brand, price), top_n=3)
        assert [t["top_categories"][0] for t in info] == ["pets", "audio"]
        assert info[0]["top_products"][0] == "a" and info[1]["top_products"][0] == "b"
        assert info[0]["top_brands"] == (["acme"] if brand else [])
        assert info[0]["top_tokens"][:2] == ["view_a", "buy_a"]
