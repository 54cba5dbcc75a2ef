"""Attention heatmaps of sequential models (report/heatmap.py)."""

from __future__ import annotations

import numpy as np
import pytest

from funnelprint.evaluate.splits import loo_split
from funnelprint.models import make_model
from funnelprint.report.heatmap import attention_heatmap, plot_attention

from ..models.neural.conftest import FEW_STEPS, cyclic_dataset

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("key", ["funnelformer", "gru4rec"])
def test_heatmap_of_a_customer_is_written(key, tmp_path):
    data = cyclic_dataset(customers=40, with_actions=True)
    model = make_model(key, **FEW_STEPS).fit(loo_split(data).train)
    path = attention_heatmap(model, "c3", tmp_path / "out" / "c3.png", k=4)
    assert path.read_bytes()[:8] == PNG
    with pytest.raises(KeyError, match="unknown customer"):
        attention_heatmap(model, "nobody", tmp_path / "x.png")


def test_heatmap_of_any_history_and_items(tmp_path):
    data = cyclic_dataset(customers=40)
    model = make_model("bert4rec", **FEW_STEPS).fit(data)
    history = data.sequences.select(np.array([0]))
    path = plot_attention(model, history, np.array([1, 2]), tmp_path / "h.svg", title="mine")
    assert b"<svg" in path.read_bytes()[:400]
    empty = history.mask(np.zeros(history.items.size, dtype=bool))
    with pytest.raises(ValueError, match="no steps to draw"):
        plot_attention(model, empty, np.array([1]), tmp_path / "e.png")
