"""Names and evidence lines say only what the typical customers' figures back."""

from __future__ import annotations

from funnelprint.profile.audit import WORDS, classify, name_parts
from funnelprint.profile.behaviour import FEATURES
from funnelprint.profile.evidence import FIGURES, Interval, verdict
from funnelprint.profile.naming import (
    BEHAVIOUR_NAMES,
    WORD_CLAIMS,
    behaviour_word,
    clash,
    evidence_lines,
    label,
    make_unique,
    name_key,
    order_lines,
    qualifies,
    taste_candidates,
    taste_word,
)

ALL = tuple(f.name for f in FEATURES)


def figures(**shifted: float) -> tuple[dict[str, Interval], dict[str, float]]:
    """Every figure at 0.5 for everyone; the typical customers' at 0.5 +- 0.05, except the
    ``shifted`` ones (a tight interval around the value given)."""
    group = {f: Interval(0.5, 0.45, 0.55, 50) for f in FIGURES}
    for name, value in shifted.items():
        group[name] = Interval(value, max(value - 0.05, 0.0), value + 0.05, 50)
    return group, dict.fromkeys(FIGURES, 0.5)


def test_an_interval_says_supported_contradicted_or_open():
    assert verdict(Interval(2.0, 1.5, 2.5, 9), 1.0, 1) == "supported"
    assert verdict(Interval(2.0, 1.5, 2.5, 9), 1.0, -1) == "contradicted"
    assert verdict(Interval(1.1, 0.9, 1.3, 9), 1.0, 1) == "open"
    assert verdict(Interval(float("nan"), float("nan"), float("nan"), 0), 1.0, 1) == "open"


def test_thin_evidence_backs_no_word():
    # one customer with one cart and no purchase: a bootstrap over them says [0, 0]
    alone = Interval(0.0, 0.0, 0.0, 1, counts_low=0.0, counts_high=0.85)
    assert verdict(alone, 0.05, -1) == "supported" and not alone.backs(0.05, -1)
    few = Interval(0.0, 0.0, 0.0, 6, counts_low=0.0, counts_high=0.2)
    assert not few.backs(0.05, -1) and few.backs(0.3, -1)


def test_evidence_lines_are_the_backed_figures_only_once_each():
    group, everyone = figures(view_to_cart=0.2, cart_to_purchase=0.3, views_per_visit=0.52)
    lines = evidence_lines(group, everyone, ALL)
    assert [line["reads"] for line in lines] == ["rarely carts", "leaves carts unbought"]
    assert all(line["high"] < line["population"] for line in lines)
    # a feature the log cannot show is not read, even where its figure moved
    assert evidence_lines(group, everyone, ("cart_to_purchase",))[0]["feature"] \
        == "cart_to_purchase"
    assert evidence_lines(group, everyone, ("views_per_session",)) == []


def test_a_named_behaviour_needs_two_backed_figures_and_none_against():
    group, everyone = figures(views_per_visit=3.0, minutes_per_visit=3.0, view_to_cart=0.2)
    assert qualifies("window shopper", group, everyone, ALL)
    against, _ = figures(views_per_visit=3.0, minutes_per_visit=3.0, view_to_purchase=1.5)
    assert not qualifies("window shopper", against, everyone, ALL)
    alone, _ = figures(views_per_visit=3.0)
    assert not qualifies("window shopper", alone, everyone, ALL)
    # what the log cannot show cannot be named: a rhythm of visits over a few hours
    rhythm, _ = figures(visit_regularity=2.0, visits_per_week=2.0, repeat_views=2.0)
    assert qualifies("regular", rhythm, everyone, ALL)
    short_log = tuple(f for f in ALL if f != "visit_regularity")
    assert not qualifies("regular", rhythm, everyone, short_log)
    # nor what the log has no events for: rarely carting in a log without carts
    no_carts = everyone | {"view_to_cart": 0.0}
    browsing, _ = figures(views_per_visit=3.0, minutes_per_visit=3.0, view_to_cart=0.0)
    assert not qualifies("window shopper", browsing, no_carts, ALL)
    lines = evidence_lines(rhythm, everyone, short_log)
    assert behaviour_word(lines, rhythm, everyone, short_log) in {"frequent visitor",
                                                                   "returns to favourites"}


def test_a_name_needs_a_difference_large_enough_to_name_a_trait_by():
    # backed by the intervals, yet the typical customers sit near everyone's median
    group, everyone = figures(views_per_visit=3.0, minutes_per_visit=3.0, view_to_cart=0.2)
    small = dict.fromkeys(FIGURES, 0.0) | {"views_per_visit": 0.06, "minutes_per_visit": 0.05}
    large = small | {"views_per_visit": 0.3, "minutes_per_visit": 0.2}
    assert not qualifies("window shopper", group, everyone, ALL, small)
    assert qualifies("window shopper", group, everyone, ALL, large)
    lines = evidence_lines(group, everyone, ALL, small)
    assert lines and behaviour_word(lines, group, everyone, ALL, small) is None
    assert behaviour_word(evidence_lines(group, everyone, ALL, large), group, everyone, ALL,
                          large) == "window shopper"


def test_names_label_ids_with_their_field():
    assert label("category", "electronics.audio") == "electronics.audio"
    assert label("category", "2053013553559896355") == "category 2053013553559896355"
    assert label("brand", "489") == "brand 489" and label("brand", "runail") == "brand runail"
    assert label("product", "p1") == "product p1"
    known = {"category": {"8"}, "brand": {"489"}, "product": set()}
    assert classify("category 8", known) == ("category", "8")
    assert classify("489", known) == ("bare", "489")
    assert name_parts("category 8 · brand 489 (2)") == ["category 8", "brand 489"]


def test_every_word_the_names_use_is_one_the_check_knows():
    words = {w for f in FEATURES for w in (f.high, f.low)} | set(BEHAVIOUR_NAMES)
    assert words <= set(WORDS)
    for claims in WORDS.values():
        assert all(figure in FIGURES for figure, _ in claims)


def test_traits_of_one_name_are_told_apart_by_what_differs():
    def backed(field: str, value: str) -> bool:
        return value != "unbacked"

    taste = [{"name": "b", "kind": "taste", "top_brands": ["acme", "unbacked", "zeta"],
              "top_products": ["p1"]},
             {"name": "b", "kind": "taste", "top_brands": ["acme", "yolo"],
              "top_products": ["p2"]},
             {"name": "a", "kind": "taste", "top_brands": [], "top_products": ["p3"]}]
    make_unique(taste, [backed] * 3)
    assert [t["name"] for t in taste] == ["b · brand zeta", "b · brand yolo", "a"]
    how = [{"name": "cart abandoner", "kind": "behaviour",
            "evidence": [{"reads": "abandons carts"}, {"reads": "removes from the cart"},
                         {"reads": "slow to buy"}]},
           {"name": "cart abandoner", "kind": "behaviour",
            "evidence": [{"reads": "abandons carts"}, {"reads": "many views per visit"}]}]
    make_unique(how, [backed] * 2)
    # "removes from the cart" is part of what "cart abandoner" says: never beside it
    assert [t["name"] for t in how] == ["cart abandoner · slow to buy",
                                        "cart abandoner · many views per visit"]
    same = [{"name": "x", "kind": "taste", "top_brands": [], "top_products": []}
            for _ in range(2)]
    make_unique(same, [backed] * 2)
    assert [t["name"] for t in same] == ["x (1)", "x (2)"]


def test_either_interval_refutes_a_word():
    # six customers: the bootstrap interval of view->cart is wide, the counts' lies wholly
    # above everyone's 0.09 (REES46 cosmetics, February: "window shopper" at 0.381)
    wide = Interval(0.381, 0.0625, 0.579, 6, counts_low=0.199, counts_high=0.593)
    assert verdict(wide, 0.0906, -1) == "contradicted" and wide.contradicts(0.0906, -1)
    assert not wide.contradicts(0.0906, 1)
    group, everyone = figures(views_per_visit=3.0, minutes_per_visit=3.0)
    group["view_to_cart"] = wide
    everyone["view_to_cart"] = 0.0906
    assert not qualifies("window shopper", group, everyone, ALL)


def test_a_named_behaviour_needs_the_figure_that_sets_it_apart():
    # REES46 head: no carts and no purchases where hardly anyone carts, views and minutes
    # per visit like everyone's: not a window shopper
    group, everyone = figures(view_to_cart=0.0, view_to_purchase=0.0)
    everyone |= {"view_to_cart": 0.01, "view_to_purchase": 0.017}
    group |= {"view_to_cart": Interval(0.0, 0.0, 0.0, 116, 0.0, 0.002),
              "view_to_purchase": Interval(0.0, 0.0, 0.0, 116, 0.0, 0.002)}
    assert not qualifies("window shopper", group, everyone, ALL)
    # backed, but views per visit 17% above everyone's: too small a margin to name by
    group["views_per_visit"] = Interval(0.585, 0.56, 0.61, 116)
    assert not qualifies("window shopper", group, everyone, ALL)
    group["views_per_visit"] = Interval(1.5, 1.4, 1.6, 116)
    assert qualifies("window shopper", group, everyone, ALL)


def test_visit_rhythm_is_not_claimed_from_a_few_second_visits():
    # MovieLens: 8 of 94 typical customers have a second visit, hours apart
    group, everyone = figures()
    group["visits_per_week"] = Interval(64.7, 28.6, 99.2, 8)
    everyone["visits_per_week"] = 13.7
    words = [line["reads"] for line in evidence_lines(group, everyone, ALL, group=94)]
    assert "frequent visitor" not in words
    most = dict(group, visits_per_week=Interval(64.7, 28.6, 99.2, 60))
    assert "frequent visitor" in [line["reads"] for line in evidence_lines(
        most, everyone, ALL, group=94)]


def test_no_name_joins_opposite_overlapping_or_repeated_words():
    pairs = [("visits often", "infrequent visitor"), ("visits often", "frequent visitor"),
             ("visits rarely", "visits on a rhythm"), ("lingers", "quick visits"),
             ("many views per visit", "few views per visit"),
             ("few views per visit", "quick visits"), ("many views per visit", "lingers"),
             ("window shopper", "lingers"), ("window shopper", "rarely carts"),
             ("window shopper", "impulse buyer"), ("cart abandoner", "removes from the cart"),
             ("abandons carts", "leaves carts unbought"), ("price-seeking", "premium-seeking"),
             ("price-seeking", "looks at premium items"), ("regular", "visits rarely"),
             ("deliberates", "quick to cart"), ("lingers", "lingers")]
    for first, second in pairs:
        assert clash(first, second) and clash(second, first), (first, second)
    for first, second in [("few views per visit", "lingers"), ("converts", "slow to cart"),
                          ("window shopper", "looks at cheap items"),
                          ("brand runail", "lingers")]:
        assert not clash(first, second), (first, second)
    # a trait whose only distinct word clashes with its name gets no such word
    traits = [{"name": "visits often", "kind": "behaviour",
               "evidence": [{"reads": "infrequent visitor"}]},
              {"name": "visits often", "kind": "behaviour",
               "evidence": [{"reads": "irregular visits"}, {"reads": "lingers"}]}]
    make_unique(traits, [lambda f, v: False] * 2)
    assert [t["name"] for t in traits] == ["visits often (1)", "visits often · lingers"]


def test_views_per_visit_words_say_what_they_measure():
    words = {w for f in FEATURES for w in (f.high, f.low)}
    assert "short visits" not in words and "browses long" not in words
    assert WORD_CLAIMS["few views per visit"] == (("views_per_visit", -1),)
    # synonyms name two traits alike: told apart
    assert name_key("visits often") == name_key("frequent visitor")
    assert name_key("few views per visit") != name_key("quick visits")
    traits = [{"name": "visits often", "kind": "behaviour", "evidence": [
        {"reads": "lingers"}]}, {"name": "frequent visitor", "kind": "behaviour",
                                 "evidence": [{"reads": "converts"}]}]
    make_unique(traits, [lambda f, v: False] * 2)
    assert [t["name"] for t in traits] == ["visits often · lingers",
                                           "frequent visitor · converts"]


def test_lines_that_back_the_name_come_first():
    lines = [{"reads": w, "feature": "x"} for w in (
        "lingers", "many views per visit", "converts", "carts readily", "rarely buys",
        "slow to buy", "looks at cheap items", "buys cheap items")]
    ordered = order_lines(lines, "price-seeking", top_n=4)
    assert [line["reads"] for line in ordered] == [
        "looks at cheap items", "buys cheap items", "lingers", "many views per visit"]
    assert len(order_lines(lines, "brand x · lingers", top_n=1)) == 1


def test_readable_brands_come_before_category_ids():
    trait = {"top_categories": ["1487580006317032448"], "top_brands": ["123"],
             "top_products": ["5809910"]}
    assert taste_candidates(trait, ["irisk"])[0] == ("brand", "irisk")
    backed = {("category", "1487580006317032448"), ("brand", "irisk")}
    assert taste_word(trait, lambda f, v: (f, v) in backed, ["irisk"]) == "brand irisk"
    assert taste_word(trait, lambda f, v: (f, v) in backed) == "category 1487580006317032448"
    assert taste_word(trait, lambda f, v: (f, v) in backed, readable_only=True) is None
