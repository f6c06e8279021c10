"""Live results: observed events in the database, the views that score logged predictions against them (on SQLite
and a real MariaDB), and the log shipper loading each run's events file."""

from __future__ import annotations

import json
import logging
import math
import threading
import uuid
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from pronostico.core import layout, storage
from pronostico.prediction_log import db, live, schema
from pronostico.prediction_log.shipper import LogShipper, main
from pronostico.prediction_log.spool import SpoolWriter

LIVE_VIEWS = {"prediction_live_results", "model_live_scores"}
WINDOW = timedelta(days=365)
T0 = datetime(2026, 11, 1, 12, 0, 0)
FLOOR_LOSS = -math.log(1e-15)


@pytest.fixture(params=["sqlite", "mariadb"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'log.db'}" if request.param == "sqlite" else request.getfixturevalue("mariadb_url")
    db.upgrade(url)
    return url


@pytest.fixture
def engine(db_url: str) -> Any:
    engine = db.create_engine(db_url)
    yield engine
    engine.dispose()


def prediction(pid: str, minute: int, use_case: str, version: str, outcome: str, as_of: str | None,
               probabilities: dict[str, float], home: str | None = None, away: str | None = None,
               symbol: str | None = None) -> dict[str, Any]:
    """A full prediction_log row, as schema.row_from_line makes it."""
    row: dict[str, Any] = dict.fromkeys(schema.COLUMNS)
    row.update(prediction_id=pid, created_at=T0 + timedelta(minutes=minute), use_case=use_case, channel="api",
               model_version=version, home_team=home, away_team=away, symbol=symbol, outcome=outcome,
               as_of=date.fromisoformat(as_of) if as_of else None, latency_ms=1.0,
               neutral=False if home else None, tournament="friendly" if home else None)
    row.update({f"p_{name}": p for name, p in probabilities.items()})
    return row


def matchup(pid: str, minute: int, version: str, home: str, away: str, as_of: str | None, outcome: str,
            p: tuple[float, float, float]) -> dict[str, Any]:
    return prediction(pid, minute, "matchups", version, outcome, as_of,
                      dict(zip(("home_win", "draw", "away_win"), p, strict=True)), home=home, away=away)


def asset(pid: str, minute: int, version: str, symbol: str, as_of: str, outcome: str,
          p: tuple[float, float, float]) -> dict[str, Any]:
    return prediction(pid, minute, "assets", version, outcome, as_of,
                      dict(zip(("sell", "hold", "buy"), p, strict=True)), symbol=symbol)


MIRROR = {"home_win": "away_win", "draw": "draw", "away_win": "home_win"}


def meeting(home: str, away: str, day: str, outcome: str) -> list[dict[str, Any]]:
    """One match in both orientations, as the pipeline writes it."""
    event_date = date.fromisoformat(day)
    earliest = event_date - WINDOW
    return [{"subject_a": home, "subject_b": away, "event_date": event_date, "earliest_as_of": earliest,
             "outcome": outcome},
            {"subject_a": away, "subject_b": home, "event_date": event_date, "earliest_as_of": earliest,
             "outcome": MIRROR[outcome]}]


def bars(symbol: str, labels: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Assets events: each bar's label resolves the prediction made at that bar, with the next bar's date."""
    days = [date.fromisoformat(day) for day, _ in labels]
    return [{"subject_a": symbol, "subject_b": "", "event_date": days[i] + timedelta(days=1),
             "earliest_as_of": days[i], "outcome": outcome} for i, (_, outcome) in enumerate(labels)]


PREDICTIONS = [
    # the reversed orientation of Brazil-Argentina 2026-03-26 (Brazil won): resolved, away_win, a hit
    matchup("m-reversed", 0, "m1", "Argentina", "Brazil", "2026-01-01", "away_win", (0.2, 0.3, 0.5)),
    # two later meetings in the window: the first (home_win) resolves it, not the draw in June; a miss
    matchup("m-first", 1, "m1", "Brazil", "Argentina", "2026-02-01", "draw", (0.2, 0.5, 0.3)),
    # the only meeting is 2027-06-01, more than 365 days after as_of: unresolved
    matchup("m-outside", 2, "m1", "Germany", "Italy", "2026-01-01", "home_win", (0.4, 0.3, 0.3)),
    # after the March meeting: the June draw resolves it, and its probability of a draw is exactly 0
    matchup("m-zero", 3, "m2", "Brazil", "Argentina", "2026-04-01", "home_win", (0.6, 0.0, 0.4)),
    # logged before matchups logged as_of: never resolved
    matchup("m-no-as-of", 4, "m2", "Brazil", "Argentina", None, "home_win", (0.6, 0.2, 0.2)),
    # the bar of 2026-03-24: only its own label (sell) resolves it, not the next bar's nor the one before
    asset("a-bar", 5, "a1", "SPY", "2026-03-24", "sell", (0.6, 0.3, 0.1)),
    # the newest bar: no next bar yet
    asset("a-newest", 6, "a1", "SPY", "2026-03-26", "buy", (0.1, 0.3, 0.6)),
    asset("a-no-events", 7, "a0", "AAPL", "2026-03-24", "hold", (0.2, 0.5, 0.3)),
]

MATCHUP_EVENTS = (meeting("Brazil", "Argentina", "2026-03-26", "home_win")
                  + meeting("Brazil", "Argentina", "2026-06-10", "draw")
                  + meeting("Germany", "Italy", "2027-06-01", "draw"))
ASSET_EVENTS = bars("SPY", [("2026-03-23", "buy"), ("2026-03-24", "sell"), ("2026-03-25", "hold")])

EXPECTED_RESULTS = {
    "m-reversed": ("m1", "2026-01-01", "away_win", "away_win", "2026-03-26", 1, 0.5),
    "m-first": ("m1", "2026-02-01", "draw", "home_win", "2026-03-26", 0, 0.2),
    "m-zero": ("m2", "2026-04-01", "home_win", "draw", "2026-06-10", 0, 1e-15),
    "a-bar": ("a1", "2026-03-24", "sell", "sell", "2026-03-25", 1, 0.6),
}


def load(engine: sa.Engine) -> None:
    with engine.begin() as connection:
        schema.insert_rows(connection, PREDICTIONS)
        schema.upsert_events(connection, "matchups", MATCHUP_EVENTS)
        schema.upsert_events(connection, "assets", ASSET_EVENTS)


def day(value: Any) -> str:
    return str(value)[:10]  # a date on MySQL, ISO text on SQLite


# --- the migration ------------------------------------------------------------------------------------------------

def test_the_migration_makes_the_table_the_schema_describes_and_downgrade_removes_it(db_url, engine):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    assert db.current_revision(db_url) == "0004"
    inspector = sa.inspect(engine)
    assert set(inspector.get_view_names()) >= LIVE_VIEWS
    assert inspector.get_pk_constraint("observed_events")["constrained_columns"] == list(schema.EVENT_KEY)
    indexed = {tuple(index["column_names"]) for index in inspector.get_indexes("observed_events")}
    assert ("use_case", "subject_a", "subject_b", "event_date", "earliest_as_of", "outcome") in indexed
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), schema.metadata)
    assert [d for d in diff if d[0] != "remove_table"] == []  # alembic_version is no table of the schema
    engine.dispose()
    db.downgrade(db_url, "0002")
    inspector = sa.inspect(engine)
    assert "observed_events" not in inspector.get_table_names() and "prediction_log" in inspector.get_table_names()
    assert not LIVE_VIEWS & set(inspector.get_view_names())
    engine.dispose()
    db.upgrade(db_url)
    assert db.current_revision(db_url) == "0004"


def test_subject_b_defaults_to_the_empty_string(engine):
    with engine.begin() as connection:
        connection.execute(sa.text("INSERT INTO observed_events (use_case, subject_a, event_date, earliest_as_of, "
                                   "outcome, loaded_at) VALUES ('assets', 'SPY', '2026-03-25', '2026-03-24', "
                                   "'buy', '2026-12-02 10:00:00')"))
        assert connection.execute(sa.text("SELECT subject_b FROM observed_events")).scalar_one() == ""


# --- the views ----------------------------------------------------------------------------------------------------

def test_each_prediction_is_resolved_by_the_first_event_in_its_window(engine):
    load(engine)
    with engine.connect() as connection:
        rows = live.live_results(connection)
    assert [row["prediction_id"] for row in rows] == list(EXPECTED_RESULTS)
    for row in rows:
        version, as_of, predicted, observed, event_date, hit, p = EXPECTED_RESULTS[row["prediction_id"]]
        assert (row["model_version"], day(row["as_of"]), row["predicted"], row["observed"], day(row["event_date"]),
                int(row["hit"])) == (version, as_of, predicted, observed, event_date, hit), row["prediction_id"]
        assert row["p_observed"] == pytest.approx(p, rel=1e-6)
        assert row["log_loss"] == pytest.approx(-math.log(p), rel=1e-6)  # 0.5 -> 0.693..., 0.2 -> 1.609...
    zero = next(row for row in rows if row["prediction_id"] == "m-zero")
    assert math.isfinite(zero["log_loss"]) and zero["log_loss"] == pytest.approx(34.538776, rel=1e-6)
    assert str(rows[0]["created_at"]).startswith("2026-11-01 12:00:00")


def test_model_live_scores_count_every_logged_prediction_per_version(engine):
    load(engine)
    with engine.connect() as connection:
        scores = {(row["use_case"], row["model_version"]): row for row in live.live_scores(connection)}
    expected = {  # predictions, resolved, hits, hit rate, log loss
        ("matchups", "m1"): (3, 2, 1, 0.5, (-math.log(0.5) - math.log(0.2)) / 2),
        ("matchups", "m2"): (2, 1, 0, 0.0, FLOOR_LOSS),
        ("assets", "a1"): (2, 1, 1, 1.0, -math.log(0.6)),
        ("assets", "a0"): (1, 0, 0, None, None),
    }
    assert set(scores) == set(expected)
    for key, (predictions, resolved, hits, hit_rate, log_loss) in expected.items():
        row = scores[key]
        assert (int(row["predictions"]), int(row["resolved"]), int(row["hits"])) == (predictions, resolved, hits), key
        if hit_rate is None:
            assert row["hit_rate"] is None and row["log_loss"] is None
        else:
            assert row["hit_rate"] == pytest.approx(hit_rate) and row["log_loss"] == pytest.approx(log_loss, rel=1e-6)
    m1 = scores[("matchups", "m1")]
    assert str(m1["first_prediction_at"]).startswith("2026-11-01 12:00:00")
    assert str(m1["last_prediction_at"]).startswith("2026-11-01 12:02:00")


def test_an_upsert_replaces_the_outcome_of_an_event_already_loaded(engine):
    load(engine)
    corrected = [dict(event, outcome="buy") if event["event_date"] == date(2026, 3, 25) else event
                 for event in ASSET_EVENTS]
    with engine.begin() as connection:
        assert schema.upsert_events(connection, "assets", corrected, batch_rows=2) == 3
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT COUNT(*) FROM observed_events")).scalar_one() == 9
        [row] = live.live_results(connection, "assets")
    assert (row["prediction_id"], row["observed"], int(row["hit"])) == ("a-bar", "buy", 0)
    assert row["log_loss"] == pytest.approx(-math.log(0.1), rel=1e-6)


# --- the events file ----------------------------------------------------------------------------------------------

def document(use_case: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    return {"use_case": use_case, "run_id": "run-1", "written_at": "2026-12-02T10:00:00+00:00",
            "events": [{**event, "event_date": str(event["event_date"]),
                        "earliest_as_of": str(event["earliest_as_of"])} for event in events]}


@pytest.mark.parametrize(("change", "message"), [
    ({"outcome": "win"}, "outcome 'win'"),
    ({"event_date": "26/03/2026"}, "event 0"),
    ({"earliest_as_of": "2027-01-01"}, "after event_date"),
    ({"subject_a": ""}, "subject_a is empty"),
    ({"subject_b": None}, "subject_b must be a string"),
])
def test_a_document_with_one_bad_event_is_refused_whole(change, message):
    events = document("assets", ASSET_EVENTS)["events"]
    events[0] = {**events[0], **change}
    with pytest.raises(live.InvalidEvents, match=message):
        live.parse_events({"use_case": "assets", "events": events}, "assets")


def test_a_document_of_another_use_case_is_refused():
    with pytest.raises(live.InvalidEvents, match="for 'assets', not 'matchups'"):
        live.parse_events(document("assets", ASSET_EVENTS), "matchups")


# --- the shipper --------------------------------------------------------------------------------------------------

@pytest.fixture
def sqlite_log(tmp_path: Path) -> Any:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    db.upgrade(url)
    engine = db.create_engine(url)
    yield engine
    engine.dispose()


def events_in(engine: sa.Engine) -> dict[tuple[str, str, str], str]:
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT subject_a, subject_b, event_date, outcome FROM observed_events "
                                          "WHERE use_case = 'assets'")).all()
    return {(a, b, day(d)): outcome for a, b, d, outcome in rows}


def write_events(models_uri: str, use_case: str, events: list[dict[str, Any]]) -> None:
    storage.write_json(layout.observed_events_uri(models_uri, use_case), document(use_case, events))


def asset_line(symbol: str = "SPY") -> bytes:
    answer = {"prediction_id": str(uuid.uuid4()), "model_version": "a1", "symbol": symbol, "as_of": "2026-03-24",
              "signal": "sell", "probabilities": {"sell": 0.6, "hold": 0.3, "buy": 0.1}}
    return schema.log_line("assets", "api", answer, 0.5)


def shipper_for(engine: sa.Engine, tmp_path: Path, **options: Any) -> LogShipper:
    return LogShipper(engine, tmp_path / "spool", models_uri=(tmp_path / "models").as_uri(),
                      use_cases=("matchups", "assets"), **options)


def test_the_shipper_loads_an_events_file_and_reloads_it_when_it_changes(sqlite_log, tmp_path):
    shipper = shipper_for(sqlite_log, tmp_path)
    write_events(shipper.models_uri, "assets", ASSET_EVENTS)
    assert shipper.load_events() == {"matchups": "missing", "assets": "loaded 3"}  # no matchups file: no error
    assert events_in(sqlite_log)[("SPY", "", "2026-03-25")] == "sell"
    loaded = shipper.status()["events_loaded"]["assets"]
    etag = storage.stat(layout.observed_events_uri(shipper.models_uri, "assets")).etag
    assert loaded["etag"] == etag and loaded["events"] == 3 and loaded["loaded_at"]
    assert shipper.load_events()["assets"] == "unchanged"

    changed = [dict(e, outcome="buy") if e["event_date"] == date(2026, 3, 25) else e for e in ASSET_EVENTS]
    changed += bars("QQQ", [("2026-03-24", "hold")])
    write_events(shipper.models_uri, "assets", changed)
    assert shipper.load_events()["assets"] == "loaded 4"
    events = events_in(sqlite_log)
    assert len(events) == 4 and events[("SPY", "", "2026-03-25")] == "buy" and events[("QQQ", "", "2026-03-25")]
    assert shipper.status()["events_loaded"]["assets"]["etag"] != etag


def test_a_broken_events_file_is_logged_once_and_predictions_still_ship(sqlite_log, tmp_path, caplog):
    writer = SpoolWriter(tmp_path / "spool")
    for _ in range(5):
        writer.append(asset_line())
    writer.close()
    models_uri = (tmp_path / "models").as_uri()
    storage.write_text(layout.observed_events_uri(models_uri, "assets"), '{"use_case": "assets", "events": [')
    write_events(models_uri, "matchups", MATCHUP_EVENTS)
    shipper = shipper_for(sqlite_log, tmp_path, idle_seconds=0.01, events_every_seconds=0)  # check every loop
    stop = threading.Event()
    caplog.set_level(logging.INFO, logger="pronostico.prediction_log.shipper")
    thread = threading.Thread(target=shipper.run, args=(stop,))
    thread.start()
    try:
        for _ in range(500):
            if shipper.shipped_rows == 5 and any("loaded" in r.getMessage() for r in caplog.records):
                break
            stop.wait(0.01)
        stop.wait(0.2)  # several more checks of the same broken file
    finally:
        stop.set()
        thread.join(10)
    assert shipper.shipped_rows == 5
    refusals = [r for r in caplog.records if r.levelno == logging.ERROR and "assets events" in r.getMessage()]
    assert len(refusals) == 1 and "is invalid" in refusals[0].getMessage()
    status = json.loads((tmp_path / "spool" / "shipper.json").read_text())
    assert set(status["events_loaded"]) == {"matchups"} and status["events_loaded"]["matchups"]["events"] == 6
    with sqlite_log.connect() as connection:
        assert connection.execute(sa.text("SELECT COUNT(*) FROM prediction_log")).scalar_one() == 5

    write_events(models_uri, "assets", ASSET_EVENTS)  # fixed by the next run: loaded
    assert shipper.load_events()["assets"] == "loaded 3"
    with sqlite_log.connect() as connection:
        assert [row["observed"] for row in live.live_results(connection, "assets")] == ["sell"] * 5


def test_a_database_outage_while_loading_is_retried_at_the_next_check(tmp_path):
    import sqlite3

    url = f"sqlite:///{tmp_path / 'log.db'}"
    db.upgrade(url)
    engine = db.create_engine(url, poolclass=sa.pool.NullPool)  # every transaction connects
    away = {"now": True}

    def connect(*_: Any) -> None:
        if away["now"]:
            raise sqlite3.OperationalError("unable to open database file")

    sa.event.listen(engine, "do_connect", connect)
    try:
        shipper = shipper_for(engine, tmp_path)
        write_events(shipper.models_uri, "assets", ASSET_EVENTS)
        assert "database away" in shipper.load_events()["assets"]
        assert shipper.status()["events_loaded"] == {}  # not remembered: the same etag loads next time
        away["now"] = False
        assert shipper.load_events()["assets"] == "loaded 3"
        assert len(events_in(engine)) == 3
    finally:
        engine.dispose()


def test_load_events_and_drain_on_the_command_line(settings, capsys):
    db.upgrade(settings.db_url)
    write_events(settings.models_uri, "assets", ASSET_EVENTS)
    assert main(["--load-events"]) == 0
    assert json.loads(capsys.readouterr().out)["assets"] == "loaded 3"
    write_events(settings.models_uri, "assets", bars("SPY", [("2026-03-26", "buy")]))
    assert main(["--drain"]) == 0
    assert "loaded 1" in capsys.readouterr().out
    storage.write_text(layout.observed_events_uri(settings.models_uri, "matchups"), "not json")
    assert main(["--load-events"]) == 1  # a file that does not load fails the command
    engine = db.create_engine(settings.db_url)
    try:
        assert len(events_in(engine)) == 4
    finally:
        engine.dispose()
