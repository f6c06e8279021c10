"""Alembic's environment for the prediction log: the URL comes from pronostico.prediction_log.db (PRONOSTICO_DB_URL)."""

from __future__ import annotations

from alembic import context

from pronostico.prediction_log.db import create_engine

config = context.config


def database_url() -> str:
    from pronostico.core.config import load_settings

    return config.attributes.get("db_url") or load_settings().db_url


def run_offline() -> None:
    context.configure(url=database_url(), literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    engine = create_engine(database_url())
    try:
        with engine.connect() as connection:
            context.configure(connection=connection, transaction_per_migration=True)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
