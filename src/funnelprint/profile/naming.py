"""The words of a trait: its evidence lines and its name, each one said only where the raw
figures of the trait's typical customers back it (:mod:`funnelprint.profile.evidence`).

* An evidence line reads a behaviour feature's word (``rarely carts``) when the typical
  customers' figure lies, with its 95% interval, wholly on that side of everyone's.
* A named behaviour (:data:`BEHAVIOUR_NAMES`: ``window shopper``, ``regular``, ...) enters a
  name when every figure it stands for can be observed in the log, none of them points the
  other way, and at least two of them (one where it stands for one) are backed.
* A taste word is a category, a brand or a product that takes a larger share of the typical
  customers' events than of everyone's, by more than the interval: a readable value as it
  is (``electronics.audio``), a numeric one labelled with its field (``category 8``,
  ``brand 489``, ``product 5809910``).
* Names are unique: traits that would share one get what sets each apart, itself backed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np

from funnelprint.profile.behaviour import FEATURE
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
#: Evidence lines kept per trait (the most distinct first).
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


def evidence_lines(figures: dict[str, Interval], population: dict[str, float],
                   available: tuple[str, ...], shifts: dict[str, float] | None = None,
                   top_n: int = EVIDENCE_LINES) -> list[dict[str, Any]]:
    """One line per figure of the ``available`` features that the typical customers back
    (see :meth:`~funnelprint.profile.evidence.Interval.backs`: its intervals lie wholly
    above or below everyone's value), most distinct first (distance from everyone's value in
    units of the interval's half-width, after the shift of their mean percentile, where
    ``shifts`` gives it); a figure that two features read is read once."""
    shifts = shifts or {}
    lines: list[dict[str, Any]] = []
    seen = set()
    for name in available:
        f = FEATURE[name]
        if f.figure in seen:
            continue
        seen.add(f.figure)
        typical, everyone = figures[f.figure], population[f.figure]
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
    return lines[:top_n]


def qualifies(name: str, figures: dict[str, Interval], population: dict[str, float],
              available: tuple[str, ...], shifts: dict[str, float] | None = None) -> bool:
    """Whether the named behaviour ``name`` may be said (see the module's docstring), and,
    with ``shifts``, whether its two largest shifts average :data:`NAME_MIN_EFFECT`."""
    signs = BEHAVIOUR_NAMES[name]
    if any(feature not in available for feature, _ in signs):
        return False  # part of what the name says cannot be seen in this log
    claims = dict(claim(feature, direction) for feature, direction in signs)
    if not all(observable(population[fig], fig, sign) for fig, sign in claims.items()):
        return False  # "rarely carts" in a log without carts says nothing
    # Against: the bootstrap interval alone lies on the other side (the narrower test, so
    # a name never stands where a plain bootstrap would refute part of it).
    against = any(verdict(figures[fig], population[fig], sign) == "contradicted"
                  for fig, sign in claims.items())
    backed = sum(figures[fig].backs(population[fig], sign) for fig, sign in claims.items())
    if against or backed < min(2, len(claims)):
        return False
    if shifts is None:
        return True
    shown = sorted((sign * shifts[fig] for fig, sign in claims.items()), reverse=True)
    return len(shown) < 2 or (shown[1] > 0 and (shown[0] + shown[1]) / 2 >= NAME_MIN_EFFECT)


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
                   shifts: dict[str, float] | None = None) -> str | None:
    """The named behaviour of the most distinct evidence line that may be said, else the
    word of the most distinct line that stands out by :data:`NAME_MIN_EFFECT`; None
    without. The most distinct line leads, so that a trait of regular visitors who also buy
    quickly is ``regular``, not a second ``impulse buyer``."""
    for line in lines:
        direction = 1 if line["reads"] == FEATURE[line["feature"]].high else -1
        for name, signs in BEHAVIOUR_NAMES.items():
            if (line["feature"], direction) in signs and qualifies(name, figures, population,
                                                                   available, shifts):
                return name
    strong = [line for line in lines
              if shifts is None or float(line["shift"]) >= NAME_MIN_EFFECT]
    return str(strong[0]["reads"]) if strong else None


def label(field_: str, value: str) -> str:
    """How a name shows a value of ``field_``: a readable category as it is, anything else
    with its field (``brand runail``, ``category 8``, ``product 5809910``)."""
    if field_ == "category" and _READABLE.search(value):
        return value
    return f"{field_} {value}"


def taste_candidates(trait: dict[str, Any]) -> list[tuple[str, str]]:
    """(field, value) a taste word may come from, in order: readable categories, readable
    brands, then the other categories, brands and products, each field's leading ones."""
    fields = (("category", trait.get("top_categories", [])),
              ("brand", trait.get("top_brands", [])),
              ("product", trait.get("top_products", [])))
    pairs = [(f, str(v)) for f, values in fields for v in values[:TASTE_CANDIDATES]]
    readable = [(f, v) for f, v in pairs if f != "product" and _READABLE.search(v)]
    return readable + [p for p in pairs if p not in readable]


TasteCheck = Callable[[str, str], bool]


def taste_checker(figures: CustomerFigures, rows: np.ndarray, seed: int) -> TasteCheck:
    """Whether a (field, value) takes a larger share of the events of customers ``rows``
    than of everyone's, by more than its interval."""
    def backed(field_: str, value: str) -> bool:
        found = figures.label_share(field_, value, rows, seed, above_only=True)
        return found is not None and found[0].backs(found[1], 1)
    return backed


def taste_word(trait: dict[str, Any], backed: TasteCheck) -> str | None:
    """The first taste candidate whose share the typical customers back, as a label."""
    for field_, value in taste_candidates(trait):
        if backed(field_, value):
            return label(field_, value)
    return None


def make_unique(traits: list[dict[str, Any]], checks: list[TasteCheck]) -> None:
    """Traits that share a name get what sets each apart: a behaviour trait an evidence
    word the others' evidence lacks, a taste trait its next backed taste word (a number
    only where nothing does)."""
    groups: dict[str, list[int]] = {}
    for j, trait in enumerate(traits):
        groups.setdefault(trait["name"], []).append(j)
    for name, members in groups.items():
        if len(members) < 2:
            continue
        taken = {part for j in members for part in traits[j]["name"].split(" · ")}
        for rank, j in enumerate(members, start=1):
            others = {str(line["reads"]) for i in members if i != j
                      for line in traits[i].get("evidence", [])}
            others |= {label(f, v) for i in members if i != j
                       for f, v in taste_candidates(traits[i])}
            mark = _distinct_mark(traits[j], taken, others, checks[j])
            if mark:
                taken.add(mark)
            traits[j]["name"] = f"{name} · {mark}" if mark else f"{name} ({rank})"


def _distinct_mark(trait: dict[str, Any], taken: set[str], others: set[str],
                   backed: TasteCheck) -> str:
    """The first word that tells ``trait`` from the others sharing its name (``others``:
    their evidence and taste words): an evidence word or a backed taste word of its own,
    else any evidence word not yet in a name (behaviour and mixed traits try evidence
    first, taste traits taste first)."""
    words = [str(line["reads"]) for line in trait.get("evidence", [])]
    own = [w for w in words if w not in others and w not in taken]
    tastes = (label(f, v) for f, v in taste_candidates(trait)
              if label(f, v) not in taken and label(f, v) not in others and backed(f, v))
    ordered: list[Any] = [own, tastes] if trait.get("kind") in ("behaviour", "mixed") \
        else [tastes, own]
    for candidates in [*ordered, (w for w in words if w not in taken)]:
        for word in candidates:
            return str(word)
    return ""


def _round(value: float) -> float | None:
    return round(float(value), 4) if np.isfinite(value) else None


__all__ = ["BEHAVIOUR_NAMES", "DISTINCT_EFFECT", "EVIDENCE_LINES", "NAME_MIN_EFFECT",
           "behaviour_word", "claim", "evidence_lines", "label", "make_unique", "observable",
           "qualifies",
           "taste_candidates", "taste_checker", "taste_word"]
