"""Assets: the volatility-scaled label, features that know only the past, request parsing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pronostico.core.usecases.assets import (
    ASSETS,
    BUY,
    FEATURES,
    HOLD,
    LABEL_SIGMAS,
    SELL,
    WARMUP_BARS,
    label_returns,
    rsi,
    symbol_features,
)
from pronostico.core.usecases.base import RequestError


def bars(n: int = 120, symbol: str = "TEST", seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
    return pd.DataFrame({"date": pd.date_range("2024-01-01", periods=n).strftime("%Y-%m-%d"),
                         "symbol": symbol, "open": close, "high": close * 1.01, "low": close * 0.99,
                         "close": close, "volume": rng.integers(1_000, 2_000, n).astype(float)})


def test_label_buckets_the_next_return_by_scaled_volatility() -> None:
    vol = pd.Series([0.02, 0.02, 0.02, 0.02])
    nxt = pd.Series([0.0201 * LABEL_SIGMAS, -0.0201 * LABEL_SIGMAS, 0.0, np.nan])
    labels = label_returns(nxt, vol)
    assert labels.iloc[:3].tolist() == [BUY, SELL, HOLD]
    assert np.isnan(labels.iloc[3])  # the last bar has no next bar: no label


def test_rsi_is_bounded_and_extreme_on_one_way_markets() -> None:
    rising = pd.Series(np.arange(1, 60, dtype=float))
    assert rsi(rising).dropna().eq(100.0).all()
    values = rsi(bars()["close"]).dropna()
    assert values.between(0, 100).all()


def test_features_at_a_bar_ignore_every_later_bar() -> None:
    full = symbol_features(bars())
    cut = symbol_features(bars().iloc[:80])
    features = list(FEATURES)
    np.testing.assert_allclose(full.loc[:79, features].to_numpy(), cut.loc[:79, features].to_numpy())


def test_warmup_and_last_bar_are_not_training_rows() -> None:
    frame = symbol_features(bars())
    assert frame["eligible"].iloc[:WARMUP_BARS].eq(0).all()
    assert frame["eligible"].iloc[-1] == 0 and np.isnan(frame["label"].iloc[-1])
    assert frame["eligible"].iloc[WARMUP_BARS:-1].eq(1).all()


def test_snapshot_holds_each_symbols_last_bar_features() -> None:
    data = pd.concat([bars(symbol="AAA"), bars(symbol="BBB", seed=2), bars(n=20, symbol="NEW")])
    snapshot = ASSETS.entity_snapshot(data)
    assert set(snapshot["symbols"]) == {"AAA", "BBB"}  # 20 bars are too few to describe NEW
    assert snapshot["symbols"]["AAA"]["as_of"] == bars()["date"].iloc[-1]
    expected = symbol_features(bars(symbol="AAA")).iloc[-1]
    assert snapshot["symbols"]["AAA"]["features"]["rsi_14"] == pytest.approx(expected["rsi_14"])


def test_requests_match_symbols_case_insensitively_and_name_the_field() -> None:
    book = ASSETS.load_snapshot(ASSETS.entity_snapshot(bars(symbol="BTC-USD")))
    assert ASSETS.parse_request({"symbol": " btc-usd "}, book).symbol == "BTC-USD"
    cases = (({}, "missing_field"), ({"symbol": 5}, "invalid_type"), ({"symbol": "DOGE"}, "unknown_symbol"))
    for payload, code in cases:
        with pytest.raises(RequestError) as caught:
            ASSETS.parse_request(payload, book)
        assert (caught.value.code, caught.value.field) == (code, "symbol")
    with pytest.raises(RequestError, match="BTC-USD"):
        ASSETS.parse_request({"symbol": "DOGE"}, book)


def test_baselines_use_training_frequencies() -> None:
    train = pd.DataFrame({"label": [BUY, BUY, BUY, SELL], "prev_label": [BUY, BUY, SELL, BUY]})
    holdout = pd.DataFrame({"label": [BUY, SELL], "prev_label": [SELL, BUY]})
    baselines = ASSETS.baselines(train, holdout)
    assert baselines["most_frequent_class"][0].argmax() == BUY
    np.testing.assert_allclose(baselines["same_as_last_bar"].sum(axis=1), 1.0)
    assert baselines["same_as_last_bar"][0].argmax() == BUY  # after SELL, train saw BUY
