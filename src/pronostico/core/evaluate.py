"""Holdout metrics for a model and its naive baselines, computed on the same rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from pronostico.core.forest import Forest
    from pronostico.core.usecases.base import UseCase

EPSILON = 1e-15  # Spark's log-loss evaluator clips probabilities the same way


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
