"""The assets model trained on the six real files: its artifact, its holdout against the baselines, its answers."""

from __future__ import annotations

import pandas as pd
import pytest

from pronostico.core import storage
from pronostico.core.serving import ServingModel
from tests.fixtures.pipelines import TrainedRun

pytestmark = [pytest.mark.spark, pytest.mark.slow]
SYMBOLS = {"AAPL", "BTC-USD", "ETH-USD", "NVDA", "SOL-USD", "SPY"}


@pytest.fixture(scope="module")
def model(assets_run: TrainedRun) -> ServingModel:
    return ServingModel.load(assets_run.settings.models_uri, "assets", assets_run.version)


def test_every_bar_of_the_six_files_is_used(model: ServingModel) -> None:
    manifest = model.manifest
    assert manifest["rows"]["read"] == manifest["rows"]["kept"] == 3 * 1_910 + 3 * 1_312
    assert len(manifest["inputs"]) == 6
    assert manifest["training_range"]["end"] < manifest["holdout_range"]["start"], "the split is by time"


def test_the_snapshot_knows_each_symbol_as_of_its_last_bar(model: ServingModel, shared_data) -> None:
    assert {e["symbol"] for e in model.entities()} == SYMBOLS
    for entity in model.entities():
        bars = pd.read_csv(shared_data / "assets" / f"{entity['symbol']}.csv")
        assert entity["last_bar"] == bars["date"].iloc[-1]
        assert entity["close"] == pytest.approx(bars["close"].iloc[-1])


def test_baselines_are_scored_on_the_model_s_own_holdout_rows(model: ServingModel) -> None:
    metrics = model.metrics
    assert set(metrics["baselines"]) == {"most_frequent_class", "same_as_last_bar"}
    for baseline in metrics["baselines"].values():
        assert baseline["rows"] == metrics["model"]["rows"] > 1_000
    assert metrics["split"]["method"] == "time"


def test_the_model_is_not_worse_than_guessing_and_shows_no_sign_of_leakage(model: ServingModel) -> None:
    model_loss = model.metrics["model"]["log_loss"]
    prior_loss = model.metrics["baselines"]["most_frequent_class"]["log_loss"]
    assert model_loss < prior_loss + 0.01
    assert model.metrics["model"]["accuracy"] < 0.6, "next-bar direction this predictable means a leak"


def test_each_symbol_gets_a_signal_with_probabilities(model: ServingModel) -> None:
    for symbol in SYMBOLS:
        answer = model.predict({"symbol": symbol.lower()})
        assert answer["symbol"] == symbol
        assert set(answer["probabilities"]) == {"sell", "hold", "buy"}
        assert sum(answer["probabilities"].values()) == pytest.approx(1.0)
        assert answer["signal"] == max(answer["probabilities"], key=answer["probabilities"].get)
        assert answer["as_of"] == model.snapshot.symbols[symbol]["as_of"]


def test_version_files_are_complete(assets_run: TrainedRun) -> None:
    names = {info.uri.rsplit("/", 1)[-1] for info in storage.list_objects(assets_run.version_uri)}
    assert {"manifest.json", "metrics.json", "forest.npz", "features.json", "entities.json"} <= names
