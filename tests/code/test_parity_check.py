"""The training job's parity check pairs Spark's holdout probabilities with the served forest's by row key.

A lost executor recomputes partitions, so Spark may return the holdout in another order than the first evaluation
of the same frame: the check must still pass on a good model, and must still fail on a wrong probability.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pronostico.core.forest import Forest
from pronostico.core.usecases import get_use_case
from pronostico.pipeline.train import check_parity, row_key

MATCHUPS = get_use_case("matchups")
ASSETS = get_use_case("assets")


def node(node_id: int, left: int = -1, right: int = -1, feature: int = 0, threshold: float = 0.0,
         stats: tuple[float, ...] = (0.0, 0.0, 0.0)) -> dict:
    return {"id": node_id, "leftChild": left, "rightChild": right, "impurityStats": list(stats),
            "split": {"featureIndex": feature, "leftCategoriesOrThreshold": [threshold], "numCategories": -1}}


def forest() -> Forest:
    """Two trees over the first two features, so that nearly every row gets its own probabilities."""
    first = [node(0, 1, 2, feature=0, threshold=0.0), node(1, stats=(5, 3, 2)), node(2, stats=(1, 2, 7))]
    second = [node(0, 1, 2, feature=1, threshold=0.3), node(1, stats=(2, 2, 6)), node(2, stats=(8, 1, 1))]
    return Forest.from_trees([first, second])


def matchup_holdout() -> pd.DataFrame:
    """Holdout rows as training keeps them: a neutral match also appears as its mirrored twin, on the same date."""
    rng = np.random.default_rng(3)
    keys = [("2024-03-01", "Brazil", "Argentina", 0), ("2024-03-01", "Argentina", "Brazil", 1),
            ("2024-03-02", "Spain", "Italy", 0), ("2024-03-03", "Ghana", "Mali", 0),
            ("2024-03-03", "Mali", "Ghana", 1), ("2024-03-04", "Japan", "Peru", 0)]
    frame = pd.DataFrame(keys, columns=["date", "home_team", "away_team", "mirror"])
    for name in MATCHUPS.feature_names:
        frame[name] = rng.normal(0.0, 1.0, len(frame))
    return frame


def spark_scores(holdout: pd.DataFrame, use_case: object, order: np.ndarray) -> pd.DataFrame:
    """What tune_and_fit hands over: each row's key and Spark's probability vector, in Spark's order."""
    probabilities = forest().predict_proba(holdout[list(use_case.feature_names)].to_numpy())
    scored = holdout[row_key(use_case)].assign(p=list(probabilities))
    return scored.iloc[order].reset_index(drop=True)


def test_the_row_key_names_a_mirrored_twin_apart_from_its_match() -> None:
    assert row_key(MATCHUPS) == ["date", "home_team", "away_team", "mirror"]
    assert row_key(ASSETS) == ["symbol", "date"]
    assert not matchup_holdout()[row_key(MATCHUPS)].duplicated().any()


def test_spark_rows_in_another_order_still_pass() -> None:
    holdout = matchup_holdout()
    shuffled = spark_scores(holdout, MATCHUPS, np.array([4, 2, 0, 5, 1, 3]))
    check_parity(forest(), shuffled, holdout, MATCHUPS)


def test_a_different_probability_still_fails() -> None:
    holdout = matchup_holdout()
    shuffled = spark_scores(holdout, MATCHUPS, np.array([4, 2, 0, 5, 1, 3]))
    shuffled.at[3, "p"] = shuffled.at[3, "p"] + np.array([1e-6, -1e-6, 0.0])
    with pytest.raises(RuntimeError, match="differs from Spark by 1e-06"):
        check_parity(forest(), shuffled, holdout, MATCHUPS)


def test_a_difference_within_the_tolerance_passes() -> None:
    holdout = matchup_holdout()
    scored = spark_scores(holdout, MATCHUPS, np.arange(len(holdout)))
    scored["p"] = [p + np.array([1e-10, -1e-10, 0.0]) for p in scored["p"]]
    check_parity(forest(), scored, holdout, MATCHUPS)


@pytest.mark.parametrize("change", ["missing", "duplicated", "stranger"])
def test_spark_scoring_other_rows_fails(change: str) -> None:
    holdout = matchup_holdout()
    scored = spark_scores(holdout, MATCHUPS, np.arange(len(holdout)))
    if change == "missing":
        scored = scored.iloc[1:]
    elif change == "duplicated":
        scored = pd.concat([scored.iloc[1:], scored.iloc[[1]]])
    else:
        scored.at[2, "home_team"] = "Narnia"
    with pytest.raises(RuntimeError, match="holdout rows"):
        check_parity(forest(), scored, holdout, MATCHUPS)


def test_asset_rows_pair_on_symbol_and_date() -> None:
    rng = np.random.default_rng(5)
    holdout = pd.DataFrame({"symbol": ["SPY", "SPY", "NVDA", "NVDA"],
                            "date": ["2024-01-02", "2024-01-03", "2024-01-02", "2024-01-03"]})
    for name in ASSETS.feature_names:
        holdout[name] = rng.normal(0.0, 1.0, len(holdout))
    check_parity(forest(), spark_scores(holdout, ASSETS, np.array([3, 1, 2, 0])), holdout, ASSETS)
