"""Customer trait profiles: Item2Vec tokens -> non-negative features -> aggregation -> NMF.

>>> model = ProfileModel(traits=6).fit(log)          # log: a prepared EventLog
>>> model.transform(new_log.events)                  # refresh without retraining
>>> model.similar("u0042"), model.recommend("u0042")
"""

from __future__ import annotations

import logging

import numpy as np
import polars as pl
import scipy.sparse as sp
from sklearn.cluster import KMeans
from sklearn.decomposition import NMF, non_negative_factorization
from typing_extensions import Self

from funnelprint.data.pipeline import EventLog
from funnelprint.embed.item2vec import Item2Vec
from funnelprint.profile.aggregate import (
    AGGREGATIONS,
    inverse_document_frequency,
    token_matrix,
    weighted_mean,
)
from funnelprint.profile.features import NONNEG_METHODS, nonneg_features, unit_rows
from funnelprint.profile.interpret import describe_traits, split_tokens

log = logging.getLogger(__name__)


class ProfileModel:
    """Interpretable customer traits from funnel events.

    Parameters
    ----------
    traits : int
        Number of traits (NMF components).
    aggregation : {"tfidf", "mean", "recency"}
        How a customer's token features are combined.
    nonneg : {"split", "shift"}
        How signed embeddings become non-negative NMF input (see ``profile.features``).
    dimension, window, min_count, negative, epochs
        Item2Vec settings.
    segments : int or None
        KMeans segments on traits (default: as many as traits).
    min_known_tokens : int
        Customers with fewer known tokens get a prior profile and ``cold_start=True``.
    half_life_days : float
        Half-life of the ``recency`` aggregation.
    seed : int
    """

    def __init__(self, traits: int = 8, aggregation: str = "tfidf", nonneg: str = "split",
                 dimension: int = 64, window: int = 5, min_count: int = 5, negative: int = 5,
                 epochs: int = 15, segments: int | None = None, min_known_tokens: int = 3,
                 half_life_days: float = 14.0, seed: int = 0) -> None:
        self.traits = traits
        self.aggregation = aggregation
        self.nonneg = nonneg
        self.dimension = dimension
        self.window = window
        self.min_count = min_count
        self.negative = negative
        self.epochs = epochs
        self.segments = segments
        self.min_known_tokens = min_known_tokens
        self.half_life_days = half_life_days
        self.seed = seed

    def get_params(self) -> dict:
        keys = ("traits", "aggregation", "nonneg", "dimension", "window", "min_count",
                "negative", "epochs", "segments", "min_known_tokens", "half_life_days", "seed")
        return {k: getattr(self, k) for k in keys}

    # ----------------------------------------------------------------- fitting

    def fit(self, log: EventLog | pl.DataFrame, products: pl.DataFrame | None = None) -> Self:
        """Learn token embeddings, the trait basis, segments and trait descriptions."""
        self._validate()
        events = log.events if isinstance(log, EventLog) else log
        embed = Item2Vec(dimension=self.dimension, window=self.window, min_count=self.min_count,
                         negative=self.negative, epochs=self.epochs, seed=self.seed)
        embed.fit(session_sentences(events))
        if len(embed.vocabulary_) < self.traits:
            raise ValueError(f"only {len(embed.vocabulary_)} tokens reach min_count="
                             f"{self.min_count}; need at least traits={self.traits}")
        self.vocabulary_ = embed.vocabulary_
        self.token_vectors_ = embed.vectors_
        self.shift_ = float(self.token_vectors_.min())
        self.token_features_ = nonneg_features(self.token_vectors_, self.nonneg, self.shift_)
        counts = token_matrix(events, self.vocabulary_index, "mean")
        self.token_counts_ = np.asarray(counts.weights.sum(axis=0)).ravel()
        self.idf_ = inverse_document_frequency(counts.weights)
        matrix = self._aggregate(events)
        features = weighted_mean(matrix.weights, self.token_features_)
        warm = matrix.known_tokens >= max(1, self.min_known_tokens)
        nmf = NMF(n_components=self.traits, init="nndsvda", max_iter=1000, tol=1e-5,
                  random_state=self.seed)
        nmf.fit(features[warm])
        self.components_ = nmf.components_
        self.reconstruction_err_ = float(nmf.reconstruction_err_)
        raw = self._solve(features)
        self._fit_segments(normalise(raw[warm]))
        self.population_profile_ = normalise(raw[warm]).mean(axis=0)
        self.token_loadings_ = self._solve(self.token_features_)
        self.products_meta_ = _products_table(events, products)
        self._fit_products()
        self.trait_info_ = describe_traits(self.token_loadings_, self.vocabulary_,
                                           self.token_counts_, self.products_meta_)
        self.customer_profiles_ = self._profiles(matrix, raw)
        self._remember_histories(events)
        return self

    def _validate(self) -> None:
        if self.aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation must be one of {AGGREGATIONS}")
        if self.nonneg not in NONNEG_METHODS:
            raise ValueError(f"nonneg must be one of {NONNEG_METHODS}")
        if self.traits < 1:
            raise ValueError("traits must be at least 1")

    @property
    def vocabulary_index(self) -> dict[str, int]:
        if not hasattr(self, "_vocabulary_index"):
            self._vocabulary_index = {t: i for i, t in enumerate(self.vocabulary_)}
        return self._vocabulary_index

    def _aggregate(self, events: pl.DataFrame):
        return token_matrix(events, self.vocabulary_index, self.aggregation, self.idf_,
                            self.half_life_days)

    def _solve(self, features: np.ndarray) -> np.ndarray:
        """Trait weights of feature rows under the fitted basis (NNLS, basis fixed)."""
        if features.shape[0] == 0:
            return np.zeros((0, self.traits))
        w, _, _ = non_negative_factorization(
            np.asarray(features, dtype=np.float64), H=self.components_,
            n_components=self.traits, update_H=False, max_iter=1000, tol=1e-6,
        )
        return w

    def _fit_segments(self, traits: np.ndarray) -> None:
        n = min(self.segments or self.traits, traits.shape[0])
        km = KMeans(n_clusters=n, n_init=10, random_state=self.seed).fit(traits)
        self.segment_centers_ = km.cluster_centers_

    def _fit_products(self) -> None:
        info = split_tokens(self.vocabulary_)
        is_product = ~info["is_category"].to_numpy()
        items = info["item"].to_numpy()[is_product]
        products, product_of_token = np.unique(items, return_inverse=True)
        tokens = np.flatnonzero(is_product)
        weight = self.token_counts_[tokens]
        share = sp.csr_matrix((weight, (product_of_token, tokens)),
                              shape=(products.size, len(self.vocabulary_)))
        self.product_ids_ = products.astype(str)
        self.product_traits_ = normalise(np.asarray(share @ self.token_loadings_))
        self.product_vectors_ = unit_rows(np.asarray(share @ self.token_vectors_))
        popularity = np.asarray(share.sum(axis=1)).ravel()
        self.product_popularity_ = popularity / max(1.0, popularity.max())

    # ------------------------------------------------------------- profiling

    def transform(self, events: EventLog | pl.DataFrame) -> pl.DataFrame:
        """Profiles of the customers in ``events`` under the fitted model (no retraining).

        Returns one row per customer: ``customer_id, trait_0 .. trait_{K-1}`` (sum to 1),
        ``raw_0 ..`` (unnormalised weights), ``segment``, ``cold_start``, ``known_tokens``.
        """
        self._check_fitted()
        frame = events.events if isinstance(events, EventLog) else events
        matrix = self._aggregate(frame)
        raw = self._solve(weighted_mean(matrix.weights, self.token_features_))
        return self._profiles(matrix, raw)

    def _profiles(self, matrix, raw: np.ndarray) -> pl.DataFrame:
        traits = normalise(raw)
        cold = matrix.known_tokens < self.min_known_tokens
        nearest = self.assign_segments(traits)
        empty = traits.sum(axis=1) == 0
        prior = np.where(empty[:, None], self.population_profile_,
                         self.segment_centers_[nearest])
        traits = np.where(cold[:, None], normalise(prior), traits)
        segment = self.assign_segments(traits)
        columns = {"customer_id": matrix.customer_ids}
        columns |= {f"trait_{j}": traits[:, j] for j in range(self.traits)}
        columns |= {f"raw_{j}": raw[:, j] for j in range(self.traits)}
        columns |= {"segment": segment, "cold_start": cold, "known_tokens": matrix.known_tokens}
        return pl.DataFrame(columns)

    def assign_segments(self, traits: np.ndarray) -> np.ndarray:
        d = ((traits[:, None, :] - self.segment_centers_[None, :, :]) ** 2).sum(axis=2)
        return d.argmin(axis=1) if d.size else np.zeros(traits.shape[0], dtype=np.int64)

    def _check_fitted(self) -> None:
        if not hasattr(self, "components_"):
            raise RuntimeError("ProfileModel is not fitted; call fit() or load a model")

    # ------------------------------------------------------------------ uses

    def trait_matrix(self) -> tuple[np.ndarray, np.ndarray]:
        p = self.customer_profiles_
        return p["customer_id"].to_numpy().astype(str), p.select(
            [f"trait_{j}" for j in range(self.traits)]).to_numpy()

    def similar(self, customer_id: str, k: int = 10) -> pl.DataFrame:
        """Customers with the most similar trait mix (cosine), with the shared leading trait."""
        ids, traits = self.trait_matrix()
        row = self._row_of(ids, customer_id)
        unit = unit_rows(traits)
        sim = unit @ unit[row]
        sim[row] = -np.inf
        top = np.argsort(-sim, kind="stable")[:k]
        shared = np.argmax(traits[top] * traits[row], axis=1)
        names = [self.trait_info_[j]["name"] for j in shared]
        return pl.DataFrame({
            "customer_id": ids[top], "similarity": sim[top],
            "reason": [f"both lean on '{n}' ({traits[row, j]:.0%} vs {traits[t, j]:.0%})"
                       for n, j, t in zip(names, shared, top, strict=True)],
        })

    def recommend(self, customer_id: str, k: int = 10, include_purchased: bool = False,
                  trait_weight: float = 0.5) -> pl.DataFrame:
        """Products scored by trait affinity and embedding similarity to recent items."""
        ids, traits = self.trait_matrix()
        row = self._row_of(ids, customer_id)
        mix = traits[row]
        trait_score = unit_rows(self.product_traits_) @ (mix / max(np.linalg.norm(mix), 1e-12))
        recent = self._recent_products[row]
        query = self.product_vectors_[recent].mean(axis=0) if recent.size else None
        embed_score = (self.product_vectors_ @ query) if query is not None else 0.0
        score = (trait_weight * trait_score + (1 - trait_weight) * embed_score
                 + 0.01 * self.product_popularity_)
        if not include_purchased:
            score[self._purchased[row]] = -np.inf
        top = np.argsort(-score, kind="stable")[:k]
        top = top[np.isfinite(score[top])]
        reasons = [self._reason(mix, p, recent) for p in top]
        return pl.DataFrame({"product_id": self.product_ids_[top], "score": score[top],
                             "reason": reasons})

    def _reason(self, mix: np.ndarray, product: int, recent: np.ndarray) -> str:
        j = int(np.argmax(mix * self.product_traits_[product]))
        text = f"fits trait '{self.trait_info_[j]['name']}' ({mix[j]:.0%} of profile)"
        if recent.size:
            sims = self.product_vectors_[recent] @ self.product_vectors_[product]
            best = recent[int(np.argmax(sims))]
            if best != product and sims.max() > 0.3:
                text += f"; similar to recent {self.product_ids_[best]}"
        return text

    def _row_of(self, ids: np.ndarray, customer_id: str) -> int:
        hits = np.flatnonzero(ids == str(customer_id))
        if hits.size == 0:
            raise KeyError(f"unknown customer {customer_id!r}")
        return int(hits[0])

    def _remember_histories(self, events: pl.DataFrame, recent_n: int = 5) -> None:
        lookup = pl.DataFrame({"product_id": self.product_ids_,
                               "p": np.arange(self.product_ids_.size)})
        ids = self.customer_profiles_["customer_id"]
        order = pl.DataFrame({"customer_id": ids, "row": np.arange(ids.len())})
        frame = events.select("customer_id", "product_id", "action").join(
            lookup, on="product_id", how="inner", maintain_order="left"
        ).join(order, on="customer_id", how="inner", maintain_order="left")
        bought = frame.filter(pl.col("action") == "purchase").group_by("row").agg("p")
        recent = frame.group_by("row", maintain_order=True).agg(pl.col("p").unique(
            maintain_order=True).tail(recent_n))
        self._purchased = _lists(bought, ids.len())
        self._recent_products = _lists(recent, ids.len())


def _lists(frame: pl.DataFrame, n: int) -> list[np.ndarray]:
    out = [np.zeros(0, dtype=np.int64)] * n
    for row, items in frame.iter_rows():
        out[row] = np.asarray(items, dtype=np.int64)
    return out


def normalise(weights: np.ndarray) -> np.ndarray:
    total = weights.sum(axis=1, keepdims=True)
    return np.where(total > 0, weights / np.maximum(total, 1e-12), 0.0)


def session_sentences(events: pl.DataFrame) -> list[list[str]]:
    """Token sequences of sessions (or of whole journeys without a session column)."""
    key = "session" if "session" in events.columns else "customer_id"
    tokens = events["token"].to_numpy()
    change = events.select((pl.col(key) != pl.col(key).shift(1)).fill_null(True)).to_series()
    bounds = np.flatnonzero(change.to_numpy())[1:]
    return [part.tolist() for part in np.split(tokens, bounds) if part.size]


def _products_table(events: pl.DataFrame, products: pl.DataFrame | None) -> pl.DataFrame | None:
    """Product metadata from a products file, else from the events' own columns."""
    if products is not None:
        return products
    columns = [c for c in ("category", "brand", "price") if c in events.columns]
    if not columns:
        return None
    return events.select("product_id", *columns).unique("product_id", keep="last")
