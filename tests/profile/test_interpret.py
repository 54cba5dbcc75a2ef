from __future__ import annotations

import numpy as np

from funnelprint.profile.interpret import TokenTable, describe_traits, price_bands


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
        assert set(info[0]["action_mix"]) == {"view", "cart", "remove", "buy"}
        assert info[0]["name"].startswith("pets · ") and info[1]["name"].startswith("audio · ")
        assert ("low price" in info[0]["name"]) == price


def test_price_bands_by_tertiles_and_blank_where_unknown():
    bands = price_bands(np.array([1.0, 2.0, 3.0, np.nan, 10.0, 20.0, 30.0]))
    assert bands.tolist() == ["low", "low", "low", "", "mid", "high", "high"]
    assert price_bands(np.full(3, np.nan)).tolist() == ["", "", ""]


def test_traits_of_one_name_are_told_apart_by_what_differs():
    from funnelprint.profile.interpret import _make_unique

    taste = [{"name": "b", "kind": "taste", "top_brands": ["acme", "zeta"],
              "top_products": ["p1"]},
             {"name": "b", "kind": "taste", "top_brands": ["acme", "yolo"],
              "top_products": ["p2"]},
             {"name": "a", "kind": "taste", "top_brands": [], "top_products": ["p3"]}]
    _make_unique([t["name"] for t in taste], taste)
    assert [t["name"] for t in taste] == ["b · zeta", "b · yolo", "a"]
    how = [{"name": "cart abandoner", "kind": "behaviour", "behaviour": "cart abandoner",
            "evidence": [{"reads": "abandons carts"}, {"reads": "removes from the cart"}]},
           {"name": "cart abandoner", "kind": "behaviour", "behaviour": "cart abandoner",
            "evidence": [{"reads": "abandons carts"}, {"reads": "browses long"}]}]
    _make_unique([t["name"] for t in how], how)
    assert [t["name"] for t in how] == ["cart abandoner · removes from the cart",
                                        "cart abandoner · browses long"]
    same = [{"name": "x", "kind": "taste", "top_brands": ["k"], "top_products": ["p"]}] * 2
    same = [dict(t) for t in same]
    _make_unique(["x", "x"], same)
    assert [t["name"] for t in same] == ["x (1)", "x (2)"]
