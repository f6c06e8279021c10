"""The web pages through the Flask test client: the form with CSRF, its answers and its errors."""

from __future__ import annotations

import re

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
