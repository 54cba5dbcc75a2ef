"""Attention heatmap of one customer: self-attention over their history (attention models)
and the weight each recommended item put on each history step."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from funnelprint.models.neural.base import SequentialRecommender
from funnelprint.models.neural.explain import customer_row, recommend_with_reasons, step_labels


def attention_heatmap(model: SequentialRecommender, customer_id: str, path: str | Path,
                      k: int = 10) -> Path:
    """Write a PNG (or any format matplotlib knows by the suffix) and return its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    row = customer_row(model, customer_id)
    history = model.dataset_.sequences.select(np.array([row]))
    recs = recommend_with_reasons(model, customer_id, k)
    items = np.array([model.dataset_.item_index()[r["product_id"]] for r in recs],
                     dtype=np.int64)
    weights = model.explain(history, items) if items.size else np.zeros((0, 1))
    labels = step_labels(model, row)[-weights.shape[1]:]
    attention = model.self_attention(history)
    panels = 2 if attention is not None else 1
    size = max(4.0, 0.35 * len(labels) + 2.5)
    fig, axes = plt.subplots(1, panels, figsize=(size * panels, size), squeeze=False)
    ax = axes[0, 0]
    image = ax.imshow(weights, aspect="auto", cmap="viridis")
    ax.set_yticks(range(len(recs)), [r["product_id"] for r in recs], fontsize=7)
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
    ax.set_title(f"{model.key}: weight of each history step\nper recommendation", fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.04)
    if attention is not None:
        ax = axes[0, 1]
        image = ax.imshow(attention, cmap="magma")
        ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        ax.set_title("last block self-attention\n(query row -> key column)", fontsize=9)
        fig.colorbar(image, ax=ax, fraction=0.04)
    fig.suptitle(f"customer {customer_id}", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
