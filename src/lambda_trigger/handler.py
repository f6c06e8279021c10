"""Lambda entry point: S3 notification -> one `pronostico_retrain` DAG run per uploaded object version.

Each upload is sent to Airflow with a deterministic run id (see events.py), so a repeated delivery gets 409 from
Airflow, which counts as success. Timeouts and 5xx are retried with exponential backoff; if an upload still cannot
be handed over, the invocation raises, so that Lambda's own retries and then the dead-letter queue take the event
and it can be re-driven. Every decision is one JSON log line.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable
from functools import lru_cache
from typing import Any, Protocol

from lambda_trigger.airflow_api import AirflowApi, AirflowRefused, AirflowUnavailable, MwaaApi
from lambda_trigger.events import Upload, parse_event
from pronostico.core.config import AirflowSettings, load_settings

LOG = logging.getLogger("lambda_trigger")
LOG.setLevel(logging.INFO)


class TriggerFailed(RuntimeError):
    """At least one upload did not reach Airflow after every retry; raised so that Lambda retries the event."""


class DagRunTrigger(Protocol):
    def trigger_dag_run(self, dag_id: str, run_id: str, conf: dict[str, Any], note: str = "") -> bool: ...


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return handle_event(event, load_settings().airflow)


def handle_event(event: dict[str, Any], settings: AirflowSettings, api: DagRunTrigger | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    uploads, ignored = parse_event(event)
    for item in ignored:
        log_event(logging.INFO, "upload.ignored", key=item.key, reason=item.reason)
    outcome: dict[str, Any] = {"triggered": [], "duplicates": [], "failed": [],
                               "ignored": [{"key": i.key, "reason": i.reason} for i in ignored]}
    if not uploads:
        return outcome
    api = api or airflow_client(settings)
    for upload in uploads:
        try:
            created = trigger_with_retries(api, settings, upload, sleep)
        except (AirflowUnavailable, AirflowRefused) as error:
            log_event(logging.ERROR, "trigger.failed", dag_run_id=upload.dag_run_id, bucket=upload.bucket,
                      key=upload.key, error=str(error))
            outcome["failed"].append({"dag_run_id": upload.dag_run_id, "key": upload.key, "error": str(error)})
            continue
        outcome["triggered" if created else "duplicates"].append(upload.dag_run_id)
        log_event(logging.INFO, "trigger.sent" if created else "trigger.duplicate", dag_run_id=upload.dag_run_id,
                  dag_id=settings.dag_id, bucket=upload.bucket, key=upload.key, etag=upload.etag,
                  version_id=upload.version_id)
    if outcome["failed"]:
        raise TriggerFailed(f"{len(outcome['failed'])} of {len(uploads)} upload(s) did not reach Airflow at "
                            f"{settings.url}: {outcome['failed'][0]['error']}")
    return outcome


def trigger_with_retries(api: DagRunTrigger, settings: AirflowSettings, upload: Upload,
                         sleep: Callable[[float], None] = time.sleep) -> bool:
    """Trigger one run; retry what may pass on a second try, with exponential backoff and a little jitter."""
    attempts = max(1, settings.trigger_attempts)
    for attempt in range(1, attempts + 1):
        try:
            return api.trigger_dag_run(settings.dag_id, upload.dag_run_id, upload.conf(),
                                       note=f"upload of {upload.key} to {upload.bucket}")
        except AirflowUnavailable as error:
            if attempt == attempts:
                raise
            delay = settings.trigger_backoff_seconds * 2 ** (attempt - 1) * (1 + random.random() / 4)
            log_event(logging.WARNING, "trigger.retry", dag_run_id=upload.dag_run_id, attempt=attempt,
                      of=attempts, delay_seconds=round(delay, 2), error=str(error))
            sleep(delay)
        except AirflowRefused as error:
            if error.status == 401:
                _secret.cache_clear()  # a rotated password: the next invocation reads it again
            raise
    raise AssertionError("unreachable")


def airflow_client(settings: AirflowSettings) -> DagRunTrigger:
    if settings.mode == "mwaa":
        return MwaaApi(settings.mwaa_environment)
    if settings.mode != "rest":
        raise ValueError(f"PRONOSTICO_AIRFLOW_MODE must be 'rest' or 'mwaa', not {settings.mode!r}")
    username, password = credentials(settings)
    return AirflowApi(settings.url, username, password, settings.timeout_seconds)


def credentials(settings: AirflowSettings) -> tuple[str, str]:
    """From Secrets Manager on AWS; from the environment (or the local standalone's generated file) locally."""
    if settings.secret_arn:
        secret = _secret(settings.secret_arn)
        return str(secret["username"]), str(secret["password"])
    if not settings.password:
        raise ValueError("no Airflow password: set PRONOSTICO_AIRFLOW_SECRET_ARN (AWS) or PRONOSTICO_AIRFLOW_PASSWORD; "
                         "the local stack reads the one `airflow standalone` generated")
    return settings.username, settings.password


@lru_cache(maxsize=4)
def _secret(arn: str) -> dict[str, Any]:
    import boto3  # in the Lambda runtime

    return json.loads(boto3.client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"])


def log_event(level: int, event: str, **fields: Any) -> None:
    LOG.log(level, json.dumps({"event": event, **fields}, default=str, sort_keys=True))
