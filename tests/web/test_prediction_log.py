"""The prediction log: the spool, the log shipper, and the Alembic migrations on SQLite and a real MariaDB."""

from __future__ import annotations

import concurrent.futures
import json
import multiprocessing
import os
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from pronostico.local.stack import processes
from pronostico.prediction_log import db
from pronostico.prediction_log.schema import log_line, metadata
from pronostico.prediction_log.shipper import DatabaseAway, LogShipper
from pronostico.prediction_log.spool import SpoolReader, SpoolUnavailable, SpoolWriter, writer_counters

VIEWS = {"prediction_hourly", "prediction_daily", "prediction_top_matchups", "prediction_top_teams",
         "prediction_top_symbols", "prediction_outcomes", "prediction_live_results", "model_live_scores"}


def matchup_answer(home: str = "Brazil", away: str = "Argentina") -> dict:
    return {"prediction_id": str(uuid.uuid4()), "model_version": "v1", "home_team": home, "away_team": away,
            "neutral": False, "tournament": "friendly", "outcome": "home_win", "winner": home, "as_of": "2026-07-19",
            "probabilities": {"home_win": 0.5, "draw": 0.3, "away_win": 0.2}}


def asset_answer(symbol: str = "SPY") -> dict:
    return {"prediction_id": str(uuid.uuid4()), "model_version": "v2", "symbol": symbol, "as_of": "2026-03-25",
            "signal": "buy", "probabilities": {"sell": 0.2, "hold": 0.3, "buy": 0.5}}


def spool(directory: Path, answers: list[tuple[str, dict]], segment_bytes: int = 1 << 20) -> SpoolWriter:
    writer = SpoolWriter(directory, segment_bytes)
    for use_case, answer in answers:
        writer.append(log_line(use_case, "api", answer, 0.5))
    return writer


def count(url: str, sql: str = "SELECT COUNT(*) FROM prediction_log") -> int:
    engine = db.create_engine(url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(sa.text(sql)).scalar_one())
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", "mariadb"])
def db_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'log.db'}"
    return request.getfixturevalue("mariadb_url")


# --- the spool ----------------------------------------------------------------------------------------------------

def test_spool_lines_come_back_in_order_across_segments(tmp_path):
    answers = [("matchups", matchup_answer()) for _ in range(40)]
    writer = spool(tmp_path, answers, segment_bytes=4096)  # a few lines per segment: forces rotation
    reader = SpoolReader(tmp_path)
    assert len(reader.segments()) > 3
    batch = reader.next_batch(1000)
    assert [json.loads(line)["prediction_id"] for line in batch.lines] == [a["prediction_id"] for _, a in answers]
    writer.close()


def test_spool_position_survives_a_shipper_restart(tmp_path):
    spool(tmp_path, [("assets", asset_answer()) for _ in range(10)]).close()
    first = SpoolReader(tmp_path)
    batch = first.next_batch(4)
    first.commit(batch)
    again = SpoolReader(tmp_path).next_batch(100)  # a new shipper process starts where the last one committed
    assert len(again.lines) == 6
    assert json.loads(again.lines[0]) == json.loads(SpoolReader(tmp_path).next_batch(100).lines[0])


def test_a_segment_is_deleted_only_when_shipped_and_released(tmp_path):
    writer = spool(tmp_path, [("assets", asset_answer())])
    reader = SpoolReader(tmp_path)
    reader.commit(reader.next_batch(10))
    assert reader.remove_finished() == []  # its writer still holds it
    writer.close()
    assert len(reader.remove_finished()) == 1 and reader.segments() == []


def test_an_unfinished_line_of_a_dead_writer_is_set_aside(tmp_path):
    writer = spool(tmp_path, [("assets", asset_answer())])
    segment = writer.segment
    with segment.open("r+b") as handle:  # what a worker killed in the middle of a write leaves
        handle.seek(len(log_line("assets", "api", asset_answer(), 0.5)))
        handle.write(b'{"prediction_id": "half')
    writer.close()
    reader = SpoolReader(tmp_path)
    assert len(reader.next_batch(10).lines) == 1
    reader.commit(reader.next_batch(10))
    assert reader.remove_finished() == [segment.name]
    assert "incomplete last line" in (tmp_path / "rejected.log").read_text()


def test_a_forked_worker_appends_to_the_shared_segment_with_descriptors_of_its_own(tmp_path):
    writer = spool(tmp_path, [("assets", asset_answer())])
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        try:
            writer.append(log_line("assets", "api", asset_answer(), 0.5))
        finally:
            os._exit(0)
    os.waitpid(child, 0)
    writer.append(log_line("assets", "api", asset_answer(), 0.5))  # after the child: no line written over
    reader = SpoolReader(tmp_path)
    assert len(reader.segments()) == 1 and len(reader.next_batch(10).lines) == 3
    writer.close()


def _append_many(directory: str, count: int, tag: int) -> int:
    writer = SpoolWriter(Path(directory), 64 << 10)  # small segments: rotations happen under contention
    for i in range(count):
        writer.append(json.dumps({"writer": tag, "seq": i}).encode() + b"\n")
    writer.close()
    return writer.syncs


def test_processes_share_one_segment_and_one_fdatasync_covers_several_lines(tmp_path):
    writers, per_writer = 4, 400
    with concurrent.futures.ProcessPoolExecutor(writers, mp_context=multiprocessing.get_context("fork")) as pool:
        syncs = sum(pool.map(_append_many, [str(tmp_path)] * writers, [per_writer] * writers, range(writers)))
    lines = [json.loads(line) for line in SpoolReader(tmp_path).next_batch(10_000).lines]
    assert len(lines) == writers * per_writer  # every line, none torn, none written over
    for tag in range(writers):  # each writer's lines in the order it wrote them
        assert [x["seq"] for x in lines if x["writer"] == tag] == list(range(per_writer))
    counters = writer_counters(tmp_path)
    assert counters["lines"] == writers * per_writer
    assert syncs <= counters["syncs"] < writers * per_writer  # group commit: fewer flushes than lines


def test_a_writer_killed_in_the_middle_of_a_line_makes_the_next_one_start_a_segment(tmp_path):
    writer = spool(tmp_path, [("assets", asset_answer())])
    first = writer.segment
    state = writer._open().state
    state.set("dirty", 1)  # what a writer killed between marking the state and finishing its line leaves
    with first.open("r+b") as handle:
        handle.seek(state.get("end"))
        handle.write(b'{"prediction_id": "half')
    writer.append(log_line("assets", "api", asset_answer(), 0.5))
    second = writer.segment
    assert second is not None and second != first and state.get("dirty") == 0
    writer.close()
    reader = SpoolReader(tmp_path)
    assert len(reader.next_batch(10).lines) == 2
    reader.commit(reader.next_batch(10))
    assert sorted(reader.remove_finished()) == sorted([first.name, second.name])
    assert "incomplete last line" in (tmp_path / "rejected.log").read_text()


def test_a_writer_starts_a_new_segment_when_the_shipper_deleted_the_current_one(tmp_path):
    spool(tmp_path, [("assets", asset_answer())]).close()  # every writer gone
    reader = SpoolReader(tmp_path)
    reader.commit(reader.next_batch(10))
    assert len(reader.remove_finished()) == 1
    writer = spool(tmp_path, [("assets", asset_answer())])  # the state still names the deleted segment
    assert writer.segment is not None and writer.segment.exists()
    assert len(SpoolReader(tmp_path).next_batch(10).lines) == 1
    writer.close()


def test_the_shipper_removes_a_segment_whose_writer_died_creating_it(tmp_path):
    abandoned, fresh = tmp_path / ".00000000000000000001-1.tmp", tmp_path / ".00000000000000000002-2.tmp"
    abandoned.write_bytes(bytes(4096))
    fresh.write_bytes(bytes(4096))
    an_hour_ago = time.time() - 3600
    os.utime(abandoned, (an_hour_ago, an_hour_ago))
    SpoolReader(tmp_path).remove_finished()
    assert not abandoned.exists() and fresh.exists()  # a fresh one may still be in the making


def test_each_mode_answers_only_once_the_line_is_flushed(tmp_path):
    writer = SpoolWriter(tmp_path, sync="each")
    for _ in range(3):
        writer.append(log_line("assets", "api", asset_answer(), 0.5))
        assert writer_counters(tmp_path)["unflushed_bytes"] == 0
    writer.close()


def test_interval_mode_answers_from_the_page_cache_and_flushes_within_the_interval(tmp_path):
    threads_before = set(threading.enumerate())
    writer = SpoolWriter(tmp_path, sync="interval", sync_interval=0.2)
    for _ in range(20):
        writer.append(log_line("assets", "api", asset_answer(), 0.5))
    assert len(SpoolReader(tmp_path).next_batch(100).lines) == 20  # readable by the shipper at once
    assert writer_counters(tmp_path)["unflushed_bytes"] > 0  # no flush in the answer's path
    deadline = time.monotonic() + 5
    while writer_counters(tmp_path)["unflushed_bytes"] and time.monotonic() < deadline:
        time.sleep(0.05)
    counters = writer_counters(tmp_path)
    assert counters["unflushed_bytes"] == 0 and 1 <= counters["syncs"] < 20  # one flush for the lot
    writer.append(log_line("assets", "api", asset_answer(), 0.5))
    writer.close()  # a worker on its way out flushes what is left
    assert writer_counters(tmp_path)["unflushed_bytes"] == 0
    assert [t.name for t in set(threading.enumerate()) - threads_before] == []  # its flusher thread is gone


def test_an_unknown_sync_mode_is_refused(tmp_path):
    with pytest.raises(ValueError, match="each, interval"):
        SpoolWriter(tmp_path, sync="sometimes")


def test_an_unwritable_spool_refuses_the_line(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    with pytest.raises(SpoolUnavailable):
        SpoolWriter(blocked).append(b"{}\n")


# --- the shipper and the migrations -------------------------------------------------------------------------------

def test_migrations_create_the_table_and_views_and_downgrade_removes_them(db_url):
    db.upgrade(db_url)
    assert db.current_revision(db_url) == "0004"
    engine = db.create_engine(db_url)
    try:
        inspector = sa.inspect(engine)
        assert "prediction_log" in inspector.get_table_names()
        assert set(inspector.get_view_names()) >= VIEWS
        indexed = {tuple(index["column_names"]) for index in inspector.get_indexes("prediction_log")}
        assert ("created_at",) in indexed and ("use_case", "created_at") in indexed
        assert inspector.get_pk_constraint("prediction_log")["constrained_columns"] == ["prediction_id"]
        assert "observed_events" in inspector.get_table_names()
        from alembic.autogenerate import compare_metadata
        from alembic.migration import MigrationContext

        with engine.connect() as connection:  # the shipper's tables are exactly what the migrations made
            diff = compare_metadata(MigrationContext.configure(connection), metadata)
        assert [d for d in diff if d[0] not in ("remove_table",)] == []
    finally:
        engine.dispose()
    db.downgrade(db_url, "base")
    engine = db.create_engine(db_url)
    try:
        assert set(sa.inspect(engine).get_table_names()) <= {"alembic_version"}
        assert not VIEWS & set(sa.inspect(engine).get_view_names())
    finally:
        engine.dispose()
    db.upgrade(db_url)  # and back up again
    assert db.current_revision(db_url) == "0004"


def test_shipping_is_idempotent_and_the_views_count_it(db_url, tmp_path):
    db.upgrade(db_url)
    answers = [("matchups", matchup_answer("Brazil", "Argentina")) for _ in range(3)]
    answers += [("matchups", matchup_answer("Spain", "Brazil")), ("assets", asset_answer("SPY")),
                ("assets", asset_answer("SPY")), ("assets", asset_answer("AAPL"))]
    spool(tmp_path / "spool", answers).close()
    engine = db.create_engine(db_url)
    try:
        assert LogShipper(engine, tmp_path / "spool").drain() == 7
        (tmp_path / "spool" / "positions.json").unlink(missing_ok=True)
        spool(tmp_path / "spool", answers[:2]).close()  # the same predictions again: a replay
        LogShipper(engine, tmp_path / "spool").drain()
    finally:
        engine.dispose()
    assert count(db_url) == 7
    assert count(db_url, "SELECT COUNT(DISTINCT prediction_id) FROM prediction_log") == 7
    assert count(db_url, "SELECT predictions FROM prediction_top_matchups WHERE home_team = 'Brazil'") == 3
    assert count(db_url, "SELECT predictions FROM prediction_top_teams WHERE team = 'Brazil'") == 4
    assert count(db_url, "SELECT predictions FROM prediction_top_symbols WHERE symbol = 'SPY'") == 2
    assert count(db_url, "SELECT SUM(predictions) FROM prediction_daily WHERE use_case = 'assets'") == 3
    assert count(db_url, "SELECT SUM(predictions) FROM prediction_hourly") == 7
    assert count(db_url, "SELECT predictions FROM prediction_outcomes WHERE outcome = 'buy'") == 3
    hour = datetime.now(UTC).strftime("%Y-%m-%d %H")
    assert count(db_url, f"SELECT COUNT(*) FROM prediction_hourly WHERE hour >= '{hour}:00:00'") >= 1


def test_typed_columns_round_trip(db_url, tmp_path):
    db.upgrade(db_url)
    answer = asset_answer("BTC-USD")
    spool(tmp_path / "spool", [("assets", answer)]).close()
    engine = db.create_engine(db_url)
    try:
        LogShipper(engine, tmp_path / "spool").drain()
        with engine.connect() as connection:
            row = connection.execute(sa.text("SELECT * FROM prediction_log")).mappings().one()
    finally:
        engine.dispose()
    assert row["prediction_id"] == answer["prediction_id"] and row["symbol"] == "BTC-USD"
    assert str(row["as_of"]) == "2026-03-25" and row["outcome"] == "buy" and row["p_buy"] == pytest.approx(0.5)
    assert row["home_team"] is None and row["latency_ms"] == pytest.approx(0.5)
    assert str(row["created_at"]).startswith(str(datetime.now(UTC).year))


def test_while_the_database_refuses_connections_nothing_is_lost(mariadb_url, tmp_path):
    """The shipper pointed at a port that refuses keeps every row; pointed back at MariaDB it ships them all."""
    db.upgrade(mariadb_url)
    answers = [("assets", asset_answer()) for _ in range(25)]
    spool(tmp_path / "spool", answers).close()
    refusing = sa.make_url(mariadb_url).set(port=processes.free_port()).render_as_string(hide_password=False)
    away = LogShipper(db.create_engine(refusing), tmp_path / "spool")
    with pytest.raises(DatabaseAway):
        away.ship_batch()
    assert away.reader.backlog_bytes() > 0
    engine = db.create_engine(mariadb_url)
    try:
        assert LogShipper(engine, tmp_path / "spool").drain() == 25
    finally:
        engine.dispose()
    assert count(mariadb_url) == 25
