"""Freshness: from an upload to the raw bucket to the new model answering through nginx, with the stack already up.

Airflow standalone, the web tier and the watcher start on a private PRONOSTICO_HOME and free ports (so a running
`make demo` is not disturbed), with the default training settings. Then the real SPY.csv is uploaded three times,
with different content each time (the last 40, 20 and 0 bars left out) so that each upload is a new object version
and starts a run. Each measurement starts with no assets champion (current.json removed; the web keeps serving the
model it has), so the promotion gate promotes: the gate's own decision is tested in tests/code/test_registry.py.

    python -m benchmarks freshness          (make bench ONLY=freshness)
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import tempfile
import time
import urllib.request
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks.models import private_web_ports
from benchmarks.report import markdown_table
from lambda_trigger.events import dag_run_id
from pronostico.core import storage
from pronostico.core.config import Settings, load_settings
from pronostico.core.registry import current_uri, read_current
from pronostico.local.stack import airflow, processes, watcher

USE_CASE, KEY = "assets", "assets/SPY.csv"
LEFT_OUT = (40, 20, 0)  # bars left out of each upload: three object versions of the same key
TIMEOUT = 900.0


def private_settings(home: Path) -> Settings:
    env = {**os.environ, "PRONOSTICO_HOME": str(home), **private_web_ports(),
           "PRONOSTICO_AIRFLOW_URL": f"http://127.0.0.1:{processes.free_port()}",
           "PRONOSTICO_RETRAIN_SCHEDULE": "none", "PRONOSTICO_MODEL_POLL_SECONDS": "1"}
    os.environ.update({k: v for k, v in env.items() if k.startswith("PRONOSTICO_")})  # the services inherit these
    return load_settings(env)


def start_stack(settings: Settings) -> Any:
    from pronostico.local.stack import web

    airflow.start(settings, log_ports=(processes.free_port(), processes.free_port()))
    settings = load_settings()  # with the password standalone generated
    web.start(settings)
    watcher.start(settings)
    return settings


def stop_stack(settings: Settings) -> None:
    from pronostico.local.stack import web

    web.stop(settings)
    processes.stop(settings.run_dir, watcher.SERVICE)
    airflow.stop(settings)
    processes.stop_all(settings.run_dir)


def wait_for(what: str, check: Callable[[], Any], timeout: float = TIMEOUT) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.25)
    raise TimeoutError(f"{what} did not happen within {timeout:.0f} s")


def served_version(settings: Settings) -> str:
    url = f"http://127.0.0.1:{settings.web.port}/api/v1/models"
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return str(json.loads(answer.read())[USE_CASE].get("version", ""))
    except OSError:
        return ""


def measure_once(settings: Settings, content: bytes) -> dict[str, float]:
    """Upload, then wait for the DAG run, current.json and the web tier; seconds from the upload to each."""
    Path(storage.local_path(current_uri(settings.models_uri, USE_CASE))).unlink(missing_ok=True)
    client = airflow.api(settings)
    target = Path(storage.local_path(settings.raw_uri)) / KEY
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = target.parent / f".{target.name}.upload"  # hidden from the watcher until the rename
    staged.write_bytes(content)
    run_id = dag_run_id(USE_CASE, target.parent.parent.name, KEY, storage.file_md5(staged))
    uploaded = time.monotonic()
    staged.replace(target)
    path = f"/api/v2/dags/{airflow.DAG_ID}/dagRuns/{run_id}"
    wait_for("the DAG run", lambda: client.request("GET", path).status == 200)
    triggered = time.monotonic()
    version = wait_for("the promotion", lambda: promoted_version(settings, client, path))
    promoted = time.monotonic()
    wait_for("the web tier serving it", lambda: served_version(settings) == version)
    served = time.monotonic()
    run = client.request("GET", path).body
    if run["state"] != "success":
        wait_for("the run's end", lambda: client.request("GET", path).body["state"] in ("success", "failed"), 60)
    return {"trigger": triggered - uploaded, "promoted": promoted - uploaded, "served": served - uploaded,
            **task_seconds(client, run_id)}


def promoted_version(settings: Settings, client: Any, run_path: str) -> str:
    """The version current.json names, once there is one; a failed run ends the measurement."""
    current = read_current(settings.models_uri, USE_CASE)
    if current:
        return str(current["version"])
    if client.request("GET", run_path).body["state"] == "failed":
        raise RuntimeError(f"the run {run_path.rsplit('/', 1)[-1]} failed; see {settings.logs_dir}")
    return ""


def task_seconds(client: Any, run_id: str) -> dict[str, float]:
    body = client.request("GET", f"/api/v2/dags/{airflow.DAG_ID}/dagRuns/{run_id}/taskInstances").body
    seconds = {}
    for task in body["task_instances"]:
        if task.get("start_date") and task.get("end_date"):
            seconds[task["task_id"]] = (datetime.fromisoformat(task["end_date"])
                                        - datetime.fromisoformat(task["start_date"])).total_seconds()
    return seconds


def uploads(settings: Settings) -> list[bytes]:
    header, *rows = (settings.shared_data / "assets" / "SPY.csv").read_text().splitlines()
    return ["\n".join([header, *rows[:len(rows) - n]]).encode() + b"\n" for n in LEFT_OUT]


def section() -> str:
    home = Path(tempfile.mkdtemp(prefix="pronostico-freshness-"))
    saved = dict(os.environ)
    settings = private_settings(home)
    started = time.monotonic()
    try:
        settings = start_stack(settings)
        startup = time.monotonic() - started
        runs = [measure_once(settings, content) for content in uploads(settings)]
    finally:
        stop_stack(settings)
        os.environ.clear()
        os.environ.update(saved)
        shutil.rmtree(home, ignore_errors=True)
    return render(runs, startup)


def render(runs: list[dict[str, float]], startup: float) -> str:
    stages = [("upload → DAG run created (watcher settle + handler + REST)", "trigger"),
              ("task plan_retrain", "plan_retrain"), ("task convert_csv_to_parquet", "convert_csv_to_parquet"),
              ("task train_model", "train_model"), ("task promote", "promote"),
              ("upload → current.json written", "promoted"),
              ("**upload → new version served through nginx**", "served")]
    rows = [[title, *(f"{run.get(key, float('nan')):.1f}" for run in runs),
             f"{statistics.median(run.get(key, float('nan')) for run in runs):.1f}"] for title, key in stages]
    median = statistics.median(run["served"] for run in runs)
    return "\n".join([
        "## Freshness: upload to served model",
        "",
        "`make bench ONLY=freshness` (`python -m benchmarks freshness`): Airflow standalone, nginx + 2 gunicorn and "
        "the watcher on a private `PRONOSTICO_HOME` and free ports, default training settings; the real `SPY.csv` "
        f"(about 1,300 daily bars) uploaded 3 times with new content. Stack start-up before the first upload: "
        f"{startup:.0f} s.",
        "",
        markdown_table(["seconds", "upload 1", "upload 2", "upload 3", "median"], rows),
        "",
        f"Median upload-to-served: **{median:.0f} s**. The Spark steps dominate: each task is a fresh spark-submit "
        "(a JVM start each), and training tunes 4 forests over 3 time folds; the trigger path and the web swap "
        "(a 1 s poll of current.json) add seconds. The gaps between tasks are Airflow's scheduling of the next task.",
    ])


if __name__ == "__main__":
    print(section())
