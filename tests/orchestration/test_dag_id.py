"""PRONOSTICO_DAG_ID names the one DAG: the DAG file declares it, and the trigger and the local stack start it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pronostico.core.config import load_settings
from pronostico.local import demo
from pronostico.local.stack import airflow
from tests.orchestration.conftest import DAGS_FOLDER


def test_the_dag_file_takes_its_id_from_the_settings(airflow_db: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("PRONOSTICO_HOME", str(tmp_path))
    monkeypatch.setenv("PRONOSTICO_COMPUTE", "local")
    monkeypatch.setenv("PRONOSTICO_DAG_ID", "other")
    bag = DagBag(DAGS_FOLDER)
    assert bag.import_errors == {}, bag.import_errors
    assert set(bag.dag_ids) == {"other"}


class Recorder:
    """An Airflow REST client that answers every request alike and remembers the paths asked for."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.body, self.paths = body, []

    def request(self, method: str, path: str, body: Any = None, **_: Any) -> Any:
        self.paths.append(path)
        return type("Answer", (), {"status": 200, "body": self.body})()


def test_the_local_stack_waits_for_and_follows_the_configured_dag(tmp_path: Path) -> None:
    settings = load_settings({"PRONOSTICO_HOME": str(tmp_path), "PRONOSTICO_DAG_ID": "other"})
    client = Recorder({"scheduler": {"status": "healthy"}, "import_errors": [], "is_paused": False})
    assert airflow.dag_problem(client, settings.airflow.dag_id) == ""
    running = Recorder({"state": "running", "task_instances": [{"task_id": "train_model", "state": "running"}]})
    assert demo.run_state(running, settings.airflow.dag_id, "run-1") == "running: train_model"
    dag_paths = [path for path in client.paths + running.paths if path.startswith("/api/v2/dags/")]
    assert dag_paths and all(path.startswith("/api/v2/dags/other") for path in dag_paths), dag_paths
