"""Live results: the real events the pipeline observed, and views that score each logged prediction against them.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02

An event resolves the predictions about its subject whose as_of lies in [earliest_as_of, event_date); a prediction is
resolved by the first such event. The SQL is portable between MySQL/MariaDB and SQLite (both have LN).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

PROBABILITY_CLASSES = ("home_win", "draw", "away_win", "sell", "hold", "buy")
# a probability of 0 for what happened would make the log loss infinite; 1e-15 caps it at about 34.5
FLOOR = "1e-15"

# The logged probability of the class that happened; a class the answer had no probability for counts as 0.
P_OBSERVED = "CASE e.outcome {} END".format(
    " ".join(f"WHEN '{name}' THEN COALESCE(p.p_{name}, 0)" for name in PROBABILITY_CLASSES))
CLIPPED = f"CASE WHEN p_raw < {FLOOR} THEN {FLOOR} ELSE p_raw END"

# The subject of a prediction as the events name it: matchups (home_team, away_team), assets (symbol, '').
# An event of the subject in the window, with no earlier one in the window: the first event resolves it.
RESOLVED = f"""
    SELECT p.prediction_id, p.created_at, p.use_case, p.model_version, p.as_of, p.outcome AS predicted,
           e.outcome AS observed, e.event_date, {P_OBSERVED} AS p_raw
    FROM prediction_log p
    JOIN observed_events e
      ON e.use_case = p.use_case
     AND e.subject_a = COALESCE(p.home_team, p.symbol)
     AND e.subject_b = COALESCE(p.away_team, '')
     AND e.earliest_as_of <= p.as_of AND p.as_of < e.event_date
    WHERE NOT EXISTS (
        SELECT 1 FROM observed_events f
        WHERE f.use_case = e.use_case AND f.subject_a = e.subject_a AND f.subject_b = e.subject_b
          AND f.event_date < e.event_date AND f.earliest_as_of <= p.as_of AND p.as_of < f.event_date)"""

VIEWS = {
    "prediction_live_results": f"""
        SELECT prediction_id, created_at, use_case, model_version, as_of, predicted, observed, event_date,
               CASE WHEN predicted = observed THEN 1 ELSE 0 END AS hit,
               {CLIPPED} AS p_observed, -LN({CLIPPED}) AS log_loss
        FROM ({RESOLVED}) AS resolved""",
    # 1e0 * hit: the mean of a double, not MySQL's DECIMAL mean of an integer
    "model_live_scores": """
        SELECT logged.use_case, logged.model_version, logged.predictions,
               COALESCE(live.resolved, 0) AS resolved, COALESCE(live.hits, 0) AS hits,
               live.hit_rate, live.log_loss, logged.first_prediction_at, logged.last_prediction_at
        FROM (SELECT use_case, model_version, COUNT(*) AS predictions,
                     MIN(created_at) AS first_prediction_at, MAX(created_at) AS last_prediction_at
              FROM prediction_log GROUP BY use_case, model_version) AS logged
        LEFT JOIN (SELECT use_case, model_version, COUNT(*) AS resolved,
                          COUNT(CASE WHEN hit = 1 THEN 1 END) AS hits,
                          AVG(1e0 * hit) AS hit_rate, AVG(log_loss) AS log_loss
                   FROM prediction_live_results GROUP BY use_case, model_version) AS live
          ON live.use_case = logged.use_case AND live.model_version = logged.model_version""",
}


def upgrade() -> None:
    op.create_table(
        "observed_events",
        sa.Column("use_case", sa.String(32), primary_key=True),
        sa.Column("subject_a", sa.String(100), primary_key=True, comment="home team, or the symbol"),
        sa.Column("subject_b", sa.String(100), primary_key=True, server_default="",
                  comment="away team, or empty for assets"),
        sa.Column("event_date", sa.Date, primary_key=True, comment="when it happened"),
        sa.Column("earliest_as_of", sa.Date, nullable=False,
                  comment="the oldest prediction as_of this event resolves"),
        sa.Column("outcome", sa.String(16), nullable=False, comment="the class that happened"),
        sa.Column("loaded_at", sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb"),
                  nullable=False, comment="when the shipper last wrote it, UTC"),
        mysql_charset="utf8mb4",
    )
    # The views look a prediction's events up by subject and date, and check the window's start: covered here,
    # so SQLite reads no table row (InnoDB's clustered primary key covers it already).
    op.create_index("ix_observed_events_window", "observed_events",
                    ["use_case", "subject_a", "subject_b", "event_date", "earliest_as_of", "outcome"])
    for name, select in VIEWS.items():
        op.execute(f"CREATE VIEW {name} AS {select.strip()}")


def downgrade() -> None:
    for name in reversed(list(VIEWS)):
        op.execute(f"DROP VIEW IF EXISTS {name}")
    op.drop_index("ix_observed_events_window", table_name="observed_events")
    op.drop_table("observed_events")
