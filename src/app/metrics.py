"""Prometheus metrics. Under gunicorn every worker writes its own files in PROMETHEUS_MULTIPROC_DIR (set by
bootstrap/gunicorn.conf.py before any worker starts) and /metrics adds them up; without it, one process's own."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import REGISTRY, Collector

from pronostico.prediction_log.spool import writer_counters

if TYPE_CHECKING:
    from pronostico.core.serving import ServingModel
    from pronostico.core.usecases.base import UseCase

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

PREDICTIONS = Counter("pronostico_predictions_total", "Predictions answered and spooled", ["use_case", "channel"])
PREDICTION_SECONDS = Histogram(
    "pronostico_prediction_seconds", "Time in the app to parse, predict and spool one prediction", ["use_case"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0))
ANSWERS = Counter("pronostico_answers_total", "Predictions answered, by the class the model predicted",
                  ["use_case", "class"])
REQUEST_ERRORS = Counter("pronostico_request_errors_total", "Requests answered with an error, by code",
                         ["status", "code"])


_children: dict[tuple[str, str], tuple[Any, Any]] = {}


def observe_prediction(use_case: str, channel: str, seconds: float) -> None:
    children = _children.get((use_case, channel))
    if children is None:  # resolved once per label pair: a labels() lookup per request costs throughput
        children = _children.setdefault((use_case, channel), (PREDICTIONS.labels(use_case, channel),
                                                              PREDICTION_SECONDS.labels(use_case)))
    children[0].inc()
    children[1].observe(seconds)


_answer_children: dict[tuple[str, str], Any] = {}


def declare_answers(use_cases: Iterable[UseCase]) -> None:
    """Every (use case, class) counter at 0 from the start: a model that only ever says one class shows as such."""
    for use_case in use_cases:
        for name in use_case.classes:
            _answer_children.setdefault((use_case.name, name), ANSWERS.labels(use_case.name, name))


def count_answer(use_case: str, predicted: str) -> None:
    child = _answer_children.get((use_case, predicted))
    if child is None:  # resolved once per (use case, class), as observe_prediction does
        child = _answer_children.setdefault((use_case, predicted), ANSWERS.labels(use_case, predicted))
    child.inc()


def count_error(status: int, code: str) -> None:
    REQUEST_ERRORS.labels(str(status), code).inc()


class StackCollector(Collector):
    """Gauges read at scrape time: this worker's loaded models, and the spool backlog and shipper state."""

    def __init__(self, runtime: object, spool_dir: Path) -> None:
        self.runtime = runtime
        self.spool_dir = spool_dir

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        from pronostico.prediction_log.shipper import read_status

        loaded = GaugeMetricFamily("pronostico_model_loaded", "1 for the model version this worker serves",
                                   labels=["use_case", "version"])
        for name, model in self.runtime.store.models.items():  # type: ignore[attr-defined]
            loaded.add_metric([name, model.version], 1)
        yield loaded
        yield from prospective_gauges(self.runtime.store.models)  # type: ignore[attr-defined]
        status = read_status(self.spool_dir)
        yield GaugeMetricFamily("pronostico_spool_backlog_bytes", "Spooled prediction bytes not yet in the database",
                                value=status["backlog_bytes"])
        spool = writer_counters(self.spool_dir)  # host-wide: every worker of the host reports the same figures
        yield CounterMetricFamily("pronostico_spool_lines", "Prediction lines appended to the spool on this host",
                                  value=spool["lines"])
        yield CounterMetricFamily("pronostico_spool_flushes", "fdatasyncs of the spool on this host; each covers "
                                  "every line appended before it began", value=spool["syncs"])
        yield GaugeMetricFamily("pronostico_spool_unflushed_bytes", "Spooled bytes written but not yet flushed to disk",
                                value=spool["unflushed_bytes"])
        up = status.get("database_up")
        yield GaugeMetricFamily("pronostico_log_database_up", "1 when the log shipper last reached the database",
                                value=1 if up else 0)


def prospective_gauges(models: dict[str, ServingModel]) -> Iterator[GaugeMetricFamily]:
    """The loaded models' newest evaluation on data newer than the champion's own: only a scored one counts."""
    labels = ["use_case", "model_version"]
    log_loss = GaugeMetricFamily("pronostico_prospective_log_loss", "Log loss of the champion on the rows newer "
                                 "than its data, at the newest evaluation", labels=labels)
    baseline = GaugeMetricFamily("pronostico_prospective_baseline_log_loss", "Log loss of the best naive baseline "
                                 "on the same rows", labels=labels)
    rows = GaugeMetricFamily("pronostico_prospective_rows", "Rows the newest evaluation scored", labels=labels)
    for name, model in models.items():
        evaluation = model.evaluation
        if not evaluation or evaluation.get("status") != "scored":
            continue
        key = [name, str(evaluation["model_version"])]
        log_loss.add_metric(key, evaluation["model"]["log_loss"])
        best = evaluation.get("best_baseline")
        if best:
            baseline.add_metric(key, evaluation["baselines"][best]["log_loss"])
        rows.add_metric(key, evaluation["rows"])
    yield from (log_loss, baseline, rows)


def exposition(runtime: object, spool_dir: Path) -> bytes:
    registry = CollectorRegistry()
    registry.register(StackCollector(runtime, spool_dir))
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY) + generate_latest(registry)
