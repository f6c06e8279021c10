"""The models page with a long registry: /models and its JSON, read through the registry's index or without it.

A local file:// registry gets VERSIONS versions per use case, written as train and promote leave them: a manifest as
train.build_manifest writes it, holdout metrics from pronostico.core.evaluate on made-up answers (the model and every
baseline, per class and with calibration bins), a promotion record, a constant forest, the entity state, a backtest
with equity curves (assets), stand-ins for holdout.parquet and spark_model/, and one prospective evaluation per run
with the earlier versions in brief. Every fifth version is promoted; the newest lends the champion its state.

Then the real Flask app (its test client, its models cache emptied before each request: every one a cache miss) answers
/models and /api/v1/models/<use case>/{versions,evaluations,backtest} REQUESTS times each, in turns: without an index
(every version and evaluation file is read, as before the index) and with it.

    python -m benchmarks models_index          (make bench ONLY=models_index)
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.report import markdown_table
from pronostico.core import backtest, evaluate, layout, registry, storage
from pronostico.core.forest import Forest
from pronostico.core.usecases import USE_CASES
from pronostico.core.usecases.base import UseCase

VERSIONS = 200
REQUESTS = 9
BUDGET_MS = 100.0
PROMOTE_EVERY = 5
HOLDOUT_ROWS = {"matchups": 3600, "assets": 2400}
SYMBOLS = ("AAPL", "BTC-USD", "ETH-USD", "NVDA", "SPY", "TSLA")


# --- a registry as training and promotion leave it ------------------------------------------------------------

def made_up_answers(use_case: UseCase, rows: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    labels = rng.integers(0, len(use_case.classes), rows)
    return labels, rng.dirichlet(np.ones(len(use_case.classes)) * 3, rows)


def window_scores(use_case: UseCase, rows: int, rng: np.random.Generator) -> dict[str, Any]:
    """The model and every baseline scored on one window, as evaluate.score_window leaves them."""
    labels, probabilities = made_up_answers(use_case, rows, rng)
    model = evaluate.use_case_metrics(use_case, labels, probabilities)
    baselines = {name: evaluate.use_case_metrics(use_case, labels, made_up_answers(use_case, rows, rng)[1])
                 for name in use_case.presentation.baseline_labels}
    return {"model": model, "baselines": baselines, "best_baseline": evaluate.best_baseline(baselines),
            "versus_baselines": evaluate.compare_to_baselines(model, baselines)}


def signal_backtest(start: str, bars: int, rng: np.random.Generator) -> dict[str, Any]:
    first = datetime.fromisoformat(start)
    rows = pd.DataFrame([{"symbol": symbol, "date": (first + timedelta(days=i)).strftime("%Y-%m-%d"),
                          "signal": str(rng.choice(["sell", "hold", "buy"])), "next_return": rng.normal(0, 0.02)}
                         for symbol in SYMBOLS for i in range(bars)])
    return backtest.run(rows, seeds=5)


def manifest(use_case: UseCase, version: str, created: datetime, holdout_start: str, holdout_end: str
             ) -> dict[str, Any]:
    """What train.build_manifest writes, with made-up inputs and tuning."""
    grid = [{"max_depth": d, "min_instances_per_node": m, "cv_log_loss": 1.0 - d / 100 + m / 1000}
            for d in (6, 9) for m in (10, 40)]
    return {
        "version": version, "use_case": use_case.name, "created_at": created.isoformat(timespec="seconds"),
        "run_id": f"scheduled__{created.isoformat(timespec='seconds')}",
        "inputs": [{"uri": f"s3://pronostico-raw/{use_case.name}/{symbol}.csv", "etag": f"{i:032x}", "size": 400_000,
                    "schema": use_case.name, "rows_read": 4000, "rows_kept": 3990, "rows_quarantined": 10}
                   for i, symbol in enumerate(SYMBOLS)],
        "rows": {"read": 24000, "kept": 23940, "quarantined": 60, "merged_duplicates": 0, "training": 20000,
                 "holdout": HOLDOUT_ROWS[use_case.name]},
        "data_range": {"start": "2000-01-01", "end": holdout_end},
        "training_range": {"start": "2000-01-01", "end": holdout_start},
        "holdout_range": {"start": holdout_start, "end": holdout_end},
        "entities": {"as_of": holdout_end, "count": 240},
        "versions": {"pyspark": "4.0.0", "pronostico": "0.1.0", "python": "3.11.2", "numpy": "2.2.0"},
        "features": list(use_case.feature_names), "classes": list(use_case.classes),
        "hyperparameters": {"num_trees": 60, "max_depth": 9, "min_instances_per_node": 40},
        "calibration": {"method": "none", "temperature": 1.0},
        "tuning": {"method": "CrossValidator over contiguous time blocks", "folds": 3, "metric": "logLoss",
                   "grid": grid},
        "stage_seconds": {"features": 20.0, "tune_and_fit": 120.0, "evaluate": 5.0},
    }


def constant_forest(classes: int) -> bytes:
    leaf = {"id": 0, "leftChild": -1, "rightChild": -1, "impurityStats": [1.0] * classes,
            "split": {"featureIndex": -1, "leftCategoriesOrThreshold": [], "numCategories": -1}}
    return Forest.from_trees([[leaf]]).to_bytes()


def write_version(uri: str, use_case: UseCase, version: str, created: datetime, rng: np.random.Generator,
                  holdout_backtest: dict[str, Any] | None) -> dict[str, Any]:
    """One complete version's files, manifest last; returns its manifest."""
    folder = layout.version_uri(uri, use_case.name, version)
    holdout_start = (created - timedelta(days=90)).strftime("%Y-%m-%d")
    found = manifest(use_case, version, created, holdout_start, created.strftime("%Y-%m-%d"))
    metrics = {**window_scores(use_case, HOLDOUT_ROWS[use_case.name], rng),
               "split": {"method": "time", "holdout_start": holdout_start, "holdout_end": found["holdout_range"]["end"],
                         "holdout_fraction": 0.15, "train_rows": 20000, "holdout_rows": HOLDOUT_ROWS[use_case.name]}}
    if holdout_backtest:
        metrics["backtest"] = {k: v for k, v in holdout_backtest.items() if k != "curves"}
        storage.write_json(storage.join(folder, layout.BACKTEST), holdout_backtest)
    storage.write_bytes(storage.join(folder, layout.FOREST), constant_forest(len(use_case.classes)))
    storage.write_json(storage.join(folder, layout.FEATURES), list(use_case.feature_names))
    entities = {"as_of": found["entities"]["as_of"], "symbols" if use_case.name == "assets" else "teams": {}}
    storage.write_json(storage.join(folder, layout.ENTITIES), entities)
    storage.write_json(storage.join(folder, layout.METRICS), metrics)
    storage.write_bytes(storage.join(folder, layout.HOLDOUT), bytes(4096))  # read by the gate only
    for part in ("metadata/part-00000", "stages/0_vector/metadata/part-00000", "stages/1_rf/data/part-0.parquet",
                 "stages/1_rf/metadata/part-00000", "stages/1_rf/treesMetadata/part-0.parquet"):
        storage.write_bytes(storage.join(folder, layout.SPARK_MODEL, part), bytes(512))
    storage.write_json(storage.join(folder, layout.MANIFEST), found)
    return found


def promotion(use_case: str, version: str, champion: str | None, promoted: bool, lends: bool,
              decided: datetime) -> dict[str, Any]:
    """A gate's record, as registry._record writes it."""
    state = version if promoted or lends else champion
    return {"use_case": use_case, "candidate": version, "champion": champion, "promoted": promoted,
            "reason": ("no champion yet" if champion is None else
                       f"holdout log loss 1.0{'1' if promoted else '9'}00 is {'not worse' if promoted else 'worse'} "
                       f"than the champion's 1.0500 on the same 400 rows"),
            "rows_compared": 0 if champion is None else 400, "candidate_log_loss": None if champion is None else 1.01,
            "champion_log_loss": None if champion is None else 1.05,
            "decided_at": decided.isoformat(timespec="seconds"), "state_version": state,
            "state_reason": f"the champion serves the state of {version}" if lends else ""}


def evaluation(use_case: UseCase, champion: dict[str, Any], earlier: list[dict[str, Any]], run_id: str,
               evaluated: datetime, rng: np.random.Generator, window_backtest: dict[str, Any] | None
               ) -> dict[str, Any]:
    """A prospective evaluation of the champion, as registry.evaluate_champion writes it; every seventh too small."""
    after = champion["holdout_range"]["end"]
    entry: dict[str, Any] = {"use_case": use_case.name, "run_id": run_id,
                             "evaluated_at": evaluated.isoformat(timespec="seconds"),
                             "model_version": champion["version"], "window": {"after": after, "start": after,
                                                                              "end": evaluated.strftime("%Y-%m-%d")},
                             "rows": 300, "min_rows": evaluate.MIN_FAIR_ROWS,
                             "earlier_versions": [{"model_version": e["version"], "window": {"after": after},
                                                   "rows": 300, "status": "scored", "log_loss": 1.02,
                                                   "best_baseline": "b", "best_baseline_log_loss": 1.04}
                                                  for e in earlier]}
    if int(rng.integers(0, 7)) == 0:
        return {**entry, "rows": 12, "status": "too_small", "reason": f"12 rows newer than {after} (need 50)"}
    scored = {**entry, "status": "scored", **window_scores(use_case, 300, rng)}
    return {**scored, "backtest": window_backtest} if window_backtest else scored


def write_registry(uri: str, versions: int, seed: int = 7) -> None:
    """`versions` versions of each use case, one evaluation per run, promotion records and current.json."""
    for use_case in USE_CASES.values():
        write_use_case(uri, use_case, versions, np.random.default_rng(seed))


def write_use_case(uri: str, use_case: UseCase, versions: int, rng: np.random.Generator) -> None:
    trades = use_case.name == "assets"
    backtests = [signal_backtest("2024-01-01", bars, rng) for bars in (60, 90)] if trades else [None, None]
    champion: dict[str, Any] | None = None
    made: list[dict[str, Any]] = []
    for number in range(versions):
        created = datetime(2022, 1, 3, 6, tzinfo=UTC) + timedelta(days=7 * number)
        version = f"{created:%Y%m%dT%H%M%SZ}-{number:06x}"
        if champion:
            storage.write_json(layout.evaluation_uri(uri, use_case.name, f"run-{number:04d}"), evaluation(
                use_case, champion, made[-registry.EARLIER_VERSIONS:], f"run-{number:04d}", created, rng,
                backtests[number % 2]))
        found = write_version(uri, use_case, version, created, rng, backtests[0] if trades else None)
        promoted = champion is None or number % PROMOTE_EVERY == 0
        lends = not promoted and number == versions - 1
        storage.write_json(layout.version_file(uri, use_case.name, version, layout.PROMOTION), promotion(
            use_case.name, version, champion["version"] if champion else None, promoted, lends, created))
        made.append(found)
        champion = found if promoted else champion
    newest = made[-1]["version"]
    state = newest if champion and champion["version"] != newest else champion["version"] if champion else None
    storage.write_json(layout.current_uri(uri, use_case.name), {
        "version": champion["version"] if champion else None, "state_version": state, "previous_version": None,
        "reason": "no champion yet", "promoted_at": "2026-01-01T00:00:00+00:00"})


# --- the measurement --------------------------------------------------------------------------------------------

def endpoints() -> list[str]:
    found = ["/models"]
    for name in USE_CASES:
        found += [f"/api/v1/models/{name}/versions", f"/api/v1/models/{name}/evaluations"]
    return found + [f"/api/v1/models/{name}/backtest" for name in USE_CASES if name == "assets"]


def models_app(uri: str, home: Path) -> Any:
    from app import create_app
    from pronostico.prediction_log import db

    config = {"TESTING": True, "SECRET_KEY": "bench", "MODELS_URI": uri, "DB_URL": f"sqlite:///{home / 'log.db'}",
              "SPOOL_DIR": str(home / "spool"), "MODEL_POLL_SECONDS": 0}
    application = create_app(config)
    db.upgrade(application.config["DB_URL"])
    return application


def timed(client: Any, path: str) -> tuple[float, bytes]:
    """One request on a cold models cache: the first after its entries expired."""
    client.application.extensions.get("pronostico.models", {}).clear()
    started = time.perf_counter()
    answer = client.get(path)
    elapsed = (time.perf_counter() - started) * 1000
    if answer.status_code != 200:
        raise RuntimeError(f"{path} answered {answer.status_code}")
    return elapsed, answer.get_data()


def set_index(uri: str, present: bool) -> None:
    for name in USE_CASES:
        if present:
            registry.update_index(uri, name)
        else:
            storage.delete(layout.index_uri(uri, name))


def measure(uri: str, home: Path) -> dict[str, dict[str, list[float]]]:
    """Milliseconds per request, per path, without and with the index, in alternating turns."""
    application = models_app(uri, home)
    client = application.test_client()
    times: dict[str, dict[str, list[float]]] = {"without": {}, "with": {}}
    answers: dict[str, dict[str, bytes]] = {"without": {}, "with": {}}
    try:
        for _ in range(REQUESTS):
            for mode in ("without", "with"):
                set_index(uri, mode == "with")
                for path in endpoints():
                    elapsed, body = timed(client, path)
                    times[mode].setdefault(path, []).append(elapsed)
                    answers[mode][path] = body
    finally:
        application.extensions["pronostico"].spool.close()
    different = [p for p in endpoints() if answers["with"][p] != answers["without"][p]]
    if different:
        raise RuntimeError(f"the index changed what these answer: {different}")
    return times


def registry_size(uri: str) -> tuple[int, int]:
    files = storage.list_objects(uri)
    return len(files), sum(f.size for f in files)


def section() -> str:
    home = Path(tempfile.mkdtemp(prefix="bench-models-index-"))
    try:
        uri = (home / "models").as_uri()
        started = time.monotonic()
        write_registry(uri, VERSIONS)
        print(f"  wrote the registry in {time.monotonic() - started:.0f}s", flush=True)
        files, size = registry_size(uri)
        set_index(uri, present=True)
        index_bytes = {name: len(storage.read_bytes(layout.index_uri(uri, name))) for name in USE_CASES}
        times = measure(uri, home)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return render(times, files, size, index_bytes)


def render(times: dict[str, dict[str, list[float]]], files: int, size: int, index_bytes: dict[str, int]) -> str:
    rows = []
    for path in endpoints():
        before, after = (statistics.median(times[mode][path]) for mode in ("without", "with"))
        rows.append([f"`{path}`", f"{before:.1f}", f"{after:.1f}", f"{before / after:.1f}x",
                     "yes" if after <= BUDGET_MS else "**no**"])
    indexes = ", ".join(f"{name} {size / 1e6:.1f} MB" for name, size in index_bytes.items())
    return "\n".join([
        f"## Models page: {VERSIONS} versions, with and without the registry's index", "",
        f"A local `file://` registry with {VERSIONS} versions per use case and one prospective evaluation per run "
        f"({files:,} files, {size / 1e6:.0f} MB; `benchmarks/models_index.py` writes them as training and promotion "
        "leave them), served by the real Flask app through its test client, its models cache emptied before each "
        f"request so that every one is a cache miss. Median of {REQUESTS} requests per path, without the index and "
        "with it in alternating turns, in one run. Without it, each miss reads every version's manifest, metrics and "
        "promotion record and every evaluation (as before the index; the app builds the index in memory from them, "
        "and on `file://` the listing also takes an md5 of each as its etag); with it, `<use_case>/index.json` "
        f"({indexes}) and `current.json`; the backtest also reads the serving version's `backtest.json` and the "
        f"newest scored evaluation, for their curves. Every answer is byte for byte the same both ways. The budget is "
        f"{BUDGET_MS:.0f} ms.", "",
        markdown_table(["path", "without the index (ms)", "with the index (ms)", "ratio", f"≤ {BUDGET_MS:.0f} ms"],
                       rows)])
