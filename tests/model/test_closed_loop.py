"""The loop on the real asset files, fed in three drops: fresh state, prospective evaluations, backtests and the
events that resolve logged predictions (asset_history_runs, then assets_run, in one registry)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pronostico.core import layout, registry, storage
from pronostico.core.evaluate import MIN_FAIR_ROWS
from pronostico.core.serving import load_current
from tests.fixtures.pipelines import TrainedRun

SYMBOLS = {"AAPL", "BTC-USD", "ETH-USD", "NVDA", "SOL-USD", "SPY"}


def newest_bar(shared_data: Path) -> str:
    return max(pd.read_csv(path)["date"].max() for path in (shared_data / "assets").glob("*.csv"))


def test_each_run_but_the_first_scores_the_champion_on_bars_it_never_saw(
        asset_history_runs: list[TrainedRun], assets_run: TrainedRun) -> None:
    models = assets_run.settings.models_uri
    evaluations = registry.list_evaluations(models, "assets")
    assert [e["run_id"] for e in evaluations] == ["test-assets-drop-2", "test-assets"]
    for evaluation in evaluations:
        champion = registry.load_version(models, "assets", evaluation["model_version"])
        seen_until = champion.manifest["holdout_range"]["end"]
        assert evaluation["window"]["after"] == seen_until < evaluation["window"]["start"]
        assert evaluation["status"] == "scored" and evaluation["rows"] >= MIN_FAIR_ROWS
        assert evaluation["model"]["rows"] == evaluation["rows"]
        assert {b["rows"] for b in evaluation["baselines"].values()} == {evaluation["rows"]}  # the same rows
        assert evaluation["best_baseline"] in evaluation["baselines"]
        assert set(evaluation["backtest"]["symbols"]) == SYMBOLS
    first_champion = asset_history_runs[0].version
    assert evaluations[0]["model_version"] == first_champion
    assert evaluations[-1]["rows"] > evaluations[0]["rows"] or evaluations[-1]["model_version"] != first_champion


def test_the_serving_state_is_current_whichever_forest_serves(assets_run: TrainedRun, shared_data: Path) -> None:
    served = load_current(assets_run.settings.models_uri, "assets")
    assert served.state_version == assets_run.version  # the newest run's state, promoted or not
    assert served.state_as_of == newest_bar(shared_data)
    for symbol in SYMBOLS:
        assert served.predict({"symbol": symbol})["as_of"] == newest_bar(shared_data)


def test_the_holdout_backtest_is_kept_with_the_version(assets_run: TrainedRun) -> None:
    backtest = storage.read_json(storage.join(assets_run.version_uri, layout.BACKTEST))
    metrics = storage.read_json(storage.join(assets_run.version_uri, layout.METRICS))
    assert set(backtest["symbols"]) == SYMBOLS and backtest["cost_bps"] == 10.0
    periods = {symbol: figures["periods_per_year"] for symbol, figures in backtest["symbols"].items()}
    assert periods == {"AAPL": 252, "NVDA": 252, "SPY": 252, "BTC-USD": 365, "ETH-USD": 365, "SOL-USD": 365}
    assert len(backtest["curves"]["BTC-USD"]["dates"]) == backtest["symbols"]["BTC-USD"]["bars"]
    assert metrics["backtest"]["pooled"] == backtest["pooled"] and "curves" not in metrics["backtest"]
    assert backtest["bars"] == metrics["split"]["holdout_rows"]


def test_the_events_resolve_each_bar_by_the_next_one(assets_run: TrainedRun, shared_data: Path) -> None:
    document = storage.read_json(layout.observed_events_uri(assets_run.settings.models_uri, "assets"))
    assert document["run_id"] == assets_run.run_id
    events = pd.DataFrame(document["events"])
    assert set(events["subject_a"]) == SYMBOLS and set(events["subject_b"]) == {""}
    assert events["event_date"].max() == newest_bar(shared_data)
    assert (events["earliest_as_of"] < events["event_date"]).all()
    spy = events[events["subject_a"] == "SPY"].sort_values("event_date")
    assert (spy["earliest_as_of"].iloc[1:].to_numpy() == spy["event_date"].iloc[:-1].to_numpy()).all()
    assert set(events["outcome"]) == {"sell", "hold", "buy"}


def test_a_prediction_made_between_drops_is_resolved_by_the_next_bar(
        asset_history_runs: list[TrainedRun], assets_run: TrainedRun, shared_data: Path, tmp_path: Path) -> None:
    import sqlalchemy as sa

    from pronostico.prediction_log import db
    from pronostico.prediction_log.schema import insert_rows, log_line, row_from_line
    from pronostico.prediction_log.shipper import EventsLoader

    first = registry.load_version(assets_run.settings.models_uri, "assets", asset_history_runs[0].version)
    as_of = first.manifest["entities"]["as_of"]  # what the first champion answered from, before the next drop
    answer = {**load_current(assets_run.settings.models_uri, "assets").predict({"symbol": "SPY"}), "as_of": as_of}
    url = f"sqlite:///{tmp_path / 'log.db'}"
    db.upgrade(url)
    engine = db.create_engine(url)
    try:
        with engine.begin() as connection:
            insert_rows(connection, [row_from_line(log_line("assets", "api", answer, 1.0))])
        EventsLoader(engine, assets_run.settings.models_uri, ("assets",)).load()
        with engine.connect() as connection:
            (row,) = connection.execute(sa.text("SELECT observed, event_date, hit FROM prediction_live_results")).all()
    finally:
        engine.dispose()
    spy = pd.read_csv(shared_data / "assets" / "SPY.csv")
    assert str(row.event_date)[:10] == spy.loc[spy["date"] > as_of, "date"].min()  # the very next bar
    assert row.observed in ("sell", "hold", "buy") and row.hit == int(row.observed == answer["signal"])
