"""`make demo`: the whole local stack, trained through its own event path; `make down` stops it.

Up: Airflow standalone (:8080), the web tier when it is installed (nginx :8000 over gunicorn :8001 and :8002), and
the watcher that turns files in the local raw bucket into S3 events for the trigger Lambda's handler. Then the
demo data (the real files from ../shared/data when they are there, otherwise the synthetic generator's, under
<use_case>/synthetic/ in the bucket) is fed in two drops by date (pronostico.local.drops): the history, then the
newest months. After each drop the demo follows the DAG runs its uploads start until they end (the first drop's runs
tune the forest, the second's refit it with those hyperparameters), and before the next one it asks the web tier for
predictions, so that they are logged and later meet what really happened. The web tier's URL is printed as soon as
a use case's first model serves. It returns with everything running in the background. Running it again uploads
nothing that is already in the bucket and starts nothing that runs: it only reports.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from lambda_trigger.airflow_api import AirflowUnavailable
from lambda_trigger.events import dag_run_id
from pronostico.core import storage
from pronostico.core.config import Settings, load_settings
from pronostico.core.registry import read_current
from pronostico.local.drops import Drop, dated_rows, plan_drops
from pronostico.local.stack import airflow, processes, watcher

SAMPLES = {"real": ("Brazil", "Argentina", "BTC-USD"), "synthetic": ("Syldavia", "Borduria", "ORBT-USD")}
TERMINAL = ("success", "failed")
TRAINING_TIMEOUT_SECONDS = 90 * 60.0
FIXTURE_LIMIT = 30  # matchup predictions between two drops
SERVED_TIMEOUT_SECONDS = 60.0  # for each gunicorn instance to swap in the model a drop promoted
SHIPPED_TIMEOUT_SECONDS = 60.0
HTTP_TIMEOUT_SECONDS = 30.0
RETRY_STATUSES = (429, 502, 503, 504)
TRUE_TEXTS = ("TRUE", "YES", "T", "Y", "1")
ENTITY_LISTS = {"assets": ("symbols", "symbol"), "matchups": ("teams", "name")}  # GET /api/v1/<uc>/<list>, its key


@dataclass(frozen=True)
class Upload:
    use_case: str
    key: str
    etag: str
    run_id: str  # the DAG run its S3 event asks for
    uploaded: bool = True  # False: the same content was there already, so this call started no run


def demo_inputs(settings: Settings) -> tuple[str, dict[str, list[Path]]]:
    """('real' or 'synthetic', use case -> CSV files)."""
    shared = settings.shared_data
    if (shared / "matchups").is_dir() and (shared / "assets").is_dir():
        # the Kaggle file brings FIFA ranks up to 2022-06; results.csv the results since, up to its newest month
        matchups = [shared / "matchups" / name for name in ("international_matches.csv", "results.csv")]
        return "real", {"matchups": [path for path in matchups if path.is_file()],
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
    drops = plan_drops(settings, kind, inputs)  # before any service starts: a file that cannot be cut fails fast
    say(f"Airflow on :{airflow.port(settings)} (the first start takes a minute or two)")
    running = airflow.launch(settings)  # the web tier starts meanwhile
    web = web_stack()
    if web:
        say(f"web tier: nginx on :{settings.web.port}, gunicorn on {', '.join(map(str, settings.web.app_ports))}")
        web.start(settings)
    airflow.wait_until_ready(settings, running)
    # after Airflow is ready: the watcher reads the API password Airflow's first start writes
    say("watcher: local S3 events from the raw bucket to the trigger handler")
    watcher.start(settings)
    say(f"demo data ({kind}): {len(drops)} drops into {settings.raw_uri}")
    if not feed_drops(settings, drops, web):
        return 1
    if web:
        web.wait_until_healthy(settings, 120)
    show_predictions(kind)
    print_summary(settings, bool(web), time.monotonic() - started)
    return 0 if not web or wait_until_shipped(settings) else 1


def feed_drops(settings: Settings, drops: Sequence[Drop], web: Any) -> bool:
    """Upload each drop, follow its runs, then log predictions for the next one; False when a drop's runs fail."""
    announced: set[str] = set()
    for drop, following in zip(drops, [*drops[1:], None], strict=True):
        uploads = upload_drop(settings, drop)
        announce = (lambda use_case: announce_served(settings, use_case, announced)) if web else None
        if not follow_runs(settings, uploads, on_promoted=announce):
            return False
        logged, note = predictions_before(settings, following, web)
        say(drop_line(drop, uploads, logged, note))
    return True


def announce_served(settings: Settings, use_case: str, announced: set[str]) -> None:
    """Say where the form is as soon as a use case has its first model, before the rest of the tour is ready."""
    if use_case in announced or wait_until_served(settings, [use_case], timeout=10.0):  # still behind
        return
    announced.add(use_case)
    say(f"{use_case} serves: http://127.0.0.1:{settings.web.port}/ (the rest of the tour follows)")


def drop_line(drop: Drop, uploads: Sequence[Upload], logged: int, note: str = "") -> str:
    """'drop 2 (2025-12-25 to 2026-03-24): 7 files, 7 runs, 36 predictions logged'."""
    runs = sum(u.uploaded for u in uploads)
    there = len(uploads) - runs
    files = plural(len(uploads), "file") + (f" ({there} already there)" if there else "")
    line = f"drop {drop.number} ({drop.description}): {files}, {plural(runs, 'run')}, " \
           f"{plural(logged, 'prediction')} logged"
    return f"{line}; {note}" if note else line


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def upload_drop(settings: Settings, drop: Drop) -> list[Upload]:
    """Copy each of the drop's files into the raw bucket unless the same content is there; the watcher does the rest."""
    bucket = storage.local_path(settings.raw_uri).name
    uploads = []
    for use_case, files in drop.files.items():
        for file in files:
            uri = storage.join(settings.raw_uri, file.key)
            etag = storage.file_md5(file.path)
            there = is_there(uri, etag)
            if not there:
                storage.upload_file(file.path, uri)
            uploads.append(Upload(use_case, file.key, etag, dag_run_id(use_case, bucket, file.key, etag), not there))
            print(f"  {file.key:<48} {'already there' if there else 'uploaded'}")
    return uploads


def is_there(uri: str, etag: str) -> bool:
    return storage.exists(uri) and storage.stat(uri).etag == etag


def pending_use_cases(settings: Settings, drop: Drop) -> list[str]:
    """The use cases with a file of this drop that is not in the raw bucket yet."""
    return [use_case for use_case, files in drop.files.items()
            if any(not is_there(storage.join(settings.raw_uri, f.key), storage.file_md5(f.path)) for f in files)]


def follow_runs(settings: Settings, uploads: list[Upload], timeout: float = TRAINING_TIMEOUT_SECONDS,
                on_promoted: Callable[[str], None] | None = None) -> bool:
    """Report the DAG runs the uploads started until each has ended; True when each use case uploaded then serves.

    `on_promoted(use_case)` is called as each of their runs succeeds with a model promoted for its use case."""
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
                if state == "success" and on_promoted and read_current(settings.models_uri, upload.use_case):
                    on_promoted(upload.use_case)
        if pending:
            time.sleep(1.0)
    if pending:
        say(f"gave up waiting after {timeout / 60:.0f} min for {len(pending)} run(s); see http://127.0.0.1:"
            f"{airflow.port(settings)} and {settings.logs_dir}")
        return False
    failed = [line for line in shown.values() if " failed" in line]
    # only the use cases this drop fed: one with no file in it has nothing to show yet
    missing = [uc for uc in dict.fromkeys(u.use_case for u in uploads) if not read_current(settings.models_uri, uc)]
    if failed or missing:
        say(f"{len(failed)} run(s) failed; no promoted model for: {', '.join(missing) or 'none missing'}. "
            f"The task logs are in the Airflow UI and under {airflow.airflow_home(settings) / 'logs'}")
        return False
    return True


# --- predictions between drops, through the web tier's JSON API ----------------------------------------------

def predictions_before(settings: Settings, following: Drop | None, web: Any) -> tuple[int, str]:
    """Log predictions for what the next drop brings; (how many were logged, a note on why none were)."""
    if following is None:
        return 0, ""
    if not web:
        return 0, "no predictions: the web tier is not installed"
    use_cases = [uc for uc in pending_use_cases(settings, following) if uc in ENTITY_LISTS]
    if not use_cases:
        return 0, f"no predictions: drop {following.number} is in the bucket already"
    web.wait_until_healthy(settings, 120)
    late = wait_until_served(settings, use_cases)
    if late:
        say(f"the web tier still serves an older {', '.join(late)} model after {SERVED_TIMEOUT_SECONDS:.0f} s; "
            "predicting with it")
    logged = 0
    for use_case in use_cases:
        payloads = prediction_payloads(settings, use_case, following)
        logged += sum(predict(settings, use_case, payload) for payload in payloads)
    return logged, ""


def prediction_payloads(settings: Settings, use_case: str, following: Drop) -> list[dict[str, Any]]:
    """assets: every symbol the model knows; matchups: fixtures of the next drop between teams it knows."""
    known = served_entities(settings, use_case)
    if use_case == "assets":
        return [{"symbol": symbol} for symbol in known]
    rows = [row for file in following.files.get(use_case, ()) for row in dated_rows(file.path)]
    return matchup_fixtures(rows, set(known))


def matchup_fixtures(rows: Iterable[tuple[date, Mapping[str, str]]], teams: Collection[str],
                     limit: int = FIXTURE_LIMIT) -> list[dict[str, Any]]:
    """Up to `limit` predict payloads for pairs of known teams that meet in these rows, earliest first.

    Each pair once (in either order), with home, away, neutral ground and the tournament's tier as the row has them.
    """
    from pronostico.core.usecases.matchups import TEAM_ALIASES, TIERS, tournament_tier

    chosen: list[dict[str, Any]] = []
    seen: set[frozenset[str]] = set()
    for _, row in sorted(rows, key=lambda dated: dated[0]):  # stable: a day's rows keep the file's order
        home, away = (TEAM_ALIASES.get(name, name) for name in
                      ((row.get("home_team") or "").strip(), (row.get("away_team") or "").strip()))
        pair = frozenset((home, away))
        if home == away or home not in teams or away not in teams or pair in seen:
            continue
        seen.add(pair)
        neutral = (row.get("neutral") or row.get("neutral_location") or "").strip().upper() in TRUE_TEXTS
        chosen.append({"home_team": home, "away_team": away, "neutral": neutral,
                       "tournament": TIERS[tournament_tier(row.get("tournament") or "")]})
        if len(chosen) == limit:
            break
    return chosen


def served_entities(settings: Settings, use_case: str) -> list[str]:
    """The names the serving model knows, from GET /api/v1/<use_case>/<list>."""
    list_name, key = ENTITY_LISTS[use_case]
    status, body = call_api(settings, "GET", f"/api/v1/{use_case}/{list_name}")
    if status != 200:
        say(f"GET /api/v1/{use_case}/{list_name} answered {status}: {str(body)[:200]}")
        return []
    return [str(entity[key]) for entity in body.get(list_name, [])]


def predict(settings: Settings, use_case: str, payload: Mapping[str, Any]) -> bool:
    """POST one prediction; True when the web tier answered (and so logged) it."""
    status, body = call_api(settings, "POST", f"/api/v1/{use_case}/predict", payload)
    if status != 200:
        say(f"POST /api/v1/{use_case}/predict {json.dumps(payload)} answered {status}: {str(body)[:200]}")
    return status == 200


def wait_until_served(settings: Settings, use_cases: Sequence[str], timeout: float = SERVED_TIMEOUT_SECONDS,
                      ) -> list[str]:
    """Wait until every gunicorn instance serves the promoted model and state; the use cases still behind."""
    deadline = time.monotonic() + timeout
    while True:
        behind = [uc for uc in use_cases if not all(serves_current(settings, port, uc) for port in
                                                    settings.web.app_ports)]
        if not behind or time.monotonic() >= deadline:
            return behind
        time.sleep(1.0)


def serves_current(settings: Settings, port: int, use_case: str) -> bool:
    current = read_current(settings.models_uri, use_case)
    if current is None:
        return False
    status, body = call_api(settings, "GET", "/api/v1/models", port=port)
    served = body.get(use_case, {}) if status == 200 and isinstance(body, dict) else {}
    if served.get("version") != current["version"]:
        return False
    return served.get("state_version", current["state_version"]) == current["state_version"]


def call_api(settings: Settings, method: str, path: str, payload: Mapping[str, Any] | None = None,
             port: int | None = None) -> tuple[int, Any]:
    """(status, JSON body or text) of one request to the local web tier (nginx, or one gunicorn `port`)."""
    url = f"http://127.0.0.1:{port or settings.web.port}{path}"
    data = None if payload is None else json.dumps(payload).encode()
    headers = {"Content-Type": "application/json"} if data is not None else {}
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # 127.0.0.1 never goes through a proxy
    for attempt in range(3):
        try:
            with opener.open(urllib.request.Request(url, data, headers, method=method),
                             timeout=HTTP_TIMEOUT_SECONDS) as answer:
                return answer.status, _body(answer.read())
        except urllib.error.HTTPError as error:
            status, body = error.code, _body(error.read())
        except OSError as error:  # refused, reset, timed out
            status, body = 0, str(error)
        if status and status not in RETRY_STATUSES:
            return status, body
        time.sleep(1.0 + attempt)
    return status, body


def _body(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw.decode("utf-8", errors="replace")


def wait_until_shipped(settings: Settings, timeout: float = SHIPPED_TIMEOUT_SECONDS) -> bool:
    """Wait until the log shipper's backlog is empty, so the predictions logged are in the database."""
    from pronostico.prediction_log.shipper import read_status

    deadline = time.monotonic() + timeout
    while True:
        status = read_status(settings.spool_dir)
        if not status.get("backlog_bytes"):
            say("prediction log: everything logged is shipped to the database")
            return True
        if time.monotonic() >= deadline:
            say(f"prediction log: {status['backlog_bytes']} bytes still to ship after {timeout:.0f} s "
                f"(last error: {status.get('last_error') or 'none'}); see {settings.logs_dir / 'log-shipper.log'}")
            return False
        time.sleep(1.0)


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


def show_predictions(kind: str) -> None:
    from pronostico.local.cli import main as cli

    home, away, symbol = SAMPLES[kind]
    cli(["predict", "matchups", "--home-team", home, "--away-team", away, "--neutral"])
    cli(["predict", "assets", "--symbol", symbol])


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
