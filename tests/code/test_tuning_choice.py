"""Refit on upload, retune on schedule: when a run reuses the champion's tuned hyperparameters."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import pytest

from pronostico.core.usecases import get_use_case
from pronostico.pipeline.train import TrainConfig, choose_tuning

ASSETS = get_use_case("assets")
REPORT = {"files": [{"uri": "file:///raw/assets/SPY.csv", "schema": "bars"}]}


def champion(**changes: Any) -> dict[str, Any]:
    manifest = {"version": "v2", "run_id": "upload-2", "features": list(ASSETS.feature_names),
                "inputs": [{"uri": "file:///raw/assets/SPY.csv", "schema": "bars"}],
                "hyperparameters": {"max_depth": 9, "min_instances_per_node": 40, "num_trees": 60},
                "train_config": asdict(TrainConfig()),
                "tuning": {"path": "refit", "tuned_by": {"run_id": "weekly-1", "version": "v1"}}}
    return {**manifest, **changes}


def test_an_upload_refits_with_the_champions_parameters_and_names_the_run_that_tuned_them() -> None:
    tuning = choose_tuning(ASSETS, champion(), TrainConfig(), "auto", REPORT)
    assert tuning.path == "refit"
    assert tuning.params == {"max_depth": 9, "min_instances_per_node": 40}
    assert tuning.record("upload-3", "v3")["tuned_by"] == {"run_id": "weekly-1", "version": "v1"}


def test_a_champion_from_before_the_record_counts_as_tuned_by_its_own_run() -> None:
    tuning = choose_tuning(ASSETS, champion(tuning={"method": "CrossValidator"}), TrainConfig(), "auto", REPORT)
    assert tuning.path == "refit" and tuning.tuned_by == {"run_id": "upload-2", "version": "v2"}


def test_a_grid_run_records_itself_as_the_tuner() -> None:
    tuning = choose_tuning(ASSETS, None, TrainConfig(), "auto", REPORT)
    assert (tuning.path, tuning.reason) == ("grid", "no champion yet")
    assert tuning.record("first", "v1") == {"path": "grid", "reason": "no champion yet",
                                            "tuned_by": {"run_id": "first", "version": "v1"}}


@pytest.mark.parametrize(("manifest", "config", "requested", "reason"), [
    (champion(), TrainConfig(), "grid", "asked for"),
    (champion(features=["close"]), TrainConfig(), "auto", "the features changed"),
    (champion(inputs=[{"uri": "x", "schema": "other"}]), TrainConfig(), "auto", "the input schemas changed"),
    (champion(), TrainConfig(max_depth=(4, 12)), "auto", "the training settings changed since the champion: max_depth"),
    (champion(), TrainConfig(num_trees=20), "auto", "num_trees"),
    (champion(hyperparameters={}), TrainConfig(), "auto", "records no tuned hyperparameters"),
])
def test_the_grid_runs_when_asked_or_when_the_champions_choice_no_longer_applies(
        manifest: dict[str, Any], config: TrainConfig, requested: str, reason: str) -> None:
    tuning = choose_tuning(ASSETS, manifest, config, requested, REPORT)
    assert tuning.path == "grid" and reason in tuning.reason and not tuning.params


def test_a_setting_that_does_not_shape_the_forest_keeps_the_refit() -> None:
    assert choose_tuning(ASSETS, champion(), TrainConfig(backtest_cost_bps=25.0), "auto", REPORT).path == "refit"
