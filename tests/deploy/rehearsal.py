"""The first deploy, in the guide's order, against the AWS stand-in, with each component's own code and role.

1. The release is built and uploaded (`make aws-release`) and the stacks are created, with empty buckets.
2. The web instances boot (their launch template's user data, in sandboxes) and pass the health check.
3. The Airflow host boots.
4. The first upload, with the guide's own commands and data a clone makes.
5. The S3 event reaches the trigger handler, which starts a DAG run on the emr backend.
6. The cluster is created with its steps; `RehearsalStepDriver` plays EMR: it runs the local pipeline with the
   run's id, writes what the steps would have written, and completes them.
7. The DAG terminates the cluster, and its own `promote` task promotes.
8. The web instances swap the model in and answer a prediction, whose row reaches the database.

Two things are substituted, because moto cannot do them (`SUBSTITUTIONS`): the S3 notification, and the Lambda
invocation.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from pronostico.core.config import PROJECT_ROOT
from tests.deploy.guide import AWS_CLI, GuideRunner
from tests.deploy.imds import InstanceMetadataService
from tests.deploy.rds import TlsMariaDb
from tests.deploy.sandbox import BootResult, Host, Lan
from tests.deploy.stacks import ACCOUNT, EQUIVALENTS, REGION, Deployment, StackMaker
from tests.deploy.standin import AwsStandIn, Credentials
from tests.infra.conftest import load_template
from tests.orchestration.test_emr_backend import EmrStepDriver

PREFIX = "acme-pronostico-dev"
RELEASE_BUCKET = "acme-pronostico-releases"
EMR_POLL_SECONDS = "5"
SUBSTITUTIONS = {
    "the S3 event": "moto's CloudFormation ignores a bucket's NotificationConfiguration, so the rehearsal builds the "
                    "event from the object as moto reports it (HeadObject), filtered by the notification rules of "
                    "storage.yaml",
    "the Lambda invocation": "moto cannot invoke a Lambda without Docker: the handler runs in the test process, "
                             "with the function's configured environment, the Lambda role's session, and "
                             "PRONOSTICO_AIRFLOW_URL pointed at the sandboxed Airflow host instead of its VPC name",
    "the EMR steps": "moto never runs a step: a driver runs the local pipeline with the run's id, writes what the "
                     "steps would have written under the EMR instance role, and completes them",
}


SANDBOX_ADDITIONS = {
    "AWS_ENDPOINT_URL": "the stand-in's endpoint, for every SDK and the AWS CLI on the instance",
    "AWS_EC2_METADATA_SERVICE_ENDPOINT": "the rehearsal's instance-metadata endpoint (IMDSv2), which hands out the "
                                         "instance role's session",
}
NOT_COVERED = [
    ("the parent stack itself (`main.yaml`), its rollback and its update", "moto cannot resolve a nested stack's "
     "outputs; the rehearsal creates the nested stacks in the parent's order with the parameters it passes"),
    ("Spark on a real EMR cluster (YARN, spot capacity, the bootstrap action, cluster deploy mode)", "moto records "
     "clusters and steps but runs nothing; the steps' work is the local pipeline, run with the same run id"),
    ("RDS itself (its engine version, parameter group, TLS certificate chain)", "a TLS-only MariaDB with a CA of "
     "its own stands in; `require_secure_transport` is on, as the parameter group sets it"),
    ("the ALB, security groups and routing between subnets", "the instances share one bridge; the ALB's health "
     "check is made to each instance's target port directly"),
    ("SSM sessions, CloudWatch Logs, the alarm and QuickSight", "no such service runs here; the guide's session "
     "commands run in the sandboxed host directly"),
    ("Amazon Linux 2023 itself", "the sandboxes run this machine's Debian userland, with shims for `dnf`, "
     "`systemctl`, `postgresql-setup` and `cfn-signal`; the systemctl shim ignores `Restart=`, sandboxing options "
     "and ordering"),
]


def scope_section() -> str:
    """docs/DEPLOY.md's fixed part: what is made instead, substituted, added, and not covered."""
    from benchmarks.report import markdown_table

    return "\n".join([
        "## What the rehearsal covers, and what it cannot", "",
        "`make rehearse` runs `tests/deploy/` and assembles this document; `make test` runs the same tests, so "
        "nothing of the rehearsal is left out of it.", "",
        "Where moto cannot create a resource, its equivalent is made through the service's API:", "",
        markdown_table(["what", "how"], [[name, how] for name, how in EQUIVALENTS.items()]), "",
        "Substituted, because moto cannot do them:", "",
        markdown_table(["what", "how"], [[name, how] for name, how in SUBSTITUTIONS.items()]), "",
        "What the sandbox adds to an instance's environment, and nothing else (no credentials):", "",
        markdown_table(["variable", "why"], [[f"`{k}`", v] for k, v in SANDBOX_ADDITIONS.items()]), "",
        "The sandbox also gives each host a NAT to the package registries, as a VPC's NAT gateway does (the boot's "
        "`uv sync` asks PyPI for the build backend), and `/etc/uv/uv.toml` with `system-certs = true`, since this "
        "machine's registries are reached through a proxy whose CA is only in the system store.", "",
        "Not covered here:", "",
        markdown_table(["what", "why"], [list(row) for row in NOT_COVERED]),
    ])


@dataclass
class Timed:
    name: str
    seconds: float
    outcome: str


@dataclass
class Rehearsal:
    """Everything the first deploy made, for the tests to check and the report to show."""

    work: Path
    lan: Lan
    standin: AwsStandIn
    imds: InstanceMetadataService
    database: TlsMariaDb
    deployment: Deployment = field(default_factory=Deployment)
    release: Path = Path()
    version: str = ""
    sessions: dict[str, Credentials] = field(default_factory=dict)  # role ARN -> its session
    roles: dict[str, str] = field(default_factory=dict)  # "web", "airflow", "trigger", "emr-instance" -> role ARN
    hosts: dict[str, Host] = field(default_factory=dict)
    boots: dict[str, BootResult] = field(default_factory=dict)
    instance_ids: dict[str, str] = field(default_factory=dict)  # host name -> the EC2 instance id it plays
    steps: list[Timed] = field(default_factory=list)
    guide: GuideRunner | None = None
    notes: dict[str, Any] = field(default_factory=dict)

    # --- helpers ---------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        except BaseException as error:
            self.steps.append(Timed(name, time.monotonic() - started, f"failed: {str(error)[:300]}"))
            raise
        self.steps.append(Timed(name, time.monotonic() - started, "ok"))

    def admin(self, service: str) -> Any:
        return self.standin.client(service)

    def bucket(self, name: str) -> str:
        return f"{PREFIX}-{name}"

    # --- 1. the release and the stacks ----------------------------------------------------------------------

    def build_release(self) -> None:
        """The guide's section 2 and 3: the release bucket, then `make aws-release` uploads to it."""
        self.guide = GuideRunner(self.standin.endpoint, self.standin.admin.env(),
                                 {"AWS_REGION": REGION, "RELEASE_BUCKET": RELEASE_BUCKET, "PREFIX": PREFIX})
        self.guide.run("sts get-caller-identity")
        self.guide.run("s3api create-bucket")
        self.guide.run("s3api put-public-access-block")
        clean = not subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=PROJECT_ROOT,
                                   capture_output=True, text=True).stdout.strip()
        # A clean tree releases as the guide says; a developer's dirty tree is released as it stands.
        command = (["make", "aws-release", f"RELEASE_BUCKET={RELEASE_BUCKET}"] if clean else
                   ["bootstrap/aws/release.sh", "--allow-dirty", "--bucket", RELEASE_BUCKET])
        env = {**os.environ, **self.standin.admin.env(), "AWS_ENDPOINT_URL": self.standin.endpoint,
               "AWS_DEFAULT_REGION": REGION, "PATH": f"{AWS_CLI.parent}:{os.environ['PATH']}"}
        done = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        self.version = done.stdout.split("ReleaseVersion=", 1)[1].split(")", 1)[0].strip()
        self.release = PROJECT_ROOT / "dist" / "release" / self.version
        self.notes["release_command"] = " ".join(command)

    def create_stacks(self) -> None:
        maker = StackMaker(self.admin, self.release, RELEASE_BUCKET, self.version, PREFIX)
        parent = maker.parent_parameters()
        extra = {"WebStack": {"RdsCaBundleUrl": self.database.ca_url},
                 "OrchestrationStack": {"EmrPollSeconds": EMR_POLL_SECONDS}}
        self.deployment = maker.create_all(parent, {"DatabaseStack": self._database_stand_in}, extra)
        self.roles = {"web": self._role("WebStack", "WebRole"),
                      "airflow": self._role("OrchestrationStack", "AirflowHostRole"),
                      "trigger": self._role("TriggerStack", "TriggerRole"),
                      "emr-instance": self.admin("iam").get_role(RoleName=f"{PREFIX}-emr-instance")["Role"]["Arn"],
                      "emr-service": self.admin("iam").get_role(RoleName=f"{PREFIX}-emr-service")["Role"]["Arn"]}

    def _database_stand_in(self, parameters: dict[str, str]) -> dict[str, str]:
        secret = self.admin("secretsmanager").create_secret(
            Name=f"DbCredentials-{os.getpid()}", KmsKeyId=parameters["PlatformKeyArn"],
            Description="the prediction log's credentials (a TLS-only MariaDB stands in for RDS)",
            SecretString=json.dumps(self.database.secret()))
        found = self.database.secret()
        return {"DbSecretArn": secret["ARN"], "DbInstanceId": f"{parameters['BucketPrefix']}-log",
                "DbEndpoint": str(found["host"]), "DbPort": str(found["port"])}

    def _role(self, stack: str, logical_id: str) -> str:
        resources = self.admin("cloudformation").list_stack_resources(StackName=f"{PREFIX}-{stack}")
        name = next(r["PhysicalResourceId"] for r in resources["StackResourceSummaries"]
                    if r["LogicalResourceId"] == logical_id)
        return self.admin("iam").get_role(RoleName=name)["Role"]["Arn"]

    def open_sessions(self) -> None:
        """Each role's session, made (trust policies judged) before enforcement starts."""
        services = {"web": "ec2.amazonaws.com", "airflow": "ec2.amazonaws.com", "trigger": "lambda.amazonaws.com",
                    "emr-instance": "ec2.amazonaws.com", "emr-service": "elasticmapreduce.amazonaws.com"}
        for name, service in services.items():
            self.sessions[self.roles[name]] = self.standin.assume(self.roles[name], service, f"rehearsal-{name}")
        self.standin.enforce()

    def buckets_are_empty(self) -> dict[str, int]:
        s3 = self.admin("s3")
        return {name: s3.list_objects_v2(Bucket=self.bucket(name)).get("KeyCount", 0)
                for name in ("raw", "processed", "models", "artifacts")}

    # --- 2, 3. the boots ------------------------------------------------------------------------------------

    def web_instance_ids(self) -> list[str]:
        groups = self.admin("autoscaling").describe_auto_scaling_groups()["AutoScalingGroups"]
        [group] = [g for g in groups if "WebAutoScalingGroup" in g["AutoScalingGroupName"]]
        return [i["InstanceId"] for i in group["Instances"]]

    def boot(self, name: str, instance_id: str, role: str, user_data: str, timeout: float) -> BootResult:
        host = Host(name, self.lan, self.work / name, aws_endpoint_url=self.standin.endpoint,
                    metadata_endpoint_url=self.imds.endpoint).start()
        self.hosts[name] = host
        self.instance_ids[name] = instance_id
        role_arn = self.roles[role]
        session = self.sessions[role_arn]
        self.imds.register(host.address, instance_id, role_arn.rsplit("/", 1)[1], lambda: session)
        result = host.run_user_data(user_data, timeout)
        self.boots[name] = result
        return result

    def boot_web_instances(self) -> None:
        """The autoscaling group's instances boot at once, as they do on AWS."""
        ids = self.web_instance_ids()
        script = self.deployment.user_data["WebLaunchTemplate"]
        threads = [threading.Thread(target=self.boot, args=(f"web-{n}", instance_id, "web", script, 900))
                   for n, instance_id in enumerate(ids, 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def boot_airflow_host(self) -> None:
        host_id = self.deployment.output("AirflowHostId")
        self.boot("airflow", host_id, "airflow", self.deployment.user_data["AirflowLaunchTemplate"], 1200)

    def health(self, name: str) -> requests.Response:
        return requests.get(f"http://{self.hosts[name].address}:8000/healthz", timeout=5)

    # --- 4, 5. the upload and the trigger -------------------------------------------------------------------

    def first_upload(self) -> str:
        """The guide's section 6: make the synthetic data, then copy the matchups file to the raw bucket."""
        assert self.guide is not None
        self.guide.variables["RAW"] = self.bucket("raw")
        uv = str(Path.home() / ".local" / "bin")
        self.guide.run_block("pronostico data synthetic", PATH=f"{uv}:{AWS_CLI.parent}:{os.environ['PATH']}",
                             UV_PYTHON_DOWNLOADS="never")
        copied = self.guide.command("s3 cp", "s3://$RAW/")
        return copied.text.rsplit("s3://$RAW/", 1)[1].strip('"')

    def s3_event(self, key: str) -> dict[str, Any]:
        """The notification S3 would send for `key`, if storage.yaml's rules match it (else no records)."""
        head = self.admin("s3").head_object(Bucket=self.bucket("raw"), Key=key)
        matches = self.notifies(key)
        record = {"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": REGION,
                  "eventTime": head["LastModified"].strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                  "eventName": "ObjectCreated:Put",
                  "s3": {"s3SchemaVersion": "1.0",
                         "bucket": {"name": self.bucket("raw"), "arn": f"arn:aws:s3:::{self.bucket('raw')}"},
                         "object": {"key": urllib.parse.quote_plus(key, safe="/"), "size": head["ContentLength"],
                                    "eTag": head["ETag"].strip('"'), "versionId": head.get("VersionId", ""),
                                    "sequencer": f"{time.time_ns():X}"}}}
        return {"Records": [record] if matches else []}

    def notifies(self, key: str) -> bool:
        """Whether the raw bucket's notification rules (storage.yaml) send an upload of `key` to the trigger."""
        template = load_template(self.release / "cloudformation" / "storage.yaml")
        rules = template["Resources"]["RawBucket"]["Properties"]["NotificationConfiguration"]["LambdaConfigurations"]
        return any(all(key.startswith(r["Value"]) if r["Name"] == "prefix" else key.endswith(r["Value"])
                       for r in rule["Filter"]["S3Key"]["Rules"]) for rule in rules)

    def invoke_trigger(self, event: dict[str, Any]) -> dict[str, Any]:
        """The handler in this process, with the function's environment and the Lambda role's session."""
        config = self.admin("lambda").get_function_configuration(
            FunctionName=self.deployment.output("TriggerFunctionName"))
        environment = {**config["Environment"]["Variables"],
                       "PRONOSTICO_AIRFLOW_URL": f"http://{self.hosts['airflow'].address}:8080",
                       **self.sessions[config["Role"]].env(), "AWS_ENDPOINT_URL": self.standin.endpoint,
                       "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION}
        with patched_environment(environment):
            from lambda_trigger import handler

            handler._secret.cache_clear()
            return handler.handler(event, None)

    # --- 6, 7. the DAG run on EMR ---------------------------------------------------------------------------

    def airflow_api(self) -> AirflowRest:
        secret = json.loads(self.admin("secretsmanager").get_secret_value(
            SecretId=self.deployment.output("AirflowSecretArn"))["SecretString"])
        return AirflowRest(f"http://{self.hosts['airflow'].address}:8080", secret["username"], secret["password"])

    def run_dag(self, run_id: str, timeout: float) -> str:
        """Wait for the DAG run while the driver plays EMR; its final state."""
        api = self.airflow_api()
        driver = EmrStepDriver(region=REGION, write_version=self._train_step)
        with driver:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                state = api.run_state("pronostico_retrain", run_id)
                if state in ("success", "failed"):
                    break
                time.sleep(2)
        self.notes["task_states"] = api.task_states("pronostico_retrain", run_id)
        return state

    def failed_task_logs(self) -> str:
        """The end of each failed task's log on the Airflow host, for a failure message."""
        failed = [t.split("[")[0] for t, state in self.notes.get("task_states", {}).items() if state == "failed"]
        logs = self.hosts["airflow"].path("/var/lib/airflow/logs")
        found = [p for task in failed for p in sorted(logs.rglob(f"task_id={task}/**/*.log"))]
        return "\n".join(f"--- {p.relative_to(logs)}\n{p.read_text(errors='replace')[-2500:]}" for p in found)

    def _train_step(self, args: list[str]) -> None:
        """What the two steps write, from the local pipeline with the run's id, put under the EMR instance role."""
        value = dict(itertools.pairwise(args))
        home = self.work / "emr-step"
        shutil.rmtree(home, ignore_errors=True)
        raw = home / "s3" / self.bucket("raw")
        s3 = self.standin.client("s3", self.sessions[self.roles["emr-instance"]])
        inputs = [o["Key"] for o in s3.list_objects_v2(Bucket=self.bucket("raw"),
                                                        Prefix=f"{value['--use-case']}/")["Contents"]]
        for key in inputs:
            (raw / key).parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(self.bucket("raw"), key, str(raw / key))
        env = {**os.environ, "PRONOSTICO_HOME": str(home), "PRONOSTICO_STORAGE": "local",
               "PRONOSTICO_BUCKET_PREFIX": PREFIX}
        command = [sys.executable, "-m", "pronostico.local.cli", "pipeline", "run", "--use-case", value["--use-case"],
                   "--run-id", value["--run-id"], *(a for key in inputs for a in ("--input", str(raw / key)))]
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        self._put_outputs(s3, home / "s3", value["--use-case"], {str(raw / k): k for k in inputs})

    def _put_outputs(self, s3: Any, root: Path, use_case: str, inputs: dict[str, str]) -> None:
        for bucket in ("processed", "models"):
            folder = root / self.bucket(bucket)
            for path in sorted(p for p in folder.rglob("*") if p.is_file()):
                key = path.relative_to(folder).as_posix()
                if key.endswith("current.json") or "/promotions/" in key:
                    continue  # promotion is the DAG's own task
                body = path.read_bytes()
                if key.endswith("/manifest.json"):
                    body = self._manifest_inputs_on_s3(body, inputs, s3)
                s3.put_object(Bucket=self.bucket(bucket), Key=key, Body=body)

    def _manifest_inputs_on_s3(self, body: bytes, inputs: dict[str, str], s3: Any) -> bytes:
        """The local run's manifest names its local copies: name the objects they copy, as EMR's run would."""
        manifest = json.loads(body)
        for item in manifest.get("inputs", []):
            key = inputs[urllib.parse.unquote(item["uri"].removeprefix("file://"))]
            item["uri"] = f"s3://{self.bucket('raw')}/{key}"
            item["etag"] = s3.head_object(Bucket=self.bucket("raw"), Key=key)["ETag"].strip('"')
        return json.dumps(manifest, indent=2).encode()

    # --- 8. serving ---------------------------------------------------------------------------------------------

    def on_instance(self, name: str, script: str) -> str:
        """What the guide runs in an SSM session on an instance, run in its sandbox (as root, so `sudo` is a no-op)."""
        done = self.hosts[name].run(["bash", "-c", f"set -euo pipefail\nsudo() {{ \"$@\"; }}\n{script}"], timeout=120)
        assert done.returncode == 0, f"on {name}: {script}\n{done.stderr[-2000:]}"
        return done.stdout

    def run_guide_checks(self) -> None:
        """The guide's commands that come after the first deploy, as written, as the admin (or on an instance)."""
        assert self.guide is not None
        guide, outputs = self.guide, self.deployment.output
        guide.variables.update(MODELS=self.bucket("models"), ARTIFACTS=self.bucket("artifacts"),
                               AIRFLOW_SECRET=outputs("AirflowSecretArn"))
        assert json.loads(guide.run("s3 cp", "current.json"))["version"] == self.notes["version"]
        assert json.loads(guide.run("emr list-clusters", "--region"))["Clusters"] == []  # none left running
        guide.run("emr list-clusters", "list-clusters --active")
        assert "password" in guide.run("secretsmanager get-secret-value", "$AIRFLOW_SECRET")
        assert guide.run("ec2 describe-instances").strip() in self.web_instance_ids()
        guide.run("iam create-service-linked-role")
        self.admin("sqs").receive_message(QueueUrl=outputs("DeadLetterQueueUrl"), AttributeNames=["All"],
                                          MessageAttributeNames=["All"])  # the guide's re-drive, as the SDK sends it
        groups = self.admin("elbv2").describe_target_groups()["TargetGroups"]
        guide.run("elbv2 describe-target-health", placeholders={"<arn>": groups[0]["TargetGroupArn"]})
        self._database_check_on_a_web_instance()
        guide.run_block("revoke-security-group")  # the teardown: EMR's groups emptied of their rules
        guide.run("s3 rm", "-artifacts")
        guide.run("s3 rb", "-processed")

    def _database_check_on_a_web_instance(self) -> None:
        """Section 7: the row count, on a web instance, from its env file; then with the secret's fields."""
        from tests.deploy.guide import code_blocks

        assert self.guide is not None
        [block] = [b for _, b in code_blocks() if "PRONOSTICO_DB_URL" in b]
        on_instance = block.split("# on the instance:\n", 1)[1]
        assert "matchups 1" in self.on_instance("web-1", on_instance)
        command = self.guide.command("secretsmanager get-secret-value", "<DbSecretArn>")
        secret = command.text.replace("<DbSecretArn>", self.deployment.output("DbSecretArn"))
        assert "password" in self.on_instance("web-1", f"AWS_REGION={REGION}\n{secret}")
        self.guide.ran.append(command)

    def served_version(self, name: str, use_case: str) -> str:
        answer = requests.get(f"http://{self.hosts[name].address}:8000/api/v1/models", timeout=5).json()
        return str((answer.get(use_case) or {}).get("version", ""))


class AirflowRest:
    """The sandboxed Airflow host's REST API, as an operator would read it."""

    def __init__(self, url: str, username: str, password: str) -> None:
        self.url = url
        token = requests.post(f"{url}/auth/token", json={"username": username, "password": password}, timeout=10)
        token.raise_for_status()
        self.headers = {"Authorization": f"Bearer {token.json()['access_token']}"}

    def run_state(self, dag_id: str, run_id: str) -> str:
        answer = requests.get(f"{self.url}/api/v2/dags/{dag_id}/dagRuns/{run_id}", headers=self.headers, timeout=10)
        return str(answer.json().get("state")) if answer.ok else f"http {answer.status_code}"

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        answer = requests.get(f"{self.url}/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances",
                              headers=self.headers, timeout=10)
        tasks = answer.json().get("task_instances", [])
        return {t["task_id"] + ("" if t["map_index"] < 0 else f"[{t['map_index']}]"): str(t["state"]) for t in tasks}


@contextlib.contextmanager
def patched_environment(values: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    for key in [k for k in os.environ if k.startswith(("AWS_", "PRONOSTICO_"))]:
        del os.environ[key]
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def wait_for(what: str, check: Callable[[], bool], timeout: float, every: float = 1.0) -> float:
    """Seconds until `check()` held; an AssertionError naming `what` after `timeout`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        with contextlib.suppress(requests.RequestException):
            if check():
                return time.monotonic() - started
        time.sleep(every)
    raise AssertionError(f"{what}: not within {timeout:.0f} s")


__all__ = ["ACCOUNT", "PREFIX", "SUBSTITUTIONS", "Rehearsal", "wait_for"]
