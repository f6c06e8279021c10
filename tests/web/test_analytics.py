"""The analytics page and its JSON, from the prediction log's views."""

from __future__ import annotations

from tests.web.conftest import ship_all


def test_analytics_json_counts_what_was_asked(migrated_app, client):
    asks = [("matchups", {"home_team": "Brazil", "away_team": "Argentina"}),
            ("matchups", {"home_team": "Brazil", "away_team": "Argentina", "neutral": True}),
            ("matchups", {"home_team": "France", "away_team": "Brazil"}),
            ("assets", {"symbol": "SPY"}), ("assets", {"symbol": "SPY"}), ("assets", {"symbol": "NVDA"})]
    outcomes = {"matchups": {}, "assets": {}}
    for use_case, payload in asks:
        answer = client.post(f"/api/v1/{use_case}/predict", json=payload).get_json()
        outcome = answer.get("outcome") or answer["signal"]
        outcomes[use_case][outcome] = outcomes[use_case].get(outcome, 0) + 1
    assert ship_all(migrated_app) == 6
    report = client.get("/api/v1/analytics").get_json()
    assert report["totals"] == {"matchups": 3, "assets": 3}
    assert report["top_matchups"][0] == {"home_team": "Brazil", "away_team": "Argentina", "predictions": 2}
    assert report["top_teams"][0] == {"team": "Brazil", "predictions": 3}
    assert report["top_symbols"][0] == {"symbol": "SPY", "predictions": 2}
    assert len(report["hourly"]["labels"]) == 48 and report["hourly"]["counts"]["matchups"][-1] == 3
    assert len(report["daily"]["labels"]) == 30 and report["daily"]["counts"]["assets"][-1] == 3
    for use_case, seen in outcomes.items():
        assert {k: v for k, v in report["outcomes"][use_case].items() if v} == seen
    for use_case in ("matchups", "assets"):
        scores = report["models"][use_case]["scores"]
        assert "model" in scores and len(scores) >= 3 and all(s["log_loss"] > 0 for s in scores.values())


def test_analytics_page_has_a_canvas_per_chart(client):
    page = client.get("/analytics")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    for chart in ("hourly", "matchups", "symbols", "outcomes-matchups", "outcomes-assets", "models"):
        assert f'id="chart-{chart}"' in html
    assert "vendor/chart.umd.min.js" in html and 'data-source="/api/v1/analytics"' in html


def test_analytics_without_a_database_is_a_json_503(client):
    answer = client.get("/api/v1/analytics")  # the log database was never migrated
    assert answer.status_code == 503
    assert answer.get_json()["error"]["code"] == "log_database_unavailable"


def test_analytics_json_scores_each_version_on_what_really_happened(migrated_app, client):
    from datetime import date, timedelta

    from pronostico.prediction_log import db
    from pronostico.prediction_log.live import parse_events
    from pronostico.prediction_log.schema import upsert_events

    answers = [client.post("/api/v1/assets/predict", json={"symbol": symbol}).get_json() for symbol in ("SPY", "NVDA")]
    assert ship_all(migrated_app) == 2
    spy = answers[0]
    next_bar = (date.fromisoformat(spy["as_of"]) + timedelta(days=1)).isoformat()
    document = {"use_case": "assets", "events": [{"subject_a": "SPY", "subject_b": "", "event_date": next_bar,
                                                  "earliest_as_of": spy["as_of"], "outcome": spy["signal"]}]}
    engine = db.create_engine(migrated_app.config["DB_URL"])
    with engine.begin() as connection:
        upsert_events(connection, "assets", parse_events(document, "assets"))
    engine.dispose()
    (live,) = client.get("/api/v1/analytics").get_json()["live"]
    assert (live["use_case"], live["model_version"]) == ("assets", spy["model_version"])
    assert (live["predictions"], live["resolved"], live["hits"], live["hit_rate"]) == (2, 1, 1, 1.0)
    assert live["log_loss"] > 0
    assert 'id="live-results"' in client.get("/analytics").get_data(as_text=True)
