"""The OpenAPI 3.1 document of /api/v1, built from the use cases' input fields and classes."""

from __future__ import annotations

from functools import cache
from typing import Any

from pronostico.core.usecases import USE_CASES
from pronostico.core.usecases.base import InputField, UseCase

ERROR = {"$ref": "#/components/schemas/Error"}


def field_schema(field: InputField, use_case: UseCase) -> dict[str, Any]:
    if field.kind == "bool":
        schema: dict[str, Any] = {"type": "boolean"}
    elif field.kind == "choice":
        schema = {"type": "string", "enum": list(field.choices)}
    else:
        schema = {"type": "string", "minLength": 1,
                  "description": f"a {use_case.entity_kind} from GET /api/v1/{use_case.name}/{use_case.entities_key}"}
    if field.default is not None:
        schema["default"] = field.default
    return {"title": field.label, **schema}


def request_schema(use_case: UseCase) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {f.name: field_schema(f, use_case) for f in use_case.input_fields},
        "required": [f.name for f in use_case.input_fields if f.required],
    }


def answer_schema(use_case: UseCase) -> dict[str, Any]:
    classes = list(use_case.classes)
    properties = {
        "prediction_id": {"type": "string", "format": "uuid"},
        "model_version": {"type": "string"},
        "probabilities": {"type": "object", "required": classes,
                          "properties": {c: {"type": "number", "minimum": 0, "maximum": 1} for c in classes}},
        **{name: dict(schema) for name, schema in use_case.answer_fields.items()},
    }
    return {"type": "object", "properties": properties, "required": list(properties)}


def error_responses(*statuses: int) -> dict[str, Any]:
    text = {400: "the body is not a JSON object", 404: "unknown use case or path", 413: "the body is too large",
            422: "a field is missing, of the wrong type, or unknown (the error names it)",
            429: "too many requests from this address", 503: "no model is loaded yet, or the log is unwritable"}
    return {str(s): {"description": text[s], "content": {"application/json": {"schema": ERROR}}} for s in statuses}


def use_case_paths(use_case: UseCase) -> dict[str, Any]:
    name = use_case.name
    title = name.capitalize()
    return {
        f"/api/v1/{name}/{use_case.entities_key}": {"get": {
            "operationId": f"list_{use_case.entities_key}",
            "summary": f"The {use_case.entities_key} the current {name} model knows",
            "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {
                "type": "object", "properties": {"model_version": {"type": "string"},
                                                 use_case.entities_key: {"type": "array", "items": {"type": "object"}}},
                "required": ["model_version", use_case.entities_key]}}}}, **error_responses(503)},
        }},
        f"/api/v1/{name}/predict": {"post": {
            "operationId": f"predict_{name}",
            "summary": f"Predict: {', '.join(use_case.classes)}",
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": f"#/components/schemas/{title}Request"}}}},
            "responses": {"200": {"description": "The prediction (logged before it is answered)",
                                  "content": {"application/json": {
                                      "schema": {"$ref": f"#/components/schemas/{title}Answer"}}}},
                          **error_responses(400, 404, 413, 422, 429, 503)},
        }},
    }


NUMBER = {"type": "number"}
NULLABLE_NUMBER = {"type": ["number", "null"]}
NULLABLE_STRING = {"type": ["string", "null"]}
RANGE = {"type": ["object", "null"], "properties": {"start": NULLABLE_STRING, "end": NULLABLE_STRING}}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(properties: dict[str, Any], required: tuple[str, ...] | None = None) -> dict[str, Any]:
    """An object schema; every property is required unless `required` names the ones that are."""
    return {"type": "object", "properties": properties, "required": list(properties if required is None else required)}


def model_schemas() -> dict[str, Any]:
    """The models page's JSON: versions, evaluations, live scores and backtests (app/models.py builds them)."""
    per_class = {"type": "object", "additionalProperties": obj(
        {name: NUMBER for name in ("precision", "recall", "f1", "support", "mean_probability")}, ())}
    calibration_bin = obj({"lower": NUMBER, "upper": NUMBER, "rows": {"type": "integer"}, "mean_predicted": NUMBER,
                           "observed": {**NUMBER, "description": "how often the class came among the bin's rows"}})
    calibration = {"type": "object", "additionalProperties": {"type": "array", "items": calibration_bin},
                   "description": "per class, its non-empty equal-width bins of predicted probability over [0, 1] "
                                  "(the last closed), lowest first"}
    figures = obj({"total_return": NUMBER, "sharpe": NUMBER, "max_drawdown": NUMBER, "hit_rate": NULLABLE_NUMBER,
                   "trades": {"type": "integer"}, "exposure": NUMBER})
    variants = {"strategy": ref("BacktestFigures"), "buy_and_hold": ref("BacktestFigures"),
                "random": ref("BacktestFigures")}
    curve = {"type": "object", "properties": {"dates": {"type": "array", "items": {"type": "string"}},
                                              **{v: {"type": "array", "items": NUMBER} for v in variants}}}
    decision = obj({"promoted": {"type": "boolean"}, "reason": {"type": "string"}, "champion": NULLABLE_STRING,
                    "rows_compared": {"type": ["integer", "null"]}, "candidate_log_loss": NULLABLE_NUMBER,
                    "champion_log_loss": NULLABLE_NUMBER, "decided_at": NULLABLE_STRING}, ("promoted", "reason"))
    version = obj({
        "version": {"type": "string"}, "created_at": {"type": "string"},
        "current": {"type": "boolean", "description": "its forest serves"},
        "serving_state": {"type": "boolean", "description": "the serving model answers from its entity state"},
        "model": ref("Scores"), "baselines": {"type": "object", "additionalProperties": ref("Scores")},
        "best_baseline": NULLABLE_STRING, "best_baseline_log_loss": NULLABLE_NUMBER,
        "holdout_rows": {"type": ["integer", "null"]}, "train_rows": {"type": ["integer", "null"]},
        "data_range": RANGE, "training_range": RANGE, "holdout_range": RANGE, "entities_as_of": NULLABLE_STRING,
        "decision": {"oneOf": [decision, {"type": "null"}], "description": "the promotion gate's decision"},
        "state_version": NULLABLE_STRING, "state_reason": {"type": "string"}},
        ("version", "created_at", "current", "serving_state", "model", "baselines", "best_baseline", "decision"))
    window = {"type": "object", "properties": {"after": NULLABLE_STRING, "start": NULLABLE_STRING,
                                               "end": NULLABLE_STRING}}
    status = {"type": "string", "enum": ["scored", "too_small", "incompatible"]}
    trend = obj({"evaluated_at": {"type": "string"}, "run_id": {"type": "string"}, "model_version": {"type": "string"},
                 "window_end": NULLABLE_STRING, "rows": {"type": "integer"}, "status": status,
                 "log_loss": NULLABLE_NUMBER, "best_baseline": NULLABLE_STRING,
                 "best_baseline_log_loss": NULLABLE_NUMBER})
    evaluation = obj({"use_case": {"type": "string"}, "run_id": {"type": "string"}, "evaluated_at": {"type": "string"},
                      "model_version": {"type": "string"}, "window": window, "rows": {"type": "integer"},
                      "min_rows": {"type": "integer"}, "status": status, "reason": {"type": "string"},
                      "model": ref("Scores"), "baselines": {"type": "object", "additionalProperties": ref("Scores")},
                      "best_baseline": NULLABLE_STRING, "earlier_versions": {"type": "array", "items": {
                          "type": "object"}}},
                     ("run_id", "evaluated_at", "model_version", "window", "rows", "status"))
    live = obj({"model_version": {"type": "string"}, "predictions": {"type": "integer"},
                "resolved": {"type": "integer"}, "hits": {"type": "integer"}, "hit_rate": NULLABLE_NUMBER,
                "log_loss": NULLABLE_NUMBER, "first_prediction_at": NULLABLE_STRING,
                "last_prediction_at": NULLABLE_STRING})
    totals = obj({name: live["properties"][name] for name in ("predictions", "resolved", "hits", "hit_rate",
                                                               "log_loss")})
    backtest = obj({"cost_bps": NUMBER, "short_on_sell": {"type": "boolean"}, "seeds": {"type": "integer"},
                    "start": NULLABLE_STRING, "end": NULLABLE_STRING, "bars": {"type": "integer"},
                    "symbols": {"type": "object", "additionalProperties": {"type": "object", "properties": variants}},
                    "pooled": {"type": "object", "properties": variants},
                    "curves": {"type": "object", "additionalProperties": curve}},
                   ("cost_bps", "bars", "symbols", "pooled"))
    return {
        "Scores": obj({"log_loss": NUMBER, "accuracy": NUMBER, "brier": NUMBER,
                       "rps": {**NULLABLE_NUMBER, "description": "ranked probability score, ordered classes only"},
                       "rows": {"type": ["integer", "null"]}, "per_class": per_class,
                       "calibration": calibration}, ("log_loss",)),
        "BacktestFigures": figures, "Backtest": backtest,
        "ModelVersions": obj({"use_case": {"type": "string"}, "serving_version": NULLABLE_STRING,
                              "serving_state_version": NULLABLE_STRING,
                              "versions": {"type": "array", "items": version, "description": "oldest first"}}),
        "ModelEvaluations": obj({"use_case": {"type": "string"},
                                 "evaluations": {"type": "array", "items": evaluation, "description":
                                                 "oldest first; backtests without their curves"},
                                 "trend": {"type": "array", "items": trend}}),
        "ModelLiveScores": obj({"use_case": {"type": "string"}, "versions": {"type": "array", "items": live},
                                "totals": totals}),
        "ModelBacktest": obj({"use_case": {"type": "string"},
                              "holdout": {"oneOf": [obj({"model_version": {"type": "string"},
                                                         "backtest": ref("Backtest")}), {"type": "null"}]},
                              "evaluation": {"oneOf": [obj({"run_id": {"type": "string"},
                                                            "evaluated_at": {"type": "string"},
                                                            "model_version": {"type": "string"}, "window": window,
                                                            "backtest": ref("Backtest")}), {"type": "null"}]}}),
    }


def json_error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ERROR}}}


def model_paths(names: tuple[str, ...]) -> dict[str, Any]:
    parameter = {"name": "use_case", "in": "path", "required": True, "schema": {"type": "string", "enum": list(names)}}
    unknown = {"404": json_error("unknown use case")}
    operations = {
        "versions": ("list_model_versions", "Every trained version, oldest first: holdout scores against the "
                                            "baselines, ranges, and the promotion decision", "ModelVersions", {}),
        "evaluations": ("list_model_evaluations", "The serving champion's prospective evaluations on newer data, "
                                                  "oldest first, and their log-loss trend", "ModelEvaluations", {}),
        "live": ("model_live_scores", "Per model version: logged predictions, how many resolved, hit rate and log "
                                      "loss against what really happened", "ModelLiveScores",
                 {"503": json_error("the prediction log database is unreachable")}),
        "backtest": ("model_backtest", "The serving version's holdout backtest and the newest scored evaluation's, "
                                       "with equity curves", "ModelBacktest",
                     {"404": json_error("unknown use case, or one whose versions have no backtest")}),
    }
    return {f"/api/v1/models/{{use_case}}/{path}": {"get": {
        "operationId": operation, "summary": summary, "parameters": [parameter],
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": ref(schema)}}},
                      **unknown, **errors}}}
        for path, (operation, summary, schema, errors) in operations.items()}


def openapi_document() -> dict[str, Any]:
    """Built once per set of use cases (PRONOSTICO_EXTRA_USE_CASES can add one)."""
    return _document(tuple(USE_CASES))


@cache
def _document(names: tuple[str, ...]) -> dict[str, Any]:
    paths: dict[str, Any] = {
        "/api/v1/models": {"get": {
            "operationId": "list_models", "summary": "Per use case: the serving version, its holdout metrics and "
                                                     "its baselines' metrics",
            "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {
                "type": "object"}}}}}}},
        "/api/v1/analytics": {"get": {
            "operationId": "analytics", "summary": "The analytics page's data: traffic, top matchups and symbols, "
                                                   "outcome mix, models against baselines",
            "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {
                "type": "object"}}}}, **error_responses(503)}}},
    }
    schemas: dict[str, Any] = {"Error": {
        "type": "object", "required": ["error"],
        "properties": {"error": {"type": "object", "required": ["code", "message", "field"], "properties": {
            "code": {"type": "string"}, "message": {"type": "string"}, "field": {"type": ["string", "null"]}}}}}}
    paths.update(model_paths(names))
    schemas.update(model_schemas())
    for use_case in (USE_CASES[name] for name in names):
        paths.update(use_case_paths(use_case))
        title = use_case.name.capitalize()
        schemas[f"{title}Request"] = request_schema(use_case)
        schemas[f"{title}Answer"] = answer_schema(use_case)
    return {
        "openapi": "3.1.0",
        "info": {"title": "pronostico", "version": "1",
                 "description": f"Predictions for {', '.join(names)}. Every answered "
                                "prediction is logged. Errors are {\"error\": {\"code\", \"message\", \"field\"}}."},
        "paths": paths,
        "components": {"schemas": schemas},
    }
