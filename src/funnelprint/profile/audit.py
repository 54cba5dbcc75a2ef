"""Does every word a trait says hold for the customers who carry it? A check of the trait
names and evidence lines against raw, unsmoothed funnel figures.

For each trait the *typical customers* are the tenth of the warm customers (cold start left
out) with the largest share of the trait. Each word of the trait's name and each evidence
line is a claim about a figure — ``rarely carts``: the share of viewed products carted is
below everyone's; ``electronics.audio``: that category takes a larger share of their
events than of everyone's. The typical customers' figure gets a 95% interval by resampling
customers (bootstrap), and a claim is

* ``supported`` when the interval lies wholly on the claimed side of everyone's value,
* ``contradicted`` when it, or for a rate of counts its Beta interval from the pooled
  counts (which a bootstrap over a handful of customers misses), lies wholly on the other
  side,
* ``open`` otherwise (the data cannot tell).

Names are also read as a reader would: two words of one habit in one name (opposites such
as ``visits often · infrequent visitor``, or overlaps such as ``window shopper ·
lingers``), two traits whose names read alike, behaviour words resting on too few typical
customers (or on a second visit most of them never made), and named behaviours whose
defining figure does not stand apart (``window shopper`` of customers who browse like
everyone and cart nothing where hardly anyone carts).

The figures are raw counts (:mod:`funnelprint.profile.evidence`), not the smoothed,
imputed features the model is fitted on (:mod:`funnelprint.profile.behaviour`); what each
word claims is written here from its meaning, apart from the code that composes names
(:mod:`funnelprint.profile.interpret`), so that a name composed wrongly is caught. Names
are also checked for bare numeric ids (a number that does not say which field it is) and
for duplicates.

>>> report = check_traits(model.profile_, model.dataset_)
>>> report.summary()          # counts: name words, contradicted, bare ids, duplicates
>>> report.table()            # one row per claim
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from funnelprint.data.dataset import Dataset
from funnelprint.profile.evidence import (
    FIGURES,
    RATES,
    RESAMPLES,
    Interval,
    customer_counts,
    event_frame,
    intervals,
    label_counts,
    typical_rows,
)

if TYPE_CHECKING:
    from funnelprint.profile.model import ProfileModel

#: What each behaviour word claims: (figure, +1 above everyone / -1 below) pairs, all of
#: which must hold. Written here from the words' meaning, not taken from the naming code.
WORDS: dict[str, tuple[tuple[str, int], ...]] = {
    "carts readily": (("view_to_cart", 1),),
    "rarely carts": (("view_to_cart", -1),),
    "buys what it carts": (("cart_to_purchase", 1),),
    "leaves carts unbought": (("cart_to_purchase", -1),),
    "converts": (("view_to_purchase", 1),),
    "rarely buys": (("view_to_purchase", -1),),
    "removes from the cart": (("removals_per_cart", 1),),
    "rarely removes from the cart": (("removals_per_cart", -1),),
    "abandons carts": (("cart_to_purchase", -1),),
    "completes carts": (("cart_to_purchase", 1),),
    "many views per visit": (("views_per_visit", 1),),
    "few views per visit": (("views_per_visit", -1),),
    "browses long": (("views_per_visit", 1),),  # the older words, in models saved before
    "short visits": (("views_per_visit", -1),),
    "lingers": (("minutes_per_visit", 1),),
    "quick visits": (("minutes_per_visit", -1),),
    "visits often": (("visits", 1),),
    "visits rarely": (("visits", -1),),
    "frequent visitor": (("visits_per_week", 1),),
    "infrequent visitor": (("visits_per_week", -1),),
    "visits on a rhythm": (("visit_regularity", 1),),
    "irregular visits": (("visit_regularity", -1),),
    "returns to favourites": (("repeat_views", 1),),
    "always something new": (("repeat_views", -1),),
    "rebuys favourites": (("repeat_purchases", 1),),
    "never rebuys": (("repeat_purchases", -1),),
    "deliberates": (("views_before_cart", 1),),
    "carts at first sight": (("views_before_cart", -1),),
    "slow to cart": (("seconds_to_cart", 1),),
    "quick to cart": (("seconds_to_cart", -1),),
    "slow to buy": (("seconds_to_purchase", 1),),
    "quick to buy": (("seconds_to_purchase", -1),),
    "looks at premium items": (("viewed_price", 1),),
    "looks at cheap items": (("viewed_price", -1),),
    "carts premium items": (("carted_price", 1),),
    "carts cheap items": (("carted_price", -1),),
    "buys premium items": (("bought_price", 1),),
    "buys cheap items": (("bought_price", -1),),
    # Named behaviours: every figure they stand for must not point the other way.
    "price-seeking": (("viewed_price", -1), ("carted_price", -1), ("bought_price", -1)),
    "premium-seeking": (("viewed_price", 1), ("carted_price", 1), ("bought_price", 1)),
    "impulse buyer": (("seconds_to_cart", -1), ("seconds_to_purchase", -1),
                      ("view_to_purchase", 1), ("views_per_visit", -1)),
    "window shopper": (("views_per_visit", 1), ("minutes_per_visit", 1),
                       ("view_to_cart", -1), ("view_to_purchase", -1)),
    "cart abandoner": (("cart_to_purchase", -1), ("removals_per_cart", 1)),
    "regular": (("visit_regularity", 1), ("visits_per_week", 1), ("repeat_views", 1),
                ("repeat_purchases", 1)),
    # Funnel words of traits named from their tokens alone (no behaviour features).
    "browser": (("view_to_cart", -1),),
    "cart-heavy": (("view_to_cart", 1),),
    "buyer": (("view_to_purchase", 1),),
    "low price": (("viewed_price", -1),),
    "high price": (("viewed_price", 1),),
}
#: Raw figures that measure one habit, from their meaning: two words on one of them in one
#: name are opposites or say the same twice ("visits often · infrequent visitor").
HABITS: tuple[frozenset[str], ...] = (
    frozenset({"visits", "visits_per_week", "visit_regularity"}),
    frozenset({"views_before_cart", "seconds_to_cart"}),
    frozenset({"viewed_price", "carted_price", "bought_price"}),
    frozenset({"views_per_visit"}), frozenset({"minutes_per_visit"}),
    frozenset({"view_to_cart"}), frozenset({"view_to_purchase"}),
    frozenset({"cart_to_purchase"}), frozenset({"removals_per_cart"}),
    frozenset({"repeat_views"}), frozenset({"repeat_purchases"}),
    frozenset({"seconds_to_purchase"}),
)
#: Figures whose words read alike on one side: both in one name say one thing twice
#: ("few views per visit · quick visits").
ALIKE: tuple[frozenset[str], ...] = (frozenset({"views_per_visit", "minutes_per_visit"}),)
#: What sets each named behaviour apart: at least one of these must be supported, by a
#: fifth of everyone's value (a window shopper browses more than everyone; carting nothing
#: where nobody carts is not enough).
DEFINING: dict[str, tuple[tuple[str, int], ...]] = {
    "price-seeking": (("viewed_price", -1), ("carted_price", -1), ("bought_price", -1)),
    "premium-seeking": (("viewed_price", 1), ("carted_price", 1), ("bought_price", 1)),
    "impulse buyer": (("seconds_to_purchase", -1),),
    "window shopper": (("views_per_visit", 1), ("minutes_per_visit", 1)),
    "cart abandoner": (("cart_to_purchase", -1),),
    "regular": (("visit_regularity", 1), ("visits_per_week", 1)),
}
#: Figures only customers with a second visit have: a word on one says something of a
#: trait's customers only where at least half of them have it.
SECOND_VISIT = frozenset({"visits_per_week", "visit_regularity"})
#: Fewest typical customers for a behaviour word in a name to count as more than noise.
FEW_CUSTOMERS = 20
#: Words that claim nothing checkable.
NEUTRAL_WORDS = frozenset({"mixed funnel", "mid price", "typical shopper", "mixed"})
#: Field labels a name may put before a value (``category 8``, ``brand 489``).
LABELS = ("category", "brand", "product")
_BARE_ID = re.compile(r"^[0-9][0-9._:-]*$")
_NUMBERED = re.compile(r"\s*\((\d+)\)$")


@dataclass
class Claim:
    """One checked claim: the trait, where it was read (``name`` or ``evidence``), the word,
    the figure it stands for and its direction, the typical customers' interval, everyone's
    value, and the verdict (``supported``, ``contradicted``, ``open``)."""

    trait: str
    source: str
    word: str
    figure: str
    sign: int
    typical: Interval
    population: float
    verdict: str


@dataclass
class TraitsCheck:
    """The claims of every trait, and what else was found in the names."""

    claims: list[Claim] = field(default_factory=list)
    bare_ids: list[tuple[str, str]] = field(default_factory=list)  # (trait, name part)
    duplicates: list[str] = field(default_factory=list)
    unchecked: list[tuple[str, str]] = field(default_factory=list)  # (trait, word)
    names: dict[str, str] = field(default_factory=dict)
    clashes: list[tuple[str, str, str]] = field(default_factory=list)  # (trait, word, word)
    alike: list[tuple[str, str]] = field(default_factory=list)  # names that read alike
    thin: list[tuple[str, str]] = field(default_factory=list)  # (trait, word)
    undistinguished: list[tuple[str, str]] = field(default_factory=list)  # (trait, word)

    def words(self, source: str) -> list[tuple[str, str, str]]:
        """(trait, word, verdict) of every word read in ``source``: a word of several
        figures is contradicted if any of them is, supported if all of them are."""
        verdicts: dict[tuple[str, str], list[str]] = {}
        for c in self.claims:
            if c.source == source:
                verdicts.setdefault((c.trait, c.word), []).append(c.verdict)
        out = []
        for (trait, word), found in verdicts.items():
            verdict = ("contradicted" if "contradicted" in found else
                       "supported" if all(v == "supported" for v in found) else "open")
            out.append((trait, word, verdict))
        return out

    def summary(self) -> dict[str, Any]:
        name_words, lines = self.words("name"), self.words("evidence")
        return {
            "traits": len(self.names),
            "name_words": len(name_words),
            "name_words_contradicted": sum(v == "contradicted" for *_, v in name_words),
            "name_words_supported": sum(v == "supported" for *_, v in name_words),
            "evidence_lines": len(lines),
            "evidence_contradicted": sum(v == "contradicted" for *_, v in lines),
            "evidence_supported": sum(v == "supported" for *_, v in lines),
            "bare_ids": len(self.bare_ids),
            "duplicate_names": len(self.duplicates),
            "unchecked_words": len(self.unchecked),
            "clashing_words": len(self.clashes),
            "alike_names": len(self.alike),
            "thin_name_words": len(self.thin),
            "undistinguished_words": len(self.undistinguished),
        }

    def table(self) -> pl.DataFrame:
        """One row per claim."""
        return pl.DataFrame(
            [{"trait": c.trait, "source": c.source, "word": c.word, "figure": c.figure,
              "direction": "above" if c.sign > 0 else "below", "typical": c.typical.value,
              "low": c.typical.low, "high": c.typical.high,
              "customers": c.typical.customers, "population": c.population,
              "verdict": c.verdict} for c in self.claims],
            schema={"trait": pl.String, "source": pl.String, "word": pl.String,
                    "figure": pl.String, "direction": pl.String, "typical": pl.Float64,
                    "low": pl.Float64, "high": pl.Float64, "customers": pl.Int64,
                    "population": pl.Float64, "verdict": pl.String})


# ------------------------------------------------------------------ names


def name_parts(name: str) -> list[str]:
    """The words of a trait name: parts between `` · ``, ``, `` and `` + ``, without a
    numbering suffix such as ``(2)``."""
    parts = re.split(r" · | \+ |, ", name)
    return [p for p in (_NUMBERED.sub("", part).strip() for part in parts) if p]


def classify(part: str, known: dict[str, set[str]]) -> tuple[str, str]:
    """What a name part is: (``behaviour``, word), (``neutral``, word), (``bare``, id),
    (``category`` / ``brand`` / ``product``, value) or (``unknown``, part). ``known``
    holds the data's category, brand and product values."""
    if part in WORDS:
        return "behaviour", part
    if part in NEUTRAL_WORDS:
        return "neutral", part
    label, _, rest = part.partition(" ")
    if label in LABELS and rest:
        return label, rest
    if _BARE_ID.match(part):
        return "bare", part
    for field_ in LABELS:
        if part in known[field_]:
            return field_, part
    return "unknown", part


def judge(typical: Interval, everyone: float, sign: int) -> str:
    """``contradicted`` when either interval of the typical customers' figure (the
    bootstrap one, or the one from counts where there is one) lies wholly on the other side
    of everyone's value than ``sign`` claims; else ``supported`` when the bootstrap interval
    lies wholly on the claimed side; else ``open``."""
    if not np.isfinite(everyone):
        return "open"
    for low, high in ((typical.low, typical.high), (typical.counts_low, typical.counts_high)):
        if np.isfinite(low) and np.isfinite(high) and (
                (sign > 0 and high < everyone) or (sign < 0 and low > everyone)):
            return "contradicted"
    if np.isfinite(typical.low) and np.isfinite(typical.high) and (
            (sign > 0 and typical.low > everyone) or (sign < 0 and typical.high < everyone)):
        return "supported"
    return "open"


def _habit(figure: str, groups: tuple[frozenset[str], ...]) -> frozenset[str]:
    return next((g for g in groups if figure in g), frozenset({figure}))


def clashing(first: str, second: str) -> bool:
    """Whether two words of one name are the same word, opposites or overlaps (a claim on
    one habit each, :data:`HABITS`), or read alike on one side (:data:`ALIKE`)."""
    if first == second:
        return True
    return any(_habit(fa, HABITS) == _habit(fb, HABITS)
               or (sa == sb and _habit(fa, ALIKE) == _habit(fb, ALIKE))
               for fa, sa in WORDS.get(first, ()) for fb, sb in WORDS.get(second, ()))


def reading(name: str) -> tuple[str, ...]:
    """What a name says to a reader: its parts, a behaviour word as the habits and sides it
    claims (synonyms, words on one habit and side, become one)."""
    out = []
    for part in name_parts(name):
        claims = WORDS.get(part)
        out.append(part if claims is None else "+".join(sorted(
            f"{min(_habit(f, HABITS))}{s:+d}" for f, s in claims)))
    return tuple(sorted(out))


# ------------------------------------------------------------------ the check


def check_traits(model: ProfileModel, dataset: Dataset, seed: int = 0,
                 resamples: int = RESAMPLES) -> TraitsCheck:
    """Check every trait's name and evidence lines (``model.trait_info_``) against the raw
    figures of its typical customers in ``dataset`` (the events the model was fitted on, or
    any events of its customers: rows are matched by customer id)."""
    events = event_frame(dataset, model.config.session_gap_minutes)
    n_rows = dataset.n_customers
    counts = customer_counts(events, n_rows)
    hits = counts.select([f"{f}.hits" for f in FIGURES]).to_numpy()
    trials = counts.select([f"{f}.trials" for f in FIGURES]).to_numpy()
    population = {f: float(hits[:, j].sum() / trials[:, j].sum()) if trials[:, j].sum() > 0
                  else float("nan") for j, f in enumerate(FIGURES)}
    shares, warm = _aligned(model, dataset)
    groups = typical_rows(shares, warm)
    known = {"category": set(events["category"].drop_nulls().unique().to_list()),
             "brand": set(events["brand"].drop_nulls().unique().to_list()),
             "product": set(dataset.item_ids.astype(str).tolist())}
    report = TraitsCheck()
    seen: dict[str, str] = {}
    rates = np.array([f in RATES for f in FIGURES])
    readings: dict[tuple[str, ...], str] = {}
    for j, info in enumerate(model.trait_info_):
        trait, name = str(info["trait"]), str(info["name"])
        report.names[trait] = name
        if name in seen:
            report.duplicates.append(name)
        elif reading(name) in readings:
            report.alike.append((readings[reading(name)], name))
        seen[name] = trait
        readings.setdefault(reading(name), name)
        parts = name_parts(name)
        report.clashes += [(trait, a, b) for i, a in enumerate(parts) for b in parts[i + 1:]
                           if clashing(a, b)]
        rows = groups[j]
        figures = dict(zip(FIGURES, intervals(hits, trials, rows, seed + j, resamples, rates),
                           strict=True))
        _judge_name(report, trait, parts, figures, population, rows.size)
        words = [("name", p) for p in name_parts(name)] + [
            ("evidence", str(e["reads"])) for e in info.get("evidence", [])]
        for source, part in words:
            kind, value = classify(part, known)
            if kind == "behaviour":
                for figure, sign in WORDS[value]:
                    report.claims.append(Claim(trait, source, value, figure, sign,
                                               figures[figure], population[figure],
                                               judge(figures[figure], population[figure],
                                                     sign)))
            elif kind in LABELS:
                label = label_counts(events, n_rows, kind, value)
                typical = intervals(label[:, :1], label[:, 1:], rows, seed + j, resamples,
                                    np.ones(1, dtype=bool))[0]
                whole = float(label[:, 0].sum() / max(label[:, 1].sum(), 1.0))
                report.claims.append(Claim(trait, source, part, f"share of events: {kind}",
                                           1, typical, whole, judge(typical, whole, 1)))
            elif kind == "bare":
                report.bare_ids.append((trait, part))
            elif kind == "unknown":
                report.unchecked.append((trait, part))
    return report


def _judge_name(report: TraitsCheck, trait: str, parts: list[str],
                figures: dict[str, Interval], population: dict[str, float],
                typical: int) -> None:
    """Behaviour words of a name that rest on too little (fewer than
    :data:`FEW_CUSTOMERS` typical customers, or a second-visit figure fewer than half of
    them have), and named behaviours none of whose defining figures stands apart."""
    for part in parts:
        claims = WORDS.get(part)
        if claims is None:
            continue
        if typical < FEW_CUSTOMERS or any(
                figures[f].customers < 0.5 * typical for f, _ in claims if f in SECOND_VISIT):
            report.thin.append((trait, part))
        defining = DEFINING.get(part)
        if defining and not any(
                judge(figures[f], population[f], sign) == "supported"
                and _apart(f, figures[f].value, population[f]) for f, sign in defining):
            report.undistinguished.append((trait, part))


def _apart(figure: str, value: float, everyone: float) -> bool:
    """Whether a figure stands a fifth apart from everyone's; a figure in log(1 + seconds)
    by half as long again in seconds."""
    if figure.startswith("seconds_"):
        return abs(value - everyone) >= np.log(1.5)
    return abs(value - everyone) >= 0.2 * abs(everyone)


def _aligned(model: ProfileModel, dataset: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """The model's trait shares and warm flags in the dataset's customer rows (customers
    the model does not know are neither typical nor warm)."""
    ids = dataset.customer_ids.astype(str)
    fitted = model.customer_ids_.astype(str)
    shares = np.zeros((ids.size, model.n_traits_))
    warm = np.zeros(ids.size, dtype=bool)
    if np.array_equal(ids, fitted):
        return model.customer_traits_, ~model.customer_cold_
    index = {c: i for i, c in enumerate(fitted)}
    rows = np.array([index.get(c, -1) for c in ids])
    have = rows >= 0
    shares[have] = model.customer_traits_[rows[have]]
    warm[have] = ~model.customer_cold_[rows[have]]
    return shares, warm


__all__ = ["ALIKE", "DEFINING", "FEW_CUSTOMERS", "HABITS", "LABELS", "NEUTRAL_WORDS",
           "SECOND_VISIT", "WORDS", "Claim", "TraitsCheck", "check_traits", "clashing",
           "classify", "judge", "name_parts", "reading"]
