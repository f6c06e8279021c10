"""Synthetic demo data never mixes into a model trained on a user's own files (no Spark, no Airflow)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from pronostico.core import layout, storage
from pronostico.core.config import Settings
from pronostico.orchestration.tasks import plan_retrain
from pronostico.pipeline.convert import training_inputs
from pronostico.pipeline.steps import quarantine_uri

OHLCV = "date,symbol,open,high,low,close,volume\n2024-01-02,{symbol},1,2,0.5,1.5,100\n"


def put(settings: Settings, key: str, tmp_path: Path) -> str:
    """Upload a small valid assets CSV under `key` in the raw bucket; its URI as list_objects gives it."""
    source = tmp_path / key.replace("/", "_")
    source.write_text(OHLCV.format(symbol=Path(key).stem))
    storage.upload_file(source, storage.join(settings.raw_uri, key))
    return (storage.local_path(settings.raw_uri) / key).as_uri()


def names(settings: Settings) -> list[str]:
    objects = training_inputs(settings.raw_uri, quarantine_uri(settings, "assets"), "assets")
    return [info.key.split("/assets/", 1)[1] for info in objects]


def event(settings: Settings, key: str) -> dict[str, str]:
    return {"use_case": "assets", "bucket": storage.local_path(settings.raw_uri).name, "key": key}


def test_synthetic_files_alone_are_the_training_inputs(settings: Settings, tmp_path: Path) -> None:
    put(settings, "assets/synthetic/ORBT-USD.csv", tmp_path)
    put(settings, "assets/synthetic/ORBT-USD.drop2.csv", tmp_path)
    assert names(settings) == ["synthetic/ORBT-USD.csv", "synthetic/ORBT-USD.drop2.csv"]


def test_a_real_file_leaves_the_synthetic_ones_out(settings: Settings, tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    put(settings, "assets/synthetic/ORBT-USD.csv", tmp_path)
    put(settings, "assets/SPY.csv", tmp_path)
    with caplog.at_level(logging.INFO, logger="pronostico.pipeline.convert"):
        assert names(settings) == ["SPY.csv"]
    assert "leaving out 1 synthetic demo file(s) because real data is there: ORBT-USD.csv" in caplog.text


def test_a_synthetic_upload_after_real_data_plans_no_run(settings: Settings, tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    put(settings, "assets/SPY.csv", tmp_path)
    trigger = put(settings, "assets/synthetic/ORBT-USD.drop2.csv", tmp_path)
    assert layout.is_synthetic(settings.raw_uri, "assets", trigger)
    with caplog.at_level(logging.INFO, logger="pronostico.orchestration.tasks"):
        assert plan_retrain(settings, event(settings, "assets/synthetic/ORBT-USD.drop2.csv"), "run-1") == []
    assert "is synthetic demo data, left out because assets has real data: nothing to run" in caplog.text


def test_a_real_upload_after_synthetic_data_trains_on_the_real_file_only(settings: Settings, tmp_path: Path) -> None:
    put(settings, "assets/synthetic/ORBT-USD.csv", tmp_path)
    real = put(settings, "assets/SPY.csv", tmp_path)
    [plan] = plan_retrain(settings, event(settings, "assets/SPY.csv"), "run-2")
    assert plan.input_uris == (real,) and plan.trigger_uri == real


def test_a_synthetic_upload_alone_plans_a_run_on_the_synthetic_files(settings: Settings, tmp_path: Path) -> None:
    first = put(settings, "assets/synthetic/ORBT-USD.csv", tmp_path)
    second = put(settings, "assets/synthetic/LMNA-USD.csv", tmp_path)
    [plan] = plan_retrain(settings, event(settings, "assets/synthetic/ORBT-USD.csv"), "run-3")
    assert set(plan.input_uris) == {first, second}
