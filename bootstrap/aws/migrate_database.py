"""Apply the prediction log's Alembic migrations from a web instance's boot, one instance at a time.

Every web instance runs this at boot, and an autoscaling group starts several at once. MySQL's DDL is not
transactional, so two concurrent `python -m pronostico.prediction_log.db upgrade` runs could both try to create the
same table.
A named lock (GET_LOCK), held on its own connection for the whole upgrade, serialises them: the first
instance migrates, the others then find the schema at head and do nothing.
"""

from __future__ import annotations

import subprocess
import sys

import sqlalchemy as sa

from pronostico.core.config import load_settings
from pronostico.prediction_log.db import create_engine

LOCK_NAME = "pronostico-migrations"
LOCK_TIMEOUT_SECONDS = 900


def upgrade_under_lock(db_url: str) -> None:
    engine = create_engine(db_url)
    with engine.connect() as connection:
        got = connection.execute(sa.text("SELECT GET_LOCK(:name, :timeout)"),
                                 {"name": LOCK_NAME, "timeout": LOCK_TIMEOUT_SECONDS}).scalar()
        if got != 1:
            raise SystemExit(f"could not take the {LOCK_NAME} lock within {LOCK_TIMEOUT_SECONDS} s")
        try:
            subprocess.run([sys.executable, "-m", "pronostico.prediction_log.db", "upgrade"], check=True)
        finally:
            connection.execute(sa.text("SELECT RELEASE_LOCK(:name)"), {"name": LOCK_NAME})
    engine.dispose()


if __name__ == "__main__":
    upgrade_under_lock(load_settings().db_url)
