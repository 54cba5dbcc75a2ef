"""Non-negative token features, applied per token *before* customers are aggregated.

NMF needs non-negative input, token embeddings are signed. Mapping every token to a
non-negative feature vector first keeps aggregation linear: a customer who is 60% one persona
and 40% another gets 0.6 and 0.4 of their token features, which NMF can then unmix.

``shift``: subtract the global minimum (the textbook pipeline).
``split``: each dimension becomes its positive and negative part ``[max(v, 0), max(-v, 0)]``.
"""

from __future__ import annotations

import numpy as np

NONNEG_METHODS = ("split", "shift")


def nonneg_features(vectors: np.ndarray, method: str, shift: float | None = None) -> np.ndarray:
    """Map signed token vectors (tokens x d) to non-negative features."""
    if method == "split":
        return np.concatenate([np.maximum(vectors, 0.0), np.maximum(-vectors, 0.0)], axis=1)
    if method == "shift":
        offset = float(vectors.min()) if shift is None else shift
        return vectors - min(offset, 0.0)
    raise ValueError(f"nonneg must be one of {NONNEG_METHODS}, not {method!r}")


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.where(norms > 0, matrix / np.maximum(norms, 1e-12), 0.0)
