"""Local S3 events: files landing in the local raw bucket become S3 notifications for the Lambda's handler."""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from benchmarks.report import markdown_table
from lambda_trigger import handler as trigger
from lambda_trigger.events import parse_event
from pronostico.core import storage
from pronostico.core.config import Settings
from pronostico.local.stack import processes
from pronostico.local.stack.watcher import LocalBucketWatcher, open_for_writing
from tests.orchestration.conftest import LiveAirflow

BARS = b"date,symbol,open,high,low,close,volume\n" + b"".join(
    f"2024-01-{d:02d},SPY,1,2,0.5,1.5,100\n".encode() for d in range(1, 29))


class Recorder:
    """Stands in for the handler where only the events themselves are under test."""

    def __init__(self, failures: int = 0) -> None:
        self.events: list[dict[str, Any]] = []
        self.failures = failures

    def __call__(self, event: dict[str, Any], context: Any) -> None:
        if self.failures:
            self.failures -= 1
            raise trigger.TriggerFailed("Airflow is down")
        self.events.append(event)

    @property
    def keys(self) -> list[str]:
        return [u.key for event in self.events for u in parse_event(event)[0]]


@pytest.fixture
def quick(settings: Settings) -> Settings:
    return replace(settings, watcher=replace(settings.watcher, poll_seconds=0.05, settle_seconds=0.3))


def raw(settings: Settings, key: str) -> Path:
    path = storage.local_path(settings.raw_uri) / key
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def poll_for(watcher: LocalBucketWatcher, seconds: float) -> list[str]:
    delivered = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        delivered += watcher.poll()
        time.sleep(0.05)
    return delivered


def test_a_plain_copy_becomes_the_event_s3_would_send(quick: Settings, tmp_path: Path) -> None:
    source = tmp_path / "Daily bars.csv"
    source.write_bytes(BARS)
    recorder = Recorder()
    watcher = LocalBucketWatcher(quick, recorder)
    shutil.copy(source, raw(quick, "assets/Daily bars.csv"))
    assert poll_for(watcher, 1.0) == ["assets/Daily bars.csv"]
    record = recorder.events[0]["Records"][0]
    assert record["eventSource"] == "aws:s3" and record["eventName"] == "ObjectCreated:Put"
    assert record["s3"]["bucket"]["name"] == "pronostico-dev-raw"
    assert record["s3"]["object"]["key"] == "assets/Daily+bars.csv"  # URL-encoded, as S3 sends it
    [upload], _ = parse_event(recorder.events[0])
    assert (upload.use_case, upload.key, upload.etag) == ("assets", "assets/Daily bars.csv", storage.file_md5(source))


def test_a_half_written_file_does_not_fire(quick: Settings) -> None:
    recorder = Recorder()
    watcher = LocalBucketWatcher(quick, recorder)
    path = raw(quick, "assets/slow.csv")
    with path.open("wb") as handle:
        handle.write(BARS[: len(BARS) // 2])
        handle.flush()
        assert open_for_writing(path)
        assert poll_for(watcher, 1.0) == []  # well past the settle time, but still open for writing
        handle.write(BARS[len(BARS) // 2:])
    assert not open_for_writing(path)
    assert poll_for(watcher, 1.0) == ["assets/slow.csv"]
    assert parse_event(recorder.events[0])[0][0].etag == storage.file_md5(path)


def test_a_growing_file_waits_until_it_stops_changing(quick: Settings) -> None:
    watcher = LocalBucketWatcher(quick, Recorder())
    path = raw(quick, "assets/growing.csv")
    delivered: list[str] = []
    for line in BARS.splitlines(keepends=True):  # written by separate appends, each closing the file
        with path.open("ab") as handle:
            handle.write(line)
        delivered += poll_for(watcher, 0.1)
    assert delivered == []
    assert poll_for(watcher, 1.0) == ["assets/growing.csv"]


def test_one_object_version_fires_once_even_across_restarts(quick: Settings) -> None:
    recorder = Recorder()
    path = raw(quick, "matchups/m.csv")
    path.write_bytes(BARS)
    assert poll_for(LocalBucketWatcher(quick, recorder), 1.0) == ["matchups/m.csv"]
    os.utime(path)  # touched: same content, same ETag, same object version
    restarted = LocalBucketWatcher(quick, recorder)
    assert poll_for(restarted, 1.0) == []
    path.write_bytes(BARS + b"2024-02-01,SPY,1,2,0.5,1.5,100\n")  # a new version
    assert poll_for(restarted, 1.0) == ["matchups/m.csv"]
    assert recorder.keys == ["matchups/m.csv", "matchups/m.csv"]


def test_only_csvs_under_the_raw_bucket_are_considered(quick: Settings) -> None:
    recorder = Recorder()
    for key in ("assets/readme.txt", "assets/.hidden.csv"):
        raw(quick, key).write_bytes(BARS)
    assert poll_for(LocalBucketWatcher(quick, recorder), 0.8) == []


def test_an_event_airflow_did_not_take_is_redriven(quick: Settings) -> None:
    recorder = Recorder(failures=2)
    watcher = LocalBucketWatcher(quick, recorder)
    raw(quick, "assets/retry.csv").write_bytes(BARS)
    assert poll_for(watcher, 0.6) == []  # delivered, refused, backing off
    assert watcher.failures >= 1
    assert poll_for(watcher, 2.0) == ["assets/retry.csv"]
    assert recorder.keys == ["assets/retry.csv"]


@pytest.mark.chaos
def test_airflow_down_then_up_through_the_real_handler(quick: Settings, paused_dag: LiveAirflow,
                                                       caplog: pytest.LogCaptureFixture, reliability) -> None:
    """Down: nothing listens on Airflow's port (connection refused), as when the API server is stopped."""
    down = replace(paused_dag.settings.airflow, url=f"http://127.0.0.1:{processes.free_port()}", trigger_attempts=3,
                   trigger_backoff_seconds=0.05)
    watcher = LocalBucketWatcher(quick, functools.partial(_handle, down))
    raw(quick, "assets/outage.csv").write_bytes(BARS)
    runs_before = len(paused_dag.runs())
    with caplog.at_level(logging.INFO):
        assert poll_for(watcher, 0.8) == []
    retries = [r for r in caplog.records if "trigger.retry" in r.getMessage()]
    failed = [json.loads(r.getMessage()) for r in caplog.records if "trigger.failed" in r.getMessage()]
    loud = [r for r in caplog.records if "could not hand 1 upload(s) to Airflow" in r.getMessage()]
    assert failed and failed[0]["key"] == "assets/outage.csv" and loud and loud[0].levelno == logging.ERROR
    assert down.url in loud[0].getMessage()
    created_while_down = len(paused_dag.runs()) - runs_before

    watcher.deliver = functools.partial(_handle, paused_dag.settings.airflow)  # Airflow is back
    watcher.retry_at = 0.0  # not wait out the backoff
    started = time.monotonic()
    assert poll_for(watcher, 1.0) == ["assets/outage.csv"]
    redriven = [r for r in paused_dag.runs() if r["conf"].get("key") == "assets/outage.csv"]
    reliability("airflow_down", "\n".join([
        "## Airflow down when the trigger fires",
        "",
        "`pytest tests/orchestration/test_watcher.py -k airflow_down` (in `make chaos` and `make test`): a file lands "
        "in the local raw bucket while nothing listens on Airflow's port; the watcher hands the S3 event to the real "
        "Lambda handler (3 attempts, backoff 0.05 s doubling); then Airflow (a real `airflow standalone`) is back and "
        "the same event is re-driven.",
        "",
        markdown_table(["what", "expected", "happened"], [
            ["handler invocations while down (the watcher re-drives with backoff)", "≥ 1", len(failed)],
            ["attempts per invocation", "3 (2 retries)", f"{len(retries) / len(failed) + 1:g}"],
            ["handler outcome", "raises TriggerFailed, logs `trigger.failed`",
             f"`trigger.failed` logged for `{failed[0]['key']}` each time"],
            ["watcher", "ERROR log line, event kept for re-drive",
             f"ERROR: `{loud[-1].getMessage().split(': ', 1)[0]}`"],
            ["DAG runs created while down", 0, created_while_down],
            ["DAG runs after the re-drive", 1, len(redriven)],
            ["re-drive to run created", "one poll", f"{time.monotonic() - started:.2f} s"],
        ]),
        "",
        "On AWS the same raise makes Lambda retry the event, then park it in the dead-letter queue for a re-drive; "
        "the deterministic run id makes a re-drive of an event that did get through a harmless 409.",
    ]))
    assert len(retries) == 2 * len(failed) and created_while_down == 0 and len(redriven) == 1


def _handle(settings: Any, event: dict[str, Any], context: Any) -> dict[str, Any]:
    return trigger.handle_event(event, settings)
