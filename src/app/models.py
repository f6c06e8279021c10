"""The models page, /models, and its JSON, /api/v1/models/<use_case>/{versions,evaluations,live,backtest}.

Per use case: every trained version with its holdout scores and promotion decision, the serving champion's
prospective evaluations (its log loss on data newer than its own, run after run), its live results from the
prediction log, and, for a use case with a trading rule, the backtests of its signal. The page's tables are rendered
here; its script draws the charts from the same API.

The registry lives on S3 on AWS, so what an endpoint builds is kept per process for a few seconds, keyed by what
serves (the loaded model's version, state version and evaluation): no request reads the registry itself. A cache
miss reads the registry's index (registry.update_index writes it) and current.json, not every version and evaluation;
without an index, or with one that does not know what serves, the index is built in memory from the files.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypedDict, TypeVar

import msgspec
import sqlalchemy as sa
from flask import Blueprint, Response, current_app, render_template

from app.analytics import LOG_UNREACHABLE, engine
from app.errors import respond
from app.runtime import UnknownUseCase, json_response, runtime
from app.single_flight import single_flight
from pronostico.core import layout, registry, storage
from pronostico.core.usecases import USE_CASES
from pronostico.core.usecases.base import UseCase
from pronostico.prediction_log.live import live_scores

blueprint = Blueprint("models", __name__)

T = TypeVar("T")
SCORES = ("log_loss", "accuracy", "brier", "rps")
DECISION = ("promoted", "reason", "champion", "rows_compared", "candidate_log_loss", "champion_log_loss",
            "decided_at")
LIVE_COLUMNS = ("model_version", "predictions", "resolved", "hits", "hit_rate", "log_loss", "first_prediction_at",
                "last_prediction_at")
_cache_lock = threading.Lock()


class NoBacktest(LookupError):
    pass


class LazyVersion(TypedDict, total=False):
    """A version entry of the registry's index (registry._version_entry), as `decode_index` reads it."""
    folder: str
    sources: dict[str, str]
    manifest: dict[str, Any]
    metrics: msgspec.Raw
    promotion: dict[str, Any] | None
    headline: dict[str, Any]


class LazyIndex(TypedDict, total=False):
    format: int
    use_case: str
    built_at: str
    versions: list[LazyVersion]
    evaluations: list[dict[str, Any]]


LAZY_INDEX = msgspec.json.Decoder(LazyIndex)


# --- routes ---------------------------------------------------------------------------------------------------

@blueprint.get("/models")
def page() -> str:
    sections = [section(use_case) for use_case in USE_CASES.values()]
    return render_template("models.html", sections=sections)


@blueprint.get("/api/v1/models/<use_case>/versions")
def versions(use_case: str) -> Response:
    return json_response(cached("versions", known(use_case), lambda: versions_report(use_case, stored_versions(
        use_case))))


@blueprint.get("/api/v1/models/<use_case>/evaluations")
def evaluations(use_case: str) -> Response:
    return json_response(cached("evaluations", known(use_case), lambda: evaluations_report(
        use_case, stored_index(use_case))))


@blueprint.get("/api/v1/models/<use_case>/live")
def live(use_case: str) -> Response:
    try:
        return json_response(cached("live", known(use_case), lambda: shared_live_report(use_case)))
    except sa.exc.SQLAlchemyError as error:
        current_app.logger.warning("models: the prediction log is unreachable: %s", error)
        return respond(503, "log_database_unavailable", LOG_UNREACHABLE)


@blueprint.get("/api/v1/models/<use_case>/backtest")
def backtest(use_case: str) -> Response:
    try:
        report = cached("backtest", known(use_case), lambda: backtest_report(use_case))
    except NoBacktest as error:
        return respond(404, "no_backtest", str(error))
    return json_response(report)


def known(use_case: str) -> str:
    if use_case not in USE_CASES:
        raise UnknownUseCase(use_case)
    return use_case


def models_uri() -> str:
    return str(current_app.config["MODELS_URI"])


# --- the per-process cache ------------------------------------------------------------------------------------

def serving_key(use_case: str) -> tuple[str, str, str] | None:
    """What serves the use case in this process: a new model, state or evaluation makes the cache stale at once."""
    model = runtime().store.models.get(use_case)
    if model is None:
        return None
    return model.version, model.state_version, str((model.evaluation or {}).get("run_id") or "")


def cached(kind: str, use_case: str, build: Callable[[], T]) -> T:
    """`build()` at most once per few seconds per use case and serving state (MODELS_CACHE_SECONDS)."""
    cache = current_app.extensions.setdefault("pronostico.models", {})
    key, now = serving_key(use_case), time.monotonic()
    with _cache_lock:
        hit = cache.get((kind, use_case))
    if hit is not None and hit[0] == key and hit[1] > now:
        return hit[2]
    value = build()
    with _cache_lock:
        cache[(kind, use_case)] = (key, now + float(current_app.config["MODELS_CACHE_SECONDS"]), value)
    return value


def stored_index(use_case: str) -> dict[str, Any]:
    return cached("index", use_case, lambda: current_index(models_uri(), use_case))


def current_index(uri: str, use_case: str) -> dict[str, Any]:
    """The stored index, or, when it is missing or does not know what this process serves, one built in memory."""
    index = registry.read_index(uri, use_case, decode=decode_index)
    model = runtime().store.models.get(use_case)
    serving = {model.version, model.state_version} if model else set()
    run_id = str((model.evaluation or {}).get("run_id") or "") if model else ""
    if index is None or not registry.index_covers(index, serving, run_id):
        index = registry.build_index(uri, use_case, index)  # rereads only what the stored index lacks
    return index


def decode_index(data: bytes) -> dict[str, Any] | None:
    """The index as the registry writes it, but for each version's metrics, left as JSON (msgspec.Raw) until /versions
    asks for them: the page shows only their headline, and in a long registry they are tens of thousands of objects,
    which the garbage collector would scan again and again while the request runs."""
    try:
        return LAZY_INDEX.decode(data)
    except msgspec.ValidationError:  # of another format: read_index's check of "format" tells the others
        return None


def stored_versions(use_case: str) -> list[dict[str, Any]]:
    """The complete versions from the index, marked by current.json, their metrics decoded."""
    listed = registry.indexed_versions(stored_index(use_case), registry.read_current(models_uri(), use_case))
    return [{**version, "metrics": decoded(version["metrics"])} for version in listed]


def decoded(metrics: dict[str, Any] | msgspec.Raw) -> dict[str, Any]:
    """A version's metrics from the index: Raw as `decode_index` leaves them, or a dict in an index built in memory."""
    return msgspec.json.decode(metrics) if isinstance(metrics, msgspec.Raw) else metrics



# --- versions -------------------------------------------------------------------------------------------------

def scores(metrics: dict[str, Any] | None, calibration: bool = False) -> dict[str, Any]:
    """The figures the page shows: log loss, accuracy, Brier, RPS where the classes are ordered, per class, and,
    asked for (the model's own, not each baseline's: the page draws only the model's), the calibration bins."""
    if not metrics:
        return {}
    found = {name: metrics[name] for name in SCORES if name in metrics}
    if calibration:
        found["calibration"] = metrics.get("calibration", {})  # versions trained before the bins have none
    return {**found, "rows": metrics.get("rows"), "per_class": metrics.get("per_class", {})}


def version_entry(version: dict[str, Any]) -> dict[str, Any]:
    metrics, manifest, promotion = version["metrics"], version["manifest"], version["promotion"]
    baselines = metrics.get("baselines", {})
    best = registry.version_best_baseline(metrics)
    split = metrics.get("split", {})
    return {
        "version": version["version"], "created_at": version["created_at"],
        "current": version["current"], "serving_state": version["serving_state"],
        "model": scores(metrics.get("model"), calibration=True),
        "baselines": {name: scores(values) for name, values in baselines.items()},
        "best_baseline": best,
        "best_baseline_log_loss": baselines[best]["log_loss"] if best else None,
        "holdout_rows": split.get("holdout_rows"), "train_rows": split.get("train_rows"),
        "data_range": manifest.get("data_range"), "training_range": manifest.get("training_range"),
        "holdout_range": manifest.get("holdout_range"),
        "entities_as_of": (manifest.get("entities") or {}).get("as_of"),
        "decision": {name: promotion.get(name) for name in DECISION} if promotion else None,
        "state_version": promotion.get("state_version") if promotion else None,
        "state_reason": promotion.get("state_reason", "") if promotion else "",
    }


def versions_report(use_case: str, listed: list[dict[str, Any]]) -> dict[str, Any]:
    """Every complete version, oldest first, from versions as `registry.list_versions` gives them."""
    found = [version_entry(v) for v in listed]
    serving = next((v["version"] for v in found if v["current"]), None)
    state = next((v["version"] for v in found if v["serving_state"]), None)
    return {"use_case": use_case, "serving_version": serving, "serving_state_version": state, "versions": found}


# --- evaluations ----------------------------------------------------------------------------------------------

def evaluations_report(use_case: str, index: dict[str, Any]) -> dict[str, Any]:
    """The evaluations oldest first (backtests without their curves: /backtest has them), and their trend (one
    `registry.evaluation_point` each). The briefs go out as the index holds them, JSON text, never parsed here."""
    return {"use_case": use_case, "evaluations": [msgspec.Raw(b.encode()) for b in registry.indexed_briefs(index)],
            "trend": registry.indexed_points(index)}


# --- live results ---------------------------------------------------------------------------------------------

def live_totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """All versions together: the log loss is the mean over every resolved prediction."""
    resolved = sum(r["resolved"] for r in rows)
    hits = sum(r["hits"] for r in rows)
    loss = sum(r["log_loss"] * r["resolved"] for r in rows if r["resolved"] and r["log_loss"] is not None)
    return {"predictions": sum(r["predictions"] for r in rows), "resolved": resolved, "hits": hits,
            "hit_rate": hits / resolved if resolved else None, "log_loss": loss / resolved if resolved else None}


def shared_live_report(use_case: str) -> dict[str, Any]:
    """live_report, one query for all the requests that miss the cache together."""
    return single_flight(("live", use_case), lambda: live_report(engine(), use_case))


def live_report(database: sa.Engine, use_case: str) -> dict[str, Any]:
    """model_live_scores of one use case (read from the rollups), one row per model version that answered, oldest
    version first."""
    with database.connect() as connection:
        rows = [{name: row[name] for name in LIVE_COLUMNS} for row in live_scores(connection, use_case)]
    return {"use_case": use_case, "versions": rows, "totals": live_totals(rows)}


# --- backtests ------------------------------------------------------------------------------------------------

def has_trading_rule(use_case: UseCase) -> bool:
    """Whether the use case backtests its answers at all (the base class's backtest is None)."""
    return type(use_case).backtest is not UseCase.backtest


def holdout_backtest(uri: str, use_case: str, version: str) -> dict[str, Any] | None:
    found = layout.version_file(uri, use_case, version, layout.BACKTEST)
    return storage.read_json(found) if storage.exists(found) else None


def backtest_report(use_case: str) -> dict[str, Any]:
    """The serving version's holdout backtest and the newest scored evaluation's, with their equity curves."""
    model = runtime().store.models.get(use_case)
    holdout = holdout_backtest(models_uri(), use_case, model.version) if model else None
    index = stored_index(use_case)
    scored = registry.newest_brief(index, scored=True, backtest=True)
    newest = registry.indexed_evaluation(models_uri(), use_case, index, scored["run_id"]) if scored else None
    if holdout is None and newest is None:
        raise NoBacktest(no_backtest_reason(USE_CASES[use_case], model.version if model else None))
    return {
        "use_case": use_case,
        "holdout": {"model_version": model.version, "backtest": holdout} if model and holdout else None,
        "evaluation": {"run_id": newest["run_id"], "evaluated_at": newest["evaluated_at"],
                       "model_version": newest["model_version"], "window": newest["window"],
                       "backtest": newest["backtest"]} if newest else None,
    }


def no_backtest_reason(use_case: UseCase, version: str | None) -> str:
    if not has_trading_rule(use_case):
        return f"{use_case.name} has no backtest: its answers are not a trading signal"
    if version is None:
        return f"no {use_case.name} model is serving yet, and no evaluation has a backtest"
    return f"{use_case.name} version {version} has no holdout backtest, and no scored evaluation has one yet"


# --- the page -------------------------------------------------------------------------------------------------

def section(use_case: UseCase) -> dict[str, Any]:
    """What models.html shows of one use case; a part that cannot be read says why instead."""
    name = use_case.name
    index = stored_index(name)
    part: dict[str, Any] = {
        "use_case": use_case, "name": name, "versions": version_rows(use_case, index),
        "newest_evaluation": registry.newest_brief(index), "trend": registry.indexed_points(index),
        "trades": has_trading_rule(use_case), "backtest": None, "backtest_missing": "", "live": None,
        "live_error": "",
    }
    part["has_rps"] = any(v.rps is not None for v in part["versions"])
    part["scored_evaluation"] = registry.newest_brief(index, scored=True)  # its calibration beside the holdout's
    try:
        part["live"] = cached("live", name, lambda: shared_live_report(name))
    except sa.exc.SQLAlchemyError as error:
        current_app.logger.warning("models page: the prediction log is unreachable: %s", error)
        part["live_error"] = LOG_UNREACHABLE
    if part["trades"]:
        try:
            part["backtest"] = cached("backtest", name, lambda: backtest_report(name))
        except NoBacktest as error:
            part["backtest_missing"] = str(error)
    return part


def version_rows(use_case: UseCase, index: dict[str, Any]) -> list[VersionRow]:
    """The page's table of versions, newest first, from their headlines in the index. The rows are made at each
    request, since they carry the use case's presentation too (its labels, its strong baselines)."""
    name = use_case.name
    listed = cached("headlines", name, lambda: registry.indexed_headlines(index, registry.read_current(
        models_uri(), name)))
    return [version_row(use_case, version) for version in reversed(listed)]


@dataclass(frozen=True, slots=True)
class VersionRow:
    """One row of the page's versions table, its figures formatted once, here: Jinja pays for every expression and
    every macro call, and a table of hundreds of versions has thousands of them."""
    version: str
    current: bool
    serving_state: bool
    entities_as_of: str | None
    created: str
    log_loss: str
    accuracy: str
    rps: str | None  # None: the model has no RPS (its use case's classes are not ordered)
    baseline: str  # the best baseline's label, or "—"
    strong_baseline: bool
    baseline_log_loss: str
    baseline_rps: str | None  # None: the best baseline has no RPS
    holdout_start: str
    holdout_end: str
    holdout_rows: str
    rows: int | None  # the model's holdout rows, and whether it recorded calibration bins there
    calibrated: bool
    decided: bool
    promoted: bool
    reason: str | None
    state_reason: str


def version_row(use_case: UseCase, version: dict[str, Any]) -> VersionRow:
    """A version as `registry.indexed_headlines` gives it, formatted as models.html's num, pct and when do."""
    headline, manifest, promotion = version["headline"], version["manifest"], version["promotion"]
    model, baseline, best = headline["model"], headline["baseline"], headline["best_baseline"]
    holdout = manifest.get("holdout_range")
    return VersionRow(
        version=version["version"], current=version["current"], serving_state=version["serving_state"],
        entities_as_of=(manifest.get("entities") or {}).get("as_of"), created=moment(version["created_at"]),
        log_loss=figure(model.get("log_loss")), accuracy=percent(model.get("accuracy")),
        rps=figure(model["rps"]) if "rps" in model else None,
        baseline=use_case.presentation.baseline_labels.get(best, best) if best else "—",
        strong_baseline=best in use_case.strong_baselines, baseline_log_loss=figure(baseline.get("log_loss")),
        baseline_rps=figure(baseline["rps"]) if "rps" in baseline else None,
        holdout_start=holdout.get("start", "") if holdout else "—",
        holdout_end=holdout.get("end", "") if holdout else "—",
        holdout_rows="—" if headline["holdout_rows"] is None else f"{headline['holdout_rows']:,}",
        rows=headline["rows"], calibrated=headline["calibrated"], decided=bool(promotion),
        promoted=bool((promotion or {}).get("promoted")), reason=(promotion or {}).get("reason"),
        state_reason=(promotion or {}).get("state_reason", ""))


def figure(value: float | None, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def percent(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value * 100:.{digits}f}%"


def moment(value: str | None) -> str:
    """An ISO timestamp to the minute, "2026-01-05 06:00"."""
    return "—" if not value else value[:16].replace("T", " ")
