"""The steps of fitting a profile, as functions of arrays: the token table (Item2Vec on
action-item tokens and the event → token table), the behaviour blocks, the selection of the
number of traits and of the blocks' balance, the NMF basis (with traits that the same
customers lean on merged), segments, and per-item views of the traits.

:meth:`funnelprint.profile.model.ProfileModel.fit` runs them in order and keeps what they
return; each step can be run and tested on its own.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import scipy.sparse as sp
from sklearn.cluster import KMeans
from sklearn.decomposition import NMF, non_negative_factorization

from funnelprint.data.dataset import Dataset
from funnelprint.data.schema import TOKEN_PREFIX
from funnelprint.data.sequences import Sequences, session_ids
from funnelprint.data.tokens import TokenConfig, encode_tokens
from funnelprint.embed.item2vec import Item2Vec
from funnelprint.profile.behaviour import (
    BehaviourScaler,
    VisitStyles,
    behaviour_features,
    price_positions,
    visit_features,
)
from funnelprint.profile.config import ProfileConfig
from funnelprint.profile.features import TokenFeaturizer, unit_rows
from funnelprint.profile.interpret import TokenTable
from funnelprint.profile.joint import block_scale, merge_groups, select
from funnelprint.profile.solving import hellinger, normalise, solver

if TYPE_CHECKING:  # torch is imported only where attention aggregation is used
    from funnelprint.profile.attention import AttentionAggregator

log = logging.getLogger(__name__)

#: Fewest customers (with known events) a trait model is fitted on: the selection fits
#: on half of them and predicts the other half.
MIN_CUSTOMERS = 8
#: Customers the traits to merge are fitted on (when the number of traits is selected).
MERGE_SAMPLE = 2000
#: Tolerance of the fit on every customer from the merged start.
FINAL_TOL = 1e-3
#: Customers per trait at least, where the number of traits is selected.
CUSTOMERS_PER_TRAIT = 10
#: Where the thresholds adapt to the data: the ones tried, most demanding first.
MIN_COUNTS = (5, 4, 3, 2, 1)
MIN_KNOWN_TOKENS = (3, 2, 1)
#: Share of the customers with enough events that the embedding's ``min_count`` may leave
#: without enough known tokens before it is lowered.
MAX_COLD_FROM_MIN_COUNT = 0.5


# ------------------------------------------------------------------ token table


@dataclass
class Vocabulary:
    """The embedded tokens: names (the embedding's order), each token's action and item
    index (-1 for a category token) and category, ``table[action, item]`` (the token an
    event becomes, -1: none) and the token vectors."""

    names: list[str]
    actions: np.ndarray
    items: np.ndarray
    categories: np.ndarray
    table: np.ndarray
    vectors: np.ndarray


@dataclass(frozen=True)
class Thresholds:
    """How often a token must occur to be embedded (``min_count``) and how many known
    tokens a customer needs to be profiled from their events (``min_known_tokens``), and
    how many customers that leaves profiled (``warm``) of those with events."""

    min_count: int
    min_known_tokens: int
    warm: int
    customers: int


def choose_thresholds(dataset: Dataset, config: ProfileConfig) -> Thresholds:
    """The configured thresholds, or where they are None the most demanding ones the data
    supports: ``min_count`` from :data:`MIN_COUNTS` keeps at least half of the customers
    who have ``min_known_tokens`` events warm, and ``min_known_tokens`` from
    :data:`MIN_KNOWN_TOKENS` leaves at least :data:`MIN_CUSTOMERS` customers warm. A log too
    small for any profile raises ``ValueError`` naming the smallest fix."""
    seq = dataset.sequences
    encoded = encode_tokens(seq, dataset.action_names, dataset.item_ids,
                            dataset.item_categories, TokenConfig(config.rare_product_min_count))
    counts = np.bincount(encoded.codes, minlength=len(encoded.names))[encoded.codes]
    rows = np.repeat(np.arange(seq.n_rows), np.diff(seq.offsets))
    events = np.diff(seq.offsets)
    counts_tried = MIN_COUNTS if config.min_count is None else (config.min_count,)
    known_tried = (MIN_KNOWN_TOKENS if config.min_known_tokens is None
                   else (config.min_known_tokens,))
    best: Thresholds | None = None
    for k in known_tried:
        eligible = int((events >= max(1, k)).sum())
        for m in counts_tried:
            known = np.bincount(rows, weights=counts >= m, minlength=seq.n_rows)
            warm = int((known >= max(1, k)).sum())
            found = Thresholds(m, k, warm, int((events > 0).sum()))
            if best is None or warm > best.warm:
                best = found
            if warm >= max(MIN_CUSTOMERS, MAX_COLD_FROM_MIN_COUNT * eligible):
                return found
        if best is not None and best.warm >= MIN_CUSTOMERS:
            return best
    assert best is not None
    if best.warm < MIN_CUSTOMERS:
        raise ValueError(f"{dataset.name}: {_too_small(best, config)}")
    return best


def _too_small(best: Thresholds, config: ProfileConfig) -> str:
    """One line: why no profile can be fitted, and the smallest change that would."""
    short = MIN_CUSTOMERS - best.warm
    lower = [f"--param {name}=1" for name, value in (("min_count", config.min_count),
                                                     ("min_known_tokens",
                                                      config.min_known_tokens))
             if value is not None and value > 1]
    fix = (f"lower {' and '.join(lower)}, or add" if lower else "add")
    return (f"too few customers to profile: {best.warm} of {best.customers:,} have "
            f"{best.min_known_tokens} or more events of products seen {best.min_count} or "
            f"more times, and traits need {MIN_CUSTOMERS}; {fix} the events of at least "
            f"{short} more customer(s)")


def fit_vocabulary(dataset: Dataset, config: ProfileConfig, min_count: int) -> Vocabulary:
    """Item2Vec on the dataset's action-item tokens (rare items as category tokens; tokens
    seen fewer than ``min_count`` times left out), and the table that maps an event to its
    token."""
    c = config
    seq = dataset.sequences
    encoded = encode_tokens(seq, dataset.action_names, dataset.item_ids,
                            dataset.item_categories, TokenConfig(c.rare_product_min_count))
    names = np.asarray(encoded.names, dtype=object)[encoded.codes]
    embed = Item2Vec(dimension=c.dimension, window=c.window, min_count=min_count,
                     negative=c.negative, epochs=c.epochs, sample=c.sample, seed=c.seed)
    embed.fit(token_sentences(names, seq, c.context, c.session_gap_minutes))
    least = c.traits if c.traits is not None else 2
    if len(embed.vocabulary_) < least:
        raise ValueError(f"only {len(embed.vocabulary_)} distinct product events reach "
                         f"min_count={min_count}; traits need at least {least}: add events "
                         "of more products" + (" or ask for fewer traits"
                                               if c.traits is not None else ""))
    code_of = {name: i for i, name in enumerate(encoded.names)}
    codes = np.array([code_of[t] for t in embed.vocabulary_], dtype=np.int64)
    actions, items = encoded.actions[codes], encoded.items[codes]
    categories = encoded.categories[codes]
    table = event_table(len(dataset.action_names), dataset.n_items, actions, items,
                        categories, encoded.rare, dataset.item_categories)
    return Vocabulary(list(embed.vocabulary_), actions, items, categories, table,
                      embed.vectors_)


def token_sentences(names: np.ndarray, seq: Sequences, context: str,
                    session_gap_minutes: float = 30.0) -> list[list[str]]:
    """Sentences for the embedding: the token names (one per event, in ``seq``'s order) of
    each customer's journey, or of each session."""
    if context == "session":
        visit = session_ids(seq, round(session_gap_minutes * 60e6))
        bounds = np.flatnonzero(np.diff(visit) != 0) + 1
    else:
        bounds = seq.offsets[1:-1]
    return [part.tolist() for part in np.split(names, bounds) if part.size]


def event_table(n_actions: int, n_items: int, token_actions: np.ndarray,
                token_items: np.ndarray, token_categories: np.ndarray, rare: np.ndarray,
                item_categories: np.ndarray | None) -> np.ndarray:
    """``table[action, item]``: the vocabulary token such an event becomes (-1: none); rare
    items map to the (action, category) token of their category."""
    table = np.full((n_actions, n_items), -1, dtype=np.int64)
    is_item = token_items >= 0
    table[token_actions[is_item], token_items[is_item]] = np.flatnonzero(is_item)
    rare_items = np.flatnonzero(rare)
    if rare_items.size and item_categories is not None and (~is_item).any():
        labels = np.concatenate([token_categories[~is_item], item_categories[rare_items]])
        names, inverse = np.unique(labels.astype(str), return_inverse=True)
        n_cat = int((~is_item).sum())
        by_category = np.full((n_actions, names.size), -1, dtype=np.int64)
        by_category[token_actions[~is_item], inverse[:n_cat]] = np.flatnonzero(~is_item)
        table[:, rare_items] = by_category[:, inverse[n_cat:]]
    return table


def token_features(config: ProfileConfig, centers: np.ndarray, shift: float,
                   vectors: np.ndarray) -> np.ndarray:
    """Non-negative features of token vectors under fitted anchors (or shift)."""
    featurizer = TokenFeaturizer(config.nonneg, config.anchors, config.temperature,
                                 config.seed)
    featurizer.centers_, featurizer.shift_ = centers, shift
    return featurizer.transform(vectors)


def fit_featurizer(config: ProfileConfig, vectors: np.ndarray) -> tuple[np.ndarray, float]:
    """The anchors (unit centres of the token vectors) and the global shift."""
    featurizer = TokenFeaturizer(config.nonneg, config.anchors, config.temperature,
                                 config.seed).fit(vectors)
    return featurizer.centers_, featurizer.shift_


def fit_aggregator(seq: Sequences, tokens: np.ndarray, vectors: np.ndarray,
                   action_codes: np.ndarray, seed: int) -> AttentionAggregator:
    """The attention aggregation, trained on next-item prediction over known events."""
    from funnelprint.profile.attention import AttentionAggregator

    known = tokens >= 0
    kept = seq.mask(known)
    # Items as targets, numbered by first appearance among the known events.
    items, first, inverse = np.unique(kept.items, return_index=True, return_inverse=True)
    rank = np.empty(items.size, dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(items.size)
    return AttentionAggregator(seed=seed).fit(
        vectors, kept.offsets, tokens[known], action_codes[kept.actions],
        rank[inverse.ravel()], max(1, items.size))


# ------------------------------------------------------------------ behaviour


@dataclass
class BehaviourFit:
    """Fitted behaviour state (item price percentiles, NaN where unknown; visit styles; the
    rank scaler; the features used and their population values) and the training rows'
    two blocks and raw values."""

    price_position: np.ndarray
    styles: VisitStyles
    scaler: BehaviourScaler
    names: tuple[str, ...]
    population: np.ndarray
    blocks: list[np.ndarray]
    values: np.ndarray


def item_price_positions(dataset: Dataset) -> np.ndarray | None:
    """Each item's price percentile within its category (None without prices)."""
    prices = dataset.item_prices
    if prices is None or not np.isfinite(prices).any():
        log.warning("no product prices: the price-position behaviour features are omitted")
    return price_positions(prices, dataset.item_categories)


def fit_behaviour(dataset: Dataset, config: ProfileConfig, positions: np.ndarray | None,
                  names: tuple[str, ...]) -> BehaviourFit:
    """Fit visit styles and the behaviour scaler (of the features ``names``) on the
    training customers."""
    seq, gap = dataset.sequences, gap_us(config)
    visits = visit_features(seq, dataset.action_names, positions, gap)
    styles = VisitStyles(config.styles, seed=config.seed).fit(visits)
    table = behaviour_features(seq, dataset.action_names, positions, gap, names=names)
    active = table.events > 0
    scaler = BehaviourScaler().fit(table.values[active])
    return BehaviourFit(
        np.full(dataset.n_items, np.nan) if positions is None else positions, styles, scaler,
        table.names, table.population,
        [styles.shares(visits, seq.n_rows), scaler.transform(table.values)], table.values)


def gap_us(config: ProfileConfig) -> int:
    return round(config.session_gap_minutes * 60e6)


# ------------------------------------------------------------------ selection and basis


@dataclass
class Shape:
    """Selected on the warm customers: each block's scale, the number of traits, the
    behaviour blocks' weight and every candidate's criterion."""

    block_scales: np.ndarray
    traits: int
    behaviour_weight: float
    selection: dict[str, Any] = field(default_factory=dict)


def select_shape(blocks: list[np.ndarray], config: ProfileConfig) -> Shape:
    """Block scales, the behaviour block's weight and (unless set) the number of traits,
    selected on the warm customers' ``blocks`` (see ``profile.joint``)."""
    c = config
    customers, columns = blocks[0].shape[0], sum(b.shape[1] for b in blocks)
    if customers < MIN_CUSTOMERS:
        raise ValueError(f"traits need at least {MIN_CUSTOMERS} customers with known "
                         f"events; this data has {customers}")
    most = min(customers // 2, columns)
    if c.traits is not None and c.traits > most:
        raise ValueError(f"--traits {c.traits} is more than this data supports: at most "
                         f"{most} (half of its {customers:,} customers with known events, "
                         f"and {columns} features)")
    scales = np.array([block_scale(b) for b in blocks])
    # A trait needs customers to lean on it: on a small log, at most one per
    # CUSTOMERS_PER_TRAIT customers (the selection's criterion keeps improving on noise).
    most_selected = min(c.max_traits, max(2, customers // CUSTOMERS_PER_TRAIT))
    if c.traits is None and most_selected < c.max_traits:
        log.info("profile: at most %d traits for %d customers", most_selected, customers)
    chosen = select([b / scale for b, scale in zip(blocks, scales, strict=True)],
                    c.traits, c.seed, c.trait_grid(), max_traits=most_selected)
    selection = {"traits": {str(k): round(v, 4) for k, v in chosen.traits_scores.items()},
                 "behaviour_weight": {str(k): round(v, 4) for k, v in
                                      chosen.balance_scores.items()}}
    log.info("profile: %d traits, behaviour weight %.2f", chosen.traits, chosen.balance)
    return Shape(scales, chosen.traits, chosen.balance, selection)


@dataclass
class Basis:
    """The fitted NMF basis (row-major), its training loss, its number of traits and,
    where the number was selected, how many were fitted and kept after merging."""

    components: np.ndarray
    reconstruction_err: float
    traits: int
    merged: dict[str, int] | None = None


def fit_basis(features: np.ndarray, traits: int, config: ProfileConfig) -> Basis:
    """The NMF basis of the warm customers' ``features``.

    With the number of traits given (``config.traits``): NMF from ``n_init`` starts, the
    basis with the lowest training loss kept. With it selected: NMF on a sample of
    customers, traits that the same customers lean on merged (see
    :func:`~funnelprint.profile.joint.merge_groups`), and one fit on every customer from
    the merged start."""
    c = config
    if c.traits is None:
        basis = fit_merged(features, traits, config)
    else:
        best, best_err = None, np.inf
        for start in range(c.n_init):
            model = nmf(traits, "nndsvda" if start == 0 else "random", config, start)
            model.fit(features)
            if model.reconstruction_err_ < best_err:
                best, best_err = model.components_, model.reconstruction_err_
        assert best is not None  # n_init >= 1
        basis = Basis(best, float(best_err), traits)
    # Row-major, as a loaded model holds it: the same layout gives bitwise the same
    # products (BLAS sums in a layout-dependent order).
    basis.components = np.ascontiguousarray(basis.components)
    return basis


def nmf(k: int, init: Literal["nndsvda", "random", "custom"], config: ProfileConfig,
        start: int = 0, tol: float = 1e-4) -> NMF:
    return NMF(n_components=k, init=init, solver=solver(config.beta_loss),
               beta_loss=config.beta_loss, max_iter=400, tol=tol,
               random_state=config.seed + start)


def fit_merged(features: np.ndarray, traits: int, config: ProfileConfig) -> Basis:
    """Fit ``traits`` traits on a sample of customers, merge the traits the same customers
    lean on, and refit on every customer from the merged start: a group's basis rows
    averaged by their total weight (so the start reconstructs what the parts did), every
    customer's weights solved against it."""
    rng = np.random.default_rng(config.seed)
    rows = np.sort(rng.choice(features.shape[0], min(MERGE_SAMPLE, features.shape[0]),
                              replace=False))
    sample = nmf(traits, "nndsvda", config)
    w = sample.fit_transform(features[rows])
    groups = merge_groups(w)
    k = int(groups.max()) + 1
    member = np.eye(k)[groups]  # traits x groups
    mass = w.sum(axis=0) + 1e-12
    h0 = np.ascontiguousarray((member * mass[:, None]).T @ sample.components_
                              / (mass @ member)[:, None])
    w0, _, _ = non_negative_factorization(features, H=h0, n_components=k, update_H=False,
                                          solver=solver(config.beta_loss),
                                          beta_loss=config.beta_loss, max_iter=100, tol=1e-3)
    # From a start this close, the tolerance of the sample's fit is enough.
    final = nmf(k, "custom", config, tol=FINAL_TOL)
    final.fit_transform(features, W=np.ascontiguousarray(w0), H=h0)
    if k < traits:
        log.info("profile: %d traits merged into %d", traits, k)
    return Basis(final.components_, float(final.reconstruction_err_), k,
                 {"fitted": int(traits), "kept": k})


# ------------------------------------------------------------------ segments and items


def fit_segments(traits: np.ndarray, n: int, seed: int = 0) -> KMeans:
    """KMeans with ``n`` segments on trait mixes in Hellinger coordinates."""
    return KMeans(n_clusters=n, n_init=4, random_state=seed).fit(hellinger(traits))


def item_views(token_items: np.ndarray, token_counts: np.ndarray, token_loadings: np.ndarray,
               token_vectors: np.ndarray, n_items: int
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per item: trait shares, unit embedding and popularity (relative to the most popular
    item), from its tokens (zero rows for items without an item token)."""
    tokens = np.flatnonzero(token_items >= 0)
    share = sp.csr_matrix((token_counts[tokens], (token_items[tokens], tokens)),
                          shape=(n_items, token_items.size))
    traits = normalise(np.asarray(share @ token_loadings))
    vectors = unit_rows(np.asarray(share @ token_vectors))
    popularity = np.asarray(share.sum(axis=1)).ravel()
    return traits, vectors, popularity / max(1.0, float(popularity.max(initial=0.0)))


def token_table(dataset: Dataset, vocabulary: list[str], token_actions: np.ndarray,
                token_items: np.ndarray, categories: np.ndarray) -> TokenTable:
    """What each token stands for, from the dataset's item metadata (``categories``: each
    token's own category, which category tokens carry)."""
    is_item = token_items >= 0
    safe = np.where(is_item, token_items, 0)

    def per_item(values: np.ndarray | None, empty: object) -> np.ndarray:
        out = np.full(token_items.size, empty, dtype=object if empty == "" else np.float64)
        if values is not None and values.size:
            out[is_item] = values[safe[is_item]]
        return out

    category = per_item(dataset.item_categories, "")
    category[~is_item] = categories[~is_item]
    prefixes = np.array([TOKEN_PREFIX.get(a, a) for a in dataset.action_names], dtype=object)
    return TokenTable(
        names=vocabulary, prefix=prefixes[token_actions],
        product=np.where(is_item, dataset.item_ids[safe], "").astype(object),
        category=category, brand=per_item(dataset.item_brands, ""),
        price=per_item(dataset.item_prices, np.nan))


__all__ = ["CUSTOMERS_PER_TRAIT", "FINAL_TOL", "MERGE_SAMPLE", "MIN_COUNTS", "MIN_CUSTOMERS",
           "MIN_KNOWN_TOKENS", "Basis", "BehaviourFit", "Shape", "Thresholds", "Vocabulary",
           "choose_thresholds", "event_table", "fit_aggregator", "fit_basis", "fit_behaviour",
           "fit_featurizer", "fit_merged", "fit_segments", "fit_vocabulary", "gap_us",
           "item_price_positions", "item_views", "nmf", "select_shape", "token_features",
           "token_sentences", "token_table"]
