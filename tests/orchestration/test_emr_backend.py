"""The EMR backend, run with `dag.test()` against moto's EMR and S3.

moto creates clusters and records steps but never runs them: a step stays RUNNING (or PENDING behind it). The
`EmrStepDriver` thread plays EMR's part: it completes the running step, or fails it and cancels the pending ones
as ActionOnFailure CANCEL_AND_WAIT does, and it writes the model version a real train step would have written. It
never terminates a cluster: the TERMINATED state at the end is the DAG's teardown.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks.report import markdown_table
from pronostico.core import storage
from pronostico.core.config import load_settings
from pronostico.core.registry import read_current
from tests.code.test_registry import make_version
from tests.orchestration.conftest import parse_dag

REGION = "us-east-1"
BUCKETS = ("raw", "processed", "models", "artifacts")


class EmrStepDriver:
    """Plays EMR's part for moto's clusters in `region`; `write_version(args)` stands in for a train step's work."""

    def __init__(self, fail_step: str = "", region: str = REGION,
                 write_version: Callable[[list[str]], None] | None = None) -> None:
        self.fail_step, self.region = fail_step, region
        self.write_version = write_version or self._write_version
        self.errors: list[BaseException] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._drive, daemon=True)

    def __enter__(self) -> EmrStepDriver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.thread.join(5)
        if self.errors and exc[0] is None:
            raise AssertionError(f"the step driver failed: {self.errors[0]!r}") from self.errors[0]

    def _drive(self) -> None:
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.emr.models import emr_backends

        while not self.stopped.is_set():
            for cluster in list(emr_backends[DEFAULT_ACCOUNT_ID][self.region].clusters.values()):
                try:
                    self._advance(cluster.steps)
                except Exception as error:  # a dead driver would leave the sensors waiting: fail loudly instead
                    self.errors.append(error)
                    for step in cluster.steps:
                        if step.state in ("RUNNING", "PENDING"):
                            step.state = "FAILED"
            time.sleep(0.05)

    def _advance(self, steps: list[Any]) -> None:
        running = [s for s in steps if s.state == "RUNNING"]
        if not running:
            pending = [s for s in steps if s.state == "PENDING"]
            if pending:
                pending[0].state = "RUNNING"
            return
        step = running[0]
        if self.fail_step and self.fail_step in step.name:
            step.state = "FAILED"
            assert step.action_on_failure == "CANCEL_AND_WAIT"
            for other in steps:
                if other.state == "PENDING":
                    other.state = "CANCELLED"
            return
        if any(arg.endswith("/train_model.py") for arg in step.args):
            self.write_version(step.args)
        step.state = "COMPLETED"

    @staticmethod
    def _write_version(args: list[str]) -> None:
        """What train_model.py writes: a complete version whose manifest names this run."""
        value = dict(itertools.pairwise(args))
        settings = load_settings()
        assert value["--models"] == settings.models_uri
        version = make_version(settings, "20260101T000000Z-emr001", (0.3, 0.4, 0.3))
        manifest_uri = storage.join(settings.models_uri, value["--use-case"], "versions", version, "manifest.json")
        storage.write_json(manifest_uri, {**storage.read_json(manifest_uri), "run_id": value["--run-id"]})


@pytest.fixture
def aws(airflow_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """moto's S3 and EMR, the four buckets, and one real asset file in the raw bucket."""
    from moto import mock_aws

    for name, value in {"AWS_DEFAULT_REGION": REGION, "AWS_ACCESS_KEY_ID": "testing",
                        "AWS_SECRET_ACCESS_KEY": "testing", "PRONOSTICO_STORAGE": "s3",
                        "PRONOSTICO_EMR_POLL_SECONDS": "1"}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        import boto3

        storage.reset_clients()
        s3 = boto3.client("s3", region_name=REGION)
        for bucket in BUCKETS:
            s3.create_bucket(Bucket=f"pronostico-dev-{bucket}")
        s3.put_object(Bucket="pronostico-dev-raw", Key="assets/SPY.csv",
                      Body=b"date,symbol,open,high,low,close,volume\n2024-01-02,SPY,1,2,0.5,1.5,100\n")
        yield boto3.client("emr", region_name=REGION)
    storage.reset_clients()


@pytest.fixture
def emr_calls(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Any]]:
    """What moto's EMR was asked: each cluster as RunJobFlow left it, and the cluster of each AddJobFlowSteps."""
    from moto.emr.models import ElasticMapReduceBackend

    calls: dict[str, list[Any]] = {"created": [], "steps_added_to": []}
    run_job_flow, add_job_flow_steps = ElasticMapReduceBackend.run_job_flow, ElasticMapReduceBackend.add_job_flow_steps

    def recording_run_job_flow(backend: Any, **kwargs: Any) -> Any:
        cluster = run_job_flow(backend, **kwargs)
        calls["created"].append({"state": cluster.state, "steps": [(s.id, s.name) for s in cluster.steps]})
        return cluster

    def recording_add_job_flow_steps(backend: Any, job_flow_id: str, steps: list[dict[str, Any]]) -> Any:
        calls["steps_added_to"].append(job_flow_id)
        return add_job_flow_steps(backend, job_flow_id, steps)

    monkeypatch.setattr(ElasticMapReduceBackend, "run_job_flow", recording_run_job_flow)
    monkeypatch.setattr(ElasticMapReduceBackend, "add_job_flow_steps", recording_add_job_flow_steps)
    return calls


UPLOAD = {"use_case": "assets", "bucket": "pronostico-dev-raw", "key": "assets/SPY.csv", "source": "s3-event"}


def run_emr_dag(monkeypatch: pytest.MonkeyPatch, home: Path, fail_step: str = "") -> tuple[Any, dict[str, str]]:
    dag = parse_dag(monkeypatch, home, "emr")
    with EmrStepDriver(fail_step):
        run = dag.test(run_conf=UPLOAD)
    return run, {ti.task_id + (f"[{ti.map_index}]" if ti.map_index >= 0 else ""): ti.state
                 for ti in run.get_task_instances()}


def only_cluster(emr: Any) -> dict[str, Any]:
    clusters = emr.list_clusters()["Clusters"]
    assert len(clusters) == 1
    return emr.describe_cluster(ClusterId=clusters[0]["Id"])["Cluster"]


def test_a_run_trains_on_a_spot_cluster_promotes_and_terminates_it(aws: Any, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    run, states = run_emr_dag(monkeypatch, tmp_path)
    assert run.state == "success", states
    assert states["watcher"] == "skipped" and states["terminate_cluster"] == "success"
    cluster = only_cluster(aws)
    assert cluster["Status"]["State"] == "TERMINATED"
    steps = aws.list_steps(ClusterId=cluster["Id"])["Steps"]
    assert sorted(s["Name"] for s in steps) == ["assets: convert_csv_to_parquet", "assets: train_model"]
    assert {s["Status"]["State"] for s in steps} == {"COMPLETED"}
    # the steps run the staged code: every s3:// path they name exists in the artifacts bucket
    code = {a for s in steps for a in s["Config"]["Args"] if "/code/" in a}
    assert code and all(storage.exists(uri) for uri in code)
    bootstrap = aws.list_bootstrap_actions(ClusterId=cluster["Id"])["BootstrapActions"][0]["ScriptPath"]
    assert bootstrap.startswith("s3://pronostico-dev-artifacts/code/") and storage.exists(bootstrap)
    tags = {t["Key"]: t["Value"] for t in cluster["Tags"]}
    assert tags["for-use-with-amazon-emr-managed-policies"] == "true"
    assert read_current(load_settings().models_uri, "assets")["version"] == "20260101T000000Z-emr001"


def test_the_cluster_is_created_with_its_steps_and_each_sensor_watches_its_own(
        aws: Any, emr_calls: dict[str, list[Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run, states = run_emr_dag(monkeypatch, tmp_path)
    assert run.state == "success", states
    assert emr_calls["steps_added_to"] == []  # no AddJobFlowSteps: nothing can reach the cluster too late
    [created] = emr_calls["created"]
    # moto, like EMR, ends a cluster with KeepJobFlowAliveWhenNoSteps false at once if it has no steps
    assert created["state"] != "TERMINATED"
    assert [name for _, name in created["steps"]] == ["assets: convert_csv_to_parquet", "assets: train_model"]
    watched = run.get_task_instance("list_steps").xcom_pull(task_ids="list_steps")
    assert watched == [step_id for step_id, _ in created["steps"]]  # watch_step[i] expands over watched[i]


def test_the_step_driver_fails_the_step_and_reports_it_when_its_own_work_fails(aws: Any) -> None:
    def broken_train_step(args: list[str]) -> None:
        raise RuntimeError("no model written")

    step = {"Name": "assets: train_model", "ActionOnFailure": "CANCEL_AND_WAIT",
            "HadoopJarStep": {"Jar": "command-runner.jar", "Args": ["spark-submit", "s3://b/c/train_model.py"]}}
    cluster_id = aws.run_job_flow(Name="c", ReleaseLabel="emr-7.13.0", Steps=[step], JobFlowRole="r", ServiceRole="s",
                                  Instances={"KeepJobFlowAliveWhenNoSteps": False, "InstanceCount": 1,
                                             "MasterInstanceType": "m5.xlarge"})["JobFlowId"]
    with pytest.raises(AssertionError, match="no model written"), EmrStepDriver(write_version=broken_train_step):
        deadline = time.monotonic() + 10
        while aws.list_steps(ClusterId=cluster_id)["Steps"][0]["Status"]["State"] != "FAILED":
            assert time.monotonic() < deadline, "the step never failed"
            time.sleep(0.05)


class PagedSteps:
    """An EMR client whose ListSteps answers newest first, over pages, as AWS documents it."""

    def __init__(self, pages: list[list[dict[str, str]]]) -> None:
        self.pages = pages

    def get_paginator(self, operation: str) -> PagedSteps:
        assert operation == "list_steps"
        return self

    def paginate(self, ClusterId: str) -> Iterator[dict[str, Any]]:
        assert ClusterId == "j-1"
        yield from ({"Steps": page} for page in self.pages)


def test_step_ids_come_back_in_the_order_the_steps_were_given() -> None:
    from pronostico.orchestration.tasks import cluster_step_ids

    client = PagedSteps([[{"Id": "s-3", "Name": "b: train"}, {"Id": "s-2", "Name": "b: convert"}],
                         [{"Id": "s-1", "Name": "a: train"}, {"Id": "s-0", "Name": "a: convert"}]])
    names = ["a: convert", "a: train", "b: convert", "b: train"]
    assert cluster_step_ids(client, "j-1", names) == ["s-0", "s-1", "s-2", "s-3"]


@pytest.mark.parametrize(("listed", "error"), [
    ([{"Id": "s-1", "Name": "a: train"}], "no step named 'a: convert'"),
    ([{"Id": "s-2", "Name": "a: train"}, {"Id": "s-1", "Name": "a: train"}, {"Id": "s-0", "Name": "a: convert"}],
     "the name 'a: train' is not unique"),
])
def test_a_step_that_cannot_be_found_by_name_fails_loudly(listed: list[dict[str, str]], error: str) -> None:
    from pronostico.orchestration.tasks import step_ids_in_order

    with pytest.raises(LookupError, match=error):
        step_ids_in_order(listed, ["a: convert", "a: train"], "j-1")


@pytest.mark.chaos
def test_a_failing_step_still_terminates_the_cluster_and_fails_the_run(aws: Any, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch,
                                                                       reliability) -> None:
    started = time.monotonic()
    run, states = run_emr_dag(monkeypatch, tmp_path, fail_step="convert_csv_to_parquet")
    seconds = time.monotonic() - started
    cluster = only_cluster(aws)
    step_states = {s["Name"]: s["Status"]["State"] for s in aws.list_steps(ClusterId=cluster["Id"])["Steps"]}
    current = read_current(load_settings().models_uri, "assets")
    expected = [("DAG run", "failed", run.state),
                ("cluster", "TERMINATED", cluster["Status"]["State"]),
                ("step `assets: convert_csv_to_parquet`", "FAILED", step_states.get("assets: convert_csv_to_parquet")),
                ("step `assets: train_model`", "CANCELLED", step_states.get("assets: train_model")),
                ("task `watch_step` (both)", "failed", f"{states['watch_step[0]']}, {states['watch_step[1]']}"),
                ("task `terminate_cluster` (ALL_DONE)", "success", states["terminate_cluster"]),
                ("task `promote`", "upstream_failed", states["promote"]),
                ("task `watcher` (ONE_FAILED)", "failed", states["watcher"]),
                ("current.json", "absent (nothing promoted)", "absent" if current is None else current["version"])]
    reliability("emr_step_failure", "\n".join([
        "## An EMR step fails",
        "",
        "`pytest tests/orchestration/test_emr_backend.py -k failing_step` (in `make chaos` and `make test`): the DAG "
        "parsed with `PRONOSTICO_COMPUTE=emr` and run with `dag.test()` against moto's EMR and S3; the convert step "
        "is made to fail as EMR reports it (FAILED, the pending train step CANCELLED by `CANCEL_AND_WAIT`).",
        "",
        markdown_table(["what", "expected", "happened"], [[w, e, h] for w, e, h in expected]),
        "",
        f"The whole run took {seconds:.1f} s (sensor poke 1 s). Teardown runs whatever the steps did, and the "
        "watcher task turns the otherwise green teardown into a failed run.",
    ]))
    assert run.state == "failed"
    assert states["watch_step[0]"] == "failed" and states["watch_step[1]"] == "failed"  # FAILED, then CANCELLED
    assert states["terminate_cluster"] == "success"
    assert states["promote"] == "upstream_failed"
    assert states["watcher"] == "failed"
    assert cluster["Status"]["State"] == "TERMINATED"
    assert step_states == {"assets: convert_csv_to_parquet": "FAILED", "assets: train_model": "CANCELLED"}
    assert current is None


def test_staging_the_same_code_twice_writes_it_once(aws: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pronostico.orchestration.tasks import stage_code

    monkeypatch.setenv("PRONOSTICO_HOME", str(tmp_path))
    settings = load_settings()
    first = stage_code(settings)
    marker = storage.stat(storage.join(first, "code.json"))
    assert stage_code(settings) == first
    assert storage.stat(storage.join(first, "code.json")).modified == marker.modified
    staged = {o.key.split("/", 2)[2] for o in storage.list_objects(first)}
    assert {"pronostico.zip", "emr_scripts/convert_csv_to_parquet.py", "emr_scripts/train_model.py",
            "bootstrap/emr/bootstrap.sh", "code.json"} <= staged
