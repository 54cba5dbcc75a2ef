"""The trait recommender (``traits``, the default model): a
:class:`~funnelprint.profile.model.ProfileModel` behind the model contract, scoring items by
a learned weighted sum of trait affinity, similarity and links to the customer's recent
items (transitions, shared visits, shared customers), category, price, popularity and what
the customer left in the cart, with a reason for each recommendation that names the true
main causes of its score.

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
from funnelprint.data.sequences import Sequences
from funnelprint.models import affinity, reasons
from funnelprint.models.baselines import popularity_share, sparse_arrays, sparse_from
from funnelprint.models.contract import (
    Explainer,
    ModelConfig,
    ModelState,
    Prepares,
    Reason,
    Recommender,
    Validator,
)
from funnelprint.models.registry import register
from funnelprint.models.signals import ItemLinks
from funnelprint.models.weights import fit_weights
from funnelprint.profile.features import unit_rows
from funnelprint.profile.model import ProfileConfig, ProfileModel, Profiles, one_thread

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TraitsConfig(ModelConfig, ProfileConfig):
    """The profile settings (see :class:`~funnelprint.profile.model.ProfileConfig`) and how
    items are scored: a learned weighted sum of the affinity features of
    :mod:`funnelprint.models.affinity` (the last ``last_n`` items form the recent query,
    the k-th most recent weighing ``decay``**k). Which history items may be shown is the
    caller's choice (:func:`funnelprint.models.serving.answer`'s ``exclude``).
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
class TraitsRecommender(Recommender[TraitsConfig], Prepares, Explainer):
    """Products that fit the customer's traits and follow from what they touched last.

    ``profile_`` is the fitted :class:`~funnelprint.profile.model.ProfileModel` (profiles of
    new logs, similar customers, trait descriptions, segments); ``links_`` the item links
    of :mod:`funnelprint.models.signals`; ``weights_`` one learned weight per feature of
    :data:`funnelprint.models.affinity.FEATURES`; ``items_`` and ``catalogue_`` what
    scores and reasons read of every item (derived, not saved).
    """

    key = "traits"
    config_class = TraitsConfig
    #: Sessions, item metadata (trait descriptions, rare-item tokens) and every event as
    #: its own step (a view, a cart and a purchase of one item are three tokens).
    reads: ClassVar[frozenset[str]] = frozenset({"sessions", "item_metadata", "every_event"})
    profile_: ProfileModel
    popularity_: np.ndarray
    links_: ItemLinks
    weights_: np.ndarray

    @one_thread
    def fit(self, train: Dataset, valid: Validator | None = None) -> Self:
        """Fit the profile on every training sequence (item metadata comes with ``train``;
        see :meth:`~funnelprint.data.dataset.Dataset.with_products`)."""
        self.dataset_ = train
        self.profile_ = ProfileModel(self.config.profile_config()).fit(train)
        self.popularity_ = popularity_share(train)
        self.links_ = ItemLinks.learn(train.sequences, train.n_items)
        self._derive()
        self.weights_ = self._learn_weights(train)
        log.info("trait recommender weights: %s", ", ".join(
            f"{n} {w:.2f}" for n, w in zip(affinity.FEATURES, self.weights_, strict=True)))
        return self

    def _derive(self) -> None:
        self.item_traits_ = unit_rows(self.profile_.item_traits_)
        self.item_vectors_ = self.profile_.item_vectors_
        counts = self.dataset_.item_counts()
        self.items_ = self._item_side(counts, self.links_)
        self.catalogue_ = reasons.Catalogue.build(
            self.dataset_.item_ids, counts, self.dataset_.item_categories,
            self.profile_.item_traits_, self.items_.vectors, self.dataset_.sequences)

    def _item_side(self, counts: np.ndarray, links: ItemLinks) -> affinity.ItemSide:
        positions = getattr(self.profile_, "item_price_position_", None)
        return affinity.ItemSide.build(
            counts, self.profile_.item_traits_, self.item_vectors_,
            self.dataset_.item_categories,
            np.full(self.dataset_.n_items, np.nan) if positions is None else positions, links)

    def _learn_weights(self, train: Dataset) -> np.ndarray:
        """Feature weights learned from the training sequences (see
        :func:`~funnelprint.models.weights.fit_weights`); the item statistics are counted
        again without the steps being predicted."""
        c = self.config

        def items_from(sequences: Sequences) -> affinity.ItemSide:
            counts = np.bincount(sequences.items, minlength=train.n_items)
            return self._item_side(counts, ItemLinks.learn(sequences, train.n_items))

        return fit_weights(
            train.sequences, lambda history: self.profile_.profile(
                history, train.action_names).traits,
            items_from, train.action_names, c.last_n, c.decay, c.seed)

    def prepare_rows(self, history: Sequences) -> Profiles:
        """The trait profile of every row of ``history``, solved from it (no stored profile
        is read): what scores and reasons of those rows share."""
        self._check_fitted()
        return self.profile_.profile(history, self.dataset_.action_names)

    def score(self, history: Sequences, customers: np.ndarray | None = None) -> np.ndarray:
        """The learned weighted sum of every item's affinity features; each row's traits are
        solved from the history given."""
        return self.score_prepared(history, self.prepare_rows(history))

    def score_prepared(self, history: Sequences, prepared: Profiles) -> np.ndarray:
        c = self.config
        score = affinity.weighted_scores(history, prepared.traits, self.items_,
                                         self.dataset_.action_names, c.last_n, c.decay,
                                         self.weights_)
        return score + np.float32(1e-6) * self.popularity_.astype(np.float32)

    # ------------------------------------------------------------------ reasons

    def reasons(self, history: Sequences, items: np.ndarray) -> list[Reason]:
        """Why each item suits the customer of ``history`` (one row): see
        :mod:`funnelprint.models.reasons`."""
        if history.n_rows != 1:
            raise ValueError(f"reasons explain one customer's history, not {history.n_rows}")
        return self.reasons_for(history, np.asarray(items, dtype=np.int64)[None, :])[0]

    def reasons_for(self, history: Sequences, items: np.ndarray,
                    prepared: Profiles | None = None) -> list[list[Reason]]:
        """Reasons for the listed items (``items``: (rows, k), -1 padding) of every row, from
        each item's contributions to its score (computed for the listed items only, a block
        of rows at a time)."""
        self._check_fitted()
        items = np.asarray(items, dtype=np.int64)
        if items.size and items.max() >= self.dataset_.n_items:
            raise ValueError("items outside the catalogue")
        profiled = self.prepare_rows(history) if prepared is None else prepared
        names = [info["name"] for info in self.profile_.trait_info_]
        c = self.config
        out: list[list[Reason]] = []
        step = 4096
        for start in range(0, history.n_rows, step):
            rows = np.arange(start, min(start + step, history.n_rows))
            part = history.select(rows)
            picked, mean = affinity.features_at(part, profiled.traits[rows], self.items_,
                                                self.dataset_.action_names, c.last_n, c.decay,
                                                items[rows])
            parts, high = reasons.centred_contributions(picked, mean, self.weights_,
                                                        items[rows])
            customers = reasons.Customers(profiled.traits[rows], profiled.cold[rows], names,
                                          self.dataset_.action_names)
            out += reasons.explain(part, items[rows], parts, high, self.items_,
                                   self.catalogue_, customers, c.last_n, c.decay)
        return out

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
        links: dict[str, np.ndarray] = {}
        for name, matrix in self.links_.matrices().items():
            links |= sparse_arrays(name, matrix)
        return ModelState({"popularity": self.popularity_, "weights": self.weights_, **links}
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
        square = (dataset.n_items, dataset.n_items)
        model.links_ = ItemLinks(*(sparse_from(state, name, square) for name in ItemLinks.NAMES))
        model._derive()
        return model
