"""Expectations on the real files in ../shared/data, and their validation through Spark."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from pronostico.core import storage
from pronostico.core.usecases import get_use_case
from pronostico.pipeline.convert import convert, detect_schema


def test_kaggle_matches_file_has_the_expected_shape(shared_data: Path) -> None:
    frame = pd.read_csv(shared_data / "matchups" / "international_matches.csv")
    assert len(frame) == 23_921
    assert set(frame["home_team_result"]) == {"Win", "Draw", "Lose"}
    assert set(frame["shoot_out"]) == {"Yes", "No"}
    assert frame[["date", "home_team", "away_team", "home_team_score", "away_team_score"]].notna().all().all()
    assert not frame.duplicated(["date", "home_team", "away_team"]).any()
    assert (frame[["home_team_score", "away_team_score"]] >= 0).all().all()


def test_asset_files_are_sorted_unique_daily_bars(shared_data: Path) -> None:
    files = sorted((shared_data / "assets").glob("*.csv"))
    assert len(files) == 6
    for path in files:
        frame = pd.read_csv(path)
        assert list(frame.columns) == ["date", "symbol", "open", "high", "low", "close", "volume"]
        assert frame["date"].is_monotonic_increasing and frame["date"].is_unique
        assert frame["symbol"].nunique() == 1 and (frame["high"] >= frame["low"]).all()


@pytest.mark.parametrize(("use_case", "name", "schema"), [
    ("matchups", "international_matches.csv", "kaggle_fifa_ranked"),
    ("matchups", "results.csv", "results_only"),
    ("assets", "BTC-USD.csv", "ohlcv_daily"),
])
def test_each_real_file_is_recognised(shared_data: Path, use_case: str, name: str, schema: str) -> None:
    path = next(shared_data.rglob(name))
    assert detect_schema(get_use_case(use_case), path.as_uri())[0].name == schema


@pytest.mark.spark
def test_real_matchup_files_pass_validation_and_merge(spark: object, shared_data: Path, settings: object) -> None:
    files = [shared_data / "matchups" / n for n in ("international_matches.csv", "results.csv")]
    report = convert(spark, get_use_case("matchups"), [f.as_uri() for f in files],
                     storage.join(settings.processed_uri, "matchups", "matches"),
                     storage.join(settings.processed_uri, "quarantine", "matchups"), "real-1")
    kaggle, results = report.files
    assert (kaggle.rows_read, kaggle.rows_quarantined) == (23_921, 0)
    assert results.rows_read == 49_520
    assert results.reasons == {"duplicate_row": 1}  # results.csv lists one 1974 match twice
    # most Kaggle matches are also in results.csv: the union holds each match once
    assert 49_519 < report.rows_kept < 49_519 + 400
    assert report.rows_merged_duplicates > 23_500
    assert report.date_range == ("1872-11-30", "2026-07-19")


@pytest.mark.spark
def test_all_real_asset_files_pass_validation(spark: object, shared_data: Path, settings: object) -> None:
    files = sorted((shared_data / "assets").glob("*.csv"))
    report = convert(spark, get_use_case("assets"), [f.as_uri() for f in files],
                     storage.join(settings.processed_uri, "assets", "bars"),
                     storage.join(settings.processed_uri, "quarantine", "assets"), "real-assets")
    assert report.rows_read == 3 * 1910 + 3 * 1312
    assert report.rows_quarantined == 0 and report.rows_kept == report.rows_read
    partitions = {p.name for p in storage.local_path(report.output_uri).iterdir() if p.is_dir()}
    assert partitions == {f"symbol_part={s}" for s in ("AAPL", "BTC-USD", "ETH-USD", "NVDA", "SOL-USD", "SPY")}
