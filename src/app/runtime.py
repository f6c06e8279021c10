"""What one app process holds: its ModelStore, its spool writer, and the answer-and-log path every channel shares.

The request path is kept lean because a sync worker's Python CPU is what limits logged predictions per second
(docs/BENCHMARKS.md, "Serving", measures them against /healthz under load): no database round trip, one JSON line
appended to the host's spool (flushed before the answer or within milliseconds after, per PRONOSTICO_SPOOL_SYNC),
and what only changes with the model (the GET endpoints' JSON, the pickers' options) built once per model version.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import msgspec
from flask import Flask, Response, current_app

from app import metrics
from pronostico.core.evaluate import best_baseline, naive_baselines
from pronostico.core.serving import ModelStore, ServingModel
from pronostico.core.usecases import USE_CASES
from pronostico.prediction_log.schema import check_use_cases, log_line
from pronostico.prediction_log.spool import SpoolWriter

EXTENSION = "pronostico"
T = TypeVar("T")
MARGINAL_GAIN = 0.01  # a log-loss gain under 1 % of the best baseline's is called no real edge


@dataclass
class Runtime:
    store: ModelStore
    spool: SpoolWriter
    _per_model: dict[tuple[str, str, str], Any] = field(default_factory=dict)
    _per_model_lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def attach(cls, app: Flask) -> Runtime:
        check_use_cases(USE_CASES.values())
        metrics.declare_answers(USE_CASES.values())
        store = ModelStore(app.config["MODELS_URI"], tuple(USE_CASES))
        store.refresh()
        if app.config["MODEL_POLL_SECONDS"] > 0:
            store.start_polling(float(app.config["MODEL_POLL_SECONDS"]))
        spool = SpoolWriter(Path(app.config["SPOOL_DIR"]), int(app.config["SPOOL_SEGMENT_BYTES"]),
                            app.config["SPOOL_SYNC"], float(app.config["SPOOL_SYNC_SECONDS"]))
        runtime = cls(store, spool)
        app.extensions[EXTENSION] = runtime
        return runtime

    def model(self, use_case: str) -> ServingModel:
        if use_case not in USE_CASES:
            raise UnknownUseCase(use_case)
        return self.store.get(use_case)

    def answer_and_log(self, use_case: str, payload: Mapping[str, Any], channel: str) -> dict[str, Any]:
        """Answer a prediction and spool its log row; raises RequestError, NoModel or SpoolUnavailable."""
        started = time.perf_counter()
        model = self.model(use_case)  # one model for the whole request, even if a swap lands meanwhile
        answer = model.predict(payload)
        latency_ms = (time.perf_counter() - started) * 1000.0
        self.spool.append(log_line(use_case, channel, answer, latency_ms))
        metrics.observe_prediction(use_case, channel, time.perf_counter() - started)
        metrics.count_answer(use_case, answer[model.use_case.answer_class_field])
        return answer

    def per_model(self, name: str, model: ServingModel, build: Callable[[], T]) -> T:
        """A value that only changes when the model does, built once per version (the old version's is dropped)."""
        key = (name, model.use_case.name, model.version)
        value = self._per_model.get(key)
        if value is None:
            value = build()
            with self._per_model_lock:
                self._per_model = {k: v for k, v in self._per_model.items() if k[:2] != key[:2]}
                self._per_model[key] = value
        return value

    def cached_json(self, name: str, model: ServingModel, build: Callable[[], Any]) -> bytes:
        """JSON of a GET answer that only changes when the model does, serialised once per version."""
        return self.per_model(name, model, lambda: dumps(build()))


class UnknownUseCase(LookupError):
    pass


def runtime() -> Runtime:
    return current_app.extensions[EXTENSION]


ENCODER = msgspec.json.Encoder(enc_hook=str)  # compact, like json.dumps with separators=(",", ":")


def dumps(value: Any) -> bytes:
    return ENCODER.encode(value)


def json_response(value: Any, status: int = 200, *, raw: bytes | None = None) -> Response:
    return current_app.response_class(raw if raw is not None else dumps(value), status=status,
                                      mimetype="application/json")


def model_quality(model: ServingModel) -> dict[str, Any]:
    """The model's holdout quality beside its best naive baseline, with a plain verdict for the page, and beside
    the best baseline of all (a strong one, a real model, where it beats the naive rules).

    The verdict is against the naive rules only: it answers "is this a signal at all"; a strong baseline ahead of
    the model says there is a better model, not that this one is noise.
    """
    scores = model.metrics["model"]
    baselines = model.metrics["baselines"]
    labels = model.use_case.presentation.baseline_labels
    naive = best_baseline(naive_baselines(model.use_case, baselines)) or best_baseline(baselines)
    best = best_baseline(baselines) or naive
    gain = (baselines[naive]["log_loss"] - scores["log_loss"]) / baselines[naive]["log_loss"]
    verdict = "beats" if gain >= MARGINAL_GAIN else ("marginal" if gain > 0 else "none")
    split = model.metrics.get("split", {})
    return {
        "log_loss": scores["log_loss"], "accuracy": scores["accuracy"],
        "baseline": naive, "baseline_label": labels.get(naive, naive),
        "baseline_log_loss": baselines[naive]["log_loss"], "baseline_accuracy": baselines[naive]["accuracy"],
        "log_loss_gain": gain, "verdict": verdict,
        "best_baseline": best, "best_baseline_label": labels.get(best, best),
        "best_baseline_strong": best in model.use_case.strong_baselines,
        "best_baseline_log_loss": baselines[best]["log_loss"], "best_baseline_accuracy": baselines[best]["accuracy"],
        "beats_best_baseline": scores["log_loss"] < baselines[best]["log_loss"],
        "holdout_rows": split.get("holdout_rows"), "holdout_start": split.get("holdout_start"),
        "holdout_end": split.get("holdout_end"),
    }


def model_summary(model: ServingModel) -> dict[str, Any]:
    return {**model.summary(), "use_case": model.use_case.name, "classes": list(model.use_case.classes),
            "quality": model_quality(model)}
