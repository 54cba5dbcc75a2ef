"""Attention heatmap of one customer: the weight each recommended item put on each history
step (any sequential model) and self-attention over the history (attention models)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from funnelprint.data.sequences import Sequences
from funnelprint.models.neural.base import SequentialRecommender
from funnelprint.models.serving import DEFAULT_EXCLUDE, Exclude, answer_known


def plot_attention(model: SequentialRecommender[Any, Any], history: Sequences,
                   items: np.ndarray, path: str | Path, title: str = "") -> Path:
    """Draw ``model``'s weights over a one-row ``history`` for each of ``items`` (dataset
    indices), and its self-attention where it has one; write the figure to ``path`` (PNG, or
    any format matplotlib knows by the suffix) and return the path. An empty history has
    nothing to draw and raises ``ValueError``."""
    if history.n_rows != 1:
        raise ValueError("a heatmap takes the history of one customer")
    if not history.items.size:
        raise ValueError("the history is empty: there are no steps to draw")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    items = np.asarray(items, dtype=np.int64).reshape(-1)
    weights = model.explain(history, items) if items.size else np.zeros((0, 1))
    labels = model.step_labels(history)
    width = min(len(labels), weights.shape[1])
    labels, weights = labels[len(labels) - width:], weights[:, weights.shape[1] - width:]
    names = [str(model.dataset_.item_ids[i]) for i in items]
    attention = model.self_attention(history)
    panels = 2 if attention is not None else 1
    size = max(4.0, 0.35 * len(labels) + 2.5)
    fig, axes = plt.subplots(1, panels, figsize=(size * panels, size), squeeze=False)
    ax = axes[0, 0]
    image = ax.imshow(weights, aspect="auto", cmap="viridis")
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
    ax.set_title(f"{model.key}: weight of each history step\nper recommendation", fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.04)
    if attention is not None:
        attention = attention[attention.shape[0] - width:, attention.shape[1] - width:]
        ax = axes[0, 1]
        image = ax.imshow(attention, cmap="magma")
        ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        ax.set_title("last block self-attention\n(query row -> key column)", fontsize=9)
        fig.colorbar(image, ax=ax, fraction=0.04)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def attention_heatmap(model: SequentialRecommender[Any, Any], customer_id: str,
                      path: str | Path, k: int = 10, exclude: Exclude = DEFAULT_EXCLUDE
                      ) -> Path:
    """:func:`plot_attention` for a customer of the model's dataset (by external id) and
    the model's top ``k`` items for them."""
    request, ranked = answer_known(model, customer_id, k, exclude)
    items = ranked.items[0][ranked.items[0] >= 0]
    return plot_attention(model, request.history, items, path, title=f"customer {customer_id}")
