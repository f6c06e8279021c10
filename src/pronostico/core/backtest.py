"""Would following the assets signal have paid after costs? A daily backtest against buy-and-hold and random.

Plain numpy + pandas on purpose: vectorbt pulls numba/llvmlite and plotly, backtesting.py pulls bokeh, and
either would weigh down the EMR bootstrap and the Spark job's zip for a rule that is ~100 lines of numpy.

The rule: position +1 on buy, 0 on hold, 0 on sell (-1 with `short_on_sell`), earned on `next_return`; every
change of position costs `cost_bps` per side. Rows whose `next_return` is missing (the latest bar, whose next
close is not known yet) are left out before anything is computed.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

VARIANTS = ("strategy", "buy_and_hold", "random")
COLUMNS = ("symbol", "date", "signal", "next_return")
POOLED = "pooled"
CRYPTO_PERIODS, MARKET_PERIODS = 365, 252
FLAT_STD = 1e-12  # below this a return series is constant; float noise must not make a huge Sharpe


def run(rows: pd.DataFrame, *, cost_bps: float = 10.0, short_on_sell: bool = False, seeds: int = 51,
        curves: bool = True) -> dict[str, Any]:
    """Backtest the signal per symbol and pooled; figures and curves are JSON-ready (see the module docstring)."""
    if seeds < 1:
        raise ValueError("seeds must be at least 1: the random anchor is a median over seeds")
    frame = _clean(rows)
    cost = cost_bps / 1e4
    states = np.array([-1, 0, 1] if short_on_sell else [0, 1])
    symbols: dict[str, Any] = {}
    series: dict[str, dict[str, Any]] = {}
    for symbol, group in frame.groupby("symbol", sort=True):
        symbols[str(symbol)], series[str(symbol)] = _symbol(group, cost, short_on_sell, states, seeds)
    pooled, pooled_series = _pooled(series)
    result: dict[str, Any] = {
        "cost_bps": float(cost_bps), "short_on_sell": bool(short_on_sell), "seeds": int(seeds),
        "start": str(frame["date"].min()) if len(frame) else None,
        "end": str(frame["date"].max()) if len(frame) else None,
        "bars": len(frame), "symbols": symbols, "pooled": pooled, "curves": {},
    }
    if curves:
        result["curves"] = {name: _curves(one) for name, one in series.items()}
        result["curves"][POOLED] = _curves(pooled_series)
    return result


def _clean(rows: pd.DataFrame) -> pd.DataFrame:
    if len(rows) == 0:
        return pd.DataFrame({name: pd.Series(dtype=object) for name in COLUMNS})
    missing = [name for name in COLUMNS if name not in rows.columns]
    if missing:
        raise ValueError(f"rows lack columns {missing}")
    frame = rows.loc[:, list(COLUMNS)].copy()
    frame["symbol"] = frame["symbol"].astype(str)
    frame["date"] = frame["date"].astype(str)
    frame["next_return"] = pd.to_numeric(frame["next_return"], errors="coerce").astype(float)
    frame = frame[np.isfinite(frame["next_return"].to_numpy())]
    unknown = set(frame["signal"]) - {"sell", "hold", "buy"}
    if unknown:
        raise ValueError(f"unknown signals {sorted(map(str, unknown))}")
    if frame.duplicated(["symbol", "date"]).any():
        raise ValueError("rows must hold one row per (symbol, date)")
    # ISO dates sort as strings; a stable sort makes unsorted input give the same answer as sorted
    return frame.sort_values(["symbol", "date"], kind="mergesort").reset_index(drop=True)


def _symbol(group: pd.DataFrame, cost: float, short_on_sell: bool, states: np.ndarray,
            seeds: int) -> tuple[dict[str, Any], dict[str, Any]]:
    dates = group["date"].tolist()
    returns = group["next_return"].to_numpy(dtype=float)
    periods = periods_per_year(dates)
    sell = -1 if short_on_sell else 0
    positions = group["signal"].map({"buy": 1, "hold": 0, "sell": sell}).to_numpy(dtype=int)
    hold_all = np.ones(len(returns), dtype=int)
    strategy = _daily(positions, returns, cost)
    buy_and_hold = _daily(hold_all, returns, cost)
    random_figures, random_series = _random(int(np.count_nonzero(_changes(positions))), returns, cost,
                                            states, seeds, periods)
    summary = {"periods_per_year": periods, "bars": len(dates), "start": dates[0], "end": dates[-1],
               "strategy": figures(strategy, positions, periods),
               "buy_and_hold": figures(buy_and_hold, hold_all, periods),
               "random": random_figures}
    kept = {"dates": dates, "strategy": (strategy, positions), "buy_and_hold": (buy_and_hold, hold_all),
            "random": random_series}
    return summary, kept


def periods_per_year(dates: list[str]) -> int:
    """365 when any bar falls on a weekend (the market trades every day), else 252."""
    weekdays = pd.to_datetime(pd.Series(dates), format="%Y-%m-%d").dt.dayofweek
    return CRYPTO_PERIODS if bool((weekdays >= 5).any()) else MARKET_PERIODS


def _changes(positions: np.ndarray) -> np.ndarray:
    return np.abs(np.diff(positions, prepend=0))


def _daily(positions: np.ndarray, returns: np.ndarray, cost: float) -> np.ndarray:
    return positions * returns - cost * _changes(positions)


def random_positions(n: int, k: int, states: np.ndarray, seed: int) -> np.ndarray:
    """k changes at distinct random bars, each to another state drawn uniformly, starting flat."""
    rng = np.random.default_rng(seed)
    bars = np.sort(rng.choice(n, size=k, replace=False))
    # stepping 1..m-1 places round the m states lands uniformly on each state but the current one
    steps = rng.integers(1, len(states), size=k)
    start = int(np.flatnonzero(states == 0)[0])
    values = states[(start + np.cumsum(steps)) % len(states)]
    if k == 0:
        return np.zeros(n, dtype=int)
    latest = np.full(n, -1)
    latest[bars] = np.arange(k)
    latest = np.maximum.accumulate(latest)  # the last change at or before each bar
    return np.where(latest >= 0, values[np.maximum(latest, 0)], 0).astype(int)


def _random(k: int, returns: np.ndarray, cost: float, states: np.ndarray, seeds: int,
            periods: int) -> tuple[dict[str, Any], tuple[np.ndarray, np.ndarray]]:
    runs = []
    for seed in range(seeds):
        positions = random_positions(len(returns), k, states, seed)
        daily = _daily(positions, returns, cost)
        runs.append((figures(daily, positions, periods), daily, positions))
    hits = [run[0]["hit_rate"] for run in runs if run[0]["hit_rate"] is not None]
    median = {
        "total_return": _median(runs, "total_return"), "sharpe": _median(runs, "sharpe"),
        "max_drawdown": _median(runs, "max_drawdown"), "hit_rate": float(np.median(hits)) if hits else None,
        "trades": k, "exposure": _median(runs, "exposure"),
    }
    order = sorted(range(seeds), key=lambda seed: runs[seed][0]["total_return"])
    middle = runs[order[(seeds - 1) // 2]]  # the lower middle seed when the count is even
    return median, (middle[1], middle[2])


def _median(runs: list[tuple[dict[str, Any], np.ndarray, np.ndarray]], name: str) -> float:
    return float(np.median([run[0][name] for run in runs]))


def figures(daily: np.ndarray, positions: np.ndarray, periods: int, trades: int | None = None) -> dict[str, Any]:
    """Total return, annualised Sharpe, max drawdown, hit rate, trades and exposure of one return series.

    `positions` may be fractional (a pooled book): exposure is then the mean gross exposure.
    """
    gross = np.abs(positions)
    active = gross > 0
    return {
        "total_return": float(np.prod(1.0 + daily) - 1.0) if len(daily) else 0.0,
        "sharpe": sharpe(daily, periods),
        "max_drawdown": max_drawdown(daily),
        "hit_rate": float(np.mean(daily[active] > 0)) if active.any() else None,
        "trades": int(np.count_nonzero(_changes(positions))) if trades is None else int(trades),
        "exposure": float(np.mean(gross)) if len(gross) else 0.0,
    }


def sharpe(daily: np.ndarray, periods: int) -> float:
    if len(daily) < 2:
        return 0.0
    std = float(np.std(daily, ddof=1))
    if not math.isfinite(std) or std < FLAT_STD:
        return 0.0
    return float(np.mean(daily) / std * math.sqrt(periods))


def max_drawdown(daily: np.ndarray) -> float:
    """Largest fall from the running peak, the starting capital of 1.0 counting as a peak."""
    if not len(daily):
        return 0.0
    equity = np.concatenate([[1.0], np.cumprod(1.0 + daily)])
    fall = 1.0 - equity / np.maximum.accumulate(equity)
    return max(float(fall.max()), 0.0)


def _pooled(series: dict[str, dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Equal weight over all symbols on the union of dates; a symbol without a bar that day adds 0."""
    dates = sorted({date for one in series.values() for date in one["dates"]})
    summary: dict[str, Any] = {"periods_per_year": CRYPTO_PERIODS, "days": len(dates)}
    kept: dict[str, Any] = {"dates": dates}
    for variant in VARIANTS:
        daily = np.zeros(len(dates))
        gross = np.zeros(len(dates))
        trades = 0
        for one in series.values():
            returns, positions = one[variant]
            where = np.searchsorted(dates, one["dates"])
            daily[where] += returns
            gross[where] += np.abs(positions)
            trades += int(np.count_nonzero(_changes(positions)))
        count = max(len(series), 1)
        daily, gross = daily / count, gross / count
        summary[variant] = figures(daily, gross, CRYPTO_PERIODS, trades=trades)
        kept[variant] = (daily, gross)
    return summary, kept


def _curves(one: dict[str, Any]) -> dict[str, list[Any]]:
    curves: dict[str, list[Any]] = {"dates": list(one["dates"])}
    for variant in VARIANTS:
        curves[variant] = [round(float(value), 6) for value in np.cumprod(1.0 + one[variant][0])]
    return curves


def table(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One flat row per (symbol, variant), the pooled book last."""
    rows = []
    blocks = [*result["symbols"].items(), (POOLED, result["pooled"])]
    for symbol, block in blocks:
        for variant in VARIANTS:
            rows.append({"symbol": symbol, "variant": variant, **block[variant]})
    return rows


HEADER = ("symbol", "strategy total %", "Sharpe", "max DD %", "hit rate %", "trades", "exposure %",
          "buy-and-hold total %", "B&H Sharpe", "random total %", "random Sharpe")


def markdown(result: dict[str, Any]) -> str:
    """The table as markdown: the strategy's figures, then buy-and-hold's and random's return and Sharpe."""
    by_symbol: dict[str, dict[str, dict[str, Any]]] = {}
    for row in table(result):
        by_symbol.setdefault(row["symbol"], {})[row["variant"]] = row
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for symbol, variants in by_symbol.items():
        strategy, hold, rand = variants["strategy"], variants["buy_and_hold"], variants["random"]
        cells = [symbol, _percent(strategy["total_return"]), _number(strategy["sharpe"]),
                 _percent(strategy["max_drawdown"]), _percent(strategy["hit_rate"]), str(strategy["trades"]),
                 _percent(strategy["exposure"]), _percent(hold["total_return"]), _number(hold["sharpe"]),
                 _percent(rand["total_return"]), _number(rand["sharpe"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}"


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"
