"""Rollups: the log counted per hour, day, subject and as_of; the views QuickSight and the analytics page read now
read them instead of scanning every raw row.

Revision ID: 0004
Revises: 0003
Create Date: 2027-01-11

The views keep their names and columns. prediction_live_results stays a view over the raw rows (one row per resolved
prediction: there is nothing to roll up), so it covers only the rows retention has kept. Raw rows logged before this
revision are counted by the shipper when it starts (pronostico.prediction_log.rollups.catch_up), not here: a long
INSERT ... SELECT at an instance's boot would hold the migration lock for minutes on a big log.
"""

from __future__ import annotations

import runpy
from pathlib import Path

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

PROBABILITY_CLASSES = ("home_win", "draw", "away_win", "sell", "hold", "buy")
DATETIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
KEY_TYPES = {"use_case": sa.String(32), "model_version": sa.String(64), "outcome": sa.String(16),
             "subject_a": sa.String(100), "subject_b": sa.String(100), "as_of": sa.Date(), "day": sa.Date(),
             "hour": DATETIME}

# hits: the predictions of the class that happened; log loss: that class's summed loss
HITS = "CASE observed {} END".format(" ".join(f"WHEN '{c}' THEN predicted_{c}" for c in PROBABILITY_CLASSES))
LOSS = "CASE observed {} END".format(" ".join(f"WHEN '{c}' THEN loss_{c}" for c in PROBABILITY_CLASSES))

VIEWS = {
    "prediction_hourly": """
        SELECT hour, use_case, SUM(predictions) AS predictions
        FROM prediction_rollup_hourly GROUP BY hour, use_case""",
    "prediction_daily": """
        SELECT day, use_case, SUM(predictions) AS predictions
        FROM prediction_rollup_daily GROUP BY day, use_case""",
    "prediction_top_matchups": """
        SELECT subject_a AS home_team, subject_b AS away_team, predictions, last_at AS last_asked
        FROM prediction_rollup_subjects WHERE use_case = 'matchups'""",
    "prediction_top_teams": """
        SELECT team, SUM(predictions) AS predictions FROM (
            SELECT subject_a AS team, predictions FROM prediction_rollup_subjects WHERE use_case = 'matchups'
            UNION ALL
            SELECT subject_b AS team, predictions FROM prediction_rollup_subjects WHERE use_case = 'matchups'
        ) AS asked GROUP BY team""",
    "prediction_top_symbols": """
        SELECT subject_a AS symbol, predictions, last_at AS last_asked
        FROM prediction_rollup_subjects WHERE use_case = 'assets'""",
    "prediction_outcomes": """
        SELECT use_case, outcome, SUM(predictions) AS predictions
        FROM prediction_rollup_daily GROUP BY use_case, outcome""",
    # 1e0 *: a double, not MySQL's DECIMAL quotient
    "model_live_scores": f"""
        SELECT logged.use_case, logged.model_version, logged.predictions,
               COALESCE(live.resolved, 0) AS resolved, COALESCE(live.hits, 0) AS hits,
               1e0 * live.hits / live.resolved AS hit_rate, live.loss / live.resolved AS log_loss,
               logged.first_prediction_at, logged.last_prediction_at
        FROM (SELECT use_case, model_version, SUM(predictions) AS predictions,
                     MIN(first_at) AS first_prediction_at, MAX(last_at) AS last_prediction_at
              FROM prediction_rollup_daily GROUP BY use_case, model_version) AS logged
        LEFT JOIN (SELECT use_case, model_version, SUM(predictions) AS resolved, SUM({HITS}) AS hits,
                          SUM({LOSS}) AS loss
                   FROM prediction_rollup_live WHERE observed IS NOT NULL GROUP BY use_case, model_version) AS live
          ON live.use_case = logged.use_case AND live.model_version = logged.model_version""",
}


def previous_views() -> dict[str, str]:
    """The views as 0002 and 0003 made them, over the raw rows, in this dialect (for the downgrade)."""
    here = Path(__file__).resolve().parent
    bi, live = runpy.run_path(str(here / "0002_bi_views.py")), runpy.run_path(str(here / "0003_live_results.py"))
    dialect = op.get_bind().dialect.name
    hour = bi["HOUR_BUCKET"]["mysql" if dialect == "mariadb" else dialect]
    return {name: select.format(hour=hour) for name, select in bi["VIEWS"].items()} | {
        name: live["VIEWS"][name] for name in VIEWS if name in live["VIEWS"]}


def rollup(name: str, key: tuple[str, ...], *values: sa.Column) -> None:
    op.create_table(name, *(sa.Column(k, KEY_TYPES[k], primary_key=True) for k in key),
                    sa.Column("predictions", sa.BigInteger, nullable=False), *values, mysql_charset="utf8mb4")


def upgrade() -> None:
    op.add_column("prediction_log", sa.Column("rolled_up", sa.Boolean, nullable=False, server_default=sa.text("0"),
                                              comment="counted in the rollups; only such rows are pruned"))
    op.create_index("ix_prediction_log_rolled_up", "prediction_log", ["rolled_up"])
    rollup("prediction_rollup_hourly", ("hour", "use_case", "model_version", "outcome"))
    rollup("prediction_rollup_daily", ("day", "use_case", "model_version", "outcome"),
           sa.Column("first_at", DATETIME, nullable=False), sa.Column("last_at", DATETIME, nullable=False))
    rollup("prediction_rollup_subjects", ("use_case", "subject_a", "subject_b"),
           sa.Column("last_at", DATETIME, nullable=False))
    rollup("prediction_rollup_live", ("use_case", "model_version", "subject_a", "subject_b", "as_of"),
           *(sa.Column(f"predicted_{c}", sa.BigInteger, nullable=False) for c in PROBABILITY_CLASSES),
           *(sa.Column(f"loss_{c}", sa.Double, nullable=False) for c in PROBABILITY_CLASSES),
           sa.Column("event_date", sa.Date, comment="the first event that resolves these predictions (NULL: none yet)"),
           sa.Column("observed", sa.String(16), comment="that event's outcome"),
           sa.Column("resolution_due", sa.Boolean, nullable=False, server_default=sa.text("0"),
                     comment="new: resolve against observed_events before the transaction commits"))
    op.create_index("ix_prediction_rollup_live_resolution_due", "prediction_rollup_live", ["resolution_due"])
    for name, select in VIEWS.items():
        op.execute(f"DROP VIEW IF EXISTS {name}")
        op.execute(f"CREATE VIEW {name} AS {select.strip()}")


def downgrade() -> None:
    for name, select in previous_views().items():
        op.execute(f"DROP VIEW IF EXISTS {name}")
        op.execute(f"CREATE VIEW {name} AS {select.strip()}")
    op.drop_index("ix_prediction_rollup_live_resolution_due", table_name="prediction_rollup_live")
    for name in ("prediction_rollup_live", "prediction_rollup_subjects", "prediction_rollup_daily",
                 "prediction_rollup_hourly"):
        op.drop_table(name)
    op.drop_index("ix_prediction_log_rolled_up", table_name="prediction_log")
    op.drop_column("prediction_log", "rolled_up")
