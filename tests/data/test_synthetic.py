"""The synthetic demo data: deterministic, valid in the real schemas, and shaped like the real thing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pronostico.core import storage
from pronostico.core.usecases import get_use_case
from pronostico.local.synthetic import ASSETS, synthetic_bars, synthetic_matches, write_demo_data
from pronostico.pipeline.convert import convert, detect_schema


def test_the_same_seed_writes_the_same_files(tmp_path: Path) -> None:
    first = write_demo_data(tmp_path / "a", seed=7, n_matches=2_000)
    second = write_demo_data(tmp_path / "b", seed=7, n_matches=2_000)
    other = write_demo_data(tmp_path / "c", seed=8, n_matches=2_000)
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]
    assert first[0].read_bytes() != other[0].read_bytes()


def test_files_fit_the_real_schemas(tmp_path: Path) -> None:
    written = write_demo_data(tmp_path, n_matches=1_000)
    assert detect_schema(get_use_case("matchups"), written[0].as_uri())[0].name == "kaggle_fifa_ranked"
    for path in written[1:]:
        assert detect_schema(get_use_case("assets"), path.as_uri())[0].name == "ohlcv_daily"


def test_better_ranked_teams_win_more_and_home_sides_have_an_edge() -> None:
    matches = synthetic_matches(12_000, seed=1)
    decided = matches[matches["home_team_score"] != matches["away_team_score"]]
    home_won = decided["home_team_score"] > decided["away_team_score"]
    better_ranked_home = decided["home_team_fifa_rank"] < decided["away_team_fifa_rank"]
    favourite_won = (home_won == better_ranked_home).mean()
    assert favourite_won > 0.6
    at_home = decided[decided["neutral_location"] == "FALSE"]
    assert (at_home["home_team_score"] > at_home["away_team_score"]).mean() > 0.55


def test_asset_volatility_clusters_and_calendars_differ() -> None:
    coin, stock = synthetic_bars(ASSETS[0], seed=1), synthetic_bars(ASSETS[2], seed=1)
    returns = np.log(coin["close"]).diff().dropna().abs()
    assert returns.autocorr(lag=1) > 0.1, "big moves follow big moves"
    assert pd.to_datetime(coin["date"]).dt.dayofweek.nunique() == 7
    assert set(pd.to_datetime(stock["date"]).dt.dayofweek) == {0, 1, 2, 3, 4}
    assert (stock["high"] >= stock[["open", "close"]].max(axis=1)).all()
    assert (stock["low"] <= stock[["open", "close"]].min(axis=1)).all()


@pytest.mark.spark
def test_synthetic_files_pass_validation_whole(spark: object, settings: object, tmp_path: Path) -> None:
    written = write_demo_data(tmp_path, n_matches=3_000)
    for use_case, files in (("matchups", written[:1]), ("assets", written[1:])):
        uc = get_use_case(use_case)
        report = convert(spark, uc, [f.as_uri() for f in files],
                         storage.join(settings.processed_uri, use_case, uc.dataset),
                         storage.join(settings.processed_uri, "quarantine", use_case), "synthetic")
        assert report.rows_quarantined == 0 and report.rows_kept == report.rows_read > 0
