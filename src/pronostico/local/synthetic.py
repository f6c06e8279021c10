"""Synthetic demo data, deterministic from a seed, in the same schemas as the real files.

Matchups: fictional national teams whose strength drifts year to year; goals are Poisson with
a home advantage off neutral ground, so stronger teams win more, and ranks follow strength
with noise. Assets: random walks whose volatility clusters (GARCH(1,1) with fat tails), with
OHLCV bars built around each close; coins trade every day, equities on weekdays.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

TEAMS = (
    "Agrabah", "Arendelle", "Atlantis", "Azmenistan", "Bialya", "Borduria", "Carpania", "Cascara",
    "Corto Maltese", "Costaguana", "Druhastrana", "Elbonia", "Eldorado", "Estrovia", "Florin",
    "Freedonia", "Genovia", "Grand Fenwick", "Guilder", "Hidalgo", "Illyria", "Kangan", "Kasnia",
    "Krakozhia", "Kravia", "Kurdovia", "Latveria", "Lichtenburg", "Markovia", "Molvania", "Moronica",
    "Nambutu", "New Rome", "Novistrana", "Orsinia", "Pottsylvania", "Qumar", "Ruritania", "San Lorenzo",
    "San Monique", "Sokovia", "Syldavia", "Taronia", "Tomainia", "Vulgaria", "Wadiya", "Zamunda",
    "Zubrowka",
)
CONTINENTS = ("Europe", "South America", "Africa", "Asia", "North America", "Oceania")
TOURNAMENTS = (
    ("Friendly", 0.38), ("FIFA World Cup qualification", 0.24), ("UEFA Euro qualification", 0.08),
    ("African Cup of Nations qualification", 0.06), ("UEFA Nations League", 0.05), ("Copa América", 0.04),
    ("African Cup of Nations", 0.04), ("Gold Cup", 0.03), ("AFC Asian Cup", 0.03), ("Baltic Cup", 0.02),
    ("FIFA World Cup", 0.03),
)
KNOCKOUT = {"FIFA World Cup", "Copa América", "African Cup of Nations", "Gold Cup", "AFC Asian Cup"}


@dataclass(frozen=True)
class AssetSpec:
    symbol: str
    start_price: float
    daily_vol: float
    drift: float
    every_day: bool  # coins trade on weekends too


ASSETS = (
    AssetSpec("ORBT-USD", 30000.0, 0.035, 0.0008, True),
    AssetSpec("LMNA-USD", 1500.0, 0.045, 0.0006, True),
    AssetSpec("ACME", 120.0, 0.018, 0.0005, False),
    AssetSpec("GLBX", 380.0, 0.011, 0.0003, False),
)


DEMO_MATCHES = 12_000  # 2008 to 2022 as dense as the real file: enough history, and half the demo's training


def synthetic_matches(n_matches: int = DEMO_MATCHES, seed: int = 42, start: str = "2008-01-01",
                      end: str = "2022-12-31") -> pd.DataFrame:
    """Matches in the Kaggle schema (FIFA ranks and points), like international_matches.csv."""
    rng = np.random.default_rng(seed)
    teams = np.array(TEAMS)
    n_teams = len(teams)
    days = pd.date_range(start, end, freq="D")
    dates = np.sort(rng.choice(days.to_numpy(), size=n_matches))
    years = pd.DatetimeIndex(dates).year.to_numpy()
    first_year = int(years.min())
    n_years = int(years.max()) - first_year + 1
    strength = np.cumsum(rng.normal(0, 0.12, size=(n_years, n_teams)), axis=0) + rng.normal(0, 0.6, n_teams)
    home = rng.integers(0, n_teams, n_matches)
    away = (home + rng.integers(1, n_teams, n_matches)) % n_teams
    year_index = years - first_year
    diff = strength[year_index, home] - strength[year_index, away]
    neutral = rng.random(n_matches) < 0.25
    home_goals = rng.poisson(np.exp(0.25 + 0.45 * diff + np.where(neutral, 0.0, 0.25)))
    away_goals = rng.poisson(np.exp(0.25 - 0.45 * diff))
    names, weights = zip(*TOURNAMENTS, strict=True)
    tournament = rng.choice(np.array(names), size=n_matches, p=np.array(weights) / sum(weights))
    shoot_out = np.isin(tournament, list(KNOCKOUT)) & (home_goals == away_goals) & (rng.random(n_matches) < 0.3)
    noisy = strength + rng.normal(0, 0.25, strength.shape)
    rank = (-noisy).argsort(axis=1).argsort(axis=1) + 1
    points = np.where(years >= 2011, 1000 + 150 * strength[year_index, home], 0).round()
    away_points = np.where(years >= 2011, 1000 + 150 * strength[year_index, away], 0).round()
    continent = np.array(CONTINENTS)[np.arange(n_teams) % len(CONTINENTS)]
    result = np.where(home_goals > away_goals, "Win", np.where(home_goals < away_goals, "Lose", "Draw"))
    frame = pd.DataFrame({
        "date": pd.DatetimeIndex(dates).strftime("%d/%m/%Y"),
        "home_team": teams[home], "away_team": teams[away],
        "home_team_continent": continent[home], "away_team_continent": continent[away],
        "home_team_fifa_rank": rank[year_index, home], "away_team_fifa_rank": rank[year_index, away],
        "home_team_total_fifa_points": points.astype(int), "away_team_total_fifa_points": away_points.astype(int),
        "home_team_score": home_goals, "away_team_score": away_goals, "tournament": tournament,
        "city": "Capital", "country": np.where(neutral, "Neutralia", teams[home]),
        "neutral_location": np.where(neutral, "TRUE", "FALSE"),
        "shoot_out": np.where(shoot_out, "Yes", "No"), "home_team_result": result,
    })
    return frame.drop_duplicates(["date", "home_team", "away_team"]).reset_index(drop=True)


def synthetic_bars(spec: AssetSpec, seed: int, start: str = "2021-01-01", end: str = "2026-03-25") -> pd.DataFrame:
    """Daily OHLCV bars for one symbol: GARCH(1,1) volatility clusters with Student-t shocks."""
    rng = np.random.default_rng([seed, sum(map(ord, spec.symbol))])
    dates = pd.date_range(start, end, freq="D" if spec.every_day else "B")
    n = len(dates)
    alpha, beta = 0.08, 0.90
    omega = spec.daily_vol ** 2 * (1 - alpha - beta)
    shocks = rng.standard_t(5, n) / np.sqrt(5 / 3)
    variance, returns = np.empty(n), np.empty(n)
    variance[0] = spec.daily_vol ** 2
    for t in range(n):
        if t:
            variance[t] = omega + alpha * returns[t - 1] ** 2 + beta * variance[t - 1]
        returns[t] = spec.drift + np.sqrt(variance[t]) * shocks[t]
    close = spec.start_price * np.exp(np.cumsum(returns))
    sigma = np.sqrt(variance)
    open_ = np.concatenate([[spec.start_price], close[:-1]]) * np.exp(rng.normal(0, 0.2, n) * sigma)
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 0.5, n)) * sigma)
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 0.5, n)) * sigma)
    volume = (1e6 * np.exp(rng.normal(0, 0.3, n)) * (1 + 4 * np.abs(returns) / sigma)).round()
    return pd.DataFrame({"date": dates.strftime("%Y-%m-%d"), "symbol": spec.symbol, "open": open_,
                         "high": high, "low": low, "close": close, "volume": volume.astype(np.int64)})


def write_demo_data(out: Path, seed: int = 42, n_matches: int = DEMO_MATCHES) -> list[Path]:
    """Write <out>/matchups/synthetic_matches.csv and <out>/assets/synthetic_bars.csv (every symbol's bars).

    One file per use case: each file an upload is one S3 event and so one DAG run, and the runs after the first
    find nothing new to train on but still queue one after the other."""
    (out / "matchups").mkdir(parents=True, exist_ok=True)
    (out / "assets").mkdir(parents=True, exist_ok=True)
    matches, bars = out / "matchups" / "synthetic_matches.csv", out / "assets" / "synthetic_bars.csv"
    synthetic_matches(n_matches, seed).to_csv(matches, index=False)
    pd.concat([synthetic_bars(spec, seed) for spec in ASSETS], ignore_index=True).to_csv(bars, index=False)
    return [matches, bars]
