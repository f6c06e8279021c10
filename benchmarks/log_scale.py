"""The prediction log at 10 million rows: the pages before and after the rollups, the shipper's rate, and a fleet of
shippers against one MariaDB.

    python -m benchmarks log_scale          # the section of docs/BENCHMARKS.md
    python -m benchmarks.log_scale --drop   # drop the generated databases (10M rows take minutes to load)

The 10M-row database is generated once in MariaDB (SQL over its sequence engine), each chunk counted in the rollups
by bulk SQL in the transaction that inserts it, and kept between runs while every row is there and counted. "Before"
is the same Flask app reading the views of migrations 0002 and 0003 over the raw rows: a second database holds those
views over the first one's tables, so the app, the queries and the data are the same.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import runpy
import statistics
import tempfile
import textwrap
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from benchmarks.report import PROJECT_ROOT, markdown_table
from pronostico.prediction_log import db, rollups, shipper
from pronostico.prediction_log.schema import PROBABILITY_CLASSES, insert_ignoring_duplicates, log_line
from pronostico.prediction_log.spool import SpoolWriter

SERVER = os.environ.get("PRONOSTICO_BENCH_MARIADB", "mysql+pymysql://root@127.0.0.1:3306")
DATABASE = "pronostico_bench_log_scale"
RAW_DATABASE = f"{DATABASE}_raw"
ROWS = int(os.environ.get("PRONOSTICO_BENCH_LOG_ROWS", 10_000_000))  # fewer for a quick try
DAYS = 730
VERSIONS = 8  # per use case, one a quarter
TEAMS, SYMBOLS = 120, 40
CHUNK = 1_000_000
REQUESTS_AFTER, REQUESTS_BEFORE = 15, 3
SHIPPED_LINES = 20_000
SHIPPER_BATCH_ROWS = 500  # the shipper's default (PRONOSTICO_SHIPPER_BATCH_ROWS)
LARGER_BATCH_ROWS = 2_000  # the same rollup rows per batch, four times the log rows
SHIPPER_ROUNDS = 5  # each a drain without the rollups, then one with: the machine is shared, so pairs and medians
FLEET = (1, 4, 16)
FLEET_LINES = 96_000  # spread over the shippers of each fleet size
MIGRATIONS = Path(db.MIGRATIONS) / "versions"
TIMED_OUT = float("inf")
ENDPOINTS = ("/api/v1/analytics", "/api/v1/models/matchups/live", "/api/v1/models/assets/live")


def url(database: str) -> str:
    return f"{SERVER}/{database}"


def server(sql: str) -> None:
    engine = sa.create_engine(SERVER)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text(sql))
    finally:
        engine.dispose()


# --- the 10M-row log ------------------------------------------------------------------------------------------------

# One row per sequence number n: time order, both use cases, a version a quarter, skewed subjects, 3 probabilities.
# {rows} is the size of the whole log (times and versions spread over it), {start}-{stop} this chunk's numbers, and
# {counted} the rolled_up flag: 1 when the same transaction counts the chunk in bulk (ROLL_UP).
GENERATE = f"""
INSERT INTO prediction_log (prediction_id, created_at, use_case, channel, model_version, home_team, away_team,
    neutral, tournament, symbol, as_of, outcome, p_home_win, p_draw, p_away_win, p_sell, p_hold, p_buy, latency_ms,
    rolled_up)
SELECT CONCAT('00000000-0000-7000-8000-', LPAD(HEX(n), 12, '0')), at, use_case, IF(n % 5 = 0, 'form', 'api'),
       CONCAT(use_case, '-v', FLOOR(n * {VERSIONS} / {{rows}})),
       IF(m, CONCAT('Team', LPAD(home, 3, '0')), NULL),
       IF(m, CONCAT('Team', LPAD((home + 1 + FLOOR(r3 * {TEAMS - 1})) % {TEAMS}, 3, '0')), NULL),
       IF(m, n % 3 = 0, NULL), IF(m, 'friendly', NULL),
       IF(m, NULL, CONCAT('SYM', LPAD(FLOOR(r3 * r3 * {SYMBOLS}), 2, '0'))),
       IF(m, DATE(at) - INTERVAL WEEKDAY(at) + 2 DAY, DATE(at) - INTERVAL 1 DAY),
       CASE WHEN r1 >= r2 AND r1 >= r0 THEN IF(m, 'home_win', 'buy')
            WHEN r2 >= r0 THEN IF(m, 'draw', 'hold') ELSE IF(m, 'away_win', 'sell') END,
       IF(m, r1 / s, NULL), IF(m, r2 / s, NULL), IF(m, r0 / s, NULL),
       IF(m, NULL, r0 / s), IF(m, NULL, r2 / s), IF(m, NULL, r1 / s), 0.2 + r3, {{counted}}
FROM (SELECT n, m, at, use_case, r0, r1, r2, r3, r0 + r1 + r2 AS s, FLOOR(r1 * r1 * {TEAMS}) AS home
      FROM (SELECT seq AS n, seq % 2 = 0 AS m, IF(seq % 2 = 0, 'matchups', 'assets') AS use_case,
                   TIMESTAMPADD(MICROSECOND, FLOOR(seq * ({DAYS} * 86400e6 / {{rows}})), '2025-01-01') AS at,
                   RAND(seq) AS r0, RAND(seq + {{rows}}) AS r1, RAND(seq + 2 * {{rows}}) AS r2,
                   RAND(seq + 3 * {{rows}}) AS r3
            FROM seq_{{start}}_to_{{stop}}) AS drawn) AS rows_"""


def chunk_ids(start: int, stop: int) -> dict[str, str]:
    """The prediction ids GENERATE gives the numbers start to stop (ids sort as their numbers do)."""
    return {"first": f"00000000-0000-7000-8000-{start:012X}", "last": f"00000000-0000-7000-8000-{stop:012X}"}


# What rollups.roll_up adds for the rows of one chunk (prediction ids :first to :last), as one INSERT ... SELECT ...
# GROUP BY per rollup: the shipper's counts, computed by MariaDB in bulk instead of 10,000 rows a transaction. Each
# adds to what earlier chunks counted (a day, a subject or an as_of spans chunks). The subject and the log loss are
# those of migration 0003's views.
CHUNK_ROWS = "FROM prediction_log WHERE prediction_id BETWEEN :first AND :last"
SUBJECT = "COALESCE(home_team, symbol), COALESCE(away_team, '')"
ROLL_UP = [f"""
INSERT INTO prediction_rollup_hourly (hour, use_case, model_version, outcome, predictions)
SELECT DATE_FORMAT(created_at, '%Y-%m-%d %H:00:00'), use_case, model_version, outcome, COUNT(*) {CHUNK_ROWS}
GROUP BY 1, 2, 3, 4
ON DUPLICATE KEY UPDATE predictions = predictions + VALUES(predictions)""", f"""
INSERT INTO prediction_rollup_daily (day, use_case, model_version, outcome, predictions, first_at, last_at)
SELECT DATE(created_at), use_case, model_version, outcome, COUNT(*), MIN(created_at), MAX(created_at) {CHUNK_ROWS}
GROUP BY 1, 2, 3, 4
ON DUPLICATE KEY UPDATE predictions = predictions + VALUES(predictions), first_at = LEAST(first_at, VALUES(first_at)),
    last_at = GREATEST(last_at, VALUES(last_at))""", f"""
INSERT INTO prediction_rollup_subjects (use_case, subject_a, subject_b, predictions, last_at)
SELECT use_case, {SUBJECT}, COUNT(*), MAX(created_at) {CHUNK_ROWS} AND COALESCE(home_team, symbol) IS NOT NULL
GROUP BY 1, 2, 3
ON DUPLICATE KEY UPDATE predictions = predictions + VALUES(predictions), last_at = GREATEST(last_at, VALUES(last_at))
""", f"""
INSERT INTO prediction_rollup_live (use_case, model_version, subject_a, subject_b, as_of, predictions,
    {", ".join(f"predicted_{c}" for c in PROBABILITY_CLASSES)}, {", ".join(f"loss_{c}" for c in PROBABILITY_CLASSES)})
SELECT use_case, model_version, {SUBJECT}, as_of, COUNT(*),
       {", ".join(f"SUM(outcome = '{c}')" for c in PROBABILITY_CLASSES)},
       {", ".join(f"SUM(-LN(GREATEST(COALESCE(p_{c}, 0), {rollups.FLOOR})))" for c in PROBABILITY_CLASSES)}
{CHUNK_ROWS} AND COALESCE(home_team, symbol) IS NOT NULL AND as_of IS NOT NULL
GROUP BY 1, 2, 3, 4, 5
ON DUPLICATE KEY UPDATE predictions = predictions + VALUES(predictions),
    {", ".join(f"predicted_{c} = predicted_{c} + VALUES(predicted_{c})" for c in PROBABILITY_CLASSES)},
    {", ".join(f"loss_{c} = loss_{c} + VALUES(loss_{c})" for c in PROBABILITY_CLASSES)}"""]


# matchups: every pair meets every 90 days, in both orientations; assets: a bar a day per symbol
EVENTS = [f"""
INSERT INTO observed_events (use_case, subject_a, subject_b, event_date, earliest_as_of, outcome, loaded_at)
SELECT 'matchups', CONCAT('Team', LPAD(a.seq, 3, '0')), CONCAT('Team', LPAD(b.seq, 3, '0')),
       '2025-01-01' + INTERVAL (d.seq * 90 + (a.seq + b.seq) % 90) DAY,
       '2025-01-01' + INTERVAL (CAST(d.seq * 90 + (a.seq + b.seq) % 90 AS SIGNED) - 365) DAY,
       ELT(1 + (a.seq * 7 + b.seq * 13 + d.seq) % 3, 'home_win', 'draw', 'away_win'), NOW()
FROM seq_0_to_{TEAMS - 1} a JOIN seq_0_to_{TEAMS - 1} b ON a.seq <> b.seq JOIN seq_0_to_8 d""", f"""
INSERT INTO observed_events (use_case, subject_a, subject_b, event_date, earliest_as_of, outcome, loaded_at)
SELECT 'assets', CONCAT('SYM', LPAD(s.seq, 2, '0')), '', '2025-01-01' + INTERVAL d.seq DAY,
       '2025-01-01' + INTERVAL (CAST(d.seq AS SIGNED) - 1) DAY,
       ELT(1 + (s.seq * 11 + d.seq * 5) % 3, 'sell', 'hold', 'buy'), NOW()
FROM seq_0_to_{SYMBOLS - 1} s JOIN seq_1_to_{DAYS + 1} d"""]


def ensure_log(progress: Callable[[str], None]) -> tuple[dict[str, float], bool]:
    """The 10M-row database with its rollups, built unless it is there already; the seconds each step of its build
    took, and whether it was built in this run."""
    if log_is_complete():
        progress(f"reusing {DATABASE} ({ROWS:,} rows)")
        return build_timings(), False
    server(f"DROP DATABASE IF EXISTS {DATABASE}")
    server(f"CREATE DATABASE {DATABASE} CHARACTER SET utf8mb4")
    db.upgrade(url(DATABASE))
    engine = db.create_engine(url(DATABASE))
    try:
        timings = load_log(engine, ROWS, CHUNK, progress)
        with engine.begin() as connection:  # kept with the data, so a run that reuses it can say how it was built
            connection.execute(sa.text("CREATE TABLE benchmark_build (step VARCHAR(16) PRIMARY KEY, seconds DOUBLE)"))
            connection.execute(sa.text("INSERT INTO benchmark_build VALUES (:step, :seconds)"),
                               [{"step": step, "seconds": seconds} for step, seconds in timings.items()])
        return timings, True
    finally:
        engine.dispose()


def build_timings() -> dict[str, float]:
    engine = sa.create_engine(url(DATABASE))
    try:
        with engine.connect() as connection:
            return {step: seconds for step, seconds in connection.execute(sa.text("SELECT * FROM benchmark_build"))}
    except sa.exc.SQLAlchemyError:
        return {}  # built before the timings were kept
    finally:
        engine.dispose()


def log_is_complete() -> bool:
    """Whether the database holds every row, counted: a load stopped halfway leaves fewer of both."""
    engine = sa.create_engine(url(DATABASE))
    try:
        with engine.connect() as connection:
            raw = connection.execute(sa.text("SELECT COUNT(*) FROM prediction_log WHERE rolled_up = 1")).scalar()
            counted = connection.execute(sa.text("SELECT SUM(predictions) FROM prediction_rollup_daily")).scalar()
        return raw == counted == ROWS
    except sa.exc.SQLAlchemyError:
        return False
    finally:
        engine.dispose()


def load_log(engine: sa.Engine, rows: int, chunk: int, progress: Callable[[str], None]) -> dict[str, float]:
    """Generate the log a chunk at a time, each chunk counted in the rollups in bulk in the transaction that inserts
    it (as the shipper does a batch), then load the events and resolve the live rollup as loading an events file
    does; the seconds each step took."""
    timings = {"generate": 0.0, "roll_up": 0.0}
    with engine.begin() as connection:
        for sql in EVENTS:
            connection.execute(sa.text(sql))
    for start in range(0, rows, chunk):
        stop = min(start + chunk, rows) - 1
        with engine.begin() as connection:
            started = time.monotonic()
            connection.execute(sa.text(GENERATE.format(rows=rows, start=start, stop=stop, counted=1)))
            timings["generate"] += time.monotonic() - started
            started = time.monotonic()
            for sql in ROLL_UP:
                connection.execute(sa.text(sql), chunk_ids(start, stop))
        timings["roll_up"] += time.monotonic() - started  # with the commit
        progress(f"generated and counted {stop + 1:,} rows")
    started = time.monotonic()
    with engine.begin() as connection:
        for use_case in ("matchups", "assets"):
            rollups.resolve_use_case(connection, use_case)
    timings["resolve"] = time.monotonic() - started
    return timings


def raw_views() -> None:
    """The views of migrations 0002 and 0003, over the 10M-row database's tables, in a database of their own."""
    bi = runpy.run_path(str(MIGRATIONS / "0002_bi_views.py"))
    live = runpy.run_path(str(MIGRATIONS / "0003_live_results.py"))
    views = {name: sql.format(hour=bi["HOUR_BUCKET"]["mysql"]) for name, sql in bi["VIEWS"].items()} | live["VIEWS"]
    server(f"DROP DATABASE IF EXISTS {RAW_DATABASE}")
    server(f"CREATE DATABASE {RAW_DATABASE} CHARACTER SET utf8mb4")
    engine = sa.create_engine(url(RAW_DATABASE))
    try:
        with engine.begin() as connection:
            for name, sql in views.items():
                for table in ("prediction_log", "observed_events"):
                    sql = sql.replace(f" {table} ", f" {DATABASE}.{table} ")
                connection.execute(sa.text(f"CREATE VIEW {name} AS {sql.strip()}"))
    finally:
        engine.dispose()


# --- the pages, cold ------------------------------------------------------------------------------------------------

def page_times(database: str, requests: int) -> dict[str, list[float]]:
    """Milliseconds per request of each endpoint, through the real app with its caches off (every request misses)."""
    from app import create_app

    with tempfile.TemporaryDirectory() as home:
        # MariaDB stops a query at 30 s, the app's read timeout: otherwise the old views' queries would run on
        stopped = url(database) + "?init_command=SET%20max_statement_time%3D30"
        app = create_app({"DB_URL": stopped, "MODELS_URI": Path(home).as_uri(), "SPOOL_DIR": home,
                          "MODEL_POLL_SECONDS": 0, "ANALYTICS_CACHE_SECONDS": 0, "MODELS_CACHE_SECONDS": 0,
                          "TESTING": True})
        client = app.test_client()
        times: dict[str, list[float]] = {endpoint: [] for endpoint in ENDPOINTS}
        for _ in range(requests):
            for endpoint in ENDPOINTS:
                if TIMED_OUT in times[endpoint]:
                    continue  # once is enough to know
                started = time.perf_counter()
                answer = client.get(endpoint)
                elapsed = (time.perf_counter() - started) * 1000
                # a 503 is the app's answer when the database did not answer within its 30 s read timeout
                times[endpoint].append(elapsed if answer.status_code == 200 else TIMED_OUT)
        app.extensions["pronostico.db"].dispose()
    return times


# --- the shipper ------------------------------------------------------------------------------------------------------

def fill_spool(directory: Path, lines: int, seed: int) -> None:
    """Real log lines, as the app writes them: half matchups, half assets, for today."""
    writer = SpoolWriter(directory)
    for i in range(lines):
        n = seed * 10_000_000 + i
        if i % 2:
            answer = {"prediction_id": str(uuid.uuid4()), "model_version": "matchups-v9",
                      "home_team": f"Team{n % TEAMS:03d}", "away_team": f"Team{(n * 7 + 1) % TEAMS:03d}",
                      "neutral": False, "tournament": "friendly", "as_of": "2026-12-01", "outcome": "home_win",
                      "probabilities": {"home_win": 0.5, "draw": 0.3, "away_win": 0.2}}
            writer.append(log_line("matchups", "api", answer, 0.4))
        else:
            answer = {"prediction_id": str(uuid.uuid4()), "model_version": "assets-v9",
                      "symbol": f"SYM{n % SYMBOLS:02d}", "as_of": "2026-12-01", "signal": "buy",
                      "probabilities": {"sell": 0.2, "hold": 0.3, "buy": 0.5}}
            writer.append(log_line("assets", "api", answer, 0.4))
    writer.close()


def plain_insert(connection: sa.Connection, rows: Any) -> int:
    """The shipper's INSERT as it was before the rollups."""
    rows = list(rows)
    connection.execute(insert_ignoring_duplicates(connection.dialect.name), [{**r, "rolled_up": False} for r in rows])
    return len(rows)


def ship(database: str, spool: Path, with_rollups: bool, batch_rows: int = SHIPPER_BATCH_ROWS
         ) -> tuple[int, float, float | None]:
    """Drain a spool with the shipper's real batches; (rows, seconds, CPU seconds of this process and the database
    server together, None when the server's cannot be read)."""
    engine = db.create_engine(url(database))
    original = shipper.insert_rows
    shipper.insert_rows = original if with_rollups else plain_insert
    try:
        started, cpu, database_cpu = time.perf_counter(), time.process_time(), database_cpu_seconds()
        shipped = shipper.LogShipper(engine, spool, batch_rows=batch_rows).drain()
        seconds, cpu, after = time.perf_counter() - started, time.process_time() - cpu, database_cpu_seconds()
        return shipped, seconds, None if database_cpu is None or after is None else cpu + after - database_cpu
    finally:
        shipper.insert_rows = original
        engine.dispose()


def fresh_database(tag: str) -> str:
    name = f"pronostico_bench_{tag}_{uuid.uuid4().hex[:8]}"
    server(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
    db.upgrade(url(name))
    return name


def shipper_rates(work: Path, batch_rows: int, rounds: int) -> dict[str, list[float]]:
    """Rows/s draining the same kind of spool without and with the rollups, in rounds of one each, and microseconds
    of CPU per row (`cpu with`, `cpu without`)."""
    rates: dict[str, list[float]] = {"with": [], "without": [], "cpu with": [], "cpu without": []}
    for attempt in range(rounds):
        for mode in ("without", "with"):
            spool = work / f"spool-{batch_rows}-{mode}-{attempt}"
            fill_spool(spool, SHIPPED_LINES, seed=attempt * 2 + (mode == "with"))
            database = fresh_database("shipper")
            try:
                rows, seconds, cpu = ship(database, spool, mode == "with", batch_rows)
                rates[mode].append(rows / seconds)
                if cpu is not None:
                    rates[f"cpu {mode}"].append(cpu / rows * 1e6)
            finally:
                server(f"DROP DATABASE IF EXISTS {database}")
    return rates


def _fleet_member(database: str, spool: str, lines: int, seed: int, ready: Any, go: Any, out: Any) -> None:
    fill_spool(Path(spool), lines, seed)
    ready.release()
    go.wait()
    out.put(ship(database, Path(spool), with_rollups=True)[0])


def database_cpu_seconds() -> float | None:
    """CPU seconds the MariaDB server process has used, when it runs on this machine (None otherwise)."""
    try:
        engine = sa.create_engine(SERVER)
        try:
            with engine.connect() as connection:
                pid_file = connection.execute(sa.text("SELECT @@pid_file")).scalar()
        finally:
            engine.dispose()
        fields = Path(f"/proc/{Path(str(pid_file)).read_text().strip()}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, ValueError, sa.exc.SQLAlchemyError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def fleet_rate(work: Path, shippers: int) -> tuple[int, float, float | None]:
    """N shipper processes, each draining its own spool into one database; (rows, seconds until the last is done,
    the database server's CPU seconds meanwhile)."""
    context = multiprocessing.get_context("fork")
    database = fresh_database("fleet")
    ready, go, out = context.Semaphore(0), context.Event(), context.Queue()
    members = [context.Process(target=_fleet_member, args=(database, str(work / f"fleet-{shippers}-{i}"),
                                                           FLEET_LINES // shippers, 100 + i, ready, go, out))
               for i in range(shippers)]
    try:
        for member in members:
            member.start()
        for _ in members:
            ready.acquire()
        started, cpu_before = time.perf_counter(), database_cpu_seconds()
        go.set()
        rows = sum(out.get(timeout=600) for _ in members)
        seconds, cpu_after = time.perf_counter() - started, database_cpu_seconds()
        for member in members:
            member.join()
        return rows, seconds, None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
    finally:
        server(f"DROP DATABASE IF EXISTS {database}")


# --- the section ------------------------------------------------------------------------------------------------------

def serving_rate() -> tuple[int, str]:
    """Logged predictions/s at 16 connections from the serving section of docs/BENCHMARKS.md, and its row."""
    for line in (PROJECT_ROOT / "docs" / "BENCHMARKS.md").read_text().splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if len(cells) > 3 and cells[0] == "16" and cells[1] == "predictions":
            return int(cells[3].replace(",", "")), line
    raise LookupError("docs/BENCHMARKS.md has no serving row for predictions at 16 connections")


def section() -> str:
    progress = lambda line: print("  " + line, flush=True)  # noqa: E731
    timings, built_now = ensure_log(progress)
    raw_views()
    progress("measuring the pages")
    after = page_times(DATABASE, REQUESTS_AFTER)
    before = page_times(RAW_DATABASE, REQUESTS_BEFORE)
    with tempfile.TemporaryDirectory() as work:
        progress("measuring the shipper")
        rates = {batch: shipper_rates(Path(work), batch, rounds)
                 for batch, rounds in ((SHIPPER_BATCH_ROWS, SHIPPER_ROUNDS), (LARGER_BATCH_ROWS, 3))}
        progress("measuring the fleet")
        fleet = {n: fleet_rate(Path(work), n) for n in FLEET}
    return render(timings, built_now, before, after, rates, fleet)


def render(timings: dict[str, float], built_now: bool, before: dict[str, list[float]], after: dict[str, list[float]],
           rates: dict[int, dict[str, list[float]]], fleet: dict[int, tuple[int, float, float | None]]) -> str:
    pages = [[f"`{e}`", shown(before[e]), shown(after[e]), ratio(before[e], after[e]),
              "yes" if statistics.median(after[e]) <= 100 else "no"] for e in ENDPOINTS]
    fleet_rows = [[n, f"{rows:,}", f"{seconds:.1f}", f"{rows / seconds:,.0f}",
                   f"{cpu:.1f}" if cpu else "n/a", f"{rows / cpu:,.0f}" if cpu else "n/a"]
                  for n, (rows, seconds, cpu) in fleet.items()]
    serving, _ = serving_rate()
    when = "in this run" if built_now else "in an earlier run"
    built = (f" Built {when}, {CHUNK:,} rows a transaction: {timings['generate']:.0f} s to generate the rows "
             f"(SQL over MariaDB's sequence engine), {timings['roll_up']:.0f} s to count them in the rollups in bulk "
             "(one `INSERT ... SELECT ... GROUP BY` per rollup and chunk, which a test checks against "
             f"`rollups.catch_up`), {timings['resolve']:.0f} s to resolve the live rollup against the events."
             if timings else " Reused from an earlier run.")
    asked = subjects_asked()
    intro = (f"`make bench ONLY=log_scale` (`python -m benchmarks log_scale`; `python -m benchmarks.log_scale --drop` "
             f"drops the generated databases). {ROWS:,} rows in MariaDB {mariadb_version()} (its default 128 MiB "
             f"buffer pool), spread over {DAYS} days, both use cases, {VERSIONS} model versions each, {TEAMS} teams "
             f"and {SYMBOLS} symbols with skewed popularity ({asked.get('matchups', 0):,} pairs of teams and "
             f"{asked.get('assets', 0):,} symbols asked), plus observed events (every pair of teams meets every 90 "
             f"days; a bar a day per symbol).{built}")
    return f"""## The prediction log at 10 million rows

{paragraph(intro)}

**The pages, cold.** The real Flask app (test client) with its caches off, so every request queries. *Before* is
the same app reading the views of migrations 0002 and 0003 over the raw rows (kept in a second database for this
benchmark only), *after* reads the rollups (migration 0004). Milliseconds, median of {REQUESTS_BEFORE} requests
before (an endpoint that timed out once is not asked again) and {REQUESTS_AFTER} after:

{markdown_table(["endpoint", "before p50 ms", "after p50 ms", "before / after", "after <= 100 ms"], pages)}

{shipper_paragraph(rates)}

**A fleet of shippers against one database.** N shipper processes, each draining its own spool
({FLEET_LINES:,} lines in all) with the rollups, into one MariaDB, from a common start until the last is done; the
database's CPU is the MariaDB server process's user and system time meanwhile:

{markdown_table(["shippers", "rows", "seconds", "rows/s", "database CPU s", "rows per database CPU-second"],
                fleet_rows)}

{paragraph(f"**How many web instances one database carries.** {capacity(fleet, serving)} {RDS_REASONING}")}
"""


def paragraph(text: str) -> str:
    """Markdown text wrapped as the documents are, at 120 characters."""
    return textwrap.fill(" ".join(text.split()), width=120, break_long_words=False, break_on_hyphens=False)


def subjects_asked() -> dict[str, int]:
    """Subjects per use case in the 10M-row log (its subjects rollup)."""
    engine = sa.create_engine(url(DATABASE))
    try:
        with engine.connect() as connection:
            return dict(connection.execute(sa.text(
                "SELECT use_case, COUNT(*) FROM prediction_rollup_subjects GROUP BY use_case")).all())
    finally:
        engine.dispose()


def shipper_paragraph(rates: dict[int, dict[str, list[float]]]) -> str:
    default, larger = rates[SHIPPER_BATCH_ROWS], rates[LARGER_BATCH_ROWS]
    text = (f"**The shipper's rate.** `LogShipper.drain()` of {SHIPPED_LINES:,} real log lines (half matchups, half "
            f"assets) in batches of {SHIPPER_BATCH_ROWS} into a fresh database, without the rollups (the INSERT as it "
            f"was) and with them, side by side in {SHIPPER_ROUNDS} rounds of one drain each: {compared(default)}. "
            "A batch costs its INSERT, one SELECT of its subjects' events and one multi-row upsert per rollup, in "
            "one transaction; the spool's lines name 60 pairs of teams and 20 symbols, so a batch of 500 also "
            f"upserts about 165 rollup rows. In batches of {LARGER_BATCH_ROWS:,} "
            f"(`PRONOSTICO_SHIPPER_BATCH_ROWS={LARGER_BATCH_ROWS}`), which upsert about as many rollup rows for four "
            f"times the log rows, 3 rounds: {compared(larger)}.")
    return paragraph(text)


def compared(rates: dict[str, list[float]]) -> str:
    """Rates with and without the rollups, their ratio, and the CPU per row when the server's could be read."""
    with_rate, without_rate = statistics.median(rates["with"]), statistics.median(rates["without"])
    ratios = sorted(w / wo for w, wo in zip(rates["with"], rates["without"], strict=True))
    text = (f"{without_rate:,.0f} rows/s without, {with_rate:,.0f} rows/s with (medians; with / without "
            f"{with_rate / without_rate:.2f}, per round {', '.join(f'{r:.2f}' for r in ratios)})")
    if rates["cpu with"] and rates["cpu without"]:
        cpu_with, cpu_without = statistics.median(rates["cpu with"]), statistics.median(rates["cpu without"])
        text += (f"; CPU time of the shipper and MariaDB together, which the machine's other load disturbs less, "
                 f"{cpu_without:.0f} µs per row without and {cpu_with:.0f} µs with ({cpu_without / cpu_with:.2f})")
    return text

def capacity(fleet: dict[int, tuple[int, float, float | None]], serving: int) -> str:
    """The conclusion on web hosts per database, from the fleet's best run."""
    rows, seconds, cpu = max(fleet.values(), key=lambda run: run[0] / run[1])
    found = (f"The serving section above measured {serving:,} logged predictions/s at 16 connections on one 2-core "
             f"web host (two gunicorn instances of two workers each), so each such host running flat out gives "
             f"its shipper {serving:,} rows/s. Here one database took at best {rows / seconds:,.0f} rows/s, about "
             f"{rows / seconds / serving:.1f} such hosts, but that is a floor: the shippers ran on the same 2 cores.")
    if not cpu:
        return found
    per_cpu = rows / cpu
    return (f"{found} MariaDB itself spent {cpu:.1f} CPU-seconds on those {rows:,} rows, {per_cpu:,.0f} rows per "
            f"CPU-second, so a database with 2 vCPUs of its own takes roughly {2 * per_cpu:,.0f} rows/s, about "
            f"{2 * per_cpu / serving:.0f} web hosts at full load (less the analytics pages and QuickSight, which "
            "read small rollups, and any headroom kept for bursts).")


RDS_REASONING = """The templates' default `DbInstanceClass` is `db.t4g.micro`
(`cloudformation/main.yaml`, `cloudformation/database.yaml`): 2 burstable vCPUs with a 10 % baseline each and 1 GiB
of memory (a buffer pool of about 0.7 GiB). That is right for the default deployment, a demo or a staging stack
whose traffic is people: shipping a few rows a second and the rollups' small pages stay far below its baseline,
and the working set of the pages is now the rollups, not the log. It is not right for a fleet that serves flat out.
RDS runs T4g classes in Unlimited mode: once the CPU credits are spent the instance is not slowed, but every
vCPU-hour above the baseline is billed as surplus credits, so a database busy all day costs more than a
fixed-performance class with the same vCPUs; and 0.7 GiB of buffer pool cannot hold a growing raw log's indexes.
For sustained load choose a non-burstable class with the vCPUs the fleet's rows need, e.g. `db.m7g.large`
(2 vCPUs, 8 GiB) for up to the web hosts above, and set `PRONOSTICO_LOG_RETENTION_DAYS` so the raw log stops
growing."""


def shown(times: list[float]) -> str:
    if TIMED_OUT in times:
        return "503 after 30 s (read timeout)"
    return f"{statistics.median(times):,.1f}"


def ratio(before: list[float], after: list[float]) -> str:
    if TIMED_OUT in before:
        return f"> {30_000 / statistics.median(after):,.0f}x"
    return f"{statistics.median(before) / statistics.median(after):,.0f}x"


def mariadb_version() -> str:
    engine = sa.create_engine(SERVER)
    try:
        with engine.connect() as connection:
            return str(connection.execute(sa.text("SELECT VERSION()")).scalar()).split("-")[0]
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--drop", action="store_true", required=True, help="drop the generated databases")
    parser.parse_args(argv)
    for name in (RAW_DATABASE, DATABASE):
        server(f"DROP DATABASE IF EXISTS {name}")
    print(f"dropped {DATABASE} and {RAW_DATABASE}")


if __name__ == "__main__":
    main()
