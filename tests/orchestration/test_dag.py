"""The DAG imports in both backends, and its EMR backend has the shape the cluster's cost and safety depend on."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pronostico.core.config import load_settings
from pronostico.pipeline.steps import pipeline_steps
from tests.orchestration.conftest import AIRFLOW_BIN, parse_dag


def import_errors_cli(home: Path, compute: str) -> tuple[int, list[dict[str, Any]]]:
    """`airflow dags list-import-errors --local`: the DAG folder parsed by Airflow's own CLI (exit 1 on errors)."""
    env = {**os.environ, "PRONOSTICO_COMPUTE": compute, "PRONOSTICO_HOME": str(home)}
    done = subprocess.run([AIRFLOW_BIN, "dags", "list-import-errors", "--local", "-o", "json"], env=env,
                          capture_output=True, text=True, timeout=180, check=False)
    return done.returncode, json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("compute", ["local", "emr"])
def test_the_dag_imports_without_errors_in_airflow_cli(airflow_db: Path, tmp_path: Path, compute: str) -> None:
    assert import_errors_cli(tmp_path, compute) == (0, [])


def test_the_cli_check_does_catch_a_broken_dag(airflow_db: Path, tmp_path: Path) -> None:
    code, errors = import_errors_cli(tmp_path, "kubernetes")
    assert code != 0 and len(errors) == 1
    assert "PRONOSTICO_COMPUTE must be 'local' or 'emr'" in errors[0]["error"]


def test_local_backend_runs_the_pipeline_steps_in_one_task_then_promotes(airflow_db: Path, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    dag = parse_dag(monkeypatch, tmp_path, "local")
    steps = [s.name for s in pipeline_steps(load_settings(), "assets", [], "r")]
    assert steps == ["convert_csv_to_parquet", "train_model"]
    order = ["plan_retrain", "spark_steps", "promote"]  # the steps share one spark-submit: one JVM start
    assert sorted(dag.task_ids) == sorted(order)
    for upstream, downstream in itertools.pairwise(order):
        assert upstream in dag.get_task(downstream).upstream_task_ids
    assert not any(type(t).__module__.startswith("airflow.providers.amazon") for t in dag.tasks)
    assert dag.max_active_runs == 1 and not dag.catchup


def test_the_weekly_schedule_is_the_default_and_can_be_turned_off(airflow_db: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    weekly = parse_dag(monkeypatch, tmp_path, "local").timetable
    assert weekly.expression == "0 0 * * 0"
    # the first run is the cron's next time, not the last one passed when the DAG is first unpaused
    assert type(weekly).__name__ == "CronTriggerTimetable" and weekly.run_immediately is False
    assert parse_dag(monkeypatch, tmp_path, "local").start_date is None
    off = parse_dag(monkeypatch, tmp_path, "local", PRONOSTICO_RETRAIN_SCHEDULE="none")
    assert type(off.timetable).__name__ == "NullTimetable"


@pytest.fixture
def emr_dag(airflow_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    return parse_dag(monkeypatch, tmp_path, "emr", PRONOSTICO_STORAGE="s3",
                     PRONOSTICO_EMR_SUBNET_IDS="subnet-a,subnet-b", PRONOSTICO_EMR_SECURITY_CONFIGURATION="sec")


def test_emr_backend_follows_the_providers_system_test(emr_dag: Any) -> None:
    from airflow.providers.amazon.aws.operators.emr import EmrCreateJobFlowOperator, EmrTerminateJobFlowOperator
    from airflow.providers.amazon.aws.sensors.emr import EmrStepSensor
    from airflow.sdk.definitions.xcom_arg import PlainXComArg

    tasks = {t.task_id: t for t in emr_dag.tasks}
    assert isinstance(tasks["create_cluster"], EmrCreateJobFlowOperator)
    # the whole request, steps included, is the cluster_request task's output, resolved when create_cluster runs
    request = tasks["create_cluster"].job_flow_overrides
    assert isinstance(request, PlainXComArg) and request.operator.task_id == "cluster_request"
    assert tasks["watch_step"].operator_class is EmrStepSensor  # mapped: one sensor per listed step
    assert isinstance(tasks["terminate_cluster"], EmrTerminateJobFlowOperator)
    assert not [t.task_id for t in emr_dag.tasks if "AddSteps" in type(t).__name__]
    chain = ["plan_retrain", "stage_code", "cluster_request", "create_cluster", "list_steps", "watch_step",
             "terminate_cluster", "promote"]
    for upstream, downstream in itertools.pairwise(chain):
        assert upstream in tasks[downstream].upstream_task_ids, f"{upstream} >> {downstream}"


def test_teardown_always_runs_and_a_watcher_fails_the_run(emr_dag: Any) -> None:
    tasks = {t.task_id: t for t in emr_dag.tasks}
    assert tasks["terminate_cluster"].trigger_rule == "all_done"
    assert tasks["terminate_cluster"].retries >= 1
    assert {"watch_step", "terminate_cluster"} <= tasks["promote"].upstream_task_ids
    assert tasks["promote"].trigger_rule == "all_success"
    watcher = tasks["watcher"]
    assert watcher.trigger_rule == "one_failed"
    assert watcher.upstream_task_ids == set(tasks) - {"watcher"}


def test_no_deprecated_waiting_on_the_cluster(emr_dag: Any) -> None:
    create = emr_dag.get_task("create_cluster")
    assert create.wait_policy is None and create.wait_for_completion is False
    sensor = emr_dag.get_task("watch_step")
    assert sensor.partial_kwargs["mode"] == "poke"  # a rescheduled sensor can be failed by a scheduler race


def planned_request() -> dict[str, Any]:
    """The cluster request for one upload, as the cluster_request task builds it."""
    from pronostico.orchestration.tasks import PlannedRun, cluster_request

    plan = PlannedRun("assets", ("s3://pronostico-dev-raw/assets/SPY.csv",))
    return cluster_request(load_settings(), [plan], "s3://b/code/v1", "s3__assets__x")


def test_cluster_uses_spot_fleets_and_cannot_outlive_its_work(emr_dag: Any) -> None:
    spec = planned_request()
    assert spec["ReleaseLabel"] == "emr-7.13.0"
    instances = spec["Instances"]
    assert instances["KeepJobFlowAliveWhenNoSteps"] is False and instances["TerminationProtected"] is False
    assert "InstanceGroups" not in instances
    fleets = {f["InstanceFleetType"]: f for f in instances["InstanceFleets"]}
    assert fleets["MASTER"]["TargetOnDemandCapacity"] == 1 and not fleets["MASTER"].get("TargetSpotCapacity")
    core = fleets["CORE"]
    assert core["TargetSpotCapacity"] >= 1 and core["TargetOnDemandCapacity"] == 0
    assert len({c["InstanceType"] for c in core["InstanceTypeConfigs"]}) >= 3
    spot = core["LaunchSpecifications"]["SpotSpecification"]
    assert spot["AllocationStrategy"] == "capacity-optimized" and spot["TimeoutAction"] == "SWITCH_TO_ON_DEMAND"
    assert instances["Ec2SubnetIds"] == ["subnet-a", "subnet-b"]
    assert spec["AutoTerminationPolicy"]["IdleTimeout"] == 1800
    assert spec["SecurityConfiguration"] == "sec"
    assert spec["LogUri"] == "s3://pronostico-dev-artifacts/emr-logs/"
    assert spec["BootstrapActions"][0]["ScriptBootstrapAction"]["Path"] == "s3://b/code/v1/bootstrap/emr/bootstrap.sh"
    exports = spec["Configurations"][0]["Configurations"][0]["Properties"]
    assert spec["Configurations"][0]["Classification"] == "spark-env"
    assert exports["PYSPARK_PYTHON"] == "/usr/bin/python3.11"
    tags = {t["Key"]: t["Value"] for t in spec["Tags"]}
    assert tags == {"for-use-with-amazon-emr-managed-policies": "true", "pronostico:dag_run": "s3__assets__x"}


def test_the_steps_are_in_the_cluster_request(emr_dag: Any) -> None:
    steps = planned_request()["Steps"]
    assert [s["Name"] for s in steps] == ["assets: convert_csv_to_parquet", "assets: train_model"]
    assert {s["ActionOnFailure"] for s in steps} == {"CANCEL_AND_WAIT"}
    assert all(s["HadoopJarStep"]["Args"][:3] == ["spark-submit", "--deploy-mode", "cluster"] for s in steps)
    assert all("s3://b/code/v1/pronostico.zip" in s["HadoopJarStep"]["Args"] for s in steps)
    assert all("s3__assets__x" in s["HadoopJarStep"]["Args"] for s in steps)


def test_cluster_request_is_a_valid_run_job_flow_request(emr_dag: Any) -> None:
    """Checked against botocore's model of the EMR API."""
    import boto3
    from botocore.validate import validate_parameters

    model = boto3.client("emr", region_name="us-east-1").meta.service_model.operation_model("RunJobFlow")
    validate_parameters(json.loads(json.dumps(planned_request())), model.input_shape)
