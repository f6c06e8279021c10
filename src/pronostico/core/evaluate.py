"""Metrics for a model and its naive baselines on the same rows: the holdout at training time, the rows newer than
a model's data afterwards (the prospective evaluation), and the promotion gate's comparison all use this module."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from pronostico.core.forest import Forest
    from pronostico.core.usecases.base import UseCase

EPSILON = 1e-15  # Spark's log-loss evaluator clips probabilities the same way
MIN_FAIR_ROWS = 50  # fewer rows than this make no fair comparison: too small to score


def log_loss(labels: np.ndarray, probabilities: np.ndarray) -> float:
    picked = probabilities[np.arange(len(labels)), labels.astype(int)]
    return float(-np.mean(np.log(np.clip(picked, EPSILON, 1.0))))


def classification_metrics(labels: np.ndarray, probabilities: np.ndarray,
                           classes: Sequence[str]) -> dict[str, Any]:
    """Log loss, accuracy, Brier score and precision / recall / F1 / support per class."""
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


def compare_to_baselines(model: dict[str, Any], baselines: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """How the model's log loss stands against each baseline's (negative is better)."""
    return {
        name: {"log_loss_delta": model["log_loss"] - b["log_loss"],
               "beats_baseline": model["log_loss"] < b["log_loss"]}
        for name, b in baselines.items()
    }


def served_probabilities(use_case: UseCase, forest: Forest, frame: pd.DataFrame,
                         features: list[str] | None = None) -> tuple[pd.DataFrame, np.ndarray]:
    """What the web tier would answer for each original row of `frame` (mirrors folded in)."""
    columns = features or list(use_case.feature_names)
    probabilities = forest.predict_proba(frame[columns].to_numpy()) if len(frame) \
        else np.empty((0, len(use_case.classes)))
    return use_case.fold_mirrors(frame, probabilities)


def rows_after(frame: pd.DataFrame, after: str) -> pd.DataFrame:
    """The rows dated after `after`: what a model whose data ended then has never seen."""
    return frame[frame["date"] > after].reset_index(drop=True)


def answers_after(use_case: UseCase, forest: Forest, features: list[str], frame: pd.DataFrame,
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
