"""The asset backtest: hand-computed costs, figures, anchors and pooling."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from pronostico.core import backtest
from pronostico.core.backtest import markdown, random_positions, run, table

WEEKDAYS = ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05"]  # Monday to Friday
WEEKEND = ["2024-01-05", "2024-01-06", "2024-01-07"]  # Friday, Saturday, Sunday


def frame(signals: list[str], returns: list[float], symbol: str = "TEST",
          dates: list[str] | None = None) -> pd.DataFrame:
    dates = dates if dates is not None else WEEKDAYS[:len(signals)]
    return pd.DataFrame({"symbol": symbol, "date": dates, "signal": signals, "next_return": returns})


def strategy(result: dict, symbol: str = "TEST") -> dict:
    return result["symbols"][symbol]["strategy"]


def test_entry_and_exit_each_cost_one_side():
    result = run(frame(["buy", "buy", "hold"], [0.01, 0.02, 0.03]), cost_bps=10.0, seeds=3)
    daily = [0.01 - 0.001, 0.02, -0.001]  # entry pays 10 bps, holding nothing, exit 10 bps on a flat bar
    figures = strategy(result)
    assert figures["total_return"] == pytest.approx(np.prod(np.add(1, daily)) - 1)
    assert figures["trades"] == 2
    assert figures["exposure"] == pytest.approx(2 / 3)
    assert figures["hit_rate"] == pytest.approx(1.0)
    assert result["curves"]["TEST"]["strategy"] == [round(v, 6) for v in np.cumprod(np.add(1, daily))]


def test_flip_from_short_to_long_costs_two_sides():
    result = run(frame(["sell", "buy"], [0.01, 0.02]), cost_bps=10.0, short_on_sell=True, seeds=3)
    daily = [-0.01 - 0.001, 0.02 - 0.002]
    assert strategy(result)["total_return"] == pytest.approx((1 + daily[0]) * (1 + daily[1]) - 1)
    assert strategy(result)["trades"] == 2
    assert strategy(result)["max_drawdown"] == pytest.approx(0.011)


def test_sell_is_flat_unless_shorting():
    rows = frame(["sell", "sell"], [-0.05, -0.05])
    flat = strategy(run(rows, cost_bps=10.0, seeds=3))
    assert flat == {"total_return": 0.0, "sharpe": 0.0, "max_drawdown": 0.0, "hit_rate": None, "trades": 0,
                    "exposure": 0.0}
    short = strategy(run(rows, cost_bps=10.0, short_on_sell=True, seeds=3))
    assert short["total_return"] == pytest.approx((1 + 0.05 - 0.001) * 1.05 - 1)
    assert short["exposure"] == 1.0
    assert short["trades"] == 1
    assert short["hit_rate"] == 1.0


def test_hold_stays_out_of_the_market():
    figures = strategy(run(frame(["hold"] * 4, [0.03, -0.02, 0.01, 0.04]), seeds=3))
    assert figures == {"total_return": 0.0, "sharpe": 0.0, "max_drawdown": 0.0, "hit_rate": None, "trades": 0,
                       "exposure": 0.0}


def test_total_return_compounds_and_drawdown_runs_from_the_peak():
    figures = strategy(run(frame(["buy"] * 5, [0.1, -0.2, 0.05, -0.5, 1.0]), cost_bps=0.0, seeds=3))
    # equity 1.1, 0.88, 0.924, 0.462, 0.924: the deepest point 0.462 under the peak 1.1
    assert figures["total_return"] == pytest.approx(1.1 * 0.8 * 1.05 * 0.5 * 2.0 - 1)
    assert figures["max_drawdown"] == pytest.approx(1 - 0.462 / 1.1)


def test_a_loss_on_the_first_bar_is_a_drawdown_from_the_starting_capital():
    figures = strategy(run(frame(["buy", "buy"], [-0.1, 0.05]), cost_bps=0.0, seeds=3))
    assert figures["max_drawdown"] == pytest.approx(0.1)


def test_hit_rate_counts_only_bars_in_the_market_and_a_zero_is_no_hit():
    figures = strategy(run(frame(["buy", "buy", "buy", "hold"], [0.01, -0.02, 0.0, 0.5]), cost_bps=0.0, seeds=3))
    assert figures["hit_rate"] == pytest.approx(1 / 3)
    assert figures["exposure"] == pytest.approx(3 / 4)
    assert figures["trades"] == 2


def hand_sharpe(returns: list[float], periods: int) -> float:
    return float(np.mean(returns) / np.std(returns, ddof=1) * math.sqrt(periods))


def test_sharpe_is_annualised_by_the_calendar_of_the_dates_not_the_name():
    returns = [0.01, -0.005, 0.02]
    weekdays = run(frame(["buy"] * 3, returns, symbol="BTC-USD", dates=WEEKDAYS[:3]), cost_bps=0.0, seeds=3)
    weekend = run(frame(["buy"] * 3, returns, symbol="SPY", dates=WEEKEND), cost_bps=0.0, seeds=3)
    assert weekdays["symbols"]["BTC-USD"]["periods_per_year"] == 252
    assert weekend["symbols"]["SPY"]["periods_per_year"] == 365
    assert strategy(weekdays, "BTC-USD")["sharpe"] == pytest.approx(hand_sharpe(returns, 252))
    assert strategy(weekend, "SPY")["sharpe"] == pytest.approx(hand_sharpe(returns, 365))


def test_sharpe_is_zero_for_one_bar_or_a_constant_series():
    assert strategy(run(frame(["buy"], [0.05]), cost_bps=0.0, seeds=3))["sharpe"] == 0.0
    assert strategy(run(frame(["buy"] * 3, [0.01] * 3), cost_bps=0.0, seeds=3))["sharpe"] == 0.0


def test_buy_and_hold_pays_a_single_entry_cost():
    result = run(frame(["hold", "sell", "buy"], [0.01, 0.02, 0.03]), cost_bps=10.0, seeds=3)
    hold = result["symbols"]["TEST"]["buy_and_hold"]
    assert hold["total_return"] == pytest.approx(1.009 * 1.02 * 1.03 - 1)
    assert hold["trades"] == 1
    assert hold["exposure"] == 1.0


def test_pooled_is_equal_weight_on_the_union_of_dates_and_a_missing_day_adds_zero():
    rows = pd.concat([
        frame(["buy"] * 3, [0.02, 0.04, -0.02], symbol="A", dates=WEEKDAYS[:3]),
        frame(["buy"] * 2, [0.06, 0.02], symbol="B", dates=[WEEKDAYS[0], WEEKDAYS[2]]),
    ])
    result = run(rows, cost_bps=0.0, seeds=3)
    pooled = result["pooled"]
    daily = [(0.02 + 0.06) / 2, (0.04 + 0.0) / 2, (-0.02 + 0.02) / 2]  # B has no bar on the second day
    assert pooled["periods_per_year"] == 365
    assert pooled["days"] == 3
    assert pooled["strategy"]["total_return"] == pytest.approx(1.04 * 1.02 - 1)
    assert pooled["strategy"]["sharpe"] == pytest.approx(hand_sharpe(daily, 365))
    assert pooled["strategy"]["trades"] == 2
    assert pooled["strategy"]["exposure"] == pytest.approx(2.5 / 3)
    assert pooled["strategy"]["hit_rate"] == pytest.approx(2 / 3)
    assert pooled["buy_and_hold"]["total_return"] == pytest.approx(pooled["strategy"]["total_return"])
    assert result["curves"]["pooled"]["dates"] == WEEKDAYS[:3]
    assert result["curves"]["pooled"]["strategy"] == [round(v, 6) for v in np.cumprod(np.add(1, daily))]
    assert (result["start"], result["end"], result["bars"]) == (WEEKDAYS[0], WEEKDAYS[2], 5)


def signals(n: int, seed: int) -> list[str]:
    return list(np.random.default_rng(seed).choice(["sell", "hold", "buy"], size=n))


def returns(n: int, seed: int) -> list[float]:
    return list(np.random.default_rng(seed).normal(0.0, 0.02, size=n))


def dates(n: int) -> list[str]:
    return list(pd.date_range("2024-01-01", periods=n).strftime("%Y-%m-%d"))


@pytest.mark.parametrize("states", [np.array([0, 1]), np.array([-1, 0, 1])])
def test_random_positions_make_exactly_k_changes_for_every_seed(states):
    for seed in range(51):
        for k in (0, 1, 7, 40):
            positions = random_positions(40, k, states, seed)
            assert int(np.count_nonzero(np.diff(positions, prepend=0))) == k
            assert set(positions.tolist()) <= set(states.tolist())


def test_random_two_state_changes_alternate_in_and_out_from_flat():
    positions = random_positions(30, 9, np.array([0, 1]), seed=4)
    moves = positions[np.flatnonzero(np.diff(positions, prepend=0))]
    assert moves.tolist() == [1, 0, 1, 0, 1, 0, 1, 0, 1]


def test_random_anchor_keeps_the_trade_count_and_reports_the_median_seed():
    n, seeds, cost = 60, 4, 0.001
    rows = frame(signals(n, 1), returns(n, 2), dates=dates(n))
    result = run(rows, cost_bps=10.0, short_on_sell=True, seeds=seeds)
    k = strategy(result)["trades"]
    assert result["symbols"]["TEST"]["random"]["trades"] == k
    series = []
    for seed in range(seeds):
        positions = random_positions(n, k, np.array([-1, 0, 1]), seed)
        daily = positions * np.array(returns(n, 2)) - cost * np.abs(np.diff(positions, prepend=0))
        series.append(daily)
    totals = [float(np.prod(1 + daily) - 1) for daily in series]
    assert result["symbols"]["TEST"]["random"]["total_return"] == pytest.approx(float(np.median(totals)))
    lower_middle = series[int(np.argsort(totals, kind="stable")[(seeds - 1) // 2])]
    assert result["curves"]["TEST"]["random"] == [round(v, 6) for v in np.cumprod(1 + lower_middle)]


def test_random_anchor_is_deterministic_across_calls():
    rows = frame(signals(50, 3), returns(50, 4), dates=dates(50))
    assert run(rows) == run(rows)


def test_unsorted_interleaved_input_gives_the_same_result_as_sorted():
    rows = pd.concat([
        frame(signals(30, 5), returns(30, 6), symbol="A", dates=dates(30)),
        frame(signals(20, 7), returns(20, 8), symbol="B", dates=dates(30)[5:25]),
    ]).reset_index(drop=True)
    shuffled = rows.sample(frac=1.0, random_state=9).reset_index(drop=True)
    assert not shuffled["date"].is_monotonic_increasing
    assert run(shuffled, short_on_sell=True) == run(rows, short_on_sell=True)


@pytest.mark.parametrize("rows", [pd.DataFrame(), frame([], [])])
def test_empty_input_gives_the_same_keys_and_no_exception(rows):
    result = run(rows)
    full = run(frame(["buy"], [0.01]))
    assert result.keys() == full.keys()
    assert (result["bars"], result["symbols"], result["start"], result["end"]) == (0, {}, None, None)
    assert result["pooled"]["days"] == 0
    for variant in ("strategy", "buy_and_hold", "random"):
        assert result["pooled"][variant] == {"total_return": 0.0, "sharpe": 0.0, "max_drawdown": 0.0,
                                             "hit_rate": None, "trades": 0, "exposure": 0.0}
    assert json.loads(json.dumps(result, allow_nan=False)) == result


def test_the_latest_bar_without_a_next_return_is_left_out():
    result = run(frame(["buy", "buy", "sell"], [0.01, 0.02, float("nan")]), cost_bps=0.0, seeds=3)
    assert result["bars"] == 2
    assert strategy(result)["total_return"] == pytest.approx(1.01 * 1.02 - 1)


def test_result_survives_a_json_round_trip_without_nan():
    rows = pd.concat([
        frame(signals(40, 10), returns(40, 11), symbol="BTC-USD", dates=dates(40)),
        frame(["hold"] * 5, [0.01] * 5, symbol="SPY"),  # never in the market: hit rate None
    ])
    result = run(rows)
    text = json.dumps(result, allow_nan=False)
    assert json.loads(text) == result
    assert result["symbols"]["SPY"]["strategy"]["hit_rate"] is None
    assert not any(type(value).__module__ == "numpy" for value in _leaves(result))


def _leaves(value: object) -> list[object]:
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in _leaves(item)]
    if isinstance(value, list):
        return [leaf for item in value for leaf in _leaves(item)]
    return [value]


def test_curves_can_be_left_out():
    assert run(frame(["buy"], [0.01]), curves=False)["curves"] == {}


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="one row per"):
        run(frame(["buy", "buy"], [0.01, 0.02], dates=[WEEKDAYS[0], WEEKDAYS[0]]))
    with pytest.raises(ValueError, match="unknown signals"):
        run(frame(["long"], [0.01]))


def test_table_and_markdown_list_every_symbol_and_the_pooled_book():
    rows = pd.concat([frame(["buy", "hold"], [0.1, 0.2], symbol="A"), frame(["hold"] * 2, [0.1, 0.2], symbol="B")])
    result = run(rows, cost_bps=0.0, seeds=3)
    flat = table(result)
    assert [(row["symbol"], row["variant"]) for row in flat] == [
        (symbol, variant) for symbol in ("A", "B", "pooled") for variant in backtest.VARIANTS]
    lines = markdown(result).strip().splitlines()
    assert len(lines) == 2 + 3
    assert lines[0].count("|") == len(backtest.HEADER) + 1
    assert lines[2].startswith("| A | 10.00 |")
    assert "| B | 0.00 | 0.00 | 0.00 | n/a | 0 | 0.00 |" in lines[3]
