"""The pronostico web app: the prediction form, the /api/v1 JSON API, the models page, analytics, health, metrics.

    gunicorn -c bootstrap/gunicorn.conf.py 'app:create_app()'

Configuration comes first from defaults, then from the environment (pronostico.core.config), then from a test's
mapping. Each process (gunicorn worker) loads the promoted models into its own ModelStore and polls current.json;
every answered prediction is appended to the host's spool before the answer leaves (pronostico.prediction_log.spool),
and the log shipper (pronostico.prediction_log.shipper) moves it to the database.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask

from pronostico.core.config import Settings, load_settings
from pronostico.prediction_log.spool import DEFAULT_SEGMENT_BYTES

MAX_BODY_BYTES = 16 * 1024  # a prediction request is a few dozen bytes; nginx caps bodies at the same size


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    settings = load_settings()
    app.config.from_mapping(default_config(settings))
    if test_config is not None:
        app.config.from_mapping(test_config)
    if not app.config["SECRET_KEY"]:
        app.config["SECRET_KEY"] = local_secret_key(settings.home)
    register_extensions(app)
    register_blueprints(app)
    register_errorhandlers(app)
    return app


def default_config(settings: Settings) -> dict[str, Any]:
    return {
        "SECRET_KEY": settings.secret_key,
        "MODELS_URI": settings.models_uri,
        "DB_URL": settings.db_url,
        "SPOOL_DIR": str(settings.spool_dir),
        "SPOOL_SEGMENT_BYTES": DEFAULT_SEGMENT_BYTES,
        "SPOOL_SYNC": settings.web.spool_sync,
        "SPOOL_SYNC_SECONDS": settings.web.spool_sync_ms / 1000.0,
        "MODEL_POLL_SECONDS": settings.model_poll_seconds,  # 0 turns polling off (tests refresh by hand)
        "MAX_CONTENT_LENGTH": MAX_BODY_BYTES,
        "ANALYTICS_CACHE_SECONDS": 5.0,
        "MODELS_CACHE_SECONDS": 5.0,  # the models page's registry reads, per use case and serving state
        "WTF_CSRF_TIME_LIMIT": None,  # the token lives as long as the session cookie
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_HTTPONLY": True,
        "JSON_SORT_KEYS": False,
    }


def local_secret_key(home: Path) -> str:
    """The signing key when PRONOSTICO_SECRET_KEY is unset: one file under $PRONOSTICO_HOME, made once.

    Every gunicorn instance on the machine reads the same key, so a form served by one instance posts to another.
    """
    path = home / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".secret_key.{os.getpid()}")
        temporary.write_text(os.urandom(32).hex())
        temporary.chmod(0o600)
        try:
            os.link(temporary, path)  # atomic: the first process to get here wins, the others read its key
        except FileExistsError:
            pass
        finally:
            temporary.unlink(missing_ok=True)
    return path.read_text().strip()


def register_extensions(app: Flask) -> None:
    from app.extensions import PageSessionInterface, csrf
    from app.runtime import Runtime

    app.session_interface = PageSessionInterface()
    csrf.init_app(app)
    Runtime.attach(app)
    app.jinja_env.globals["static_version"] = static_version(Path(app.static_folder or ""))


def register_blueprints(app: Flask) -> None:
    from app import analytics, api, health, models, pages
    from app.extensions import csrf

    for blueprint in (pages.blueprint, api.blueprint, analytics.blueprint, models.blueprint, health.blueprint):
        app.register_blueprint(blueprint)
    csrf.exempt(api.blueprint)  # the API takes JSON from programs, with no cookies and no session to forge


def register_errorhandlers(app: Flask) -> None:
    from app.errors import register

    register(app)


def static_version(static_dir: Path) -> str:
    """A short hash of the static files, appended to their URLs so a new release is never served stale CSS."""
    digest = hashlib.sha256()
    for path in sorted(static_dir.rglob("*")):
        if path.is_file():
            stat = path.stat()
            digest.update(f"{path.relative_to(static_dir)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:10]
