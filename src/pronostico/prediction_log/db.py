"""The prediction log's database: one way to make an engine, and the Alembic migrations' command line.

    python -m pronostico.prediction_log.db upgrade [REVISION]      # default head
    python -m pronostico.prediction_log.db downgrade REVISION      # e.g. base
    python -m pronostico.prediction_log.db current
    python -m pronostico.prediction_log.db upgrade --sql           # print the DDL instead of running it (for a DBA)

The URL is PRONOSTICO_DB_URL (config.py): SQLite under $PRONOSTICO_HOME by default, MySQL (RDS, or MariaDB
locally) with mysql+pymysql://user:password@host:3306/pronostico.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def create_engine(url: str, **options: Any) -> sa.Engine:
    """An engine that fails fast when the database is away, so the shipper can wait and retry."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, **options)
    connect_args: dict[str, Any] = {}
    if parsed.get_driver_name() == "pymysql":
        connect_args = {"connect_timeout": 5, "read_timeout": 30, "write_timeout": 30}
    return sa.create_engine(parsed, pool_pre_ping=True, pool_recycle=1800, connect_args=connect_args, **options)


def _sqlite_engine(url: sa.URL, **options: Any) -> sa.Engine:
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, connect_args={"timeout": 30}, **options)

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        # WAL: the analytics page reads while the shipper writes. FULL: a commit is on disk before the shipper
        # moves its spool position past the rows, or a power cut could lose rows the spool no longer holds.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()

    return engine


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # passed as an attribute, not an ini option, so that a '%' in a password needs no escaping
    config.attributes["db_url"] = url
    return config


def upgrade(url: str, revision: str = "head", sql: bool = False) -> None:
    command.upgrade(alembic_config(url), revision, sql=sql)


def downgrade(url: str, revision: str, sql: bool = False) -> None:
    command.downgrade(alembic_config(url), revision, sql=sql)


def current_revision(url: str) -> str | None:
    from alembic.runtime.migration import MigrationContext

    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    from pronostico.core.config import load_settings

    parser = argparse.ArgumentParser(prog="python -m pronostico.prediction_log.db",
                                     description="the prediction log's schema")
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("upgrade", help="apply migrations up to REVISION (default head)")
    up.add_argument("revision", nargs="?", default="head")
    up.add_argument("--sql", action="store_true", help="print the SQL instead of running it")
    down = commands.add_parser("downgrade", help="revert migrations down to REVISION (base: drop everything)")
    down.add_argument("revision")
    down.add_argument("--sql", action="store_true", help="print the SQL instead of running it")
    commands.add_parser("current", help="print the revision the database is at")
    args = parser.parse_args(argv)
    url = load_settings().db_url
    if args.command == "upgrade":
        upgrade(url, args.revision, sql=args.sql)
    elif args.command == "downgrade":
        downgrade(url, args.revision, sql=args.sql)
    else:
        print(current_revision(url) or "base (empty)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
