"""The registry and its promotion gate, on hand-made versions with constant forests."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from pronostico.core import registry, storage
from pronostico.core.config import Settings
from pronostico.core.forest import Forest
from pronostico.core.layout import version_uri
from pronostico.core.usecases.assets import FEATURES

USE_CASE = "assets"


def constant_forest(probabilities: tuple[float, float, float]) -> Forest:
    leaf = {"id": 0, "leftChild": -1, "rightChild": -1, "impurityStats": [p * 100 for p in probabilities],
            "split": {"featureIndex": -1, "leftCategoriesOrThreshold": [], "numCategories": -1}}
    return Forest.from_trees([[leaf]])


def holdout(n: int = 200, start: str = "2025-01-01") -> pd.DataFrame:
    frame = pd.DataFrame(0.0, index=range(n), columns=list(FEATURES))
    frame["date"] = pd.date_range(start, periods=n).strftime("%Y-%m-%d")
    frame["label"] = [2 if i % 4 else 0 for i in range(n)]  # 75 % buy, 25 % sell
    frame["symbol"] = "AAA"
    return frame


def make_version(settings: Settings, version: str, probabilities: tuple[float, float, float],
                 training_end: str = "2024-12-31", rows: pd.DataFrame | None = None) -> str:
    uri = version_uri(settings.models_uri, USE_CASE, version)
    storage.write_bytes(storage.join(uri, "forest.npz"), constant_forest(probabilities).to_bytes())
    storage.write_json(storage.join(uri, "features.json"), list(FEATURES))
    storage.write_json(storage.join(uri, "metrics.json"), {"model": {"log_loss": 1.0}, "baselines": {},
                                                           "versus_baselines": {}})
    buffer = io.BytesIO()
    (holdout() if rows is None else rows).to_parquet(buffer, index=False)
    storage.write_bytes(storage.join(uri, "holdout.parquet"), buffer.getvalue())
    storage.write_json(storage.join(uri, "manifest.json"), {
        "version": version, "created_at": "2025-01-01T00:00:00+00:00", "run_id": f"run-{version}",
        "training_range": {"start": "2020-01-01", "end": training_end}})
    return version


GOOD, WORSE = (0.25, 0.0, 0.75), (0.5, 0.0, 0.5)


def test_the_first_candidate_is_promoted(settings: Settings) -> None:
    make_version(settings, "v1", WORSE)
    decision = registry.promote_candidate(settings.models_uri, USE_CASE, "v1")
    assert decision.promoted and decision.reason == "no champion yet"
    assert registry.read_current(settings.models_uri, USE_CASE)["version"] == "v1"


def test_a_better_candidate_replaces_the_champion(settings: Settings) -> None:
    make_version(settings, "v1", WORSE)
    registry.promote_candidate(settings.models_uri, USE_CASE, "v1")
    make_version(settings, "v2", GOOD)
    decision = registry.promote_candidate(settings.models_uri, USE_CASE, "v2")
    assert decision.promoted and decision.rows_compared == 200
    assert decision.candidate_log_loss < decision.champion_log_loss
    current = registry.read_current(settings.models_uri, USE_CASE)
    assert (current["version"], current["previous_version"]) == ("v2", "v1")


def test_a_worse_candidate_leaves_current_json_untouched(settings: Settings) -> None:
    make_version(settings, "v1", GOOD)
    registry.promote_candidate(settings.models_uri, USE_CASE, "v1")
    before = storage.read_bytes(registry.current_uri(settings.models_uri, USE_CASE))
    make_version(settings, "v2", WORSE)
    decision = registry.promote_candidate(settings.models_uri, USE_CASE, "v2")
    assert not decision.promoted and "worse than" in decision.reason
    assert storage.read_bytes(registry.current_uri(settings.models_uri, USE_CASE)) == before
    recorded = storage.read_json(storage.join(version_uri(settings.models_uri, USE_CASE, "v2"), "promotion.json"))
    assert recorded["promoted"] is False


def test_an_equal_candidate_is_not_worse(settings: Settings) -> None:
    make_version(settings, "v1", GOOD)
    registry.promote_candidate(settings.models_uri, USE_CASE, "v1")
    make_version(settings, "v2", GOOD)
    assert registry.promote_candidate(settings.models_uri, USE_CASE, "v2").promoted


def test_the_champion_is_judged_only_on_rows_it_did_not_learn(settings: Settings) -> None:
    make_version(settings, "v1", WORSE, training_end="2025-06-01")  # saw most of v2's holdout
    registry.promote_candidate(settings.models_uri, USE_CASE, "v1")
    make_version(settings, "v2", GOOD, rows=holdout(n=150))
    decision = registry.promote_candidate(settings.models_uri, USE_CASE, "v2")
    assert not decision.promoted and "no fair comparison" in decision.reason


def test_versions_list_in_order_and_mark_the_current_one(settings: Settings) -> None:
    for name in ("v2", "v1"):
        make_version(settings, name, GOOD)
    storage.write_json(storage.join(version_uri(settings.models_uri, USE_CASE, "v3"), "metrics.json"), {})
    registry.promote_candidate(settings.models_uri, USE_CASE, "v1")
    listed = registry.list_versions(settings.models_uri, USE_CASE)
    assert [(v["version"], v["current"]) for v in listed] == [("v1", True), ("v2", False)]  # v3 is incomplete
    assert registry.version_for_run(settings.models_uri, USE_CASE, "run-v2") == "v2"


def test_rollback_points_back_and_refuses_unknown_versions(settings: Settings) -> None:
    make_version(settings, "v1", WORSE)
    registry.promote_candidate(settings.models_uri, USE_CASE, "v1")
    make_version(settings, "v2", GOOD)
    registry.promote_candidate(settings.models_uri, USE_CASE, "v2")
    registry.rollback(settings.models_uri, USE_CASE, "v1")
    current = registry.read_current(settings.models_uri, USE_CASE)
    assert (current["version"], current["reason"]) == ("v1", "rollback")
    with pytest.raises(FileNotFoundError):
        registry.rollback(settings.models_uri, USE_CASE, "v9")


def test_log_loss_of_the_constant_forests_is_what_the_gate_compares() -> None:
    labels = holdout()["label"].to_numpy()
    good = constant_forest(GOOD).predict_proba(np.zeros((len(labels), len(FEATURES))))
    expected = -(0.75 * np.log(0.75) + 0.25 * np.log(0.25))
    from pronostico.core.evaluate import log_loss

    assert log_loss(labels, good) == pytest.approx(expected)
