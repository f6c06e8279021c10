"""The deploy rehearsal: the guide's first deploy, step by step, each component's real code under its own role.

The tests run in order and share one rehearsal (tests/deploy/rehearsal.py); each performs its step of the first
deploy and checks it, so the first failure names the step that broke. Every AWS request is judged by the stand-in's
IAM simulator against the templates' own policies, and a refused call fails the last checks by role and action.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
import requests

from benchmarks.report import markdown_table, save_section
from lambda_trigger.events import use_case_of
from tests.deploy.guide import NOT_CHECKABLE, V2_ONLY, guide_commands
from tests.deploy.imds import InstanceMetadataService
from tests.deploy.rds import TlsMariaDb
from tests.deploy.rehearsal import PREFIX, Rehearsal, scope_section, wait_for
from tests.deploy.sandbox import Lan
from tests.deploy.stacks import REGION
from tests.deploy.standin import AwsStandIn
from tests.deploy.standin_permissions import IMPLIED_PERMISSIONS

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]
MODEL_POLL_SECONDS = 15  # web.yaml's default, which the rehearsal keeps
FAILED: list[str] = []  # steps that failed: the later ones cannot run


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rehearsal]:
    work = tmp_path_factory.mktemp("rehearsal")
    with Lan() as lan, AwsStandIn(host=lan.gateway, region=REGION) as standin, \
            InstanceMetadataService(lan.gateway) as imds, TlsMariaDb(lan.gateway, work / "rds") as database:
        run = Rehearsal(work, lan, standin, imds, database)
        try:
            yield run
        finally:
            for host in run.hosts.values():
                host.stop()
            report(run)


@pytest.fixture
def step(rehearsal: Rehearsal, request: pytest.FixtureRequest) -> Iterator[Rehearsal]:
    """The rehearsal, if every earlier step passed; a failure here stops the later ones."""
    if FAILED:
        pytest.fail(f"an earlier step of the first deploy failed: {FAILED[0]}")
    failed_before = request.session.testsfailed
    yield rehearsal
    if request.session.testsfailed > failed_before:
        FAILED.append(request.node.name)


def test_1_the_release_and_the_stacks_are_created_with_empty_buckets(step: Rehearsal) -> None:
    with step.step("build and upload the release"):
        step.build_release()
    with step.step("create the stacks"):
        step.create_stacks()
        step.open_sessions()
    assert step.buckets_are_empty() == {"raw": 0, "processed": 0, "models": 0, "artifacts": 0}
    releases = step.admin("s3").list_objects_v2(Bucket="acme-pronostico-releases")["Contents"]
    assert {f"releases/{step.version}/{name}" for name in ("boot.sh", "pronostico-src.tar.gz", "lambda_trigger.zip",
                                                           "cloudformation/main.yaml")} <= {o["Key"] for o in releases}


def test_2_the_web_instances_boot_and_pass_the_health_check_with_no_model(step: Rehearsal) -> None:
    with step.step("boot the web instances (both at once)"):
        step.boot_web_instances()
    ids = step.web_instance_ids()
    assert len(ids) >= 2  # the creation policy waits for WebMinSize signals
    for name in ("web-1", "web-2"):
        boot = step.boots[name]
        assert boot.exit_code == 0, f"{name} boot failed:\n{boot.boot_log[-3000:]}\n{boot.output[-2000:]}"
    signals = [s for s in step.standin.signals if s.logical_id == "WebAutoScalingGroup"]
    assert sorted(s.unique_id for s in signals) == sorted(ids)
    assert {s.status for s in signals} == {"SUCCESS"} and {s.principal for s in signals} == {step.roles["web"]}
    for name in ("web-1", "web-2"):  # the ALB's check: /healthz on the target port, 200
        answer = step.health(name)
        assert answer.status_code == 200, answer.text
        assert answer.json()["models"] == {} and set(answer.json()["not_promoted"]) == {"matchups", "assets"}


def test_3_the_airflow_host_boots(step: Rehearsal) -> None:
    with step.step("boot the Airflow host"):
        step.boot_airflow_host()
    boot = step.boots["airflow"]
    assert boot.exit_code == 0, f"airflow boot failed:\n{boot.boot_log[-4000:]}\n{boot.output[-2000:]}"
    [signal] = [s for s in step.standin.signals if s.logical_id == "AirflowHost"]
    assert (signal.status, signal.unique_id, signal.principal) == (
        "SUCCESS", step.deployment.output("AirflowHostId"), step.roles["airflow"])
    health = requests.get(f"http://{step.hosts['airflow'].address}:8080/api/v2/monitor/health", timeout=10).json()
    assert health["scheduler"]["status"] == "healthy"


def test_4_the_first_upload_starts_a_dag_run_on_the_emr_backend(step: Rehearsal) -> None:
    with step.step("the first upload (the guide's commands)"):
        key = step.first_upload()
    with step.step("the S3 event reaches the trigger handler"):
        event = step.s3_event(key)
        assert len(event["Records"]) == 1, f"storage.yaml's notification rules do not match {key}"
        outcome = step.invoke_trigger(event)
    assert outcome["failed"] == [] and len(outcome["triggered"]) == 1, outcome
    step.notes["run_id"] = outcome["triggered"][0]
    assert step.notifies("assets/x.csv") and not step.notifies("matchups/notes.txt")
    assert step.notifies("other/x.csv") and use_case_of("other/x.csv") is None  # S3 sends it; the trigger ignores it


def test_5_the_cluster_runs_its_steps_is_terminated_and_the_dag_promotes(step: Rehearsal) -> None:
    run_id = step.notes["run_id"]
    with step.step("the DAG run on EMR (cluster, steps, teardown, promote)"):
        state = step.run_dag(run_id, timeout=900)
    tasks = step.notes["task_states"]
    refusals = [f"{r.principal}: {r.action} on {r.resource}" for r in step.standin.refusals]
    assert state == "success", f"{json.dumps(tasks)}\nrefused: {refusals}\n{step.failed_task_logs()}"
    emr = step.admin("emr")
    [cluster] = emr.list_clusters()["Clusters"]
    assert cluster["Status"]["State"] == "TERMINATED"
    steps = emr.list_steps(ClusterId=cluster["Id"])["Steps"]
    assert sorted(s["Name"] for s in steps) == ["matchups: convert_csv_to_parquet", "matchups: train_model"]
    assert {s["Status"]["State"] for s in steps} == {"COMPLETED"}
    tags = {t["Key"]: t["Value"] for t in emr.describe_cluster(ClusterId=cluster["Id"])["Cluster"]["Tags"]}
    assert tags["for-use-with-amazon-emr-managed-policies"] == "true"
    current = json.loads(step.admin("s3").get_object(Bucket=step.bucket("models"),
                                                      Key="matchups/current.json")["Body"].read())
    step.notes["version"] = current["version"]
    assert tasks["promote"] == "success" and tasks["terminate_cluster"] == "success"


def test_6_the_web_instances_serve_the_model_and_log_the_prediction(step: Rehearsal) -> None:
    version = step.notes["version"]
    with step.step("the web instances swap the model in"):
        for name in ("web-1", "web-2"):
            wait_for(f"{name} serving {version}", lambda n=name: step.served_version(n, "matchups") == version, 90)
        # One worker answering is not all of them: each polls current.json every ModelPollSeconds (15 by default).
        time.sleep(MODEL_POLL_SECONDS + 5)
    before = int(step.database.sql("SELECT COUNT(*) FROM pronostico.prediction_log") or 0)
    with step.step("a prediction, logged to the database"):
        teams = requests.get(f"http://{step.hosts['web-1'].address}:8000/api/v1/matchups/teams", timeout=10).json()
        names = [t["name"] if isinstance(t, dict) else t for t in teams.get("teams", teams)][:2]
        answer = requests.post(f"http://{step.hosts['web-1'].address}:8000/api/v1/matchups/predict", timeout=10,
                               json={"home_team": names[0], "away_team": names[1], "neutral": True})
        assert answer.status_code == 200, answer.text
        assert answer.json()["model_version"] == version
        wait_for("the prediction's row in the database", lambda: int(step.database.sql(
            "SELECT COUNT(*) FROM pronostico.prediction_log")) == before + 1, 60)


def test_7_no_call_was_refused_and_the_implied_permissions_hold(step: Rehearsal) -> None:
    key = step.deployment.output("PlatformKeyArn")
    queue = f"arn:aws:sqs:{REGION}:123456789012:{PREFIX}-trigger-dlq"
    trigger, emr_instance = step.roles["trigger"], step.roles["emr-instance"]
    checks = [(trigger, "kms:GenerateDataKey", key), (trigger, "kms:Decrypt", key), (trigger, "sqs:SendMessage", queue),
              (emr_instance, "kms:GenerateDataKey", key), (emr_instance, "kms:Decrypt", key),
              (step.roles["emr-service"], "kms:CreateGrant", key)]
    results = {(role.rsplit("/", 1)[1], action): step.standin.check(role, action, resource,
                                                                    {"kms:GrantIsForAWSResource": True})
               for role, action, resource in checks}
    step.notes["implied_checks"] = results
    refused = [f"{r.principal} may not {r.action} on {r.resource}" for r in step.standin.refusals]
    assert refused == []
    assert all(results.values()), results


def test_8_every_guide_command_is_rehearsed_or_explained(step: Rehearsal) -> None:
    assert step.guide is not None
    step.run_guide_checks()
    ran = {c.text for c in step.guide.ran}
    unexplained = [f"line {c.line}: {c.text}" for c in guide_commands()
                   if c.text not in ran and c.key not in NOT_CHECKABLE and c.key not in V2_ONLY]
    assert unexplained == []
    stale = sorted(set(NOT_CHECKABLE) - {c.key for c in guide_commands()})
    assert stale == [], "NOT_CHECKABLE names commands the guide no longer has"


# --- docs/DEPLOY.md ------------------------------------------------------------------------------------------------

def report(run: Rehearsal) -> None:
    """Each section of docs/DEPLOY.md that this run measured (make rehearse assembles them)."""
    save_section("deploy", "first_deploy", "## The first deploy, step by step\n\n" + markdown_table(
        ["step", "seconds", "outcome"], [[s.name, f"{s.seconds:.1f}", s.outcome] for s in run.steps]))
    boots = [[name, f"{b.seconds:.1f}", "exit " + str(b.exit_code),
              ", ".join(f"{s.logical_id} {s.status}" for s in run.standin.signals
                        if s.unique_id == run.instance_ids[name]) or "none"] for name, b in sorted(run.boots.items())]
    save_section("deploy", "boots", "## Each boot: time and signal\n\nThe launch template's rendered `UserData`, run "
                 "as root in a sandbox (`tests/deploy/sandbox.py`).\n\n"
                 + markdown_table(["instance", "seconds", "user data", "cfn-signal"], boots))
    header, *rows = run.standin.summary()
    save_section("deploy", "calls", "## AWS calls per role\n\nEvery request to the stand-in, judged by the IAM "
                 "simulator against the role's policies as the templates define them.\n\n"
                 + markdown_table(header, rows))
    implied = [[p.permission, p.when, p.judged_by, p.documentation] for p in IMPLIED_PERMISSIONS]
    checked = [[f"{role}: {action}", "allowed" if ok else "REFUSED"]
               for (role, action), ok in sorted(run.notes.get("implied_checks", {}).items())]
    save_section("deploy", "implied_permissions", "## Permissions AWS checks beyond the action called\n\n"
                 + markdown_table(["permission", "when", "judged by", "required by"], implied)
                 + "\n\nJudged by the rehearsal with `check()`:\n\n" + markdown_table(["role: action", "result"],
                                                                                   checked))
    ran = {c.text for c in run.guide.ran} if run.guide else set()
    commands = [[c.line, f"`{c.text[:90]}`", "run" if c.text in ran else
                 NOT_CHECKABLE.get(c.key) or V2_ONLY.get(c.key, "not run")] for c in guide_commands()]
    save_section("deploy", "guide_commands", "## The guide's `aws` commands\n\n" + markdown_table(
        ["line", "command", "rehearsed, or why not"], commands))
    save_section("deploy", "scope", scope_section())
