"""Customer trait profiles: Item2Vec on action-item tokens -> non-negative token features ->
per-customer aggregation -> NMF traits, segments and trait descriptions.

:class:`ProfileModel` is the estimator: its parameters are a :class:`ProfileConfig`, its
learned state the attributes ending in ``_``. The fitting steps are functions of
:mod:`funnelprint.profile.fitting`, what solving a profile under the fitted basis takes is
in :mod:`funnelprint.profile.solving`, and saving and restoring the learned arrays in
:mod:`funnelprint.profile.state`.

The model reads a :class:`~funnelprint.data.dataset.Dataset`'s integer codes: a token is an
(action, item) pair, or (action, category) for rare items; token names such as
``cart_p001`` serve interpretation and are the words the embedding reads (the same events
give the same sentences and vocabulary order, so a seed repeats the same vectors).

>>> model = ProfileModel(traits=6).fit(Dataset.from_events(log, collapse_repeats=False))
>>> model.transform(dataset)                 # profiles under the fitted model
>>> model.transform_events(new_log)          # a new log, mapped onto the fitted items
>>> model.similar("u0042"), model.trait_info_, model.segment_summary()
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
from typing_extensions import Self

from funnelprint.data.dataset import Alignment, Dataset
from funnelprint.data.pipeline import EventLog
from funnelprint.data.sequences import Sequences
from funnelprint.profile import fitting, solving, state
from funnelprint.profile.aggregate import (
    TokenMatrix,
    inverse_document_frequency,
    token_matrix,
    weighted_mean,
)
from funnelprint.profile.behaviour import (
    BehaviourScaler,
    VisitStyles,
    log_span_days,
    observable_features,
)
from funnelprint.profile.config import BETA_LOSSES, CONTEXTS, ProfileConfig
from funnelprint.profile.evidence import CustomerFigures
from funnelprint.profile.features import unit_rows
from funnelprint.profile.fitting import (
    FINAL_TOL,
    MERGE_SAMPLE,
    MIN_CUSTOMERS,
    fit_segments,
    token_sentences,
)
from funnelprint.profile.interpret import behaviour_shares, describe_customers, describe_traits
from funnelprint.profile.solving import hellinger, normalise
from funnelprint.profile.state import ArrayReader
from funnelprint.profile.threads import one_thread

if TYPE_CHECKING:  # torch is imported only where attention aggregation is used
    from funnelprint.profile.attention import AttentionAggregator

log = logging.getLogger(__name__)


class ColdStartError(ValueError):
    """Similar customers were asked for a cold-start customer: their trait mix is a guess
    (the prior of a segment or of everyone), so any customer "like" them would be a guess
    too."""

    def __init__(self, customer_id: str, known: int, needed: int) -> None:
        super().__init__(
            f"customer {customer_id!r} is cold start: {known} known event(s), fewer than the "
            f"{needed} a profile needs, so their trait mix is a guess and no customer is "
            "similar to it on evidence")
        self.customer_id, self.known, self.needed = customer_id, known, needed


@dataclass
class Profiles:
    """Profiles of a set of sequence rows under a fitted model.

    ``traits``: shares summing to 1 (a prior for cold-start rows); ``raw``: unnormalised
    trait weights; ``cold``: fewer than ``min_known_tokens`` known tokens; ``known``: known
    tokens per row; ``segments``: nearest segment; ``unknown_tokens``: events skipped.
    The rows are solved together (the NMF solver stops all of them at once), so one row's
    traits can differ by about 1e-7 between batches.
    """

    traits: np.ndarray
    raw: np.ndarray
    cold: np.ndarray
    known: np.ndarray
    segments: np.ndarray
    unknown_tokens: int

    def copy(self) -> Profiles:
        return Profiles(self.traits.copy(), self.raw.copy(), self.cold.copy(),
                        self.known.copy(), self.segments.copy(), self.unknown_tokens)


class ProfileModel:
    """Interpretable customer traits from funnel events (see :class:`ProfileConfig`).

    Fitted attributes
    -----------------
    thresholds_, min_known_tokens_
        How often a token occurs to be embedded and how many known tokens make a customer
        warm (chosen from the data unless configured; see
        :func:`~funnelprint.profile.fitting.choose_thresholds`).
    log_days_, left_out_
        Days the fitted log covers, and the behaviour features it cannot show, with why.
    item_ids_, action_names_
        The fitted dataset's items and actions (what new data is mapped onto).
    vocabulary_
        Token names; ``token_actions_`` / ``token_items_`` give each token's action and item
        index (-1 for category tokens); ``event_tokens_[action, item]`` the token an event
        becomes (-1: none).
    token_vectors_, token_features_, token_counts_, idf_, components_, token_loadings_
        Embeddings, their non-negative features, training counts, idf, NMF basis, and each
        token's trait loading.
    block_scales_, behaviour_weight_, n_traits_, selection_
        The blocks' scales, the behaviour blocks' weight and the number of traits, and every
        candidate's criterion (``profile.joint``).
    item_price_position_, styles_, behaviour_scaler_, behaviour_names_, behaviour_population_
        The behaviour state (with ``behaviour``): item price percentiles in their category,
        visit styles, the rank scaler, the features used and their population values.
    segment_centers_, population_profile_
        KMeans centres (Hellinger coordinates) and the mean warm profile.
    customer_ids_, customer_traits_, customer_raw_, customer_cold_, customer_known_
        Profiles of the training customers.
    trait_info_
        One description per trait (see :func:`~funnelprint.profile.interpret.describe_traits`).
    item_traits_, item_vectors_, item_popularity_
        Per item: trait shares, unit embedding and popularity, from its tokens (zero rows for
        items without an item token).
    """

    item_ids_: np.ndarray
    action_names_: tuple[str, ...]
    vocabulary_: list[str]
    token_actions_: np.ndarray
    token_items_: np.ndarray
    event_tokens_: np.ndarray
    token_vectors_: np.ndarray
    token_features_: np.ndarray
    token_counts_: np.ndarray
    idf_: np.ndarray
    anchor_centers_: np.ndarray
    feature_shift_: float
    block_scales_: np.ndarray
    behaviour_weight_: float
    n_traits_: int
    selection_: dict[str, Any]
    components_: np.ndarray
    reconstruction_err_: float
    token_loadings_: np.ndarray
    item_price_position_: np.ndarray
    styles_: VisitStyles
    behaviour_scaler_: BehaviourScaler
    behaviour_names_: tuple[str, ...]
    behaviour_population_: np.ndarray
    segment_centers_: np.ndarray
    population_profile_: np.ndarray
    thresholds_: fitting.Thresholds
    min_known_tokens_: int
    log_days_: float | None
    left_out_: dict[str, str]
    customer_ids_: np.ndarray
    customer_traits_: np.ndarray
    customer_raw_: np.ndarray
    customer_cold_: np.ndarray
    customer_known_: np.ndarray
    trait_info_: list[dict[str, Any]]
    aggregator_: AttentionAggregator
    item_traits_: np.ndarray
    item_vectors_: np.ndarray
    item_popularity_: np.ndarray

    def __init__(self, config: ProfileConfig | None = None, **params: Any) -> None:
        if config is not None and params:
            raise TypeError("give a config or parameters, not both")
        self.config = config if config is not None else ProfileConfig(**params)

    def get_params(self) -> dict[str, Any]:
        return self.config.profile_params()

    def __repr__(self) -> str:
        return f"ProfileModel({self.config!r})"

    @property
    def traits(self) -> int:
        """Number of traits: the fitted number (chosen from the data unless configured)."""
        fitted: int | None = getattr(self, "n_traits_", None)
        if fitted is not None:
            return fitted
        return self.config.traits if self.config.traits is not None else 0

    # ----------------------------------------------------------------- fitting

    @one_thread
    def fit(self, dataset: Dataset, products: pl.DataFrame | None = None) -> Self:
        """Learn token embeddings, the trait basis, segments and trait descriptions from
        every customer's sequence. ``products`` (``product_id`` and any of ``category,
        brand, price``) adds to what ``dataset`` knows about its items."""
        c = self.config
        if products is not None:
            dataset = dataset.with_products(products)
        seq = dataset.sequences
        self.thresholds_ = fitting.choose_thresholds(dataset, c)
        self.min_known_tokens_ = self.thresholds_.min_known_tokens
        log.info("profile: tokens seen %d or more times embedded, customers with %d or more "
                 "known events profiled from them (%d of %d)", self.thresholds_.min_count,
                 self.min_known_tokens_, self.thresholds_.warm, self.thresholds_.customers)
        positions = fitting.item_price_positions(dataset)
        self.log_days_ = log_span_days(seq)
        observable, self.left_out_ = observable_features(positions, self.log_days_)
        for name, why in self.left_out_.items():
            log.info("profile: %s left out: %s", name, why)
        # The behaviour blocks and the raw figures do not depend on the embedding: they are
        # computed while gensim (which releases the GIL) trains, with the same results as
        # one after the other.
        with ThreadPoolExecutor(1) as side:
            pending = side.submit(fitting.fit_behaviour, dataset, c, positions, observable) \
                if c.behaviour else None
            counting = side.submit(CustomerFigures.count, dataset, c.session_gap_minutes)
            vocabulary = fitting.fit_vocabulary(dataset, c, self.thresholds_.min_count)
            behaviour = pending.result() if pending is not None else None
            figures = counting.result()
        self.item_ids_ = dataset.item_ids
        self.action_names_ = tuple(dataset.action_names)
        self.vocabulary_ = vocabulary.names
        self.token_actions_, self.token_items_ = vocabulary.actions, vocabulary.items
        self.event_tokens_, self.token_vectors_ = vocabulary.table, vocabulary.vectors
        self.anchor_centers_, self.feature_shift_ = fitting.fit_featurizer(c, vocabulary.vectors)
        self.token_features_ = fitting.token_features(c, self.anchor_centers_,
                                                      self.feature_shift_, self.token_vectors_)
        empty = np.zeros((seq.n_rows, 0))
        behaviour_blocks = [empty, empty]
        if behaviour is not None:
            self.item_price_position_ = behaviour.price_position
            self.styles_, self.behaviour_scaler_ = behaviour.styles, behaviour.scaler
            self.behaviour_names_ = behaviour.names
            self.behaviour_population_ = behaviour.population
            behaviour_blocks = behaviour.blocks

        tokens = self.event_tokens(seq, dataset.action_names)
        counts = token_matrix(seq, tokens, len(self.vocabulary_), "mean")
        self.token_counts_ = np.asarray(counts.weights.sum(axis=0)).ravel()
        self.idf_ = inverse_document_frequency(counts.weights)
        if c.aggregation == "attention":
            self.aggregator_ = fitting.fit_aggregator(
                seq, tokens, self.token_vectors_,
                solving.attention_actions(self.action_names_), c.seed)
        matrix = counts if c.aggregation == "mean" else self._aggregate(seq, tokens)
        taste = weighted_mean(matrix.weights, self.token_features_)
        warm = matrix.known_tokens >= max(1, self.min_known_tokens_)
        blocks = [taste, *behaviour_blocks]
        shape = fitting.select_shape([b[warm] for b in blocks], c)
        self.block_scales_, self.behaviour_weight_ = shape.block_scales, shape.behaviour_weight
        self.selection_ = shape.selection
        features = solving.joint(blocks, self.block_scales_, self.behaviour_weight_)
        basis = fitting.fit_basis(features[warm], shape.traits, c)
        self.components_, self.reconstruction_err_ = basis.components, basis.reconstruction_err
        self.n_traits_ = basis.traits
        if basis.merged is not None:
            self.selection_["merged"] = basis.merged

        raw = solving.solve(features, self.components_, c.beta_loss)
        n_segments = min(c.segments or self.n_traits_, int(warm.sum()))
        self.segment_centers_ = fit_segments(normalise(raw[warm]), n_segments,
                                             c.seed).cluster_centers_
        self.population_profile_ = normalise(raw[warm]).mean(axis=0)
        self.token_loadings_ = solving.solve(self.token_features_ / self.block_scales_[0],
                                             self.components_, c.beta_loss, taste_only=True)
        self._derive_items()
        self.customer_ids_ = dataset.customer_ids
        self.customer_traits_, self.customer_cold_ = solving.with_priors(
            matrix.known_tokens, raw, self.min_known_tokens_, self.population_profile_,
            self.segment_centers_)
        self.customer_raw_, self.customer_known_ = raw, matrix.known_tokens
        self._customer_index = {str(c): i for i, c in enumerate(self.customer_ids_)}
        self.trait_info_ = describe_traits(self.token_loadings_, self.token_counts_,
                                           fitting.token_table(dataset, self.vocabulary_,
                                                               self.token_actions_,
                                                               self.token_items_,
                                                               vocabulary.categories))
        describe_customers(self.trait_info_,
                           behaviour_shares(self.components_, taste.shape[1], features[warm]),
                           self.customer_traits_, ~self.customer_cold_, figures, observable,
                           c.seed)
        # The cold-start priors once each trait's behaviour share is known (see with_priors).
        self.customer_traits_, _ = solving.with_priors(
            matrix.known_tokens, raw, self.min_known_tokens_, self.population_profile_,
            self.segment_centers_, self.trait_behaviour_shares())
        return self

    def trait_behaviour_shares(self) -> np.ndarray | None:
        """How much of each trait speaks of behaviour, as its name reads (None before the
        traits are described): 1 for a trait named by behaviour alone, 0 for one named by
        taste alone, else its share of definition in the behaviour blocks. What a cold-start
        prior takes from everyone rather than from a segment (see ``with_priors``)."""
        info = getattr(self, "trait_info_", None)
        if not info:
            return None
        weight = {"behaviour": 1.0, "taste": 0.0}
        return np.array([weight.get(t.get("kind", ""), t.get("behaviour_share", 0.0))
                         for t in info], dtype=np.float64)

    def _derive_items(self) -> None:
        self.item_traits_, self.item_vectors_, self.item_popularity_ = fitting.item_views(
            self.token_items_, self.token_counts_, self.token_loadings_, self.token_vectors_,
            self.item_ids_.size)

    # ------------------------------------------------------------- profiling

    @property
    def token_features(self) -> np.ndarray:
        """Non-negative features of every vocabulary token."""
        return self.token_features_

    def event_tokens(self, sequences: Sequences, action_names: tuple[str, ...] | None = None
                     ) -> np.ndarray:
        """Vocabulary index of every event's token, -1 where it has none. ``action_names``
        name the sequences' action codes (default: the fitted dataset's)."""
        return solving.event_tokens(self.event_tokens_, self.action_names_, sequences,
                                    action_names)

    @one_thread
    def profile(self, sequences: Sequences, action_names: tuple[str, ...] | None = None
                ) -> Profiles:
        """Profiles of every row of ``sequences`` (item codes of the fitted dataset; actions
        named by ``action_names``, default the fitted dataset's), without retraining. The
        fitted model is only read: a caller that needs one history's profile several times
        keeps it (as :class:`funnelprint.models.serving.Request` does)."""
        self._check_fitted()
        return self._profile(sequences, action_names)

    def _profile(self, sequences: Sequences, action_names: tuple[str, ...] | None
                 ) -> Profiles:
        tokens = self.event_tokens(sequences, action_names)
        matrix = self._aggregate(sequences, tokens)
        names = self.action_names_ if action_names is None else tuple(action_names)
        blocks = [weighted_mean(matrix.weights, self.token_features_)]
        if self.config.behaviour:
            blocks += solving.behaviour_blocks(
                sequences, names, self.item_price_position_, self.styles_,
                self.behaviour_scaler_, self.behaviour_population_, fitting.gap_us(self.config),
                self.behaviour_names_)
        else:
            blocks += [np.zeros((sequences.n_rows, 0))] * 2
        raw = solving.solve(solving.joint(blocks, self.block_scales_, self.behaviour_weight_),
                            self.components_, self.config.beta_loss)
        traits, cold = solving.with_priors(matrix.known_tokens, raw, self.min_known_tokens_,
                                           self.population_profile_, self.segment_centers_,
                                           self.trait_behaviour_shares())
        segments = solving.segments_of(traits, raw, cold, matrix.known_tokens,
                                       self.segment_centers_)
        return Profiles(traits, raw, cold, matrix.known_tokens, segments,
                        matrix.unknown_tokens)

    def _aggregate(self, seq: Sequences, tokens: np.ndarray) -> TokenMatrix:
        attention = None
        if self.config.aggregation == "attention":
            attention = (self.aggregator_, self.token_vectors_,
                         solving.attention_actions(self.action_names_))
        return solving.aggregate(seq, tokens, len(self.vocabulary_), self.config, self.idf_,
                                 attention)

    def transform(self, data: Dataset | Sequences) -> pl.DataFrame:
        """Profiles of the customers of ``data`` under the fitted model (no retraining).

        ``data``: a dataset indexed on the fitted items (see :meth:`transform_events` for a
        new event log), or sequences in the fitted dataset's codes (``customer_id`` is then
        the row number). One row per customer: ``customer_id, trait_0 .. trait_{K-1}`` (sum
        to 1), ``segment``, ``cold_start``, ``known_tokens``.
        """
        self._check_fitted()
        if isinstance(data, Dataset):
            if data.n_items != self.item_ids_.size or not np.array_equal(data.item_ids,
                                                                         self.item_ids_):
                raise ValueError("the dataset is not indexed on the fitted items; map it with "
                                 "Dataset.aligned_to(model.item_ids_) or transform_events")
            profiles = self.profile(data.sequences, data.action_names)
            ids: np.ndarray = data.customer_ids
        else:
            profiles = self.profile(data)
            ids = np.arange(data.n_rows, dtype=np.int64)
        return self._profile_frame(ids, profiles.traits, profiles.cold, profiles.known,
                                   profiles.raw)

    def transform_events(self, events: EventLog | pl.DataFrame, collapse_repeats: bool = False
                         ) -> tuple[pl.DataFrame, Alignment]:
        """Profiles of the customers of a prepared event log: its products are mapped onto
        the fitted items (events of unknown products are skipped and counted in the returned
        :class:`~funnelprint.data.dataset.Alignment`). ``collapse_repeats`` should match how
        the fitted dataset was built (profiles are fitted on every event)."""
        aligned = Dataset.from_events(events, collapse_repeats=collapse_repeats).aligned_to(
            self.item_ids_)
        return self.transform(aligned.dataset), aligned

    def _profile_frame(self, ids: np.ndarray, traits: np.ndarray, cold: np.ndarray,
                       known: np.ndarray, raw: np.ndarray) -> pl.DataFrame:
        guess, confidence = solving.guesses(known, raw, cold, self.min_known_tokens_,
                                            self.segment_centers_)
        columns: dict[str, Any] = {"customer_id": ids}
        columns |= {f"trait_{j}": traits[:, j] for j in range(self.n_traits_)}
        segments = solving.segments_of(traits, raw, cold, known, self.segment_centers_)
        columns |= {"segment": segments, "cold_start": cold,
                    "known_tokens": known,
                    "guess": pl.Series(guess, dtype=pl.String).replace("", None),
                    "confidence": pl.Series(confidence, dtype=pl.Float64).fill_nan(None)}
        return pl.DataFrame(columns)

    def _check_fitted(self) -> None:
        if not hasattr(self, "components_"):
            raise RuntimeError("ProfileModel is not fitted; call fit() first")

    # ------------------------------------------------------------- segments

    def assign_segments(self, traits: np.ndarray) -> np.ndarray:
        """Nearest segment centre in Hellinger coordinates."""
        return solving.assign_segments(traits, self.segment_centers_)

    @property
    def segment_profiles_(self) -> np.ndarray:
        """Trait shares of each segment centre (``segment_centers_`` are in Hellinger
        coordinates)."""
        return normalise(self.segment_centers_**2)

    @property
    def customer_profiles_(self) -> pl.DataFrame:
        """Profiles of the training customers (as :meth:`transform` gives them)."""
        self._check_fitted()
        return self._profile_frame(self.customer_ids_, self.customer_traits_,
                                   self.customer_cold_, self.customer_known_,
                                   self.customer_raw_)

    def segment_summary(self) -> list[dict[str, Any]]:
        """Size and leading traits of each segment: ``customers`` profiled from their own
        events (the segments are cut on them), and ``cold_start`` customers whose profile is
        a guess that puts them there."""
        self._check_fitted()
        cold = self.customer_cold_
        segments = solving.segments_of(self.customer_traits_, self.customer_raw_, cold,
                                       self.customer_known_, self.segment_centers_)
        out = []
        for s, center in enumerate(self.segment_profiles_):
            lead = np.argsort(-center)[:2]
            out.append({"segment": s, "customers": int(((segments == s) & ~cold).sum()),
                        "cold_start": int(((segments == s) & cold).sum()),
                        "traits": {self.trait_info_[j]["name"]: round(float(center[j]), 3)
                                   for j in lead}})
        return out

    def guesses(self, profiles: Profiles) -> tuple[np.ndarray, np.ndarray]:
        """What each cold-start profile of ``profiles`` is (``segment S`` or ``everyone``;
        "" where profiled from the customer's own events) and the confidence in it (see
        :func:`~funnelprint.profile.solving.guesses`)."""
        return solving.guesses(profiles.known, profiles.raw, profiles.cold,
                               self.min_known_tokens_, self.segment_centers_)

    def cold_start_share(self) -> float:
        """Share of the fitted customers whose profile is a guess (too few known events)."""
        self._check_fitted()
        return float(self.customer_cold_.mean()) if self.customer_cold_.size else 0.0

    # ------------------------------------------------------------------ uses

    def similar(self, customer_id: str, k: int = 10) -> pl.DataFrame:
        """The ``k`` training customers with the most similar trait mix (cosine), with the
        trait they share most; ``k`` is cut to the other customers there are. A cold-start
        customer's mix is a guess, not evidence: :class:`ColdStartError`."""
        row = self.customer_row(customer_id)
        if self.customer_cold_[row]:
            raise ColdStartError(customer_id, int(self.customer_known_[row]),
                                 self.min_known_tokens_)
        return self.similar_to(self.customer_traits_[row], k, exclude=row)

    def similar_to(self, mix: np.ndarray, k: int = 10, exclude: int | None = None
                   ) -> pl.DataFrame:
        """The ``k`` training customers closest to the trait mix ``mix`` (cosine), with the
        trait they share most, leaving out training row ``exclude`` and the cold-start
        customers (their mixes are guesses: two guesses would match at 1.000)."""
        self._check_fitted()
        if k < 1:
            raise ValueError(f"k must be at least 1, not {k}")
        mix = np.asarray(mix, dtype=np.float64)
        traits = self.customer_traits_
        unit = unit_rows(traits)
        sim = unit @ unit_rows(mix[None, :])[0]
        keep = ~self.customer_cold_
        if exclude is not None:
            keep[exclude] = False
        others = np.flatnonzero(keep)
        top = others[np.argsort(-sim[others], kind="stable")[:k]]
        shared = np.argmax(traits[top] * mix, axis=1)
        return pl.DataFrame({
            "customer_id": self.customer_ids_[top].astype(str),
            "similarity": sim[top].astype(np.float64),
            "reason": [f"both lean on '{self.trait_info_[j]['name']}' "
                       f"({mix[j]:.0%} vs {traits[t, j]:.0%})"
                       if min(mix[j], traits[t, j]) >= 0.005
                       else "the closest mix of traits (no trait both lean on)"
                       for j, t in zip(shared, top, strict=True)],
        }, schema={"customer_id": pl.String, "similarity": pl.Float64, "reason": pl.String})

    def customer_row(self, customer_id: str) -> int:
        """Training row of ``customer_id``; ``KeyError`` for an unknown customer."""
        self._check_fitted()
        row = self._customer_index.get(str(customer_id))
        if row is None:
            raise KeyError(f"unknown customer {customer_id!r}")
        return row

    # ------------------------------------------------------------- learned state

    def array_shapes(self) -> dict[str, tuple[int | None, ...]]:
        """Every learned array by name with its shape (see :mod:`funnelprint.profile.state`):
        what :meth:`state_arrays` writes and :meth:`from_state` reads back and checks."""
        return state.array_shapes(self)

    def state_arrays(self) -> dict[str, np.ndarray]:
        """The learned arrays named by :meth:`array_shapes`."""
        self._check_fitted()
        return state.state_arrays(self)

    def state_meta(self) -> dict[str, Any]:
        """What :meth:`from_state` needs besides the arrays (JSON-ready)."""
        self._check_fitted()
        return state.state_meta(self)

    @classmethod
    def from_state(cls, config: ProfileConfig, item_ids: np.ndarray, read: ArrayReader,
                   meta: dict[str, Any]) -> ProfileModel:
        """A fitted model from :meth:`state_arrays` (through ``read``, which checks each
        array's shape) and :meth:`state_meta`; ``item_ids`` are the fitted items. An
        inconsistent state raises ``ValueError``."""
        model = cls(config)
        state.restore(model, item_ids, read, meta)
        model.token_features_ = fitting.token_features(
            config, model.anchor_centers_, model.feature_shift_, model.token_vectors_)
        model._derive_items()
        model._customer_index = {str(c): i for i, c in enumerate(model.customer_ids_)}
        return model


__all__ = ["BETA_LOSSES", "CONTEXTS", "FINAL_TOL", "MERGE_SAMPLE", "MIN_CUSTOMERS",
           "ArrayReader", "ColdStartError", "ProfileConfig", "ProfileModel", "Profiles",
           "fit_segments", "hellinger", "normalise", "one_thread", "token_sentences"]
