"""Hand-made broken files: each is rejected or quarantined with the right reasons."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from pronostico.core import storage
from pronostico.core.config import Settings
from pronostico.core.layout import rejected_marker
from pronostico.core.usecases import get_use_case
from pronostico.pipeline.convert import FileRejected, convert

pytestmark = pytest.mark.spark

RESULTS_HEADER = "date,home_team,away_team,home_score,away_score,tournament,city,country,neutral"
OHLCV_HEADER = "date,symbol,open,high,low,close,volume"


def good_results(n: int = 60) -> list[str]:
    teams = ["Aland", "Borduria", "Carpania", "Druhastrana"]
    return [f"2020-{1 + i // 28:02d}-{1 + i % 28:02d},{teams[i % 4]},{teams[(i + 1) % 4]},{i % 3},1,Friendly,X,Y,FALSE"
            for i in range(n)]


def run(spark: object, settings: Settings, use_case: str, path: Path, max_bad: float = 0.05, run_id: str = "r1"):
    uc = get_use_case(use_case)
    return convert(spark, uc, [path.as_uri()], storage.join(settings.processed_uri, use_case, uc.dataset),
                   storage.join(settings.processed_uri, "quarantine", use_case), run_id, max_bad)


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


@pytest.mark.parametrize(("content", "reason"), [
    (b"", "empty file"),
    (RESULTS_HEADER + "\n", "header only"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4, "binary content"),
    ("when,who,whom\n2020-01-01,a,b\n", "wrong header"),
    ("x" * 70_000 + "\n", "no header line"),
])
def test_unusable_files_are_rejected_and_quarantined(spark, settings, tmp_path, content, reason) -> None:
    path = write(tmp_path, "bad.csv", content)
    with pytest.raises(FileRejected, match=reason):
        run(spark, settings, "matchups", path)
    quarantine = storage.join(settings.processed_uri, "quarantine", "matchups")
    assert storage.read_bytes(storage.join(quarantine, "r1", "files", "bad.csv")) == path.read_bytes()
    assert reason.split()[0] in storage.read_text(storage.join(quarantine, "r1", "reasons.json"))
    assert storage.exists(rejected_marker(quarantine, storage.file_md5(path)))


def test_wrong_header_names_the_missing_columns(spark, settings, tmp_path) -> None:
    path = write(tmp_path, "renamed.csv", RESULTS_HEADER.replace("home_score", "goals_home") + "\n")
    with pytest.raises(FileRejected, match="missing home_score"):
        run(spark, settings, "matchups", path)


def test_bad_rows_are_quarantined_with_a_reason_each(spark, settings, tmp_path) -> None:
    bad = [
        "2020-13-45,Aland,Borduria,1,0,Friendly,X,Y,FALSE",  # not a date
        "2020-02-01,Aland,Borduria,-1,0,Friendly,X,Y,FALSE",  # negative score
        "2020-02-02,Aland,Borduria,two,0,Friendly,X,Y,FALSE",  # not a number
        "2099-02-03,Aland,Borduria,1,0,Friendly,X,Y,FALSE",  # in the future
        "2020-02-04,=cmd|' /C calc'!A0,Borduria,1,0,Friendly,X,Y,FALSE",  # spreadsheet formula
        "2020-02-05,Aland,Aland,1,0,Friendly,X,Y,FALSE",  # a team against itself
        "2020-02-06,Aland,Borduria,1,0,Friendly,X,Y,maybe",  # not a boolean
        "2020-02-07,,Borduria,1,0,Friendly,X,Y,FALSE",  # missing team
        "2020-02-08,Aland,Borduria,1,0",  # too few fields
        "2020-01-01,Aland,Borduria,0,1,Friendly,X,Y,FALSE",  # the same match as the first good row
    ]
    path = write(tmp_path, "mixed.csv", "\n".join([RESULTS_HEADER, *good_results(), *bad]) + "\n")
    report = run(spark, settings, "matchups", path, max_bad=0.5)
    file_report = report.files[0]
    assert (file_report.rows_read, file_report.rows_quarantined, report.rows_kept) == (70, 10, 60)
    rows_dir = storage.local_path(storage.join(settings.processed_uri, "quarantine", "matchups", "r1", "rows"))
    quarantined = pd.concat(pd.read_csv(p) for p in rows_dir.rglob("part-*.csv"))
    reasons = set(quarantined["_reason"].str.split(";").explode())
    assert {"bad_date:date", "negative_score", "bad_int:home_score", "future_date:date",
            "formula_injection:home_team", "same_team", "bad_bool:neutral", "missing:home_team",
            "malformed_line", "duplicate_row"} <= reasons
    assert file_report.reasons["duplicate_row"] == 1


def test_invalid_utf8_is_a_reason_not_a_crash(spark, settings, tmp_path) -> None:
    latin1 = "2020-03-01,Curaçao,Borduria,1,0,Friendly,X,Y,FALSE".encode("latin-1")
    path = write(tmp_path, "latin1.csv", "\n".join([RESULTS_HEADER, *good_results()]).encode() + b"\n" + latin1 + b"\n")
    report = run(spark, settings, "matchups", path, max_bad=0.5)
    assert report.files[0].reasons == {"invalid_encoding:home_team": 1}


def test_a_huge_cell_is_quarantined(spark, settings, tmp_path) -> None:
    huge = "2020-03-01," + "A" * 10_000_000 + ",Borduria,1,0,Friendly,X,Y,FALSE"
    path = write(tmp_path, "huge.csv", "\n".join([RESULTS_HEADER, *good_results(), huge]) + "\n")
    report = run(spark, settings, "matchups", path, max_bad=0.5)
    assert report.files[0].reasons == {"too_long:home_team": 1}


def test_too_many_bad_rows_reject_the_file(spark, settings, tmp_path) -> None:
    rows = good_results(20) + ["2020-02-01,Aland,Borduria,-1,0,Friendly,X,Y,FALSE"] * 5
    path = write(tmp_path, "mostly_bad.csv", "\n".join([RESULTS_HEADER, *rows]) + "\n")
    with pytest.raises(FileRejected, match=r"5 of 25 rows are bad \(20.0%"):
        run(spark, settings, "matchups", path)


def test_impossible_prices_are_caught(spark, settings, tmp_path) -> None:
    good = [f"2024-01-{d:02d},ACME,10,11,9,10.5,1000" for d in range(1, 29)]
    bad = ["2024-02-01,ACME,10,9,11,10,1000", "2024-02-02,ACME,0,1,0,0.5,1000", "2024-02-03,ACME,10,11,9,12,1000",
           "2024-02-04,ACME,10,11,9,10,-5"]
    path = write(tmp_path, "ACME.csv", "\n".join([OHLCV_HEADER, *good, *bad]) + "\n")
    report = run(spark, settings, "assets", path, max_bad=0.5)
    assert set(report.files[0].reasons) == {"high_below_low", "price_outside_range", "non_positive_price",
                                            "negative_volume"}
    assert report.rows_kept == 28


def test_a_rerun_with_the_same_run_id_is_idempotent(spark, settings, tmp_path) -> None:
    path = write(tmp_path, "good.csv", "\n".join([RESULTS_HEADER, *good_results()]) + "\n")
    first = run(spark, settings, "matchups", path)
    second = run(spark, settings, "matchups", path)
    data = spark.read.parquet(second.output_uri)
    assert first.output_uri == second.output_uri
    assert data.count() == 60 == second.rows_kept


def test_preflight_quarantines_a_bad_header_without_spark(settings, tmp_path) -> None:
    from pronostico.pipeline.convert import preflight, training_inputs

    raw = storage.join(settings.raw_uri, "assets")
    quarantine = storage.join(settings.processed_uri, "quarantine", "assets")
    good = write(tmp_path, "good.csv", OHLCV_HEADER + "\n2024-01-02,AAA,1,2,0.5,1.5,100\n")
    bad = write(tmp_path, "bad.csv", "when,what\n2024-01-02,x\n")
    for path in (good, bad):
        storage.upload_file(path, storage.join(raw, path.name))
    assert preflight(get_use_case("assets"), storage.join(raw, "good.csv"), quarantine, "run-1") == "ohlcv_daily"
    with pytest.raises(FileRejected, match="wrong header"):
        preflight(get_use_case("assets"), storage.join(raw, "bad.csv"), quarantine, "run-1")
    assert storage.exists(storage.join(quarantine, "run-1", "files", "bad.csv"))
    assert storage.read_json(storage.join(quarantine, "run-1", "reasons.json"))["files"][0]["rejected"]
    kept = [info.key.rsplit("/", 1)[-1] for info in training_inputs(settings.raw_uri, quarantine, "assets")]
    assert kept == ["good.csv"], "a file rejected once is left out of later runs"
