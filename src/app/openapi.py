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
