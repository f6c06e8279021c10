"""The prediction log: one row per answered prediction, in a schema made for BI.

The table's shape lives here for the shipper; the migrations in pronostico/prediction_log/migrations create it (a test
proves the two agree). The request path never talks to the database: it turns an answer into one JSON line
(`log_line`) that the spool keeps on disk, and the log shipper inserts those lines here in batches, idempotently by
prediction id.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from functools import cache
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite

from pronostico.core.usecases import USE_CASES
from pronostico.core.usecases.base import UseCase

CHANNELS = ("form", "api")
ENCODER = msgspec.json.Encoder()
# Each use case's answer fields (UseCase.log_columns) and classes map onto these columns; a use case with new ones
# adds them in a migration and here.
INPUT_COLUMNS = ("home_team", "away_team", "neutral", "tournament", "symbol", "as_of")
PROBABILITY_CLASSES = ("home_win", "draw", "away_win", "sell", "hold", "buy")

metadata = sa.MetaData()

# DATETIME(6) on MySQL keeps the microseconds; SQLite keeps ISO text, which sorts and groups the same way.
UtcDateTime = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")

prediction_log = sa.Table(
    "prediction_log",
    metadata,
    sa.Column("prediction_id", sa.String(36), primary_key=True, comment="UUIDv7 of the answer"),
    sa.Column("created_at", UtcDateTime, nullable=False, comment="when it was answered, UTC"),
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
    sa.Column("rolled_up", sa.Boolean, nullable=False, server_default=sa.text("0"),
              comment="counted in the rollups; only such rows are pruned"),
    sa.Index("ix_prediction_log_created_at", "created_at"),
    sa.Index("ix_prediction_log_use_case_created_at", "use_case", "created_at"),
    sa.Index("ix_prediction_log_rolled_up", "rolled_up"),
    mysql_charset="utf8mb4",
)

# what a spool line carries; rolled_up is the database's own bookkeeping
COLUMNS = tuple(c.name for c in prediction_log.columns if c.name != "rolled_up")

# What really happened, loaded by the shipper from each run's events file (pronostico.prediction_log.live); the
# views prediction_live_results and model_live_scores score the logged predictions against it.
observed_events = sa.Table(
    "observed_events",
    metadata,
    sa.Column("use_case", sa.String(32), primary_key=True),
    sa.Column("subject_a", sa.String(100), primary_key=True, comment="home team, or the symbol"),
    sa.Column("subject_b", sa.String(100), primary_key=True, server_default="",
              comment="away team, or empty for assets"),
    sa.Column("event_date", sa.Date, primary_key=True, comment="when it happened"),
    sa.Column("earliest_as_of", sa.Date, nullable=False, comment="the oldest prediction as_of this event resolves"),
    sa.Column("outcome", sa.String(16), nullable=False, comment="the class that happened"),
    sa.Column("loaded_at", UtcDateTime, nullable=False, comment="when the shipper last wrote it, UTC"),
    sa.Index("ix_observed_events_window", "use_case", "subject_a", "subject_b", "event_date", "earliest_as_of",
             "outcome"),
    mysql_charset="utf8mb4",
)

# The rollups (pronostico.prediction_log.rollups): what the analytics page, the live results and QuickSight read, kept
# up to date by the shipper in the transaction that inserts the rows. A new dimension (e.g. a `client` column) joins
# each table's primary key after `model_version` (or `use_case` for the subjects).
COUNT = sa.BigInteger


def _rollup(name: str, key: tuple[sa.Column[Any], ...], *values: sa.Column[Any] | sa.Index) -> sa.Table:
    return sa.Table(name, metadata, *key, sa.Column("predictions", COUNT, nullable=False), *values,
                    mysql_charset="utf8mb4")


def _key(*names: str) -> tuple[sa.Column[Any], ...]:
    types = {"use_case": sa.String(32), "model_version": sa.String(64), "outcome": sa.String(16),
             "subject_a": sa.String(100), "subject_b": sa.String(100), "as_of": sa.Date(), "day": sa.Date(),
             "hour": UtcDateTime}
    return tuple(sa.Column(name, types[name], primary_key=True) for name in names)


rollup_hourly = _rollup("prediction_rollup_hourly", _key("hour", "use_case", "model_version", "outcome"))
rollup_daily = _rollup("prediction_rollup_daily", _key("day", "use_case", "model_version", "outcome"),
                       sa.Column("first_at", UtcDateTime, nullable=False),
                       sa.Column("last_at", UtcDateTime, nullable=False))
# per subject, all time: the top lists (matchups: home and away team as asked; assets: the symbol and '')
rollup_subjects = _rollup("prediction_rollup_subjects", _key("use_case", "subject_a", "subject_b"),
                          sa.Column("last_at", UtcDateTime, nullable=False))
# per subject and as_of: everything the live results need, whatever event resolves them and whenever it comes: how
# many predicted each class, and each class's summed log loss; event_date and observed are the resolving event
rollup_live = _rollup(
    "prediction_rollup_live", _key("use_case", "model_version", "subject_a", "subject_b", "as_of"),
    *(sa.Column(f"predicted_{name}", COUNT, nullable=False) for name in PROBABILITY_CLASSES),
    *(sa.Column(f"loss_{name}", sa.Double, nullable=False) for name in PROBABILITY_CLASSES),
    sa.Column("event_date", sa.Date, comment="the first event that resolves these predictions (NULL: none yet)"),
    sa.Column("observed", sa.String(16), comment="that event's outcome"),
    # no longer set: a batch's live totals are resolved before their upsert (rollups.resolve_totals); a later
    # migration may drop the column and its index
    sa.Column("resolution_due", sa.Boolean, nullable=False, server_default=sa.text("0"),
              comment="new: resolve against observed_events before the transaction commits"),
    sa.Index("ix_prediction_rollup_live_resolution_due", "resolution_due"),
)
ROLLUPS = (rollup_hourly, rollup_daily, rollup_subjects, rollup_live)

EVENT_KEY = ("use_case", "subject_a", "subject_b", "event_date")
EVENT_VALUES = ("earliest_as_of", "outcome", "loaded_at")
EVENT_FIELDS = ("subject_a", "subject_b", "event_date", "earliest_as_of", "outcome")  # of each event in a file


def check_use_cases(use_cases: Iterable[UseCase]) -> None:
    """Fail loudly at start-up if a use case answers a class or logs a field the table has no column for."""
    for use_case in use_cases:
        missing = [f"p_{c}" for c in use_case.classes if c not in PROBABILITY_CLASSES]
        missing += [c for c in use_case.log_columns if c not in INPUT_COLUMNS]
        if missing:
            raise RuntimeError(f"prediction_log has no column {', '.join(missing)} for {use_case.name}: "
                               "add them in a migration and to prediction_log.schema")


@cache
def row_mapping(use_case: str) -> tuple[str, tuple[str, ...]]:
    """The answer field the `outcome` column takes, and the answer fields logged as columns (kept per process: it is
    on every answer's path, and a registry lookup costs more than the rest of the row)."""
    spec = USE_CASES[use_case]
    return spec.answer_class_field, spec.log_columns


def log_line(use_case: str, channel: str, answer: Mapping[str, Any], latency_ms: float,
             answered_at: datetime | None = None) -> bytes:
    """The spool line for one answered prediction: a flat JSON object keyed by column name."""
    class_field, log_columns = row_mapping(use_case)
    row: dict[str, Any] = {
        "prediction_id": answer["prediction_id"],
        "created_at": (answered_at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%f"),
        "use_case": use_case,
        "channel": channel,
        "model_version": answer["model_version"],
        "outcome": answer[class_field],
        "latency_ms": round(latency_ms, 3),
    }
    for name in log_columns:
        row[name] = answer[name]
    for name, probability in answer["probabilities"].items():
        row[f"p_{name}"] = probability
    return ENCODER.encode(row) + b"\n"


def row_from_line(line: bytes) -> dict[str, Any]:
    """A spool line as the full set of column values (executemany needs the same keys in every row)."""
    data = json.loads(line)
    if not isinstance(data, dict) or not data.get("prediction_id"):
        raise ValueError("a spool line must be a JSON object with a prediction_id")
    row = {name: data.get(name) for name in COLUMNS}
    row["created_at"] = datetime.fromisoformat(row["created_at"]).replace(tzinfo=None)
    if row["as_of"]:
        row["as_of"] = date.fromisoformat(row["as_of"])
    return row


def insert_ignoring_duplicates(dialect_name: str) -> sa.Insert:
    """INSERT that skips rows whose prediction_id is already logged, so that a replay is harmless."""
    if dialect_name in ("mysql", "mariadb"):
        statement = mysql.insert(prediction_log)
        return statement.on_duplicate_key_update(prediction_id=prediction_log.c.prediction_id)
    if dialect_name == "sqlite":
        return sqlite.insert(prediction_log).on_conflict_do_nothing(index_elements=["prediction_id"])
    if dialect_name == "postgresql":
        return postgresql.insert(prediction_log).on_conflict_do_nothing(index_elements=["prediction_id"])
    raise ValueError(f"the prediction log does not support {dialect_name!r} databases")


def insert_rows(connection: sa.Connection, rows: Iterable[Mapping[str, Any]]) -> int:
    """Log the rows whose prediction_id is new and count them in the rollups, in the caller's transaction; return
    how many were new. (rollups is imported here, not at the top: it is built on this module's tables.)"""
    from pronostico.prediction_log.rollups import log_and_roll_up

    return log_and_roll_up(connection, list(rows))


def upsert_events_statement(dialect_name: str) -> sa.Insert:
    """INSERT that replaces the window start, the outcome and loaded_at of an event already there (same key)."""
    if dialect_name in ("mysql", "mariadb"):
        statement = mysql.insert(observed_events)
        return statement.on_duplicate_key_update({name: statement.inserted[name] for name in EVENT_VALUES})
    if dialect_name in ("sqlite", "postgresql"):
        statement = (sqlite if dialect_name == "sqlite" else postgresql).insert(observed_events)
        return statement.on_conflict_do_update(index_elements=list(EVENT_KEY),
                                               set_={name: statement.excluded[name] for name in EVENT_VALUES})
    raise ValueError(f"observed events do not support {dialect_name!r} databases")


def upsert_events(connection: sa.Connection, use_case: str, events: Iterable[Mapping[str, Any]],
                  batch_rows: int = 1000) -> int:
    """Insert a use case's events, or update the ones already loaded; return how many were written.

    Each event has subject_a, subject_b, event_date, earliest_as_of (dates) and outcome.
    """
    loaded_at = datetime.now(UTC).replace(tzinfo=None)
    rows = [{"use_case": use_case, "loaded_at": loaded_at, **{name: event[name] for name in EVENT_FIELDS}}
            for event in events]
    statement = upsert_events_statement(connection.dialect.name)
    for start in range(0, len(rows), batch_rows):
        connection.execute(statement, rows[start:start + batch_rows])
    from pronostico.prediction_log.rollups import resolve_use_case  # built on this module's tables, as above

    resolve_use_case(connection, use_case)  # new events may resolve old predictions, or resolve them otherwise
    return len(rows)
