"""The temperature that tempers a forest's answers: fitted where it helps, neutral where it does not."""

from __future__ import annotations

import numpy as np
import pytest

from pronostico.core.calibration import CalibratedForest, calibrated, fit_temperature, temper


def draws(rows: int, sharpness: float, seed: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from true probabilities, and those probabilities flattened by `sharpness` (< 1: too timid)."""
    rng = np.random.default_rng(seed)
    truth = rng.dirichlet([1.0, 1.0, 1.0], size=rows)
    labels = np.array([rng.choice(3, p=p) for p in truth])
    return labels, temper(truth, 1 / sharpness)


def test_a_timid_forecast_is_sharpened_back_to_the_truth() -> None:
    labels, timid = draws(6_000, sharpness=0.5)
    temperature = fit_temperature(labels, lambda t: temper(timid, t))
    assert temperature == pytest.approx(0.5, abs=0.06)
    assert temperature < 1.0


def test_a_calibrated_forecast_keeps_a_temperature_near_one() -> None:
    labels, honest = draws(6_000, sharpness=1.0)
    assert fit_temperature(labels, lambda t: temper(honest, t)) == pytest.approx(1.0, abs=0.08)


def test_tempering_keeps_rows_summing_to_one_and_commutes_with_swapping_classes() -> None:
    p = np.array([[0.6, 0.3, 0.1], [0.0, 0.2, 0.8]])
    tempered = temper(p, 0.7)
    np.testing.assert_allclose(tempered.sum(axis=1), 1.0)
    np.testing.assert_array_equal(temper(p[:, ::-1], 0.7), tempered[:, ::-1])
    assert np.all(tempered > 0)  # a class no leaf saw keeps a sliver
    assert temper(p, 1.0) is p


def test_a_version_without_calibration_answers_untempered() -> None:
    class Constant:
        def predict_proba(self, rows: np.ndarray) -> np.ndarray:
            return np.tile([0.5, 0.3, 0.2], (len(rows), 1))

    forest = Constant()
    assert calibrated(forest, {}).temperature == 1.0  # type: ignore[arg-type]
    cooled = CalibratedForest(forest, 0.5).predict_proba(np.zeros((1, 2)))  # type: ignore[arg-type]
    np.testing.assert_allclose(cooled, [[25 / 38, 9 / 38, 4 / 38]])
