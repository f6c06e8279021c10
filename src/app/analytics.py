"""Analytics: /analytics draws charts from the prediction log's views; /api/v1/analytics is the same data as JSON.

The figures come from the views the migrations create for QuickSight, so the page and the BI dashboards count the
same way; the views read the rollups (pronostico.prediction_log.rollups), never the raw rows. A report is cached for
a few seconds per process, and the requests that miss the cache together wait for one query.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Response, current_app, render_template

from app.errors import respond
from app.runtime import json_response, model_quality, runtime
from app.single_flight import single_flight
from pronostico.core.usecases import USE_CASES
from pronostico.core.usecases.base import TopList, UseCase
from pronostico.prediction_log import db, live

blueprint = Blueprint("analytics", __name__)

HOURS = 48
DAYS = 30
TOP = 10
_cache_lock = threading.Lock()
LOG_UNREACHABLE = "the prediction log database is unreachable; predictions are still answered and spooled"


@blueprint.get("/analytics")
def page() -> str:
    return render_template("analytics.html", hours=HOURS, days=DAYS, top=TOP, use_cases=USE_CASES)


@blueprint.get("/api/v1/analytics")
def data() -> Response | tuple[str, int]:
    try:
        return json_response(cached_report())
    except sa.exc.SQLAlchemyError as error:
        current_app.logger.warning("analytics: the prediction log is unreachable: %s", error)
        return respond(503, "log_database_unavailable", LOG_UNREACHABLE)


def cached_report() -> dict[str, Any]:
    """The report, built at most once per ANALYTICS_CACHE_SECONDS, and once for all the requests that miss together."""
    cache = current_app.extensions.setdefault("pronostico.analytics", {})
    with _cache_lock:
        if cache.get("expires", 0.0) > time.monotonic():
            return cache["report"]
    return single_flight("analytics", lambda: fill(cache))


def fill(cache: dict[str, Any]) -> dict[str, Any]:
    report = build_report(engine(), datetime.now(UTC).replace(tzinfo=None))
    with _cache_lock:
        cache["report"] = report
        cache["expires"] = time.monotonic() + float(current_app.config["ANALYTICS_CACHE_SECONDS"])
    return report


def engine() -> sa.Engine:
    extensions = current_app.extensions
    if "pronostico.db" not in extensions:
        # a small pool: the page is read by people, a few times a minute, not by the load balancer
        extensions["pronostico.db"] = db.create_engine(current_app.config["DB_URL"], pool_size=2, max_overflow=2)
    return extensions["pronostico.db"]


def build_report(engine: sa.Engine, now: datetime) -> dict[str, Any]:
    hour_now = now.replace(minute=0, second=0, microsecond=0)
    hours = [hour_now - timedelta(hours=i) for i in range(HOURS - 1, -1, -1)]
    days = [(now - timedelta(days=i)).date() for i in range(DAYS - 1, -1, -1)]
    with engine.connect() as connection:
        def rows(sql: str, **params: Any) -> list[sa.Row[Any]]:
            return list(connection.execute(sa.text(sql), params))

        hourly = rows("SELECT hour, use_case, predictions FROM prediction_hourly WHERE hour >= :since",
                      since=hours[0].strftime("%Y-%m-%d %H:%M:%S"))
        daily = rows("SELECT day, use_case, predictions FROM prediction_daily WHERE day >= :since",
                     since=days[0].isoformat())
        totals = rows("SELECT use_case, SUM(predictions) AS predictions FROM prediction_daily GROUP BY use_case")
        tops = {top.key: [{**{c: r._mapping[c] for c in top.columns}, "predictions": int(r.predictions)}
                          for r in rows(top_query(top), top=TOP)] for top in top_lists()}
        outcomes = rows("SELECT use_case, outcome, predictions FROM prediction_outcomes ORDER BY use_case, outcome")
        scores = live.live_scores(connection)
    return {
        "generated_at": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "totals": {name: int(next((r.predictions for r in totals if r.use_case == name), 0) or 0)
                   for name in USE_CASES},
        "hourly": series([h.strftime("%Y-%m-%d %H:00") for h in hours], hourly, lambda v: str(v)[:13] + ":00"),
        "daily": series([d.isoformat() for d in days], daily, lambda v: str(v)[:10]),
        **tops,
        "outcomes": {name: {c: int(next((r.predictions for r in outcomes
                                        if r.use_case == name and r.outcome == c), 0))
                            for c in use_case.classes}
                     for name, use_case in USE_CASES.items()},
        "models": models_against_baselines(),
        "live": [score for score in scores if score["use_case"] in USE_CASES],
        "use_cases": {name: describe(use_case) for name, use_case in USE_CASES.items()},
    }


def top_lists() -> list[TopList]:
    return [top for use_case in USE_CASES.values() for top in use_case.presentation.top_lists]


def top_query(top: TopList) -> str:
    """The most-asked rows of one of the use case's views (names from the use case, never from a request)."""
    columns = ", ".join(top.columns)
    return f"SELECT {columns}, predictions FROM {top.view} ORDER BY predictions DESC, {columns} LIMIT :top"


def describe(use_case: UseCase) -> dict[str, Any]:
    """What the page's script needs to draw a use case: its name, colour and lists."""
    show = use_case.presentation
    return {"title": show.title, "color": show.color, "classes": list(use_case.classes),
            "top_lists": [{"key": t.key, "title": t.title, "columns": list(t.columns)} for t in show.top_lists
                          if t.drawn]}


def series(labels: list[str], found: list[sa.Row[Any]], label_of: Any) -> dict[str, Any]:
    """Counts per label and use case, with zeros where nothing was asked, so the time axis has no gaps."""
    counts = {name: dict.fromkeys(labels, 0) for name in USE_CASES}
    for row in found:
        label = label_of(row[0])
        if row.use_case in counts and label in counts[row.use_case]:
            counts[row.use_case][label] += int(row.predictions)
    return {"labels": labels, "counts": {name: list(by_label.values()) for name, by_label in counts.items()}}


def models_against_baselines() -> dict[str, Any]:
    models = {}
    for name, model in runtime().store.models.items():
        scores = {"model": {k: model.metrics["model"][k] for k in ("log_loss", "accuracy", "brier")}}
        for baseline, values in model.metrics["baselines"].items():
            scores[baseline] = {k: values[k] for k in ("log_loss", "accuracy", "brier")}
        models[name] = {"version": model.version, "scores": scores, "quality": model_quality(model)}
    return models
