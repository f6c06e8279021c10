"""Assets: daily OHLCV bars, a sell / hold / buy signal for the next bar.

Label rule: with r = log(close[t+1] / close[t]) the next bar's log return and sigma the
20-bar standard deviation of daily log returns at t (known at t), the label at t is
buy if r > LABEL_SIGMAS * sigma, sell if r < -LABEL_SIGMAS * sigma, and hold otherwise.
Scaling by each asset's own recent volatility keeps the classes balanced across a quiet
index fund and a volatile coin. Features at t use bars up to t only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from pronostico.core.usecases.base import (
    ColumnSpec,
    InputField,
    Presentation,
    RawSchema,
    RequestError,
    TopList,
    UseCase,
    class_distribution,
    closest,
    conditional_distribution,
)

CLASSES = ("sell", "hold", "buy")
SELL, HOLD, BUY = 0, 1, 2
LABEL_SIGMAS = 0.5
WARMUP_BARS = 50  # the longest window below

FEATURES = (
    "ret_1", "ret_5", "ret_20", "vol_5", "vol_20", "vol_ratio",
    "ma_ratio_10", "ma_ratio_50", "rsi_14", "volume_ratio_20", "range_pct",
)


# next_date and next_return describe the bar a row's label is about: never features, only for events and backtests
FRAME_EXTRAS = {"date": "string", "symbol": "string", "close": "double", "label": "double",
                "prev_label": "double", "eligible": "int", "next_date": "string", "next_return": "double"}


def rsi(close: pd.Series, window: int = 14) -> pd.Series:
    """Wilder's relative strength index, 0..100."""
    change = close.diff()
    gain = change.clip(lower=0).ewm(alpha=1 / window, adjust=False, min_periods=window).mean()
    loss = (-change.clip(upper=0)).ewm(alpha=1 / window, adjust=False, min_periods=window).mean()
    strength = gain / loss.replace(0.0, np.nan)
    return (100.0 - 100.0 / (1.0 + strength)).fillna(100.0).where(gain.notna())


def symbol_features(bars: pd.DataFrame) -> pd.DataFrame:
    """Features and labels for one symbol's bars, sorted by date."""
    bars = bars.sort_values("date").reset_index(drop=True)
    close = bars["close"].astype(float)
    logret = np.log(close / close.shift(1))
    volume_mean = bars["volume"].astype(float).rolling(20).mean()
    out = pd.DataFrame({
        "ret_1": logret,
        "ret_5": np.log(close / close.shift(5)),
        "ret_20": np.log(close / close.shift(20)),
        "vol_5": logret.rolling(5).std(),
        "vol_20": logret.rolling(20).std(),
        "ma_ratio_10": close / close.rolling(10).mean() - 1.0,
        "ma_ratio_50": close / close.rolling(50).mean() - 1.0,
        "rsi_14": rsi(close),
        "volume_ratio_20": (bars["volume"].astype(float) / volume_mean.where(volume_mean > 0)).fillna(1.0),
        "range_pct": (bars["high"] - bars["low"]) / close,
    })
    out["vol_ratio"] = (out["vol_5"] / out["vol_20"].where(out["vol_20"] > 0)).fillna(1.0)
    out["date"] = bars["date"].astype(str).str[:10]
    out["symbol"] = bars["symbol"]
    out["close"] = close
    next_return = np.log(close.shift(-1) / close)
    out["label"] = label_returns(next_return, out["vol_20"])
    out["next_date"] = out["date"].shift(-1).fillna("")
    out["next_return"] = close.shift(-1) / close - 1.0
    out["prev_label"] = out["label"].shift(1)
    warm = out.index >= WARMUP_BARS
    out["eligible"] = (warm & out["label"].notna() & out["prev_label"].notna()).astype(int)
    return out[[*FEATURES, *FRAME_EXTRAS]]


def label_returns(next_return: pd.Series, volatility: pd.Series) -> pd.Series:
    threshold = LABEL_SIGMAS * volatility
    label = np.where(next_return > threshold, BUY, np.where(next_return < -threshold, SELL, HOLD))
    return pd.Series(label, index=next_return.index, dtype="float64").where(
        next_return.notna() & volatility.notna())


@dataclass(frozen=True)
class AssetRequest:
    symbol: str


@dataclass(frozen=True)
class SymbolBook:
    as_of: str
    symbols: dict[str, dict[str, Any]]  # symbol -> {"as_of", "close", "vector"}
    by_lower: dict[str, str]

    @classmethod
    def from_snapshot(cls, snapshot: Mapping[str, Any]) -> SymbolBook:
        symbols = {
            sym: {**entry, "vector": np.array([entry["features"][f] for f in FEATURES], dtype=np.float64)}
            for sym, entry in snapshot["symbols"].items()
        }
        return cls(snapshot["as_of"], symbols, {s.lower(): s for s in symbols})


class Assets(UseCase):
    name = "assets"
    dataset = "bars"
    classes = CLASSES
    entity_kind = "symbol"
    entities_key = "symbols"
    frame_extras = FRAME_EXTRAS
    history_group = "symbol"
    key_columns = ("symbol", "date")
    partition_column = "symbol_part"
    partition_expr = "regexp_replace(symbol, '[^A-Za-z0-9._-]', '_')"
    entity_columns = ("symbol",)
    feature_names = FEATURES
    canonical_types = MappingProxyType({
        "date": "date", "symbol": "string", "open": "double", "high": "double", "low": "double",
        "close": "double", "volume": "double", "source": "string", "symbol_part": "string",
    })
    input_fields = (InputField("symbol", "entity", "Symbol"),)
    display_order = 2
    entity_key = "symbol"
    answer_fields = MappingProxyType({
        "symbol": {"type": "string"}, "as_of": {"type": "string", "format": "date"},
        "signal": {"type": "string", "enum": list(CLASSES)},
    })
    answer_class_field = "signal"
    log_columns = ("symbol", "as_of")
    presentation = Presentation(
        title="Asset", icon="chart.svg", submit="Get the signal", as_of_label="bars up to", holdout_unit="bars",
        class_labels=MappingProxyType({"sell": "Sell", "hold": "Hold", "buy": "Buy"}),
        baseline_labels=MappingProxyType({"most_frequent_class": "always the most common signal",
                                          "same_as_last_bar": "the same signal as the last bar"}),
        color="#f59e0b", headline_badge=True,
        top_lists=(TopList("top_symbols", "prediction_top_symbols", ("symbol",), "Most-asked symbols"),),
    )
    schemas = (
        RawSchema(
            name="ohlcv_daily",
            columns=(
                ColumnSpec("date", "date"),
                ColumnSpec("symbol", "string"),
                ColumnSpec("open", "double"),
                ColumnSpec("high", "double"),
                ColumnSpec("low", "double"),
                ColumnSpec("close", "double"),
                ColumnSpec("volume", "double"),
            ),
            checks=(
                ("non_positive_price", "open <= 0 OR high <= 0 OR low <= 0 OR close <= 0"),
                ("high_below_low", "high < low"),
                # adjusted prices carry float noise: allow a part in a million outside the range
                ("price_outside_range",
                 "open > high * 1.000001 OR open < low * 0.999999 "
                 "OR close > high * 1.000001 OR close < low * 0.999999"),
                ("negative_volume", "volume < 0"),
                ("not_finite", "isnan(open) OR isnan(high) OR isnan(low) OR isnan(close) "
                               "OR abs(open) = double('inf') OR abs(close) = double('inf')"),
            ),
            canonical=tuple((c, c) for c in ("date", "symbol", "open", "high", "low", "close", "volume")),
        ),
    )

    # --- training side ---
    def feature_frame(self, canonical: pd.DataFrame) -> pd.DataFrame:
        parts = [symbol_features(bars) for _, bars in canonical.groupby("symbol", sort=True)]
        if not parts:
            return pd.DataFrame(columns=[*FEATURES, *FRAME_EXTRAS])
        return pd.concat(parts, ignore_index=True)

    def entity_snapshot(self, canonical: pd.DataFrame) -> dict[str, Any]:
        symbols = {}
        for symbol, bars in canonical.groupby("symbol", sort=True):
            last = symbol_features(bars).iloc[-1]
            if last[list(FEATURES)].isna().any():
                continue  # too few bars to describe the symbol
            symbols[symbol] = {"as_of": last["date"], "close": float(last["close"]),
                               "features": {f: float(last[f]) for f in FEATURES}}
        as_of = max((s["as_of"] for s in symbols.values()), default="")
        return {"as_of": as_of, "symbols": symbols}

    def baselines(self, train: pd.DataFrame, holdout: pd.DataFrame) -> dict[str, np.ndarray]:
        n = len(CLASSES)
        y = train["label"].to_numpy().astype(int)
        return {
            "most_frequent_class": np.tile(class_distribution(y, n), (len(holdout), 1)),
            "same_as_last_bar": conditional_distribution(
                train["prev_label"].to_numpy(), y, holdout["prev_label"].to_numpy(), n),
        }

    def backtest(self, rows: pd.DataFrame, probabilities: np.ndarray, *, cost_bps: float = 10.0,
                 short_on_sell: bool = False) -> dict[str, Any]:
        """Follow the signal from each row's close to the next bar's, against buy-and-hold and a random signal."""
        from pronostico.core import backtest

        signals = pd.DataFrame({"symbol": rows["symbol"].to_numpy(), "date": rows["date"].to_numpy(),
                                "signal": np.asarray(CLASSES)[probabilities.argmax(axis=1)] if len(rows) else [],
                                "next_return": rows["next_return"].to_numpy()})
        return backtest.run(signals, cost_bps=cost_bps, short_on_sell=short_on_sell)

    def observed_events(self, frame: pd.DataFrame, since: str) -> list[dict[str, Any]]:
        """Each bar's label from `since`, as the event of the next bar: it resolves the answer made on that bar."""
        bars = frame[(frame["date"] >= since) & (frame["next_date"] != "")]
        return [{"subject_a": row.symbol, "subject_b": "", "event_date": row.next_date, "earliest_as_of": row.date,
                 "outcome": CLASSES[int(row.label)]} for row in bars.itertuples()]

    # --- serving side ---
    def load_snapshot(self, snapshot: Mapping[str, Any]) -> SymbolBook:
        return SymbolBook.from_snapshot(snapshot)

    def entities(self, snapshot: SymbolBook) -> list[dict[str, Any]]:
        return [{"symbol": sym, "last_bar": e["as_of"], "close": e["close"]}
                for sym, e in sorted(snapshot.symbols.items())]

    def parse_request(self, payload: Mapping[str, Any], snapshot: SymbolBook) -> AssetRequest:
        value = payload.get("symbol")
        if value is None or value == "":
            raise RequestError("missing_field", "symbol is required", "symbol")
        if not isinstance(value, str):
            raise RequestError("invalid_type", "symbol must be a string", "symbol")
        symbol = snapshot.by_lower.get(value.strip().lower())
        if symbol is None:
            hint = closest(value.strip().upper(), list(snapshot.symbols))
            known = hint or sorted(snapshot.symbols)
            raise RequestError("unknown_symbol",
                               f"unknown symbol {value!r}; known symbols include {', '.join(known)}",
                               "symbol")
        return AssetRequest(symbol)

    def request_vectors(self, request: AssetRequest, snapshot: SymbolBook) -> list[np.ndarray]:
        return [snapshot.symbols[request.symbol]["vector"]]

    def answer(self, request: AssetRequest, probabilities: np.ndarray, snapshot: SymbolBook) -> dict[str, Any]:
        return {
            "symbol": request.symbol,
            "as_of": snapshot.symbols[request.symbol]["as_of"],
            "probabilities": {c: float(p) for c, p in zip(CLASSES, probabilities, strict=True)},
            "signal": CLASSES[int(np.argmax(probabilities))],
        }


    def entity_hint(self, entity: Mapping[str, Any]) -> str:
        return f"last bar {entity['last_bar']}"

    def describe(self, answer: Mapping[str, Any]) -> str:
        return f"{answer['symbol']} · next daily bar after {answer['as_of']}"


ASSETS = USE_CASE = Assets()
