"""The JSON API through the Flask test client, on the tiny models (the real ones where a test asserts real data):
every endpoint and every error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pronostico.core.usecases import USE_CASES
from pronostico.prediction_log.spool import SpoolReader

BRAZIL_ARGENTINA = {"home_team": "Brazil", "away_team": "Argentina", "neutral": True}


def spooled_rows(app) -> list[dict]:
    reader = SpoolReader(Path(app.config["SPOOL_DIR"]))
    return [json.loads(line) for line in reader.next_batch(10_000).lines]


def test_matchups_predict_answers_the_contract_and_spools_the_row(app, client):
    answer = client.post("/api/v1/matchups/predict", json=BRAZIL_ARGENTINA)
    assert answer.status_code == 200
    body = answer.get_json()
    assert set(body) >= {"prediction_id", "model_version", "home_team", "away_team", "neutral", "probabilities",
                         "outcome", "winner"}
    assert body["probabilities"].keys() == {"home_win", "draw", "away_win"}
    assert sum(body["probabilities"].values()) == pytest.approx(1.0)
    assert body["outcome"] == max(body["probabilities"], key=body["probabilities"].get)
    [row] = spooled_rows(app)
    assert row["prediction_id"] == body["prediction_id"]
    assert (row["use_case"], row["channel"], row["home_team"], row["away_team"], row["neutral"]) == \
        ("matchups", "api", "Brazil", "Argentina", True)
    assert row["p_home_win"] == body["probabilities"]["home_win"]
    assert row["outcome"] == body["outcome"] and row["latency_ms"] > 0
    assert "symbol" not in row and "ip" not in json.dumps(row).lower()


def test_assets_predict_answers_the_contract_and_spools_the_row(app, client):
    answer = client.post("/api/v1/assets/predict", json={"symbol": "btc-usd"})
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["symbol"] == "BTC-USD" and body["signal"] in ("sell", "hold", "buy")
    assert body["probabilities"].keys() == {"sell", "hold", "buy"}
    [row] = spooled_rows(app)
    assert (row["symbol"], row["as_of"], row["outcome"]) == ("BTC-USD", body["as_of"], body["signal"])


def test_models_lists_versions_metrics_and_baselines(client):
    body = client.get("/api/v1/models").get_json()
    for name in ("matchups", "assets"):
        model = body[name]
        assert model["version"] and model["created_at"]
        assert model["metrics"]["log_loss"] > 0 and model["baselines"]
        quality, baselines = model["quality"], model["baselines"]
        naive = [b for b in baselines if b not in USE_CASES[name].strong_baselines]
        assert quality["baseline"] == min(naive, key=lambda b: baselines[b]["log_loss"])  # the verdict's: naive
        assert quality["best_baseline"] == min(baselines, key=lambda b: baselines[b]["log_loss"])  # any kind
        assert quality["best_baseline_log_loss"] == baselines[quality["best_baseline"]]["log_loss"]
        assert quality["verdict"] in ("beats", "marginal", "none")


def test_teams_and_symbols_of_the_real_data(trained_client):
    teams = trained_client.get("/api/v1/matchups/teams").get_json()
    assert teams["model_version"] and {"Brazil", "Argentina", "Germany"} <= {t["name"] for t in teams["teams"]}
    symbols = trained_client.get("/api/v1/assets/symbols").get_json()
    assert {s["symbol"] for s in symbols["symbols"]} == {"AAPL", "BTC-USD", "ETH-USD", "NVDA", "SOL-USD", "SPY"}
    assert all(s["last_bar"] for s in symbols["symbols"])


@pytest.mark.parametrize(("body", "status", "code", "field"), [
    (b"not json", 400, "invalid_json", None),
    (b"", 400, "invalid_json", None),
    (b"[1, 2]", 400, "invalid_json", None),
    (b'"Brazil"', 400, "invalid_json", None),
    (b'{"home_team": "Brazil"}', 422, "missing_field", "away_team"),
    (b'{"home_team": 7, "away_team": "Brazil"}', 422, "invalid_type", "home_team"),
    (b'{"home_team": "Brazil", "away_team": "Brazil"}', 422, "same_team", "away_team"),
    (b'{"home_team": "Brazil", "away_team": "Narnia"}', 422, "unknown_team", "away_team"),
    (b'{"home_team": "Brazil", "away_team": "Argentina", "neutral": "yes"}', 422, "invalid_type", "neutral"),
    (b'{"home_team": "Brazil", "away_team": "Argentina", "tournament": "cup"}', 422, "invalid_choice", "tournament"),
    (b'{"home_team": "Brazil", "away_team": "Argentina", "hometeam": "x"}', 422, "unknown_field", "hometeam"),
    (b'{"home_team": "\xff"}', 400, "invalid_json", None),
])
def test_bad_matchup_requests_get_a_4xx_naming_the_field(app, client, body, status, code, field):
    answer = client.post("/api/v1/matchups/predict", data=body, content_type="application/json")
    assert answer.status_code == status
    assert answer.get_json() == {"error": {"code": code, "message": answer.get_json()["error"]["message"],
                                           "field": field}}
    assert answer.get_json()["error"]["message"]
    assert spooled_rows(app) == []  # nothing answered, nothing logged


def test_unknown_symbol_names_close_choices(client):
    answer = client.post("/api/v1/assets/predict", json={"symbol": "BTC-USX"})
    assert answer.status_code == 422
    error = answer.get_json()["error"]
    assert (error["code"], error["field"]) == ("unknown_symbol", "symbol") and "BTC-USD" in error["message"]


def test_oversized_body_is_a_json_413(client):
    answer = client.post("/api/v1/assets/predict", data=b"{" + b" " * 20_000 + b"}", content_type="application/json")
    assert answer.status_code == 413
    assert answer.get_json()["error"]["code"] == "body_too_large"


@pytest.mark.parametrize(("method", "path", "status", "code"), [
    ("get", "/api/v1/nothing", 404, "not_found"),
    ("post", "/api/v1/weather/predict", 404, "unknown_use_case"),
    ("get", "/api/v1/matchups/symbols", 404, "not_found"),
    ("put", "/api/v1/matchups/predict", 405, "method_not_allowed"),
    ("delete", "/api/v1/models", 405, "method_not_allowed"),
])
def test_api_errors_are_json_never_html(client, method, path, status, code):
    answer = getattr(client, method)(path)
    assert answer.status_code == status
    assert answer.mimetype == "application/json"
    assert answer.get_json()["error"]["code"] == code


@pytest.fixture
def modelless_client(settings, tmp_path):
    """A client whose models bucket is empty: routing and method errors must not depend on a model."""
    from app import create_app
    from tests.web.conftest import app_config

    app = create_app(app_config((tmp_path / "empty-models").as_uri(), settings.home))
    yield app.test_client()
    app.extensions["pronostico"].spool.close()


@pytest.mark.parametrize("use_case", ["matchups", "assets"])
def test_get_on_predict_is_405_allowing_post(modelless_client, use_case):
    answer = modelless_client.get(f"/api/v1/{use_case}/predict")
    assert answer.status_code == 405
    assert answer.headers["Allow"] == "POST"
    assert answer.mimetype == "application/json"
    error = answer.get_json()["error"]
    assert (error["code"], error["field"]) == ("method_not_allowed", None)
    assert "POST" in error["message"]


@pytest.mark.parametrize(("path", "code"), [
    ("/api/v1/weather/predict", "unknown_use_case"),
    ("/api/v1/matchups/predict/now", "not_found"),
])
def test_get_on_an_unknown_use_case_or_path_stays_404(modelless_client, path, code):
    answer = modelless_client.get(path)
    assert answer.status_code == 404
    assert answer.get_json()["error"]["code"] == code


def test_a_405_from_routing_names_the_allowed_methods(modelless_client):
    answer = modelless_client.delete("/api/v1/models")
    assert answer.status_code == 405
    assert answer.get_json()["error"]["code"] == "method_not_allowed"
    assert {method.strip() for method in answer.headers["Allow"].split(",")} >= {"GET", "HEAD"}


def test_without_a_model_predictions_are_503_json(settings, tmp_path):
    from app import create_app
    from tests.web.conftest import app_config

    empty = (tmp_path / "empty-models").as_uri()
    client = create_app(app_config(empty, settings.home)).test_client()
    answer = client.post("/api/v1/matchups/predict", json=BRAZIL_ARGENTINA)
    assert answer.status_code == 503 and answer.get_json()["error"]["code"] == "no_model"
    assert client.get("/api/v1/models").get_json()["assets"]["available"] is False


def test_a_prediction_that_cannot_be_spooled_is_not_answered(settings, tiny_models, tmp_path):
    from app import create_app
    from tests.web.conftest import app_config

    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the spool directory should be")
    client = create_app(app_config(tiny_models, settings.home, SPOOL_DIR=str(blocked))).test_client()
    answer = client.post("/api/v1/assets/predict", json={"symbol": "SPY"})
    assert answer.status_code == 503
    assert answer.get_json()["error"]["code"] == "log_unavailable"
