"""Health and metrics: /healthz for the ALB (and nginx locally), /metrics for Prometheus."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Blueprint, Response, current_app

from app import metrics
from app.runtime import json_response, runtime

blueprint = Blueprint("health", __name__)


def health() -> tuple[dict[str, Any], int]:
    """503 until a promoted model is loaded, and while a promoted use case has none loaded (it failed to load)."""
    store = runtime().store
    models = {name: model.version for name, model in store.models.items()}
    failing = {name: reason for name, reason in store.errors.items() if name not in models}
    ok = bool(models) and not failing
    body: dict[str, Any] = {"status": "ok" if ok else "unavailable", "models": models}
    if failing:
        body["errors"] = failing
    if not models and not failing:
        body["reason"] = "no promoted model is loaded yet: run the pipeline"
    return body, 200 if ok else 503


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
