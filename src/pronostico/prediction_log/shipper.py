"""The log shipper: moves spooled predictions into prediction_log, in order, in batches, idempotently.

    python -m pronostico.prediction_log.shipper           # run until SIGTERM (the `log-shipper` service)
    python -m pronostico.prediction_log.shipper --drain   # ship what is spooled now, exit (1 if the database is away)
    python -m pronostico.prediction_log.shipper --status  # print the backlog and the last shipper status as JSON
    python -m pronostico.prediction_log.shipper --load-events  # load each use case's observed events now, exit

A batch is committed to the database first and the spool position is moved past it second, so a crash in
between replays the batch; the INSERT skips prediction ids already logged, so a replay adds nothing. While the
database is away the spool grows and the shipper retries with a capped backoff; nothing is dropped. Lines the
database can never take (unreadable, or refused) are set aside in rejected.log once their batch is in, just before
the position moves: a batch retried after an outage sets nothing aside twice.

Each batch is counted in the rollups (pronostico.prediction_log.rollups) in the transaction that inserts it. On a
slow cadence (`maintenance_every_seconds`, and once at start) the shipper also counts raw rows no shipper counted and,
with a retention setting, deletes counted raw rows older than it.

The shipper also loads each use case's observed events (pronostico.prediction_log.live) from the models bucket
whenever the file's etag changes, at most every `events_every_seconds`; a missing, broken or unloadable file never
stops the shipping.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from pronostico.core import layout, storage
from pronostico.prediction_log import db, rollups
from pronostico.prediction_log.live import parse_events
from pronostico.prediction_log.schema import insert_rows, row_from_line, upsert_events
from pronostico.prediction_log.spool import SpoolReader, backlog_bytes

log = logging.getLogger("pronostico.prediction_log.shipper")

STATUS_FILE = "shipper.json"
MAX_BACKOFF_SECONDS = 5.0
STATUS_EVERY_SECONDS = 1.0
EVENTS_EVERY_SECONDS = 30.0
MAINTENANCE_EVERY_SECONDS = 600.0


class DatabaseAway(RuntimeError):
    """The database did not answer (down, unreachable, or the connection dropped): retry later."""


def is_outage(error: sa.exc.DBAPIError) -> bool:
    """Connection trouble, as opposed to a row the database refuses."""
    return bool(error.connection_invalidated) or isinstance(error, sa.exc.OperationalError | sa.exc.InterfaceError)


@dataclass
class EventsLoader:
    """Loads each use case's observed events file into observed_events when its etag changes.

    An etag is remembered only once its events are committed, so a database or bucket outage is retried at the next
    check; a file that can never load (not JSON, an invalid event, refused by the database) is logged once and
    skipped until it changes.
    """

    engine: sa.Engine
    models_uri: str
    use_cases: tuple[str, ...]
    loaded: dict[str, dict[str, Any]] = field(default_factory=dict)  # use case -> {"etag", "events", "loaded_at"}
    refused: dict[str, str] = field(default_factory=dict)  # use case -> the etag of a file that cannot load
    _last_trouble: dict[str, str] = field(default_factory=dict)

    def load(self) -> dict[str, str]:
        """Load every use case's file that changed; return what happened to each, in a word or a sentence."""
        return {use_case: self.load_one(use_case) for use_case in self.use_cases}

    def load_one(self, use_case: str) -> str:
        uri = layout.observed_events_uri(self.models_uri, use_case)
        try:
            etag = storage.stat(uri).etag if storage.exists(uri) else None
        except Exception as error:  # S3 away or refusing: whatever boto raises, try again at the next check
            return self._trouble(use_case, f"cannot stat {uri}: {error}")
        if etag is None:
            return "missing"
        if etag in (self.loaded.get(use_case, {}).get("etag"), self.refused.get(use_case)):
            return "unchanged"
        try:
            events = parse_events(storage.read_json(uri), use_case)
        except FileNotFoundError:
            return "missing"  # deleted since the stat
        except ValueError as error:  # not JSON, not UTF-8, or InvalidEvents
            return self._refuse(use_case, etag, f"{uri} is invalid: {error}")
        except Exception as error:
            return self._trouble(use_case, f"cannot read {uri}: {error}")
        try:
            with self.engine.begin() as connection:
                count = upsert_events(connection, use_case, events)
        except sa.exc.DBAPIError as error:
            if is_outage(error):
                return self._trouble(use_case, f"database away while loading {uri}: {error.orig or error}")
            return self._refuse(use_case, etag, f"the database refuses {uri}: {error.orig or error}")
        except sa.exc.SQLAlchemyError as error:  # e.g. no pooled connection in time: not the file's fault
            return self._trouble(use_case, f"cannot load {uri}: {error}")
        self.loaded[use_case] = {"etag": etag, "events": count,
                                 "loaded_at": datetime.now(UTC).isoformat(timespec="seconds")}
        self._last_trouble.pop(use_case, None)
        log.info("loaded %d %s events from %s", count, use_case, uri)
        return f"loaded {count}"

    def _refuse(self, use_case: str, etag: str, reason: str) -> str:
        self.refused[use_case] = etag
        log.error("skipping %s events until the file changes: %s", use_case, reason)
        return reason

    def _trouble(self, use_case: str, reason: str) -> str:
        if self._last_trouble.get(use_case) != reason:  # once per kind of trouble, not every check
            log.warning("%s events not loaded, retrying later: %s", use_case, reason)
            self._last_trouble[use_case] = reason
        return reason


@dataclass
class LogShipper:
    engine: sa.Engine
    spool_dir: Path
    batch_rows: int = 500
    idle_seconds: float = 0.25
    models_uri: str | None = None  # where the observed events files are; None: the shipper loads none
    use_cases: tuple[str, ...] = ()
    events_every_seconds: float = EVENTS_EVERY_SECONDS
    retention_days: int = 0  # 0: keep every raw row
    maintenance_every_seconds: float = MAINTENANCE_EVERY_SECONDS
    reader: SpoolReader = field(init=False)
    events: EventsLoader | None = field(init=False)
    shipped_rows: int = 0
    database_up: bool | None = None
    last_error: str = ""
    last_shipped_at: str = ""
    _status_written: float = 0.0
    _events_checked: float | None = None
    _maintained: float | None = None

    def __post_init__(self) -> None:
        self.reader = SpoolReader(self.spool_dir)
        self.events = EventsLoader(self.engine, self.models_uri, self.use_cases) if self.models_uri else None

    def load_events(self) -> dict[str, str]:
        """Load the observed events files that changed (nothing if the shipper has no models bucket)."""
        self._events_checked = time.monotonic()
        return self.events.load() if self.events else {}

    def load_events_when_due(self) -> None:
        due = self._events_checked is None or time.monotonic() - self._events_checked >= self.events_every_seconds
        if due:
            self.load_events()

    def maintain(self) -> dict[str, int]:
        """Count raw rows no shipper counted, and prune what the retention setting lets go."""
        self._maintained = time.monotonic()
        return rollups.maintain(self.engine, self.retention_days)

    def maintain_when_due(self) -> None:
        due = self._maintained is None or time.monotonic() - self._maintained >= self.maintenance_every_seconds
        if due:
            try:
                self.maintain()
            except sa.exc.SQLAlchemyError as error:  # an outage or a lock timeout: shipping goes on, retry later
                log.warning("rollup maintenance failed, retrying in %.0f s: %s", self.maintenance_every_seconds,
                            error)

    def ship_batch(self) -> int:
        """Ship the next batch of spooled lines; return how many lines it consumed (0: nothing new)."""
        batch = self.reader.next_batch(self.batch_rows)
        if batch.lines:
            rows, rejections = self._parse(batch.lines)
            try:
                with self.engine.begin() as connection:
                    insert_rows(connection, rows)
            except sa.exc.DBAPIError as error:
                if is_outage(error):
                    raise DatabaseAway(str(error.orig) if error.orig else str(error)) from error
                rejections += self._ship_one_by_one(rows)
            for line, reason in rejections:  # only now: an outage above means the whole batch comes back
                self.reader.reject(line, reason)
            self.reader.commit(batch)
            self.shipped_rows += len(batch.lines)
            self.last_shipped_at = datetime.now(UTC).isoformat(timespec="seconds")
        self.reader.remove_finished()
        self._mark(up=True)
        return len(batch.lines)

    def drain(self) -> int:
        """Ship until the spool holds nothing new; return the lines shipped."""
        total = 0
        while shipped := self.ship_batch():
            total += shipped
        return total

    def run(self, stop: threading.Event) -> None:
        backoff = self.idle_seconds
        while not stop.is_set():
            self.load_events_when_due()
            self.maintain_when_due()
            try:
                shipped = self.ship_batch()
                backoff = self.idle_seconds
                if shipped < self.batch_rows:
                    # caught up: wait for rows to gather rather than commit a trickle, whose fsyncs would
                    # compete with the web workers' own
                    stop.wait(self.idle_seconds)
            except DatabaseAway as error:
                self._mark(up=False, error=str(error))
                stop.wait(backoff)
                backoff = min(MAX_BACKOFF_SECONDS, backoff * 2)
            self.write_status()
        self.write_status(force=True)

    def _parse(self, lines: list[bytes]) -> tuple[list[dict[str, Any]], list[tuple[bytes, str]]]:
        """The rows of the lines, and the lines that are no row, each with why (to set aside)."""
        rows, rejections = [], []
        for line in lines:
            try:
                rows.append(row_from_line(line))
            except (ValueError, TypeError, KeyError) as error:
                rejections.append((line, f"unreadable spool line: {error}"))
        return rows, rejections

    def _ship_one_by_one(self, rows: list[dict[str, Any]]) -> list[tuple[bytes, str]]:
        """A batch the database refused: ship the rows it takes, and return the ones it refuses, each with why."""
        rejections = []
        for row in rows:
            try:
                with self.engine.begin() as connection:
                    insert_rows(connection, [row])
            except sa.exc.DBAPIError as error:
                if is_outage(error):
                    raise DatabaseAway(str(error.orig)) from error
                rejections.append((json.dumps(row, default=str).encode(), f"refused by the database: {error.orig}"))
        return rejections

    def _mark(self, up: bool, error: str = "") -> None:
        if up != self.database_up:
            if up:
                log.info("prediction log database reachable; shipping")
            else:
                log.warning("prediction log database unreachable; spooling until it returns: %s", error)
            self.database_up = up
            self.write_status(force=True)
        if error:
            self.last_error = error

    def status(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "database_up": self.database_up, "shipped_rows": self.shipped_rows,
                "backlog_bytes": self.reader.backlog_bytes(), "last_error": self.last_error,
                "last_shipped_at": self.last_shipped_at,
                "events_loaded": dict(self.events.loaded) if self.events else {},
                "updated_at": datetime.now(UTC).isoformat(timespec="seconds")}

    def write_status(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._status_written < STATUS_EVERY_SECONDS:
            return
        self._status_written = now
        path = self.spool_dir / STATUS_FILE
        temporary = path.with_name(f".{STATUS_FILE}.tmp")
        temporary.write_text(json.dumps(self.status()) + "\n")
        os.replace(temporary, path)


def read_status(spool_dir: Path) -> dict[str, Any]:
    """The shipper's last status (empty if it never ran) and the backlog as of now."""
    path = Path(spool_dir) / STATUS_FILE
    try:
        status = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        status = {}
    status["backlog_bytes"] = backlog_bytes(spool_dir)
    return status


def main(argv: list[str] | None = None) -> int:
    from pronostico.core.config import load_settings
    from pronostico.core.usecases import names

    parser = argparse.ArgumentParser(prog="python -m pronostico.prediction_log.shipper",
                                     description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--drain", action="store_true", help="ship what is spooled now, then exit")
    mode.add_argument("--status", action="store_true", help="print the backlog and the shipper's status")
    mode.add_argument("--load-events", action="store_true",
                      help="load each use case's observed events file now, then exit (1 if one did not load)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_settings()
    if args.status:
        print(json.dumps(read_status(settings.spool_dir), indent=2))
        return 0
    shipper = LogShipper(db.create_engine(settings.db_url), settings.spool_dir,
                         settings.web.shipper_batch_rows, settings.web.shipper_idle_seconds,
                         models_uri=settings.models_uri, use_cases=names(),
                         retention_days=settings.web.log_retention_days)
    if args.load_events:
        results = shipper.load_events()
        print(json.dumps(results, indent=2))
        return 0 if all(r == "missing" or r.startswith("loaded") for r in results.values()) else 1
    if args.drain:
        try:
            print(f"shipped {shipper.drain()} predictions; backlog {shipper.reader.backlog_bytes()} bytes")
        except DatabaseAway as error:
            print(f"the prediction log database is unreachable: {error}", file=sys.stderr)
            return 1
        print(f"observed events: {json.dumps(shipper.load_events())}")
        print(f"rollups: {json.dumps(shipper.maintain())}")
        return 0
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    log.info("shipping %s to %s", settings.spool_dir, shipper.engine.url.render_as_string(hide_password=True))
    shipper.run(stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
