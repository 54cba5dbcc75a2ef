"""Profiles under a fitted basis: every event's token, a customer's token and behaviour
features, their trait weights (the NMF basis fixed), and the prior of a cold-start
customer. What :meth:`ProfileModel.fit` ends with and what every later profile repeats, so
that refreshing a fitted customer from their events reproduces their fitted profile."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

import numpy as np
from sklearn.decomposition import non_negative_factorization

from funnelprint.data.schema import CANONICAL_ACTIONS
from funnelprint.data.sequences import Sequences
from funnelprint.profile.aggregate import TokenMatrix, token_matrix
from funnelprint.profile.behaviour import (
    BehaviourScaler,
    VisitStyles,
    behaviour_features,
    visit_features,
)
from funnelprint.profile.config import ProfileConfig

if TYPE_CHECKING:  # torch is imported only where attention aggregation is used
    from funnelprint.profile.attention import AttentionAggregator


def normalise(weights: np.ndarray) -> np.ndarray:
    total = weights.sum(axis=1, keepdims=True)
    return np.where(total > 0, weights / np.maximum(total, 1e-12), 0.0)


def hellinger(traits: np.ndarray) -> np.ndarray:
    """Square roots of trait shares: Euclidean distance between them is the Hellinger
    distance between trait mixes. KMeans on them separates customers by their leading trait
    better than on the shares (simulator, segment ARI against the dominant persona on the
    README's shops 0 / 1 / 3: 0.681 / 0.704 / 0.763 on the shares, 0.702 / 0.706 / 0.773
    here; powers 0.75 and 0.33 instead of the square root did worse)."""
    return np.sqrt(np.clip(traits, 0.0, None))


def assign_segments(traits: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Nearest segment centre (``centers`` in Hellinger coordinates)."""
    d = ((hellinger(traits)[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2)
    return d.argmin(axis=1) if d.size else np.zeros(traits.shape[0], dtype=np.int64)


def solver(beta_loss: str) -> Literal["cd", "mu"]:
    """Coordinate descent for the Frobenius loss (faster, deterministic); multiplicative
    updates for Kullback-Leibler, which coordinate descent does not support."""
    return "cd" if beta_loss == "frobenius" else "mu"


def solve(features: np.ndarray, components: np.ndarray, beta_loss: str,
          taste_only: bool = False) -> np.ndarray:
    """Trait weights of feature rows under the basis ``components`` (kept fixed); with
    ``taste_only`` the rows hold the taste block alone."""
    k = components.shape[0]
    if not features.any():  # nothing known (or no rows): no weight on any trait
        return np.zeros((features.shape[0], k))
    basis = components
    if taste_only:
        basis = np.ascontiguousarray(basis[:, : features.shape[1]])
    w, _, _ = non_negative_factorization(
        np.asarray(features, dtype=np.float64), H=basis,
        n_components=k, update_H=False, solver=solver(beta_loss), beta_loss=beta_loss,
        max_iter=500, tol=1e-6,
    )
    return np.asarray(w)


def joint(blocks: list[np.ndarray], block_scales: np.ndarray, behaviour_weight: float
          ) -> np.ndarray:
    """The factorised matrix: the scaled taste block beside the weighted, scaled
    behaviour blocks."""
    weights = np.r_[1.0, np.full(len(blocks) - 1, behaviour_weight)] / block_scales
    return np.hstack([b * w for b, w in zip(blocks, weights, strict=True) if b.shape[1]])


def event_tokens(table: np.ndarray, fitted_actions: tuple[str, ...], sequences: Sequences,
                 action_names: tuple[str, ...] | None = None) -> np.ndarray:
    """Vocabulary index of every event's token (``table[action, item]``), -1 where it has
    none. ``action_names`` name the sequences' action codes (default: ``fitted_actions``)."""
    if action_names is None or tuple(action_names) == fitted_actions:
        actions = sequences.actions.astype(np.int64)
    else:
        own = {name: i for i, name in enumerate(fitted_actions)}
        mapped = np.array([own.get(a, -1) for a in action_names], dtype=np.int64)
        actions = mapped[sequences.actions]
    items = sequences.items.astype(np.int64)
    ok = (actions >= 0) & (items >= 0) & (items < table.shape[1])
    tokens = np.full(items.size, -1, dtype=np.int64)
    tokens[ok] = table[actions[ok], items[ok]]
    return tokens


def attention_actions(action_names: tuple[str, ...]) -> np.ndarray:
    """The attention scorer's code of each of the model's actions."""
    other = len(CANONICAL_ACTIONS)
    return np.array([CANONICAL_ACTIONS.index(a) if a in CANONICAL_ACTIONS else other
                     for a in action_names], dtype=np.int64)


def aggregate(seq: Sequences, tokens: np.ndarray, n_tokens: int, config: ProfileConfig,
              idf: np.ndarray, attention: tuple[AttentionAggregator, np.ndarray,
                                                np.ndarray] | None = None) -> TokenMatrix:
    """Every row's weighted token counts under ``config.aggregation``; ``attention`` gives
    the fitted aggregator, the token vectors and the scorer's action codes."""
    logits: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None = None
    if config.aggregation == "attention" and attention is not None:
        aggregator, vectors, codes = attention

        def logits(cols: np.ndarray, actions: np.ndarray, from_end: np.ndarray
                   ) -> np.ndarray:
            return aggregator.event_logits(vectors, cols, codes[actions], from_end)
    return token_matrix(seq, tokens, n_tokens, config.aggregation, idf,
                        config.half_life_days, logits, config.session_gap_minutes)


def behaviour_blocks(seq: Sequences, action_names: tuple[str, ...],
                     price_position: np.ndarray, styles: VisitStyles,
                     scaler: BehaviourScaler, population: np.ndarray, gap_us: int,
                     names: tuple[str, ...]) -> list[np.ndarray]:
    """The two behaviour blocks (visit style shares; high / low rank columns of the
    features ``names``) of any sequences under the fitted styles, scaler and population
    values."""
    positions = price_position if np.isfinite(price_position).any() else None
    visits = visit_features(seq, action_names, positions, gap_us)
    table = behaviour_features(seq, action_names, positions, gap_us, population, names)
    return [styles.shares(visits, seq.n_rows), scaler.transform(table.values)]


def with_priors(known: np.ndarray, raw: np.ndarray, min_known_tokens: int,
                population_profile: np.ndarray, segment_centers: np.ndarray,
                behaviour_share: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Normalised traits, with a prior for customers with too few known tokens: the
    nearest segment's centre, or the population profile when none is known (behaviour
    alone, from events of unknown products, is too little to pick a segment).

    ``behaviour_share`` (per trait, how much of it speaks of behaviour, 0 to 1): a
    segment's prior keeps the segment's value only for what a trait says of taste and takes
    everyone's for what it says of behaviour. A few events show what a customer
    looked at, not how they shop: a one-visit customer must not inherit "visits often"
    from the segment their products point to."""
    traits = normalise(raw)
    cold = known < min_known_tokens
    empty = (known == 0) | (traits.sum(axis=1) == 0)
    centres = normalise(segment_centers**2)
    if behaviour_share is not None and behaviour_share.size == centres.shape[1]:
        share = np.clip(behaviour_share, 0.0, 1.0)
        centres = normalise((1.0 - share) * centres + share * population_profile)
    prior = np.where(empty[:, None], population_profile,
                     centres[assign_segments(traits, segment_centers)])
    return np.where(cold[:, None], normalise(prior), traits), cold


def segments_of(traits: np.ndarray, raw: np.ndarray, cold: np.ndarray, known: np.ndarray,
                segment_centers: np.ndarray) -> np.ndarray:
    """Each profile's segment: the nearest centre, except for a cold-start customer whose
    prior came from a segment (:func:`with_priors`): that segment, the one their ``guess``
    names."""
    segments = assign_segments(traits, segment_centers)
    partial = normalise(raw)
    guessed = cold & (known > 0) & (partial.sum(axis=1) > 0)
    if guessed.any() and segment_centers.size:
        segments[guessed] = assign_segments(partial[guessed], segment_centers)
    return segments


def guesses(known: np.ndarray, raw: np.ndarray, cold: np.ndarray, min_known_tokens: int,
            segment_centers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What each cold-start profile is (``segment S``: the nearest segment's centre to what
    the known events show, ``everyone``: the population's profile, nothing being known;
    None for a customer profiled from their events) and how far to trust it: the share of
    the known events needed (``min_known_tokens``) that the customer has, times the
    Bhattacharyya coefficient of their partial profile and the segment's (0 for
    ``everyone``; NaN for a customer profiled from their events)."""
    traits = normalise(raw)
    empty = (known == 0) | (traits.sum(axis=1) == 0)
    segment = assign_segments(traits, segment_centers)
    centres = normalise(segment_centers**2)
    overlap = (np.sqrt(np.clip(traits, 0, None) * centres[segment])).sum(axis=1) \
        if segment_centers.size else np.zeros(known.size)
    evidence = np.minimum(known / max(min_known_tokens, 1), 1.0)
    label = np.where(empty, "everyone", np.char.add("segment ", segment.astype(str)))
    confidence = np.where(empty, 0.0, np.round(evidence * overlap, 3))
    return np.where(cold, label, ""), np.where(cold, confidence, np.nan)


__all__ = ["aggregate", "assign_segments", "attention_actions", "behaviour_blocks",
           "event_tokens", "guesses", "hellinger", "joint", "normalise", "segments_of",
           "solve", "solver", "with_priors"]
