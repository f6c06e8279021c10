"""Training and serving agree: the same probabilities as Spark, and the same features as Spark built.

The web tier never loads Spark. These tests prove that what it computes without a JVM equals what Spark computed:
the forest's probabilities on real holdout rows, and the features a request gets from the entity snapshot.
"""

from __future__ import annotations

import copy
import io
import json
from dataclasses import asdict, replace
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

from pronostico.core import storage
from pronostico.core.calibration import temper
from pronostico.core.layout import run_data_uri
from pronostico.core.serving import ServingModel
from pronostico.core.usecases.matchups import MATCHUPS, TIERS, History
from pronostico.pipeline.steps import dataset_uri
from pronostico.pipeline.train import feature_rows
from tests.fixtures.pipelines import TrainedRun

pytestmark = [pytest.mark.spark, pytest.mark.slow]

TIER_TOURNAMENTS = {"friendly": "Friendly", "minor_tournament": "Baltic Cup",
                    "qualifier": "FIFA World Cup qualification", "continental": "UEFA Euro",
                    "world_cup": "FIFA World Cup"}


def holdout_rows(run: TrainedRun) -> pd.DataFrame:
    return pd.read_parquet(io.BytesIO(storage.read_bytes(storage.join(run.version_uri, "holdout.parquet"))))


def spark_probabilities(spark: Any, run: TrainedRun, rows: pd.DataFrame, features: list[str]) -> np.ndarray:
    from pyspark.ml import PipelineModel
    from pyspark.ml.functions import vector_to_array

    model = PipelineModel.load(storage.join(run.version_uri, "spark_model"))
    frame = spark.createDataFrame(rows[features].reset_index().rename(columns={"index": "row"}))
    scored = model.transform(frame).select("row", vector_to_array("probability").alias("p")).toPandas()
    return np.vstack(scored.sort_values("row")["p"].to_numpy())


@pytest.mark.parametrize("run_name", ["matchups_run", "assets_run"])
def test_the_jvm_free_forest_gives_sparks_probabilities(spark: Any, request: pytest.FixtureRequest,
                                                        run_name: str) -> None:
    run: TrainedRun = request.getfixturevalue(run_name)
    served = ServingModel.load(run.settings.models_uri, run.use_case, run.version)
    features = list(served.use_case.feature_names)
    rows = holdout_rows(run)
    assert len(rows) >= 1_000
    ours = served.forest.forest.predict_proba(rows[features].to_numpy())
    theirs = spark_probabilities(spark, run, rows, features)
    assert ours.shape == theirs.shape == (len(rows), len(served.use_case.classes))
    assert np.max(np.abs(ours - theirs)) <= 1e-9
    # what serves is Spark's probability tempered by the version's calibration, and nothing else
    recorded = served.manifest["calibration"]
    assert served.forest.temperature == recorded["temperature"]
    assert recorded["method"] == ("temperature" if served.use_case.calibrated else "none")
    served_p = served.forest.predict_proba(rows[features].to_numpy())
    assert np.max(np.abs(served_p - temper(theirs, recorded["temperature"]))) <= 1e-9


def canonical_matches(spark: Any, run: TrainedRun) -> Any:
    return spark.read.parquet(run_data_uri(dataset_uri(run.settings, "matchups"), run.run_id))


def pre_match_books(matches: pd.DataFrame, wanted: set[tuple[str, str, str]]) -> dict[tuple, Any]:
    """For each wanted match, the entity snapshot of its two teams as it stood at kick-off, as the web tier loads it."""
    books = {}
    for match, home, away in History().replay(matches):
        key = (match["date"], match["home_team"], match["away_team"])
        if key in wanted:
            snapshot = {"as_of": match["date"], "teams": {match["home_team"]: asdict(copy.deepcopy(home)),
                                                         match["away_team"]: asdict(copy.deepcopy(away))}}
            books[key] = MATCHUPS.load_snapshot(json.loads(json.dumps(snapshot)))
    return books


def request_features(book: Any, home: str, away: str, neutral: bool, tier: int) -> list[np.ndarray]:
    request = MATCHUPS.parse_request({"home_team": home, "away_team": away, "neutral": neutral,
                                      "tournament": TIERS[tier]}, book)
    return MATCHUPS.request_vectors(request, book)


def test_request_features_for_historical_matchups_equal_the_features_spark_built(
        spark: Any, matchups_run: TrainedRun) -> None:
    canonical = canonical_matches(spark, matchups_run)
    built = feature_rows(spark, MATCHUPS, canonical).toPandas()
    originals = built[built["mirror"] == 0].sort_values("date").tail(1_500)
    keys = {(r.date, r.home_team, r.away_team) for r in originals.itertuples()}
    books = pre_match_books(canonical.toPandas(), keys)
    mirrors = built[built["mirror"] == 1].set_index(["date", "home_team", "away_team"])
    compared = 0
    for row in originals.itertuples():
        book = books[(row.date, row.home_team, row.away_team)]
        if {row.home_team, row.away_team} - set(book.active):
            continue  # a team back after more than ACTIVE_YEARS away: the web tier does not offer it
        vectors = request_features(book, row.home_team, row.away_team, bool(row.neutral), int(row.tier))
        np.testing.assert_array_equal(vectors[0], built.loc[row.Index, list(MATCHUPS.feature_names)].to_numpy(float))
        if row.neutral:
            twin = mirrors.loc[(row.date, row.away_team, row.home_team), list(MATCHUPS.feature_names)]
            np.testing.assert_array_equal(vectors[1], twin.to_numpy(float))
        compared += 1
    assert compared >= 1_400


def test_the_served_snapshot_continues_the_history_spark_trained_on(spark: Any, matchups_run: TrainedRun) -> None:
    """Matches played the day after the data ends: Spark's features for them are what the web tier answers from."""
    served = ServingModel.load(matchups_run.settings.models_uri, "matchups", matchups_run.version)
    canonical = canonical_matches(spark, matchups_run)
    teams = sorted(served.snapshot.active, key=lambda t: served.snapshot.active[t].elo)[::-1][:40]
    next_day = date.fromisoformat(served.snapshot.as_of) + timedelta(days=1)
    fixtures = [(teams[2 * i], teams[2 * i + 1], i % 2 == 0, TIERS[i % len(TIERS)]) for i in range(20)]
    future = [(next_day, home, away, 0, 0, TIER_TOURNAMENTS[tier], None, neutral, None, None, None, None, None,
               "test", next_day.year) for home, away, neutral, tier in fixtures]
    extended = canonical.unionByName(spark.createDataFrame(future, canonical.select(*_ORDER).schema))
    built = feature_rows(spark, MATCHUPS, extended).toPandas()
    built = built[built["date"] == next_day.isoformat()].set_index(["home_team", "away_team"])
    # a request is answered as of the state's date; these fixtures are a day later, so their activity decays a day
    book = replace(served.snapshot, as_of=next_day.isoformat())
    for home, away, neutral, tier in fixtures:
        vectors = MATCHUPS.request_vectors(
            served.parse({"home_team": home, "away_team": away, "neutral": neutral, "tournament": tier}), book)
        np.testing.assert_array_equal(vectors[0], built.loc[(home, away), list(MATCHUPS.feature_names)].to_numpy(float))
        if neutral:
            np.testing.assert_array_equal(vectors[1],
                                          built.loc[(away, home), list(MATCHUPS.feature_names)].to_numpy(float))


_ORDER = ("date", "home_team", "away_team", "home_score", "away_score", "tournament", "country", "neutral",
          "shoot_out", "home_rank", "away_rank", "home_points", "away_points", "source", "year")
