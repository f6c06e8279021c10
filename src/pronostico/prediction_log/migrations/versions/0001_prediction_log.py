"""The prediction log: one row per answered prediction, typed for BI.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

PROBABILITY_CLASSES = ("home_win", "draw", "away_win", "sell", "hold", "buy")


def upgrade() -> None:
    op.create_table(
        "prediction_log",
        sa.Column("prediction_id", sa.String(36), primary_key=True, comment="UUIDv7 of the answer"),
        sa.Column("created_at", sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb"),
                  nullable=False, comment="when it was answered, UTC"),
        sa.Column("use_case", sa.String(32), nullable=False),
        sa.Column("channel", sa.String(8), nullable=False, comment="form | api"),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("home_team", sa.String(100)),
        sa.Column("away_team", sa.String(100)),
        sa.Column("neutral", sa.Boolean),
        sa.Column("tournament", sa.String(32)),
        sa.Column("symbol", sa.String(32)),
        sa.Column("as_of", sa.Date, comment="the asset's last bar"),
        sa.Column("outcome", sa.String(16), nullable=False, comment="matchups: the outcome; assets: the signal"),
        *(sa.Column(f"p_{name}", sa.Float) for name in PROBABILITY_CLASSES),
        sa.Column("latency_ms", sa.Float, nullable=False, comment="parse and model time in the app"),
        mysql_charset="utf8mb4",
    )
    op.create_index("ix_prediction_log_created_at", "prediction_log", ["created_at"])
    op.create_index("ix_prediction_log_use_case_created_at", "prediction_log", ["use_case", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_prediction_log_use_case_created_at", table_name="prediction_log")
    op.drop_index("ix_prediction_log_created_at", table_name="prediction_log")
    op.drop_table("prediction_log")
