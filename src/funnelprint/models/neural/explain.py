"""Turning a sequential model's weights over history steps into words: labels of the steps
("viewed p001"), attention rollout, and the reason text of one recommended item."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from funnelprint.data.dataset import Dataset
from funnelprint.data.schema import action_verb
from funnelprint.data.sequences import Sequences
from funnelprint.models.contract import Evidence, Reason

#: How each way of weighting the history reads in a reason.
METHOD_WORDS = {"attention": "attended to", "gradient": "driven by",
                "target-attention": "matches", "graph": "through the session graph from"}


def records_actions(dataset: Dataset) -> bool:
    """Whether ``dataset`` records more than one kind of action (else labels omit them)."""
    actions = dataset.sequences.actions
    return bool(actions.size) and bool(np.any(actions != actions[0]))


def step_labels(dataset: Dataset, history: Sequences, with_actions: bool = True
                ) -> list[str]:
    """'viewed p001' (or 'p001' without actions) per step of a one-row ``history``, oldest
    first; ids and action names come from ``dataset``."""
    if history.n_rows != 1:
        raise ValueError("step labels take the history of one customer")
    labels = []
    for item, action in zip(history.items, history.actions, strict=True):
        product = str(dataset.item_ids[int(item)])
        if with_actions:
            name = dataset.action_names[int(action)]
            labels.append(f"{action_verb(name)} {product}")
        else:
            labels.append(product)
    return labels


def reason(method: str, labels: list[str], weights: np.ndarray, top_steps: int = 3) -> Reason:
    """The ``top_steps`` labelled steps with the most weight, as text and evidence (beyond
    the first, only steps with at least half a percent of the weight).

    ``weights`` are over the last ``len(weights)`` steps of which ``labels`` names the last
    ones (a window may be longer than the history it was padded from)."""
    n = min(len(labels), weights.size)
    if n == 0:
        return {"text": f"{METHOD_WORDS.get(method, 'weighted')} no history", "evidence": []}
    labels, weights = labels[len(labels) - n:], weights[weights.size - n:]
    best = np.argsort(-weights, kind="stable")[:top_steps]
    # Beyond the first, a step is named only where its weight rounds to at least 1%.
    best = best[:1].tolist() + [j for j in best[1:] if float(weights[j]) >= 0.005]
    evidence: list[Evidence] = [{"step": labels[j], "weight": round(float(weights[j]), 4)}
                                for j in best]
    text = f"{METHOD_WORDS.get(method, 'weighted')} " + ", ".join(
        f"{e['step']} ({e['weight']:.0%})" for e in evidence)
    return {"text": text, "evidence": evidence}


def attention_rollout(weights: list[torch.Tensor]) -> torch.Tensor:
    """Attention rollout (Abnar & Zuidema, 2020): heads averaged, the residual path added as
    identity, rows renormalised, multiplied through the blocks. Shape (batch, n, n)."""
    if not weights:
        raise ValueError("attention rollout needs the weights of at least one block")

    def mixed(w: torch.Tensor) -> torch.Tensor:
        a = w.mean(dim=1)
        a = 0.5 * a + 0.5 * torch.eye(a.shape[-1], device=a.device)
        return a / a.sum(dim=-1, keepdim=True)

    rollout = mixed(weights[0])
    for w in weights[1:]:
        rollout = mixed(w) @ rollout
    return rollout


def gradient_rollout(weights: list[torch.Tensor], gradients: Sequence[torch.Tensor]
                     ) -> torch.Tensor:
    """Relevance of each step to a score (Chefer et al., CVPR 2021): per block the attention
    weights times the score's gradient on them, positive part, heads averaged; accumulated
    as R <- R + A R from the identity, which is then taken off again. Shape (batch, n, n);
    row t gives position t's relevance over the steps for that one score, so different
    scores weight different steps."""
    if not weights:
        raise ValueError("gradient rollout needs the weights of at least one block")
    n = weights[0].shape[-1]
    eye = torch.eye(n, device=weights[0].device).expand(weights[0].shape[0], n, n)
    relevance = eye
    for w, g in zip(weights, gradients, strict=True):
        relevance = relevance + (w * g).clamp_min(0.0).mean(dim=1) @ relevance
    # what reached each position through attention (its own residual path would give
    # every position all of its own weight); a position nothing reached keeps itself
    through = relevance - eye
    empty = through.sum(dim=-1, keepdim=True) <= 0
    return torch.where(empty, eye, through)
