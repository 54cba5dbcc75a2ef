"""The words of a trait: its evidence lines and its name, each one said only where the raw
figures of the trait's typical customers back it (:mod:`funnelprint.profile.evidence`).

* An evidence line reads a behaviour feature's word (``rarely carts``) when the typical
  customers' figure lies, with its 95% interval, wholly on that side of everyone's.
* A named behaviour (:data:`BEHAVIOUR_NAMES`: ``window shopper``, ``regular``, ...) enters a
  name when every figure it stands for can be observed in the log, none of them points the
  other way by either interval, at least two of them (one where it stands for one) are
  backed, and one of them is a figure that sets it apart (:data:`BEHAVIOUR_CORE`: a window
  shopper browses longer than everyone; no carts in a log where hardly anyone carts is not
  enough).
* A behaviour word enters a name only from at least :data:`MIN_NAME_CUSTOMERS` typical
  customers, and a figure of visit rhythm only where most of them have a second visit.
* No name holds two words on one habit (:data:`HABITS`: ``visits often`` and ``infrequent
  visitor`` are opposites, ``window shopper`` and ``lingers`` overlap), two words that read
  alike (:data:`ALIKE`), or a word twice (:func:`clash`).
* A taste word is a category, a brand or a product that takes a larger share of the typical
  customers' events than of everyone's, by more than the interval: a readable value as it
  is (``electronics.audio``), a numeric one labelled with its field (``category 8``,
  ``brand 489``, ``product 5809910``).
* Names are unique, and two traits are not told apart by synonyms alone (``visits often``
  and ``frequent visitor``): traits that would share a name, or whose names read alike
  (:func:`name_key`), get what sets each apart, itself backed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np

from funnelprint.profile.behaviour import FEATURE, FEATURES
from funnelprint.profile.evidence import FIGURES, RATES, CustomerFigures, Interval, verdict

#: Named shopping behaviours: each is a set of (feature, direction) it shows (direction +1:
#: above the population, -1: below).
BEHAVIOUR_NAMES: dict[str, tuple[tuple[str, int], ...]] = {
    "price-seeking": (("carted_price_position", -1), ("viewed_price_position", -1),
                      ("bought_price_position", -1)),
    "premium-seeking": (("carted_price_position", 1), ("viewed_price_position", 1),
                        ("bought_price_position", 1)),
    "impulse buyer": (("seconds_view_to_cart", -1), ("seconds_view_to_purchase", -1),
                      ("view_to_purchase", 1), ("views_per_session", -1)),
    "window shopper": (("views_per_session", 1), ("session_minutes", 1), ("view_to_cart", -1),
                       ("view_to_purchase", -1)),
    "cart abandoner": (("carts_never_bought", 1), ("cart_to_remove", 1),
                       ("cart_to_purchase", -1)),
    "regular": (("visit_regularity", 1), ("visits_per_week", 1), ("repeat_views", 1),
                ("repeat_purchases", 1)),
}
#: Per named behaviour, the features that set it apart: one of them must be backed.
BEHAVIOUR_CORE: dict[str, tuple[str, ...]] = {
    "price-seeking": ("carted_price_position", "viewed_price_position",
                      "bought_price_position"),
    "premium-seeking": ("carted_price_position", "viewed_price_position",
                        "bought_price_position"),
    # A buyer: carting quickly alone is "carts at first sight", whoever buys nothing.
    "impulse buyer": ("seconds_view_to_purchase",),
    "window shopper": ("views_per_session", "session_minutes"),
    "cart abandoner": ("carts_never_bought", "cart_to_purchase"),
    "regular": ("visit_regularity", "visits_per_week"),
}
#: Least margin by which a figure a name stands on differs from everyone's: a fifth of
#: everyone's value (views per visit 4.0 against 3.4 is backed on many customers, but names
#: nobody), or for a figure in log seconds half as long again or a third shorter.
MIN_MARGIN, LOG_MARGIN = 0.2, float(np.log(1.5))
#: Figures in log(1 + seconds).
LOG_FIGURES = frozenset({"seconds_to_cart", "seconds_to_purchase"})
#: Fewest typical customers for a behaviour word to enter a name: a handful of customers
#: gives intervals too wide to name a trait by (a taste word or nothing is said instead).
MIN_NAME_CUSTOMERS = 20
#: Raw figures that measure one habit: words on one of them are synonyms or opposites
#: (``visits often`` / ``infrequent visitor``), never two of them in one name.
HABITS: tuple[frozenset[str], ...] = (
    frozenset({"visits", "visits_per_week", "visit_regularity"}),
    frozenset({"views_before_cart", "seconds_to_cart"}),
    frozenset({"viewed_price", "carted_price", "bought_price"}),
)
#: Raw figures whose words read alike on the same side (``few views per visit``, ``quick
#: visits``): not both in one name on one side (each says what it measures, so two traits
#: may be named by one each).
ALIKE: tuple[frozenset[str], ...] = (frozenset({"views_per_visit", "minutes_per_visit"}),)
#: Evidence lines kept per trait (the most distinct first, after the lines that back its
#: name).
EVIDENCE_LINES = 6
#: Least shift of the typical customers' mean percentile (see
#: :meth:`~funnelprint.profile.evidence.CustomerFigures.shifts`) for a word to enter a name:
#: the mean of a named behaviour's two largest, or a single word's own. 0.1 is the 60th
#: percentile: a difference the intervals back can still be too small to name a trait by.
NAME_MIN_EFFECT = 0.1
#: Least shift for a trait of mixed mass to carry a behaviour word that is not a named
#: behaviour (every customer has some behaviour mass: ``electronics.audio · visits rarely``
#: on the 55th percentile would mislead).
DISTINCT_EFFECT = 0.15
#: Candidates of each field a taste word is looked for among (the trait's leading ones).
TASTE_CANDIDATES = 5
_READABLE = re.compile(r"[^\W\d_]")  # a letter of any script


def claim(feature: str, direction: int) -> tuple[str, int]:
    """The raw figure and its direction that a feature's word claims."""
    f = FEATURE[feature]
    return f.figure, f.sign * direction


def _word_claims() -> dict[str, tuple[tuple[str, int], ...]]:
    words: dict[str, tuple[tuple[str, int], ...]] = {}
    for f in FEATURES:
        words[f.high] = (claim(f.name, 1),)
        words[f.low] = (claim(f.name, -1),)
    for name, signs in BEHAVIOUR_NAMES.items():
        words[name] = tuple(claim(feature, direction) for feature, direction in signs)
    return words


#: Every behaviour word and the (raw figure, direction) pairs it claims.
WORD_CLAIMS = _word_claims()


def _group(figure: str, groups: tuple[frozenset[str], ...]) -> str:
    return next((min(g) for g in groups if figure in g), figure)


def clash(first: str, second: str) -> bool:
    """Whether two words may not stand in one name: the same word, two words on one habit
    (:data:`HABITS`: opposites, synonyms or a named behaviour and a part of it), or two
    words that read alike on the same side (:data:`ALIKE`)."""
    if first == second:
        return True
    for fa, sa in WORD_CLAIMS.get(first, ()):
        for fb, sb in WORD_CLAIMS.get(second, ()):
            if _group(fa, HABITS) == _group(fb, HABITS):
                return True
            if sa == sb and _group(fa, ALIKE) == _group(fb, ALIKE):
                return True
    return False


def name_key(name: str) -> tuple[str, ...]:
    """What a name says, with synonyms made equal (words on one habit, one side: ``visits
    often``, ``frequent visitor``): two traits whose keys are equal read as one trait."""
    parts = []
    for part in name.split(" · "):
        claims = WORD_CLAIMS.get(part)
        parts.append(part if claims is None else "+".join(sorted(
            f"{_group(f, HABITS)}{'+' if s > 0 else '-'}" for f, s in claims)))
    return tuple(sorted(parts))


def evidence_lines(figures: dict[str, Interval], population: dict[str, float],
                   available: tuple[str, ...], shifts: dict[str, float] | None = None,
                   top_n: int | None = EVIDENCE_LINES, group: int = 0
                   ) -> list[dict[str, Any]]:
    """One line per figure of the ``available`` features that the typical customers back
    (see :meth:`~funnelprint.profile.evidence.Interval.backs`: its intervals lie wholly
    above or below everyone's value), most distinct first (distance from everyone's value in
    units of the interval's half-width, after the shift of their mean percentile, where
    ``shifts`` gives it); a figure that two features read is read once, and a figure of
    visit rhythm only where it covers the ``group`` of typical customers
    (:meth:`~funnelprint.profile.evidence.Interval.covers`)."""
    shifts = shifts or {}
    lines: list[dict[str, Any]] = []
    seen = set()
    for name in available:
        f = FEATURE[name]
        if f.figure in seen:
            continue
        seen.add(f.figure)
        typical, everyone = figures[f.figure], population[f.figure]
        if not typical.covers(f.figure, group):
            continue
        for direction, word in ((1, f.high), (-1, f.low)):
            if not typical.backs(everyone, f.sign * direction):
                continue
            low, high = typical.widest
            spread = max((high - low) / 2, 1e-12)
            lines.append({
                "feature": name, "figure": f.figure, "description": FIGURES[f.figure],
                "value": _round(typical.value), "low": _round(low),
                "high": _round(high), "population": _round(everyone),
                "lift": _round(typical.value / everyone) if everyone else None,
                "customers": typical.customers, "reads": word,
                "distance": round(abs(typical.value - everyone) / spread, 3),
                "shift": round(f.sign * direction * shifts.get(f.figure, 0.0), 4)})
    lines.sort(key=lambda line: (-abs(float(line["shift"])), -float(line["distance"])))
    return lines if top_n is None else lines[:top_n]


def qualifies(name: str, figures: dict[str, Interval], population: dict[str, float],
              available: tuple[str, ...], shifts: dict[str, float] | None = None,
              group: int = 0) -> bool:
    """Whether the named behaviour ``name`` may be said of a ``group`` of typical customers
    (see the module's docstring), and, with ``shifts``, whether its two largest shifts
    average :data:`NAME_MIN_EFFECT`."""
    signs = BEHAVIOUR_NAMES[name]
    if any(feature not in available for feature, _ in signs):
        return False  # part of what the name says cannot be seen in this log
    claims = dict(claim(feature, direction) for feature, direction in signs)
    if not all(observable(population[fig], fig, sign) for fig, sign in claims.items()):
        return False  # "rarely carts" in a log without carts says nothing
    # Against: either interval lies on the other side (a name never stands where the
    # bootstrap or the counts refute part of it).
    if any(verdict(figures[fig], population[fig], sign) == "contradicted"
           for fig, sign in claims.items()):
        return False

    def backed(fig: str, sign: int) -> bool:
        return figures[fig].covers(fig, group) and figures[fig].backs(population[fig], sign)

    def sets_apart(fig: str, sign: int) -> bool:
        return backed(fig, sign) and distinct(fig, figures[fig].value, population[fig])

    core = {claim(feature, direction) for feature, direction in signs
            if feature in BEHAVIOUR_CORE[name]}
    if not any(sets_apart(fig, sign) for fig, sign in core):
        return False  # what sets the behaviour apart does not show
    if sum(backed(fig, sign) for fig, sign in claims.items()) < min(2, len(claims)):
        return False
    if shifts is None:
        return True
    shown = sorted((sign * shifts[fig] for fig, sign in claims.items()), reverse=True)
    return len(shown) < 2 or (shown[1] > 0 and (shown[0] + shown[1]) / 2 >= NAME_MIN_EFFECT)


def distinct(figure: str, value: float, everyone: float) -> bool:
    """Whether ``value`` differs from everyone's by :data:`MIN_MARGIN` (or
    :data:`LOG_MARGIN` for a figure of :data:`LOG_FIGURES`)."""
    if not (np.isfinite(value) and np.isfinite(everyone)):
        return False
    if figure in LOG_FIGURES:
        return abs(value - everyone) >= LOG_MARGIN
    return abs(value - everyone) >= MIN_MARGIN * abs(everyone)


def observable(everyone: float, figure: str, sign: int) -> bool:
    """Whether customers could differ from everyone's value ``everyone`` of ``figure`` in
    the direction ``sign``: the log has the figure's events, and everyone's value is not at
    the figure's bound already (no figure goes below zero, no rate above one)."""
    if not np.isfinite(everyone):
        return False
    if sign < 0:
        return everyone > 0
    return not (figure in RATES and everyone >= 1)


def behaviour_word(lines: list[dict[str, Any]], figures: dict[str, Interval],
                   population: dict[str, float], available: tuple[str, ...],
                   shifts: dict[str, float] | None = None, group: int = 0) -> str | None:
    """The named behaviour of the most distinct evidence line that may be said, else the
    word of the most distinct line that stands out by :data:`NAME_MIN_EFFECT`; None
    without. The most distinct line leads, so that a trait of regular visitors who also buy
    quickly is ``regular``, not a second ``impulse buyer``."""
    for line in lines:
        direction = 1 if line["reads"] == FEATURE[line["feature"]].high else -1
        for name, signs in BEHAVIOUR_NAMES.items():
            if (line["feature"], direction) in signs and qualifies(
                    name, figures, population, available, shifts, group):
                return name
    strong = [line for line in lines
              if (shifts is None or float(line["shift"]) >= NAME_MIN_EFFECT)
              and distinct(line["figure"], float(line["value"]), float(line["population"]))]
    return str(strong[0]["reads"]) if strong else None


def backs_name(line: dict[str, Any], name: str) -> bool:
    """Whether evidence ``line`` backs a word of ``name``: its own word, or a figure of a
    named behaviour in the name, on the side the behaviour claims."""
    parts = name.split(" · ")
    word = str(line["reads"])
    if word in parts:
        return True
    claimed = WORD_CLAIMS.get(word, ())
    return any(c in WORD_CLAIMS[p] for p in parts if p in BEHAVIOUR_NAMES for c in claimed)


def order_lines(lines: list[dict[str, Any]], name: str, top_n: int = EVIDENCE_LINES
                ) -> list[dict[str, Any]]:
    """The lines that back a word of ``name`` first (every one of them), then the others,
    most distinct first, to ``top_n`` lines in all (more where more back the name)."""
    backing = [line for line in lines if backs_name(line, name)]
    others = [line for line in lines if not backs_name(line, name)]
    return [*backing, *others][:max(top_n, len(backing))]


def label(field_: str, value: str) -> str:
    """How a name shows a value of ``field_``: a readable category as it is, anything else
    with its field (``brand runail``, ``category 8``, ``product 5809910``)."""
    if field_ == "category" and readable(value):
        return value
    return f"{field_} {value}"


def readable(value: str) -> bool:
    """Whether a value reads as a word (has a letter), not as an id."""
    return bool(_READABLE.search(value))


def taste_candidates(trait: dict[str, Any], brands: list[str] | tuple[str, ...] = ()
                     ) -> list[tuple[str, str]]:
    """(field, value) a taste word may come from, in order: readable categories, readable
    brands (the trait's leading ones, then ``brands``: those its typical customers lean
    on), then the other categories, brands and products, each field's leading ones."""
    top = TASTE_CANDIDATES
    fields = (("category", trait.get("top_categories", [])[:top]),
              ("brand", [*trait.get("top_brands", [])[:top], *brands[:top]]),
              ("product", trait.get("top_products", [])[:top]))
    pairs = list(dict.fromkeys((f, str(v)) for f, values in fields for v in values))
    first = [(f, v) for f, v in pairs if f != "product" and readable(v)]
    return first + [p for p in pairs if p not in first]


TasteCheck = Callable[[str, str], bool]


def taste_checker(figures: CustomerFigures, rows: np.ndarray, seed: int) -> TasteCheck:
    """Whether a (field, value) takes a larger share of the events of customers ``rows``
    than of everyone's, by more than its interval."""
    def backed(field_: str, value: str) -> bool:
        found = figures.label_share(field_, value, rows, seed, above_only=True)
        return found is not None and found[0].backs(found[1], 1)
    return backed


def taste_word(trait: dict[str, Any], backed: TasteCheck,
               brands: list[str] | tuple[str, ...] = (), readable_only: bool = False
               ) -> str | None:
    """The first taste candidate (:func:`taste_candidates`) whose share the typical
    customers back, as a label: a category id only where no readable category or brand
    is backed (and never with ``readable_only``)."""
    for field_, value in taste_candidates(trait, brands):
        if readable_only and (field_ == "product" or not readable(value)):
            continue
        if backed(field_, value):
            return label(field_, value)
    return None


def leaning_word(trait: dict[str, Any], figures: CustomerFigures, rows: np.ndarray,
                 brands: list[str] | tuple[str, ...] = (), taken: set[str] | None = None,
                 readable_only: bool = False) -> str | None:
    """For typical customers too few to back a word: the first taste candidate, not among
    the names ``taken``, that takes a larger share of their events than of everyone's, by
    its value alone (by :data:`MIN_MARGIN` of it), and that neither interval puts below
    everyone's; None without."""
    for field_, value in taste_candidates(trait, brands):
        if label(field_, value) in (taken or set()) or (
                readable_only and (field_ == "product" or not readable(value))):
            continue
        found = figures.label_share(field_, value, rows, above_only=True)
        if found is not None and not found[0].contradicts(found[1], 1) and distinct(
                "share", found[0].value, found[1]):
            return label(field_, value)
    return None


def make_unique(traits: list[dict[str, Any]], checks: list[TasteCheck]) -> None:
    """Traits that share a name, or whose names read alike (:func:`name_key`), get what
    sets each apart: a behaviour trait an evidence word the others' evidence lacks, a taste
    trait its next backed taste word (a number only where nothing does); never a word that
    clashes with its name (:func:`clash`)."""
    groups: dict[tuple[str, ...], list[int]] = {}
    for j, trait in enumerate(traits):
        groups.setdefault(name_key(trait["name"]), []).append(j)
    for members in groups.values():
        if len(members) < 2:
            continue
        taken = {part for j in members for part in traits[j]["name"].split(" · ")}
        same = len({traits[j]["name"] for j in members}) == 1
        for rank, j in enumerate(members, start=1):
            name = traits[j]["name"]
            others = {str(line["reads"]) for i in members if i != j
                      for line in traits[i].get("evidence", [])}
            others |= {label(f, v) for i in members if i != j
                       for f, v in taste_candidates(traits[i])}
            mark = _distinct_mark(traits[j], taken, others, checks[j])
            if mark:
                taken.add(mark)
                traits[j]["name"] = f"{name} · {mark}"
            elif same:
                traits[j]["name"] = f"{name} ({rank})"


def _distinct_mark(trait: dict[str, Any], taken: set[str], others: set[str],
                   backed: TasteCheck) -> str:
    """The first word that tells ``trait`` from the others sharing its name (``others``:
    their evidence and taste words): an evidence word or a backed taste word of its own,
    else any evidence word not yet in a name (behaviour and mixed traits try evidence
    first, taste traits taste first); never one that clashes with its name."""
    parts = trait["name"].split(" · ")

    def free(word: str) -> bool:
        return word not in taken and not any(clash(word, part) for part in parts)

    few = trait.get("typical_customers", {}).get("customers", MIN_NAME_CUSTOMERS) \
        < MIN_NAME_CUSTOMERS  # too few typical customers to name a behaviour by
    words = [] if few else [str(line["reads"]) for line in trait.get("evidence", [])]
    own = [w for w in words if w not in others and free(w)]
    tastes = (label(f, v) for f, v in taste_candidates(trait)
              if free(label(f, v)) and label(f, v) not in others and backed(f, v))
    ordered: list[Any] = [own, tastes] if trait.get("kind") in ("behaviour", "mixed") \
        else [tastes, own]
    for candidates in [*ordered, (w for w in words if free(w))]:
        for word in candidates:
            return str(word)
    return ""


def _round(value: float) -> float | None:
    return round(float(value), 4) if np.isfinite(value) else None


__all__ = ["ALIKE", "BEHAVIOUR_CORE", "BEHAVIOUR_NAMES", "DISTINCT_EFFECT", "EVIDENCE_LINES",
           "HABITS", "MIN_NAME_CUSTOMERS", "NAME_MIN_EFFECT", "WORD_CLAIMS", "backs_name",
           "behaviour_word", "claim", "clash", "distinct", "evidence_lines", "label",
           "leaning_word", "make_unique", "name_key", "observable", "order_lines", "qualifies",
           "readable",
           "taste_candidates", "taste_checker", "taste_word"]
