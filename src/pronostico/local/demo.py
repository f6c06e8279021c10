"""`make demo`: the whole local stack, trained through its own event path; `make down` stops it.

Up: Airflow standalone (:8080), the web tier when it is installed (nginx :8000 over gunicorn :8001 and :8002), and
the watcher that turns files in the local raw bucket into S3 events for the trigger Lambda's handler. Then the
demo data (the real files from ../shared/data when they are there, otherwise the synthetic generator's) is
uploaded into the raw bucket, and the demo follows the DAG runs the uploads start until both use cases have a
promoted model. It returns with everything running in the background. Running it again uploads nothing that is
already in the bucket and starts nothing that runs: it only reports.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lambda_trigger.airflow_api import AirflowUnavailable
from lambda_trigger.events import dag_run_id
from pronostico.core import storage
from pronostico.core.config import Settings, load_settings
from pronostico.core.registry import read_current
from pronostico.local.stack import airflow, processes, watcher

SAMPLE_MATCHUPS = {"real": ("Brazil", "Argentina"), "synthetic": ("Syldavia", "Borduria")}
TERMINAL = ("success", "failed")
TRAINING_TIMEOUT_SECONDS = 90 * 60.0


@dataclass(frozen=True)
class Upload:
    use_case: str
    key: str
    etag: str
    run_id: str  # the DAG run its S3 event asks for


def demo_inputs(settings: Settings) -> tuple[str, dict[str, list[Path]]]:
    """('real' or 'synthetic', use case -> CSV files)."""
    shared = settings.shared_data
    if (shared / "matchups").is_dir() and (shared / "assets").is_dir():
        return "real", {"matchups": [shared / "matchups" / "international_matches.csv"],
                        "assets": sorted((shared / "assets").glob("*.csv"))}
    from pronostico.local.synthetic import write_demo_data

    out = settings.home / "demo-data"
    if not (out / "matchups").is_dir():
        write_demo_data(out)
    return "synthetic", {"matchups": sorted((out / "matchups").glob("*.csv")),
                         "assets": sorted((out / "assets").glob("*.csv"))}


def web_stack() -> Any:
    """pronostico.local.stack.web, once the web tier is part of the package."""
    name = "pronostico.local.stack.web"
    return importlib.import_module(name) if importlib.util.find_spec(name) else None


def up(settings: Settings) -> int:
    if storage.is_s3(settings.raw_uri):
        say(f"make demo runs on local buckets; the raw bucket is {settings.raw_uri} (unset PRONOSTICO_STORAGE)")
        return 2
    started = time.monotonic()
    kind, inputs = demo_inputs(settings)
    say(f"Airflow on :{airflow.port(settings)} (the first start takes a minute or two)")
    airflow.start(settings)
    web = web_stack()
    if web:
        say(f"web tier: nginx on :{settings.web.port}, gunicorn on {', '.join(map(str, settings.web.app_ports))}")
        web.start(settings)
    say("watcher: local S3 events from the raw bucket to the trigger handler")
    watcher.start(settings)
    say(f"demo data ({kind}): uploading into {settings.raw_uri}")
    uploads = upload_demo_data(settings, inputs)
    if not follow_runs(settings, uploads):
        return 1
    if web:
        web.wait_until_healthy(settings, 120)
    show_predictions(kind, inputs)
    print_summary(settings, bool(web), time.monotonic() - started)
    return 0


def upload_demo_data(settings: Settings, inputs: dict[str, list[Path]]) -> list[Upload]:
    """Copy each file into the raw bucket unless the same content is there; the watcher does the rest."""
    bucket = storage.local_path(settings.raw_uri).name
    uploads = []
    for use_case, files in inputs.items():
        for path in files:
            key = f"{use_case}/{path.name}"
            uri = storage.join(settings.raw_uri, key)
            etag = storage.file_md5(path)
            if storage.exists(uri) and storage.stat(uri).etag == etag:
                state = "already there"
            else:
                storage.upload_file(path, uri)
                state = "uploaded"
            uploads.append(Upload(use_case, key, etag, dag_run_id(use_case, bucket, key, etag)))
            print(f"  {key:<48} {state}")
    return uploads


def follow_runs(settings: Settings, uploads: list[Upload], timeout: float = TRAINING_TIMEOUT_SECONDS) -> bool:
    """Report the DAG runs the uploads started until each has ended; True when both use cases then serve."""
    client = airflow.api(settings)
    deadline = time.monotonic() + timeout
    shown: dict[str, str] = {}
    pending = {u.run_id: u for u in uploads}
    while pending and time.monotonic() < deadline:
        for run_id, upload in list(pending.items()):
            try:
                state = run_state(client, settings.airflow.dag_id, run_id)
            except AirflowUnavailable as error:
                state = f"Airflow is not answering ({error})"
            line = f"{upload.use_case:<9} {upload.key.split('/', 1)[1]:<28} {state}"
            if shown.get(run_id) != line:
                shown[run_id] = line
                say(line)
            if state.split(":")[0] in TERMINAL:
                del pending[run_id]
        time.sleep(2.0)
    if pending:
        say(f"gave up waiting after {timeout / 60:.0f} min for {len(pending)} run(s); see http://127.0.0.1:"
            f"{airflow.port(settings)} and {settings.logs_dir}")
        return False
    failed = [line for line in shown.values() if " failed" in line]
    missing = [uc for uc in ("matchups", "assets") if not read_current(settings.models_uri, uc)]
    if failed or missing:
        say(f"{len(failed)} run(s) failed; no promoted model for: {', '.join(missing) or 'none missing'}. "
            f"The task logs are in the Airflow UI and under {airflow.airflow_home(settings) / 'logs'}")
        return False
    return True


def run_state(client: Any, dag_id: str, run_id: str) -> str:
    """'waiting for the trigger', 'queued', 'running: <task>', 'success' or 'failed'."""
    answer = client.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
    if answer.status == 404:
        return "waiting for the trigger"
    state = answer.body["state"]
    if state != "running":
        return str(state)
    tasks = client.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances").body
    running = [t["task_id"] for t in (tasks or {}).get("task_instances", []) if t["state"] == "running"]
    return f"running: {', '.join(running)}" if running else "running"


def show_predictions(kind: str, inputs: dict[str, list[Path]]) -> None:
    from pronostico.local.cli import main as cli

    home, away = SAMPLE_MATCHUPS[kind]
    cli(["predict", "matchups", "--home-team", home, "--away-team", away, "--neutral"])
    cli(["predict", "assets", "--symbol", inputs["assets"][0].stem])


def print_summary(settings: Settings, web: bool, seconds: float) -> None:
    port = airflow.port(settings)
    print(f"\nThe local stack is up ({seconds:.0f} s), running in the background:")
    if web:
        print(f"  web app and API   http://127.0.0.1:{settings.web.port}/   (gunicorn behind it on "
              f"{', '.join(map(str, settings.web.app_ports))})")
    print(f"  Airflow           http://127.0.0.1:{port}/   user {settings.airflow.username}, password in "
          f"{airflow.password_file(settings)}")
    print(f"  raw bucket        {storage.local_path(settings.raw_uri)}   (copy a CSV into <use_case>/ to retrain)")
    print(f"  logs              {settings.logs_dir}/   (services; steps/<run id>/ for each Spark step)")
    print("  stop everything   make down")


def down(settings: Settings) -> int:
    web = web_stack()
    stopped = web.stop(settings) if web else []
    stopped += processes.stop_all(settings.run_dir, order=[watcher.SERVICE, airflow.SERVICE])
    say(f"stopped: {', '.join(stopped) or 'nothing was running'}")
    ports = [airflow.port(settings), *airflow.DEMO_LOG_PORTS, settings.web.port, *settings.web.app_ports]
    still_open = [port for port in ports if processes.port_open(port)]
    if still_open:
        say(f"still listening on {', '.join(map(str, still_open))}: not started by this stack?")
        return 1
    return 0


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--down", action="store_true", help="stop every process the demo started")
    args = parser.parse_args(argv)
    settings = load_settings()
    try:
        return down(settings) if args.down else up(settings)
    except processes.ServiceFailed as failure:
        say(f"error: {failure}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
