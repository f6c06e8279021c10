"""A use case is one module: `duels`, which exists only in tests/usecases/duels.py, goes through every stage.

Registered by PRONOSTICO_EXTRA_USE_CASES alone, it is converted and trained by the real Spark steps, promoted,
served by the Flask app (API, OpenAPI, form), logged and shipped to the prediction log, and predicted by the CLI.
Nothing outside its module knows it.
"""

from __future__ import annotations

import csv
import io
import os
import re
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from pronostico.core import storage
from pronostico.core.config import PROJECT_ROOT, load_settings
from pronostico.core.usecases import EXTRA_VARIABLE, USE_CASES, names
from tests.web.conftest import app_config, ship_all

MODULE = "tests.usecases.duels"
PLAYERS = [f"player_{i:02d}" for i in range(12)]
PER_DAY = 3
TRAIN_PARAMS = '{"num_trees": 12, "max_depth": [5], "min_instances_per_node": [10], "folds": 2}'


def write_duels(path: Path, count: int = 1800, seed: int = 3) -> dict[str, float]:
    """Duels between players of fixed skills: the stronger one wins more often. Returns the skills."""
    rng = np.random.default_rng(seed)
    skill = dict(zip(PLAYERS, rng.normal(0, 1.2, len(PLAYERS)), strict=True))
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["date", "first", "second", "winner"])
        for i in range(count // PER_DAY):
            day = np.datetime64("2018-01-01") + i
            drawn = rng.permutation(PLAYERS)  # a player duels once a day, so (date, pair) is a unique key
            for first, second in zip(drawn[:PER_DAY], drawn[PER_DAY:2 * PER_DAY], strict=True):
                p_first = 1 / (1 + np.exp(skill[second] - skill[first]))
                writer.writerow([str(day), first, second, first if rng.random() < p_first else second])
    return skill


@pytest.fixture(scope="module")
def duels_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from pronostico.pipeline.steps import run_locally

    home = tmp_path_factory.mktemp("duels-home")
    skill = write_duels(home / "duels.csv")
    patch = pytest.MonkeyPatch()
    patch.setenv(EXTRA_VARIABLE, MODULE)
    # the Spark steps are child processes: they find the module on the path, as they would in an installed package
    patch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")])))
    patch.setenv("PRONOSTICO_HOME", str(home))
    settings = load_settings()
    outcome = run_locally(settings, "duels", [storage.to_uri(home / "duels.csv")], "test-duels", TRAIN_PARAMS,
                          progress=lambda _: None)
    yield {"settings": settings, "outcome": outcome, "skill": skill}
    patch.undo()


@pytest.fixture
def duels_app(duels_run: dict[str, Any], tmp_path: Path) -> Any:
    from app import create_app

    application = create_app(app_config(duels_run["settings"].models_uri, tmp_path))  # a spool of its own
    yield application
    application.extensions["pronostico"].spool.close()


def favourite_and_underdog(skill: dict[str, float]) -> tuple[str, str]:
    ranked = sorted(skill, key=skill.get)
    return ranked[-1], ranked[0]


def test_the_module_alone_registers_the_use_case(duels_run: dict[str, Any]) -> None:
    assert names()[-1] == "duels" and USE_CASES["duels"].name == "duels"
    assert list(USE_CASES) == ["matchups", "assets", "duels"]  # its display order comes after the built-in ones


def test_convert_train_and_promote_run_on_the_real_spark_steps(duels_run: dict[str, Any]) -> None:
    outcome = duels_run["outcome"]
    converted = outcome["results"]["convert_csv_to_parquet"]
    assert converted["rows_read"] == 1800 and converted["rows_quarantined"] == 0
    decision = outcome["decision"]
    assert decision.promoted, decision.reason
    metrics = storage.read_json(storage.join(duels_run["settings"].models_uri, "duels", "versions",
                                             decision.candidate, "metrics.json"))
    # the skills are real: the forest beats the class prior on duels it never saw
    assert metrics["model"]["log_loss"] < metrics["baselines"]["class_prior"]["log_loss"]


def test_the_api_serves_lists_and_describes_it(duels_run: dict[str, Any], duels_app: Any) -> None:
    client = duels_app.test_client()
    players = client.get("/api/v1/duels/players").get_json()["players"]
    assert {p["name"] for p in players} == set(PLAYERS)
    favourite, underdog = favourite_and_underdog(duels_run["skill"])
    answer = client.post("/api/v1/duels/predict", json={"home_team": favourite, "away_team": underdog})
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    assert set(body) == {"prediction_id", "model_version", "home_team", "away_team", "probabilities", "outcome"}
    assert body["outcome"] == "home_win" and body["probabilities"]["home_win"] > 0.6
    refused = client.post("/api/v1/duels/predict", json={"home_team": favourite, "away_team": "nobody"})
    assert refused.status_code == 422 and refused.get_json()["error"]["field"] == "away_team"
    document = client.get("/api/v1/openapi.json").get_json()
    assert "/api/v1/duels/predict" in document["paths"] and "/api/v1/duels/players" in document["paths"]
    schema = document["components"]["schemas"]["DuelsAnswer"]
    assert schema["properties"]["outcome"]["enum"] == ["home_win", "away_win"]
    assert document["components"]["schemas"]["DuelsRequest"]["required"] == ["home_team", "away_team"]


def test_the_form_asks_and_answers_and_every_answer_is_logged(duels_run: dict[str, Any], duels_app: Any) -> None:
    from pronostico.prediction_log import db

    client = duels_app.test_client()
    page = client.get("/").get_data(as_text=True)
    assert 'id="duels"' in page and "Predict the duel" in page and 'data-picker="player"' in page
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    favourite, underdog = favourite_and_underdog(duels_run["skill"])
    answered = client.post("/predict/duels", data={"csrf_token": token, "home_team": favourite,
                                                   "away_team": underdog})
    html = answered.get_data(as_text=True)
    assert answered.status_code == 200 and f"{favourite} wins" in html and "held-out duels" in html
    client.post("/api/v1/duels/predict", json={"home_team": underdog, "away_team": favourite})
    db.upgrade(duels_app.config["DB_URL"])
    assert ship_all(duels_app) == 2
    engine = sa.create_engine(duels_app.config["DB_URL"])
    with engine.connect() as connection:
        rows = connection.execute(sa.text(
            "SELECT channel, home_team, away_team, outcome, p_home_win, p_away_win, p_draw FROM prediction_log "
            "WHERE use_case = 'duels' ORDER BY channel")).all()
    engine.dispose()
    assert [(r.channel, r.home_team, r.away_team) for r in rows] == [("api", underdog, favourite),
                                                                      ("form", favourite, underdog)]
    assert all(r.p_draw is None and abs(r.p_home_win + r.p_away_win - 1) < 1e-9 for r in rows)
    assert rows[1].outcome == "home_win"


def test_the_cli_predicts_it(duels_run: dict[str, Any]) -> None:
    from pronostico.local.cli import main

    favourite, underdog = favourite_and_underdog(duels_run["skill"])
    printed = io.StringIO()
    with redirect_stdout(printed):
        assert main(["predict", "duels", "--home-team", favourite, "--away-team", underdog]) == 0
    assert f"{favourite} vs {underdog}" not in printed.getvalue()  # describe() is the module's: its default
    assert f"Most likely: {favourite} wins" in printed.getvalue()
