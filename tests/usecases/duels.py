"""Duels: two players meet, one wins. A toy use case that lives only in tests/.

It exists to prove the use-case contract: registered by PRONOSTICO_EXTRA_USE_CASES=tests.usecases.duels, it goes
through convert, train, promotion, serving, the API, the OpenAPI document, the form and the prediction log with no
change anywhere else. It reuses the log's columns: the players are home_team and away_team, and the classes are
home_win and away_win. Features are each player's smoothed win rate and games played before the duel.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from pronostico.core.usecases.base import (
    ColumnSpec,
    InputField,
    Presentation,
    RawSchema,
    RequestError,
    UseCase,
    class_distribution,
)

CLASSES = ("home_win", "away_win")
FEATURES = ("rate_first", "rate_second", "games_first", "games_second")
FRAME_EXTRAS = {"date": "string", "home_team": "string", "away_team": "string", "label": "double",
                "eligible": "int"}


def win_rate(wins: int, games: int) -> float:
    return (wins + 1) / (games + 2)


def replay(duels: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, list[int]]]:
    """Feature rows from each player's record before the duel, and the records after the last one."""
    record: dict[str, list[int]] = {}  # player -> [wins, games]
    rows = []
    for duel in duels.sort_values(["date", "home_team", "away_team"]).itertuples():
        first, second = record.setdefault(duel.home_team, [0, 0]), record.setdefault(duel.away_team, [0, 0])
        rows.append({"rate_first": win_rate(*first), "rate_second": win_rate(*second),
                     "games_first": float(first[1]), "games_second": float(second[1]),
                     "date": str(duel.date)[:10], "home_team": duel.home_team, "away_team": duel.away_team,
                     "label": 0.0 if duel.home_won else 1.0, "eligible": 1})
        winner, loser = (first, second) if duel.home_won else (second, first)
        winner[0] += 1
        winner[1] += 1
        loser[1] += 1
    return pd.DataFrame(rows, columns=[*FEATURES, *FRAME_EXTRAS]), record


class Duels(UseCase):
    name = "duels"
    dataset = "bouts"
    classes = CLASSES
    entity_kind = "player"
    entities_key = "players"
    entity_key = "name"
    frame_extras = FRAME_EXTRAS
    key_columns = ("date", "home_team", "away_team")
    partition_column = "year"
    partition_expr = "year(date)"
    entity_columns = ("home_team", "away_team")
    feature_names = FEATURES
    display_order = 3
    canonical_types = MappingProxyType({"date": "date", "home_team": "string", "away_team": "string",
                                        "home_won": "boolean", "source": "string", "year": "int"})
    input_fields = (InputField("home_team", "entity", "First player"),
                    InputField("away_team", "entity", "Second player"))
    schemas = (RawSchema(
        name="duel_results",
        columns=(ColumnSpec("date", "date"), ColumnSpec("first", "string"), ColumnSpec("second", "string"),
                 ColumnSpec("winner", "string")),
        checks=(("same_player", "first = second"), ("winner_not_a_player", "winner <> first AND winner <> second")),
        canonical=(("date", "date"), ("home_team", "first"), ("away_team", "second"),
                   ("home_won", "winner = first")),
    ),)
    answer_fields = MappingProxyType({"home_team": {"type": "string"}, "away_team": {"type": "string"},
                                      "outcome": {"type": "string", "enum": list(CLASSES)}})
    answer_class_field = "outcome"
    log_columns = ("home_team", "away_team")
    presentation = Presentation(
        title="Duel", icon="ball.svg", submit="Predict the duel", as_of_label="players as of", holdout_unit="duels",
        class_labels=MappingProxyType({"home_win": "{home_team} wins", "away_win": "{away_team} wins"}),
        baseline_labels=MappingProxyType({"class_prior": "the first-named player wins at the usual rate"}),
        entity_separator="vs", color="#0891b2")

    # --- training side ---
    def feature_frame(self, canonical: pd.DataFrame) -> pd.DataFrame:
        return replay(canonical)[0]

    def entity_snapshot(self, canonical: pd.DataFrame) -> dict[str, Any]:
        _, record = replay(canonical)
        as_of = str(canonical["date"].max())[:10] if len(canonical) else ""
        return {"as_of": as_of, "players": {p: {"wins": w, "games": g} for p, (w, g) in sorted(record.items())}}

    def baselines(self, train: pd.DataFrame, holdout: pd.DataFrame) -> dict[str, np.ndarray]:
        prior = class_distribution(train["label"].to_numpy().astype(int), len(CLASSES))
        return {"class_prior": np.tile(prior, (len(holdout), 1))}

    # --- serving side ---
    def load_snapshot(self, snapshot: Mapping[str, Any]) -> dict[str, Any]:
        return dict(snapshot)

    def entities(self, snapshot: Mapping[str, Any]) -> list[dict[str, Any]]:
        return [{"name": name, "games": e["games"]} for name, e in snapshot["players"].items()]

    def entity_hint(self, entity: Mapping[str, Any]) -> str:
        return f"{entity['games']} duels"

    def parse_request(self, payload: Mapping[str, Any], snapshot: Mapping[str, Any]) -> tuple[str, str]:
        players = []
        for name in ("home_team", "away_team"):
            value = payload.get(name)
            if not isinstance(value, str) or value not in snapshot["players"]:
                raise RequestError("unknown_player", f"{name} must be a known player", name)
            players.append(value)
        if players[0] == players[1]:
            raise RequestError("same_player", "a player cannot duel themself", "away_team")
        return players[0], players[1]

    def request_vectors(self, request: tuple[str, str], snapshot: Mapping[str, Any]) -> list[np.ndarray]:
        first, second = (snapshot["players"][p] for p in request)
        return [np.array([win_rate(first["wins"], first["games"]), win_rate(second["wins"], second["games"]),
                          first["games"], second["games"]], dtype=np.float64)]

    def answer(self, request: tuple[str, str], probabilities: np.ndarray, snapshot: Any) -> dict[str, Any]:
        return {"home_team": request[0], "away_team": request[1],
                "probabilities": {c: float(p) for c, p in zip(CLASSES, probabilities, strict=True)},
                "outcome": CLASSES[int(np.argmax(probabilities))]}


USE_CASE = Duels()
