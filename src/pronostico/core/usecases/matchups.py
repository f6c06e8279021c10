"""Matchups: national-team football, win / draw / lose from the first-named team's side.

Features are built by replaying the match history in date order through a small state
machine, one `TeamState` per team, so every feature of a match knows only what was known
before kick-off. Training (inside Spark) and serving (from the entity snapshot) call the same
`matchup_features`, which is what makes the parity test meaningful.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import date
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from pronostico.core import football
from pronostico.core.usecases.base import (
    ColumnSpec,
    InputField,
    Presentation,
    RawSchema,
    RequestError,
    TopList,
    UseCase,
    class_distribution,
    closest,
    conditional_distribution,
)

HOME_WIN, DRAW, AWAY_WIN = 0, 1, 2
CLASSES = ("home_win", "draw", "away_win")

INITIAL_ELO = 1500.0
HOME_ADVANTAGE_ELO = 100.0
FORM_WINDOW = 10
MIN_PRIOR_MATCHES = 5  # a team's first matches carry no rating signal; they only warm it up
TRAIN_SINCE = "1990-01-01"
ACTIVE_YEARS = 8
RESULT_WINDOW_DAYS = 365  # a logged prediction is resolved by the two teams' next meeting within a year of its as_of
# The goal rating: an online Poisson model of each side's goals, log rate = GOAL_BASE + attack - opponent's defence
# (+ GOAL_HOME at home), moved by GOAL_STEP * (goals - expected) after each match; see `_rate_goals`. The step, the
# home term and ACTIVITY_DAYS were chosen by train.py's own cross-validation on the rows before the holdout, on both
# shared files, moving one setting at a time until no neighbour was better on the mean (`make bench ONLY=tuning`,
# docs/BENCHMARKS.md): from step 0.035 and home 0.3, step 0.05 gained 0.0011, then home 0.4 another 0.0007.
GOAL_BASE = math.log(1.3)
GOAL_HOME = 0.4
GOAL_STEP = 0.05
GOAL_CAP = 6  # a 31-0 says no more about two teams than a 6-0
ACTIVITY_DAYS = 365.0  # the decay of the recent-matches count: a match a year ago counts 1/e

# Tiers follow the World Football Elo K factors: the more a match matters, the more it moves.
TIERS = ("friendly", "minor_tournament", "qualifier", "continental", "world_cup")
TIER_LABELS = {"friendly": "Friendly", "minor_tournament": "Minor tournament", "qualifier": "Qualifier",
               "continental": "Continental finals", "world_cup": "World Cup"}
K_BY_TIER = (20.0, 30.0, 40.0, 50.0, 60.0)
MAJOR_FINALS = (
    "UEFA Euro", "Copa América", "African Cup of Nations", "AFC Asian Cup", "Gold Cup",
    "Confederations Cup", "Oceania Nations Cup", "UEFA Nations League", "CONCACAF Nations League",
    "CONCACAF Championship", "African Nations Championship",
)

# FIFA's names (Kaggle file) -> the common names the results file and users use.
TEAM_ALIASES = {
    "Brunei Darussalam": "Brunei",
    "Cabo Verde": "Cape Verde",
    "China PR": "China",
    "Chinese Taipei": "Taiwan",
    "Congo DR": "DR Congo",
    "Côte d'Ivoire": "Ivory Coast",
    "IR Iran": "Iran",
    "Korea DPR": "North Korea",
    "Korea Republic": "South Korea",
    "Kyrgyz Republic": "Kyrgyzstan",
    "St. Kitts and Nevis": "Saint Kitts and Nevis",
    "St. Lucia": "Saint Lucia",
    "St. Vincent and the Grenadines": "Saint Vincent and the Grenadines",
    "US Virgin Islands": "United States Virgin Islands",
    "USA": "United States",
}

GOAL_FEATURES = ("goals_expected_home", "goals_expected_away", "goal_p_home_win", "goal_p_draw", "goal_p_away_win")
ACTIVITY_FEATURES = ("activity_home", "activity_away")
FEATURES = (
    "elo_home", "elo_away", "elo_diff", "elo_expected_home",
    "rank_known", "rank_home", "rank_away", "log_rank_ratio",
    "points_known", "points_diff",
    "form_points_home", "form_points_away", "form_goal_diff_home", "form_goal_diff_away",
    "experience_home", "experience_away",
    "neutral", "tier",
    *GOAL_FEATURES,
    *ACTIVITY_FEATURES,
)


def tournament_tier(tournament: str) -> int:
    name = (tournament or "").strip()
    if name == "FIFA World Cup":
        return TIERS.index("world_cup")
    if "qualification" in name.lower():
        return TIERS.index("qualifier")
    if name == "Friendly":
        return TIERS.index("friendly")
    if name in MAJOR_FINALS:
        return TIERS.index("continental")
    return TIERS.index("minor_tournament")


def outcome_label(home_score: int, away_score: int, shoot_out: bool | None) -> int:
    """A shoot-out is a draw, whatever the file's own result column claims."""
    if shoot_out or home_score == away_score:
        return DRAW
    return HOME_WIN if home_score > away_score else AWAY_WIN


def mirror_label(label: int) -> int:
    return {HOME_WIN: AWAY_WIN, DRAW: DRAW, AWAY_WIN: HOME_WIN}[label]


@dataclass
class TeamState:
    """What is known about a team before its next match."""

    elo: float = INITIAL_ELO
    rank: int = 0  # last known FIFA rank; 0 means never ranked in the data
    points: float = 0.0  # last known FIFA points; 0 means unknown (FIFA published none before 2011)
    played: int = 0
    recent: list[list[float]] = field(default_factory=list)  # [points, goals for, goals against]
    last_date: str = ""
    attack: float = 0.0  # the goal rating's log-rate terms (0: an average side)
    defence: float = 0.0
    activity: float = 0.0  # matches played, each decayed by ACTIVITY_DAYS, as of last_date

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TeamState:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})

    def form_points(self) -> float:
        return sum(r[0] for r in self.recent) / len(self.recent) if self.recent else 1.0

    def form_goal_diff(self) -> float:
        return sum(r[1] - r[2] for r in self.recent) / len(self.recent) if self.recent else 0.0

    def activity_on(self, day: str) -> float:
        """How current the ratings are on `day`: recent matches played, the older counting less."""
        return self.activity * _decay(self.last_date, day) if self.last_date else 0.0


def _decay(since: str, day: str) -> float:
    days = (date.fromisoformat(day[:10]) - date.fromisoformat(since[:10])).days
    return math.exp(-max(days, 0) / ACTIVITY_DAYS)


def expected_goals(home: TeamState, away: TeamState, neutral: bool) -> tuple[float, float]:
    advantage = 0.0 if neutral else GOAL_HOME
    return (math.exp(GOAL_BASE + home.attack - away.defence + advantage),
            math.exp(GOAL_BASE + away.attack - home.defence))


def elo_expected(elo_home: float, elo_away: float, neutral: bool) -> float:
    advantage = 0.0 if neutral else HOME_ADVANTAGE_ELO
    return 1.0 / (10.0 ** (-(elo_home - elo_away + advantage) / 400.0) + 1.0)


def matchup_features(home: TeamState, away: TeamState, neutral: bool, tier: int, day: str) -> dict[str, float]:
    """The one definition of a matchup's features, for training rows and for requests alike, on `day` (the match's
    date in training; the state's as_of for a request)."""
    rank_known = home.rank > 0 and away.rank > 0
    points_known = home.points > 0 and away.points > 0
    home_rate, away_rate = expected_goals(home, away, neutral)
    win, draw, loss = football.poisson_outcome(home_rate, away_rate)
    return {
        "elo_home": home.elo,
        "elo_away": away.elo,
        "elo_diff": home.elo - away.elo,
        "elo_expected_home": elo_expected(home.elo, away.elo, neutral),
        "rank_known": float(rank_known),
        "rank_home": float(home.rank) if rank_known else 0.0,
        "rank_away": float(away.rank) if rank_known else 0.0,
        "log_rank_ratio": math.log(away.rank / home.rank) if rank_known else 0.0,
        "points_known": float(points_known),
        "points_diff": home.points - away.points if points_known else 0.0,
        "form_points_home": home.form_points(),
        "form_points_away": away.form_points(),
        "form_goal_diff_home": home.form_goal_diff(),
        "form_goal_diff_away": away.form_goal_diff(),
        "experience_home": math.log1p(home.played),
        "experience_away": math.log1p(away.played),
        "neutral": float(neutral),
        "tier": float(tier),
        "goals_expected_home": home_rate,
        "goals_expected_away": away_rate,
        "goal_p_home_win": win,
        "goal_p_draw": draw,
        "goal_p_away_win": loss,
        "activity_home": home.activity_on(day),
        "activity_away": away.activity_on(day),
    }


def _goal_multiplier(goal_diff: int) -> float:
    margin = abs(goal_diff)
    if margin <= 1:
        return 1.0
    return 1.5 if margin == 2 else (11.0 + margin) / 8.0


def apply_result(home: TeamState, away: TeamState, match: Mapping[str, Any], label: int) -> None:
    """Move both teams' states past a played match."""
    score = {HOME_WIN: 1.0, DRAW: 0.5, AWAY_WIN: 0.0}[label]
    expected = elo_expected(home.elo, away.elo, bool(match["neutral"]))
    goal_diff = int(match["home_score"]) - int(match["away_score"])
    k = K_BY_TIER[tournament_tier(match["tournament"])] * _goal_multiplier(goal_diff)
    home.elo += k * (score - expected)
    away.elo -= k * (score - expected)
    _rate_goals(home, away, match)
    for team, points, scored, conceded in (
        (home, 3.0 * score if label != DRAW else 1.0, match["home_score"], match["away_score"]),
        (away, 3.0 * (1 - score) if label != DRAW else 1.0, match["away_score"], match["home_score"]),
    ):
        team.recent = [*team.recent, [points, float(scored), float(conceded)]][-FORM_WINDOW:]
        team.played += 1
        day = str(match["date"])[:10]
        team.activity = team.activity_on(day) + 1.0
        team.last_date = day


def _rate_goals(home: TeamState, away: TeamState, match: Mapping[str, Any]) -> None:
    """One online step of the goal rating: each side's attack and the other's defence move by the surprise."""
    home_rate, away_rate = expected_goals(home, away, bool(match["neutral"]))
    home_surprise = min(int(match["home_score"]), GOAL_CAP) - home_rate
    away_surprise = min(int(match["away_score"]), GOAL_CAP) - away_rate
    home.attack += GOAL_STEP * home_surprise
    away.defence -= GOAL_STEP * home_surprise
    away.attack += GOAL_STEP * away_surprise
    home.defence -= GOAL_STEP * away_surprise


def _note_rankings(state: TeamState, rank: Any, points: Any) -> None:
    """FIFA ranks and points in a row were published before the match: they are pre-match facts."""
    if rank is not None and not pd.isna(rank) and int(rank) > 0:
        state.rank = int(rank)
    if points is not None and not pd.isna(points) and float(points) > 0:
        state.points = float(points)


def sort_matches(canonical: pd.DataFrame) -> pd.DataFrame:
    ordered = canonical.assign(date=pd.to_datetime(canonical["date"]).dt.strftime("%Y-%m-%d"))
    return ordered.sort_values(["date", "home_team", "away_team"], kind="stable").reset_index(drop=True)


class History:
    """The match history replayed in date order: each team's state moves past each result."""

    def __init__(self) -> None:
        self.states: dict[str, TeamState] = {}
        self.last_date = ""

    def replay(self, canonical: pd.DataFrame) -> Iterator[tuple[dict[str, Any], TeamState, TeamState]]:
        """Yield each match with both teams' pre-match states, then apply its result.

        The states yielded are live objects: a caller that keeps them must copy them.
        """
        for match in sort_matches(canonical).to_dict("records"):
            home = self.states.setdefault(match["home_team"], TeamState())
            away = self.states.setdefault(match["away_team"], TeamState())
            _note_rankings(home, match.get("home_rank"), match.get("home_points"))
            _note_rankings(away, match.get("away_rank"), match.get("away_points"))
            yield match, home, away
            label = outcome_label(match["home_score"], match["away_score"], _as_bool(match.get("shoot_out")))
            apply_result(home, away, match, label)
            self.last_date = match["date"]

    def snapshot(self) -> dict[str, Any]:
        return {"as_of": self.last_date,
                "teams": {name: asdict(s) for name, s in sorted(self.states.items())}}


def _as_bool(value: Any) -> bool:
    return bool(value) if value is not None and not pd.isna(value) else False


def _training_row(match: Mapping[str, Any], home: TeamState, away: TeamState,
                  mirror: bool) -> dict[str, Any]:
    label = outcome_label(match["home_score"], match["away_score"], _as_bool(match.get("shoot_out")))
    first, second = (away, home) if mirror else (home, away)
    row = matchup_features(first, second, bool(match["neutral"]), tournament_tier(match["tournament"]),
                           match["date"])
    row.update(
        date=match["date"],
        home_team=match["away_team"] if mirror else match["home_team"],
        away_team=match["home_team"] if mirror else match["away_team"],
        tournament=match["tournament"],
        label=mirror_label(label) if mirror else label,
        home_score=int(match["away_score"] if mirror else match["home_score"]),
        away_score=int(match["home_score"] if mirror else match["away_score"]),
        mirror=int(mirror),
        eligible=int(min(home.played, away.played) >= MIN_PRIOR_MATCHES and match["date"] >= TRAIN_SINCE),
    )
    return row


@dataclass(frozen=True)
class TeamBook:
    """The entity snapshot as the web tier holds it: parsed once when a model loads."""

    as_of: str
    states: dict[str, TeamState]
    active: dict[str, TeamState]  # teams a user may pick: warmed up and not defunct

    @classmethod
    def from_snapshot(cls, snapshot: Mapping[str, Any]) -> TeamBook:
        states = {name: TeamState.from_dict(s) for name, s in snapshot["teams"].items()}
        as_of = snapshot["as_of"] or "9999-12-31"
        cutoff = f"{int(as_of[:4]) - ACTIVE_YEARS:04d}{as_of[4:]}"
        active = {name: s for name, s in states.items()
                  if s.played >= MIN_PRIOR_MATCHES and s.last_date >= cutoff}
        return cls(as_of=snapshot["as_of"], states=states, active=active)


FRAME_EXTRAS = {"date": "string", "home_team": "string", "away_team": "string", "tournament": "string",
                "label": "int", "mirror": "int", "eligible": "int", "home_score": "int", "away_score": "int"}


def symmetric(forward: np.ndarray, swapped: np.ndarray) -> np.ndarray:
    """On neutral ground the order of the names carries no information: average both orders."""
    return (forward + swapped[::-1]) / 2.0


@dataclass(frozen=True)
class MatchupRequest:
    home_team: str
    away_team: str
    neutral: bool
    tournament: str


class Matchups(UseCase):
    name = "matchups"
    dataset = "matches"
    classes = CLASSES
    entity_kind = "team"
    entities_key = "teams"
    frame_extras = FRAME_EXTRAS
    key_columns = ("date", "home_team", "away_team")
    partition_column = "year"
    partition_expr = "year(date)"
    feature_names = FEATURES
    canonical_types = MappingProxyType({
        "date": "date", "home_team": "string", "away_team": "string", "home_score": "int",
        "away_score": "int", "tournament": "string", "country": "string", "neutral": "boolean",
        "shoot_out": "boolean", "home_rank": "int", "away_rank": "int", "home_points": "double",
        "away_points": "double", "source": "string", "year": "int",
    })
    input_fields = (
        InputField("home_team", "entity", "Home team", hint="(or first-named)"),
        InputField("away_team", "entity", "Away team"),
        InputField("neutral", "bool", "Neutral venue", required=False, default=False),
        InputField("tournament", "choice", "Match type", required=False, choices=TIERS,
                   default="friendly", choice_labels=MappingProxyType(TIER_LABELS)),
    )
    near_duplicate_pair = ("home_team", "away_team")
    display_order = 1
    entity_key = "name"
    answer_fields = MappingProxyType({
        "home_team": {"type": "string"}, "away_team": {"type": "string"}, "neutral": {"type": "boolean"},
        "tournament": {"type": "string"}, "outcome": {"type": "string", "enum": list(CLASSES)},
        "winner": {"type": ["string", "null"]},
        "as_of": {"type": "string", "format": "date", "description": "the newest match in the teams' state"},
    })
    answer_class_field = "outcome"
    log_columns = ("home_team", "away_team", "neutral", "tournament", "as_of")
    ordered_classes = True
    calibrated = True
    strong_baselines = ("elo_ordered_logit", "dixon_coles")
    presentation = Presentation(
        title="Match", icon="ball.svg", submit="Predict the match", as_of_label="teams as of",
        holdout_unit="matches",
        class_labels=MappingProxyType({"home_win": "{home_team} win", "draw": "Draw", "away_win": "{away_team} win"}),
        baseline_labels=MappingProxyType({"class_prior": "the most common result, at its usual rate",
                                          "better_ranked_wins": "the better-ranked side wins",
                                          "elo_ordered_logit": "Elo ratings through an ordered logit",
                                          "dixon_coles": "a time-weighted Dixon-Coles goal model"}),
        entity_separator="vs", color="#2563eb",
        top_lists=(TopList("top_matchups", "prediction_top_matchups", ("home_team", "away_team"),
                           "Most-asked matchups"),
                   TopList("top_teams", "prediction_top_teams", ("team",), "Most-asked teams", drawn=False)),
    )
    schemas = (
        RawSchema(
            name="kaggle_fifa_ranked",
            priority=2,
            columns=(
                ColumnSpec("date", "date", date_format="dd/MM/yyyy"),
                ColumnSpec("home_team", "string"),
                ColumnSpec("away_team", "string"),
                ColumnSpec("home_team_fifa_rank", "int", required=False),
                ColumnSpec("away_team_fifa_rank", "int", required=False),
                ColumnSpec("home_team_total_fifa_points", "double", required=False),
                ColumnSpec("away_team_total_fifa_points", "double", required=False),
                ColumnSpec("home_team_score", "int"),
                ColumnSpec("away_team_score", "int"),
                ColumnSpec("tournament", "string"),
                ColumnSpec("country", "string", required=False),
                ColumnSpec("neutral_location", "bool"),
                ColumnSpec("shoot_out", "bool", required=False),
            ),
            checks=(
                ("negative_score", "home_team_score < 0 OR away_team_score < 0"),
                ("same_team", "home_team = away_team"),
                ("impossible_rank", "home_team_fifa_rank <= 0 OR away_team_fifa_rank <= 0"),
                ("negative_points", "home_team_total_fifa_points < 0 OR away_team_total_fifa_points < 0"),
            ),
            canonical=(
                ("date", "date"),
                ("home_team", "home_team"),
                ("away_team", "away_team"),
                ("home_score", "home_team_score"),
                ("away_score", "away_team_score"),
                ("tournament", "tournament"),
                ("country", "country"),
                ("neutral", "neutral_location"),
                ("shoot_out", "shoot_out"),
                ("home_rank", "home_team_fifa_rank"),
                ("away_rank", "away_team_fifa_rank"),
                ("home_points", "home_team_total_fifa_points"),
                ("away_points", "away_team_total_fifa_points"),
            ),
        ),
        RawSchema(
            name="results_only",
            priority=1,
            columns=(
                ColumnSpec("date", "date"),
                ColumnSpec("home_team", "string"),
                ColumnSpec("away_team", "string"),
                ColumnSpec("home_score", "int"),
                ColumnSpec("away_score", "int"),
                ColumnSpec("tournament", "string"),
                ColumnSpec("country", "string", required=False),
                ColumnSpec("neutral", "bool"),
            ),
            checks=(
                ("negative_score", "home_score < 0 OR away_score < 0"),
                ("same_team", "home_team = away_team"),
            ),
            canonical=(
                ("date", "date"),
                ("home_team", "home_team"),
                ("away_team", "away_team"),
                ("home_score", "home_score"),
                ("away_score", "away_score"),
                ("tournament", "tournament"),
                ("country", "country"),
                ("neutral", "neutral"),
                ("shoot_out", "NULL"),
                ("home_rank", "NULL"),
                ("away_rank", "NULL"),
                ("home_points", "NULL"),
                ("away_points", "NULL"),
            ),
        ),
    )
    # Both files list most matches; one listed a day or two apart in the other is the same match.
    near_duplicate_days = 3
    entity_columns = ("home_team", "away_team")
    aliases = TEAM_ALIASES

    # --- training side ---
    def feature_frame(self, canonical: pd.DataFrame) -> pd.DataFrame:
        rows = []
        for match, home, away in History().replay(canonical):
            rows.append(_training_row(match, home, away, mirror=False))
            if match["neutral"]:  # on neutral ground the order of the names carries no information
                rows.append(_training_row(match, home, away, mirror=True))
        return pd.DataFrame(rows, columns=[*FEATURES, *FRAME_EXTRAS])

    def entity_snapshot(self, canonical: pd.DataFrame) -> dict[str, Any]:
        history = History()
        for _ in history.replay(canonical):
            pass
        return history.snapshot()

    def original_rows(self, frame: pd.DataFrame) -> pd.DataFrame:
        return frame[frame["mirror"] == 0]

    def fold_mirrors(self, frame: pd.DataFrame, probabilities: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
        """Answer each neutral match as serving does: averaged with its swapped twin row."""
        frame = frame.reset_index(drop=True)
        twins = {(r.date, r.home_team, r.away_team): i
                 for i, r in enumerate(frame.itertuples()) if r.mirror == 1}
        originals = np.flatnonzero(frame["mirror"].to_numpy() == 0)
        folded = probabilities[originals].copy()
        for j, i in enumerate(originals):
            twin = twins.get((frame.at[i, "date"], frame.at[i, "away_team"], frame.at[i, "home_team"]))
            if twin is not None:
                folded[j] = symmetric(probabilities[i], probabilities[twin])
        return frame.iloc[originals].reset_index(drop=True), folded

    def baselines(self, train: pd.DataFrame, holdout: pd.DataFrame) -> dict[str, np.ndarray]:
        n = len(CLASSES)
        y = train["label"].to_numpy()
        naive = {
            "class_prior": np.tile(class_distribution(y, n), (len(holdout), 1)),
            "better_ranked_wins": conditional_distribution(
                _favourite_groups(train), y, _favourite_groups(holdout), n),
        }
        return {**naive, **fit_strong_baselines(train, holdout)} if len(holdout) else naive

    def observed_events(self, frame: pd.DataFrame, since: str) -> list[dict[str, Any]]:
        """Each match from `since`, in both orders of the names, the result from the first-named side."""
        matches = self.original_rows(frame)
        matches = matches[matches["date"] >= since]
        events = []
        for row in matches.itertuples():
            earliest = (pd.Timestamp(row.date) - pd.Timedelta(days=RESULT_WINDOW_DAYS)).strftime("%Y-%m-%d")
            for first, second, label in ((row.home_team, row.away_team, int(row.label)),
                                         (row.away_team, row.home_team, mirror_label(int(row.label)))):
                events.append({"subject_a": first, "subject_b": second, "event_date": row.date,
                               "earliest_as_of": earliest, "outcome": CLASSES[label]})
        return events

    # --- serving side ---
    def load_snapshot(self, snapshot: Mapping[str, Any]) -> TeamBook:
        return TeamBook.from_snapshot(snapshot)

    def entities(self, snapshot: TeamBook) -> list[dict[str, Any]]:
        return [{"name": name, "elo": round(s.elo, 1), "fifa_rank": s.rank or None,
                 "last_match": s.last_date}
                for name, s in snapshot.active.items()]

    def parse_request(self, payload: Mapping[str, Any], snapshot: TeamBook) -> MatchupRequest:
        teams = snapshot.active
        home = _team(payload, "home_team", teams)
        away = _team(payload, "away_team", teams)
        if home == away:
            raise RequestError("same_team", "home_team and away_team must be different teams", "away_team")
        neutral = payload.get("neutral", False)
        if not isinstance(neutral, bool):
            raise RequestError("invalid_type", "neutral must be true or false", "neutral")
        tournament = payload.get("tournament", "friendly")
        if tournament not in TIERS:
            raise RequestError("invalid_choice", f"tournament must be one of: {', '.join(TIERS)}",
                               "tournament")
        return MatchupRequest(home, away, neutral, tournament)

    def request_vectors(self, request: MatchupRequest, snapshot: TeamBook) -> list[np.ndarray]:
        home, away = snapshot.states[request.home_team], snapshot.states[request.away_team]
        tier = TIERS.index(request.tournament)
        day = snapshot.as_of or date.today().isoformat()
        vectors = [_vector(matchup_features(home, away, request.neutral, tier, day))]
        if request.neutral:
            vectors.append(_vector(matchup_features(away, home, True, tier, day)))
        return vectors

    def combine(self, request: MatchupRequest, probabilities: list[np.ndarray]) -> np.ndarray:
        return probabilities[0] if len(probabilities) == 1 else symmetric(*probabilities)

    def answer(self, request: MatchupRequest, probabilities: np.ndarray,
               snapshot: TeamBook) -> dict[str, Any]:
        outcome = CLASSES[int(np.argmax(probabilities))]
        winner = {"home_win": request.home_team, "away_win": request.away_team}.get(outcome)
        return {
            "home_team": request.home_team,
            "away_team": request.away_team,
            "neutral": request.neutral,
            "tournament": request.tournament,
            "probabilities": {c: float(p) for c, p in zip(CLASSES, probabilities, strict=True)},
            "outcome": outcome,
            "winner": winner,
            "as_of": snapshot.as_of,
        }

    def entity_hint(self, entity: Mapping[str, Any]) -> str:
        parts = [f"FIFA #{entity['fifa_rank']}"] if entity.get("fifa_rank") else []
        return " · ".join([*parts, f"Elo {round(entity['elo'])}"] if entity.get("elo") else parts)

    def describe(self, answer: Mapping[str, Any]) -> str:
        venue = " · neutral venue" if answer.get("neutral") else ""
        tier = TIER_LABELS.get(answer.get("tournament", ""), answer.get("tournament", ""))
        return f"{answer['home_team']} vs {answer['away_team']}{venue} · {tier}"


def fit_strong_baselines(train: pd.DataFrame, holdout: pd.DataFrame) -> dict[str, np.ndarray]:
    """Football's two standard models, fitted on the training matches as of the day after the last of them."""
    neutral_train, neutral_holdout = train["neutral"].to_numpy() > 0, holdout["neutral"].to_numpy() > 0
    logit = football.fit_ordered_logit(train["elo_diff"].to_numpy(), neutral_train, train["label"].to_numpy())
    as_of = (pd.Timestamp(train["date"].max()) + pd.Timedelta(days=1)).strftime("%Y-%m-%d")
    goals = football.fit_dixon_coles(train["home_team"].to_numpy(), train["away_team"].to_numpy(),
                                     train["home_score"].to_numpy(), train["away_score"].to_numpy(),
                                     neutral_train, train["date"].to_numpy(), as_of)
    return {"elo_ordered_logit": logit.predict_proba(holdout["elo_diff"].to_numpy(), neutral_holdout),
            "dixon_coles": goals.predict_proba(holdout["home_team"].to_numpy(), holdout["away_team"].to_numpy(),
                                               neutral_holdout)}


def _vector(features: Mapping[str, float]) -> np.ndarray:
    return np.array([features[name] for name in FEATURES], dtype=np.float64)


def _favourite_groups(frame: pd.DataFrame) -> np.ndarray:
    """Which side the rankings favour (FIFA rank where both are known, else Elo), and the venue."""
    by_rank = np.sign(frame["log_rank_ratio"].to_numpy())  # > 0: the home side is better ranked
    by_elo = np.sign(frame["elo_diff"].to_numpy())
    favourite = np.where(frame["rank_known"].to_numpy() > 0, by_rank, by_elo)
    return favourite * 2 + frame["neutral"].to_numpy()


def _team(payload: Mapping[str, Any], field_name: str, teams: Mapping[str, TeamState]) -> str:
    value = payload.get(field_name)
    if value is None or value == "":
        raise RequestError("missing_field", f"{field_name} is required", field_name)
    if not isinstance(value, str):
        raise RequestError("invalid_type", f"{field_name} must be a team name (a string)", field_name)
    name = TEAM_ALIASES.get(value.strip(), value.strip())
    if name not in teams:
        hint = closest(name, list(teams))
        suggestion = (f"did you mean {', '.join(hint)}?" if hint
                      else f"known teams include {', '.join(sorted(teams)[:8])}, ... ({len(teams)} in all)")
        raise RequestError("unknown_team", f"unknown team {value!r}; {suggestion}", field_name)
    return name


MATCHUPS = USE_CASE = Matchups()
