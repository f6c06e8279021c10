"""The models page and its API (/api/v1/models/<use_case>/...), and the per-class and prospective /metrics.

The registry is the tiny one (tests/fixtures/tiny_models.py), copied, with by hand: a second matchups version that was
not promoted but lends the champion its state, and per use case three evaluations in the registry's shape (scored,
too small, scored), the assets ones with a backtest built by pronostico.core.backtest.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from pronostico.core import backtest, layout, registry, storage
from pronostico.core.usecases import USE_CASES
from tests.web.conftest import app_config, copy_models, ship_all
from tests.web.test_pages import csrf_token

LENT = "29991231T000000Z-00a11e"  # sorts after any real version: the newest, not promoted, its state serving
ENDPOINTS = ("versions", "evaluations", "live", "backtest")


# --- a registry with versions, evaluations and backtests ---------------------------------------------------------

def scores(use_case: str, log_loss: float, rows: int) -> dict[str, Any]:
    classes = USE_CASES[use_case].classes
    figures: dict[str, Any] = {"rows": rows, "log_loss": log_loss, "accuracy": 0.5, "brier": 0.6, "per_class": {
        c: {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": rows // len(classes), "mean_probability": 0.33}
        for c in classes}}
    if USE_CASES[use_case].ordered_classes:
        figures["rps"] = log_loss / 4
    figures["calibration"] = {c: [{"lower": 0.2, "upper": 0.3, "rows": rows // 2, "mean_predicted": 0.25,
                                   "observed": 0.2},
                                  {"lower": 0.4, "upper": 0.5, "rows": rows - rows // 2, "mean_predicted": 0.45,
                                   "observed": 0.5}] for c in classes}
    return figures


def synthetic_backtest(symbols: list[str], start: str, days: int, seed: int = 3) -> dict[str, Any]:
    """A backtest of a made-up signal over `days` bars after `start`, with curves: the real module's shape."""
    rng = np.random.default_rng(seed)
    first = date.fromisoformat(start) + timedelta(days=1)
    rows = [{"symbol": symbol, "date": (first + timedelta(days=i)).isoformat(),
             "signal": ("buy", "hold", "sell")[int(rng.integers(0, 3))], "next_return": float(rng.normal(4e-4, 0.02))}
            for symbol in symbols for i in range(days)]
    return backtest.run(pd.DataFrame(rows))


def evaluation(use_case: str, run_id: str, evaluated_at: str, version: str, window: tuple[str, str], rows: int,
               log_loss: float | None, baselines: dict[str, float], with_backtest: list[str] | None = None
               ) -> dict[str, Any]:
    """One stored evaluation: scored when it has a log loss, else too small."""
    found: dict[str, Any] = {"use_case": use_case, "run_id": run_id, "evaluated_at": evaluated_at,
                             "model_version": version, "window": {"after": window[0], "start": window[0],
                                                                  "end": window[1]},
                             "rows": rows, "min_rows": 50, "earlier_versions": []}
    if log_loss is None:
        return {**found, "status": "too_small", "reason": f"{rows} rows newer than {window[0]} (need 50): not scored"}
    best = min(baselines, key=baselines.__getitem__)
    found.update(status="scored", model=scores(use_case, log_loss, rows),
                 baselines={name: scores(use_case, value, rows) for name, value in baselines.items()},
                 best_baseline=best, versus_baselines={})
    if with_backtest:
        found["backtest"] = synthetic_backtest(with_backtest, window[0], 90, seed=len(run_id))
    return found


def write_evaluations(models_uri: str, use_case: str, version: str, symbols: list[str], year: int = 2200,
                      losses: tuple[float | None, ...] = (0.91, None, 0.93),
                      baselines: dict[str, float] | None = None) -> list[dict[str, Any]]:
    """Evaluations of `version` a month apart, newest last; None is a window too small to score. The baselines'
    log losses are `baselines` (by default 1.0, 1.05, ... in name order) plus 0.01 a month."""
    if baselines is None:
        metrics = storage.read_json(layout.version_file(models_uri, use_case, version, layout.METRICS))
        baselines = {name: 1.0 + 0.05 * i for i, name in enumerate(sorted(metrics["baselines"]))}
    written = []
    for month, loss in enumerate(losses, start=1):
        start, end = f"{year}-{month:02d}-01", f"{year}-{month:02d}-28"
        found = evaluation(use_case, f"run-{year}-{month:02d}", f"{year}-{month:02d}-28T06:00:00+00:00", version,
                           (start, end), 12 if loss is None else 200 + month, loss,
                           {name: value + 0.01 * month for name, value in baselines.items()},
                           symbols if use_case == "assets" and loss is not None else None)
        storage.write_json(layout.evaluation_uri(models_uri, use_case, found["run_id"]), found)
        written.append(found)
    return written


def ensure_holdout_backtest(models_uri: str, version: str) -> dict[str, Any]:
    """The serving assets version's backtest.json: the trained one, or one written here when training made none."""
    uri = layout.version_file(models_uri, "assets", version, layout.BACKTEST)
    if not storage.exists(uri):
        holdout = storage.read_json(layout.version_file(models_uri, "assets", version, layout.MANIFEST))
        storage.write_json(uri, synthetic_backtest(["AAPL", "SPY"], holdout["holdout_range"]["start"], 60))
    return storage.read_json(uri)


def add_version(root: Path, models_uri: str, use_case: str, source: str, version: str,
                log_loss: float) -> dict[str, Any]:
    """A copy of `source` under a new name and log loss; returns its manifest."""
    versions = root / use_case / "versions"
    shutil.copytree(versions / source, versions / version)
    manifest = json.loads((versions / version / "manifest.json").read_text())
    manifest = {**manifest, "version": version, "created_at": "2999-12-31T00:00:00+00:00"}
    (versions / version / "manifest.json").write_text(json.dumps(manifest))
    (versions / version / "backtest.json").unlink(missing_ok=True)
    metrics = json.loads((versions / version / "metrics.json").read_text())
    metrics["model"]["log_loss"] = log_loss
    (versions / version / "metrics.json").write_text(json.dumps(metrics))
    (versions / version / "promotion.json").unlink(missing_ok=True)
    return manifest


@dataclass
class Registry:
    uri: str
    root: Path
    serving: dict[str, str]
    evaluations: dict[str, list[dict[str, Any]]]  # the ones written here, oldest first
    holdout_backtest: dict[str, Any]


def build_registry(models_uri: str, root: Path) -> Registry:
    uri = copy_models(models_uri, root)
    serving = {name: registry.read_current(uri, name)["version"] for name in USE_CASES}
    lend_state(root, uri, serving["matchups"])
    holdout = ensure_holdout_backtest(uri, serving["assets"])
    symbols = sorted(holdout["symbols"])[:3]
    evaluations = {name: write_evaluations(uri, name, serving[name], symbols) for name in USE_CASES}
    return Registry(uri, root, serving, evaluations, holdout)


def lend_state(root: Path, models_uri: str, champion: str) -> None:
    """A newer matchups version, worse than the champion, whose state the champion serves (as the gate records)."""
    manifest = add_version(root, models_uri, "matchups", champion, LENT, 9.5)
    decision = {"use_case": "matchups", "candidate": LENT, "champion": champion, "promoted": False,
                "reason": "holdout log loss 9.5000 is worse than the champion's 0.9000 on the same 400 rows",
                "rows_compared": 400, "candidate_log_loss": 9.5, "champion_log_loss": 0.9,
                "decided_at": "2999-12-31T00:00:05+00:00", "state_version": LENT,
                "state_reason": f"the champion serves the state of {LENT} (as of {manifest['entities']['as_of']})"}
    storage.write_json(layout.version_file(models_uri, "matchups", LENT, layout.PROMOTION), decision)
    current = storage.read_json(layout.current_uri(models_uri, "matchups"))
    storage.write_json(layout.current_uri(models_uri, "matchups"), {**current, "state_version": LENT})


@pytest.fixture
def built(tiny_models, tmp_path) -> Registry:
    return build_registry(tiny_models, tmp_path / "models")


@pytest.fixture
def models_app(settings, built):
    from app import create_app

    application = create_app(app_config(built.uri, settings.home))
    yield application
    application.extensions["pronostico"].spool.close()


@pytest.fixture
def models_client(models_app):
    return models_app.test_client()


# --- the API ------------------------------------------------------------------------------------------------------

def test_versions_are_oldest_first_with_holdout_scores_and_decisions(models_client, built):
    body = models_client.get("/api/v1/models/matchups/versions").get_json()
    stored = registry.list_versions(built.uri, "matchups")
    assert [v["version"] for v in body["versions"]] == [v["version"] for v in stored]
    assert body["versions"][-1]["version"] == LENT
    champion = next(v for v in body["versions"] if v["version"] == built.serving["matchups"])
    lent = body["versions"][-1]
    assert (body["serving_version"], body["serving_state_version"]) == (built.serving["matchups"], LENT)
    assert (champion["current"], champion["serving_state"], lent["current"], lent["serving_state"]) == \
        (True, False, False, True)
    assert lent["decision"]["promoted"] is False and "worse than the champion" in lent["decision"]["reason"]
    assert lent["decision"]["champion"] == built.serving["matchups"] and lent["decision"]["rows_compared"] == 400
    assert lent["state_version"] == LENT and lent["state_reason"].startswith("the champion serves the state")
    assert lent["model"]["log_loss"] == 9.5
    metrics = next(v for v in stored if v["version"] == built.serving["matchups"])["metrics"]
    manifest = next(v for v in stored if v["version"] == built.serving["matchups"])["manifest"]
    best = min(metrics["baselines"], key=lambda name: metrics["baselines"][name]["log_loss"])
    assert champion["model"]["log_loss"] == metrics["model"]["log_loss"]
    assert champion["model"]["rps"] == metrics["model"]["rps"]  # the classes are ordered: win, draw, loss
    assert champion["best_baseline"] == best
    assert champion["best_baseline_log_loss"] == metrics["baselines"][best]["log_loss"]
    assert champion["baselines"][best]["per_class"].keys() == {"home_win", "draw", "away_win"}
    assert (champion["training_range"], champion["holdout_range"], champion["data_range"]) == \
        (manifest["training_range"], manifest["holdout_range"], manifest["data_range"])
    assert champion["entities_as_of"] == manifest["entities"]["as_of"]
    assert champion["holdout_rows"] == metrics["split"]["holdout_rows"]
    assert champion["decision"]["promoted"] is True


def test_the_serving_versions_holdout_calibration_comes_with_its_scores(models_client, built):
    for name, use_case in USE_CASES.items():
        body = models_client.get(f"/api/v1/models/{name}/versions").get_json()
        champion = next(v for v in body["versions"] if v["version"] == built.serving[name])
        stored = storage.read_json(layout.version_file(built.uri, name, built.serving[name], layout.METRICS))
        calibration = champion["model"]["calibration"]
        assert calibration == stored["model"]["calibration"]  # what training wrote, passed through
        assert calibration.keys() == set(use_case.classes)
        for bins in calibration.values():
            assert sum(b["rows"] for b in bins) == stored["model"]["rows"] == champion["model"]["rows"]
            assert all(b["lower"] <= b["mean_predicted"] <= b["upper"] and 0 <= b["observed"] <= 1 for b in bins)
        assert all("calibration" not in b for b in champion["baselines"].values())  # only the model's is drawn
        evaluations = models_client.get(f"/api/v1/models/{name}/evaluations").get_json()["evaluations"]
        assert evaluations[-1]["model"]["calibration"] == built.evaluations[name][-1]["model"]["calibration"]


def test_a_strong_baseline_is_tagged_in_the_versions_table(models_client, monkeypatch):
    body = models_client.get("/api/v1/models/matchups/versions").get_json()
    best = next(v for v in body["versions"] if v["current"])["best_baseline"]
    monkeypatch.setattr(type(USE_CASES["matchups"]), "strong_baselines", ())
    table = section_html(models_client.get("/models").get_data(as_text=True), "matchups")
    assert "(strong)" not in table
    monkeypatch.setattr(type(USE_CASES["matchups"]), "strong_baselines", (best,))
    table = section_html(models_client.get("/models").get_data(as_text=True), "matchups")
    label = USE_CASES["matchups"].presentation.baseline_labels.get(best, best)
    assert re.search(re.escape(label) + r'\s*<span class="tag-strong"[^>]*>\(strong\)</span>', table)


def test_assets_versions_have_no_rps(models_client, built):
    body = models_client.get("/api/v1/models/assets/versions").get_json()
    stored = registry.list_versions(built.uri, "assets")
    assert [(v["version"], v["current"], v["serving_state"]) for v in body["versions"]] == \
        [(v["version"], v["current"], v["serving_state"]) for v in stored]
    serving = next(v for v in body["versions"] if v["current"])
    assert serving["version"] == built.serving["assets"] == body["serving_version"]
    assert body["serving_state_version"] == registry.read_current(built.uri, "assets")["state_version"]
    assert "rps" not in serving["model"] and {"log_loss", "accuracy", "brier"} <= set(serving["model"])


def test_evaluations_come_oldest_first_with_a_trend_that_leaves_gaps(models_client, built):
    for name in USE_CASES:
        body = models_client.get(f"/api/v1/models/{name}/evaluations").get_json()
        stored = registry.list_evaluations(built.uri, name)
        assert [e["run_id"] for e in body["evaluations"]] == [e["run_id"] for e in stored]
        mine = body["trend"][-3:]
        assert [p["run_id"] for p in mine] == [e["run_id"] for e in built.evaluations[name]]
        assert [p["status"] for p in mine] == ["scored", "too_small", "scored"]
        assert [p["log_loss"] for p in mine] == [0.91, None, 0.93]
        assert [p["best_baseline_log_loss"] for p in mine] == [pytest.approx(1.01), None, pytest.approx(1.03)]
        assert [p["window_end"] for p in mine] == ["2200-01-28", "2200-02-28", "2200-03-28"]
        assert mine[0]["model_version"] == built.serving[name] and mine[1]["rows"] == 12
        assert mine[0]["best_baseline"] == built.evaluations[name][0]["best_baseline"]
        assert mine[1]["best_baseline"] is None
    assets = models_client.get("/api/v1/models/assets/evaluations").get_json()["evaluations"][-1]
    assert "curves" not in assets["backtest"] and assets["backtest"]["pooled"]["strategy"]["trades"] >= 0
    assert set(assets["backtest"]["symbols"]) == set(built.evaluations["assets"][-1]["backtest"]["symbols"])


def test_backtest_gives_the_holdout_and_the_newest_scored_window_with_curves(models_client, built):
    body = models_client.get("/api/v1/models/assets/backtest").get_json()
    assert body["holdout"]["model_version"] == built.serving["assets"]
    assert body["holdout"]["backtest"] == built.holdout_backtest
    newest = built.evaluations["assets"][-1]
    assert (body["evaluation"]["run_id"], body["evaluation"]["window"]) == (newest["run_id"], newest["window"])
    curves = body["evaluation"]["backtest"]["curves"]
    assert set(curves) == {*newest["backtest"]["symbols"], "pooled"}
    pooled = curves["pooled"]
    assert len(pooled["dates"]) == len(pooled["strategy"]) == len(pooled["buy_and_hold"]) == 90


def test_backtest_of_a_use_case_without_a_trading_rule_is_a_404_naming_why(models_client):
    answer = models_client.get("/api/v1/models/matchups/backtest")
    assert answer.status_code == 404 and answer.mimetype == "application/json"
    error = answer.get_json()["error"]
    assert error["code"] == "no_backtest" and "not a trading signal" in error["message"] and error["field"] is None


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_an_unknown_use_case_is_a_json_404(models_client, endpoint):
    answer = models_client.get(f"/api/v1/models/weather/{endpoint}")
    assert answer.status_code == 404 and answer.mimetype == "application/json"
    assert answer.get_json()["error"]["code"] == "unknown_use_case"


def test_live_without_a_database_is_a_json_503(models_client):
    answer = models_client.get("/api/v1/models/assets/live")  # the log database was never migrated
    assert answer.status_code == 503
    assert answer.get_json()["error"]["code"] == "log_database_unavailable"


def observe(app, use_case: str, subject_a: str, subject_b: str, as_of: str, outcome: str) -> None:
    """The event that resolves a prediction made on `as_of`, loaded as the shipper loads it (which resolves the
    live rollups the page reads)."""
    from pronostico.prediction_log import db, schema

    engine = db.create_engine(app.config["DB_URL"])
    event = {"subject_a": subject_a, "subject_b": subject_b, "earliest_as_of": date.fromisoformat(as_of),
             "event_date": date.fromisoformat(as_of) + timedelta(days=1), "outcome": outcome}
    try:
        with engine.begin() as connection:
            schema.upsert_events(connection, use_case, [event])
    finally:
        engine.dispose()


def test_live_scores_each_version_against_what_happened(models_app, models_client, built):
    from pronostico.prediction_log import db

    db.upgrade(models_app.config["DB_URL"])
    answers = [models_client.post("/api/v1/assets/predict", json={"symbol": s}).get_json()
               for s in ("SPY", "SPY", "NVDA")]
    models_client.post("/api/v1/matchups/predict", json={"home_team": "Brazil", "away_team": "Argentina"})
    assert ship_all(models_app) == 4
    spy, nvda = answers[0], answers[2]
    missed = next(c for c in USE_CASES["assets"].classes if c != nvda["signal"])
    observe(models_app, "assets", "SPY", "", spy["as_of"], spy["signal"])
    observe(models_app, "assets", "NVDA", "", nvda["as_of"], missed)
    body = models_client.get("/api/v1/models/assets/live").get_json()
    [row] = body["versions"]
    expected = -(2 * math.log(spy["probabilities"][spy["signal"]]) + math.log(nvda["probabilities"][missed])) / 3
    assert (row["model_version"], row["predictions"], row["resolved"], row["hits"]) == \
        (built.serving["assets"], 3, 3, 2)
    assert row["hit_rate"] == pytest.approx(2 / 3) and row["log_loss"] == pytest.approx(expected)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", row["first_prediction_at"])
    assert body["totals"] == {"predictions": 3, "resolved": 3, "hits": 2, "hit_rate": pytest.approx(2 / 3),
                              "log_loss": pytest.approx(expected)}
    matchups = models_client.get("/api/v1/models/matchups/live").get_json()
    assert [(r["predictions"], r["resolved"], r["hit_rate"]) for r in matchups["versions"]] == [(1, 0, None)]
    assert matchups["totals"]["hit_rate"] is None and matchups["totals"]["log_loss"] is None
    page = models_client.get("/models").get_data(as_text=True)
    assets = section_html(page, "assets")
    assert 'id="live-assets"' in assets and "66.7%" in assets and f"{expected:.4f}" in assets


def test_a_registry_read_is_cached_until_what_serves_changes(models_app, models_client, built):
    before = models_client.get("/api/v1/models/assets/versions").get_json()["versions"]
    newer = "29991231T000000Z-0000ff"
    add_version(built.root, built.uri, "assets", built.serving["assets"], newer, 0.5)
    assert models_client.get("/api/v1/models/assets/versions").get_json()["versions"] == before  # cached
    registry.rollback(built.uri, "assets", newer)  # what serves changes: the cache is stale at once
    assert models_app.extensions["pronostico"].store.refresh() == ["assets"]
    after = models_client.get("/api/v1/models/assets/versions").get_json()
    assert [v["version"] for v in after["versions"]] == [v["version"] for v in before] + [newer]
    assert after["serving_version"] == newer and after["versions"][-1]["current"] is True


# --- the page -----------------------------------------------------------------------------------------------------

def section_html(page: str, name: str) -> str:
    """One use case's <section> of the models page."""
    start = page.index(f'<section class="model-case" id="{name}"')
    return page[start:page.index("</section>", start)]


def test_the_page_shows_each_use_cases_sections(models_client, built):
    answer = models_client.get("/models")
    assert answer.status_code == 200
    page = answer.get_data(as_text=True)
    for name, use_case in USE_CASES.items():
        html = section_html(page, name)
        assert f'data-evaluations="/api/v1/models/{name}/evaluations"' in html
        assert f'id="versions-{name}"' in html and f'id="trend-{name}"' in html
        assert f'data-versions="/api/v1/models/{name}/versions"' in html
        assert f'id="calibration-{name}-holdout" data-calibration="holdout"' in html
        assert f'id="calibration-{name}-evaluation" data-calibration="evaluation"' in html
        newest = built.evaluations[name][-1]
        assert f"model {newest['model_version']}, {newest['rows']:,} {use_case.presentation.holdout_unit}" in html
        assert all(v["version"] in html for v in registry.list_versions(built.uri, name))
        assert '<span class="badge badge-serving"' in html and '<span class="badge badge-state"' in html
        assert "Gaps in the lines" in html and "(too small)" in html
        assert "The live results cannot be read" in html  # the log database was never migrated
        assert use_case.presentation.title in html
    matchups, assets = section_html(page, "matchups"), section_html(page, "assets")
    assert "Not promoted" in matchups and "worse than the champion" in matchups and "RPS" in matchups
    table = matchups[matchups.index('id="versions-matchups"'):]
    assert table.index(LENT) < table.index(built.serving["matchups"])  # newest first
    assert "data-backtest" not in matchups and "data-curve" not in matchups and "Backtest" not in matchups
    assert "RPS" not in assets and 'data-backtest="/api/v1/models/assets/backtest"' in assets
    curves = len(built.holdout_backtest["symbols"]) + len(built.evaluations["assets"][-1]["backtest"]["symbols"]) + 2
    assert assets.count("data-curve ") == curves
    assert assets.count('class="data backtest-table"') == 2 and assets.count('<tr class="pooled">') == 2
    assert "vendor/chart.umd.min.js" in page and "models.js" in page
    assert "https://" not in page and "http://" not in page.replace("http://www.w3.org", "")
    assert 'aria-current="page">Models</a>' in page


def test_the_page_says_what_to_do_when_there_is_nothing_yet(settings, tiny_models, tmp_path):
    from app import create_app
    from pronostico.prediction_log import db

    uri = copy_models(tiny_models, tmp_path / "models")
    for name in USE_CASES:
        shutil.rmtree(tmp_path / "models" / name / "evaluations", ignore_errors=True)
    serving = registry.read_current(uri, "assets")["version"]
    (tmp_path / "models" / "assets" / "versions" / serving / "backtest.json").unlink(missing_ok=True)
    app = create_app(app_config(uri, settings.home))
    db.upgrade(app.config["DB_URL"])
    try:
        client = app.test_client()
        page = client.get("/models").get_data(as_text=True)
        for name in USE_CASES:
            html = section_html(page, name)
            assert "No evaluation yet: it comes with the next run on newer data." in html
            assert "No logged prediction yet" in html and f'id="trend-{name}"' not in html
            assert 'data-calibration="holdout"' in html and 'data-calibration="evaluation"' not in html
        assert "has no holdout backtest" in section_html(page, "assets")
        answer = client.get("/api/v1/models/assets/backtest")
        assert answer.status_code == 404 and serving in answer.get_json()["error"]["message"]
        assert client.get("/api/v1/models/assets/evaluations").get_json() == \
            {"use_case": "assets", "evaluations": [], "trend": []}
    finally:
        app.extensions["pronostico"].spool.close()


def test_the_answer_links_to_its_use_case_on_the_models_page(models_client):
    answer = models_client.post("/predict/assets", data={"csrf_token": csrf_token(models_client), "symbol": "SPY"})
    html = answer.get_data(as_text=True)
    assert 'href="/models#assets"' in html[html.index('id="assets-answer"'):]
    assert re.search(r'<a href="/models"\s*>Models</a>', html)  # the nav


# --- /metrics -----------------------------------------------------------------------------------------------------

def metric(text: str, line_prefix: str) -> float | None:
    lines = [line for line in text.splitlines() if line.startswith(line_prefix + " ")]
    return float(lines[0].rsplit(" ", 1)[1]) if lines else None


def test_metrics_count_answers_per_class(models_client):
    before = models_client.get("/metrics").get_data(as_text=True)
    signals = [models_client.post("/api/v1/assets/predict", json={"symbol": s}).get_json()["signal"]
               for s in ("SPY", "SPY", "AAPL")]
    outcome = models_client.post("/api/v1/matchups/predict", json=
                                 {"home_team": "Spain", "away_team": "Italy"}).get_json()["outcome"]
    text = models_client.get("/metrics").get_data(as_text=True)

    def count(body: str, use_case: str, name: str) -> float:
        value = metric(body, f'pronostico_answers_total{{class="{name}",use_case="{use_case}"}}')
        assert value is not None, f"no counter for {use_case} {name}"  # every class shows, at 0 if never said
        return value

    for name in USE_CASES["assets"].classes:
        assert count(text, "assets", name) - count(before, "assets", name) == signals.count(name)
    for name in USE_CASES["matchups"].classes:
        assert count(text, "matchups", name) - count(before, "matchups", name) == (name == outcome)


def test_metrics_show_the_newest_scored_evaluation(models_client, built):
    text = models_client.get("/metrics").get_data(as_text=True)
    for name in USE_CASES:
        newest = built.evaluations[name][-1]
        labels = f'{{model_version="{built.serving[name]}",use_case="{name}"}}'
        assert metric(text, f"pronostico_prospective_log_loss{labels}") == 0.93
        assert metric(text, f"pronostico_prospective_baseline_log_loss{labels}") == \
            pytest.approx(newest["baselines"][newest["best_baseline"]]["log_loss"])
        assert metric(text, f"pronostico_prospective_rows{labels}") == newest["rows"]


def test_metrics_leave_out_an_evaluation_too_small_to_score(settings, tiny_models, tmp_path):
    from app import create_app

    uri = copy_models(tiny_models, tmp_path / "models")
    serving = registry.read_current(uri, "assets")["version"]
    write_evaluations(uri, "assets", serving, [], losses=(0.9, None))  # the newest one is too small
    app = create_app(app_config(uri, settings.home))
    try:
        text = app.test_client().get("/metrics").get_data(as_text=True)
    finally:
        app.extensions["pronostico"].spool.close()
    assert 'pronostico_model_loaded{use_case="assets"' in text
    prospective = [line for line in text.splitlines() if line.startswith("pronostico_prospective_")]
    assert not [line for line in prospective if 'use_case="assets"' in line]
