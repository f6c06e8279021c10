"""The web pages through the Flask test client: the form with CSRF, its answers and its errors."""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any, ClassVar

from flask import render_template_string

from app.pages import Card
from app.runtime import model_quality
from pronostico.core.usecases.matchups import Matchups
from tests.web.test_api import spooled_rows


def csrf_token(client) -> str:
    page = client.get("/").get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def test_home_offers_both_forms_with_pickers_and_csrf(client):
    page = client.get("/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'action="/predict/matchups' in html and 'action="/predict/assets' in html
    assert 'data-picker="team"' in html and 'data-picker="symbol"' in html
    assert '<option value="Brazil"' in html and '<option value="BTC-USD"' in html
    assert 'name="neutral"' in html and 'name="tournament"' in html
    assert html.count('name="csrf_token"') == 2
    assert "http://" not in html.replace('http://www.w3.org', '') and "https://" not in html  # nothing external


def test_matchup_form_shows_probabilities_outcome_version_and_quality(app, client):
    answer = client.post("/predict/matchups", data={"csrf_token": csrf_token(client), "home_team": "Brazil",
                                                    "away_team": "Argentina", "neutral": "on"})
    assert answer.status_code == 200
    html = answer.get_data(as_text=True)
    [row] = spooled_rows(app)
    assert row["channel"] == "form" and row["neutral"] is True
    assert 'class="probbar"' in html and html.count('class="seg seg-') == 3
    assert re.search(r"(Brazil win|Argentina win|Draw)</p>", html)
    assert f"Model {row['model_version']}" in html and row["prediction_id"] in html
    assert 'class="quality quality-' in html and "Log loss" in html and "naive baseline" in html


def test_asset_form_shows_the_signal_beside_the_baseline(app, client):
    answer = client.post("/predict/assets", data={"csrf_token": csrf_token(client), "symbol": "SPY"})
    assert answer.status_code == 200
    html = answer.get_data(as_text=True)
    [row] = spooled_rows(app)
    assert f'class="signal signal-{row["outcome"]}"' in html
    assert "held-out bars" in html


def test_form_without_csrf_token_is_refused_and_not_logged(app, client):
    answer = client.post("/predict/assets", data={"symbol": "SPY"})
    assert answer.status_code == 400
    assert "form expired" in answer.get_data(as_text=True)
    assert answer.mimetype == "text/html"
    assert spooled_rows(app) == []


def test_bad_form_field_is_a_422_with_the_message_at_the_field(app, client):
    answer = client.post("/predict/matchups", data={"csrf_token": csrf_token(client), "home_team": "Brazil",
                                                    "away_team": "Brazil"})
    assert answer.status_code == 422
    html = answer.get_data(as_text=True)
    assert 'id="matchups-away_team-error"' in html and "must be different teams" in html
    assert 'aria-invalid="true" aria-describedby="matchups-away_team-error"' in html
    assert spooled_rows(app) == []


def test_missing_team_in_form(client):
    answer = client.post("/predict/matchups", data={"csrf_token": csrf_token(client), "home_team": "Brazil"})
    assert answer.status_code == 422 and "away_team is required" in answer.get_data(as_text=True)


def test_unknown_page_and_use_case_are_html_pages(client):
    assert client.get("/nowhere").status_code == 404
    answer = client.post("/predict/weather", data={"csrf_token": csrf_token(client)})
    assert answer.status_code == 404 and answer.mimetype == "text/html"


class RatedMatchups(Matchups):
    """Matchups with a strong baseline named in no label, so the box must fall back to its name."""

    strong_baselines: ClassVar[tuple[str, ...]] = ("rated_model",)


def quality_html(app: Any, model: Any) -> str:
    with app.test_request_context("/"):
        return render_template_string('{% from "_macros.html" import quality_box %}{{ quality_box(card) }}',
                                      card=Card(use_case=model.use_case, model=model))


def stub_model(model_log_loss: float, baselines: dict[str, float]) -> SimpleNamespace:
    metrics = {"model": {"log_loss": model_log_loss, "accuracy": 0.5},
               "baselines": {name: {"log_loss": value, "accuracy": 0.4} for name, value in baselines.items()},
               "split": {"holdout_rows": 1200, "holdout_start": "2024-01-01", "holdout_end": "2024-12-31"}}
    return SimpleNamespace(metrics=metrics, use_case=RatedMatchups())


def test_the_verdict_is_against_the_naive_baselines_and_the_strong_one_is_shown_beside(app):
    model = stub_model(0.95, {"class_prior": 1.05, "better_ranked_wins": 1.0, "rated_model": 0.9})
    quality = model_quality(model)
    assert (quality["baseline"], quality["baseline_log_loss"], quality["verdict"]) == ("better_ranked_wins", 1.0,
                                                                                        "beats")
    assert (quality["best_baseline"], quality["best_baseline_log_loss"]) == ("rated_model", 0.9)
    assert quality["best_baseline_strong"] and not quality["beats_best_baseline"]
    assert quality["best_baseline_label"] == "rated_model"  # no label: its name
    html = " ".join(quality_html(app, model).split())
    assert "Beats its naive baselines" in html
    assert "against the best naive baseline: the better-ranked side wins." in html
    assert "strong one, a real model: rated_model (log loss 0.900)" in html
    assert 'class="quality-best"' in html and "ahead of this model" in html
    assert "naive baseline: rated_model" not in html


def test_a_naive_best_baseline_shows_no_strong_one(app):
    model = stub_model(1.04, {"class_prior": 1.05, "better_ranked_wins": 1.0, "rated_model": 1.1})
    quality = model_quality(model)
    assert quality["verdict"] == "none" and quality["best_baseline"] == quality["baseline"] == "better_ranked_wins"
    assert not quality["best_baseline_strong"]
    html = quality_html(app, model)
    assert "No better than a naive baseline" in html
    assert "quality-best" not in html and "rated_model" not in html
