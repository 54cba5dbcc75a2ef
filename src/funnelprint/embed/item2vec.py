"""Item2Vec: skip-gram with negative sampling over token sequences (gensim)."""

from __future__ import annotations

import logging
import zlib
from collections.abc import Sequence

import numpy as np
from typing_extensions import Self

log = logging.getLogger(__name__)


def stable_hash(text: str) -> int:
    """Process-independent hash so that seeded runs repeat exactly (``hash`` is salted)."""
    return zlib.crc32(text.encode("utf-8"))


class Item2Vec:
    """Skip-gram with negative sampling on sequences of tokens.

    Parameters
    ----------
    dimension, window, min_count, negative, epochs
        As in word2vec; defaults follow practice for item embeddings.
    sample
        Down-sampling of frequent tokens.
    workers
        Training threads; 1 makes runs exactly reproducible for a seed.
    seed
        Random seed.

    Attributes
    ----------
    vocabulary_ : list of str
        Tokens with a vector, in the order of ``vectors_``.
    vectors_ : (n_tokens, dimension) float32 array
    """

    def __init__(self, dimension: int = 64, window: int = 5, min_count: int = 5,
                 negative: int = 5, epochs: int = 15, sample: float = 1e-3, workers: int = 1,
                 seed: int = 0) -> None:
        self.dimension = dimension
        self.window = window
        self.min_count = min_count
        self.negative = negative
        self.epochs = epochs
        self.sample = sample
        self.workers = workers
        self.seed = seed

    def fit(self, sentences: Sequence[Sequence[str]]) -> Self:
        # Imported here: profiling with a fitted model needs no gensim (0.6 s to import).
        from gensim.models import Word2Vec

        model = Word2Vec(
            sentences=sentences, vector_size=self.dimension, window=self.window,
            min_count=self.min_count, negative=self.negative, epochs=self.epochs, sg=1,
            sample=self.sample, workers=self.workers, seed=self.seed, hashfxn=stable_hash,
        )
        self.vocabulary_ = list(model.wv.index_to_key)
        self.vectors_ = np.asarray(model.wv.vectors, dtype=np.float32)
        log.info("item2vec: %d tokens x %d dimensions", len(self.vocabulary_), self.dimension)
        return self

    def token_index(self) -> dict[str, int]:
        return {token: i for i, token in enumerate(self.vocabulary_)}
