"""The trigger Lambda's handler: S3 event parsing, and triggering a real Airflow standalone over its REST API."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from benchmarks.report import markdown_table
from lambda_trigger import handler as trigger
from lambda_trigger.airflow_api import AirflowRefused, AirflowUnavailable, MwaaApi
from lambda_trigger.events import Upload, parse_event, use_case_names
from pronostico.core.config import AirflowSettings
from pronostico.local.stack import processes
from pronostico.orchestration import packaging
from tests.orchestration.conftest import FlakyProxy, LiveAirflow

ALLOWED_RUN_ID = re.compile(r"^[A-Za-z0-9_.~:+-]+$")  # Airflow's [scheduler] allowed_run_id_pattern


def record(key: str, etag: str = "0123abcd", bucket: str = "pronostico-dev-raw", version: str = "",
           name: str = "ObjectCreated:Put") -> dict[str, Any]:
    obj = {"key": key, "size": 10, "eTag": etag, "sequencer": "0055AED6DCD90281E5", **(
        {"versionId": version} if version else {})}
    return {"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "eu-west-1",
            "eventTime": "2026-11-23T10:00:00.000Z", "eventName": name,
            "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": bucket}, "object": obj}}


# --- parsing ---------------------------------------------------------------------------------------------------

def test_an_event_with_several_records_and_encoded_keys() -> None:
    uploads, ignored = parse_event({"Records": [
        record("assets/Daily+bars+%282024%29.csv"),
        record("matchups/results.csv", etag="ffee"),
        record("assets/notes.txt"),
        record("quarantine/assets/x.csv"),
        record("weather/today.csv"),
        record("assets/.SPY.csv.tmp123"),
        record("assets/SPY.csv", name="ObjectRemoved:Delete"),
    ]})
    assert [(u.use_case, u.key) for u in uploads] == [("assets", "assets/Daily bars (2024).csv"),
                                                      ("matchups", "matchups/results.csv")]
    assert [i.key for i in ignored] == ["assets/notes.txt", "quarantine/assets/x.csv", "weather/today.csv",
                                        "assets/.SPY.csv.tmp123", "assets/SPY.csv"]
    assert all(i.reason for i in ignored)


def test_the_test_event_s3_sends_on_configuration_is_ignored() -> None:
    event = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Time": "2026-11-23T10:00:00Z",
             "Bucket": "pronostico-dev-raw", "RequestId": "R", "HostId": "H"}
    outcome = trigger.handle_event(event, AirflowSettings(url="http://127.0.0.1:9"))  # never contacted
    assert outcome["triggered"] == [] and "s3:TestEvent" in outcome["ignored"][0]["reason"]


def test_something_that_is_not_an_s3_event_fails_loudly() -> None:
    with pytest.raises(ValueError, match="not an S3 event"):
        parse_event({"detail-type": "Object Created"})


def test_run_ids_are_deterministic_per_object_version() -> None:
    [first], _ = parse_event({"Records": [record("assets/SPY 2024.csv", etag="aa")]})
    [again], _ = parse_event({"Records": [record("assets/SPY 2024.csv", etag="aa")]})
    [changed], _ = parse_event({"Records": [record("assets/SPY 2024.csv", etag="bb")]})
    [versioned], _ = parse_event({"Records": [record("assets/SPY 2024.csv", etag="aa", version="v2")]})
    assert first.dag_run_id == again.dag_run_id
    assert len({first.dag_run_id, changed.dag_run_id, versioned.dag_run_id}) == 3
    assert first.dag_run_id.startswith("s3__assets__SPY-2024__") and ALLOWED_RUN_ID.match(first.dag_run_id)


def test_the_handler_knows_the_same_use_cases_as_the_package() -> None:
    from pronostico.core.usecases import USE_CASES

    assert set(use_case_names()) == set(USE_CASES)


def test_the_lambda_zip_runs_on_the_standard_library_alone(tmp_path: Path) -> None:
    archive = tmp_path / "lambda_trigger.zip"
    archive.write_bytes(packaging.lambda_zip())
    assert packaging.lambda_zip() == archive.read_bytes(), "the archive must be reproducible"
    probe = (f"import sys; sys.path.insert(0, {str(archive)!r}); from lambda_trigger.handler import handler; "
             "print(handler({'Event': 's3:TestEvent'}, None)['ignored'][0]['reason']); "
             "print(sorted(m for m in ('numpy', 'pandas', 'pyspark', 'boto3') if m in sys.modules)); "
             "from lambda_trigger.events import use_case_names; print(','.join(use_case_names()))")
    # -S: no site-packages at all, so only the zip and the standard library can be imported
    done = subprocess.run([sys.executable, "-I", "-S", "-c", probe], capture_output=True, text=True, check=True,
                          env={"PRONOSTICO_AIRFLOW_URL": "http://127.0.0.1:9"})
    from pronostico.core.usecases import names

    # the names come from the file the build bundled: the zip holds no use-case module to find them by
    assert done.stdout.splitlines() == ["s3:TestEvent, sent when the notification is configured", "[]",
                                        ",".join(names())]


# --- MWAA (not in moto: botocore's Stubber stands in for the service) ------------------------------------------

def test_mwaa_mode_maps_airflows_answers() -> None:
    import boto3
    from botocore.stub import Stubber

    client = boto3.client("mwaa", region_name="eu-west-1")
    api = MwaaApi("pronostico", client)
    expected = {"Name": "pronostico", "Method": "POST", "Path": "/dags/pronostico_retrain/dagRuns",
                "Body": {"dag_run_id": "r1", "logical_date": None, "conf": {"a": 1}}}
    with Stubber(client) as stub:
        stub.add_response("invoke_rest_api", {"RestApiStatusCode": 200, "RestApiResponse": {}}, expected)
        stub.add_client_error("invoke_rest_api", "RestApiClientException", http_status_code=400,
                              modeled_fields={"RestApiStatusCode": 409, "RestApiResponse": {}})
        stub.add_client_error("invoke_rest_api", "RestApiServerException", http_status_code=500,
                              modeled_fields={"RestApiStatusCode": 503, "RestApiResponse": {}})
        stub.add_client_error("invoke_rest_api", "RestApiClientException", http_status_code=400,
                              modeled_fields={"RestApiStatusCode": 400, "RestApiResponse": {}})
        assert api.trigger_dag_run("pronostico_retrain", "r1", {"a": 1}) is True
        assert api.trigger_dag_run("pronostico_retrain", "r1", {"a": 1}) is False
        with pytest.raises(AirflowUnavailable):
            api.trigger_dag_run("pronostico_retrain", "r1", {"a": 1})
        with pytest.raises(AirflowRefused):
            api.trigger_dag_run("pronostico_retrain", "r1", {"a": 1})


# --- against the real Airflow ----------------------------------------------------------------------------------

def fresh_upload_event(*keys: str) -> dict[str, Any]:
    return {"Records": [record(key, etag=uuid.uuid4().hex) for key in keys]}


def fast(settings: AirflowSettings, **changes: Any) -> AirflowSettings:
    return replace(settings, trigger_backoff_seconds=0.01, **changes)


def deliver_at_once(events: list[dict[str, Any]], settings: AirflowSettings) -> list[dict[str, Any]]:
    """Each event handed to its own concurrent invocation, as Lambda does with S3's repeated deliveries."""
    with ThreadPoolExecutor(len(events)) as pool:
        return list(pool.map(lambda event: trigger.handle_event(event, settings), events))


@pytest.mark.chaos
def test_repeated_and_simultaneous_events_make_one_run_per_upload(paused_dag: LiveAirflow, reliability,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    same, racing = fresh_upload_event("assets/five-times.csv"), fresh_upload_event("assets/racing.csv")
    first, second = fresh_upload_event("assets/first.csv"), fresh_upload_event("matchups/second.csv")
    before = {run["dag_run_id"] for run in paused_dag.runs()}
    scenarios = [("the same event, 5 times in a row", [same] * 5, 1, "sequential"),
                 ("another event, 5 times at once", [racing] * 5, 1, "concurrent"),
                 ("two different uploads at once, each delivered twice", [first, second] * 2, 2, "concurrent")]
    rows, seen = [], set(before)
    for title, events, expected, mode in scenarios:
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="lambda_trigger"):
            outcomes = (deliver_at_once(events, paused_dag.settings.airflow) if mode == "concurrent"
                        else [trigger.handle_event(event, paused_dag.settings.airflow) for event in events])
        created = {run["dag_run_id"] for run in paused_dag.runs()} - seen
        seen |= created
        retried = sum("trigger.retry" in r.getMessage() for r in caplog.records)
        rows.append([title, len(events), expected, len(created), sum(len(o["triggered"]) for o in outcomes),
                     sum(len(o["duplicates"]) for o in outcomes), retried, sum(len(o["failed"]) for o in outcomes)])

    run = paused_dag.run(parse_event(same)[0][0].dag_run_id)
    assert run["conf"]["key"] == "assets/five-times.csv" and run["conf"]["use_case"] == "assets"
    assert run["logical_date"] is None
    reliability("duplicate_events", "\n".join([
        "## Duplicate and simultaneous S3 events",
        "",
        "`pytest tests/orchestration/test_trigger.py -k repeated_and_simultaneous` (in `make chaos` and `make test`): "
        "the trigger Lambda's handler against a real `airflow standalone` (DAG paused so the runs stay queued); "
        "concurrent deliveries are separate threads, each one invocation.",
        "",
        markdown_table(["scenario", "deliveries", "DAG runs expected", "DAG runs created", "answered 201",
                        "answered 409 (duplicate)", "tries retried (timeout, 5xx)", "failed"], rows),
        "",
        "The run id is derived from bucket, key and ETag, so every repeat asks Airflow for a run that exists and "
        "gets 409, which the handler counts as success, also when the deliveries race each other. Under load the "
        "standalone's API server (SQLite) can stall concurrent POSTs past the 10 s request timeout; the retry then "
        "finds the run the first try created and gets 409, so the split between 201 and 409 varies, while the runs "
        "created never do.",
    ]))
    assert [(r[2], r[3], r[7]) for r in rows] == [(1, 1, 0), (1, 1, 0), (2, 2, 0)], rows
    assert all(r[4] + r[5] == r[1] and r[4] <= r[2] for r in rows), rows
    assert rows[0][4:7] == [1, 4, 0], "sequential deliveries need no retry"


def test_a_409_from_airflow_counts_as_success(paused_dag: LiveAirflow) -> None:
    event = fresh_upload_event("matchups/already.csv")
    [upload], _ = parse_event(event)
    assert paused_dag.api.trigger_dag_run("pronostico_retrain", upload.dag_run_id, upload.conf()) is True
    outcome = trigger.handle_event(event, paused_dag.settings.airflow)
    assert outcome["duplicates"] == [upload.dag_run_id] and outcome["failed"] == []


def test_several_records_make_several_runs(paused_dag: LiveAirflow) -> None:
    outcome = trigger.handle_event(fresh_upload_event("assets/a.csv", "assets/b.csv", "assets/c.txt"),
                                   paused_dag.settings.airflow)
    assert len(outcome["triggered"]) == 2 and len(outcome["ignored"]) == 1
    assert all(paused_dag.run(run_id) for run_id in outcome["triggered"])


def test_timeouts_and_5xx_are_retried_with_backoff(paused_dag: LiveAirflow,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    proxy = FlakyProxy(f"http://127.0.0.1:{paused_dag.settings.airflow.url.rsplit(':', 1)[1]}", failures=2)
    sleeps: list[float] = []
    try:
        with caplog.at_level(logging.INFO, logger="lambda_trigger"):
            outcome = trigger.handle_event(fresh_upload_event("assets/flaky.csv"),
                                           fast(paused_dag.settings.airflow, url=proxy.url), sleep=sleeps.append)
    finally:
        proxy.close()
    assert len(sleeps) == 2 and sleeps[1] > sleeps[0]  # exponential
    assert paused_dag.run(outcome["triggered"][0])
    events = [json.loads(r.getMessage())["event"] for r in caplog.records if r.name == "lambda_trigger"]
    assert events == ["trigger.retry", "trigger.retry", "trigger.sent"]


def test_airflow_down_is_a_loud_failure_that_lambda_can_retry(caplog: pytest.LogCaptureFixture) -> None:
    closed = f"http://127.0.0.1:{processes.free_port()}"
    settings = fast(AirflowSettings(url=closed, password="x"), trigger_attempts=3)
    sleeps: list[float] = []
    with caplog.at_level(logging.INFO, logger="lambda_trigger"), pytest.raises(trigger.TriggerFailed, match=closed):
        trigger.handle_event(fresh_upload_event("assets/lost.csv"), settings, sleep=sleeps.append)
    assert len(sleeps) == 2
    failed = [json.loads(r.getMessage()) for r in caplog.records if "trigger.failed" in r.getMessage()]
    assert failed and failed[0]["key"] == "assets/lost.csv" and failed[0]["dag_run_id"].startswith("s3__assets__")


def test_wrong_credentials_fail_without_retrying(paused_dag: LiveAirflow) -> None:
    settings = fast(replace(paused_dag.settings.airflow, password="wrong"))
    sleeps: list[float] = []
    with pytest.raises(trigger.TriggerFailed, match="401"):
        trigger.handle_event(fresh_upload_event("assets/denied.csv"), settings, sleep=sleeps.append)
    assert sleeps == []


def test_credentials_come_from_secrets_manager_on_aws(paused_dag: LiveAirflow,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3
    from moto import mock_aws

    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    live = paused_dag.settings.airflow
    with mock_aws():
        arn = boto3.client("secretsmanager").create_secret(
            Name="pronostico-dev/airflow-api",
            SecretString=json.dumps({"username": live.username, "password": live.password}))["ARN"]
        settings = replace(live, password="", secret_arn=arn)
        outcome = trigger.handle_event(fresh_upload_event("assets/from-secret.csv"), settings)
    trigger._secret.cache_clear()
    assert paused_dag.run(outcome["triggered"][0])


def test_a_run_conf_carries_what_the_dag_needs() -> None:
    upload = Upload("pronostico-dev-raw", "assets/SPY.csv", "assets", etag="e1", version_id="v1", size=3)
    assert upload.conf() == {"use_case": "assets", "bucket": "pronostico-dev-raw", "key": "assets/SPY.csv",
                             "etag": "e1", "version_id": "v1", "size": 3, "event_time": "", "source": "s3-event"}
