"""Matchups feature choice: the goal rating's parameters and feature groups, judged by train.py's own folds.

Each candidate builds the training rows with the use case's replay, then runs train.py's `tune_and_fit` on the
rows before the holdout: the same time-ordered folds, parameter grid and forest as a pipeline run. A candidate's
score is the cross-validated log loss of its best grid point, and the temperature is fitted on the newest fold, as
in training. The holdout is never scored here; it is scored once, by the pipeline, with the chosen settings.
The table holds the shipped settings and their neighbours, one setting moved at a time: a neighbour must beat the
shipped mean over both files by more than 0.0005 to replace them; smaller gaps are ties.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks.models import bench_settings
from pronostico.core import storage
from pronostico.core.config import load_settings
from pronostico.core.usecases import matchups
from pronostico.pipeline.convert import convert
from pronostico.pipeline.steps import dataset_uri, quarantine_uri
from pronostico.pipeline.train import (
    TrainConfig,
    frame_schema,
    split_date,
    training_rows,
    tune_and_fit,
    typed_feature_frame,
)

TRAINING_FILES = ("international_matches.csv", "results.csv")


@dataclass(frozen=True)
class Candidate:
    name: str
    goal_step: float = matchups.GOAL_STEP
    goal_home: float = matchups.GOAL_HOME
    activity_days: float = matchups.ACTIVITY_DAYS
    dropped: tuple[str, ...] = ()


CANDIDATES = (  # the shipped settings and each one step away from them
    Candidate("as shipped"),
    Candidate("goal step 0.035", goal_step=0.035),
    Candidate("goal step 0.07", goal_step=0.07),
    Candidate("goal home 0.3", goal_home=0.3),
    Candidate("goal home 0.5", goal_home=0.5),
    Candidate("activity over 180 days", activity_days=180.0),
    Candidate("activity over 730 days", activity_days=730.0),
    Candidate("without the goal rating", dropped=matchups.GOAL_FEATURES),
    Candidate("without activity", dropped=matchups.ACTIVITY_FEATURES),
)


@contextmanager
def goal_rating(candidate: Candidate) -> Iterator[None]:
    """The replay with the candidate's goal-rating parameters: the module's constants, restored afterwards."""
    names = {"GOAL_STEP": candidate.goal_step, "GOAL_HOME": candidate.goal_home,
             "ACTIVITY_DAYS": candidate.activity_days}
    shipped = {name: getattr(matchups, name) for name in names}
    for name, value in names.items():
        setattr(matchups, name, value)
    try:
        yield
    finally:
        for name, value in shipped.items():
            setattr(matchups, name, value)


def use_case_without(dropped: tuple[str, ...]) -> matchups.Matchups:
    """Matchups whose forest sees every feature but `dropped`; the frame keeps them all."""
    kept = tuple(name for name in matchups.FEATURES if name not in dropped)
    return type("Matchups", (matchups.Matchups,), {"feature_names": kept})()


def canonical_matches(spark: Any, file: str) -> pd.DataFrame:
    """One shared matches file as the convert step writes it, in a bench home of its own."""
    settings = bench_settings("tuning")
    uri = storage.to_uri(Path(load_settings().shared_data / "matchups" / file))
    report = convert(spark, matchups.MATCHUPS, [uri], dataset_uri(settings, "matchups"),
                     quarantine_uri(settings, "matchups"), f"tuning-{storage.safe_name(file)}-{int(time.time())}")
    return spark.read.parquet(report.output_uri).toPandas()


def score(spark: Any, canonical: pd.DataFrame, candidate: Candidate, config: TrainConfig) -> dict[str, Any]:
    with goal_rating(candidate):
        built = typed_feature_frame(matchups.MATCHUPS, canonical)
    frame = training_rows(spark.createDataFrame(built, frame_schema(matchups.MATCHUPS))).cache()
    rows = frame.toPandas()  # from here on, as train() does after its feature stage
    holdout_start = split_date(matchups.MATCHUPS.original_rows(rows), config.holdout_fraction)
    fit = tune_and_fit(spark, use_case_without(candidate.dropped), frame, rows, holdout_start, config)
    frame.unpersist()
    return {"cv_log_loss": min(tried["cv_log_loss"] for tried in fit["tried"]),
            "temperature": fit["calibration"]["temperature"], "train_rows": int((rows["date"] < holdout_start).sum())}


def section() -> str:
    from pronostico.pipeline.spark import spark_session

    settings = load_settings()
    # in-process, so that the candidates' constants reach the replay; the same memory as a spark-submit step
    os.environ.setdefault("PYSPARK_SUBMIT_ARGS", f"--master {settings.spark_master} "
                                                 f"--driver-memory {settings.spark_driver_memory} "
                                                 "--conf spark.ui.showConsoleProgress=false pyspark-shell")
    spark = spark_session("pronostico-bench-tuning", settings)
    spark.sparkContext.setLogLevel("ERROR")
    config = TrainConfig()
    scores: dict[str, dict[str, dict[str, Any]]] = {}
    try:
        for file in TRAINING_FILES:
            canonical = canonical_matches(spark, file)
            for candidate in CANDIDATES:
                result = score(spark, canonical, candidate, config)
                scores.setdefault(candidate.name, {})[file] = result
                print(f"  {file}, {candidate.name}: cv log loss {result['cv_log_loss']:.4f}", flush=True)
    finally:
        spark.stop()
    return table(scores, config)


def table(scores: dict[str, dict[str, dict[str, Any]]], config: TrainConfig) -> str:
    first = scores[CANDIDATES[0].name]
    rows = ", ".join(f"`{file}` {first[file]['train_rows']}" for file in TRAINING_FILES)
    lines = ["## Matchups feature choice by cross-validation", "", __doc__.split("\n\n", 1)[1].strip(), "",
             f"Rows before the holdout: {rows}; {config.folds} folds. Sorted by the mean over the files.", "",
             "| candidate | goal step | goal home | activity days | "
             + " | ".join(f"cv log loss `{file}`" for file in TRAINING_FILES) + " | mean | temperatures |",
             "|---|---|---|---|" + "---|" * len(TRAINING_FILES) + "---|---|"]

    def mean(candidate: Candidate) -> float:
        return sum(scores[candidate.name][file]["cv_log_loss"] for file in TRAINING_FILES) / len(TRAINING_FILES)

    for candidate in sorted(CANDIDATES, key=mean):
        results = scores[candidate.name]
        lines.append(f"| {candidate.name} | {candidate.goal_step} | {candidate.goal_home} | "
                     f"{candidate.activity_days:.0f} | "
                     + " | ".join(f"{results[file]['cv_log_loss']:.4f}" for file in TRAINING_FILES)
                     + f" | {mean(candidate):.4f} | "
                     + " / ".join(str(results[file]["temperature"]) for file in TRAINING_FILES) + " |")
    return "\n".join(lines)
