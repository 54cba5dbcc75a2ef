"""Non-negative token features, applied per token *before* customers are aggregated.

NMF needs non-negative input; token embeddings are signed. Mapping every token to a
non-negative feature vector first keeps aggregation linear: a customer who is 60% one persona
and 40% another gets 0.6 and 0.4 of their token features, which NMF can then unmix.

``shift``   subtract the global minimum of the embeddings (the textbook pipeline's fix).
``split``   each dimension becomes its positive and negative part ``[max(v, 0), max(-v, 0)]``.
``anchors`` soft assignment of each token to ``anchors`` KMeans centres of the unit token
            vectors: ``softmax((cos - 1) / temperature)``; a token's features sum to 1.
"""

from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans

NONNEG_METHODS = ("anchors", "split", "shift")


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.where(norms > 0, matrix / np.maximum(norms, 1e-12), 0.0)


class TokenFeaturizer:
    """Fit on the token vectors of a vocabulary; map any token vectors to non-negative features.

    Attributes
    ----------
    shift_ : float
        Global minimum of the fitted vectors (``shift``).
    centers_ : (anchors, d) array
        Unit KMeans centres (``anchors``).
    """

    def __init__(self, method: str = "anchors", anchors: int = 256, temperature: float = 0.1,
                 seed: int = 0) -> None:
        if method not in NONNEG_METHODS:
            raise ValueError(f"nonneg must be one of {NONNEG_METHODS}, not {method!r}")
        self.method = method
        self.anchors = anchors
        self.temperature = temperature
        self.seed = seed

    def fit(self, vectors: np.ndarray) -> TokenFeaturizer:
        self.shift_ = float(vectors.min())
        self.centers_ = np.zeros((0, vectors.shape[1]), dtype=np.float32)
        if self.method == "anchors":
            n = min(self.anchors, vectors.shape[0])
            # Random starts: anchors only need to cover the space, and k-means++ seeding of
            # 256 centres cost more than the clustering (with no better profiles).
            km = KMeans(n_clusters=n, n_init=1, init="random", random_state=self.seed)
            km.fit(unit_rows(vectors))
            self.centers_ = unit_rows(km.cluster_centers_).astype(np.float32)
        return self

    def transform(self, vectors: np.ndarray) -> np.ndarray:
        if self.method == "split":
            return np.concatenate([np.maximum(vectors, 0.0), np.maximum(-vectors, 0.0)], axis=1)
        if self.method == "shift":
            return vectors - min(self.shift_, 0.0)
        logits = (unit_rows(vectors) @ self.centers_.T - 1.0) / self.temperature
        weights = np.exp(logits - logits.max(axis=1, keepdims=True))
        return weights / weights.sum(axis=1, keepdims=True)
