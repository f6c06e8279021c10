"""The JSON API, /api/v1: models, entities, predictions and the OpenAPI document (contract: ARCHITECTURE.md)."""

from __future__ import annotations

import json
from functools import cache
from typing import Any, NoReturn

from flask import Blueprint, Response, abort, request
from werkzeug.exceptions import MethodNotAllowed

from app.openapi import openapi_document
from app.runtime import UnknownUseCase, json_response, model_summary, runtime
from pronostico.core.serving import NoModel
from pronostico.core.usecases import USE_CASES
from pronostico.core.usecases.base import RequestError, UseCase

blueprint = Blueprint("api", __name__, url_prefix="/api/v1")


@blueprint.get("/models")
def models() -> Response:
    answer: dict[str, Any] = {}
    for name in USE_CASES:
        try:
            answer[name] = model_summary(runtime().model(name))
        except NoModel as error:
            answer[name] = {"available": False, "reason": str(error)}
    return json_response(answer)


@blueprint.get("/<use_case>/<entities_key>")
def entities(use_case: str, entities_key: str) -> Response:
    model = runtime().model(use_case)
    if entities_key != model.use_case.entities_key:
        abort(404, description=f"/api/v1/{use_case}/ lists {model.use_case.entities_key}, not {entities_key}")
    body = runtime().cached_json(entities_key, model, lambda: {
        "model_version": model.version, entities_key: model.entities()})
    return json_response(None, raw=body)


@blueprint.post("/<use_case>/predict")
def predict(use_case: str) -> Response:
    state = runtime()
    payload = json_payload(input_names(state.model(use_case).use_case))
    return json_response(state.answer_and_log(use_case, payload, "api"))


@blueprint.get("/<use_case>/predict")
def predict_needs_post(use_case: str) -> NoReturn:
    """Without this route a GET on predict would reach `entities` and read as a missing list, a 404."""
    if use_case not in USE_CASES:
        raise UnknownUseCase(use_case)
    fields = ", ".join(input_names(USE_CASES[use_case]))
    raise MethodNotAllowed(["POST"], f"predict takes a POST with a JSON object of {fields}")


@blueprint.get("/openapi.json")
def openapi() -> Response:
    return json_response(openapi_document())


@cache
def input_names(use_case: UseCase) -> tuple[str, ...]:
    return tuple(f.name for f in use_case.input_fields)


def json_payload(allowed_fields: tuple[str, ...]) -> dict[str, Any]:
    """The body as a JSON object, or a RequestError that says what is wrong with it."""
    raw = request.get_data(cache=False)
    if not raw.strip():
        raise RequestError("invalid_json", "the body is empty; send a JSON object", None)
    try:
        payload = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        raise RequestError("invalid_json", f"the body is not valid JSON: {error}", None) from None
    if not isinstance(payload, dict):
        raise RequestError("invalid_json", f"the body must be a JSON object with {', '.join(allowed_fields)}",
                           None)
    unknown = [key for key in payload if key not in allowed_fields]
    if unknown:
        raise RequestError("unknown_field", f"unknown field {unknown[0]!r}; the fields are "
                                            f"{', '.join(allowed_fields)}", unknown[0])
    return payload
