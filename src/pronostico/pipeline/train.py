"""Stage 2, parquet -> model version: features, a time split, tuning, metrics and the artifact.

The most recent slice of the data (by date) is held out. Spark's CrossValidator tunes the
forest on the rest, with folds that are contiguous blocks of time rather than random rows.
The model and the naive baselines are scored on the same holdout rows. The artifact is written
under models/<use_case>/versions/<version>/, manifest.json last: a version without a manifest
is incomplete and the registry ignores it. Then the run scores the serving champion on the rows
newer than its data (registry.evaluate_champion) and writes the real events of the data, which
resolve the logged predictions (layout.observed_events_uri).
"""

from __future__ import annotations

import json
import platform
import secrets
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import pronostico
from pronostico.core import evaluate, layout, registry, storage
from pronostico.core.calibration import MIN_ROWS as MIN_CALIBRATION_ROWS
from pronostico.core.calibration import CalibratedForest, fit_temperature, temper
from pronostico.core.forest import Forest
from pronostico.core.layout import version_uri
from pronostico.core.usecases.base import UseCase

PARITY_TOLERANCE = 1e-9
ROWS_PER_PARTITION = 10_000
OBSERVED_EVENT_DAYS = 730  # events older than this before the newest row resolve no prediction a model still serves
# the training settings a champion's tuned hyperparameters depend on: when one of them changes, the grid runs again
TUNING_SETTINGS = ("holdout_fraction", "folds", "num_trees", "max_depth", "min_instances_per_node",
                   "subsampling_rate", "max_bins", "seed")


@dataclass(frozen=True)
class TrainConfig:
    holdout_fraction: float = 0.15
    folds: int = 3
    num_trees: int = 60
    max_depth: tuple[int, ...] = (6, 9)
    min_instances_per_node: tuple[int, ...] = (10, 40)
    subsampling_rate: float = 0.8
    max_bins: int = 32
    max_memory_mb: int = 1024  # lets Spark grow more nodes per pass over the data
    seed: int = 7
    backtest_cost_bps: float = 10.0  # per side, on every change of position
    backtest_short_on_sell: bool = False  # sell means flat unless this is set

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        values = json.loads(text) if text else {}
        unknown = sorted(set(values) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown training parameter(s) {', '.join(unknown)}; "
                             f"known: {', '.join(cls.__dataclass_fields__)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


@dataclass(frozen=True)
class Tuning:
    """How a run picks the forest's hyperparameters: the grid over time folds, or a refit with the champion's.

    `tuned_by` names the run (and its version) whose grid chose the parameters a refit uses; a grid run fills it
    with its own once it knows its version.
    """

    path: str  # "grid" or "refit"
    reason: str
    params: dict[str, int] = field(default_factory=dict)  # max_depth, min_instances_per_node: a refit's
    tuned_by: dict[str, str] = field(default_factory=dict)

    def record(self, run_id: str, version: str) -> dict[str, Any]:
        return {"path": self.path, "reason": self.reason,
                "tuned_by": self.tuned_by or {"run_id": run_id, "version": version}}


def choose_tuning(use_case: UseCase, champion: dict[str, Any] | None, config: TrainConfig,
                  requested: str, convert_report: dict[str, Any] | None) -> Tuning:
    """The grid when it is asked for, when nothing serves, or when the champion's choice no longer applies (other
    features, another input schema, other training settings); otherwise a refit with the champion's parameters."""
    if requested == "grid":
        return Tuning("grid", "asked for: a retune, or the weekly schedule")
    if champion is None:
        return Tuning("grid", "no champion yet")
    chosen = champion.get("hyperparameters", {})
    if champion.get("features") != list(use_case.feature_names):
        return Tuning("grid", f"the features changed since the champion {champion['version']}")
    schemas = {f.get("schema") for f in (convert_report or {}).get("files", [])}
    if schemas != {i.get("schema") for i in champion.get("inputs", [])}:
        return Tuning("grid", f"the input schemas changed since the champion {champion['version']}")
    old = champion.get("train_config", {})
    changed = [name for name in TUNING_SETTINGS if _setting(old.get(name)) != _setting(getattr(config, name))]
    if changed:
        return Tuning("grid", f"the training settings changed since the champion: {', '.join(changed)}")
    if not {"max_depth", "min_instances_per_node"} <= set(chosen):
        return Tuning("grid", f"the champion {champion['version']} records no tuned hyperparameters")
    tuned_by = champion.get("tuning", {}).get("tuned_by") or {"run_id": champion["run_id"],
                                                                  "version": champion["version"]}
    return Tuning("refit", f"the champion {champion['version']}'s parameters, tuned by run {tuned_by['run_id']}",
                  {"max_depth": int(chosen["max_depth"]),
                   "min_instances_per_node": int(chosen["min_instances_per_node"])}, tuned_by)


def _setting(value: Any) -> Any:
    return tuple(value) if isinstance(value, list | tuple) else value


@dataclass
class TrainResult:
    version: str
    version_uri: str
    metrics: dict[str, Any]
    manifest: dict[str, Any] = field(default_factory=dict)
    evaluation: dict[str, Any] | None = None  # the champion's prospective evaluation, when there was a champion


def new_version() -> str:
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


class Stopwatch:
    """Seconds spent in each stage of a job, for the manifest and the step log."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.monotonic()

    def lap(self, stage: str) -> None:
        now = time.monotonic()
        self.seconds[stage] = round(now - self._last, 2)
        self._last = now
        print(f"stage {stage}: {self.seconds[stage]:.1f}s", file=sys.stderr, flush=True)


def train(spark: Any, use_case: UseCase, data_uri: str, models_uri: str, run_id: str,
          config: TrainConfig, convert_report: dict[str, Any] | None = None, tuning: str = "auto") -> TrainResult:
    """`tuning` is "auto" (refit with the champion's parameters when they still apply, see `choose_tuning`) or
    "grid" (tune again)."""
    watch = Stopwatch()
    chosen = choose_tuning(use_case, registry.champion_manifest(models_uri, use_case.name), config, tuning,
                           convert_report)
    print(f"tuning: {chosen.path} ({chosen.reason})", file=sys.stderr, flush=True)
    canonical = spark.read.parquet(data_uri)
    frame = feature_rows(spark, use_case, canonical).cache()
    rows = frame.toPandas()
    holdout_start = split_date(use_case.original_rows(rows), config.holdout_fraction)
    watch.lap("features")
    fit = tune_and_fit(spark, use_case, frame, rows, holdout_start, config, chosen.params or None)
    watch.lap("tune_and_fit")
    version = new_version()
    fit["tuning"] = chosen.record(run_id, version)
    uri = version_uri(models_uri, use_case.name, version)
    raw_forest = write_spark_model(spark, fit["model"], uri)
    holdout = rows[rows["date"] >= holdout_start].reset_index(drop=True)
    check_parity(raw_forest, fit["holdout_spark_probabilities"], holdout, use_case)
    forest = CalibratedForest(raw_forest, fit["calibration"]["temperature"])
    metrics, backtest = holdout_metrics(use_case, forest, rows, holdout_start, config)
    watch.lap("evaluate")
    snapshot = entity_snapshot(use_case, canonical)
    watch.lap("entity_snapshot")
    manifest = build_manifest(use_case, version, run_id, rows, holdout_start, fit, config, convert_report,
                              snapshot)
    manifest["stage_seconds"] = watch.seconds
    write_artifact(uri, use_case, raw_forest, metrics, snapshot, holdout, manifest, backtest)
    evaluation = registry.evaluate_champion(models_uri, use_case, rows, run_id, backtest_options(config))
    write_observed_events(models_uri, use_case, rows, run_id)
    registry.update_index(models_uri, use_case.name)  # the models page lists the version before any promotion
    watch.lap("prospective_evaluation")
    return TrainResult(version, uri, metrics, manifest, evaluation)


def backtest_options(config: TrainConfig) -> dict[str, Any]:
    return {"cost_bps": config.backtest_cost_bps, "short_on_sell": config.backtest_short_on_sell}


def write_observed_events(models_uri: str, use_case: UseCase, rows: pd.DataFrame, run_id: str) -> int:
    """The data's recent real events, for the log shipper to load next to the prediction log."""
    if not len(rows):
        return 0
    since = (pd.Timestamp(rows["date"].max()) - pd.Timedelta(days=OBSERVED_EVENT_DAYS)).strftime("%Y-%m-%d")
    events = use_case.observed_events(rows, since)
    storage.write_json(layout.observed_events_uri(models_uri, use_case.name), {
        "use_case": use_case.name, "run_id": run_id, "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "since": since, "events": events})
    return len(events)


def frame_schema(use_case: UseCase) -> str:
    columns = [f"{name} double" for name in use_case.feature_names]
    columns += [f"{name} {kind}" for name, kind in use_case.frame_extras.items()]
    return ", ".join(columns)


def typed_feature_frame(use_case: UseCase, history: pd.DataFrame) -> pd.DataFrame:
    """The use case's feature frame of one history, in the column types of `frame_schema`."""
    built = use_case.feature_frame(history)
    for name in use_case.feature_names:
        built[name] = built[name].astype("float64")
    for name, kind in use_case.frame_extras.items():
        built[name] = built[name].astype({"double": "float64", "int": "int64"}.get(kind, "object"))
    return built


def feature_rows(spark: Any, use_case: UseCase, canonical: Any) -> Any:
    """Run the use case's pandas feature code inside Spark, one history group at a time."""
    from pyspark.sql import functions as F

    def build(history: pd.DataFrame) -> pd.DataFrame:
        return typed_feature_frame(use_case, history.drop(columns=["_group"]))

    group = F.col(use_case.history_group) if use_case.history_group else F.lit(0)
    grouped = canonical.withColumn("_group", group).groupBy("_group")
    return training_rows(grouped.applyInPandas(build, frame_schema(use_case)))


def training_rows(features: Any) -> Any:
    """The rows of a Spark feature frame that train and score: the eligible ones, with a double label."""
    from pyspark.sql import functions as F

    return features.filter("eligible = 1").withColumn("label", F.col("label").cast("double"))


def entity_snapshot(use_case: UseCase, canonical: Any) -> dict[str, Any]:
    """Each entity's latest state, built in Spark per history group and merged on the driver."""
    from pyspark.sql import functions as F

    def part(history: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"part": [json.dumps(use_case.entity_snapshot(history.drop(columns=["_group"])))]})

    group = F.col(use_case.history_group) if use_case.history_group else F.lit(0)
    parts = (canonical.withColumn("_group", group).groupBy("_group")
             .applyInPandas(part, "part string").collect())
    return use_case.merge_snapshots([json.loads(row["part"]) for row in parts])


def split_date(rows: pd.DataFrame, holdout_fraction: float) -> str:
    """The first date of the holdout: the most recent `holdout_fraction` of the rows by date."""
    dates = np.sort(rows["date"].to_numpy())
    if len(dates) < 50:
        raise ValueError(f"only {len(dates)} eligible rows: too few to train and hold out a test set")
    return str(dates[int(len(dates) * (1 - holdout_fraction))])


def _fold_column(train_dates: np.ndarray, folds: int) -> Any:
    """Contiguous blocks of time as cross-validation folds, so that no fold is a random sample."""
    from pyspark.sql import functions as F

    ordered = np.sort(train_dates)
    edges = [str(ordered[int(len(ordered) * i / folds)]) for i in range(1, folds)]
    fold = F.lit(0)
    for edge in edges:
        fold = fold + F.when(F.col("date") >= edge, 1).otherwise(0)
    return fold.cast("int")


def training_partitions(spark: Any, rows: int) -> int:
    """Few partitions for small data: each tree level is a Spark job, and task overhead dominates small data."""
    return max(1, min(spark.sparkContext.defaultParallelism, -(-rows // ROWS_PER_PARTITION)))


def forest_pipeline(use_case: UseCase, config: TrainConfig) -> tuple[Any, Any]:
    """The VectorAssembler and the random forest, as one Spark pipeline, and the forest stage."""
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import RandomForestClassifier
    from pyspark.ml.feature import VectorAssembler

    forest = RandomForestClassifier(labelCol="label", featuresCol="features", numTrees=config.num_trees,
                                    subsamplingRate=config.subsampling_rate, maxBins=config.max_bins,
                                    maxMemoryInMB=config.max_memory_mb, cacheNodeIds=True, seed=config.seed)
    assembler = VectorAssembler(inputCols=list(use_case.feature_names), outputCol="features")
    return Pipeline(stages=[assembler, forest]), forest


def tune_and_fit(spark: Any, use_case: UseCase, frame: Any, rows: pd.DataFrame, holdout_start: str,
                 config: TrainConfig, fixed: dict[str, int] | None = None) -> dict[str, Any]:
    """The forest on the rows before the holdout: tuned by the grid over time folds, or, with `fixed`
    hyperparameters, refit with them (one fit for the temperature's fold, one on all the training rows)."""
    from pyspark.ml.functions import vector_to_array
    from pyspark.sql import functions as F

    train_dates = rows.loc[rows["date"] < holdout_start, "date"].to_numpy()
    train = (frame.filter(F.col("date") < holdout_start).withColumn("fold", _fold_column(train_dates, config.folds))
             .repartition(training_partitions(spark, len(train_dates))).cache())
    pipeline, forest = forest_pipeline(use_case, config)
    if fixed is None:
        best, tried, newest_fold_model = _grid_search(use_case, pipeline, forest, train, config)
    else:
        best, newest_fold_model = _refit(use_case, pipeline, forest, train, config, fixed)
        tried = []
    holdout = frame.filter(F.col("date") >= holdout_start)
    scored = best.transform(holdout).select(*row_key(use_case), vector_to_array("probability").alias("p")).toPandas()
    calibration = fit_calibration(use_case, newest_fold_model, train, rows, config) if use_case.calibrated \
        else {"temperature": 1.0, "method": "none"}
    rf = best.stages[-1]
    chosen = {"num_trees": config.num_trees, "max_depth": rf.getMaxDepth(),
              "min_instances_per_node": rf.getMinInstancesPerNode(),
              "subsampling_rate": config.subsampling_rate, "max_bins": config.max_bins,
              "feature_subset_strategy": rf.getFeatureSubsetStrategy(), "seed": config.seed}
    return {"model": best, "tried": tried, "chosen": chosen, "holdout_spark_probabilities": scored,
            "calibration": calibration}


def _refit(use_case: UseCase, pipeline: Any, forest: Any, train: Any, config: TrainConfig,
           fixed: dict[str, int]) -> tuple[Any, Any]:
    """The forest with `fixed` hyperparameters on all of `train`, and, for the temperature, on the folds before the
    newest one (None unless the use case is calibrated). The two fits run side by side, as CrossValidator runs its
    grid points: each tree level is a Spark job, and one fit alone leaves a core idle between them."""
    from concurrent.futures import ThreadPoolExecutor

    from pyspark.sql import functions as F

    params = {forest.maxDepth: fixed["max_depth"], forest.minInstancesPerNode: fixed["min_instances_per_node"]}
    older_folds = train.filter(F.col("fold") < config.folds - 1)
    with ThreadPoolExecutor(max_workers=2) as pool:
        final = pool.submit(pipeline.fit, train, params)
        newest_fold = pool.submit(pipeline.fit, older_folds, params) if use_case.calibrated else None
        return final.result(), newest_fold.result() if newest_fold else None


def _grid_search(use_case: UseCase, pipeline: Any, forest: Any, train: Any,
                 config: TrainConfig) -> tuple[Any, list[dict[str, Any]], Any]:
    """CrossValidator over the blocked time folds: the best model refit on all of `train`, every grid point's
    score, and the newest fold's sub-model with the chosen parameters (None unless the use case is calibrated)."""
    from pyspark.ml.evaluation import MulticlassClassificationEvaluator
    from pyspark.ml.tuning import CrossValidator, ParamGridBuilder

    grid = (ParamGridBuilder().addGrid(forest.maxDepth, list(config.max_depth))
            .addGrid(forest.minInstancesPerNode, list(config.min_instances_per_node)).build())
    evaluator = MulticlassClassificationEvaluator(labelCol="label", metricName="logLoss")
    tuner = CrossValidator(estimator=pipeline, estimatorParamMaps=grid, evaluator=evaluator,
                           numFolds=config.folds, foldCol="fold", parallelism=2, seed=config.seed,
                           collectSubModels=use_case.calibrated)
    fitted = tuner.fit(train)
    tried = [{"max_depth": m[forest.maxDepth], "min_instances_per_node": m[forest.minInstancesPerNode],
              "cv_log_loss": float(score)} for m, score in zip(grid, fitted.avgMetrics, strict=True)]
    chosen = int(np.argmin(fitted.avgMetrics))  # logLoss: smaller is better, as CrossValidator chose
    newest = fitted.subModels[config.folds - 1][chosen] if use_case.calibrated else None
    return fitted.bestModel, tried, newest


def fit_calibration(use_case: UseCase, newest_fold_model: Any, train: Any, rows: pd.DataFrame,
                    config: TrainConfig) -> dict[str, Any]:
    """The temperature, fitted on the newest fold before the holdout, scored by a model of the older folds.

    That model, with the chosen parameters, learned only from the older folds, so its answers on the newest block
    are honest out-of-sample answers, which is what a temperature must be fitted on.
    """
    from pyspark.ml.functions import vector_to_array
    from pyspark.sql import functions as F

    block = train.filter(F.col("fold") == config.folds - 1)
    scored = (newest_fold_model.transform(block)
              .select(*row_key(use_case), vector_to_array("probability").alias("p")).toPandas())
    paired = rows.merge(scored, on=row_key(use_case), how="inner")
    raw = np.vstack(paired["p"].to_numpy()) if len(paired) else np.empty((0, len(use_case.classes)))
    originals, _ = use_case.fold_mirrors(paired, raw)
    labels = originals["label"].to_numpy()
    entry = {"method": "temperature", "fitted_on": {"start": str(paired["date"].min()),
                                                   "end": str(paired["date"].max()), "rows": len(originals)}}
    if len(originals) < MIN_CALIBRATION_ROWS:
        return {**entry, "temperature": 1.0, "note": f"{len(originals)} rows: too few to fit, untempered"}
    temperature = fit_temperature(labels, lambda t: use_case.fold_mirrors(paired, temper(raw, t))[1])
    return {**entry, "temperature": temperature}


def write_spark_model(spark: Any, model: Any, uri: str) -> Forest:
    """Save Spark's own model, then read its node table back into the JVM-free forest."""
    model.write().overwrite().save(storage.join(uri, layout.SPARK_MODEL))
    rf_stage = model.stages[-1]
    stage_dir = storage.join(uri, layout.SPARK_MODEL, "stages", f"1_{rf_stage.uid}", "data")
    nodes = spark.read.parquet(stage_dir).collect()
    trees: dict[int, list[dict]] = {}
    for row in nodes:
        trees.setdefault(int(row["treeID"]), []).append(row["nodeData"].asDict(recursive=True))
    return Forest.from_trees([trees[t] for t in sorted(trees)])


def row_key(use_case: UseCase) -> list[str]:
    """The columns that name one feature row: the dataset's key, and the mirror flag where a row has a mirrored
    twin (a neutral match trains in both orders, on the same date)."""
    return [*use_case.key_columns, *(["mirror"] if "mirror" in use_case.frame_extras else [])]


def check_parity(forest: Forest, spark_scored: pd.DataFrame, holdout: pd.DataFrame, use_case: UseCase) -> None:
    """Fail the job if the forest the web tier will evaluate disagrees with Spark's.

    `spark_scored` holds the row key and Spark's probability vector `p` of each holdout row. Rows are paired on
    the key, never by position: the holdout was read from a cached frame evaluated twice, and a lost executor
    recomputes partitions in whatever order they finish.
    """
    if not len(holdout):
        return
    key = row_key(use_case)
    paired = holdout[key].merge(spark_scored, on=key, how="left")
    if len(spark_scored) != len(holdout) or len(paired) != len(holdout) or paired["p"].isna().any():
        raise RuntimeError(f"Spark scored {len(spark_scored)} rows that are not the {len(holdout)} holdout rows "
                           f"one for one (paired on {', '.join(key)})")
    ours = forest.predict_proba(holdout[list(use_case.feature_names)].to_numpy())
    worst = float(np.max(np.abs(ours - np.vstack(paired["p"].to_numpy()))))
    if worst > PARITY_TOLERANCE:
        raise RuntimeError(f"JVM-free forest differs from Spark by {worst:.3g} on the holdout")


def holdout_metrics(use_case: UseCase, forest: CalibratedForest, rows: pd.DataFrame, holdout_start: str,
                    config: TrainConfig) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Metrics of the served predictor and of each baseline on the same holdout rows, and the holdout backtest
    (metrics.json keeps its figures; the version's backtest.json keeps them with the equity curves)."""
    holdout = rows[rows["date"] >= holdout_start].reset_index(drop=True)
    train_rows = use_case.original_rows(rows[rows["date"] < holdout_start])
    scored_rows, probabilities = evaluate.served_probabilities(use_case, forest, holdout)
    scores = evaluate.score_window(use_case, scored_rows, probabilities, train_rows)
    backtest = use_case.backtest(scored_rows, probabilities, **backtest_options(config))
    summary = {"backtest": {k: v for k, v in backtest.items() if k != "curves"}} if backtest else {}
    return {
        **scores,
        **summary,
        "split": {"method": "time", "holdout_start": holdout_start, "holdout_end": str(holdout["date"].max()),
                  "holdout_fraction": config.holdout_fraction, "train_rows": len(train_rows),
                  "holdout_rows": len(scored_rows),
                  "note": "the most recent rows by date are held out; tuning used blocked time folds"},
    }, backtest


def build_manifest(use_case: UseCase, version: str, run_id: str, rows: pd.DataFrame, holdout_start: str,
                   fit: dict[str, Any], config: TrainConfig, convert_report: dict[str, Any] | None,
                   snapshot: dict[str, Any]) -> dict[str, Any]:
    import pyspark

    report = convert_report or {}
    originals = use_case.original_rows(rows)
    training = originals[originals["date"] < holdout_start]
    holdout = originals[originals["date"] >= holdout_start]
    return {
        "version": version,
        "use_case": use_case.name,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "run_id": run_id,  # the DAG run id, or the CLI's own for a run outside Airflow; version_for_run reads it
        "inputs": [{k: f[k] for k in ("uri", "etag", "size", "schema", "rows_read", "rows_kept",
                                      "rows_quarantined")} for f in report.get("files", [])],
        "rows": {"read": report.get("rows_read"), "kept": report.get("rows_kept"),
                 "quarantined": report.get("rows_quarantined"),
                 "merged_duplicates": report.get("rows_merged_duplicates"),
                 "training": len(training), "holdout": len(holdout)},
        "data_range": {"start": report.get("date_range", ["", ""])[0], "end": report.get("date_range", ["", ""])[1]},
        "training_range": {"start": str(training["date"].min()), "end": str(training["date"].max())},
        "holdout_range": {"start": holdout_start, "end": str(holdout["date"].max())},
        "entities": {"as_of": snapshot.get("as_of"), "count": use_case.entity_count(snapshot)},
        "versions": {"pyspark": pyspark.__version__, "pronostico": pronostico.__version__,
                     "python": platform.python_version(), "numpy": np.__version__},
        "features": list(use_case.feature_names),
        "classes": list(use_case.classes),
        "hyperparameters": fit["chosen"],
        "calibration": fit["calibration"],
        "tuning": {**fit.get("tuning", {"path": "grid"}), "method": "CrossValidator over contiguous time blocks",
                   "folds": config.folds, "metric": "logLoss", "grid": fit["tried"]},
        "train_config": asdict(config),
    }


def write_artifact(uri: str, use_case: UseCase, forest: Forest, metrics: dict[str, Any],
                   snapshot: dict[str, Any], holdout: pd.DataFrame, manifest: dict[str, Any],
                   backtest: dict[str, Any] | None = None) -> None:
    storage.write_bytes(storage.join(uri, layout.FOREST), forest.to_bytes())
    if backtest:
        storage.write_json(storage.join(uri, layout.BACKTEST), backtest)
    storage.write_json(storage.join(uri, layout.FEATURES), list(use_case.feature_names))
    storage.write_json(storage.join(uri, layout.METRICS), metrics)
    storage.write_json(storage.join(uri, layout.ENTITIES), snapshot)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "holdout.parquet"
        holdout.to_parquet(path, index=False)
        storage.write_bytes(storage.join(uri, layout.HOLDOUT), path.read_bytes())
    storage.write_json(storage.join(uri, layout.MANIFEST), manifest)  # last: marks the version complete
