"""Metrics for a model and its baselines on the same rows: the holdout at training time, the rows newer than
a model's data afterwards (the prospective evaluation), and the promotion gate's comparison all use this module."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from pronostico.core.calibration import CalibratedForest
    from pronostico.core.usecases.base import UseCase

EPSILON = 1e-15  # Spark's log-loss evaluator clips probabilities the same way
MIN_FAIR_ROWS = 50  # fewer rows than this make no fair comparison: too small to score
CALIBRATION_BINS = 10


def log_loss(labels: np.ndarray, probabilities: np.ndarray) -> float:
    picked = probabilities[np.arange(len(labels)), labels.astype(int)]
    return float(-np.mean(np.log(np.clip(picked, EPSILON, 1.0))))


def calibration_bins(labels: np.ndarray, probabilities: np.ndarray, classes: Sequence[str],
                     bins: int = CALIBRATION_BINS) -> dict[str, list[dict[str, Any]]]:
    """Per class, the rows grouped by the probability given to that class in equal-width bins over [0, 1]: how
    often the class really came in each bin (observed) beside the mean forecast there (a reliability diagram).

    The bins are half-open, [lower, upper), but the last is closed so a forecast of exactly 1 counts; empty bins are
    left out.
    """
    labels = labels.astype(int)
    edges = np.linspace(0.0, 1.0, bins + 1)
    found: dict[str, list[dict[str, Any]]] = {}
    for index, name in enumerate(classes):
        forecast = probabilities[:, index] if len(labels) else np.empty(0)
        # digitize on the inner edges: below edges[1] is bin 0, from edges[-2] up (1.0 included) the last bin
        placed = np.digitize(forecast, edges[1:-1])
        hits = labels == index
        found[name] = [
            {"lower": float(edges[b]), "upper": float(edges[b + 1]), "rows": int(np.sum(placed == b)),
             "mean_predicted": float(forecast[placed == b].mean()), "observed": float(hits[placed == b].mean())}
            for b in np.unique(placed)]
    return found


def classification_metrics(labels: np.ndarray, probabilities: np.ndarray,
                           classes: Sequence[str]) -> dict[str, Any]:
    """Log loss, accuracy, Brier score, precision / recall / F1 / support per class, and calibration bins."""
    labels = labels.astype(int)
    predicted = probabilities.argmax(axis=1)
    onehot = np.eye(len(classes))[labels]
    per_class = {}
    for index, name in enumerate(classes):
        tp = int(np.sum((predicted == index) & (labels == index)))
        predicted_n = int(np.sum(predicted == index))
        support = int(np.sum(labels == index))
        precision = tp / predicted_n if predicted_n else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {"precision": precision, "recall": recall, "f1": f1, "support": support,
                           "mean_probability": float(probabilities[:, index].mean()) if len(labels) else 0.0}
    return {
        "rows": len(labels),
        "log_loss": log_loss(labels, probabilities) if len(labels) else None,
        "accuracy": float(np.mean(predicted == labels)) if len(labels) else None,
        "brier": float(np.mean(np.sum((probabilities - onehot) ** 2, axis=1))) if len(labels) else None,
        "per_class": per_class,
        "calibration": calibration_bins(labels, probabilities, classes),
    }


def ranked_probability_score(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """RPS over ordered classes: the squared gaps of the cumulative forecast, averaged over rows (0 is perfect)."""
    classes = probabilities.shape[1]
    forecast = np.cumsum(probabilities, axis=1)[:, :-1]
    observed = np.cumsum(np.eye(classes)[labels.astype(int)], axis=1)[:, :-1]
    return float(np.mean(np.sum((forecast - observed) ** 2, axis=1) / (classes - 1)))


def use_case_metrics(use_case: UseCase, labels: np.ndarray, probabilities: np.ndarray) -> dict[str, Any]:
    """`classification_metrics`, plus the RPS where the use case's classes are ordered (win, draw, loss)."""
    metrics = classification_metrics(labels, probabilities, use_case.classes)
    if use_case.ordered_classes:
        metrics["rps"] = ranked_probability_score(labels, probabilities) if len(labels) else None
    return metrics


def best_baseline(baselines: dict[str, dict[str, Any]]) -> str | None:
    scored = {name: b["log_loss"] for name, b in baselines.items() if b.get("log_loss") is not None}
    return min(scored, key=scored.__getitem__) if scored else None


def naive_baselines(use_case: UseCase, baselines: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The naive rules among `baselines`: what says whether a model is a signal at all (strong ones never gate)."""
    return {name: b for name, b in baselines.items() if name not in use_case.strong_baselines}


def compare_to_baselines(model: dict[str, Any], baselines: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """How the model's log loss stands against each baseline's (negative is better)."""
    return {
        name: {"log_loss_delta": model["log_loss"] - b["log_loss"],
               "beats_baseline": model["log_loss"] < b["log_loss"]}
        for name, b in baselines.items()
    }


def served_probabilities(use_case: UseCase, forest: CalibratedForest, frame: pd.DataFrame,
                         features: list[str] | None = None) -> tuple[pd.DataFrame, np.ndarray]:
    """What the web tier would answer for each original row of `frame` (mirrors folded in)."""
    columns = features or list(use_case.feature_names)
    probabilities = forest.predict_proba(frame[columns].to_numpy()) if len(frame) \
        else np.empty((0, len(use_case.classes)))
    return use_case.fold_mirrors(frame, probabilities)


def rows_after(frame: pd.DataFrame, after: str) -> pd.DataFrame:
    """The rows dated after `after`: what a model whose data ended then has never seen."""
    return frame[frame["date"] > after].reset_index(drop=True)


def answers_after(use_case: UseCase, forest: CalibratedForest, features: list[str], frame: pd.DataFrame,
                  after: str) -> tuple[pd.DataFrame, np.ndarray]:
    """The original rows newer than `after`, and what the model would answer for each."""
    return served_probabilities(use_case, forest, rows_after(frame, after), features)


def too_small(rows: int) -> bool:
    return rows < MIN_FAIR_ROWS


def score_window(use_case: UseCase, rows: pd.DataFrame, probabilities: np.ndarray,
                 fit_rows: pd.DataFrame) -> dict[str, Any]:
    """The model's answers on a window against the baselines fit on `fit_rows` (what the model knew)."""
    labels = rows["label"].to_numpy().astype(int)
    model = use_case_metrics(use_case, labels, probabilities)
    baselines = {name: use_case_metrics(use_case, labels, p)
                 for name, p in use_case.baselines(use_case.original_rows(fit_rows), rows).items()}
    return {"model": model, "baselines": baselines, "best_baseline": best_baseline(baselines),
            "versus_baselines": compare_to_baselines(model, baselines)}
