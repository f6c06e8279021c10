"""What the `pronostico_retrain` DAG's tasks do, as plain functions; dags/ only wires them together.

A run's conf comes from the trigger (lambda_trigger.events.Upload.conf) or from a person:

    {"use_case": "assets", "bucket": "...", "key": "assets/SPY.csv", "etag": "...", "version_id": "..."}
    {"use_case": "assets", "input_uris": ["s3://.../assets/SPY.csv"]}         explicit inputs
    {}                                                                     every use case with raw data (the schedule)

plus, optionally, "train_params" (TrainConfig overrides, an object or JSON text), "force" (train even when the
serving model was trained on exactly these inputs) and "retune" (run the hyperparameter grid again rather than
refit with the champion's parameters; the weekly schedule always retunes). `plan_retrain` turns it into one
PlannedRun per use case; the local backend runs their `pipeline_steps` in one spark-submit (`run_spark_steps`),
the EMR backend passes them as `emr_step`s in the cluster's creation request (`cluster_request`); promotion comes
last either way.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import pronostico
from pronostico.core import layout, storage
from pronostico.core.config import PROJECT_ROOT, Settings
from pronostico.core.usecases import USE_CASES, get_use_case
from pronostico.orchestration import packaging
from pronostico.pipeline import convert as data
from pronostico.pipeline.launcher import SCRIPTS_DIR
from pronostico.pipeline.steps import (
    StepFailed,
    emr_step,
    pipeline_steps,
    quarantine_uri,
    run_steps_locally,
)

LOG = logging.getLogger(__name__)
EMR_BOOTSTRAP = PROJECT_ROOT / "bootstrap" / "emr" / "bootstrap.sh"


class RunRejected(Exception):
    """The run cannot start: a bad conf, or an input that fails validation. The message says why, in one line."""


@dataclass(frozen=True)
class PlannedRun:
    use_case: str
    input_uris: tuple[str, ...]
    train_params: str = ""
    trigger_uri: str = ""  # the uploaded object that started the run, if one did
    retune: bool = False  # tune the hyperparameters again; otherwise the train step refits with the champion's

    def to_xcom(self) -> dict[str, Any]:
        return {**asdict(self), "input_uris": list(self.input_uris)}

    @classmethod
    def from_xcom(cls, value: Mapping[str, Any]) -> PlannedRun:
        return cls(**{**value, "input_uris": tuple(value["input_uris"])})


# --- validate and locate the input -------------------------------------------------------------------------------

def plan_retrain(settings: Settings, conf: Mapping[str, Any], run_id: str,
                 scheduled: bool = False) -> list[PlannedRun]:
    """One PlannedRun per use case to retrain; empty when there is nothing to do. A scheduled run retunes."""
    options = {"train_params": _train_params(conf.get("train_params") or settings.train_params),
               "retune": scheduled or _flag(conf, "retune")}
    force = _flag(conf, "force")
    if not conf.get("use_case"):
        if conf.get("key") or conf.get("input_uris"):
            raise RunRejected("conf names inputs but no use_case")
        return [PlannedRun(uc, inputs, **options) for uc in USE_CASES
                if (inputs := _training_inputs(settings, uc))]
    use_case = str(conf["use_case"])
    if use_case not in USE_CASES:
        raise RunRejected(f"unknown use case {use_case!r}: choose one of {', '.join(USE_CASES)}")
    if conf.get("input_uris"):
        inputs = tuple(str(uri) for uri in conf["input_uris"])
        for uri in inputs:
            _check_input(settings, use_case, uri, run_id)
        return [PlannedRun(use_case, inputs, **options)]
    if not conf.get("key"):
        return _whole_use_case(settings, use_case, options)
    return _triggered_by_upload(settings, conf, use_case, run_id, options, force)


def _flag(conf: Mapping[str, Any], name: str) -> bool:
    value = conf.get(name, False)
    if not isinstance(value, bool):
        raise RunRejected(f"{name} must be true or false, not {value!r}")
    return value


def _whole_use_case(settings: Settings, use_case: str, options: Mapping[str, Any]) -> list[PlannedRun]:
    inputs = _training_inputs(settings, use_case)
    if not inputs:
        raise RunRejected(f"no valid raw CSV under {storage.join(settings.raw_uri, use_case)}")
    return [PlannedRun(use_case, inputs, **options)]


def _triggered_by_upload(settings: Settings, conf: Mapping[str, Any], use_case: str, run_id: str,
                         options: Mapping[str, Any], force: bool) -> list[PlannedRun]:
    trigger = object_uri(settings, str(conf.get("bucket", "")), str(conf["key"]))
    info = _check_input(settings, use_case, trigger, run_id)
    if conf.get("etag") and conf["etag"] != info.etag:
        LOG.warning("%s changed since the event (etag %s, now %s): training on what is there now",
                    trigger, conf["etag"], info.etag)
    objects = data.training_inputs(settings.raw_uri, quarantine_uri(settings, use_case), use_case)
    inputs = tuple(o.uri for o in objects)
    if trigger not in inputs:
        if layout.is_synthetic(settings.raw_uri, use_case, trigger):
            LOG.info("%s is synthetic demo data, left out because %s has real data: nothing to run", trigger,
                     use_case)
            return []
        raise RunRejected(f"{trigger} is not among the training inputs of {use_case}")
    # S3 sends one event per object: six files uploaded together make six runs, and the first trains on all six.
    trained = trained_on_exactly(settings, use_case, {(o.uri, o.etag) for o in objects}) if not force else ""
    if trained:
        LOG.info("%s version %s was trained on exactly these %d inputs: nothing to retrain "
                 "(trigger with \"force\": true to train anyway)", use_case, trained, len(inputs))
        return []
    return [PlannedRun(use_case, inputs, trigger_uri=trigger, **options)]


def object_uri(settings: Settings, bucket: str, key: str) -> str:
    """The URI of an object named by an S3 event, in the raw bucket this deployment reads."""
    if storage.is_s3(settings.raw_uri):
        raw_bucket, prefix = storage.split_uri(settings.raw_uri)
        if bucket != raw_bucket or prefix:
            raise RunRejected(f"the event names bucket {bucket!r}, but the raw bucket is {settings.raw_uri}")
        return f"s3://{bucket}/{key}"
    root = storage.local_path(settings.raw_uri)
    if bucket != root.name:
        raise RunRejected(f"the event names bucket {bucket!r}, but the local raw bucket is {root.name!r}")
    return (root / key).as_uri()  # the form storage.list_objects gives, so that the two compare equal


def _check_input(settings: Settings, use_case: str, uri: str, run_id: str) -> storage.ObjectInfo:
    """The object's details, once its header passed preflight; a bad file is quarantined and rejects the run."""
    if not storage.exists(uri):
        raise RunRejected(f"{uri} does not exist (deleted since the upload?)")
    info = storage.stat(uri)
    quarantine = quarantine_uri(settings, use_case)
    if data.is_rejected(quarantine, info.etag):
        earlier = storage.read_json(data.rejected_marker(quarantine, info.etag))
        raise RunRejected(f"{uri} was rejected by run {earlier.get('run_id')}: {earlier.get('reason')}")
    try:
        data.preflight(get_use_case(use_case), uri, quarantine, run_id)
    except data.FileRejected as rejection:
        raise RunRejected(f"{rejection} (quarantined under {data.run_quarantine_uri(quarantine, run_id)})") from None
    return info


def _training_inputs(settings: Settings, use_case: str) -> tuple[str, ...]:
    return tuple(o.uri for o in data.training_inputs(settings.raw_uri, quarantine_uri(settings, use_case), use_case))


def trained_on_exactly(settings: Settings, use_case: str, inputs: set[tuple[str, str]]) -> str:
    """The serving version, or else the newest, when it was trained on exactly these (uri, etag) inputs; "" when
    neither was. The newest counts too: a candidate the gate kept out was still trained on them, and training again
    on the same inputs makes the same model."""
    from pronostico.core.registry import champion_manifest, newest_manifest

    for manifest in (champion_manifest(settings.models_uri, use_case), newest_manifest(settings.models_uri, use_case)):
        if manifest and {(i["uri"], i["etag"]) for i in manifest.get("inputs", [])} == inputs:
            return str(manifest["version"])
    return ""


def _train_params(value: Any) -> str:
    from pronostico.pipeline.train import TrainConfig

    text = json.dumps(value, sort_keys=True) if isinstance(value, Mapping) else str(value or "")
    try:
        TrainConfig.from_json(text)
    except (ValueError, TypeError) as error:
        raise RunRejected(f"bad train_params: {error}") from None
    return text


# --- the local backend -----------------------------------------------------------------------------------------

def run_spark_steps(settings: Settings, plans: Sequence[PlannedRun], run_id: str) -> list[dict[str, Any]]:
    """Run `pipeline_steps` in local mode, one spark-submit for each planned use case: its steps' results."""
    log_dir = settings.logs_dir / "steps" / storage.safe_name(run_id)
    results = []
    for plan in plans:
        steps = pipeline_steps(settings, plan.use_case, plan.input_uris, run_id, plan.train_params, plan.retune)
        log_path = log_dir / f"{plan.use_case}.log"
        LOG.info("%s for %s: %d input(s); step log %s", ", then ".join(s.name for s in steps), plan.use_case,
                 len(plan.input_uris), log_path)
        results.append(run_steps_locally(steps, settings, log_path))
        LOG.info("%s: %s", plan.use_case, json.dumps(results[-1]))
    return results


def describe_failure(failure: StepFailed) -> str:
    """The step's reason, and where its whole log is, for the task log."""
    where = f"; step log {failure.log_path}" if failure.log_path else ""
    return f"{failure.step.name} failed: {failure.reason}{where}"


# --- the EMR backend -------------------------------------------------------------------------------------------

def emr_steps(settings: Settings, plans: Sequence[PlannedRun], code_uri: str, run_id: str) -> list[dict[str, Any]]:
    """The same `pipeline_steps`, as EMR steps, for every planned use case in turn."""
    return [emr_step(step, code_uri, plan.use_case) for plan in plans
            for step in pipeline_steps(settings, plan.use_case, plan.input_uris, run_id, plan.train_params,
                                       plan.retune)]


PYSPARK_PYTHON = "/usr/bin/python3.11"  # installed by bootstrap/emr/bootstrap.sh
PRIMARY_FLEET: dict[str, Any] = {
    "Name": "primary (on-demand)",
    "InstanceFleetType": "MASTER",
    "TargetOnDemandCapacity": 1,
    "InstanceTypeConfigs": [{"InstanceType": t} for t in ("m5.xlarge", "m6i.xlarge", "m5a.xlarge")],
}
CORE_INSTANCE_TYPES = ("m5.xlarge", "m5a.xlarge", "m6i.xlarge", "m5d.xlarge", "r5.xlarge")


def core_fleet(target_spot_units: int) -> dict[str, Any]:
    return {
        "Name": "core (spot, on-demand fallback)",
        "InstanceFleetType": "CORE",
        "TargetSpotCapacity": target_spot_units,
        "TargetOnDemandCapacity": 0,
        # several types of one size: capacity-optimized picks the pools least likely to be reclaimed
        "InstanceTypeConfigs": [{"InstanceType": t, "WeightedCapacity": 1, "BidPriceAsPercentageOfOnDemandPrice": 100}
                                for t in CORE_INSTANCE_TYPES],
        "LaunchSpecifications": {
            "SpotSpecification": {"AllocationStrategy": "capacity-optimized", "TimeoutDurationMinutes": 10,
                                  "TimeoutAction": "SWITCH_TO_ON_DEMAND"},
            "OnDemandSpecification": {"AllocationStrategy": "lowest-price"},
        },
    }


def cluster_request(settings: Settings, plans: Sequence[PlannedRun], code_uri: str, run_id: str) -> dict[str, Any]:
    """The whole RunJobFlow request: a transient spot cluster that is created with its steps.

    The steps go in the request itself: with KeepJobFlowAliveWhenNoSteps false, a cluster that comes up before a
    separate AddJobFlowSteps call reaches it has nothing to do and terminates.
    """
    emr = settings.emr
    return {
        "Name": f"pronostico-retrain {run_id}",
        "ReleaseLabel": emr.release_label,  # emr-7.13.0: Spark 3.5.6, as pyspark in uv.lock
        "Applications": [{"Name": "Spark"}],
        "LogUri": emr.log_uri,
        "Instances": {
            "InstanceFleets": [PRIMARY_FLEET, core_fleet(emr.core_target_spot_units)],
            "KeepJobFlowAliveWhenNoSteps": False,  # the cluster ends when its last step does
            "TerminationProtected": False,
            **present(Ec2SubnetIds=list(emr.subnet_ids),
                      EmrManagedMasterSecurityGroup=emr.primary_security_group,
                      EmrManagedSlaveSecurityGroup=emr.core_security_group,
                      ServiceAccessSecurityGroup=emr.service_access_security_group),
        },
        "Steps": emr_steps(settings, plans, code_uri, run_id),
        "AutoTerminationPolicy": {"IdleTimeout": emr.idle_timeout_seconds},  # the backstop if teardown never runs
        "BootstrapActions": [{"Name": "python3.11 and the pinned numpy/pandas/pyarrow",
                              "ScriptBootstrapAction": {"Path": storage.join(code_uri, layout.EMR_BOOTSTRAP)}}],
        "Configurations": [
            {"Classification": "spark-env",
             "Configurations": [{"Classification": "export", "Properties": {"PYSPARK_PYTHON": PYSPARK_PYTHON}}]},
            {"Classification": "spark-defaults", "Properties": {"spark.pyspark.python": PYSPARK_PYTHON}},
        ],
        "JobFlowRole": emr.instance_profile,
        "ServiceRole": emr.service_role,
        **present(SecurityConfiguration=emr.security_configuration),
        "VisibleToAllUsers": True,
        "Tags": [{"Key": "for-use-with-amazon-emr-managed-policies", "Value": "true"},
                 {"Key": "pronostico:dag_run", "Value": run_id}],
    }


def cluster_step_ids(emr_client: Any, cluster_id: str, step_names: Sequence[str]) -> list[str]:
    """The ids of the cluster's steps named `step_names`, in that order, from ListSteps."""
    pages = emr_client.get_paginator("list_steps").paginate(ClusterId=cluster_id)
    return step_ids_in_order((step for page in pages for step in page["Steps"]), step_names, cluster_id)


def step_ids_in_order(listed: Iterable[Mapping[str, Any]], step_names: Sequence[str], cluster_id: str) -> list[str]:
    """Map ListSteps' summaries, which AWS returns newest first, back onto the order the steps were given in."""
    ids: dict[str, list[str]] = {}
    for step in listed:
        ids.setdefault(step["Name"], []).append(step["Id"])
    problems = [f"no step named {name!r}" for name in step_names if name not in ids]
    # a name given or listed twice could map a sensor onto the wrong step
    problems += [f"the name {name!r} is not unique" for name in dict.fromkeys(step_names)
                 if len(ids.get(name, ())) > 1 or list(step_names).count(name) > 1]
    if problems:
        raise LookupError(f"cluster {cluster_id}: {'; '.join(problems)} (it lists {sorted(ids)})")
    return [ids[name][0] for name in step_names]


def code_archive() -> dict[str, bytes]:
    """What EMR needs, by path under <artifacts>/code/<code version>/."""
    files = {layout.PACKAGE_ZIP: packaging.pronostico_zip()}
    scripts = sorted(SCRIPTS_DIR.glob("*.py"))
    if not scripts:
        raise FileNotFoundError(f"no Spark scripts in {SCRIPTS_DIR}")
    files.update({f"{layout.EMR_SCRIPTS}/{path.name}": path.read_bytes() for path in scripts})
    if EMR_BOOTSTRAP.exists():
        files[layout.EMR_BOOTSTRAP] = EMR_BOOTSTRAP.read_bytes()
    return files


def stage_code(settings: Settings) -> str:
    """Copy the code to the artifacts bucket once per code version; return the version's URI."""
    files = code_archive()
    version = f"{pronostico.__version__}-{packaging.digest(*(files[name] for name in sorted(files)))[:12]}"
    code_uri = layout.code_uri(settings.artifacts_uri, version)
    marker = storage.join(code_uri, layout.CODE_MARKER)
    if storage.exists(marker):
        LOG.info("code version %s is already staged at %s", version, code_uri)
        return code_uri
    for name, blob in sorted(files.items()):
        storage.write_bytes(storage.join(code_uri, name), blob)
    storage.write_json(marker, {"version": version, "files": sorted(files),
                                "staged_at": datetime.now(UTC).isoformat(timespec="seconds")})
    LOG.info("staged code version %s at %s: %s", version, code_uri, ", ".join(sorted(files)))
    return code_uri


def present(**fields: Any) -> dict[str, Any]:
    """Only the fields that are set: EMR rejects empty security groups and configuration names."""
    return {name: value for name, value in fields.items() if value not in ("", None, [], ())}


# --- promotion ---------------------------------------------------------------------------------------------------

def promote(settings: Settings, plans: Sequence[PlannedRun], run_id: str) -> list[dict[str, Any]]:
    """The promotion gate for the version this run trained, per use case."""
    from pronostico.core.registry import promote_candidate, version_for_run

    decisions = []
    for plan in plans:
        version = version_for_run(settings.models_uri, plan.use_case, run_id)
        decision = promote_candidate(settings.models_uri, plan.use_case, version)
        LOG.info("%s %s: %s", plan.use_case, "promoted" if decision.promoted else "champion kept", decision.reason)
        decisions.append(asdict(decision))
    return decisions
