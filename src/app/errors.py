"""Errors answered as `{"error": {"code", "message", "field"}}` under /api/ and as a page elsewhere.

A request a user got wrong is a 4xx naming the field (422; 400 when the body is not JSON at all). A missing model
or an unwritable spool is a 503: the prediction cannot be answered, and must not be answered unlogged.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, make_response, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from app import metrics
from app.runtime import UnknownUseCase, json_response
from pronostico.core.serving import NoModel
from pronostico.core.usecases.base import RequestError
from pronostico.prediction_log.spool import SpoolUnavailable

log = logging.getLogger(__name__)

HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "body_too_large",
              415: "unsupported_media_type", 429: "too_many_requests"}


def status_for(error: RequestError) -> int:
    return 400 if error.code == "invalid_json" else 422


def is_api_request() -> bool:
    return request.path.startswith("/api/")


def respond(status: int, code: str, message: str, field: str | None = None,
            headers: dict[str, str] | None = None) -> Response:
    metrics.count_error(status, code)
    if is_api_request():
        answer = json_response({"error": {"code": code, "message": message, "field": field}}, status)
    else:
        answer = make_response(render_template("error.html", status=status, code=code, message=message), status)
    answer.headers.update(headers or {})
    return answer


def register(app: Flask) -> None:
    @app.errorhandler(RequestError)
    def request_error(error: RequestError) -> Response | tuple[str, int]:
        return respond(status_for(error), error.code, error.message, error.field)

    @app.errorhandler(NoModel)
    def no_model(error: NoModel) -> Response | tuple[str, int]:
        return respond(503, "no_model", f"{error}; try again shortly")

    @app.errorhandler(UnknownUseCase)
    def unknown_use_case(error: UnknownUseCase) -> Response | tuple[str, int]:
        from pronostico.core.usecases import USE_CASES

        return respond(404, "unknown_use_case", f"unknown use case {error}; choose one of {', '.join(USE_CASES)}")

    @app.errorhandler(SpoolUnavailable)
    def spool_unavailable(error: SpoolUnavailable) -> Response | tuple[str, int]:
        log.error("answering 503: %s", error)
        return respond(503, "log_unavailable", "the prediction could not be logged, so it was not answered; "
                                               "try again shortly")

    @app.errorhandler(CSRFError)
    def csrf_error(error: CSRFError) -> Response | tuple[str, int]:
        return respond(400, "csrf_failed", "The form expired or was not sent from this site. Reload the page and "
                                           "submit it again.")

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response | tuple[str, int]:
        status = error.code or 500
        code = HTTP_CODES.get(status, (error.name or "error").lower().replace(" ", "_"))
        message = error.description or error.name
        if status == 413:
            message = f"the body is larger than {app.config['MAX_CONTENT_LENGTH']} bytes"
        headers = {}
        if isinstance(error, MethodNotAllowed) and error.valid_methods:  # a 405 must say what is allowed
            headers["Allow"] = ", ".join(error.valid_methods)
        return respond(status, code, message, headers=headers)

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Response | tuple[str, int]:
        log.exception("unexpected error on %s %s", request.method, request.path)
        return respond(500, "internal_error", "something went wrong on our side; it has been logged")
