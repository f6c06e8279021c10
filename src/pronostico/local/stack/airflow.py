"""The local Airflow: `airflow standalone` as the `airflow` service, with the DAG (PRONOSTICO_DAG_ID) unpaused.

SQLite and the LocalExecutor under $PRONOSTICO_HOME/airflow, parallelism 2, the API server on the port of
PRONOSTICO_AIRFLOW_URL (8080 by default). Standalone writes the admin password to
$PRONOSTICO_HOME/airflow/simple_auth_manager_passwords.json.generated. It stops cleanly on SIGINT only, so the
service is launched through `python -m pronostico.local.stack.airflow standalone`, which makes sure SIGINT is not
ignored (a process started in the background inherits an ignored SIGINT, and Python then never sees it).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

from lambda_trigger.airflow_api import AirflowApi, AirflowUnavailable
from pronostico.core.config import PROJECT_ROOT, AirflowSettings, Settings, standalone_password
from pronostico.local.stack import processes

SERVICE = "airflow"
# The default DAG id, for callers that have no settings at hand; the stack itself uses settings.airflow.dag_id.
DAG_ID = AirflowSettings.dag_id
READY_SECONDS = 300.0
GRACEFUL_STOP_SECONDS = 45.0
DEMO_LOG_PORTS = (8793, 8794)  # Airflow's defaults for the worker and triggerer log servers
VENV_BIN = Path(sys.executable).parent


def port(settings: Settings) -> int:
    return urlparse(settings.airflow.url).port or 8080


def airflow_home(settings: Settings) -> Path:
    return settings.home / "airflow"


def password_file(settings: Settings) -> Path:
    return airflow_home(settings) / "simple_auth_manager_passwords.json.generated"


def airflow_env(settings: Settings, log_ports: tuple[int, int] = DEMO_LOG_PORTS) -> dict[str, str]:
    api_port = port(settings)
    return {
        "AIRFLOW_HOME": str(airflow_home(settings)),
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "2",  # two cores: one Spark job and one light task at a time
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{settings.airflow.username}:admin",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(log_ports[0]),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(log_ports[1]),
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # standalone runs `airflow <component>`
        "NO_COLOR": "1",
        **settings.environment(),  # the DAG file and its tasks load these settings in Airflow's own processes
    }


def airflow_service(settings: Settings, log_ports: tuple[int, int] = DEMO_LOG_PORTS) -> processes.Service:
    api_port = port(settings)
    return processes.Service(
        SERVICE, [sys.executable, "-m", "pronostico.local.stack.airflow", "standalone"],
        env=airflow_env(settings, log_ports), cwd=str(airflow_home(settings)), port=api_port,
        health_url=f"http://127.0.0.1:{api_port}/api/v2/monitor/health",
        stop_signal=signal.SIGINT, stop_timeout=15.0)


def api(settings: Settings) -> AirflowApi:
    """A REST client as the local admin (the password standalone generated, unless one is configured)."""
    password = settings.airflow.password or standalone_password(settings.home)
    return AirflowApi(f"http://127.0.0.1:{port(settings)}", settings.airflow.username, password,
                      settings.airflow.timeout_seconds)


def start(settings: Settings, timeout: float = READY_SECONDS,
          log_ports: tuple[int, int] = DEMO_LOG_PORTS) -> processes.Running:
    """Start Airflow unless it runs; return once its API answers and the DAG is parsed and unpaused."""
    return wait_until_ready(settings, launch(settings, log_ports), timeout, log_ports)


def launch(settings: Settings, log_ports: tuple[int, int] = DEMO_LOG_PORTS) -> processes.Running:
    """Start Airflow unless it runs, without waiting for it: its first start takes a minute, which the caller can
    spend starting other services (`wait_until_ready` then)."""
    if processes.read_running(settings.run_dir, SERVICE) is None and processes.port_open(port(settings)):
        raise processes.ServiceFailed(f"port {port(settings)} is taken by a program this stack did not start; "
                                      "stop it, or set PRONOSTICO_AIRFLOW_URL to another port")
    airflow_home(settings).mkdir(parents=True, exist_ok=True)
    return processes.start(airflow_service(settings, log_ports), settings.run_dir, settings.logs_dir)


def wait_until_ready(settings: Settings, running: processes.Running, timeout: float = READY_SECONDS,
                     log_ports: tuple[int, int] = DEMO_LOG_PORTS) -> processes.Running:
    """Return once Airflow's API answers and the DAG is parsed and unpaused."""
    deadline = time.monotonic() + timeout
    processes.wait_until_ready(airflow_service(settings, log_ports), running, timeout)
    wait_for_dag(settings, running, deadline)
    return running


def wait_for_dag(settings: Settings, running: processes.Running, deadline: float) -> None:
    """Wait until the DAG is registered without import errors and the scheduler is healthy; unpause the DAG."""
    client = api(settings)
    problem = "not parsed yet"
    while time.monotonic() < deadline:
        if not processes.group_alive(running.pgid):
            raise processes.ServiceFailed(f"airflow exited; see {running.log}:\n{processes.log_tail(running.log)}")
        try:
            problem = dag_problem(client, settings.airflow.dag_id)
        except AirflowUnavailable as error:
            problem = str(error)
        if not problem:
            return
        time.sleep(1.0)
    raise processes.ServiceFailed(f"the {settings.airflow.dag_id} DAG is not ready: {problem}; see {running.log}")


def dag_problem(client: AirflowApi, dag_id: str) -> str:
    """Why the DAG cannot take runs yet ('' once it can); unpauses it if it is paused."""
    health = client.request("GET", "/api/v2/monitor/health").body or {}
    if (health.get("scheduler") or {}).get("status") != "healthy":
        return "the scheduler is not healthy yet"
    errors = client.request("GET", "/api/v2/importErrors").body or {}
    for error in errors.get("import_errors", []):
        if "pronostico_retrain" in str(error.get("filename", "")):
            raise processes.ServiceFailed(f"the DAG does not import:\n{error.get('stack_trace')}")
    dag = client.request("GET", f"/api/v2/dags/{dag_id}")
    if dag.status == 404:
        return "not parsed yet"
    if dag.body.get("is_paused"):
        client.request("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
        return "was paused; unpaused it"
    return ""


def stop(settings: Settings, timeout: float = GRACEFUL_STOP_SECONDS) -> bool:
    """SIGINT to standalone itself, which stops its components in turn; then the group, if anything is left.

    A SIGINT to the whole group at once reaches the scheduler while standalone is also stopping it, and the
    scheduler then hangs joining its LocalExecutor workers (which ignore SIGINT) until it is killed.
    """
    running = processes.read_running(settings.run_dir, SERVICE)
    if running is None:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(running.pid, signal.SIGINT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and processes.read_running(settings.run_dir, SERVICE) is not None:
        time.sleep(0.5)
    processes.stop(settings.run_dir, SERVICE)  # whatever outlived standalone: SIGINT, then SIGKILL
    return True


def run_standalone() -> None:
    """Become `airflow standalone`, with SIGINT back to its default so that standalone can catch it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    airflow = str(VENV_BIN / "airflow")
    os.execv(airflow, [airflow, "standalone"])


if __name__ == "__main__":
    if sys.argv[1:] != ["standalone"]:
        sys.exit("usage: python -m pronostico.local.stack.airflow standalone")
    run_standalone()
