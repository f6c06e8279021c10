"""Model time: the JVM-free serving core against PySpark loaded in the web process (the original design).

Each engine runs in a fresh process of its own, so that load time counts from a cold interpreter and memory is that
worker's alone (for Spark: the Python driver and its JVM). The parent alternates the engines and takes medians.

    python -m benchmarks.model_time worker --engine numpy --models URI --use-case matchups --requests 300
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

STARTED = time.perf_counter()


def payloads(model: Any, count: int) -> list[dict[str, Any]]:
    """Realistic requests: random pairs of offered teams (half on neutral ground), or random symbols."""
    rng = np.random.default_rng(11)
    entities = model.entities()
    if model.use_case.name == "matchups":
        names = [e["name"] for e in entities]
        pairs = [rng.choice(names, 2, replace=False) for _ in range(count)]
        return [{"home_team": str(h), "away_team": str(a), "neutral": bool(i % 2)} for i, (h, a) in enumerate(pairs)]
    symbols = [e["symbol"] for e in entities]
    return [{"symbol": str(rng.choice(symbols))} for _ in range(count)]


def numpy_predictor(models_uri: str, use_case: str) -> tuple[Any, Callable[[dict], Any]]:
    from pronostico.core.serving import load_current

    model = load_current(models_uri, use_case)
    return model, model.predict


def spark_predictor(models_uri: str, use_case: str) -> tuple[Any, Callable[[dict], Any]]:
    """What the original design served with: a local SparkSession and the saved PipelineModel, one row per request."""
    from pyspark.ml import PipelineModel
    from pyspark.ml.functions import vector_to_array
    from pyspark.sql import SparkSession

    from pronostico.core import storage
    from pronostico.core.serving import load_current

    spark = (SparkSession.builder.master("local[1]").appName("web-worker").config("spark.ui.enabled", "false")
             .config("spark.sql.shuffle.partitions", "1").getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    served = load_current(models_uri, use_case)  # the same request parsing and features: only the forest differs
    pipeline = PipelineModel.load(storage.join(models_uri, use_case, "versions", served.version, "spark_model"))
    names = list(served.use_case.feature_names)

    def predict(payload: dict) -> Any:
        request = served.parse(payload)
        vectors = served.use_case.request_vectors(request, served.snapshot)
        frame = spark.createDataFrame([tuple(float(x) for x in v) for v in vectors], names)
        rows = pipeline.transform(frame).select(vector_to_array("probability").alias("p")).collect()
        return served.use_case.combine(request, [np.array(r["p"]) for r in rows])

    return served, predict


def tree_rss_mb() -> float:
    """Resident memory of this process and all its children (Spark's JVM is a child of the Python driver)."""
    import psutil

    me = psutil.Process()
    return sum(p.memory_info().rss for p in [me, *me.children(recursive=True)]) / 2**20


def worker(args: argparse.Namespace) -> None:
    make = numpy_predictor if args.engine == "numpy" else spark_predictor
    model, predict = make(args.models, args.use_case)
    loaded = time.perf_counter() - STARTED
    requests = payloads(model, args.requests)
    for payload in requests[:20]:  # warm up: first calls compile and cache
        predict(payload)
    latencies = []
    for payload in requests:
        started = time.perf_counter()
        predict(payload)
        latencies.append(time.perf_counter() - started)
    latencies.sort()
    print(json.dumps({"engine": args.engine, "use_case": args.use_case, "load_seconds": loaded,
                      "median_ms": statistics.median(latencies) * 1000,
                      "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
                      "rss_mb": tree_rss_mb(), "requests": len(latencies)}))


def measure(models_uri: str, use_case: str, engine: str, requests: int) -> dict[str, Any]:
    command = [sys.executable, "-m", "benchmarks.model_time", "worker", "--engine", engine, "--models", models_uri,
               "--use-case", use_case, "--requests", str(requests)]
    done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=900)
    return json.loads(done.stdout.strip().splitlines()[-1])


def compare(models_uri: str, use_case: str, rounds: int = 3, requests: int = 300) -> dict[str, dict[str, float]]:
    """Median of each figure per engine, the engines alternating round by round."""
    runs: dict[str, list[dict[str, Any]]] = {"numpy": [], "spark": []}
    for _ in range(rounds):
        for engine in runs:
            runs[engine].append(measure(models_uri, use_case, engine, requests if engine == "numpy" else 100))
    figures = ("load_seconds", "median_ms", "p99_ms", "rss_mb")
    return {engine: {f: statistics.median(r[f] for r in results) for f in figures} for engine, results in runs.items()}


def section(rounds: int = 3) -> str:
    """Both engines on each use case's promoted model, alternating, `rounds` fresh workers each."""
    from benchmarks.models import USE_CASES, bench_settings, ensure_models
    from benchmarks.report import markdown_table

    models_uri = ensure_models(bench_settings("models"))
    rows = []
    for use_case in USE_CASES:
        figures = compare(models_uri, use_case, rounds)
        numpy_, spark = figures["numpy"], figures["spark"]
        rows.append([use_case, f"{numpy_['load_seconds']:.2f} s", f"{spark['load_seconds']:.1f} s",
                     f"{spark['load_seconds'] / numpy_['load_seconds']:.0f}x",
                     f"{numpy_['median_ms']:.3f} ms", f"{spark['median_ms']:.0f} ms",
                     f"{spark['median_ms'] / numpy_['median_ms']:,.0f}x",
                     f"{numpy_['p99_ms']:.3f} ms", f"{spark['p99_ms']:.0f} ms",
                     f"{numpy_['rss_mb']:.0f} MB", f"{spark['rss_mb']:,.0f} MB",
                     f"{spark['rss_mb'] / numpy_['rss_mb']:.0f}x"])
    table = markdown_table(
        ["use case", "load: core", "load: PySpark", "ratio", "one row p50: core", "p50: PySpark", "ratio",
         "p99: core", "p99: PySpark", "RSS per worker: core", "RSS: PySpark", "ratio"], rows)
    return f"""## Model time: the serving core against PySpark in the web worker

`make bench ONLY=model_time` (`python -m benchmarks model_time`). Each engine runs in a fresh worker process
(`python -m benchmarks.model_time worker --engine numpy|spark ...`), {rounds} rounds, the engines alternating; figures
are medians over the rounds. Load time counts from a cold interpreter to a model ready to answer (for PySpark:
starting the JVM, a local SparkSession, `PipelineModel.load`). One-row latency is one request: parse, build the
features from the entity snapshot, evaluate the forest (300 requests for the core, 100 for PySpark, after 20
warm-up calls). Memory is the worker's resident set with its children (Spark's JVM). Both engines use the same
promoted version and give the same probabilities (`tests/model/test_parity.py`, to 1e-9).

{table}

The original design loaded PySpark in each web worker; every gunicorn worker would carry a JVM and answer one row
in the time the core answers thousands. The core keeps the forest as numpy arrays (`forest.npz`) and needs no JVM.
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    one = commands.add_parser("worker", help="measure one engine in this process")
    one.add_argument("--engine", choices=("numpy", "spark"), required=True)
    one.add_argument("--models", required=True)
    one.add_argument("--use-case", default="matchups")
    one.add_argument("--requests", type=int, default=300)
    args = parser.parse_args(argv)
    worker(args)


if __name__ == "__main__":
    main()
