"""End to end on one machine: a plain copy into the local raw bucket retrains and promotes a model.

The path is the production one with the local stand-ins: the file lands in the raw bucket of the live Airflow's
PRONOSTICO_HOME, the real watcher service turns it into an S3 event, the real Lambda handler triggers the DAG over
Airflow's REST API, the DAG runs the Spark steps through spark-submit on that file, and the promotion writes
current.json, which the serving core then loads.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lambda_trigger.events import dag_run_id
from pronostico.core import storage
from pronostico.core.registry import current_uri, read_current
from pronostico.core.serving import load_current
from pronostico.local.stack import processes, watcher
from tests.orchestration.conftest import LiveAirflow

pytestmark = [pytest.mark.spark, pytest.mark.slow]
RUN_TIMEOUT = 240.0


@pytest.fixture(scope="module")
def watched(live_airflow: LiveAirflow) -> Iterator[LiveAirflow]:
    """The real watcher service on the live Airflow's home, stopped afterwards."""
    watcher.start(live_airflow.settings)
    try:
        yield live_airflow
    finally:
        processes.stop(live_airflow.settings.run_dir, watcher.SERVICE)


def copy_into_raw(live: LiveAirflow, source: Path, key: str) -> str:
    """A plain copy, as a person would; returns the DAG run id the S3 event for it asks for."""
    target = storage.local_path(live.settings.raw_uri) / key
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(source, target)
    return dag_run_id(key.split("/")[0], target.parent.parent.name, key, storage.file_md5(target))


def wait_for_trigger(live: LiveAirflow, run_id: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while live.run(run_id) is None:
        if time.monotonic() > deadline:
            log = processes.log_tail(str(live.settings.logs_dir / "watcher.log"))
            pytest.fail(f"the watcher never triggered {run_id}:\n{log}")
        time.sleep(0.5)


def test_a_copied_file_is_trained_on_and_promoted(watched: LiveAirflow, shared_data: Path) -> None:
    source = shared_data / "assets" / "SPY.csv"
    run_id = copy_into_raw(watched, source, "assets/SPY.csv")
    wait_for_trigger(watched, run_id)
    run = watched.wait_for_run(run_id, RUN_TIMEOUT)
    assert run["state"] == "success", watched.task_states(run_id)
    assert run["conf"]["key"] == "assets/SPY.csv" and run["conf"]["source"] == "s3-event"
    assert watched.task_states(run_id) == {"plan_retrain": "success", "spark_steps": "success", "promote": "success"}

    models = watched.settings.models_uri
    current = read_current(models, "assets")
    assert current is not None
    model = load_current(models, "assets")
    assert model.version == current["version"]
    assert model.manifest["run_id"] == run_id
    assert [Path(storage.local_path(i["uri"])).name for i in model.manifest["inputs"]] == ["SPY.csv"]
    assert model.manifest["inputs"][0]["etag"] == storage.file_md5(source)
    answer = model.predict({"symbol": "SPY"})
    assert answer["model_version"] == current["version"] and answer["signal"] in ("sell", "hold", "buy")
    assert abs(sum(answer["probabilities"].values()) - 1.0) < 1e-9


def test_a_malformed_upload_fails_at_validation_and_is_quarantined(watched: LiveAirflow, tmp_path: Path) -> None:
    current = Path(storage.local_path(current_uri(watched.settings.models_uri, "assets")))
    before = current.read_bytes() if current.exists() else None
    bad = tmp_path / "renamed.csv"
    bad.write_text("day,ticker,o,h,l,c,v\n2024-01-02,SPY,1,2,0.5,1.5,100\n")
    run_id = copy_into_raw(watched, bad, "assets/renamed.csv")
    wait_for_trigger(watched, run_id)
    run = watched.wait_for_run(run_id, RUN_TIMEOUT)

    assert run["state"] == "failed"
    states = watched.task_states(run_id)
    assert states["plan_retrain"] == "failed"
    assert {states[t] for t in ("spark_steps", "promote")} == {"upstream_failed"}
    assert "wrong header" in watched.task_log(run_id, "plan_retrain")
    quarantine = storage.local_path(storage.join(watched.settings.processed_uri, "quarantine", "assets",
                                              storage.safe_name(run_id)))
    assert (quarantine / "files" / "renamed.csv").read_bytes() == bad.read_bytes()
    assert "wrong header" in (quarantine / "reasons.json").read_text()
    assert (current.read_bytes() if current.exists() else None) == before
