"""The JVM-free forest: Spark's split rule, vote averaging, and the artifact format."""

from __future__ import annotations

import numpy as np
import pytest

from pronostico.core.forest import Forest


def node(node_id: int, left: int = -1, right: int = -1, feature: int = 0, threshold: float = 0.0,
         stats: tuple[float, ...] = (0.0, 0.0)) -> dict:
    return {"id": node_id, "leftChild": left, "rightChild": right, "impurityStats": list(stats),
            "split": {"featureIndex": feature, "leftCategoriesOrThreshold": [threshold], "numCategories": -1}}


def two_trees() -> Forest:
    stump = [node(0, 1, 2, feature=0, threshold=0.5), node(1, stats=(3, 1)), node(2, stats=(0, 4))]
    deeper = [node(0, 1, 4, feature=1, threshold=10.0), node(1, 2, 3, feature=0, threshold=-1.0),
              node(2, stats=(1, 0)), node(3, stats=(1, 1)), node(4, stats=(2, 6))]
    return Forest.from_trees([stump, deeper])


def test_a_value_equal_to_the_threshold_goes_left_like_spark() -> None:
    forest = two_trees()
    at_threshold = forest.predict_proba(np.array([0.5, 0.0]))
    # stump: left leaf (0.75, 0.25); deeper: x1=0 <= 10 -> x0=0.5 > -1 -> leaf (0.5, 0.5)
    np.testing.assert_allclose(at_threshold, [(0.75 + 0.5) / 2, (0.25 + 0.5) / 2])


def test_votes_are_normalised_per_tree_then_averaged() -> None:
    probabilities = two_trees().predict_proba(np.array([[1.0, 20.0], [-5.0, 0.0]]))
    np.testing.assert_allclose(probabilities[0], [(0.0 + 0.25) / 2, (1.0 + 0.75) / 2])
    np.testing.assert_allclose(probabilities[1], [(0.75 + 1.0) / 2, (0.25 + 0.0) / 2])
    assert two_trees().depth == 2


def test_round_trip_through_bytes() -> None:
    forest = two_trees()
    restored = Forest.from_bytes(forest.to_bytes())
    rows = np.random.default_rng(0).normal(0, 5, (50, 2))
    np.testing.assert_array_equal(forest.predict_proba(rows), restored.predict_proba(rows))


def test_categorical_splits_are_refused() -> None:
    bad = node(0, 1, 2)
    bad["split"]["numCategories"] = 3
    with pytest.raises(ValueError, match="categorical"):
        Forest.from_trees([[bad, node(1, stats=(1, 0)), node(2, stats=(0, 1))]])
