"""The log shipper: moves spooled predictions into prediction_log, in order, in batches, idempotently.

    python -m pronostico.prediction_log.shipper           # run until SIGTERM (the `log-shipper` service)
    python -m pronostico.prediction_log.shipper --drain   # ship what is spooled now, exit (1 if the database is away)
    python -m pronostico.prediction_log.shipper --status  # print the backlog and the last shipper status as JSON

A batch is committed to the database first and the spool position is moved past it second, so a crash in
between replays the batch; the INSERT skips prediction ids already logged, so a replay adds nothing. While the
database is away the spool grows and the shipper retries with a capped backoff; nothing is dropped. Lines the
database can never take (unreadable, or refused) are set aside in rejected.log once their batch is in, just before
the position moves: a batch retried after an outage sets nothing aside twice.
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

from pronostico.prediction_log import db
from pronostico.prediction_log.schema import insert_rows, row_from_line
from pronostico.prediction_log.spool import SpoolReader, backlog_bytes

log = logging.getLogger("pronostico.prediction_log.shipper")

STATUS_FILE = "shipper.json"
MAX_BACKOFF_SECONDS = 5.0
STATUS_EVERY_SECONDS = 1.0


class DatabaseAway(RuntimeError):
    """The database did not answer (down, unreachable, or the connection dropped): retry later."""


def is_outage(error: sa.exc.DBAPIError) -> bool:
    """Connection trouble, as opposed to a row the database refuses."""
    return bool(error.connection_invalidated) or isinstance(error, sa.exc.OperationalError | sa.exc.InterfaceError)


@dataclass
class LogShipper:
    engine: sa.Engine
    spool_dir: Path
    batch_rows: int = 500
    idle_seconds: float = 0.25
    reader: SpoolReader = field(init=False)
    shipped_rows: int = 0
    database_up: bool | None = None
    last_error: str = ""
    last_shipped_at: str = ""
    _status_written: float = 0.0

    def __post_init__(self) -> None:
        self.reader = SpoolReader(self.spool_dir)

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

    parser = argparse.ArgumentParser(prog="python -m pronostico.prediction_log.shipper",
                                     description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--drain", action="store_true", help="ship what is spooled now, then exit")
    mode.add_argument("--status", action="store_true", help="print the backlog and the shipper's status")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_settings()
    if args.status:
        print(json.dumps(read_status(settings.spool_dir), indent=2))
        return 0
    shipper = LogShipper(db.create_engine(settings.db_url), settings.spool_dir,
                         settings.web.shipper_batch_rows, settings.web.shipper_idle_seconds)
    if args.drain:
        try:
            print(f"shipped {shipper.drain()} predictions; backlog {shipper.reader.backlog_bytes()} bytes")
        except DatabaseAway as error:
            print(f"the prediction log database is unreachable: {error}", file=sys.stderr)
            return 1
        return 0
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    log.info("shipping %s to %s", settings.spool_dir, shipper.engine.url.render_as_string(hide_password=True))
    shipper.run(stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
