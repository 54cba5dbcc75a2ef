from __future__ import annotations

import numpy as np
import pytest

from funnelprint.profile.features import TokenFeaturizer


@pytest.mark.parametrize("method", ["anchors", "split", "shift"])
def test_token_features_are_non_negative(method):
    vectors = np.random.default_rng(0).normal(size=(50, 8)).astype(np.float32)
    features = TokenFeaturizer(method, anchors=5).fit(vectors).transform(vectors)
    assert (features >= 0).all()
    if method == "anchors":
        assert np.allclose(features.sum(axis=1), 1.0)
    if method == "split":
        assert np.allclose(features[:, :8] - features[:, 8:], vectors)


def test_unknown_method_is_refused():
    with pytest.raises(ValueError, match="nonneg"):
        TokenFeaturizer("clip")
