"""Sequential recommenders in PyTorch: shared batching, training loop and artifacts."""
