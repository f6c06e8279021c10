"""The rollups: they count exactly what the raw rows hold, once, resolve late events, survive pruning, and the pages
read them with one query per concurrent cache miss. Database and analytics layer only: no model is loaded."""

from __future__ import annotations

import runpy
import threading
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from pronostico.prediction_log import db, rollups, schema
from pronostico.prediction_log.shipper import LogShipper
from pronostico.prediction_log.spool import SpoolWriter

VERSIONS = Path(db.MIGRATIONS) / "versions"
NOW = datetime(2026, 12, 7, 15, 30)
COUNTED_VIEWS = ("prediction_hourly", "prediction_daily", "prediction_top_matchups", "prediction_top_teams",
                 "prediction_top_symbols", "prediction_outcomes", "model_live_scores")


@pytest.fixture(params=["sqlite", "mariadb"])
def db_url(request, tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'log.db'}" if request.param == "sqlite" else request.getfixturevalue("mariadb_url")
    db.upgrade(url)
    return url


@pytest.fixture
def engine(db_url):
    engine = db.create_engine(db_url)
    yield engine
    engine.dispose()


def raw_views(dialect: str) -> dict[str, str]:
    """The views of migrations 0002 and 0003: the same figures computed from the raw rows."""
    bi = runpy.run_path(str(VERSIONS / "0002_bi_views.py"))
    live = runpy.run_path(str(VERSIONS / "0003_live_results.py"))
    hour = bi["HOUR_BUCKET"]["mysql" if dialect == "mariadb" else dialect]
    return {name: sql.format(hour=hour) for name, sql in bi["VIEWS"].items()} | live["VIEWS"]


def answers(count: int, start: datetime = NOW) -> list[tuple[str, dict[str, Any], datetime]]:
    """Predictions over three days, both use cases, two versions each, a few subjects, some with a zero probability."""
    made = []
    for i in range(count):
        at = start - timedelta(hours=7 * i, minutes=i)
        version = f"v{i % 2}"
        as_of = (at.date() - timedelta(days=1 + i % 3)).isoformat()
        if i % 2:
            p = [(0.5, 0.3, 0.2), (0.1, 0.6, 0.3), (0.0, 0.2, 0.8)][i % 3]
            outcome = ("home_win", "draw", "away_win")[p.index(max(p))]
            teams = [("Brazil", "Argentina"), ("Spain", "Brazil"), ("France", "Italy")][i % 3]
            made.append(("matchups", {"prediction_id": str(uuid.uuid4()), "model_version": version,
                                      "home_team": teams[0], "away_team": teams[1], "neutral": False,
                                      "tournament": "friendly", "as_of": as_of, "outcome": outcome,
                                      "probabilities": dict(zip(("home_win", "draw", "away_win"), p, strict=True))},
                         at))
        else:
            p = [(0.2, 0.3, 0.5), (0.6, 0.3, 0.1), (0.3, 0.4, 0.3)][i % 3]
            signal = ("sell", "hold", "buy")[p.index(max(p))]
            made.append(("assets", {"prediction_id": str(uuid.uuid4()), "model_version": version,
                                    "symbol": ("SPY", "NVDA")[i % 4 // 2], "as_of": as_of, "signal": signal,
                                    "probabilities": dict(zip(("sell", "hold", "buy"), p, strict=True))}, at))
    return made


def spool(directory: Path, made: list[tuple[str, dict[str, Any], datetime]]) -> None:
    writer = SpoolWriter(directory)
    for use_case, answer, at in made:
        writer.append(schema.log_line(use_case, "api", answer, 0.5, answered_at=at))
    writer.close()


def events(made: list[tuple[str, dict[str, Any], datetime]], use_case: str, outcome_of: Any) -> list[dict]:
    """An event for each subject, the day after each as_of: it resolves every prediction made at that as_of."""
    found = {}
    for name, answer, _ in made:
        if name != use_case:
            continue
        a, b = (answer["home_team"], answer["away_team"]) if name == "matchups" else (answer["symbol"], "")
        as_of = date.fromisoformat(answer["as_of"])
        found[(a, b, as_of)] = {"subject_a": a, "subject_b": b, "event_date": as_of + timedelta(days=1),
                                "earliest_as_of": as_of, "outcome": outcome_of(a, as_of)}
    return list(found.values())


def load_events(engine: sa.Engine, made: list, shift: int = 0) -> None:
    with engine.begin() as connection:
        schema.upsert_events(connection, "matchups", events(
            made, "matchups", lambda a, d: ("home_win", "draw", "away_win")[(d.day + shift) % 3]))
        schema.upsert_events(connection, "assets", events(
            made, "assets", lambda a, d: ("sell", "hold", "buy")[(d.day + len(a) + shift) % 3]))


def ship(engine: sa.Engine, directory: Path) -> int:
    return LogShipper(engine, directory).drain()


def normal(value: Any) -> Any:
    """One value as both dialects and both computations can be compared: text, ints, rounded floats."""
    if isinstance(value, datetime | date):
        return value.isoformat(sep=" ")[:19] if isinstance(value, datetime) else value.isoformat()
    if isinstance(value, int | float) or type(value).__name__ == "Decimal":
        number = float(value)
        return int(number) if number.is_integer() else round(number, 9)
    return value if value is None else str(value)[:19]


def figures(connection: sa.Connection, select: str) -> list[tuple]:
    return sorted((tuple(normal(v) for v in row) for row in connection.execute(sa.text(select))), key=repr)


def assert_rollups_match_raw(engine: sa.Engine) -> None:
    """Counts and times exactly; log losses to 1e-6 relative: MariaDB keeps the raw probabilities as
    single-precision FLOAT, while the rollups sum the spool's doubles."""
    raw = raw_views(engine.dialect.name)
    with engine.connect() as connection:
        for name in COUNTED_VIEWS:
            columns = ", ".join(connection.execute(sa.text(f"SELECT * FROM {name}")).keys())
            mine = figures(connection, f"SELECT {columns} FROM {name}")
            theirs = figures(connection, f"SELECT {columns} FROM ({raw[name]}) AS raw")
            assert len(mine) == len(theirs), name
            for row, expected in zip(mine, theirs, strict=True):
                assert [pytest.approx(v, rel=1e-6) if isinstance(v, float) else v for v in row] == list(expected), name


def counted(engine: sa.Engine) -> dict[str, list[tuple]]:
    with engine.connect() as connection:
        return {name: figures(connection, f"SELECT * FROM {name}") for name in COUNTED_VIEWS}


# --- counting ---------------------------------------------------------------------------------------------------------

def test_rollups_equal_the_raw_aggregates_after_shipping(engine, tmp_path):
    made = answers(40)
    spool(tmp_path / "spool", made)
    assert ship(engine, tmp_path / "spool") == 40
    load_events(engine, made)
    with engine.connect() as connection:
        resolved = connection.execute(sa.text("SELECT SUM(resolved) FROM model_live_scores")).scalar()
    assert int(resolved) == 40  # every prediction has its event: the comparison covers hits and losses
    assert_rollups_match_raw(engine)


def test_a_replayed_batch_counts_nothing_twice(engine, tmp_path):
    made = answers(12)
    spool(tmp_path / "spool", made)
    ship(engine, tmp_path / "spool")
    load_events(engine, made)
    before = counted(engine)
    (tmp_path / "spool" / "positions.json").unlink()  # a crash between commit and position: the batch comes back
    spool(tmp_path / "spool", made[:5])
    LogShipper(engine, tmp_path / "spool", batch_rows=4).drain()
    assert counted(engine) == before
    assert_rollups_match_raw(engine)


def test_a_batch_partly_logged_counts_only_its_new_rows(engine, tmp_path):
    made = answers(10)
    spool(tmp_path / "first", made[:4])
    ship(engine, tmp_path / "first")
    spool(tmp_path / "again", made[2:] + made[5:6])  # two logged already, six new, one of them twice
    assert LogShipper(engine, tmp_path / "again", batch_rows=100).drain() == 9
    load_events(engine, made)
    assert raw_count(engine) == 10
    assert_rollups_match_raw(engine)


def test_predictions_resolve_when_their_events_come_later(engine, tmp_path):
    made = answers(20)
    spool(tmp_path / "spool", made)
    ship(engine, tmp_path / "spool")
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT SUM(resolved) FROM model_live_scores")).scalar() == 0
    load_events(engine, made)  # weeks later, the pipeline observed what happened
    assert_rollups_match_raw(engine)
    load_events(engine, made, shift=1)  # a rerun corrects the outcomes: hits and losses follow
    assert_rollups_match_raw(engine)
    later = answers(6, start=NOW + timedelta(minutes=5))  # shipped after their events were loaded
    spool(tmp_path / "later", later)
    ship(engine, tmp_path / "later")
    load_events(engine, made + later)
    assert_rollups_match_raw(engine)


# --- catching up and pruning ------------------------------------------------------------------------------------------

def uncounted(engine: sa.Engine, made: list) -> None:
    """Rows as a database logged before migration 0004 holds them: in the table, in no rollup."""
    rows = [schema.row_from_line(schema.log_line(use_case, "api", answer, 0.5, answered_at=at))
            for use_case, answer, at in made]
    with engine.begin() as connection:
        connection.execute(schema.insert_ignoring_duplicates(engine.dialect.name),
                           [{**row, "rolled_up": False} for row in rows])


def raw_count(engine: sa.Engine, where: str = "1 = 1") -> int:
    with engine.connect() as connection:
        return int(connection.execute(sa.text(f"SELECT COUNT(*) FROM prediction_log WHERE {where}")).scalar())


def test_retention_deletes_only_counted_rows_in_batches_and_changes_no_figure(engine, tmp_path):
    made = answers(30)
    spool(tmp_path / "spool", made[:20])
    ship(engine, tmp_path / "spool")
    uncounted(engine, made[20:])  # the oldest ten, not counted yet
    load_events(engine, made)
    shown = counted(engine)
    statements: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda _c, _cursor, statement, *_: statements.append(statement))
    cutoff = NOW - timedelta(hours=7 * 10)  # rows 10 to 29 are older
    assert rollups.prune(engine, cutoff, batch_rows=4) == 10  # the counted ones among them: rows 10 to 19
    assert len([s for s in statements if s.startswith("DELETE")]) == 3  # 4 + 4 + 2, each a bounded DELETE
    assert raw_count(engine, "rolled_up = 0") == 10 and raw_count(engine) == 20
    assert counted(engine) == shown  # the pages do not need the deleted rows
    assert rollups.catch_up(engine, batch_rows=3) == 10  # the shipper counts them at start...
    assert rollups.prune(engine, cutoff) == 10  # ...and then they may go
    assert raw_count(engine) == 10
    with_uncounted = counted(engine)
    assert with_uncounted != shown  # the ten uncounted rows now count
    assert_rollups_match_raw_for_kept(engine, with_uncounted, made)


def assert_rollups_match_raw_for_kept(engine: sa.Engine, shown: dict, made: list) -> None:
    """The figures after pruning equal the raw aggregates of every row ever logged: load them into a fresh copy."""
    fresh_url = f"sqlite:///{engine.url.database}-fresh.db" if engine.dialect.name == "sqlite" else None
    if fresh_url is None:
        return  # MariaDB: the SQLite run checks this; the MariaDB run checks the counts above
    db.upgrade(fresh_url)
    fresh = db.create_engine(fresh_url)
    try:
        uncounted(fresh, made)
        load_events(fresh, made)
        rollups.catch_up(fresh)
        assert counted(fresh) == shown
    finally:
        fresh.dispose()


def test_the_shipper_catches_up_at_start_and_prunes_with_a_retention(engine, tmp_path):
    made = answers(8, start=datetime.now(UTC).replace(tzinfo=None) - timedelta(days=400))
    uncounted(engine, made)
    shipper = LogShipper(engine, tmp_path / "spool", retention_days=365)
    assert shipper.maintain() == {"counted": 8, "pruned": 8}
    assert raw_count(engine) == 0
    assert LogShipper(engine, tmp_path / "spool").maintain() == {"counted": 0, "pruned": 0}  # 0 days: keep all
    with engine.connect() as connection:
        assert int(connection.execute(sa.text("SELECT SUM(predictions) FROM prediction_daily")).scalar()) == 8


# --- the pages --------------------------------------------------------------------------------------------------------

@pytest.fixture
def app(tmp_path):
    from app import create_app

    return create_app({"DB_URL": f"sqlite:///{tmp_path / 'app.db'}", "MODELS_URI": (tmp_path / "models").as_uri(),
                       "SPOOL_DIR": str(tmp_path / "app-spool"), "MODEL_POLL_SECONDS": 0, "TESTING": True})


def test_the_analytics_report_is_the_same_from_rollups_as_from_raw_views(app, tmp_path):
    from app.analytics import build_report

    url = app.config["DB_URL"]
    db.upgrade(url)
    now = datetime.now(UTC).replace(tzinfo=None)
    made = answers(60, start=now)
    engine = db.create_engine(url)
    raw = db.create_engine(url)

    @sa.event.listens_for(raw, "connect")
    def _old_views(connection: Any, _record: Any) -> None:  # TEMP views shadow the database's own ones
        for name, select in raw_views("sqlite").items():
            connection.execute(f"CREATE TEMP VIEW {name} AS {select}")

    try:
        spool(tmp_path / "spool", made)
        ship(engine, tmp_path / "spool")
        load_events(engine, made)
        with app.app_context():
            after, before = build_report(engine, now), build_report(raw, now)
    finally:
        engine.dispose()
        raw.dispose()
    assert after["totals"]["matchups"] == 30 and sum(after["hourly"]["counts"]["assets"]) > 0
    live_after, live_before = after.pop("live"), before.pop("live")
    assert after == before
    assert [{k: v for k, v in row.items() if k != "log_loss"} for row in live_after] == [
        {k: v for k, v in row.items() if k != "log_loss"} for row in live_before]
    for mine, theirs in zip(live_after, live_before, strict=True):  # summed in another order: equal to 1e-12
        assert mine["log_loss"] == pytest.approx(theirs["log_loss"], rel=1e-12)


def test_concurrent_cache_misses_run_one_query(app, monkeypatch):
    import app.analytics as analytics
    import app.models as models

    db.upgrade(app.config["DB_URL"])
    statements = []
    engine = db.create_engine(app.config["DB_URL"])
    sa.event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    app.extensions["pronostico.db"] = engine
    slow_connect = engine.connect

    def connect() -> sa.Connection:  # hold the first query long enough for every thread to miss the cache
        time.sleep(0.3)
        return slow_connect()

    monkeypatch.setattr(engine, "connect", connect)
    threads = 8
    results: dict[str, list[Any]] = {"analytics": [], "live": []}
    start = threading.Barrier(threads * 2)

    def ask(kind: str) -> None:
        with app.app_context():
            start.wait()
            results[kind].append(analytics.cached_report() if kind == "analytics"
                                 else models.shared_live_report("assets"))

    workers = [threading.Thread(target=ask, args=(kind,)) for kind in ("analytics", "live") for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    engine.dispose()
    once = [s for s in statements if "FROM prediction_daily WHERE day" in s]
    assert len(once) == 1  # the analytics report's queries ran once for eight misses
    assert len([s for s in statements if "model_live_scores WHERE use_case" in s]) == 1
    assert all(r is results["analytics"][0] for r in results["analytics"]) and len(results["analytics"]) == threads
    assert all(r is results["live"][0] for r in results["live"]) and len(results["live"]) == threads


# --- the benchmark's bulk load ----------------------------------------------------------------------------------------

@pytest.fixture
def two_mariadb_engines(mariadb):
    names = [f"pronostico_test_{uuid.uuid4().hex[:10]}" for _ in range(2)]
    engines = []
    try:
        for name in names:
            mariadb.execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
            db.upgrade(mariadb.url(name))
            engines.append(db.create_engine(mariadb.url(name)))
        yield engines
    finally:
        for engine in engines:
            engine.dispose()
        for name in names:
            mariadb.execute(f"DROP DATABASE IF EXISTS {name}")


def rollup_rows(engine: sa.Engine) -> dict[str, list[tuple]]:
    with engine.connect() as connection:
        return {table.name: figures(connection, f"SELECT * FROM {table.name}") for table in schema.ROLLUPS}


def test_the_benchmarks_bulk_rollups_equal_what_catch_up_counts(two_mariadb_engines):
    from benchmarks import log_scale

    bulk, caught_up = two_mariadb_engines
    rows = 3_000
    log_scale.load_log(bulk, rows, chunk=700, progress=lambda _line: None)  # keys spanning chunks add up
    with caught_up.begin() as connection:  # the same rows, logged uncounted, then counted as the shipper does
        connection.execute(sa.text(log_scale.GENERATE.format(rows=rows, start=0, stop=rows - 1, counted=0)))
        for sql in log_scale.EVENTS:
            connection.execute(sa.text(sql))
    assert rollups.catch_up(caught_up, batch_rows=1_000) == rows
    with caught_up.begin() as connection:
        for use_case in ("matchups", "assets"):
            rollups.resolve_use_case(connection, use_case)
    expected, found = rollup_rows(caught_up), rollup_rows(bulk)
    assert sum(row[4] for row in found["prediction_rollup_daily"]) == rows
    assert any(row[-2] is not None for row in found["prediction_rollup_live"])  # some are resolved
    for table, rows_expected in expected.items():
        assert len(found[table]) == len(rows_expected), table
        # log losses to 1e-5 relative: MariaDB sends catch_up each FLOAT probability rounded to 6 digits, while the
        # bulk SQL takes its logarithm at full single precision
        for row, wanted in zip(found[table], rows_expected, strict=True):
            assert [pytest.approx(v, rel=1e-5) if isinstance(v, float) else v for v in row] == list(wanted), table
