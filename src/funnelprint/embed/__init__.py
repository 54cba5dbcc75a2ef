"""Token embeddings: Item2Vec (gensim skip-gram with negative sampling) on token sentences."""
