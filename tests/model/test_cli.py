"""The `pronostico` command line against real trained models: predict, list, and a failing pipeline run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def pronostico(*args: str, home: Path, models_uri: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PRONOSTICO_HOME": str(home)}
    if models_uri:
        env["PRONOSTICO_MODELS_URI"] = models_uri
    return subprocess.run([sys.executable, "-m", "pronostico.local.cli", *args], capture_output=True, text=True,
                          env=env, timeout=300, check=False)


def test_predict_json_is_the_http_api_answer(trained_models: str, tmp_path: Path) -> None:
    done = pronostico("predict", "matchups", "--home-team", "Brazil", "--away-team", "Argentina", "--neutral", "--json",
                      home=tmp_path, models_uri=trained_models)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert set(answer) >= {"prediction_id", "model_version", "home_team", "away_team", "neutral", "probabilities",
                           "outcome", "winner"}
    assert answer["neutral"] is True and set(answer["probabilities"]) == {"home_win", "draw", "away_win"}
    done = pronostico("predict", "assets", "--symbol", "SPY", "--json", home=tmp_path, models_uri=trained_models)
    assert set(json.loads(done.stdout)) >= {"prediction_id", "model_version", "symbol", "as_of", "probabilities",
                                            "signal"}


def test_predict_prints_a_readable_answer(trained_models: str, tmp_path: Path) -> None:
    done = pronostico("predict", "matchups", "--home-team", "USA", "--away-team", "Mexico", home=tmp_path,
                      models_uri=trained_models)
    assert done.returncode == 0, done.stderr
    assert "United States vs Mexico" in done.stdout and "Most likely:" in done.stdout


@pytest.mark.parametrize(("args", "hint"), [
    (("matchups", "--home-team", "Brazl", "--away-team", "Argentina"), "did you mean Brazil"),
    (("matchups", "--home-team", "Brazil", "--away-team", "Brazil"), "must be different"),
    (("assets", "--symbol", "BTC"), "BTC-USD"),
])
def test_a_bad_choice_is_a_one_line_error_with_exit_code_2(trained_models: str, tmp_path: Path, args: tuple,
                                                            hint: str) -> None:
    done = pronostico("predict", *args, home=tmp_path, models_uri=trained_models)
    assert done.returncode == 2
    assert hint in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert done.stdout == ""


def test_predict_without_a_model_says_to_run_the_pipeline(tmp_path: Path) -> None:
    done = pronostico("predict", "assets", "--symbol", "SPY", home=tmp_path)
    assert done.returncode == 1 and "run the pipeline first" in done.stderr


def test_models_list_marks_the_current_version(trained_models: str, tmp_path: Path) -> None:
    done = pronostico("models", "list", home=tmp_path, models_uri=trained_models)
    assert done.returncode == 0, done.stderr
    # assets are trained on their history twice before the whole files (tests/fixtures/pipelines.py)
    assert "matchups: 1 version(s)" in done.stdout and "assets: 3 version(s)" in done.stdout
    assert done.stdout.count("\n  * ") == 2
    listing = json.loads(pronostico("models", "list", "--json", home=tmp_path, models_uri=trained_models).stdout)
    assert [v["current"] for v in listing["matchups"]] == [True]


def test_a_failing_pipeline_run_exits_non_zero_with_the_reason(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("when,who\n2020-01-01,x\n")
    done = pronostico("pipeline", "run", "--use-case", "matchups", "--input", str(bad), home=tmp_path / "home")
    assert done.returncode == 1
    assert "convert_csv_to_parquet" in done.stderr and "FAILED" in done.stderr and "wrong header" in done.stderr
    assert not (tmp_path / "home" / "s3" / "pronostico-dev-models" / "matchups" / "current.json").exists()
