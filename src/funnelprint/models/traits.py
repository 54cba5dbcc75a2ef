"""The trait recommender (``traits``): a :class:`~funnelprint.profile.model.ProfileModel`
behind the model contract, scoring items by trait affinity and embedding similarity to the
customer's recent items, with a reason for each recommendation.

>>> data = Dataset.from_events(log, collapse_repeats=False, products=products)
>>> model = TraitsRecommender(traits=6).fit(data)
>>> items, scores = model.recommend(customers, k=5); model.reasons(history, items[0])
>>> model.profile_events(new_log), model.profile_.similar("u0042", 5)
>>> persist.save(model, "model/"); persist.load("model/")
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import polars as pl
from typing_extensions import Self

from funnelprint.checks import at_least, fraction
from funnelprint.data.dataset import Dataset
from funnelprint.data.pipeline import EventLog
from funnelprint.data.schema import action_verb
from funnelprint.data.sequences import Sequences
from funnelprint.models import affinity
from funnelprint.models.baselines import popularity_share
from funnelprint.models.contract import (
    Evidence,
    Explainer,
    ModelConfig,
    ModelState,
    Reason,
    Recommender,
    Validator,
)
from funnelprint.models.registry import register
from funnelprint.profile.features import unit_rows
from funnelprint.profile.model import ProfileConfig, ProfileModel, one_thread

log = logging.getLogger(__name__)
#: Least cosine between an item and a recent one for the reason to name the recent one.
SIMILAR_ENOUGH = 0.3


@dataclass(frozen=True)
class TraitsConfig(ModelConfig, ProfileConfig):
    """The profile settings (see :class:`~funnelprint.profile.model.ProfileConfig`) and how
    items are scored: a learned weighted sum of the affinity features of
    :mod:`funnelprint.models.affinity` (popularity, trait fit, similarity to the last
    ``last_n`` items with the k-th most recent weighing ``decay``**k, category shares, price
    fit, items left in the cart). Seen items are excluded by the caller
    (``recommend(exclude_seen=...)``).
    """

    last_n: int = 5
    decay: float = 0.7

    def validate(self) -> None:
        ProfileConfig.validate(self)
        at_least(self, 1, "last_n")
        fraction(self, "decay")

    def profile_config(self) -> ProfileConfig:
        return ProfileConfig(**self.profile_params())


@register
class TraitsRecommender(Recommender[TraitsConfig], Explainer):
    """Items that fit the customer's traits and resemble what they touched last.

    ``profile_`` is the fitted :class:`~funnelprint.profile.model.ProfileModel` (profiles of
    new logs, similar customers, trait descriptions, segments).
    """

    key = "traits"
    config_class = TraitsConfig
    #: Sessions, item metadata (trait descriptions, rare-item tokens) and every event as
    #: its own step (a view, a cart and a purchase of one item are three tokens).
    reads: ClassVar[frozenset[str]] = frozenset({"sessions", "item_metadata", "every_event"})
    profile_: ProfileModel
    popularity_: np.ndarray

    @one_thread
    def fit(self, train: Dataset, valid: Validator | None = None) -> Self:
        """Fit the profile on every training sequence (item metadata comes with ``train``;
        see :meth:`~funnelprint.data.dataset.Dataset.with_products`)."""
        self.dataset_ = train
        self.profile_ = ProfileModel(self.config.profile_config()).fit(train)
        self.popularity_ = popularity_share(train)
        self._derive()
        self.weights_ = self._learn_weights(train)
        log.info("trait recommender weights: %s", ", ".join(
            f"{n} {w:.2f}" for n, w in zip(affinity.FEATURES, self.weights_, strict=True)))
        return self

    def _derive(self) -> None:
        self.item_traits_ = unit_rows(self.profile_.item_traits_)
        self.item_vectors_ = self.profile_.item_vectors_
        positions = getattr(self.profile_, "item_price_position_", None)
        self.items_ = affinity.ItemSide.build(
            self.dataset_.item_counts(), self.profile_.item_traits_, self.item_vectors_,
            self.dataset_.item_categories,
            np.full(self.dataset_.n_items, np.nan) if positions is None else positions)

    def _learn_weights(self, train: Dataset) -> np.ndarray:
        """Feature weights learned from the training sequences (see
        :func:`~funnelprint.models.affinity.fit_weights`)."""
        c = self.config
        return affinity.fit_weights(
            train.sequences, lambda history: self.profile_.profile(
                history, train.action_names).traits,
            self.items_, train.action_names, c.last_n, c.decay, c.seed)

    def score(self, history: Sequences, customers: np.ndarray | None = None) -> np.ndarray:
        """The learned weighted sum of every item's affinity features; each row's traits are
        solved from the history given (no stored profile is read)."""
        c = self.config
        mix = self.profile_.profile(history).traits
        score = affinity.weighted_scores(history, mix, self.items_, self.dataset_.action_names,
                                         c.last_n, c.decay, self.weights_)
        return score + np.float32(1e-6) * self.popularity_.astype(np.float32)

    # ------------------------------------------------------------------ reasons

    def reasons(self, history: Sequences, items: np.ndarray) -> list[Reason]:
        """Why each item suits the customer of ``history`` (one row): the trait that
        contributes most to its trait affinity, the other recent item (of the last
        ``last_n``) it resembles most where their cosine is at least 0.3, that the customer
        left it in the cart, and that its price sits where the customer's carts do (within
        0.15 of their mean price percentile in its category) when price counts in the
        learned weights."""
        self._check_fitted()
        if history.n_rows != 1:
            raise ValueError(f"reasons explain one customer's history, not {history.n_rows}")
        items = np.asarray(items, dtype=np.int64)
        if items.size and (items.min() < 0 or items.max() >= self.dataset_.n_items):
            raise ValueError("items outside the catalogue")
        profiled = self.profile_.profile(history)
        mix, cold = profiled.traits[0], bool(profiled.cold[0])
        recent = history.last(self.config.last_n)
        order = np.arange(recent.items.size)[::-1]  # most recent first
        recent_items, recent_actions = recent.items[order], recent.actions[order]
        names = [info["name"] for info in self.profile_.trait_info_]
        left = affinity.left_in_cart(history, self.dataset_.action_names,
                                     self.dataset_.n_items)[0]
        usual = self._usual_price_position(history)
        out: list[Reason] = []
        for item in items.tolist():
            fit = mix * self.item_traits_[item]
            j = int(np.argmax(fit))
            parts: list[str] = []
            evidence: list[Evidence] = []
            if fit[j] > 1e-6 and mix[j] >= 0.005:
                whose = "of the starting profile for new customers" if cold else "of profile"
                parts.append(f"fits trait '{names[j]}' ({mix[j]:.0%} {whose})")
                evidence.append({"step": f"trait '{names[j]}'", "weight": round(float(mix[j]), 4)})
            others = recent_items != item
            if others.any():
                sims = np.where(others, self.item_vectors_[recent_items]
                                @ self.item_vectors_[item], -np.inf)
                best = int(np.argmax(sims))
                if sims[best] >= SIMILAR_ENOUGH:
                    product = str(self.dataset_.item_ids[recent_items[best]])
                    action = self.dataset_.action_names[int(recent_actions[best])]
                    parts.append(f"similar to recent {product}")
                    evidence.append({"step": f"{action_verb(action)} {product}",
                                     "weight": round(float(sims[best]), 4)})
            if left[item]:
                parts.append("left in the cart")
                evidence.append({"step": "left in the cart", "weight": 1.0})
            position = float(self.items_.price_positions[item])
            if np.isfinite(usual) and np.isfinite(position) and abs(position - usual) <= 0.15:
                parts.append(f"priced like the customer's carts (percentile {position:.0%} "
                             f"of its category, theirs {usual:.0%})")
                evidence.append({"step": "price percentile in category",
                                 "weight": round(1.0 - abs(position - usual), 4)})
            if not parts:
                share = float(self.popularity_[item])
                parts.append("popular with customers")
                evidence.append({"step": "popularity", "weight": round(share, 4)})
            out.append({"text": "; ".join(parts), "evidence": evidence})
        return out

    def _usual_price_position(self, history: Sequences) -> float:
        """Mean price percentile of the carted and bought items of a one-row history, NaN
        when unknown or when price carries no positive learned weight."""
        price = self.weights_[[affinity.FEATURES.index("price"),
                               affinity.FEATURES.index("carted_price")]]
        if price.sum() <= 0:
            return float("nan")
        carted = np.isin(history.actions, [self.dataset_.action_names.index(a) for a in
                                           ("add_to_cart", "purchase")
                                           if a in self.dataset_.action_names])
        positions = self.items_.price_positions[history.items[carted]]
        positions = positions[np.isfinite(positions)]
        return float(positions.mean()) if positions.size else float("nan")

    # ------------------------------------------------------------------ profiles

    def profile_events(self, events: EventLog | pl.DataFrame) -> pl.DataFrame:
        """Profiles of the customers of a new event log under the fitted model (no
        retraining): ``customer_id, trait_0 .. trait_{K-1}, segment, cold_start,
        known_tokens``. Events of products the model never saw are skipped (and logged)."""
        self._check_fitted()
        table, aligned = self.profile_.transform_events(events)
        if aligned.unknown_events:
            log.warning("%d event(s) of %d product(s) the model never saw were skipped",
                        aligned.unknown_events, aligned.unknown_items)
        return table

    # ------------------------------------------------------------------ state

    def to_state(self) -> ModelState:
        self._check_fitted()
        profile = ModelState(self.profile_.state_arrays(), self.profile_.state_meta())
        return ModelState({"popularity": self.popularity_, "weights": self.weights_}
                          ).with_nested("profile", profile)

    @classmethod
    def from_state(cls, config: TraitsConfig, dataset: Dataset, state: ModelState) -> Self:
        model = cls(config)
        model.dataset_ = dataset
        nested = state.nested("profile")
        model.profile_ = ProfileModel.from_state(config.profile_config(), dataset.item_ids,
                                                 nested.array, nested.meta)
        model.popularity_ = state.array("popularity", (dataset.n_items,))
        model.weights_ = state.array("weights", (len(affinity.FEATURES),))
        model._derive()
        return model
