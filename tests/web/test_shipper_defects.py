"""The prediction log under trouble: a database outage in the middle of a batch, workers left idle after a rotation,
and a flush that fails after its line is written."""

from __future__ import annotations

import errno
import json
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from pronostico.prediction_log import db, spool
from pronostico.prediction_log.schema import log_line
from pronostico.prediction_log.shipper import DatabaseAway, LogShipper
from pronostico.prediction_log.spool import SpoolUnavailable, SpoolWriter


def answer_line() -> tuple[str, bytes]:
    answer = {"prediction_id": str(uuid.uuid4()), "model_version": "v2", "symbol": "SPY", "as_of": "2026-03-25",
              "signal": "buy", "probabilities": {"sell": 0.2, "hold": 0.3, "buy": 0.5}}
    return answer["prediction_id"], log_line("assets", "api", answer, 0.5)


def refused_line() -> bytes:
    """Readable, but the database refuses it: outcome is NOT NULL."""
    data = json.loads(answer_line()[1])
    del data["outcome"]
    return json.dumps(data).encode() + b"\n"


class FlakyDatabase:
    """A migrated SQLite prediction log whose connections can be refused, as when the database host is away."""

    def __init__(self, path: Path) -> None:
        self.url = f"sqlite:///{path}"
        db.upgrade(self.url)
        self.away = False
        self.connections_left: int | None = None  # then away
        self.engine = db.create_engine(self.url, poolclass=sa.pool.NullPool)  # every transaction connects
        sa.event.listen(self.engine, "do_connect", self._connect)

    def _connect(self, *_: Any) -> None:
        if self.connections_left is not None:
            self.away = self.away or self.connections_left == 0
            self.connections_left -= 1
        if self.away:
            raise sqlite3.OperationalError("unable to open database file")

    def prediction_ids(self) -> set[str]:
        with self.engine.connect() as connection:
            return set(connection.execute(sa.text("SELECT prediction_id FROM prediction_log")).scalars())


@pytest.fixture
def database(tmp_path: Path) -> FlakyDatabase:
    flaky = FlakyDatabase(tmp_path / "log.db")
    yield flaky
    flaky.engine.dispose()


def rejected(spool_dir: Path) -> list[dict[str, str]]:
    path = spool_dir / spool.REJECTED_FILE
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


# --- a line is set aside once, however often its batch is retried -------------------------------------------------

def test_an_unreadable_line_is_set_aside_once_across_retries(tmp_path, database):
    (first, good), (second, also_good) = answer_line(), answer_line()
    writer = SpoolWriter(tmp_path / "spool")
    for line in (good, b"not json at all\n", also_good):
        writer.append(line)
    writer.close()
    shipper = LogShipper(database.engine, tmp_path / "spool")
    database.away = True
    for _ in range(3):
        with pytest.raises(DatabaseAway):
            shipper.ship_batch()
    database.away = False
    assert shipper.drain() == 3
    assert [r["line"] for r in rejected(tmp_path / "spool")] == ["not json at all"]
    assert database.prediction_ids() == {first, second}


def test_a_refused_row_is_set_aside_once_when_the_outage_strikes_during_the_row_by_row_retry(tmp_path, database):
    (first, good), (second, also_good) = answer_line(), answer_line()
    writer = SpoolWriter(tmp_path / "spool")
    for line in (good, refused_line(), also_good):
        writer.append(line)
    writer.close()
    shipper = LogShipper(database.engine, tmp_path / "spool")
    # the batch (refused), the first row (logged), the refused row, then the database goes away
    database.connections_left = 3
    for _ in range(2):
        with pytest.raises(DatabaseAway):
            shipper.ship_batch()
    database.away, database.connections_left = False, None
    assert shipper.drain() == 3
    assert [r["reason"].startswith("refused by the database") for r in rejected(tmp_path / "spool")] == [True]
    assert database.prediction_ids() == {first, second}


# --- an idle worker lets go of a segment the host has left --------------------------------------------------------

@pytest.mark.parametrize("sync", [spool.SYNC_EACH, spool.SYNC_INTERVAL])
def test_a_segment_an_idle_writer_appended_to_is_deleted_once_the_host_moved_on(tmp_path, database, sync):
    spool_dir, answered = tmp_path / "spool", set()
    idle = SpoolWriter(spool_dir, 4096, sync=sync)
    idle.idle_release_seconds = 0.05
    prediction_id, line = answer_line()
    idle.append(line)
    answered.add(prediction_id)
    first = idle.segment
    busy = SpoolWriter(spool_dir, 4096, sync=sync)
    while busy.segment in (None, first):  # the host rotates past the idle writer's segment
        prediction_id, line = answer_line()
        busy.append(line)
        answered.add(prediction_id)
    shipper = LogShipper(database.engine, spool_dir)
    deadline = time.monotonic() + 10
    while first.exists() and time.monotonic() < deadline:
        shipper.drain()
        time.sleep(0.05)
    assert not first.exists()  # though the idle writer is still alive, and was never closed
    prediction_id, line = answer_line()
    idle.append(line)  # and it carries on, in the current segment
    answered.add(prediction_id)
    assert idle.segment == busy.segment
    shipper.drain()
    assert database.prediction_ids() == answered
    idle.close()
    busy.close()


# --- with PRONOSTICO_SPOOL_SYNC=each, answered ⊆ logged -----------------------------------------------------------

def test_a_prediction_refused_for_a_failed_flush_may_be_logged_and_every_answered_one_is(tmp_path, database,
                                                                                           monkeypatch):
    spool_dir, answered, refused = tmp_path / "spool", set(), set()
    writer = SpoolWriter(spool_dir, sync=spool.SYNC_EACH)
    real_fdatasync = spool.os.fdatasync

    def failing_fdatasync(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    for seq in range(6):
        prediction_id, line = answer_line()
        if seq == 3:
            monkeypatch.setattr(spool.os, "fdatasync", failing_fdatasync)
        try:
            writer.append(line)
            answered.add(prediction_id)
        except SpoolUnavailable:  # the app answers 503
            refused.add(prediction_id)
        monkeypatch.setattr(spool.os, "fdatasync", real_fdatasync)
    assert len(refused) == 1 and len(answered) == 5
    assert spool.writer_counters(spool_dir)["unflushed_bytes"] == 0
    writer.close()
    LogShipper(database.engine, spool_dir).drain()
    logged = database.prediction_ids()
    assert answered <= logged  # nothing answered is missing
    assert refused <= logged  # the line was in the segment before its flush failed: it is logged all the same
