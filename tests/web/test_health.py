"""Health, metrics and the model hot swap in one worker (the Flask test client)."""

from __future__ import annotations

import json
import shutil
import threading

from pronostico.core import registry, storage
from tests.web.conftest import app_config, copy_models


def test_healthz_is_200_with_every_promoted_model_loaded(client):
    answer = client.get("/healthz")
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["status"] == "ok" and set(body["models"]) == {"matchups", "assets"}


def test_healthz_is_200_before_the_first_model_and_says_so(settings, tiny_models, tmp_path):
    """A new stack's instances must pass the ALB health check with an empty models bucket."""
    from app import create_app

    models_uri = (tmp_path / "models").as_uri()
    app = create_app(app_config(models_uri, settings.home))
    client = app.test_client()
    answer = client.get("/healthz")  # nothing promoted yet
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["status"] == "ok" and body["models"] == {} and set(body["not_promoted"]) == {"matchups", "assets"}
    assert "errors" not in body
    predict = client.post("/api/v1/assets/predict", json={"symbol": "SPY"})
    assert predict.status_code == 503 and predict.get_json()["error"]["code"] == "no_model"
    copy_models(tiny_models, tmp_path / "models")
    app.extensions["pronostico"].store.refresh()  # what the worker's poller does
    body = client.get("/healthz").get_json()
    assert set(body["models"]) == {"matchups", "assets"} and "not_promoted" not in body


def test_healthz_is_503_when_the_promoted_model_cannot_be_read(settings, tmp_path):
    """current.json names a version whose files are missing: the instance cannot serve what was promoted."""
    from app import create_app

    current = tmp_path / "models" / "matchups" / "current.json"
    current.parent.mkdir(parents=True)
    current.write_text(json.dumps({"version": "20260101T000000Z-gone"}))
    answer = create_app(app_config((tmp_path / "models").as_uri(), settings.home)).test_client().get("/healthz")
    assert answer.status_code == 503
    assert set(answer.get_json()["errors"]) == {"matchups"} and answer.get_json()["not_promoted"] == ["assets"]


def test_healthz_is_503_when_a_promoted_model_fails_to_load(settings, tiny_models, tmp_path):
    from app import create_app

    models_uri = copy_models(tiny_models, tmp_path / "models")
    version = registry.read_current(models_uri, "assets")["version"]
    (tmp_path / "models" / "assets" / "versions" / version / "forest.npz").write_bytes(b"broken")
    answer = create_app(app_config(models_uri, settings.home)).test_client().get("/healthz")
    assert answer.status_code == 503
    assert "assets" in answer.get_json()["errors"] and answer.get_json()["models"].keys() == {"matchups"}


def test_metrics_count_predictions_in_prometheus_text(client):
    before = client.get("/metrics").get_data(as_text=True)
    client.post("/api/v1/assets/predict", json={"symbol": "SPY"})
    client.post("/api/v1/assets/predict", json={"symbol": "nope"})
    text = client.get("/metrics").get_data(as_text=True)
    assert client.get("/metrics").mimetype == "text/plain"

    def value(body: str, prefix: str) -> float:
        lines = [line for line in body.splitlines() if line.startswith(prefix)]
        return float(lines[0].rsplit(" ", 1)[1]) if lines else 0.0

    counter = 'pronostico_predictions_total{channel="api",use_case="assets"}'
    assert value(text, counter) == value(before, counter) + 1
    assert value(text, 'pronostico_request_errors_total{code="unknown_symbol",status="422"}') >= 1
    assert 'pronostico_model_loaded{use_case="matchups",version=' in text
    assert "pronostico_spool_backlog_bytes" in text and "pronostico_prediction_seconds_bucket" in text
    assert value(text, "pronostico_spool_lines_total") == value(before, "pronostico_spool_lines_total") + 1
    assert "pronostico_spool_flushes_total" in text and "pronostico_spool_unflushed_bytes" in text


def test_a_promoted_model_swaps_in_without_failing_a_request(settings, tiny_models, tmp_path):
    """Requests flow from a thread while a new version is promoted and the store refreshes, as its poller does
    (the poller itself runs in the gunicorn workers of test_stack.py)."""
    from app import create_app

    models_uri = copy_models(tiny_models, tmp_path / "models")
    old = registry.read_current(models_uri, "matchups")["version"]
    new = f"{old}-swap"
    versions = tmp_path / "models" / "matchups" / "versions"
    shutil.copytree(versions / old, versions / new)
    manifest = json.loads((versions / new / "manifest.json").read_text())
    (versions / new / "manifest.json").write_text(json.dumps({**manifest, "version": new}))
    app = create_app(app_config(models_uri, settings.home))
    client = app.test_client()
    seen, failures, stop = [], [], threading.Event()

    def ask() -> None:
        while not stop.is_set() or len(seen) < 100:
            answer = client.post("/api/v1/matchups/predict", json={"home_team": "Spain", "away_team": "Italy"})
            (seen if answer.status_code == 200 else failures).append(answer.get_json().get("model_version"))

    thread = threading.Thread(target=ask)
    thread.start()
    try:
        stop.wait(0.2)
        registry.rollback(models_uri, "matchups", new)
        assert app.extensions["pronostico"].store.refresh() == ["matchups"]
        stop.wait(0.2)
    finally:
        stop.set()
        thread.join()
    assert failures == []
    assert seen[0] == old and seen[-1] == new
    switched = seen.index(new)
    assert set(seen[:switched]) == {old} and set(seen[switched:]) == {new}  # one clean switch
    assert storage.read_json(registry.current_uri(models_uri, "matchups"))["version"] == new
