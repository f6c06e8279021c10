"""The OpenAPI document, and the API fuzzed against it: no input makes a 5xx or an error that is not JSON."""

from __future__ import annotations

import itertools
from collections import Counter

import hypothesis
import pytest
import schemathesis
from schemathesis.generation import GenerationMode

from benchmarks.report import markdown_table
from pronostico.core.usecases import USE_CASES
from tests.web.conftest import app_config

EXAMPLES = 30


@pytest.fixture(scope="module")
def fuzzed_app(trained_models, tmp_path_factory):
    from app import create_app
    from pronostico.prediction_log.db import upgrade

    config = app_config(trained_models, tmp_path_factory.mktemp("fuzz"))
    upgrade(config["DB_URL"])
    application = create_app(config)
    yield application
    application.extensions["pronostico"].spool.close()


def test_openapi_document_describes_every_endpoint(client):
    document = client.get("/api/v1/openapi.json").get_json()
    assert document["openapi"].startswith("3.")
    models = {f"/api/v1/models/{{use_case}}/{name}" for name in ("versions", "evaluations", "live", "backtest")}
    assert set(document["paths"]) == {"/api/v1/models", "/api/v1/analytics", "/api/v1/matchups/teams",
                                      "/api/v1/matchups/predict", "/api/v1/assets/symbols",
                                      "/api/v1/assets/predict", *models}
    request = document["components"]["schemas"]["MatchupsRequest"]
    assert request["required"] == ["home_team", "away_team"]
    assert request["properties"]["tournament"]["enum"][0] == "friendly"
    assert "422" in document["paths"]["/api/v1/assets/predict"]["post"]["responses"]
    for path in models:
        operation = document["paths"][path]["get"]
        assert operation["operationId"] and operation["summary"]
        assert operation["parameters"][0]["schema"]["enum"] == list(USE_CASES)
        assert operation["responses"]["404"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/Error"}
    schemas = document["components"]["schemas"]
    version = schemas["ModelVersions"]["properties"]["versions"]["items"]
    assert {"version", "current", "serving_state", "model", "baselines", "best_baseline", "decision",
            "state_reason", "holdout_range"} <= set(version["properties"])
    assert {"log_loss", "accuracy", "brier", "rps", "per_class"} <= set(schemas["Scores"]["properties"])
    trend = schemas["ModelEvaluations"]["properties"]["trend"]["items"]
    assert set(trend["required"]) == {"evaluated_at", "run_id", "model_version", "window_end", "rows", "status",
                                      "log_loss", "best_baseline", "best_baseline_log_loss"}
    assert {"totals", "versions"} <= set(schemas["ModelLiveScores"]["properties"])
    assert "503" in document["paths"]["/api/v1/models/{use_case}/live"]["get"]["responses"]
    assert {"holdout", "evaluation"} <= set(schemas["ModelBacktest"]["properties"])
    assert {"symbols", "pooled", "curves"} <= set(schemas["Backtest"]["properties"])


@pytest.mark.chaos
def test_no_request_makes_a_server_error(fuzzed_app, reliability):
    """Schemathesis generates requests from the document, valid and not; each must get a non-5xx answer, and
    each error must be the JSON error object."""
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", fuzzed_app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 10
    statuses: Counter[int] = Counter()
    server_errors: list[str] = []
    for operation, mode in itertools.product(operations, GenerationMode):
        if mode is GenerationMode.NEGATIVE and operation.method.upper() != "POST":
            continue  # a GET without parameters has no invalid form

        @hypothesis.given(case=operation.as_strategy(mode))
        @hypothesis.settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                             suppress_health_check=list(hypothesis.HealthCheck))
        def answers_without_a_server_error(case) -> None:
            response = case.call()
            statuses[response.status_code] += 1
            if response.status_code >= 500:
                server_errors.append(f"{case.method} {case.path}: {response.text[:200]}")
            assert response.status_code < 500, f"{case.method} {case.path}: {response.text}"
            if response.status_code >= 400:
                error = response.json()["error"]
                assert set(error) == {"code", "message", "field"} and error["message"]

        answers_without_a_server_error()
    cases = sum(statuses.values())
    reliability("api_fuzzing", f"""## API fuzzing

`make chaos` (`pytest tests/web/test_openapi.py::test_no_request_makes_a_server_error`): schemathesis
{schemathesis.__version__} reads `/api/v1/openapi.json` from the app (WSGI, on the real trained models) and
generates requests for its {len(operations)} operations, valid ones and, for the POST operations, invalid ones
(wrong types, missing and unknown fields, out-of-range values), up to {EXAMPLES} per operation and mode, derandomised.
Each answer must be below 500, and each 4xx must be the JSON error object `{{"error": {{"code", "message",
"field"}}}}`.

{markdown_table(["figure", "expected", "measured"], [
    ["requests generated and sent", "", cases],
    ["5xx answers", 0, len(server_errors)],
    *[[f"answered {status}", "", count] for status, count in sorted(statuses.items())],
])}
""")
    assert server_errors == []
    assert cases >= len(operations) * 10  # the strategies really produced cases
