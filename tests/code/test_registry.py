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
                 training_end: str = "2024-12-31", rows: pd.DataFrame | None = None, seen_until: str = "",
                 as_of: str = "", features: list[str] | None = None) -> str:
    """A complete version whose run saw rows up to `seen_until` and whose entity state is as of `as_of`."""
    uri = version_uri(settings.models_uri, USE_CASE, version)
    seen_until = seen_until or training_end
    storage.write_bytes(storage.join(uri, "forest.npz"), constant_forest(probabilities).to_bytes())
    storage.write_json(storage.join(uri, "features.json"), features or list(FEATURES))
    storage.write_json(storage.join(uri, "entities.json"), {"as_of": as_of or seen_until, "symbols": {}})
    storage.write_json(storage.join(uri, "metrics.json"), {"model": {"log_loss": 1.0}, "baselines": {},
                                                           "versus_baselines": {}})
    buffer = io.BytesIO()
    (holdout() if rows is None else rows).to_parquet(buffer, index=False)
    storage.write_bytes(storage.join(uri, "holdout.parquet"), buffer.getvalue())
    storage.write_json(storage.join(uri, "manifest.json"), {
        "version": version, "created_at": "2025-01-01T00:00:00+00:00", "run_id": f"run-{version}",
        "training_range": {"start": "2020-01-01", "end": training_end},
        "holdout_range": {"start": training_end, "end": seen_until},
        "entities": {"as_of": as_of or seen_until, "count": 0}, "features": features or list(FEATURES)})
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


def test_a_worse_candidate_keeps_the_champions_forest_and_lends_it_its_newer_state(settings: Settings) -> None:
    make_version(settings, "v1", GOOD, seen_until="2025-03-01")
    registry.promote_candidate(settings.models_uri, USE_CASE, "v1")
    make_version(settings, "v2", WORSE, seen_until="2025-07-01")
    decision = registry.promote_candidate(settings.models_uri, USE_CASE, "v2")
    assert not decision.promoted and "worse than" in decision.reason
    assert decision.state_version == "v2" and "2025-07-01" in decision.state_reason
    current = registry.read_current(settings.models_uri, USE_CASE)
    assert (current["version"], current["state_version"], current["previous_version"]) == ("v1", "v2", None)
    recorded = storage.read_json(storage.join(version_uri(settings.models_uri, USE_CASE, "v2"), "promotion.json"))
    assert recorded["promoted"] is False and recorded["state_version"] == "v2"
    listed = {v["version"]: (v["current"], v["serving_state"])
              for v in registry.list_versions(settings.models_uri, USE_CASE)}
    assert listed == {"v1": (True, False), "v2": (False, True)}


def test_the_champion_serves_its_forest_with_the_lent_state(settings: Settings) -> None:
    from pronostico.core.serving import load_current

    make_version(settings, "v1", GOOD, seen_until="2025-03-01")
    registry.promote_candidate(settings.models_uri, USE_CASE, "v1")
    make_version(settings, "v2", WORSE, seen_until="2025-07-01")
    registry.promote_candidate(settings.models_uri, USE_CASE, "v2")
    served = load_current(settings.models_uri, USE_CASE)
    assert (served.version, served.state_version, served.state_as_of) == ("v1", "v2", "2025-07-01")
    assert served.snapshot.as_of == "2025-07-01"


def test_an_older_state_or_one_built_another_way_is_not_lent(settings: Settings) -> None:
    make_version(settings, "v1", GOOD, seen_until="2025-03-01")
    registry.promote_candidate(settings.models_uri, USE_CASE, "v1")
    before = storage.read_bytes(registry.current_uri(settings.models_uri, USE_CASE))
    make_version(settings, "v2", WORSE, seen_until="2025-01-01")
    older = registry.promote_candidate(settings.models_uri, USE_CASE, "v2")
    make_version(settings, "v3", WORSE, seen_until="2025-09-01", features=[*FEATURES[:-1], "other"],
                 rows=holdout().assign(other=0.0))
    other = registry.promote_candidate(settings.models_uri, USE_CASE, "v3")
    assert (older.state_version, other.state_version) == ("v1", "v1")
    assert "before the serving state" in older.state_reason and "other features" in other.state_reason
    assert storage.read_bytes(registry.current_uri(settings.models_uri, USE_CASE)) == before


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


def test_the_ranked_probability_score_by_hand() -> None:
    from pronostico.core.evaluate import ranked_probability_score

    probabilities = np.array([[0.6, 0.3, 0.1], [0.2, 0.3, 0.5]])
    # row 1, observed class 0: ((0.6-1)^2 + (0.9-1)^2) / 2; row 2, observed class 1: ((0.2-0)^2 + (0.5-1)^2) / 2
    expected = ((0.16 + 0.01) / 2 + (0.04 + 0.25) / 2) / 2
    assert ranked_probability_score(np.array([0, 1]), probabilities) == pytest.approx(expected)
    assert ranked_probability_score(np.array([2]), np.array([[0.0, 0.0, 1.0]])) == 0.0


def feature_rows(n: int, start: str) -> pd.DataFrame:
    rows = holdout(n=n, start=start)
    rows["prev_label"] = 2.0
    rows["next_return"] = 0.01
    return rows


def test_the_champion_is_scored_on_rows_newer_than_anything_it_saw(settings: Settings) -> None:
    from pronostico.core.usecases import get_use_case

    make_version(settings, "v1", GOOD, seen_until="2025-03-31")
    registry.promote_candidate(settings.models_uri, USE_CASE, "v1")
    frame = feature_rows(300, "2025-01-01")  # 90 rows up to 2025-03-31, then 210 it never saw
    evaluation = registry.evaluate_champion(settings.models_uri, get_use_case(USE_CASE), frame, "run-2")
    assert evaluation["status"] == "scored" and evaluation["model_version"] == "v1"
    assert evaluation["rows"] == 210
    assert evaluation["window"] == {"after": "2025-03-31", "start": "2025-04-01", "end": "2025-10-27"}
    expected = -(np.log(0.75) * 158 + np.log(0.25) * 52) / 210  # the constant forest on the window's labels
    assert evaluation["model"]["log_loss"] == pytest.approx(expected)
    assert set(evaluation["baselines"]) == {"most_frequent_class", "same_as_last_bar"}
    assert evaluation["best_baseline"] in evaluation["baselines"]
    assert evaluation["backtest"]["bars"] == 210  # assets carry the window's backtest
    stored = registry.list_evaluations(settings.models_uri, USE_CASE)
    assert [e["run_id"] for e in stored] == ["run-2"] and stored[0]["rows"] == 210


def test_a_window_smaller_than_the_gates_minimum_is_recorded_unscored(settings: Settings) -> None:
    from pronostico.core.evaluate import MIN_FAIR_ROWS
    from pronostico.core.usecases import get_use_case

    make_version(settings, "v1", GOOD, seen_until="2025-03-31")
    registry.promote_candidate(settings.models_uri, USE_CASE, "v1")
    frame = feature_rows(90 + MIN_FAIR_ROWS - 1, "2025-01-01")
    evaluation = registry.evaluate_champion(settings.models_uri, get_use_case(USE_CASE), frame, "run-2")
    assert evaluation["status"] == "too_small" and evaluation["rows"] == MIN_FAIR_ROWS - 1
    assert "model" not in evaluation and str(MIN_FAIR_ROWS) in evaluation["reason"]
    assert registry.latest_evaluation(settings.models_uri, USE_CASE)["status"] == "too_small"


def test_earlier_versions_are_scored_on_the_windows_after_them(settings: Settings) -> None:
    from pronostico.core.usecases import get_use_case

    make_version(settings, "v1", WORSE, seen_until="2025-02-28")
    make_version(settings, "v2", GOOD, seen_until="2025-03-31")
    registry.promote_candidate(settings.models_uri, USE_CASE, "v2")
    frame = feature_rows(300, "2025-01-01")
    evaluation = registry.evaluate_champion(settings.models_uri, get_use_case(USE_CASE), frame, "run-3")
    (earlier,) = evaluation["earlier_versions"]
    assert (earlier["model_version"], earlier["rows"], earlier["status"]) == ("v1", 241, "scored")
    assert earlier["log_loss"] == pytest.approx(np.log(2))  # 0.5 on the observed class, every row


def test_no_champion_means_no_evaluation(settings: Settings) -> None:
    from pronostico.core.usecases import get_use_case

    assert registry.evaluate_champion(settings.models_uri, get_use_case(USE_CASE), feature_rows(100, "2025-01-01"),
                                      "run-1") is None
    assert registry.list_evaluations(settings.models_uri, USE_CASE) == []
