"""The matchups model trained on the real 23,921-row Kaggle file: its artifact, its quality, its behaviour."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from pronostico.core import storage
from pronostico.core.serving import ServingModel
from tests.fixtures.pipelines import TrainedRun

pytestmark = [pytest.mark.spark, pytest.mark.slow]


@pytest.fixture(scope="module")
def model(matchups_run: TrainedRun) -> ServingModel:
    return ServingModel.load(matchups_run.settings.models_uri, "matchups", matchups_run.version)


def test_the_artifact_holds_every_part_of_the_contract(matchups_run: TrainedRun) -> None:
    names = {info.uri.rsplit("/", 1)[-1] for info in storage.list_objects(matchups_run.version_uri)}
    assert {"manifest.json", "metrics.json", "forest.npz", "features.json", "entities.json"} <= names
    assert any("/spark_model/" in info.uri for info in storage.list_objects(matchups_run.version_uri))
    manifest = storage.read_json(storage.join(matchups_run.version_uri, "manifest.json"))
    assert manifest["rows"]["read"] == manifest["rows"]["kept"] == 23_921
    assert manifest["rows"]["quarantined"] == 0
    assert manifest["inputs"][0]["etag"] and manifest["inputs"][0]["schema"] == "kaggle_fifa_ranked"
    assert manifest["training_range"]["end"] < manifest["holdout_range"]["start"], "the split is by time"
    assert manifest["versions"]["pyspark"].startswith("3.5.")
    assert manifest["run_id"] == matchups_run.run_id
    assert {"max_depth", "min_instances_per_node", "num_trees"} <= set(manifest["hyperparameters"])


def test_the_model_beats_every_naive_baseline_on_holdout_log_loss(model: ServingModel) -> None:
    metrics = model.metrics
    strong = set(model.use_case.strong_baselines)
    assert strong == {"elo_ordered_logit", "dixon_coles"}
    assert set(metrics["baselines"]) == {"class_prior", "better_ranked_wins"} | strong
    for name, baseline in metrics["baselines"].items():
        assert baseline["rows"] == metrics["model"]["rows"] > 3_000, f"{name} is scored on other rows"
        assert baseline["rps"] is not None and baseline["calibration"].keys() == {"home_win", "draw", "away_win"}
        if name not in strong:
            assert metrics["model"]["log_loss"] < baseline["log_loss"], name
    for name in strong:  # real models: far better than the naive rules, though they gate nothing
        assert metrics["baselines"][name]["log_loss"] < metrics["baselines"]["better_ranked_wins"]["log_loss"], name
    assert metrics["model"]["accuracy"] > metrics["baselines"]["class_prior"]["accuracy"]
    assert metrics["model"]["accuracy"] < 0.75, "football this predictable means the result leaked into a feature"


def test_the_temperature_was_fitted_before_the_holdout_and_serves(matchups_run: TrainedRun,
                                                                  model: ServingModel) -> None:
    manifest = storage.read_json(storage.join(matchups_run.version_uri, "manifest.json"))
    calibration = manifest["calibration"]
    assert calibration["method"] == "temperature" and 0.25 <= calibration["temperature"] <= 4.0
    assert calibration["fitted_on"]["end"] < manifest["holdout_range"]["start"], "a holdout row fitted it"
    assert calibration["fitted_on"]["start"] > manifest["training_range"]["start"], "only the newest block"
    assert calibration["fitted_on"]["rows"] >= 1_000
    assert model.forest.temperature == calibration["temperature"]


def test_the_first_candidate_is_promoted(matchups_run: TrainedRun) -> None:
    assert matchups_run.outcome["decision"].promoted
    current = storage.read_json(storage.join(matchups_run.settings.models_uri, "matchups", "current.json"))
    assert current["version"] == matchups_run.version


def by_elo(model: ServingModel) -> list[str]:
    return sorted(model.snapshot.active, key=lambda team: model.snapshot.active[team].elo)


def test_a_stronger_team_gets_the_higher_win_probability(model: ServingModel) -> None:
    teams = by_elo(model)
    weak, strong = teams[:8], teams[-8:]
    for underdog, favourite in itertools.product(weak, strong):
        answer = model.predict({"home_team": underdog, "away_team": favourite, "neutral": True})
        assert answer["probabilities"]["away_win"] > answer["probabilities"]["home_win"], (underdog, favourite)
        assert answer["winner"] == favourite


def test_win_probability_grows_with_the_opponents_weakness(model: ServingModel) -> None:
    teams = by_elo(model)
    favourite = teams[-1]
    opponents = teams[-40:-1:6]  # strongest last
    wins = [model.predict({"home_team": favourite, "away_team": o, "neutral": True})["probabilities"]["home_win"]
            for o in opponents]
    assert wins[0] > wins[-1] + 0.1
    assert np.corrcoef(np.arange(len(wins)), wins)[0, 1] < -0.8


def test_swapping_the_teams_mirrors_the_probabilities_on_neutral_ground(model: ServingModel) -> None:
    for home, away in (("Brazil", "Argentina"), ("France", "Morocco"), ("Japan", "Germany")):
        forward = model.predict({"home_team": home, "away_team": away, "neutral": True})["probabilities"]
        swapped = model.predict({"home_team": away, "away_team": home, "neutral": True})["probabilities"]
        assert forward["home_win"] == pytest.approx(swapped["away_win"], abs=1e-12)
        assert forward["draw"] == pytest.approx(swapped["draw"], abs=1e-12)
        assert forward["away_win"] == pytest.approx(swapped["home_win"], abs=1e-12)


def test_playing_at_home_helps(model: ServingModel) -> None:
    teams = by_elo(model)[-60:]
    rng = np.random.default_rng(3)
    pairs = [tuple(rng.choice(teams, 2, replace=False)) for _ in range(40)]
    at_home = [model.predict({"home_team": a, "away_team": b})["probabilities"]["home_win"] for a, b in pairs]
    away = [model.predict({"home_team": b, "away_team": a})["probabilities"]["away_win"] for a, b in pairs]
    assert np.mean(at_home) > np.mean(away) + 0.03


def test_answers_are_distributions_over_the_three_outcomes(model: ServingModel) -> None:
    answer = model.predict({"home_team": "Spain", "away_team": "Italy", "neutral": False, "tournament": "world_cup"})
    assert set(answer["probabilities"]) == {"home_win", "draw", "away_win"}
    assert sum(answer["probabilities"].values()) == pytest.approx(1.0)
    assert answer["outcome"] == max(answer["probabilities"], key=answer["probabilities"].get)
    assert answer["model_version"] == model.version and len(answer["prediction_id"]) == 36


def test_the_answer_says_how_current_the_teams_state_is(model: ServingModel, shared_data) -> None:
    import pandas as pd

    newest = pd.to_datetime(pd.read_csv(shared_data / "matchups" / "international_matches.csv")["date"],
                            format="%d/%m/%Y").max().strftime("%Y-%m-%d")
    answer = model.predict({"home_team": "Brazil", "away_team": "Argentina"})
    assert answer["as_of"] == model.snapshot.as_of == newest


def test_the_holdout_is_scored_with_the_ranked_probability_score(model: ServingModel) -> None:
    for scores in (model.metrics["model"], *model.metrics["baselines"].values()):
        assert 0.0 < scores["rps"] < scores["brier"]  # RPS over three ordered classes sits below the Brier score
    assert model.metrics["model"]["rps"] < model.metrics["baselines"]["class_prior"]["rps"]


def test_each_match_is_an_event_in_both_orders_of_the_names(matchups_run: TrainedRun) -> None:
    from pronostico.core import layout

    events = storage.read_json(layout.observed_events_uri(matchups_run.settings.models_uri, "matchups"))["events"]
    by_key = {(e["subject_a"], e["subject_b"], e["event_date"]): e for e in events}
    mirrored = {"home_win": "away_win", "draw": "draw", "away_win": "home_win"}
    for (first, second, day), event in by_key.items():
        assert mirrored[by_key[(second, first, day)]["outcome"]] == event["outcome"]
    assert all(e["earliest_as_of"] < e["event_date"] for e in events)
    assert len(events) > 1_000
