"""Reference fits for pronostico's strong football baselines, run in tools/goal-models' own environment.

    reference.py MATCHES.csv FIXTURES.csv --as-of YYYY-MM-DD --xi XI > out.json

MATCHES: date, home_team, away_team, home_score, away_score, neutral (0/1) and, for the ordered logit, elo_diff.
FIXTURES: home_team, away_team, neutral and, for the ordered logit, elo_diff. The JSON holds, per model, one
[home_win, draw, away_win] row per fixture: statsmodels' OrderedModel(distr="logit") on [elo_diff / 100, home]
fitted on every match, and penaltyblog's DixonColesGoalModel on the matches up to --as-of, weighted by its
dixon_coles_weights(xi), scores 0-10 each, renormalised, with its weighted log likelihood (dixon_coles_loglik).
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings

import numpy as np
import pandas as pd
from penaltyblog.models import DixonColesGoalModel, dixon_coles_weights
from statsmodels.miscmodels.ordinal_model import OrderedModel

MAX_GOALS = 10


def ordered_logit(matches: pd.DataFrame, fixtures: pd.DataFrame) -> list[list[float]]:
    # statsmodels orders the outcome upwards: away win (0) < draw (1) < home win (2), the reverse of pronostico's labels
    goal_diff = matches["home_score"] - matches["away_score"]
    outcome = np.where(goal_diff > 0, 2, np.where(goal_diff == 0, 1, 0))
    model = OrderedModel(outcome, _design(matches), distr="logit")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = model.fit(method="bfgs", maxiter=2000, gtol=1e-10, disp=False)
    probabilities = model.predict(result.params, exog=_design(fixtures))
    return probabilities[:, ::-1].tolist()


def _design(frame: pd.DataFrame) -> np.ndarray:
    return np.column_stack([frame["elo_diff"].to_numpy(float) / 100.0, 1.0 - frame["neutral"].to_numpy(float)])


def dixon_coles(matches: pd.DataFrame, fixtures: pd.DataFrame, as_of: str,
                xi: float) -> tuple[list[list[float]], float]:
    dates = pd.to_datetime(matches["date"])
    matches = matches[dates <= pd.Timestamp(as_of)]
    weights = dixon_coles_weights(pd.to_datetime(matches["date"]), xi, base_date=pd.Timestamp(as_of))
    model = DixonColesGoalModel(matches["home_score"].to_numpy(), matches["away_score"].to_numpy(),
                                matches["home_team"].to_numpy(), matches["away_team"].to_numpy(), weights=weights,
                                neutral_venue=matches["neutral"].to_numpy(int))
    model.fit()
    rows = []
    for fixture in fixtures.itertuples():
        grid = model.predict(fixture.home_team, fixture.away_team, max_goals=MAX_GOALS + 1,
                             neutral_venue=bool(fixture.neutral))
        rows.append([float(p) for p in grid.home_draw_away])
    return rows, float(model.loglikelihood)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("matches")
    parser.add_argument("fixtures")
    parser.add_argument("--as-of", required=True)
    parser.add_argument("--xi", type=float, required=True)
    parser.add_argument("--models", default="ordered_logit,dixon_coles")
    args = parser.parse_args(argv)
    matches, fixtures = pd.read_csv(args.matches), pd.read_csv(args.fixtures)
    answer: dict[str, object] = {}
    models = args.models.split(",")
    if "ordered_logit" in models:
        answer["ordered_logit"] = ordered_logit(matches, fixtures)
    if "dixon_coles" in models:
        answer["dixon_coles"], answer["dixon_coles_loglik"] = dixon_coles(matches, fixtures, args.as_of, args.xi)
    json.dump(answer, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1:])
