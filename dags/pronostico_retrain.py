"""pronostico_retrain: an upload to the raw bucket (or the weekly schedule) retrains a use case and promotes it.

Triggered by the S3 -> Lambda -> REST trigger (`lambda_trigger`) with the uploaded object in its conf, or on the
schedule with no conf (every use case that has raw data). `PRONOSTICO_COMPUTE`, read when this file is parsed,
picks the backend:

- **emr**: validate and locate the input -> stage the code -> build the cluster request, steps included -> create a
  transient spot cluster with its steps -> list their ids -> watch each step -> terminate the cluster (always) ->
  promote -> a watcher that fails the run if anything failed.
- **local**: validate and locate the input -> the same steps in one spark-submit in local mode -> promote.

An upload refits the forest with the champion's tuned hyperparameters; the weekly schedule, a conf with
`"retune": true` (`pronostico trigger --retune`), a first model and a change of features, input schema or training
settings run the hyperparameter grid again (`pronostico.pipeline.train.choose_tuning`).

The steps are `pronostico.pipeline.steps.pipeline_steps`, defined once; the tasks call `pronostico.orchestration.tasks`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.providers.amazon.aws.hooks.emr import EmrHook
from airflow.providers.amazon.aws.operators.emr import EmrCreateJobFlowOperator, EmrTerminateJobFlowOperator
from airflow.providers.amazon.aws.sensors.emr import EmrStepSensor
from airflow.sdk import DAG, CronTriggerTimetable, TriggerRule, chain, get_current_context, task
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from airflow.utils.types import DagRunType

from pronostico.core.config import load_settings
from pronostico.orchestration import tasks as orchestration
from pronostico.pipeline.steps import StepFailed

SETTINGS = load_settings()
COMPUTE = SETTINGS.compute  # fixed when the file is parsed
if COMPUTE not in ("local", "emr"):
    raise ValueError(f"PRONOSTICO_COMPUTE must be 'local' or 'emr', not {COMPUTE!r}")
# A trigger timetable with no start date runs at the cron's next time: a cron string with a start date would also
# start a run for the last time passed as soon as the DAG is unpaused, a retune racing the first upload of a new
# deployment or of `make demo`.
SCHEDULE = (None if SETTINGS.airflow.schedule.lower() in ("", "none")
            else CronTriggerTimetable(SETTINGS.airflow.schedule, timezone="UTC"))
EMR = SETTINGS.emr


# --- the tasks -----------------------------------------------------------------------------------------------------
def _plans(plans: list[dict[str, Any]]) -> list[orchestration.PlannedRun]:
    return [orchestration.PlannedRun.from_xcom(plan) for plan in plans]


@task.short_circuit
def plan_retrain() -> list[dict[str, Any]]:
    """Validate and locate the input; an empty plan (nothing new to train on) skips the rest of the run."""
    context = get_current_context()
    try:
        run = context["dag_run"]
        plans = orchestration.plan_retrain(SETTINGS, run.conf or {}, context["run_id"],
                                           scheduled=run.run_type == DagRunType.SCHEDULED)
    except orchestration.RunRejected as rejection:
        raise AirflowFailException(str(rejection)) from None
    return [plan.to_xcom() for plan in plans]


@task
def stage_code() -> str:
    return orchestration.stage_code(SETTINGS)


@task
def cluster_request(plans: list[dict[str, Any]], code_uri: str) -> dict[str, Any]:
    """The RunJobFlow request, with the steps in it: the cluster never exists without its work."""
    return orchestration.cluster_request(SETTINGS, _plans(plans), code_uri, get_current_context()["run_id"])


@task(retries=2, retry_delay=timedelta(seconds=20))
def list_steps(cluster_id: str, request: dict[str, Any]) -> list[str]:
    """The step ids, in the order of the request's steps, for one sensor each."""
    client = EmrHook(aws_conn_id=EMR.aws_conn_id, emr_conn_id=None).conn
    return orchestration.cluster_step_ids(client, cluster_id, [step["Name"] for step in request["Steps"]])


@task
def spark_steps(plans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """convert_csv_to_parquet, then train_model, in one local spark-submit: one JVM start, not one per step."""
    try:
        return orchestration.run_spark_steps(SETTINGS, _plans(plans), get_current_context()["run_id"])
    except StepFailed as failure:
        raise AirflowFailException(orchestration.describe_failure(failure)) from None


@task
def promote(plans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return orchestration.promote(SETTINGS, _plans(plans), get_current_context()["run_id"])


@task(trigger_rule=TriggerRule.ONE_FAILED, retries=0)
def watcher() -> None:
    """Teardown succeeds even when a step failed, so the run would look green: this task makes it red."""
    raise AirflowException("a task upstream failed; the cluster was terminated all the same")


with DAG(
    dag_id=SETTINGS.airflow.dag_id,  # PRONOSTICO_DAG_ID: the id the trigger starts
    description="retrain and promote on each upload to the raw bucket, and weekly",
    schedule=SCHEDULE,
    catchup=False,
    max_active_runs=1,  # runs share the registry: one at a time keeps promotions in order
    dagrun_timeout=timedelta(hours=6),
    default_args={"retries": 0},
    tags=["pronostico", COMPUTE],
    doc_md=__doc__,
) as dag:
    plans = plan_retrain()
    if COMPUTE == "emr":
        code_uri = stage_code()
        request = cluster_request(plans, code_uri)
        # No wait_policy: the steps are in the request, and a worker need not sit out the cluster's start.
        create_cluster = EmrCreateJobFlowOperator(task_id="create_cluster", job_flow_overrides=request,
                                                  aws_conn_id=EMR.aws_conn_id, emr_conn_id=None)
        step_ids = list_steps(create_cluster.output, request)
        # Poke, not reschedule: Airflow 3.2-3.3's scheduler can fail a rescheduled sensor when the executor's report
        # of one poke arrives after the next poke was queued (the deploy rehearsal hit it). A poking sensor holds one
        # of the host's 8 slots, and the steps run one at a time.
        watch_steps = EmrStepSensor.partial(
            task_id="watch_step", job_flow_id=create_cluster.output, aws_conn_id=EMR.aws_conn_id,
            poke_interval=EMR.poll_seconds, mode="poke", timeout=timedelta(hours=4).total_seconds(),
        ).expand(step_id=step_ids)
        terminate_cluster = EmrTerminateJobFlowOperator(
            task_id="terminate_cluster", job_flow_id=create_cluster.output, aws_conn_id=EMR.aws_conn_id,
            trigger_rule=TriggerRule.ALL_DONE, retries=3, retry_delay=timedelta(seconds=30))
        promoted = promote(plans)
        chain(plans, code_uri, request, create_cluster, step_ids, watch_steps, terminate_cluster, promoted)
        watch_steps >> promoted  # promote only when every step succeeded, and after the cluster is gone
        list(dag.tasks) >> watcher()
    else:
        chain(plans, spark_steps(plans), promote(plans))
