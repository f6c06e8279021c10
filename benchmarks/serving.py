"""Serving: logged predictions through nginx, beside the same stack's /healthz and a static file, in one run.

The real local stack (pronostico.local.stack.web: nginx in front of two gunicorn instances with two sync workers
each, the log shipper, the SQLite prediction log that `make demo` uses by default) runs on free ports under a home
of the bench's own, serving the bench's promoted models (benchmarks.models). wrk drives each target from 127.0.0.1
at each concurrency, the targets interleaved round by round so that each figure sits beside its anchors:

- static: nginx serving /static/favicon.svg (319 bytes, about the size of an answer): the machine's ceiling;
- healthz: /healthz through nginx and gunicorn into Flask: the framework's ceiling;
- predictions: POST /api/v1/{matchups,assets}/predict, alternating, over varied teams, venues and symbols, each
  answer spooled and fdatasync'ed before it leaves, and shipped to the log;
- mix: the predictions with one page load (GET /) in ten requests.

Loopback is exempt from nginx's rate limit (bootstrap/nginx/pronostico.conf.template), so the limit never throttles
wrk; the non-2xx column shows it. Afterwards the shipper drains the spool, and the log's rows must equal the
predictions the app answered (its own counter, summed over both instances).

    python -m benchmarks serving                                   # the section, as make bench runs it
    python -m benchmarks.serving --duration 3 --repeats 1          # a quick look, printed only
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pronostico.core.config import Settings
from pronostico.local.stack import web
from pronostico.prediction_log.spool import writer_counters

CONCURRENCIES = (1, 4, 16, 64)
TARGETS = ("static", "healthz", "predictions", "mix")
PLAN_SIZE = 200  # distinct requests per script, cycled
PAGE_EVERY = 10  # in the mix, one request in ten is a page load
TARGET_CONNECTIONS = 16  # the p99 target is at this concurrency
TARGET_P99_MS = 25.0
TARGET_SHARE = 0.5  # logged predictions per second against /healthz's
SYNC_MEANING = {"interval": "in the page cache; flushed within 10 ms", "each": "flushed to disk"}


# Measured before the fix with `python -m benchmarks.serving --duration 3` (16 connections) and in-process with
# Flask's test client; the table above is after it.
FIXED = """**What we fixed.** Profiling a worker (cProfile around the test client) showed the home page rendering its
team options twice and its symbol options through Jinja on every load: 10.9 ms of CPU per page, against 1.3 ms for a
logged prediction, so in the mix one page load in ten cost as much as the nine predictions beside it (before the
fix: mix 539 requests/s with p99 101 ms, beside 997 predictions/s). The options are now built once per model version
(`Card.options`, `Runtime.per_model`): 0.5 ms a page.

The spool's flush was the bottleneck, and it was a wait, not CPU. Each answer used to wait for an fdatasync of its
worker's own segment: 0.14 ms on an idle disk, but 0.5-0.7 ms while the CPUs are busy, about 1 ms per answer in all,
while 18-20 % of the CPU sat idle (sampled from /proc/stat during the runs). Predictions stayed at 0.41-0.44 of
/healthz whatever else changed, and with the flush taken out (a diagnostic) they reached 0.54-0.56. Two changes:

- The host's workers now append to one shared segment and flush it for each other (group commit across
  processes, `pronostico/prediction_log/spool.py`): one fdatasync covers every line appended before it began.
  Alone, with each answer still waiting for a flush (`PRONOSTICO_SPOOL_SYNC=each`), that cut fdatasyncs to 1 per
  1.6 lines but not the wait, and predictions stayed at 0.41-0.43.
- By default (`interval`) an answer now leaves once its line is in the page cache, which survives the crash of any
  process (worker, shipper, gunicorn) and a database outage, and a flusher thread flushes what the host appended
  every 10 ms (8 lines per fdatasync). Only a kernel crash or power cut within those 10 ms could lose an answered
  line; on AWS an instance that dies that way is replaced with a new root volume, unshipped spool and all, whatever
  the setting. Alternating 6-second runs at 16 connections: 2,117 and 2,044 logged predictions/s (0.52 of /healthz)
  against 1,721 and 1,679 (0.42, 0.41) with `each`. The table above measures both again.

Then the CPU per answer: the forest walks its trees with flat gathers into one child table (matchups 52 to 33 us,
assets 39 to 24 us a request, the same probabilities to the last bit), and msgspec encodes the answer and its log
line (0.3 us against 4.4 us for json.dumps, twice per prediction).

The log shipper runs at lower priority (nice 10 locally, `Nice=10` in its systemd unit): shipping may lag under load
and catches up after. Alternating runs side by side at 16 connections (5 s each): 2,264 and 2,070 logged
predictions/s niced against 1,801 and 1,911 not.

**Tried and not kept.** gthread workers (2 or 3 per instance, 4 threads) with a spool shared by the threads raised
the ratio to 0.43-0.47 only because /healthz itself got slower under the GIL, with p99 30-38 ms: fewer logged
predictions per second than sync workers. More sync workers (3 or 4 per instance) did not help, with or without group
commit (1,739 and 1,741/s against 1,721): more processes waiting on the same flush."""


@dataclass(frozen=True)
class WrkRun:
    target: str
    connections: int
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int
    predictions: int  # answered by the app during the run (its own counter)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    @property
    def prediction_rate(self) -> float:
        return self.predictions / self.seconds


# One script for every target: `plan` is the list of requests, cycled from a different offset in each thread; `done`
# prints one JSON line that the bench parses. No response() callback: it would make wrk copy every body into Lua.
LUA = """
local plan = %(plan)s
local threads = {}
function setup(thread)
  thread:set("offset", #threads * 37)
  table.insert(threads, thread)
end
function init(args)
  prepared = {}
  for i, r in ipairs(plan) do
    local headers = nil
    if r[3] then headers = {["Content-Type"] = "application/json"} end
    prepared[i] = wrk.format(r[1], r[2], headers, r[3])
  end
  n = offset %% #prepared
end
function request()
  n = n %% #prepared + 1
  return prepared[n]
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('BENCH {"requests":%%d,"duration_us":%%d,"p50_us":%%d,"p99_us":%%d,"status":%%d,' ..
    '"socket":%%d}\\n', summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout))
end
"""


def lua_string(text: str) -> str:
    return "[==[" + text + "]==]"


def lua_plan(plan: Sequence[tuple[str, str, str | None]]) -> str:
    items = [f"{{{lua_string(m)}, {lua_string(p)}, {lua_string(b) if b is not None else 'nil'}}}" for m, p, b in plan]
    return "{\n  " + ",\n  ".join(items) + "\n}"


def prediction_plan(teams: Sequence[str], symbols: Sequence[str], size: int) -> list[tuple[str, str, str | None]]:
    """Both use cases alternating: random pairs of offered teams, half on neutral ground, and random symbols."""
    rng = np.random.default_rng(6)
    plan: list[tuple[str, str, str | None]] = []
    for i in range(size):
        if i % 2 == 0:
            home, away = rng.choice(teams, 2, replace=False)
            body = {"home_team": str(home), "away_team": str(away), "neutral": bool(rng.integers(2))}
            plan.append(("POST", "/api/v1/matchups/predict", json.dumps(body)))
        else:
            plan.append(("POST", "/api/v1/assets/predict", json.dumps({"symbol": str(rng.choice(symbols))})))
    return plan


def plans(teams: Sequence[str], symbols: Sequence[str]) -> dict[str, list[tuple[str, str, str | None]]]:
    predictions = prediction_plan(teams, symbols, PLAN_SIZE)
    mix = [("GET", "/", None) if i % PAGE_EVERY == PAGE_EVERY - 1 else r for i, r in enumerate(predictions)]
    return {"static": [("GET", "/static/favicon.svg", None)], "healthz": [("GET", "/healthz", None)],
            "predictions": predictions, "mix": mix}


def write_scripts(folder: Path, plans_by_target: dict[str, list[tuple[str, str, str | None]]]) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    scripts = {}
    for target, plan in plans_by_target.items():
        scripts[target] = folder / f"{target}.lua"
        scripts[target].write_text(LUA % {"plan": lua_plan(plan)})
    return scripts


def app_predictions(settings: Settings) -> int:
    """Predictions answered so far by every instance, from each one's /metrics (all its workers added up)."""
    import urllib.request

    total = 0.0
    for port in settings.web.app_ports:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
            text = answer.read().decode()
        total += sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                     if line.startswith("pronostico_predictions_total{"))
    return round(total)


def run_wrk(settings: Settings, script: Path, target: str, connections: int, seconds: float) -> WrkRun:
    before = app_predictions(settings)
    threads = min(2, connections)  # two cores: more wrk threads would only take CPU from the server
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--latency", "-s", str(script),
               f"http://127.0.0.1:{settings.web.port}"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=True)
    line = next(x for x in done.stdout.splitlines() if x.startswith("BENCH "))
    figures = json.loads(line.removeprefix("BENCH "))
    return WrkRun(target, connections, figures["requests"], figures["duration_us"] / 1e6, figures["p50_us"] / 1000,
                  figures["p99_us"] / 1000, figures["status"], figures["socket"], app_predictions(settings) - before)


def entity_names(settings: Settings) -> tuple[list[str], list[str]]:
    import urllib.request

    base = f"http://127.0.0.1:{settings.web.port}/api/v1"
    with urllib.request.urlopen(f"{base}/matchups/teams", timeout=10) as answer:
        teams = [t["name"] for t in json.load(answer)["teams"]]
    with urllib.request.urlopen(f"{base}/assets/symbols", timeout=10) as answer:
        symbols = [s["symbol"] for s in json.load(answer)["symbols"]]
    return teams, symbols


def serving_settings(models_uri: str, **env: str) -> Settings:
    """A fresh home of the bench's own (an empty log and spool), free ports, the bench's models."""
    from benchmarks.models import bench_settings, private_web_ports

    settings = bench_settings("serving")
    shutil.rmtree(settings.home, ignore_errors=True)
    return bench_settings("serving", PRONOSTICO_MODELS_URI=models_uri, **private_web_ports(), **env)


def logged_rows(settings: Settings) -> tuple[int, int]:
    """(rows, distinct prediction ids) in the stack's prediction log."""
    import sqlalchemy as sa

    from pronostico.prediction_log import db

    engine = db.create_engine(settings.db_url)
    try:
        with engine.connect() as connection:
            rows, distinct = connection.execute(
                sa.text("SELECT COUNT(*), COUNT(DISTINCT prediction_id) FROM prediction_log")).one()
    finally:
        engine.dispose()
    return int(rows), int(distinct)


def wait_for_drain(settings: Settings, timeout: float = 120.0) -> None:
    from pronostico.prediction_log.spool import backlog_bytes

    deadline = time.monotonic() + timeout
    while backlog_bytes(settings.spool_dir) > 0 and time.monotonic() < deadline:
        time.sleep(0.5)


def measure(settings: Settings, seconds: float, repeats: int, concurrencies: Sequence[int],
            targets: Sequence[str] = TARGETS) -> tuple[list[WrkRun], dict[str, int]]:
    """Every target at every concurrency, `repeats` rounds, interleaved; then the log reconciled."""
    web.start(settings)
    try:
        scripts = write_scripts(settings.home / "wrk", plans(*entity_names(settings)))
        for target in targets:  # warm up each worker's caches and code paths
            run_wrk(settings, scripts[target], target, 4, 2)
        runs = [run_wrk(settings, scripts[target], target, connections, seconds)
                for _ in range(repeats) for connections in concurrencies for target in targets]
        answered = app_predictions(settings)
    finally:
        web.stop(settings)  # the shipper stops last and ships what is left
    wait_for_drain(settings)
    rows, distinct = logged_rows(settings)
    spool = writer_counters(settings.spool_dir)
    return runs, {"answered": answered, "rows": rows, "distinct": distinct, "lines": spool["lines"],
                  "flushes": spool["syncs"], "unflushed": spool["unflushed_bytes"]}


def medians(runs: Sequence[WrkRun]) -> dict[tuple[str, int], dict[str, float]]:
    grouped: dict[tuple[str, int], list[WrkRun]] = {}
    for run in runs:
        grouped.setdefault((run.target, run.connections), []).append(run)
    return {key: {"rate": statistics.median(r.rate for r in group),
                  "prediction_rate": statistics.median(r.prediction_rate for r in group),
                  "p50": statistics.median(r.p50_ms for r in group),
                  "p99": statistics.median(r.p99_ms for r in group),
                  "non_2xx": sum(r.non_2xx + r.socket_errors for r in group), "runs": len(group)}
            for key, group in grouped.items()}


def table(figures: dict[tuple[str, int], dict[str, float]], concurrencies: Sequence[int]) -> str:
    from benchmarks.report import markdown_table

    rows = []
    for connections in concurrencies:
        healthz = figures[("healthz", connections)]["rate"]
        for target in TARGETS:
            f = figures.get((target, connections))
            if f is None:
                continue
            logged = f"{f['prediction_rate']:,.0f}" if target in ("predictions", "mix") else ""
            share = f"{f['prediction_rate'] / healthz:.2f}" if logged else f"{f['rate'] / healthz:.2f}"
            rows.append([connections, target, f"{f['rate']:,.0f}", logged, share, f"{f['p50']:.1f}",
                         f"{f['p99']:.1f}", int(f["non_2xx"])])
    return markdown_table(["connections", "target", "requests/s", "logged predictions/s", "vs /healthz",
                           "p50 ms", "p99 ms", "non-2xx"], rows)


def verdict(figures: dict[tuple[str, int], dict[str, float]]) -> tuple[bool, str]:
    f = figures[("predictions", TARGET_CONNECTIONS)]
    share = f["prediction_rate"] / figures[("healthz", TARGET_CONNECTIONS)]["rate"]
    met = share >= TARGET_SHARE and f["p99"] < TARGET_P99_MS
    return met, (f"At {TARGET_CONNECTIONS} connections logged predictions ran at {f['prediction_rate']:,.0f}/s, "
                 f"{share:.2f} of /healthz's rate (target >= {TARGET_SHARE}), with p99 {f['p99']:.1f} ms "
                 f"(target < {TARGET_P99_MS:.0f} ms): target {'met' if met else 'NOT met'}.")


def durability_table(runs_by_mode: dict[str, tuple[list[WrkRun], dict[str, int]]]) -> str:
    from benchmarks.report import markdown_table

    rows = []
    for mode, (runs, log) in runs_by_mode.items():
        figures = medians(runs)
        healthz, f = figures[("healthz", TARGET_CONNECTIONS)]["rate"], figures[("predictions", TARGET_CONNECTIONS)]
        rows.append([f"`{mode}`", SYNC_MEANING[mode], f"{healthz:,.0f}", f"{f['prediction_rate']:,.0f}",
                     f"{f['prediction_rate'] / healthz:.2f}", f"{f['p50']:.1f}", f"{f['p99']:.1f}",
                     f"{log['lines'] / max(1, log['flushes']):.1f}"])
    return markdown_table(["PRONOSTICO_SPOOL_SYNC", "an answer leaves once its log line is", "/healthz/s",
                           "logged predictions/s", "vs /healthz", "p50 ms", "p99 ms", "lines per fdatasync"], rows)


def reconciliation(log: dict[str, int]) -> str:
    return (f"the log holds {log['rows']:,} rows ({log['distinct']:,} distinct prediction ids) for "
            f"{log['answered']:,} predictions the app answered ({log['answered'] - log['rows']} missing), and "
            f"{log['unflushed']} spooled bytes were left unflushed")


def section(seconds: float = 10.0, repeats: int = 3, concurrencies: Sequence[int] = CONCURRENCIES) -> str:
    from benchmarks.models import bench_settings, ensure_models

    models_uri = ensure_models(bench_settings("models"))
    runs, log = measure(serving_settings(models_uri), seconds, repeats, concurrencies)
    strict = measure(serving_settings(models_uri, PRONOSTICO_SPOOL_SYNC="each"), seconds, repeats,
                     [TARGET_CONNECTIONS], ("healthz", "predictions"))
    figures = medians(runs)
    _, summary = verdict(figures)
    return f"""## Serving: logged predictions through nginx

`make bench ONLY=serving` (`python -m benchmarks serving`): the real local stack (nginx, 2 gunicorn instances x 2 sync
workers, the log shipper, the default SQLite prediction log, the default spool setting) on free ports, and
`wrk -t2 -c<connections> -d{seconds:g}s --latency -s <target>.lua http://127.0.0.1:<nginx port>` per target and
concurrency, targets interleaved, median of {repeats} runs each. *static* is nginx serving a 319-byte file (the
machine's ceiling), *healthz* is `/healthz` through gunicorn and Flask (the framework's ceiling), *predictions*
alternates `POST /api/v1/matchups/predict` over {PLAN_SIZE // 2} random pairs of teams (half neutral) with
`POST /api/v1/assets/predict` over random symbols, each answer spooled before it leaves; *mix* makes
one request in {PAGE_EVERY} a page load (`GET /`). "logged predictions/s" is counted by the app itself; "vs /healthz"
compares it (or the request rate, for the anchors) with /healthz at the same concurrency. Loopback is exempt from
nginx's rate limit, so nothing was throttled (non-2xx counts every run's status and socket errors).

{table(figures, concurrencies)}

{summary} Afterwards the shipper drained the spool: {reconciliation(log)}.

**What durability costs.** The same stack started again with `PRONOSTICO_SPOOL_SYNC=each`, in the same run, at
{TARGET_CONNECTIONS} connections, beside the default:

{durability_table({"interval": (runs, log), "each": strict})}

With `each`, {reconciliation(strict[1])}.

{FIXED}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description="a quick serving measurement, printed (make bench saves the section)")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per wrk run")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--connections", type=int, nargs="+", default=[TARGET_CONNECTIONS])
    args = parser.parse_args()
    print(section(args.duration, args.repeats, args.connections))


if __name__ == "__main__":
    main()
