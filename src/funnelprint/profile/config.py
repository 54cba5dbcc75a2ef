"""How a customer profile is learned: :class:`ProfileConfig`, frozen and checked the way
every configuration of the package is (:class:`~funnelprint.checks.Config`)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Literal

from funnelprint.checks import Config, at_least

BETA_LOSSES = ("kullback-leibler", "frobenius")
CONTEXTS = ("journey", "session")


@dataclass(frozen=True)
class ProfileConfig(Config):
    """How a profile is learned.

    Parameters
    ----------
    traits
        Number of traits (NMF components); None chooses it from ``trait_grid`` by
        bi-cross-validation (see ``profile.joint``).
    behaviour
        Factorise behaviour features (funnel conversion, browsing, speed, abandonment,
        cadence, price position: ``profile.behaviour``) beside the taste features, so that
        traits say how a customer shops as well as what; the weight between the two blocks
        is selected from the data.
    styles
        Visit styles (soft KMeans anchors of per-visit behaviour) in the behaviour block.
    max_traits
        Largest number of traits tried when ``traits`` is None: the candidates are 4, 6, 8,
        … up to it (see :meth:`trait_grid`), walked upwards to the criterion's elbow; the
        fitted traits that the same customers lean on are then merged.
    aggregation
        How a customer's token features are combined: ``session`` averages each session's
        mean so that every visit counts once (a long browsing session does not outweigh
        several short ones); ``mean`` averages events; ``tfidf`` weights counts by inverse
        customer frequency; ``recency`` by a half-life; ``attention`` learns event weights
        from action type, recency and token (see ``profile.attention``).
    nonneg
        How signed embeddings become non-negative NMF input (see ``profile.features``).
    anchors, temperature
        Settings of the ``anchors`` features.
    beta_loss
        NMF loss; KL suits the mixture-of-distributions input that ``anchors`` produces.
    context
        Item2Vec sentences: a customer's whole journey (sessions in order) or each session.
        Journeys let tokens of one customer's different sessions share context, which is
        what ties together the categories a persona spreads over.
    dimension, window, min_count, negative, epochs, sample
        Item2Vec settings (``sample``: gensim's down-sampling threshold of frequent tokens).
        ``min_count`` None adapts to the data: 5, lowered as far as 1 where tokens that rare
        would leave more than half of the customers with enough events unprofiled (see
        ``profile.fitting.choose_thresholds``; the fitted model's ``thresholds_`` says
        what was chosen).
    segments
        KMeans segments on traits in Hellinger coordinates (default: as many as traits).
    min_known_tokens
        Customers with fewer known tokens get a prior profile and ``cold_start=True``; None
        adapts to the data: 3, lowered to 2 or 1 where fewer customers would be left to fit
        traits on than the fit needs.
    half_life_days
        Half-life of the ``recency`` aggregation.
    session_gap_minutes
        Inactivity that ends a visit where events carry no session ids (their log's own
        sessionisation uses the same gap when the command line prepares it).
    n_init
        NMF starts where ``traits`` is given; the basis with the lowest training loss is
        kept. (A selected number of traits is fitted once, from the merged start.)
    rare_product_min_count
        Items with fewer training events become (action, category) tokens where their
        category is known; 0 keeps every item token.
    seed
    """

    traits: int | None = None
    behaviour: bool = True
    styles: int = 16
    max_traits: int = 16
    aggregation: Literal["session", "mean", "tfidf", "recency", "attention"] = "session"
    nonneg: Literal["anchors", "split", "shift"] = "anchors"
    anchors: int = 256
    temperature: float = 0.1
    beta_loss: Literal["kullback-leibler", "frobenius"] = "frobenius"
    context: Literal["journey", "session"] = "journey"
    dimension: int = 64
    window: int = 5
    min_count: int | None = None
    negative: int = 5
    epochs: int = 3
    sample: float = 1e-3
    segments: int | None = None
    min_known_tokens: int | None = None
    half_life_days: float = 14.0
    session_gap_minutes: float = 30.0
    n_init: int = 1
    rare_product_min_count: int = 0
    seed: int = 0

    def validate(self) -> None:
        """Raise ``ValueError`` for a setting out of range (types are checked before)."""
        at_least(self, 2, "traits", "max_traits")
        at_least(self, 1, "styles", "anchors", "dimension", "window", "min_count", "negative",
                 "epochs", "n_init", "segments")
        at_least(self, 0, "min_known_tokens", "rare_product_min_count")
        for name in ("temperature", "half_life_days", "session_gap_minutes"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, not {getattr(self, name)}")
        if not 0 <= self.sample < 1:
            raise ValueError(f"sample must be in [0, 1), not {self.sample}")

    def trait_grid(self) -> tuple[int, ...]:
        """Numbers of traits tried when ``traits`` is None."""
        return tuple(range(min(4, self.max_traits), self.max_traits + 1, 2))

    def profile_params(self) -> dict[str, Any]:
        """The profile settings (of a subclass that adds others, only these)."""
        return {f.name: getattr(self, f.name) for f in fields(ProfileConfig)}


__all__ = ["BETA_LOSSES", "CONTEXTS", "ProfileConfig"]
