"""Temperature calibration of a forest's probabilities, fitted in training and applied wherever the forest answers.

A random forest averages its trees, which pulls its probabilities towards the middle. One temperature T reshapes
them: p_i ** (1 / T), renormalised. It is fitted on the last time block before the holdout, scored by the forest
that the cross-validation trained on the blocks before it, so it never sees a holdout row or a row its forest
learned from. One parameter treats every class alike, which keeps the neutral-venue symmetry exact: tempering
commutes with swapping the classes. A version whose manifest records no calibration answers untempered (T = 1).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from pronostico.core import layout, storage
from pronostico.core.evaluate import log_loss
from pronostico.core.forest import Forest

FLOOR = 1e-6  # a class no leaf saw keeps a sliver of probability, so that tempering stays finite
BOUNDS = (0.25, 4.0)
MIN_ROWS = 200  # fewer rows than this fit nothing: the version answers untempered


def temper(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """Each row (or one vector) raised to 1 / temperature and renormalised; T = 1 leaves it as it was."""
    if temperature == 1.0:
        return probabilities
    powered = np.maximum(probabilities, FLOOR) ** (1.0 / temperature)
    return powered / powered.sum(axis=-1, keepdims=True)


def fit_temperature(labels: np.ndarray, answer: Callable[[float], np.ndarray]) -> float:
    """The temperature that minimises the log loss of `answer(T)` (what would be served at T) on `labels`.

    A golden-section search on log T: the loss is smooth and single-welled in T.
    """
    def loss(log_t: float) -> float:
        return log_loss(labels, answer(math.exp(log_t)))

    low, high = math.log(BOUNDS[0]), math.log(BOUNDS[1])
    ratio = (math.sqrt(5) - 1) / 2
    a, b = high - ratio * (high - low), low + ratio * (high - low)
    fa, fb = loss(a), loss(b)
    for _ in range(40):
        if fa < fb:
            high, b, fb = b, a, fa
            a = high - ratio * (high - low)
            fa = loss(a)
        else:
            low, a, fa = a, b, fb
            b = low + ratio * (high - low)
            fb = loss(b)
    best = (low + high) / 2
    return round(math.exp(best), 4) if loss(best) < loss(0.0) else 1.0


@dataclass(frozen=True)
class CalibratedForest:
    """The forest as every consumer sees it: its probabilities, tempered by the version's temperature."""

    forest: Forest
    temperature: float = 1.0

    def predict_proba(self, rows: np.ndarray) -> np.ndarray:
        return temper(self.forest.predict_proba(rows), self.temperature)


def calibrated(forest: Forest, manifest: dict[str, Any]) -> CalibratedForest:
    """The version's forest with the temperature its manifest records (none recorded: untempered)."""
    return CalibratedForest(forest, float((manifest.get("calibration") or {}).get("temperature", 1.0)))


def load_forest(uri: str, manifest: dict[str, Any]) -> CalibratedForest:
    """The forest of the version at `uri`, as it answers: tempered by what its manifest records."""
    return calibrated(Forest.from_bytes(storage.read_bytes(storage.join(uri, layout.FOREST))), manifest)
