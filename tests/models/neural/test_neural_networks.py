"""The networks and their building blocks (models/neural/layers.py, sasrec.py, gru.py)."""

from __future__ import annotations

import torch

from funnelprint.models.neural.gru import GRUNet
from funnelprint.models.neural.layers import dropout, init_embedding
from funnelprint.models.neural.sasrec import SASRecNet


def test_eval_mode_scores_are_finite_with_padding():
    net = SASRecNet(n_items=20, maxlen=8, dim=16, blocks=2, heads=2)
    net.eval()
    inputs = torch.tensor([[0, 0, 0, 0, 0, 1, 2, 3], [0, 0, 0, 0, 0, 0, 0, 4]])
    with torch.no_grad():
        hidden, weights = net(inputs, return_weights=True)
    assert torch.isfinite(hidden).all()
    # no attention from a real position to padding, none to the future
    assert float(weights[0][0, 0, 7, :5].sum()) == 0.0
    assert float(weights[0][0, 0, 5, 6:].sum()) == 0.0


def test_trimmed_and_full_windows_agree():
    net = SASRecNet(n_items=20, maxlen=8, dim=16, blocks=2, heads=2)
    net.eval()
    full = torch.tensor([[0, 0, 0, 0, 0, 1, 2, 3]])
    with torch.no_grad():
        a = net(full)[0][:, -1]
        b = net(full[:, -3:])[0][:, -1]
    assert torch.allclose(a, b, atol=1e-5)


def test_explicit_and_fused_attention_agree_in_eval_mode():
    net = SASRecNet(n_items=20, maxlen=8, dim=16, blocks=2, heads=2, dropout=0.5)
    net.eval()
    inputs = torch.tensor([[0, 0, 0, 4, 5, 1, 2, 3]])
    with torch.no_grad():
        fused = net(inputs)[0]
        explicit = net(inputs, return_weights=True)[0]
    assert torch.allclose(fused, explicit, atol=1e-5)


def test_item_embeddings_start_small_for_large_catalogues_with_a_zero_padding_row():
    torch.manual_seed(0)
    small, large = (torch.nn.Embedding(n, 64, padding_idx=0) for n in (100, 20_000))
    for table in (small, large):
        init_embedding(table)
        assert torch.all(table.weight[0] == 0)
    # Rarely trained rows of a big catalogue must start near zero (std ~ sqrt(2 / rows)).
    assert large.weight[1:].std() < 0.02 < small.weight[1:].std()


def test_dropout_keeps_the_expectation_and_is_off_in_eval():
    torch.manual_seed(0)
    x = torch.ones(200_000)
    dropped = dropout(x, 0.3, training=True)
    assert abs(float((dropped == 0).float().mean()) - 0.3) < 0.01
    assert abs(float(dropped.mean()) - 1.0) < 0.01
    assert torch.equal(dropout(x, 0.3, training=False), x)


def test_gru_ignores_left_padding():
    net = GRUNet(n_items=20, dim=16)
    net.eval()
    with torch.no_grad():
        short = net(torch.tensor([[3, 4, 5]]))[0][:, -1]
        padded = net(torch.tensor([[0, 0, 0, 3, 4, 5]]))[0][:, -1]
    assert torch.allclose(short, padded, atol=1e-6)


def test_ligr_blocks_keep_padding_out_and_agree_on_trimmed_windows():
    net = SASRecNet(n_items=20, maxlen=8, dim=16, blocks=2, heads=2, block="ligr",
                    ff_multiplier=2)
    net.eval()
    full = torch.tensor([[0, 0, 0, 0, 0, 1, 2, 3]])
    with torch.no_grad():
        hidden, weights = net(full, return_weights=True)
        trimmed = net(full[:, -3:])[0]
    assert torch.isfinite(hidden).all() and float(weights[0][0, :, 7, :5].sum()) == 0.0
    assert torch.allclose(hidden[:, -1], trimmed[:, -1], atol=1e-5)
    gates = {name for name, _ in net.named_parameters() if "gate" in name}
    assert gates == {f"blocks.{b}.gate{g}.{p}" for b in (0, 1) for g in (1, 2)
                     for p in ("weight", "bias")}
