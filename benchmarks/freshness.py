"""Freshness: from an upload to the raw bucket to the new model answering through nginx, with the stack already up.

Airflow standalone, the web tier and the watcher start on a private PRONOSTICO_HOME and free ports (so a running
`make demo` is not disturbed), with the default training settings. Then each of two real files, SPY.csv (assets) and
the Kaggle international_matches.csv (matchups), is uploaded again and again with new content (a few fewer rows left
out each time, so each upload is a new object version with newer data). The uploads alternate between the two ways
a run can choose the forest's hyperparameters, measured side by side in the same run:

- **grid** (how every upload trained before refits): the assets or matchups champion is removed first (current.json;
  the web keeps serving the model it has), so the run tunes the whole grid and the gate promotes;
- **refit** (an upload now): the champion the grid run just made stays, so the run refits with its hyperparameters;
  promoted or not, its model or its newer state serves.

    python -m benchmarks freshness          (make bench ONLY=freshness; PRONOSTICO_BENCH_ROUNDS, default 3)
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
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks.models import private_web_ports
from benchmarks.report import markdown_table
from lambda_trigger.events import dag_run_id
from pronostico.core import layout, storage
from pronostico.core.config import Settings, load_settings
from pronostico.core.registry import current_uri, read_current
from pronostico.local.stack import airflow, processes, watcher


@dataclass(frozen=True)
class Upload:
    use_case: str
    key: str  # in the raw bucket
    source: str  # under the shared data


FILES = (Upload("assets", "assets/SPY.csv", "assets/SPY.csv"),
         Upload("matchups", "matchups/international_matches.csv", "matchups/international_matches.csv"))
PATHS = ("grid", "refit")
TIMEOUT = 900.0


def rounds() -> int:
    return int(os.environ.get("PRONOSTICO_BENCH_ROUNDS", "3"))


def private_settings(home: Path) -> Settings:
    env = {**os.environ, "PRONOSTICO_HOME": str(home), **private_web_ports(),
           "PRONOSTICO_AIRFLOW_URL": f"http://127.0.0.1:{processes.free_port()}",
           "PRONOSTICO_RETRAIN_SCHEDULE": "none"}
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


def served_versions(settings: Settings, use_case: str) -> set[str]:
    """The model and state versions the web tier answers with, through nginx."""
    url = f"http://127.0.0.1:{settings.web.port}/api/v1/models"
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            served = json.loads(answer.read())[use_case]
    except (OSError, KeyError, ValueError):
        return set()
    return {str(served.get("version", "")), str(served.get("state_version", ""))}


def measure_once(settings: Settings, upload: Upload, content: bytes, path: str) -> dict[str, float]:
    """Upload, then wait for the DAG run, current.json naming its version and the web tier answering with it;
    seconds from the upload to each, with the run's task and training stage times."""
    pointer = Path(storage.local_path(current_uri(settings.models_uri, upload.use_case)))
    if path == "grid":
        pointer.unlink(missing_ok=True)
    before = pointer.read_bytes() if pointer.exists() else b""
    client = airflow.api(settings)
    target = Path(storage.local_path(settings.raw_uri)) / upload.key
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = target.parent / f".{target.name}.upload"  # hidden from the watcher until the rename
    staged.write_bytes(content)
    run_id = dag_run_id(upload.use_case, target.parent.parent.name, upload.key, storage.file_md5(staged))
    uploaded = time.monotonic()
    staged.replace(target)
    run_path = f"/api/v2/dags/{airflow.DAG_ID}/dagRuns/{run_id}"
    wait_for("the DAG run", lambda: client.request("GET", run_path).status == 200)
    triggered = time.monotonic()
    version = wait_for("current.json", lambda: new_pointer(settings, upload.use_case, before, client, run_path))
    pointed = time.monotonic()
    wait_for("the web tier serving it", lambda: version in served_versions(settings, upload.use_case))
    served = time.monotonic()
    wait_for("the run's end", lambda: client.request("GET", run_path).body["state"] in ("success", "failed"), 120)
    manifest = storage.read_json(layout.version_file(settings.models_uri, upload.use_case, version, layout.MANIFEST))
    if manifest["tuning"]["path"] != path:
        raise RuntimeError(f"run {run_id} took the {manifest['tuning']['path']} path, not {path}")
    return {"trigger": triggered - uploaded, "current": pointed - uploaded, "served": served - uploaded,
            "tune_and_fit": manifest["stage_seconds"]["tune_and_fit"], **task_seconds(client, run_id)}


def new_pointer(settings: Settings, use_case: str, before: bytes, client: Any, run_path: str) -> str:
    """The version this run made, once current.json names it as its model or its state; a failed run ends the
    measurement."""
    pointer = Path(storage.local_path(current_uri(settings.models_uri, use_case)))
    if pointer.exists() and pointer.read_bytes() != before:
        current = read_current(settings.models_uri, use_case) or {}
        return str(max(current["version"], current["state_version"]))  # versions sort by their creation time
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


def task_gaps(run: dict[str, float]) -> float:
    """Seconds between the run's creation and current.json that no task was running: Airflow's scheduling."""
    return run["current"] - run["trigger"] - sum(run.get(t, 0.0) for t in ("plan_retrain", "spark_steps", "promote"))


def contents(settings: Settings, upload: Upload, count: int) -> list[bytes]:
    """`count` versions of the file, each with fewer of its last rows left out than the one before."""
    header, *rows = (settings.shared_data / upload.source).read_text().splitlines()
    return ["\n".join([header, *rows[:len(rows) - 5 * n]]).encode() + b"\n" for n in range(count, 0, -1)]


def measure(settings: Settings) -> dict[str, dict[str, list[dict[str, float]]]]:
    """Per file, per path, the measurements: grid and refit in turn, so that both meet the same machine load."""
    runs: dict[str, dict[str, list[dict[str, float]]]] = {}
    for upload in FILES:
        found = runs.setdefault(upload.source, {path: [] for path in PATHS})
        for number, content in enumerate(contents(settings, upload, 2 * rounds())):
            path = PATHS[number % 2]
            found[path].append(measure_once(settings, upload, content, path))
            print(f"  {upload.key} {path}: served in {found[path][-1]['served']:.1f} s", flush=True)
    return runs


def section() -> str:
    home = Path(tempfile.mkdtemp(prefix="pronostico-freshness-"))
    saved = dict(os.environ)
    settings = private_settings(home)
    started = time.monotonic()
    try:
        settings = start_stack(settings)
        startup = time.monotonic() - started
        runs = measure(settings)
    finally:
        stop_stack(settings)
        os.environ.clear()
        os.environ.update(saved)
        shutil.rmtree(home, ignore_errors=True)
    return render(runs, startup)


STAGES = [("upload → DAG run created (watcher settle + handler + REST)", "trigger"),
          ("task plan_retrain", "plan_retrain"),
          ("task spark_steps (convert, then train, in one spark-submit)", "spark_steps"),
          ("… of which the train step's tune_and_fit stage", "tune_and_fit"),
          ("task promote", "promote"),
          ("Airflow's gaps between the tasks", "gaps"),
          ("upload → current.json names the run's version", "current"),
          ("**upload → served through nginx**", "served")]


def render(runs: dict[str, dict[str, list[dict[str, float]]]], startup: float) -> str:
    parts = [
        "## Freshness: upload to served model",
        "",
        "`make bench ONLY=freshness` (`python -m benchmarks freshness`): Airflow standalone, nginx + 2 gunicorn and "
        "the watcher on a private `PRONOSTICO_HOME` and free ports, default training settings. Each file is uploaded "
        f"{2 * rounds()} times with new content, alternating two paths measured side by side: **grid** (the champion "
        "removed first, so the run tunes 4 grid points over 3 time folds and is promoted: what every upload did "
        "before) and **refit** (the champion stays, so the run refits with its hyperparameters: an upload now). "
        f"Medians of {rounds()} uploads each; stack start-up before the first upload: {startup:.0f} s.",
    ]
    for source, paths in runs.items():
        for run in (r for path in paths.values() for r in path):
            run["gaps"] = task_gaps(run)
        rows = [[title, *(f"{statistics.median(r.get(key, float('nan')) for r in paths[p]):.1f}" for p in PATHS),
                 ratio(paths, key)] for title, key in STAGES]
        parts += ["", f"**{source}**", "", markdown_table(["seconds (median)", *PATHS, "grid / refit"], rows)]
    served = {source: statistics.median(r["served"] for r in paths["refit"]) for source, paths in runs.items()}
    parts += ["", "Median upload-to-served with a refit: " + ", ".join(f"**{v:.0f} s** for {k}"
                                                                          for k, v in served.items()) + ". "
              "Both steps share one spark-submit (one JVM start), the web tier polls current.json every second, and "
              "a refit fits two forests (the temperature's fold and the final one) where the grid fitted thirteen."]
    return "\n".join(parts)


def ratio(paths: dict[str, list[dict[str, float]]], key: str) -> str:
    grid, refit = (statistics.median(r.get(key, float("nan")) for r in paths[p]) for p in PATHS)
    return f"{grid / refit:.2f}" if refit else "n/a"


if __name__ == "__main__":
    print(section())
