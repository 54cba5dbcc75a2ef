from __future__ import annotations

import numpy as np
import pytest

from funnelprint.profile.quality import (
    category_purity,
    evaluate_profiles,
    flattened_baseline,
    textbook_baseline,
    trait_recovery,
)


def test_trait_recovery_matches_permuted_traits():
    rng = np.random.default_rng(0)
    truth = rng.dirichlet(np.ones(3), 200)
    recovery = trait_recovery(truth, truth[:, [2, 0, 1]])
    assert recovery["mean_correlation"] == pytest.approx(1.0)
    assert recovery["assignment"] == [1, 2, 0]


def test_category_purity():
    vectors = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    assert category_purity(vectors, np.array(["a", "a", "b", "b"]), k=1) == 1.0


def test_baselines_and_report(shop, fitted):
    sim, _, log, dataset = shop
    for ids, traits in (flattened_baseline(dataset, 4), textbook_baseline(fitted, dataset, 4)):
        assert ids.size == dataset.n_customers and traits.shape == (dataset.n_customers, 4)
    report = evaluate_profiles(log, sim.truth, sim.products, 4, seed=0)
    assert report["profile"]["mean_correlation"] > report["flattened"]["mean_correlation"]
    assert report["profile"]["segment_ari"] > 0.5
    assert report["embedding_category_purity@10"] > 0.5
