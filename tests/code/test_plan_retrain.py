"""What a run plans: one training per set of inputs, and the grid only when asked for (no Spark, no Airflow)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pronostico.core import layout, storage
from pronostico.core.config import Settings
from pronostico.orchestration.tasks import RunRejected, plan_retrain
from pronostico.pipeline.steps import pipeline_steps
from tests.code.test_synthetic_inputs import event, put


def trained_version(settings: Settings, version: str, inputs: list[str], promoted: bool) -> None:
    """A complete version whose manifest names these raw objects as its inputs; current.json points at it if
    promoted."""
    manifest = {"version": version, "run_id": f"run-{version}",
                "inputs": [{"uri": uri, "etag": storage.stat(uri).etag} for uri in inputs]}
    storage.write_json(layout.version_file(settings.models_uri, "assets", version, layout.MANIFEST), manifest)
    if promoted:
        storage.write_json(layout.current_uri(settings.models_uri, "assets"), {"version": version})


@pytest.mark.parametrize("promoted", [True, False])
def test_an_upload_of_inputs_a_version_was_trained_on_plans_nothing(settings: Settings, tmp_path: Path,
                                                                    promoted: bool) -> None:
    """Six files uploaded together are six events: the first run trains on all six, whether the gate promotes
    its model or not, and the five after it have nothing new to train on."""
    uris = [put(settings, f"assets/{symbol}.csv", tmp_path) for symbol in ("SPY", "AAPL")]
    trained_version(settings, "20260101T000000Z-aaaaaa", uris, promoted)
    assert plan_retrain(settings, event(settings, "assets/AAPL.csv"), "run-2") == []
    assert len(plan_retrain(settings, {**event(settings, "assets/AAPL.csv"), "force": True}, "run-3")) == 1


def test_an_upload_of_new_inputs_plans_a_refit_and_retune_asks_for_the_grid(settings: Settings,
                                                                            tmp_path: Path) -> None:
    spy = put(settings, "assets/SPY.csv", tmp_path)
    trained_version(settings, "20260101T000000Z-aaaaaa", [spy], promoted=True)
    put(settings, "assets/AAPL.csv", tmp_path)
    [upload] = plan_retrain(settings, event(settings, "assets/AAPL.csv"), "run-2")
    [asked] = plan_retrain(settings, {**event(settings, "assets/AAPL.csv"), "retune": True}, "run-3")
    [weekly] = plan_retrain(settings, {}, "scheduled__2026-01-04", scheduled=True)
    assert (upload.retune, asked.retune, weekly.retune) == (False, True, True)
    train_args = [pipeline_steps(settings, "assets", p.input_uris, "r", p.train_params, p.retune)[-1].args
                  for p in (upload, asked)]
    assert "--tuning" not in train_args[0] and train_args[1][-2:] == ("--tuning", "grid")


def test_a_retune_that_is_not_a_boolean_is_refused(settings: Settings, tmp_path: Path) -> None:
    put(settings, "assets/SPY.csv", tmp_path)
    with pytest.raises(RunRejected, match="retune must be true or false"):
        plan_retrain(settings, {**event(settings, "assets/SPY.csv"), "retune": "yes"}, "run-1")
