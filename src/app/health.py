"""Health and metrics: /healthz for the ALB (and nginx locally), /metrics for Prometheus."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Blueprint, Response, current_app

from app import metrics
from app.runtime import json_response, runtime

blueprint = Blueprint("health", __name__)


def health() -> tuple[dict[str, Any], int]:
    """Liveness for the ALB: 200 unless a promoted model failed to load and none of that use case is serving.

    A use case with nothing promoted yet is no fault of the instance: a new stack has an empty models bucket, and
    its instances must pass the health check before the first upload trains anything. The body says which use
    cases wait for their first model; their predictions answer 503 `no_model` meanwhile.
    """
    store = runtime().store
    models = {name: model.version for name, model in store.models.items()}
    failing = {name: reason for name, reason in store.errors.items() if name not in models}
    waiting = [name for name in store.use_cases if name not in models and name not in failing]
    body: dict[str, Any] = {"status": "unavailable" if failing else "ok", "models": models}
    if failing:
        body["errors"] = failing
    if waiting:
        body["not_promoted"] = waiting
        body["reason"] = f"no promoted model yet for {', '.join(waiting)}: run the pipeline"
    return body, 503 if failing else 200


@blueprint.get("/healthz")
def healthz() -> Response:
    body, status = health()
    response = json_response(body, status)
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.get("/metrics")
def prometheus_metrics() -> Response:
    spool_dir = Path(current_app.config["SPOOL_DIR"])
    return Response(metrics.exposition(runtime(), spool_dir), mimetype=None, content_type=metrics.CONTENT_TYPE)
