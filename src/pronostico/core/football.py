"""Football's two standard strong models, numpy only: an ordered logit on the Elo difference and a time-weighted
Dixon-Coles goal model, and the Poisson outcome the matchups goal rating turns into features. The two models are
real-model yardsticks for matchups, reported next to the naive baselines and never gating a promotion;
tools/goal-models/reference.py fits statsmodels and penaltyblog to check them.

XI, the Dixon-Coles decay per day, was chosen on results.csv alone (ridge RIDGE): fit on the matches before each
1 January of 2016-2020, log loss on that year's matches (nothing from 2021 on). National teams play ~10 times a year,
so the memory is long. Ridge 0.5 and 1 tied (0.9011 at xi 0.0005); 0.3 gave 0.9014, 3 gave 0.9036.

    xi       2016   2017   2018   2019   2020   mean
    0.0003  0.8706 0.9200 0.9166 0.8344 0.9686 0.9020
    0.0005  0.8702 0.9190 0.9155 0.8337 0.9670 0.9011
    0.001   0.8738 0.9216 0.9220 0.8419 0.9703 0.9059
    0.0019  0.8851 0.9323 0.9410 0.8621 0.9795 0.9200
    0.003   0.9006 0.9445 0.9668 0.8862 0.9897 0.9376
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

XI = 0.0005
RIDGE = 1.0  # a N(0, 1) prior on each attack and defence: identifies them, and holds back teams with few matches
MIN_WEIGHT = 1e-3  # matches older than log(1000) / xi days add nothing but time
MAX_GOALS = 10
MAX_NEWTON = 60
TOLERANCE = 1e-9

ArrayLike = Sequence[Any] | np.ndarray | pd.Series


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # no overflow at either end


def _newton(objective: Any, derivatives: Any, theta: np.ndarray) -> np.ndarray:
    """Maximise a (near-)concave objective: Newton steps, halved until the objective does not fall."""
    value = objective(theta)
    for _ in range(MAX_NEWTON):
        gradient, hessian = derivatives(theta)
        step = np.linalg.solve(hessian, -gradient)
        if gradient @ step < 0:  # not an ascent direction: the Hessian is not negative definite here
            step = gradient / max(1.0, float(np.abs(np.diag(hessian)).max()))
        size = 1.0
        while size > 1e-8:
            candidate = theta + size * step
            new_value = objective(candidate)
            if np.isfinite(new_value) and new_value >= value - 1e-12 * abs(value):
                break
            size /= 2.0
        else:
            return theta
        theta, improvement, value = candidate, new_value - value, new_value
        if np.abs(size * step).max() < TOLERANCE or improvement < TOLERANCE * 1e-3:
            break
    return theta


# --- the Elo ordered logit -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class OrderedLogit:
    """latent = slope * elo_diff / 100 + home * (1 - neutral); P(away) = F(cut_away - latent),
    P(away or draw) = F(cut_draw - latent), F the logistic, cut_away < cut_draw."""

    slope: float
    home: float
    cut_away: float
    cut_draw: float

    def predict_proba(self, elo_diff: ArrayLike, neutral: ArrayLike) -> np.ndarray:
        latent = _ordered_design(elo_diff, neutral) @ np.array([self.slope, self.home])
        away = _sigmoid(self.cut_away - latent)
        away_or_draw = _sigmoid(self.cut_draw - latent)
        return np.column_stack([1.0 - away_or_draw, away_or_draw - away, away])


def _ordered_design(elo_diff: ArrayLike, neutral: ArrayLike) -> np.ndarray:
    return np.column_stack([np.asarray(elo_diff, dtype=float) / 100.0, 1.0 - np.asarray(neutral, dtype=float)])


class _OrderedLikelihood:
    """The ordered logit's log likelihood in (slope, home, cut_away, cut_draw), concave, with its exact derivatives.

    Each row's probability is F(upper - latent) - F(lower - latent) between the cuts around its outcome: a home win
    lies above cut_draw, a draw between the cuts, an away win below cut_away."""

    def __init__(self, x: np.ndarray, labels: np.ndarray) -> None:
        self.x = x
        cut_columns = np.array([[3, -1], [2, 3], [-1, 2]])  # per label: (lower, upper) column, -1 for infinite
        self.lower, self.upper = cut_columns[labels, 0], cut_columns[labels, 1]
        self.a = self._jacobian(self.upper)
        self.b = self._jacobian(self.lower)

    def _jacobian(self, column: np.ndarray) -> np.ndarray:
        """d(cut - latent)/d(parameters) for each row; zero for an infinite cut, whose density is zero anyway."""
        jacobian = np.zeros((len(column), 4))
        jacobian[:, :2] = -self.x
        finite = column >= 0
        jacobian[np.flatnonzero(finite), column[finite]] = 1.0
        return jacobian

    def _cdf(self, theta: np.ndarray, column: np.ndarray, infinite: float) -> tuple[np.ndarray, np.ndarray]:
        latent = self.x @ theta[:2]
        cdf = np.where(column >= 0, _sigmoid(theta[np.maximum(column, 0)] - latent), infinite)
        return cdf, cdf * (1.0 - cdf)

    def value(self, theta: np.ndarray) -> float:
        if theta[2] >= theta[3]:
            return -np.inf
        upper, _ = self._cdf(theta, self.upper, 1.0)
        lower, _ = self._cdf(theta, self.lower, 0.0)
        with np.errstate(divide="ignore"):
            return float(np.log(upper - lower).sum())

    def derivatives(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        upper, upper_density = self._cdf(theta, self.upper, 1.0)
        lower, lower_density = self._cdf(theta, self.lower, 0.0)
        p = upper - lower
        g_upper, g_lower = upper_density / p, -lower_density / p
        h_upper = upper_density * (1.0 - 2.0 * upper) / p - g_upper**2
        h_lower = -lower_density * (1.0 - 2.0 * lower) / p - g_lower**2
        h_cross = -g_upper * g_lower
        a, b = self.a, self.b
        gradient = a.T @ g_upper + b.T @ g_lower
        cross = a.T @ (h_cross[:, None] * b)
        hessian = a.T @ (h_upper[:, None] * a) + b.T @ (h_lower[:, None] * b) + cross + cross.T
        return gradient, hessian


def fit_ordered_logit(elo_diff: ArrayLike, neutral: ArrayLike, labels: ArrayLike) -> OrderedLogit:
    """Maximum likelihood by Newton's method from the class frequencies (labels 0 home win, 1 draw, 2 away win)."""
    y = np.asarray(labels, dtype=int)
    likelihood = _OrderedLikelihood(_ordered_design(elo_diff, neutral), y)
    away, draw = (np.bincount(y, minlength=3)[[2, 1]] + 1.0) / (len(y) + 3.0)
    start = np.array([0.0, 0.0, np.log(away / (1 - away)), np.log((away + draw) / (1 - away - draw))])
    slope, home, cut_away, cut_draw = _newton(likelihood.value, likelihood.derivatives, start)
    return OrderedLogit(float(slope), float(home), float(cut_away), float(cut_draw))


# --- the time-weighted Dixon-Coles -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class DixonColes:
    """log rate home = mu + attack[h] - defence[a] + home_adv * (1 - neutral), log rate away = mu + attack[a] -
    defence[h], with Dixon and Coles' correction tau(rho) on 0-0, 1-0, 0-1 and 1-1. Unseen teams are average: 0."""

    teams: tuple[str, ...]
    attack: np.ndarray
    defence: np.ndarray
    mu: float
    home_adv: float
    rho: float
    index: Mapping[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "index", {team: i for i, team in enumerate(self.teams)})

    def rates(self, home_teams: ArrayLike, away_teams: ArrayLike, neutral: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        unseen = len(self.teams)  # the extra slot of the padded arrays, whose strengths are 0
        home = np.array([self.index.get(team, unseen) for team in home_teams], dtype=int)
        away = np.array([self.index.get(team, unseen) for team in away_teams], dtype=int)
        attack, defence = np.append(self.attack, 0.0), np.append(self.defence, 0.0)
        at_home = self.home_adv * (1.0 - np.asarray(neutral, dtype=float))
        return (np.exp(self.mu + at_home + attack[home] - defence[away]),
                np.exp(self.mu + attack[away] - defence[home]))

    def predict_proba(self, home_teams: ArrayLike, away_teams: ArrayLike, neutral: ArrayLike) -> np.ndarray:
        home_rate, away_rate = self.rates(home_teams, away_teams, neutral)
        grid = _poisson_pmfs(home_rate)[:, :, None] * _poisson_pmfs(away_rate)[:, None, :]
        grid[:, 0, 0] *= 1.0 - self.rho * home_rate * away_rate
        grid[:, 0, 1] *= 1.0 + self.rho * home_rate
        grid[:, 1, 0] *= 1.0 + self.rho * away_rate
        grid[:, 1, 1] *= 1.0 - self.rho
        grid = np.maximum(grid, 0.0)  # tau can go negative only at rates no match has; keep probabilities
        goals = np.arange(MAX_GOALS + 1)
        home_goals, away_goals = goals[:, None], goals[None, :]
        outcome = np.column_stack([grid[:, home_goals > away_goals].sum(axis=1),
                                   grid[:, home_goals == away_goals].sum(axis=1),
                                   grid[:, home_goals < away_goals].sum(axis=1)])
        return outcome / outcome.sum(axis=1, keepdims=True)


def poisson_outcome(home_rate: float, away_rate: float) -> tuple[float, float, float]:
    """Win, draw and loss for two independent Poisson goal counts, up to MAX_GOALS each, renormalised."""
    home_pmf, away_pmf = _poisson_pmf(home_rate), _poisson_pmf(away_rate)
    win = draw = loss = 0.0
    away_below = 0.0  # P(away goals < i)
    for goals in range(MAX_GOALS + 1):
        win += home_pmf[goals] * away_below
        draw += home_pmf[goals] * away_pmf[goals]
        away_below += away_pmf[goals]
    home_below = 0.0
    for goals in range(MAX_GOALS + 1):
        loss += away_pmf[goals] * home_below
        home_below += home_pmf[goals]
    total = (win + loss) + draw  # the same sum, bit for bit, with the sides swapped
    return win / total, draw / total, loss / total


def _poisson_pmf(rate: float) -> list[float]:
    pmf = [math.exp(-rate)]
    for goals in range(1, MAX_GOALS + 1):
        pmf.append(pmf[-1] * rate / goals)
    return pmf


def _poisson_pmfs(rate: np.ndarray) -> np.ndarray:
    goals = np.arange(MAX_GOALS + 1)
    log_factorial = np.concatenate([[0.0], np.cumsum(np.log(goals[1:]))])
    return np.exp(goals * np.log(rate)[:, None] - rate[:, None] - log_factorial)


class _GoalLikelihood:
    """The weighted Dixon-Coles log likelihood less the ridge, in theta = (mu, home_adv, rho, attack, defence).

    Each match has two linear predictors, eta_home = X_home @ theta and eta_away = X_away @ theta, each row four
    (column, value) pairs; the per-match derivatives in (eta_home, eta_away, rho) are mapped back through them."""

    def __init__(self, home: np.ndarray, away: np.ndarray, home_goals: np.ndarray, away_goals: np.ndarray,
                 at_home: np.ndarray, weight: np.ndarray, n_teams: int, ridge: float) -> None:
        self.n_params = 3 + 2 * n_teams
        ones = np.ones_like(at_home)
        self.home_cols = np.column_stack([np.zeros_like(home), np.ones_like(home), 3 + home, 3 + n_teams + away])
        self.home_vals = np.column_stack([ones, at_home, ones, -ones])
        self.away_cols = np.column_stack([np.zeros_like(home), np.ones_like(home), 3 + away, 3 + n_teams + home])
        self.away_vals = np.column_stack([ones, 0.0 * ones, ones, -ones])
        self.x, self.y, self.weight, self.ridge = home_goals, away_goals, weight, ridge
        # The Hessian is a sum over matches of h_hh X_home' X_home + h_aa X_away' X_away + h_ha (X_home' X_away + its
        # transpose): where each product lands and its values are fixed, only the four coefficients change.
        pairs = [(self.home_cols, self.home_vals, self.home_cols, self.home_vals),
                 (self.away_cols, self.away_vals, self.away_cols, self.away_vals),
                 (self.home_cols, self.home_vals, self.away_cols, self.away_vals),
                 (self.away_cols, self.away_vals, self.home_cols, self.home_vals)]
        self.pair_index = np.stack([(rows[:, :, None] * self.n_params + cols[:, None, :]).reshape(len(rows), -1)
                                    for rows, _, cols, _ in pairs], axis=1).ravel()
        self.pair_values = np.stack([(row_vals[:, :, None] * col_vals[:, None, :]).reshape(len(rows), -1)
                                     for rows, row_vals, _, col_vals in pairs], axis=1)
        # tau = 1 + rho * sign * exp(exponent . (eta_home, eta_away)) on the four low scores, 1 elsewhere
        low = [(0, 0, -1.0, 1.0, 1.0), (0, 1, 1.0, 1.0, 0.0), (1, 0, 1.0, 0.0, 1.0), (1, 1, -1.0, 0.0, 0.0)]
        self.sign, self.exp_home, self.exp_away = (np.zeros(len(weight)) for _ in range(3))
        for goals_home, goals_away, sign, exp_home, exp_away in low:
            rows = (home_goals == goals_home) & (away_goals == goals_away)
            self.sign[rows], self.exp_home[rows], self.exp_away[rows] = sign, exp_home, exp_away

    def _predictors(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        eta_home = (theta[self.home_cols] * self.home_vals).sum(axis=1)
        eta_away = (theta[self.away_cols] * self.away_vals).sum(axis=1)
        tau_term = self.sign * np.exp(self.exp_home * eta_home + self.exp_away * eta_away)  # c * E
        return eta_home, eta_away, tau_term, theta[2] * tau_term  # the last is r: tau = 1 + r

    def value(self, theta: np.ndarray) -> float:
        eta_home, eta_away, _, r = self._predictors(theta)
        if np.any(1.0 + r <= 0.0):
            return -np.inf
        per_match = self.x * eta_home - np.exp(eta_home) + self.y * eta_away - np.exp(eta_away) + np.log1p(r)
        return float(self.weight @ per_match - 0.5 * self.ridge * theta[3:] @ theta[3:])

    def derivatives(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        eta_home, eta_away, tau_term, r = self._predictors(theta)
        w = self.weight
        d_tau, d2_tau = r / (1.0 + r), r / (1.0 + r) ** 2
        g_home = w * (self.x - np.exp(eta_home) + self.exp_home * d_tau)
        g_away = w * (self.y - np.exp(eta_away) + self.exp_away * d_tau)
        h_hh = w * (-np.exp(eta_home) + self.exp_home * d2_tau)
        h_aa = w * (-np.exp(eta_away) + self.exp_away * d2_tau)
        h_ha = w * self.exp_home * self.exp_away * d2_tau
        h_rho_eta = w * tau_term / (1.0 + r) ** 2
        size = self.n_params
        gradient = self._spread(g_home, g_away)
        gradient[2] += w @ (tau_term / (1.0 + r))
        gradient[3:] -= self.ridge * theta[3:]
        hessian = np.bincount(self.pair_index, (np.column_stack([h_hh, h_aa, h_ha, h_ha])[:, :, None]
                                                * self.pair_values).ravel(), size**2).reshape(size, size)
        rho_row = self._spread(h_rho_eta * self.exp_home, h_rho_eta * self.exp_away)
        hessian[2, :] += rho_row
        hessian[:, 2] += rho_row
        hessian[2, 2] -= w @ (tau_term / (1.0 + r)) ** 2
        hessian[np.arange(3, size), np.arange(3, size)] -= self.ridge
        return gradient, hessian

    def _spread(self, per_home: np.ndarray, per_away: np.ndarray) -> np.ndarray:
        """X_home' per_home + X_away' per_away: per-match derivatives in the two predictors, back to theta."""
        return (np.bincount(self.home_cols.ravel(), (self.home_vals * per_home[:, None]).ravel(), self.n_params)
                + np.bincount(self.away_cols.ravel(), (self.away_vals * per_away[:, None]).ravel(), self.n_params))


def fit_dixon_coles(home_teams: ArrayLike, away_teams: ArrayLike, home_goals: ArrayLike, away_goals: ArrayLike,
                    neutral: ArrayLike, dates: ArrayLike, as_of: str, xi: float = XI,
                    ridge: float = RIDGE) -> DixonColes:
    """Weighted maximum likelihood, strengths and rho jointly, by Newton on the dense Hessian; each match weighs
    exp(-xi * days before as_of), matches after as_of or weighing under MIN_WEIGHT are left out."""
    days = (pd.Timestamp(as_of) - pd.to_datetime(pd.Series(np.asarray(dates)))).dt.days.to_numpy()
    weight = np.exp(-xi * days.astype(float))
    keep = (days >= 0) & (weight >= MIN_WEIGHT)
    names = np.concatenate([np.asarray(home_teams, dtype=object)[keep], np.asarray(away_teams, dtype=object)[keep]])
    codes, teams = pd.factorize(pd.Series(names, dtype=str), sort=True)
    home, away = codes[: keep.sum()], codes[keep.sum():]
    x = np.asarray(home_goals, dtype=float)[keep]
    y = np.asarray(away_goals, dtype=float)[keep]
    at_home = 1.0 - np.asarray(neutral, dtype=float)[keep]
    likelihood = _GoalLikelihood(home, away, x, y, at_home, weight[keep], len(teams), ridge)
    start = np.zeros(likelihood.n_params)
    start[0] = np.log(max(np.concatenate([x, y]).mean(), 0.1)) if len(x) else 0.0
    theta = _newton(likelihood.value, likelihood.derivatives, start)
    return DixonColes(teams=tuple(teams), attack=theta[3:3 + len(teams)], defence=theta[3 + len(teams):],
                      mu=float(theta[0]), home_adv=float(theta[1]), rho=float(theta[2]))
