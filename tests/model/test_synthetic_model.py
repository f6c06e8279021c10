"""The demo's fallback: with no shared data, the synthetic files train a model that beats its baselines."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pronostico.core import evaluate, storage
from pronostico.core.config import load_settings
from pronostico.core.usecases.matchups import MATCHUPS
from pronostico.local.synthetic import synthetic_matches
from pronostico.pipeline.steps import run_locally

pytestmark = [pytest.mark.spark, pytest.mark.slow]
QUICK = '{"num_trees": 30, "max_depth": [5], "min_instances_per_node": [20], "folds": 2}'


def test_synthetic_matches_train_a_model_that_beats_the_baselines(tmp_path: Path) -> None:
    settings = load_settings({**os.environ, "PRONOSTICO_HOME": str(tmp_path / "home")})
    path = tmp_path / "synthetic_matches.csv"
    synthetic_matches(8_000, seed=5).to_csv(path, index=False)
    outcome = run_locally(settings, "matchups", [storage.to_uri(path)], "synthetic", QUICK, progress=lambda _: None)
    assert outcome["decision"].promoted
    metrics = storage.read_json(storage.join(settings.models_uri, "matchups", "versions",
                                             outcome["decision"].candidate, "metrics.json"))
    naive = evaluate.naive_baselines(MATCHUPS, metrics["baselines"])  # the strong ones report, never gate
    assert naive.keys() == {"class_prior", "better_ranked_wins"}
    for name, baseline in naive.items():
        assert metrics["model"]["log_loss"] < baseline["log_loss"], name
