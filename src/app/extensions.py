"""Flask extensions, created once here and bound to an app in create_app."""

from __future__ import annotations

from typing import Any

from flask import Flask, Request
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFProtect

csrf = CSRFProtect()

SESSIONLESS = ("/api/", "/healthz", "/metrics", "/static/")


class PageSessionInterface(SecureCookieSessionInterface):
    """The signed-cookie session (it carries the form's CSRF token) for the pages only: the API and the health
    checks never use one, and skipping it is measurable at thousands of requests per second."""

    def open_session(self, app: Flask, request: Request) -> Any:
        if request.path.startswith(SESSIONLESS):
            return self.make_null_session(app)
        return super().open_session(app, request)
