"""Views for QuickSight and the analytics page: traffic per hour and day, most-asked matchups, teams and symbols.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23

The SQL is portable between MySQL/MariaDB and SQLite except the hour bucket, which each dialect spells its own way.
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

HOUR_BUCKET = {
    "mysql": "TIMESTAMPADD(HOUR, HOUR(created_at), DATE(created_at))",
    "sqlite": "strftime('%Y-%m-%d %H:00:00', created_at)",
    "postgresql": "date_trunc('hour', created_at)",
}

VIEWS = {
    "prediction_hourly": """
        SELECT {hour} AS hour, use_case, COUNT(*) AS predictions
        FROM prediction_log GROUP BY {hour}, use_case""",
    "prediction_daily": """
        SELECT DATE(created_at) AS day, use_case, COUNT(*) AS predictions
        FROM prediction_log GROUP BY DATE(created_at), use_case""",
    "prediction_top_matchups": """
        SELECT home_team, away_team, COUNT(*) AS predictions, MAX(created_at) AS last_asked
        FROM prediction_log WHERE use_case = 'matchups' GROUP BY home_team, away_team""",
    "prediction_top_teams": """
        SELECT team, COUNT(*) AS predictions FROM (
            SELECT home_team AS team FROM prediction_log WHERE use_case = 'matchups'
            UNION ALL
            SELECT away_team AS team FROM prediction_log WHERE use_case = 'matchups'
        ) AS asked GROUP BY team""",
    "prediction_top_symbols": """
        SELECT symbol, COUNT(*) AS predictions, MAX(created_at) AS last_asked
        FROM prediction_log WHERE use_case = 'assets' GROUP BY symbol""",
    "prediction_outcomes": """
        SELECT use_case, outcome, COUNT(*) AS predictions
        FROM prediction_log GROUP BY use_case, outcome""",
}


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    hour = HOUR_BUCKET["mysql" if dialect == "mariadb" else dialect]
    for name, select in VIEWS.items():
        op.execute(f"CREATE VIEW {name} AS {select.format(hour=hour).strip()}")


def downgrade() -> None:
    for name in reversed(list(VIEWS)):
        op.execute(f"DROP VIEW IF EXISTS {name}")
