"""Fixtures for the orchestration tests.

- `airflow_db`: an AIRFLOW_HOME with a migrated SQLite DB, for DagBag and `dag.test()` in this process. Airflow
  reads its configuration when first imported, so test modules import airflow inside their tests only.
- `live_airflow`: ONE real `airflow standalone` for the session, on free ports, with its own PRONOSTICO_HOME
  (and so its own AIRFLOW_HOME), stopped by the finalizer.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from lambda_trigger.airflow_api import AirflowApi
from pronostico.core.config import PROJECT_ROOT, Settings, load_settings
from pronostico.local.stack import airflow, processes

AIRFLOW_BIN = str(Path(sys.executable).parent / "airflow")
DAGS_FOLDER = str(PROJECT_ROOT / "dags")
# Small enough to train one asset file in well under a minute; the model tests cover the real settings.
SMALL_TRAINING = json.dumps({"num_trees": 20, "max_depth": [5], "min_instances_per_node": [20], "folds": 2})


@pytest.fixture(scope="session")
def airflow_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("airflow-db")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW_HOME", str(home))
        patch.setenv("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
        patch.setenv("AIRFLOW__CORE__DAGS_FOLDER", DAGS_FOLDER)
        subprocess.run([AIRFLOW_BIN, "db", "migrate"], env=os.environ, check=True, capture_output=True, timeout=300)
        yield home


def parse_dag(monkeypatch: pytest.MonkeyPatch, home: Path, compute: str, **env: str) -> Any:
    """The DAG as Airflow parses it, with PRONOSTICO_COMPUTE (read at parse time) set to `compute`."""
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("PRONOSTICO_COMPUTE", compute)
    monkeypatch.setenv("PRONOSTICO_HOME", str(home))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    bag = DagBag(DAGS_FOLDER)
    assert bag.import_errors == {}, bag.import_errors
    return bag.dags["pronostico_retrain"]


@dataclass
class LiveAirflow:
    settings: Settings  # with the admin password standalone generated
    api: AirflowApi

    def run(self, run_id: str) -> dict[str, Any] | None:
        answer = self.api.request("GET", f"/api/v2/dags/{airflow.DAG_ID}/dagRuns/{run_id}")
        return answer.body if answer.status == 200 else None

    def runs(self) -> list[dict[str, Any]]:
        return self.api.request("GET", f"/api/v2/dags/{airflow.DAG_ID}/dagRuns", query={"limit": 100}).body[
            "dag_runs"]

    def task_states(self, run_id: str) -> dict[str, str]:
        body = self.api.request("GET", f"/api/v2/dags/{airflow.DAG_ID}/dagRuns/{run_id}/taskInstances").body
        return {t["task_id"]: t["state"] for t in body["task_instances"]}

    def wait_for_run(self, run_id: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        run = None
        while time.monotonic() < deadline:
            run = self.run(run_id)
            if run and run["state"] in ("success", "failed"):
                return run
            time.sleep(1.0)
        states = self.task_states(run_id) if run else "never created"
        pytest.fail(f"run {run_id} did not end within {timeout:.0f}s: {states}; see {self.settings.logs_dir}")

    def task_log(self, run_id: str, task_id: str, try_number: int = 1) -> str:
        body = self.api.request(
            "GET", f"/api/v2/dags/{airflow.DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}").body
        lines = []
        for entry in body.get("content", []):
            lines.append(str(entry.get("event", "")))
            lines += [str(detail.get("exc_value", "")) for detail in entry.get("error_detail") or []]
        return "\n".join(lines)


@pytest.fixture(scope="session")
def live_airflow(airflow_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveAirflow]:
    home = tmp_path_factory.mktemp("live-home")
    env = {**os.environ, "PRONOSTICO_HOME": str(home), "PRONOSTICO_COMPUTE": "local",
           "PRONOSTICO_AIRFLOW_URL": f"http://127.0.0.1:{processes.free_port()}",
           "PRONOSTICO_RETRAIN_SCHEDULE": "none",  # no scheduled run racing the tests' own
           "PRONOSTICO_TRAIN_PARAMS": SMALL_TRAINING,
           "PRONOSTICO_WATCH_SETTLE_SECONDS": "1.0", "PRONOSTICO_WATCH_POLL_SECONDS": "0.5"}
    settings = load_settings(env)
    try:
        airflow.start(settings, log_ports=(processes.free_port(), processes.free_port()))
        settings = load_settings(env)  # now holds the password standalone generated
        yield LiveAirflow(settings, airflow.api(settings))
    finally:
        airflow.stop(settings)
        processes.stop_all(settings.run_dir)
    assert not processes.port_open(airflow.port(settings))


class FlakyProxy:
    """A real HTTP hop in front of Airflow that answers 503 to the first `failures` requests, then forwards."""

    def __init__(self, target: str, failures: int) -> None:
        self.target, self.failures, self.seen = target.rstrip("/"), failures, 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                proxy.relay(self)

            do_POST = do_PATCH = do_GET

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def relay(self, request: BaseHTTPRequestHandler) -> None:
        self.seen += 1
        if self.seen <= self.failures:
            status, body = 503, b'{"detail": "injected by FlakyProxy"}'
        else:
            length = int(request.headers.get("Content-Length") or 0)
            forwarded = urllib.request.Request(
                self.target + request.path, data=request.rfile.read(length) if length else None,
                method=request.command, headers={k: v for k, v in request.headers.items() if k.lower() != "host"})
            try:
                with urllib.request.urlopen(forwarded, timeout=30) as answer:
                    status, body = answer.status, answer.read()
            except urllib.error.HTTPError as error:
                status, body = error.code, error.read()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def paused_dag(live_airflow: LiveAirflow) -> Iterator[LiveAirflow]:
    """The live DAG paused: runs the trigger tests create stay queued, and are deleted afterwards."""
    before = {run["dag_run_id"] for run in live_airflow.runs()}
    live_airflow.api.request("PATCH", f"/api/v2/dags/{airflow.DAG_ID}", {"is_paused": True})
    try:
        yield live_airflow
    finally:
        for run in live_airflow.runs():
            if run["dag_run_id"] not in before:
                live_airflow.api.request("DELETE", f"/api/v2/dags/{airflow.DAG_ID}/dagRuns/{run['dag_run_id']}")
        live_airflow.api.request("PATCH", f"/api/v2/dags/{airflow.DAG_ID}", {"is_paused": False})
