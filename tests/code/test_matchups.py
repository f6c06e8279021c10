"""Matchups: labels, tiers, Elo, features that know only the past, and request parsing."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from pronostico.core.football import poisson_outcome
from pronostico.core.usecases.base import RequestError
from pronostico.core.usecases.matchups import (
    AWAY_WIN,
    DRAW,
    FEATURES,
    GOAL_BASE,
    GOAL_HOME,
    HOME_WIN,
    INITIAL_ELO,
    MATCHUPS,
    History,
    TeamBook,
    TeamState,
    apply_result,
    matchup_features,
    outcome_label,
    tournament_tier,
)


def matches(rows: list[tuple]) -> pd.DataFrame:
    columns = ["date", "home_team", "away_team", "home_score", "away_score", "tournament", "neutral",
               "shoot_out", "home_rank", "away_rank", "home_points", "away_points"]
    return pd.DataFrame(rows, columns=columns)


def league(n_rounds: int = 4) -> pd.DataFrame:
    """Three teams playing each other; A always beats B and C, B beats C."""
    rows, day = [], 1
    for _ in range(n_rounds):
        for home, away, hs, as_ in (("A", "B", 2, 0), ("B", "C", 1, 0), ("C", "A", 0, 3)):
            rows.append((f"2020-01-{day:02d}", home, away, hs, as_, "Friendly", False, None, None, None, None, None))
            day += 1
    return matches(rows)


def test_shoot_out_is_a_draw_whatever_the_result_column_says() -> None:
    assert outcome_label(1, 1, True) == DRAW
    assert outcome_label(2, 1, True) == DRAW
    assert outcome_label(2, 1, False) == HOME_WIN
    assert outcome_label(0, 3, None) == AWAY_WIN


def test_tiers_order_the_importance_of_a_match() -> None:
    assert tournament_tier("Friendly") < tournament_tier("Baltic Cup") < tournament_tier(
        "FIFA World Cup qualification") < tournament_tier("Copa América") < tournament_tier("FIFA World Cup")


def test_elo_moves_by_the_same_amount_in_both_directions() -> None:
    home, away = TeamState(), TeamState()
    match = {"neutral": True, "home_score": 1, "away_score": 0, "tournament": "Friendly", "date": "2020-01-01"}
    apply_result(home, away, match, HOME_WIN)
    assert home.elo > INITIAL_ELO > away.elo
    assert home.elo - INITIAL_ELO == pytest.approx(INITIAL_ELO - away.elo)
    assert home.elo - INITIAL_ELO == pytest.approx(20 * 0.5)  # friendly K=20, expected 0.5 on neutral ground
    assert home.recent == [[3.0, 1.0, 0.0]] and away.recent == [[0.0, 0.0, 1.0]]


def test_a_match_result_never_leaks_into_its_own_features() -> None:
    base = league()
    changed = base.copy()
    changed.loc[5, ["home_score", "away_score"]] = [0, 9]  # rewrite one result
    before = MATCHUPS.feature_frame(base)
    after = MATCHUPS.feature_frame(changed)
    features = list(FEATURES)
    np.testing.assert_array_equal(before.loc[:5, features].to_numpy(), after.loc[:5, features].to_numpy())
    assert not np.array_equal(before.loc[6:, features].to_numpy(), after.loc[6:, features].to_numpy())


def test_the_stronger_team_ends_with_the_higher_rating() -> None:
    snapshot = MATCHUPS.entity_snapshot(league())
    elo = {team: s["elo"] for team, s in snapshot["teams"].items()}
    assert elo["A"] > elo["B"] > elo["C"]
    assert snapshot["as_of"] == "2020-01-12"


def test_neutral_matches_are_also_learned_in_the_swapped_order() -> None:
    frame = MATCHUPS.feature_frame(matches([
        ("2020-01-01", "A", "B", 2, 0, "Friendly", True, None, 10, 20, None, None),
        ("2020-01-02", "A", "B", 1, 0, "Friendly", False, None, 10, 20, None, None),
    ]))
    assert list(frame["mirror"]) == [0, 1, 0]
    original, twin = frame.iloc[0], frame.iloc[1]
    assert (twin["home_team"], twin["away_team"], twin["label"]) == ("B", "A", AWAY_WIN)
    assert twin["elo_home"] == original["elo_away"] and twin["rank_home"] == original["rank_away"]
    assert twin["log_rank_ratio"] == pytest.approx(-original["log_rank_ratio"])


def test_rankings_in_a_row_are_used_for_that_row() -> None:
    frame = MATCHUPS.feature_frame(matches([
        ("2020-01-01", "A", "B", 2, 0, "Friendly", False, None, 5, 50, 1600.0, 1200.0),
        ("2020-02-01", "A", "B", 2, 0, "Friendly", False, None, None, None, None, None),
    ]))
    assert frame.loc[0, "rank_known"] == 1.0 and frame.loc[0, "log_rank_ratio"] == pytest.approx(np.log(10))
    assert frame.loc[1, "rank_home"] == 5.0  # the last known rank carries forward
    assert frame.loc[0, "points_diff"] == 400.0


def test_features_are_the_same_for_training_rows_and_requests() -> None:
    history = History()
    rows = [matchup_features(h, a, bool(m["neutral"]), tournament_tier(m["tournament"]), m["date"])
            for m, h, a in history.replay(league())]
    trained = MATCHUPS.feature_frame(league())[list(FEATURES)].to_numpy()
    assert np.array_equal(trained, np.array([[r[f] for f in FEATURES] for r in rows]))


def book() -> TeamBook:
    snapshot = MATCHUPS.entity_snapshot(league(n_rounds=6))
    snapshot["teams"]["Old"] = {**snapshot["teams"]["A"], "last_date": "2001-01-01"}
    return MATCHUPS.load_snapshot(snapshot)


def test_defunct_and_cold_teams_are_not_offered() -> None:
    assert set(book().active) == {"A", "B", "C"}


@pytest.mark.parametrize(("payload", "code", "field"), [
    ({"away_team": "B"}, "missing_field", "home_team"),
    ({"home_team": 3, "away_team": "B"}, "invalid_type", "home_team"),
    ({"home_team": "A", "away_team": "Zed"}, "unknown_team", "away_team"),
    ({"home_team": "A", "away_team": "A"}, "same_team", "away_team"),
    ({"home_team": "A", "away_team": "B", "neutral": "yes"}, "invalid_type", "neutral"),
    ({"home_team": "A", "away_team": "B", "tournament": "cup"}, "invalid_choice", "tournament"),
    ({"home_team": "Old", "away_team": "B"}, "unknown_team", "home_team"),
])
def test_bad_requests_name_the_field(payload: dict, code: str, field: str) -> None:
    with pytest.raises(RequestError) as caught:
        MATCHUPS.parse_request(payload, book())
    assert (caught.value.code, caught.value.field) == (code, field)


def test_fifa_names_are_accepted_for_common_names() -> None:
    snapshot = MATCHUPS.entity_snapshot(league(n_rounds=6))
    snapshot["teams"]["United States"] = snapshot["teams"].pop("A")
    request = MATCHUPS.parse_request({"home_team": "USA", "away_team": "B"}, MATCHUPS.load_snapshot(snapshot))
    assert request.home_team == "United States"


def test_neutral_requests_are_answered_symmetrically() -> None:
    forward, swapped = np.array([0.5, 0.3, 0.2]), np.array([0.4, 0.35, 0.25])
    request = MATCHUPS.parse_request({"home_team": "A", "away_team": "B", "neutral": True}, book())
    assert len(MATCHUPS.request_vectors(request, book())) == 2
    combined = MATCHUPS.combine(request, [forward, swapped])
    np.testing.assert_allclose(combined, [0.375, 0.325, 0.3])
    np.testing.assert_allclose(MATCHUPS.combine(request, [swapped, forward]), combined[::-1])


def test_goal_ratings_and_activity_know_only_the_matches_before() -> None:
    """Each row's goal rating and activity come from earlier matches: changing a later score changes no earlier row."""
    matches = league()
    later = matches.assign(home_score=np.where(matches.index == len(matches) - 1, 9, matches["home_score"]))
    before = MATCHUPS.feature_frame(matches)
    after = MATCHUPS.feature_frame(later)
    assert before[list(FEATURES)].equals(after[list(FEATURES)])
    first = before.iloc[0]
    assert first["goals_expected_home"] == pytest.approx(math.exp(GOAL_BASE + GOAL_HOME))  # no history: the base rate
    assert first["activity_home"] == 0.0
    assert before["activity_home"].max() > 1.0  # a side with several recent matches


def test_a_scoring_side_gains_attack_and_its_opponent_loses_defence() -> None:
    home, away = TeamState(), TeamState()
    apply_result(home, away, {"neutral": True, "home_score": 4, "away_score": 0, "tournament": "Friendly",
                              "date": "2020-01-01"}, 0)
    assert home.attack > 0 > away.defence
    assert away.attack < 0 < home.defence  # they scored fewer than expected; home conceded fewer
    assert home.activity == away.activity == 1.0
    assert home.activity_on("2021-01-01") == pytest.approx(math.exp(-366 / 365))


def test_the_goal_outcome_probabilities_mirror_exactly_when_the_sides_swap() -> None:
    win, draw, loss = poisson_outcome(1.7, 0.6)
    assert win + draw + loss == pytest.approx(1.0) and win > loss
    assert poisson_outcome(0.6, 1.7) == (loss, draw, win)
