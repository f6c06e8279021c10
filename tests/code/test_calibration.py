"""Calibration bins: counts, a calibrated forecast against a shifted one, the closed last bin, and naive baselines."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest

from pronostico.core import evaluate
from pronostico.core.evaluate import calibration_bins, classification_metrics
from pronostico.core.usecases.base import UseCase

CLASSES = ("up", "down")


def calibrated_sample(rows: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Two classes whose 'up' probability is drawn uniformly and whose label is drawn with exactly that chance."""
    rng = np.random.default_rng(seed)
    up = rng.uniform(0.0, 1.0, rows)
    labels = np.where(rng.uniform(0.0, 1.0, rows) < up, 0, 1)
    return labels, np.column_stack([up, 1.0 - up])


def test_bin_rows_add_up_to_the_rows_for_every_class():
    labels, probabilities = calibrated_sample(2_000)
    found = calibration_bins(labels, probabilities, CLASSES)
    assert found.keys() == set(CLASSES)
    for name in CLASSES:
        assert sum(b["rows"] for b in found[name]) == 2_000
        assert all(b["rows"] > 0 for b in found[name])
        assert [b["lower"] for b in found[name]] == pytest.approx([i / 10 for i in range(10)])
        assert all(b["lower"] <= b["mean_predicted"] <= b["upper"] for b in found[name])


def test_a_calibrated_forecast_observes_what_it_predicts():
    labels, probabilities = calibrated_sample(40_000)
    for name in CLASSES:
        for b in calibration_bins(labels, probabilities, CLASSES)[name]:
            assert b["observed"] == pytest.approx(b["mean_predicted"], abs=0.03)


def test_a_shifted_forecast_shows_the_gap():
    labels, probabilities = calibrated_sample(40_000)
    shift = 0.15  # the forecast says 'up' 0.15 more often than it comes, clipped into [0, 1]
    up = np.clip(probabilities[:, 0] + shift, 0.0, 1.0)
    found = calibration_bins(labels, np.column_stack([up, 1.0 - up]), CLASSES)
    middle = [b for b in found["up"] if 0.3 <= b["lower"] < 0.9]  # away from the clipped ends
    assert middle
    for b in middle:
        assert b["mean_predicted"] - b["observed"] == pytest.approx(shift, abs=0.03)
    for b in [b for b in found["down"] if 0.1 <= b["lower"] < 0.7]:
        assert b["observed"] - b["mean_predicted"] == pytest.approx(shift, abs=0.03)


def test_a_forecast_of_exactly_one_lands_in_the_last_bin():
    labels = np.array([0, 0, 1, 0])
    probabilities = np.array([[1.0, 0.0], [0.9, 0.1], [0.05, 0.95], [0.1, 0.9]])
    found = calibration_bins(labels, probabilities, CLASSES)
    last = found["up"][-1]
    assert (last["lower"], last["upper"], last["rows"]) == (pytest.approx(0.9), 1.0, 2)
    assert last["mean_predicted"] == pytest.approx(0.95) and last["observed"] == 1.0
    # 0.1 opens the second bin (not the first), 0.9 the last; the empty bins between are left out
    assert [(b["lower"], b["rows"]) for b in found["down"]] == [(0.0, 1), (pytest.approx(0.1), 1),
                                                                (pytest.approx(0.9), 2)]
    assert found["down"][-1]["observed"] == pytest.approx(0.5)


def test_the_bin_count_follows_bins():
    labels, probabilities = calibrated_sample(1_000)
    found = calibration_bins(labels, probabilities, CLASSES, bins=4)
    assert [b["upper"] for b in found["up"]] == [0.25, 0.5, 0.75, 1.0]


def test_classification_metrics_carry_the_bins_and_none_for_zero_rows():
    labels, probabilities = calibrated_sample(500)
    metrics = classification_metrics(labels, probabilities, CLASSES)
    assert metrics["calibration"] == calibration_bins(labels, probabilities, CLASSES)
    empty = classification_metrics(np.empty(0), np.empty((0, 2)), CLASSES)
    assert empty["calibration"] == {"up": [], "down": []}


class Strong(UseCase):
    strong_baselines: ClassVar[tuple[str, ...]] = ("rated_model",)


def test_naive_baselines_leave_the_strong_ones_out():
    baselines = {"class_prior": {"log_loss": 1.0}, "rated_model": {"log_loss": 0.9}, "home_win": {"log_loss": 1.2}}
    assert evaluate.naive_baselines(Strong(), baselines).keys() == {"class_prior", "home_win"}
    assert evaluate.naive_baselines(UseCase(), baselines) == baselines
