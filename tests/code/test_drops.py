"""make demo's drops (pronostico.local.drops) and the demo's feeding flow, without Spark or Airflow."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pronostico.core import layout, storage
from pronostico.core.config import Settings, load_settings
from pronostico.local import demo
from pronostico.local.drops import DropError, months_before, plan_drops, read_source

ISO_HEADER = "date,symbol,open,high,low,close,volume"
KAGGLE_HEADER = "date,home_team,away_team,home_team_score,away_team_score,tournament,city,neutral_location"


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


def write(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(("\n".join(lines) + "\n").encode())
    return path


def by_name(drops: list[Any], number: int, use_case: str) -> dict[str, Any]:
    return {f.path.name: f for f in drops[number - 1].files.get(use_case, ())}


@pytest.mark.parametrize(("day", "months", "expected"), [
    (date(2026, 5, 31), 3, date(2026, 2, 28)),
    (date(2024, 5, 31), 3, date(2024, 2, 29)),
    (date(2026, 3, 31), 1, date(2026, 2, 28)),
    (date(2026, 8, 31), 6, date(2026, 2, 28)),
    (date(2026, 1, 15), 6, date(2025, 7, 15)),
    (date(2026, 7, 19), 6, date(2026, 1, 19)),
])
def test_month_arithmetic_clamps_to_the_months_end(day: date, months: int, expected: date) -> None:
    assert months_before(day, months) == expected


@pytest.fixture
def small_inputs(tmp_path: Path) -> dict[str, list[Path]]:
    """assets newest 2026-05-31: C = 2026-02-28; rows on both sides of the cutoff."""
    src = tmp_path / "src"
    bars = write(src / "AAA.csv", [
        ISO_HEADER,
        "2025-11-29,AAA,1.50000000001,2,0.5,1.0E3,100",
        "2026-02-27,AAA,1.5,2,0.5,1.5,102",
        "2026-02-28,AAA,1.5,2,0.5,1.75,103",  # exactly C: drop 2
        "2026-05-31,AAA,1.5,2,0.5,2.00,104",
    ])
    old = write(src / "OLD.csv", [ISO_HEADER, "2020-01-02,OLD,1,2,0.5,1.5,10", "2020-01-03,OLD,1,2,0.5,1.6,11"])
    return {"assets": [bars, old]}


def test_rows_go_to_the_drop_of_their_date_and_keep_their_text(settings: Settings,
                                                                small_inputs: dict[str, list[Path]]) -> None:
    drops = plan_drops(settings, "real", small_inputs)
    assert [d.number for d in drops] == [1, 2]
    first, second = (by_name(drops, n, "assets") for n in (1, 2))
    assert sorted(first) == ["AAA.csv", "OLD.csv"]
    assert list(second) == ["AAA.drop2.csv"]
    assert first["AAA.csv"].path.read_text().splitlines() == [
        ISO_HEADER, "2025-11-29,AAA,1.50000000001,2,0.5,1.0E3,100", "2026-02-27,AAA,1.5,2,0.5,1.5,102"]
    assert second["AAA.drop2.csv"].path.read_text().splitlines() == [
        ISO_HEADER, "2026-02-28,AAA,1.5,2,0.5,1.75,103", "2026-05-31,AAA,1.5,2,0.5,2.00,104"]
    assert [f.rows for f in (first["AAA.csv"], second["AAA.drop2.csv"])] == [2, 2]
    assert drops[0].description == "history to 2026-02-27"
    assert drops[1].description == "2026-02-28 to 2026-05-31"
    assert first["AAA.csv"].path.parent == settings.home / "demo-data" / "drops" / "1" / "assets"


def test_a_file_wholly_before_the_cutoff_is_copied_byte_for_byte(settings: Settings,
                                                                        small_inputs: dict[str, list[Path]]) -> None:
    old = small_inputs["assets"][1]
    copy = by_name(plan_drops(settings, "real", small_inputs), 1, "assets")["OLD.csv"].path
    assert md5(copy) == md5(old) == storage.file_md5(copy)


def test_day_month_year_dates_quoted_fields_and_crlf_lines(settings: Settings, tmp_path: Path) -> None:
    lines = [KAGGLE_HEADER,
             '31/12/2021,Brazil,Chile,2,1,Friendly,"Rio de Janeiro, RJ",FALSE',
             '01/01/2022,Peru,"Trinidad\nand Tobago",0,0,Friendly,Lima,TRUE',  # a quoted line break: one record
             "30/06/2022,Peru,Chile,1,3,Copa América,Lima,FALSE",
             "01/10/2022,Chile,Peru,1,1,FIFA World Cup qualification,Santiago,FALSE"]
    path = tmp_path / "matches.csv"
    path.write_bytes("\r\n".join(lines).encode())  # CRLF, and no newline after the last line
    drops = plan_drops(settings, "real", {"matchups": [path]})  # newest 2022-10-01: C 2022-07-01
    first = by_name(drops, 1, "matchups")["matches.csv"].path.read_bytes()
    assert first == "\r\n".join(lines[:4]).encode() + b"\r\n"
    assert by_name(drops, 2, "matchups")["matches.drop2.csv"].path.read_bytes() == (
        "\r\n".join([lines[0], lines[4]])).encode()


def test_a_date_in_neither_format_fails_with_a_one_line_reason(settings: Settings, tmp_path: Path) -> None:
    path = write(tmp_path / "odd.csv", [ISO_HEADER, "2026.01.02,AAA,1,2,0.5,1.5,100"])
    with pytest.raises(DropError, match=r"odd.csv: the first row's date '2026.01.02' is neither") as failure:
        plan_drops(settings, "real", {"assets": [path]})
    assert "\n" not in str(failure.value)
    with pytest.raises(DropError, match="no 'date' column"):
        read_source(write(tmp_path / "nodate.csv", ["when,symbol", "2026-01-02,AAA"]))


def test_a_file_with_no_history_is_not_in_drop_one(settings: Settings, tmp_path: Path) -> None:
    new = write(tmp_path / "NEW.csv", [ISO_HEADER, "2026-05-30,NEW,1,2,0.5,1.5,1", "2026-05-31,NEW,1,2,0.5,1.5,2"])
    old = write(tmp_path / "OLD.csv", [ISO_HEADER, "2020-01-02,OLD,1,2,0.5,1.5,10"])
    drops = plan_drops(settings, "real", {"assets": [new, old]})
    assert list(by_name(drops, 1, "assets")) == ["OLD.csv"], "a header-only file would be rejected as empty"
    assert list(by_name(drops, 2, "assets")) == ["NEW.drop2.csv"]


def test_planning_twice_gives_the_same_bytes_and_drops_stale_files(settings: Settings,
                                                                   small_inputs: dict[str, list[Path]]) -> None:
    first = {f.path: f.path.read_bytes() for d in plan_drops(settings, "real", small_inputs)
             for fs in d.files.values() for f in fs}
    again = {f.path: f.path.read_bytes() for d in plan_drops(settings, "real", small_inputs)
             for fs in d.files.values() for f in fs}
    assert again == first
    bars, old = small_inputs["assets"]
    bars.write_text("".join(line for line in bars.read_text().splitlines(keepends=True)
                            if not line.startswith(("2026-02-28", "2026-05-31"))))
    old.write_text(old.read_text() + "2026-05-31,OLD,1,2,0.5,1.7,12\n")  # the cutoff stays where it was
    changed = plan_drops(settings, "real", small_inputs)
    assert [f.path.name for f in changed[1].files["assets"]] == ["OLD.drop2.csv"]
    assert not (settings.home / "demo-data" / "drops" / "2" / "assets" / "AAA.drop2.csv").exists()


def test_keys_put_synthetic_data_under_its_own_folder(settings: Settings,
                                                      small_inputs: dict[str, list[Path]]) -> None:
    real = plan_drops(settings, "real", small_inputs)
    synthetic = plan_drops(settings, "synthetic", small_inputs)
    assert sorted(f.key for f in real[0].files["assets"]) == ["assets/AAA.csv", "assets/OLD.csv"]
    assert [f.key for f in real[1].files["assets"]] == ["assets/AAA.drop2.csv"]
    assert sorted(f.key for f in synthetic[0].files["assets"]) == ["assets/synthetic/AAA.csv",
                                                                    "assets/synthetic/OLD.csv"]
    assert [f.key for f in synthetic[1].files["assets"]] == ["assets/synthetic/AAA.drop2.csv"]
    raw = settings.raw_uri
    assert all(layout.is_synthetic(raw, "assets", storage.join(raw, f.key))
               for d in synthetic for f in d.files["assets"])
    assert not any(layout.is_synthetic(raw, "assets", storage.join(raw, f.key))
                   for d in real for f in d.files["assets"])


def data_lines(path: Path) -> int:
    return len(read_source(path).records)


def test_the_shared_data_cuts_into_two_drops(settings: Settings, shared_data: Path) -> None:
    kind, inputs = demo.demo_inputs(settings)
    assert kind == "real"
    assert [p.name for p in inputs["matchups"]] == ["international_matches.csv", "results.csv"]
    drops = plan_drops(settings, kind, inputs)
    kaggle = inputs["matchups"][0]
    first = by_name(drops, 1, "matchups")
    assert md5(first["international_matches.csv"].path) == md5(kaggle), "the Kaggle file ends 2022-06: all history"
    assert "results.csv" in first
    assert list(by_name(drops, 2, "matchups")) == ["results.drop2.csv"]
    assert drops[1].ranges["matchups"] == "2026-04-19 to 2026-07-19"  # results.csv ends 2026-07-19
    for use_case, sources in inputs.items():
        for source in sources:
            stem = source.stem
            parts = [f for d in drops for f in d.files.get(use_case, ())
                     if f.path.name in (source.name, f"{stem}.drop2.csv")]
            assert sum(data_lines(f.path) for f in parts) == data_lines(source), source.name
            assert sum(f.rows for f in parts) == data_lines(source), source.name
    for symbol in inputs["assets"]:
        assert len([d for d in drops if any(f.path.stem.split(".")[0] == symbol.stem
                                            for f in d.files.get("assets", ()))]) == 2


# --- the demo's flow -------------------------------------------------------------------------------------------

def dated(day: str, home: str, away: str, tournament: str = "Friendly", neutral: str = "FALSE",
          column: str = "neutral") -> tuple[date, dict[str, str]]:
    return date.fromisoformat(day), {"home_team": home, "away_team": away, "tournament": tournament, column: neutral}


def test_fixtures_come_from_the_next_drops_rows_earliest_first_between_known_teams() -> None:
    rows = [
        dated("2026-02-01", "Spain", "Argentina", "FIFA World Cup", "TRUE"),
        dated("2026-01-20", "Brazil", "Atlantis"),  # Atlantis is unknown to the model
        dated("2026-01-21", "Korea Republic", "Japan", "AFC Asian Cup qualification"),  # a FIFA name, aliased
        dated("2026-01-22", "Japan", "South Korea", "Friendly"),  # the same pair again: once is enough
        dated("2026-01-23", "France", "England", "Copa América", "TRUE", column="neutral_location"),
    ]
    teams = {"Spain", "Argentina", "Brazil", "South Korea", "Japan", "France", "England"}
    fixtures = demo.matchup_fixtures(rows, teams)
    assert fixtures == [
        {"home_team": "South Korea", "away_team": "Japan", "neutral": False, "tournament": "qualifier"},
        {"home_team": "France", "away_team": "England", "neutral": True, "tournament": "continental"},
        {"home_team": "Spain", "away_team": "Argentina", "neutral": True, "tournament": "world_cup"},
    ]
    assert len(demo.matchup_fixtures(rows, teams, limit=2)) == 2


class FakeAirflow:
    def __init__(self, states: dict[str, str]) -> None:
        self.states = states

    def request(self, method: str, path: str) -> Any:
        run_id = path.rsplit("/", 1)[-1]
        return SimpleNamespace(status=200, body={"state": self.states[run_id]})


def test_follow_runs_asks_a_model_only_of_the_use_cases_the_drop_fed(settings: Settings,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo.airflow, "api", lambda _: FakeAirflow({"run-a": "success"}))
    uploads = [demo.Upload("assets", "assets/AAA.drop2.csv", "etag", "run-a")]
    promoted: list[str] = []
    assert not demo.follow_runs(settings, uploads, on_promoted=promoted.append), "no assets model yet"
    assert promoted == [], "a run that ends with nothing serving announces nothing"
    storage.write_json(layout.current_uri(settings.models_uri, "assets"), {"version": "v1"})
    assert demo.follow_runs(settings, uploads, on_promoted=promoted.append), \
        "matchups had no file in this drop: no model asked of it"
    assert promoted == ["assets"], "announced as soon as its run ends, not when the whole drop has"
    assert demo.follow_runs(settings, []), "a drop with nothing in it ends at once"


def test_the_url_is_announced_once_per_use_case_when_it_serves(web_tier: tuple[Settings, ThreadingHTTPServer],
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    settings, _ = web_tier
    announced: set[str] = set()
    for _ in range(2):
        demo.announce_served(settings, "assets", announced)
    lines = [line for line in capsys.readouterr().out.splitlines() if "serves:" in line]
    assert len(lines) == 1 and f"assets serves: http://127.0.0.1:{settings.web.port}/" in lines[0]


def test_a_second_feed_uploads_nothing_and_logs_no_predictions(settings: Settings,
                                                               small_inputs: dict[str, list[Path]]) -> None:
    drops = plan_drops(settings, "real", small_inputs)
    first = demo.upload_drop(settings, drops[0])
    assert [u.uploaded for u in first] == [True, True]
    assert demo.pending_use_cases(settings, drops[1]) == ["assets"]
    assert demo.predictions_before(settings, drops[1], web=None) == (
        0, "no predictions: the web tier is not installed")
    for drop in drops:
        demo.upload_drop(settings, drop)
    again = demo.upload_drop(settings, drops[0])
    assert [u.uploaded for u in again] == [False, False]
    assert [u.run_id for u in again] == [u.run_id for u in first], "the same run ids, so follow_runs reports them"
    assert demo.predictions_before(settings, drops[1], web=object()) == (
        0, "no predictions: drop 2 is in the bucket already")
    assert demo.predictions_before(settings, None, web=object()) == (0, "")
    assert demo.drop_line(drops[1], demo.upload_drop(settings, drops[1]), 0) == (
        "drop 2 (2026-02-28 to 2026-05-31): 1 file (1 already there), 0 runs, 0 predictions logged")


class FakeWebTier(BaseHTTPRequestHandler):
    """The slice of /api/v1 the demo uses; the server's `posted` keeps each prediction asked for."""

    def do_GET(self) -> None:
        answers = {"/api/v1/models": {uc: {"version": "v1", "state_version": "v1"} for uc in ("assets", "matchups")},
                   "/api/v1/assets/symbols": {"symbols": [{"symbol": "AAA"}, {"symbol": "OLD"}]},
                   "/api/v1/matchups/teams": {"teams": [{"name": n} for n in ("Brazil", "Chile", "Peru")]}}
        self.answer(200, answers[self.path])

    def do_POST(self) -> None:
        payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.posted.append((self.path, payload))  # type: ignore[attr-defined]
        self.answer(400 if payload.get("symbol") == "OLD" else 200, {"ok": True})

    def answer(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def web_tier(tmp_path: Path) -> Iterator[tuple[Settings, ThreadingHTTPServer]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeWebTier)
    server.posted = []  # type: ignore[attr-defined]
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings = load_settings({"PRONOSTICO_HOME": str(tmp_path / "home"), "PRONOSTICO_WEB_PORT": str(port),
                              "PRONOSTICO_APP_PORTS": str(port)})
    for use_case in ("assets", "matchups"):
        storage.write_json(layout.current_uri(settings.models_uri, use_case), {"version": "v1"})
    yield settings, server
    server.shutdown()
    server.server_close()
    thread.join()


def test_between_drops_the_demo_asks_the_web_tier_for_the_next_drops_predictions(
        web_tier: tuple[Settings, ThreadingHTTPServer], small_inputs: dict[str, list[Path]], tmp_path: Path) -> None:
    settings, server = web_tier
    matches = write(tmp_path / "src" / "matches.csv", [
        KAGGLE_HEADER,
        "01/01/2022,Brazil,Chile,2,1,Friendly,Rio,FALSE",
        "02/09/2022,Peru,Chile,1,3,Copa América,Lima,TRUE",  # C 2022-07-01: drop 2
        "01/08/2022,Chile,Atlantis,1,1,Friendly,Santiago,FALSE",  # Atlantis is unknown: skipped
        "01/10/2022,Chile,Brazil,1,1,FIFA World Cup qualification,Santiago,FALSE",
    ])
    drops = plan_drops(settings, "real", {**small_inputs, "matchups": [matches]})
    demo.upload_drop(settings, drops[0])
    web = SimpleNamespace(wait_until_healthy=lambda *_: None)
    logged, note = demo.predictions_before(settings, drops[1], web)
    assert note == ""
    posted = server.posted  # type: ignore[attr-defined]
    assert posted == [("/api/v1/assets/predict", {"symbol": "AAA"}), ("/api/v1/assets/predict", {"symbol": "OLD"}),
                      ("/api/v1/matchups/predict", {"home_team": "Peru", "away_team": "Chile", "neutral": True,
                                                    "tournament": "continental"}),
                      ("/api/v1/matchups/predict", {"home_team": "Chile", "away_team": "Brazil",
                                                    "neutral": False, "tournament": "qualifier"})]
    assert logged == 3, "OLD's prediction answered 400: not logged"
