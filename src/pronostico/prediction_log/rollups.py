"""The rollups: the prediction log counted per hour, day, subject and as_of, so that no page scans the raw rows.

    python -m pronostico.prediction_log.rollups catch-up   # count the rows no shipper counted (e.g. logged before 0004)
    python -m pronostico.prediction_log.rollups prune      # delete counted raw rows older than the retention setting

The shipper inserts a batch and adds the rows that were new (their prediction_id not yet logged) to the rollups in
the same transaction (`log_and_roll_up`), so a replayed batch adds nothing and a crash leaves both or neither. Each
raw row says whether it is counted (`rolled_up`); rows logged before migration 0004 are not, and `catch_up` counts
them (the shipper does at start and on its slow cadence). Pruning deletes only counted rows.

The live results are kept unresolved in the rollup (per subject and as_of: how many predicted each class, and each
class's summed log loss), and resolved per rollup row: a new row against the events there are, and every row of a use
case again whenever its events are loaded. So a prediction that resolves weeks after it was shipped counts, and the
figures never need the raw rows again.
"""

from __future__ import annotations

import argparse
import logging
import math
import operator
import sys
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite

from pronostico.prediction_log.schema import (
    PROBABILITY_CLASSES,
    insert_ignoring_duplicates,
    observed_events,
    prediction_log,
    rollup_daily,
    rollup_hourly,
    rollup_live,
    rollup_subjects,
)

log = logging.getLogger("pronostico.prediction_log.rollups")

BATCH_ROWS = 10_000  # raw rows per catch-up or prune transaction: short locks, bounded undo
# a probability of 0 for what happened would make the log loss infinite; 1e-15 caps it at about 34.5 (as migration
# 0003's views do)
FLOOR = 1e-15
NO_CHANCE = -math.log(FLOOR)  # the loss of a class with no probability (or 0)
PROBABILITY_COLUMNS = tuple((name, f"p_{name}") for name in PROBABILITY_CLASSES)
SUBJECTS_PER_QUERY = 500  # subjects per SELECT of their events: under SQLite's bound-variable limit

Row = Mapping[str, Any]


# --- logging and counting -------------------------------------------------------------------------------------------

def log_and_roll_up(connection: sa.Connection, rows: list[Row]) -> int:
    """Insert the rows, skipping prediction ids already logged, and count the new ones; return how many were new."""
    if not rows:
        return 0
    new = insert_new(connection, [{**row, "rolled_up": True} for row in rows])
    roll_up(connection, new)
    return len(new)


def insert_new(connection: sa.Connection, rows: list[Row]) -> list[Row]:
    """Insert the rows whose prediction_id is not logged yet and return them, each id once. The INSERT itself says
    which rows it added, so a batch costs no SELECT of its ids (one took a tenth of the rollups' cost): SQLite and
    PostgreSQL return the ids they inserted; MySQL has no RETURNING, so a plain INSERT in a savepoint adds every row
    or, when one id is logged already (a batch replayed after a crash), nothing, and only then are the logged ids
    looked up."""
    dialect = connection.dialect.name
    if dialect in ("sqlite", "postgresql"):
        statement = insert_ignoring_duplicates(dialect).returning(prediction_log.c.prediction_id)
        added = set(connection.execute(statement, rows).scalars())
        return first_of_each(row for row in rows if row["prediction_id"] in added)
    try:
        with connection.begin_nested():
            connection.execute(sa.insert(prediction_log), rows)
        return rows
    except sa.exc.IntegrityError:  # a duplicate id; any other refusal raises again below, as the shipper expects
        logged = set(connection.execute(_logged_ids(), {"ids": [row["prediction_id"] for row in rows]}).scalars())
        connection.execute(insert_ignoring_duplicates(dialect), rows)
        return first_of_each(row for row in rows if row["prediction_id"] not in logged)


def first_of_each(rows: Iterable[Row]) -> list[Row]:
    """The first row of each prediction id: the one a batch with an id twice inserts."""
    first: dict[str, Row] = {}
    for row in rows:
        first.setdefault(row["prediction_id"], row)
    return list(first.values())


@cache
def _logged_ids() -> sa.Select[tuple[str]]:
    return sa.select(prediction_log.c.prediction_id).where(
        prediction_log.c.prediction_id.in_(sa.bindparam("ids", expanding=True)))


def roll_up(connection: sa.Connection, rows: Iterable[Row]) -> None:
    """Add rows (each counted once: the caller knows they are new) to every rollup: one multi-row upsert per table,
    the live totals already resolved against the events loaded now."""
    totals = tally(rows)
    if totals[rollup_live]:
        resolve_totals(connection, totals[rollup_live])
    for table, table_totals in totals.items():
        upsert(connection, table, table_totals)


Totals = dict[tuple[Any, ...], dict[str, Any]]  # a rollup's key -> what to add to its row
Subject = tuple[str, str, str]  # use_case, subject_a, subject_b


def tally(rows: Iterable[Row]) -> dict[sa.Table, Totals]:
    """The rows' totals per rollup and key. Rows are grouped first and each group summed once: a batch has far fewer
    keys than rows, and this runs on every batch the shipper ships."""
    hours: dict[tuple[Any, ...], list[datetime]] = defaultdict(list)
    subjects: dict[tuple[Any, ...], list[datetime]] = defaultdict(list)
    as_ofs: dict[tuple[Any, ...], list[Row]] = defaultdict(list)
    for row in rows:
        at, use_case, version = row["created_at"], row["use_case"], row["model_version"]
        # the hour as numbers: a datetime per row (replace) costs more than the rest of the row's key
        hours[(at.year, at.month, at.day, at.hour, use_case, version, row["outcome"])].append(at)
        subject_a = row["home_team"] or row["symbol"]
        if subject_a is None:
            continue  # a use case with no subject is in no top list and resolves against no event
        subject_b = row["away_team"] or ""
        subjects[(use_case, subject_a, subject_b)].append(at)
        if row["as_of"] is not None:
            as_ofs[(use_case, version, subject_a, subject_b, row["as_of"])].append(row)
    hourly: Totals = {}
    daily: Totals = {}
    for (year, month, day, hour, *rest), times in hours.items():  # a day's totals are its hours' totals
        hourly[(datetime(year, month, day, hour), *rest)] = {"predictions": len(times)}
        found = daily.get((date(year, month, day), *rest))
        if found is None:
            daily[(date(year, month, day), *rest)] = {"predictions": len(times), "first_at": min(times),
                                                      "last_at": max(times)}
        else:
            found.update(predictions=found["predictions"] + len(times), first_at=min(found["first_at"], *times),
                         last_at=max(found["last_at"], *times))
    return {rollup_hourly: hourly,
            rollup_daily: daily,
            rollup_subjects: {key: {"predictions": len(times), "last_at": max(times)}
                              for key, times in subjects.items()},
            rollup_live: {key: live_counts(group) for key, group in as_ofs.items()}}


def live_counts(rows: list[Row]) -> dict[str, Any]:
    """Predictions of one live rollup key: how many named each class, and each class's summed log loss were it to
    happen (a class the use case does not answer has no probability: the floor's loss)."""
    predicted = dict.fromkeys(PROBABILITY_CLASSES, 0)
    losses = dict.fromkeys(PROBABILITY_CLASSES, 0.0)
    for row in rows:
        if row["outcome"] in predicted:
            predicted[row["outcome"]] += 1
        for name, column in PROBABILITY_COLUMNS:
            p = row[column]
            losses[name] += -math.log(max(p, FLOOR)) if p else NO_CHANCE
    return {"predictions": len(rows), **{f"predicted_{name}": count for name, count in predicted.items()},
            **{f"loss_{name}": loss for name, loss in losses.items()}}


def upsert(connection: sa.Connection, table: sa.Table, totals: Totals) -> None:
    """Add totals to the table's rows, creating the missing ones, in one multi-row statement. Keys go in sorted order
    so that two shippers adding to the same rows lock them in the same order and never deadlock."""
    if not totals:
        return
    key = [column.name for column in table.primary_key.columns]
    rows = [{**dict(zip(key, k, strict=True)), **values}
            for k, values in sorted(totals.items(), key=lambda item: tuple(map(str, item[0])))]
    connection.execute(upsert_statement(connection.dialect.name, table, tuple(rows[0])), rows)


@cache
def upsert_statement(dialect_name: str, table: sa.Table, names: tuple[str, ...]) -> sa.Insert:
    """INSERT ... ON DUPLICATE KEY UPDATE (MySQL) or ON CONFLICT DO UPDATE (SQLite, PostgreSQL) that adds counts and
    sums, keeps the earliest first_at and the latest last_at, and takes the incoming resolution (built once per
    table: the shipper runs it on every batch)."""
    key = {column.name for column in table.primary_key.columns}
    if dialect_name in ("mysql", "mariadb"):
        statement = mysql.insert(table)
        incoming, greatest, least = statement.inserted, sa.func.greatest, sa.func.least
    elif dialect_name in ("sqlite", "postgresql"):
        statement = (sqlite if dialect_name == "sqlite" else postgresql).insert(table)
        incoming = statement.excluded
        # SQLite's two-argument max and min are its GREATEST and LEAST
        greatest, least = (sa.func.max, sa.func.min) if dialect_name == "sqlite" else (sa.func.greatest,
                                                                                       sa.func.least)
    else:
        raise ValueError(f"the rollups do not support {dialect_name!r} databases")
    merge: dict[str, Callable[[Any, Any], Any]] = {
        "first_at": least, "last_at": greatest,
        "event_date": lambda _old, new: new, "observed": lambda _old, new: new}
    changes = {name: merge.get(name, operator.add)(table.c[name], incoming[name]) for name in names if name not in key}
    if dialect_name in ("mysql", "mariadb"):
        return statement.on_duplicate_key_update(changes)
    return statement.on_conflict_do_update(index_elements=sorted(key), set_=changes)


# --- resolving the live rollup against observed_events ----------------------------------------------------------------

def resolve_totals(connection: sa.Connection, live: Totals) -> None:
    """Give each live total the event that resolves its key now (the rule of migration 0003: the first event of the
    subject whose window [earliest_as_of, event_date) holds as_of), so that its upsert writes the resolution with the
    counts. One SELECT of the batch's subjects' events after its oldest as_of: fresh predictions' events mostly have
    not happened yet, so it finds few rows or none."""
    events = candidate_events(connection, {(key[0], key[2], key[3]) for key in live}, min(key[4] for key in live))
    for (use_case, _version, subject_a, subject_b, as_of), values in live.items():
        first = next((event for event in events.get((use_case, subject_a, subject_b), ())
                      if event.earliest_as_of <= as_of < event.event_date), None)
        values["event_date"] = first.event_date if first else None
        values["observed"] = first.outcome if first else None


def candidate_events(connection: sa.Connection, subjects: set[Subject], after: date
                     ) -> dict[Subject, list[sa.Row[Any]]]:
    """The events of these subjects after a date, per subject, earliest first."""
    found: dict[Subject, list[sa.Row[Any]]] = defaultdict(list)
    ordered = sorted(subjects)
    for start in range(0, len(ordered), SUBJECTS_PER_QUERY):
        for event in connection.execute(_events_of_subjects(), {"subjects": ordered[start:start + SUBJECTS_PER_QUERY],
                                                                "after": after}):
            found[(event.use_case, event.subject_a, event.subject_b)].append(event)
    return found


@cache
def _events_of_subjects() -> sa.Select[Any]:
    e = observed_events.c
    return (sa.select(e.use_case, e.subject_a, e.subject_b, e.event_date, e.earliest_as_of, e.outcome)
            .where(sa.tuple_(e.use_case, e.subject_a, e.subject_b).in_(sa.bindparam("subjects", expanding=True)),
                   e.event_date > sa.bindparam("after"))
            .order_by(e.use_case, e.subject_a, e.subject_b, e.event_date))


_SAME_SUBJECT = ("e.use_case = prediction_rollup_live.use_case AND e.subject_a = prediction_rollup_live.subject_a "
                 "AND e.subject_b = prediction_rollup_live.subject_b")
# the rule of migration 0003: the first event of the subject whose window [earliest_as_of, event_date) holds as_of
_FIRST_EVENT = (f"(SELECT MIN(e.event_date) FROM observed_events e WHERE {_SAME_SUBJECT} "
                "AND e.earliest_as_of <= prediction_rollup_live.as_of AND prediction_rollup_live.as_of < e.event_date)")
_ITS_OUTCOME = (f"(SELECT e.outcome FROM observed_events e WHERE {_SAME_SUBJECT} "
                "AND e.event_date = prediction_rollup_live.event_date)")


def resolve_use_case(connection: sa.Connection, use_case: str) -> None:
    """Resolve every live rollup row of a use case again: its events were just loaded (added, or replaced). Two
    statements: SQLite evaluates every assignment of one UPDATE on the old row."""
    where = {"use_case": use_case}
    connection.execute(sa.text(f"UPDATE prediction_rollup_live SET event_date = {_FIRST_EVENT} "
                               "WHERE use_case = :use_case"), where)
    connection.execute(sa.text(f"UPDATE prediction_rollup_live SET observed = {_ITS_OUTCOME} "
                               "WHERE use_case = :use_case"), where)


# --- catching up and pruning ------------------------------------------------------------------------------------------

def catch_up(engine: sa.Engine, batch_rows: int = BATCH_ROWS) -> int:
    """Count the raw rows no shipper counted (logged before migration 0004), a batch per transaction; return how
    many. The rows are locked as they are read, so two hosts catching up at once never count a row twice."""
    total = 0
    while True:
        with engine.begin() as connection:
            rows = [dict(row) for row in connection.execute(
                sa.select(prediction_log).where(prediction_log.c.rolled_up == sa.false())
                .limit(batch_rows).with_for_update()).mappings()]
            roll_up(connection, rows)
            ids = [row["prediction_id"] for row in rows]
            if ids:
                connection.execute(sa.update(prediction_log).where(prediction_log.c.prediction_id.in_(ids))
                                   .values(rolled_up=True))
        total += len(rows)
        if len(rows) < batch_rows:
            return total


def prune(engine: sa.Engine, before: datetime, batch_rows: int = BATCH_ROWS) -> int:
    """Delete counted raw rows logged before `before`, oldest first, at most `batch_rows` per DELETE; return how many.
    A row not counted yet stays, whatever its age."""
    total = 0
    while True:
        with engine.begin() as connection:
            ids = list(connection.execute(
                sa.select(prediction_log.c.prediction_id)
                .where(prediction_log.c.created_at < before, prediction_log.c.rolled_up == sa.true())
                .order_by(prediction_log.c.created_at).limit(batch_rows)).scalars())
            if ids:
                connection.execute(sa.delete(prediction_log).where(prediction_log.c.prediction_id.in_(ids)))
        total += len(ids)
        if len(ids) < batch_rows:
            return total


def retention_cutoff(retention_days: int, now: datetime | None = None) -> datetime | None:
    """The oldest creation time kept, naive UTC as the log stores it; None when raw rows are kept for ever."""
    if retention_days <= 0:
        return None
    return (now or datetime.now(UTC)).replace(tzinfo=None) - timedelta(days=retention_days)


def maintain(engine: sa.Engine, retention_days: int) -> dict[str, int]:
    """Catch up, then prune what the retention setting lets go (nothing when it is 0)."""
    counted = catch_up(engine)
    cutoff = retention_cutoff(retention_days)
    pruned = prune(engine, cutoff) if cutoff else 0
    if counted or pruned:
        log.info("rollups: counted %d raw rows, pruned %d older than %s", counted, pruned, cutoff)
    return {"counted": counted, "pruned": pruned}


def main(argv: list[str] | None = None) -> int:
    from pronostico.core.config import load_settings
    from pronostico.prediction_log import db

    parser = argparse.ArgumentParser(prog="python -m pronostico.prediction_log.rollups",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("catch-up", "prune"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_settings()
    engine = db.create_engine(settings.db_url)
    try:
        if args.command == "catch-up":
            print(f"counted {catch_up(engine)} raw rows")
            return 0
        cutoff = retention_cutoff(settings.web.log_retention_days)
        if cutoff is None:
            print("PRONOSTICO_LOG_RETENTION_DAYS is not set: raw rows are kept")
            return 0
        print(f"counted {catch_up(engine)} raw rows; pruned {prune(engine, cutoff)} older than {cutoff}")
        return 0
    finally:
        engine.dispose()


if __name__ == "__main__":
    sys.exit(main())
