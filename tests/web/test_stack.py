"""The real stack: nginx on a free port in front of two gunicorn instances and the log shipper, logging to a real
MariaDB. Load goes to 127.0.0.1 only, in bounded loops."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import requests
import sqlalchemy as sa

from benchmarks.report import markdown_table
from pronostico.core import registry
from pronostico.hosting import nginx
from pronostico.local.stack import processes, web
from pronostico.prediction_log import db
from pronostico.prediction_log.shipper import read_status
from tests.web.conftest import Stack

pytestmark = pytest.mark.slow

OUTAGE_SECONDS = 3.0  # at least: long enough for the shipper to fail, back off and retry
PAYLOADS = [("matchups", {"home_team": "Brazil", "away_team": "Argentina", "neutral": True}),
            ("matchups", {"home_team": "Germany", "away_team": "France"}),
            ("assets", {"symbol": "BTC-USD"}), ("assets", {"symbol": "SPY"})]


# Longer than nginx's own read timeout (30 s), so that each request ends with nginx's answer, a 200 or an error
# counted as a failure, and never with the client giving up first on a request nginx still serves: one routed to a
# restarted instance waits in its listen backlog while its workers boot, which on a loaded 2-core machine took >10 s.
CLIENT_TIMEOUT = 40


def predict(session: requests.Session, stack: Stack, i: int) -> requests.Response:
    use_case, payload = PAYLOADS[i % len(PAYLOADS)]
    return session.post(f"{stack.url}/api/v1/{use_case}/predict", json=payload, timeout=CLIENT_TIMEOUT)


def instance_predictions(stack: Stack, port: int) -> float:
    """Predictions this gunicorn instance answered, from its own /metrics (all its workers added up)."""
    text = requests.get(f"{stack.instance_url(port)}/metrics", timeout=5).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("pronostico_predictions_total{"))


def logged_ids(url: str) -> list[str]:
    engine = db.create_engine(url)
    try:
        with engine.connect() as connection:
            return [r[0] for r in connection.execute(sa.text("SELECT prediction_id FROM prediction_log"))]
    finally:
        engine.dispose()


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


@contextmanager
def traffic(stack: Stack, limit_seconds: float = 60.0, clients: int = 1) -> Iterator[dict[str, list]]:
    """Predictions from `clients` background threads until the block ends (bounded in time): answered ids, failures,
    and answers cut mid-body (their head had reached the client when the connection broke)."""
    seen: dict[str, list] = {"answered": [], "failed": [], "cut": [], "versions": []}
    stop = threading.Event()

    def run(first: int) -> None:
        session = requests.Session()
        deadline = time.monotonic() + limit_seconds
        i = first
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                answer = predict(session, stack, i)
                if answer.status_code == 200:
                    seen["answered"].append(answer.json()["prediction_id"])
                    seen["versions"].append((PAYLOADS[i % len(PAYLOADS)][0], answer.json()["model_version"]))
                else:
                    seen["failed"].append((answer.status_code, answer.text[:200]))
            except requests.exceptions.ChunkedEncodingError as error:
                seen["cut"].append(str(error))
            except requests.RequestException as error:
                seen["failed"].append((None, str(error)))
            i += 1

    threads = [threading.Thread(target=run, args=(first,)) for first in range(clients)]
    for thread in threads:
        thread.start()
    try:
        yield seen
    finally:
        stop.set()
        for thread in threads:
            thread.join()


@contextmanager
def extra_nginx(stack: Stack, name: str, upstreams: list[str], **options) -> Iterator[str]:
    """Another nginx from the same template, with its own options, in front of the given upstreams."""
    port = processes.free_port()
    site = nginx.render_site(port, upstreams, nginx.STATIC_DIR, listen_address="127.0.0.1", **options)
    service = web.nginx_service(stack.settings, web.write_local_nginx(stack.settings, site, name), port, name)
    running = processes.start(service, stack.settings.run_dir, stack.settings.logs_dir)
    try:
        processes.wait_until_ready(service, running, 20)
        yield f"http://127.0.0.1:{port}"
    finally:
        processes.stop(stack.settings.run_dir, name)


def test_requests_reach_both_instances(web_stack):
    ports = web_stack.settings.web.app_ports
    before = {port: instance_predictions(web_stack, port) for port in ports}
    session = requests.Session()
    answers = [predict(session, web_stack, i) for i in range(40)]
    assert all(a.status_code == 200 for a in answers)
    after = {port: instance_predictions(web_stack, port) for port in ports}
    assert all(after[port] > before[port] for port in ports), (before, after)
    assert sum(after.values()) - sum(before.values()) == 40


def test_nginx_serves_static_files_compressed_with_security_headers(web_stack):
    answer = requests.get(f"{web_stack.url}/static/vendor/chart.umd.min.js", headers={"Accept-Encoding": "gzip"},
                          stream=True, timeout=5)
    assert answer.status_code == 200 and answer.headers["Content-Encoding"] == "gzip"
    assert answer.headers["Cache-Control"] == "max-age=604800"  # nginx's, not the app's: nginx served it
    assert b"Chart" in gzip.decompress(answer.raw.read())
    page = requests.get(f"{web_stack.url}/", timeout=5)
    csp = page.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "http" not in csp and "unsafe" not in csp
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    assert "nginx/" not in page.headers["Server"]  # no version advertised


def test_api_errors_through_nginx_are_json(web_stack):
    too_big = requests.post(f"{web_stack.url}/api/v1/assets/predict", data=b"x" * 20_000,
                            headers={"Content-Type": "application/json"}, timeout=5)
    assert too_big.status_code == 413 and too_big.json()["error"]["code"] == "body_too_large"
    assert too_big.headers["Content-Type"] == "application/json"
    not_json = requests.post(f"{web_stack.url}/api/v1/assets/predict", data=b"{oops", timeout=5)
    assert not_json.status_code == 400 and not_json.json()["error"]["code"] == "invalid_json"
    unknown = requests.get(f"{web_stack.url}/api/v1/nothing", timeout=5)
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"
    assert requests.get(f"{web_stack.url}/metrics", timeout=5).status_code == 200  # allowed from 127.0.0.1


def test_rate_limit_and_a_dead_upstream_are_json_too(web_stack):
    dead = f"127.0.0.1:{processes.free_port()}"
    with extra_nginx(web_stack, "nginx-strict", [dead], rate_limit=1, limit_loopback=True) as url:
        answers = [requests.post(f"{url}/api/v1/assets/predict", json={"symbol": "SPY"}, timeout=5)
                   for _ in range(30)]
    statuses = {a.status_code for a in answers}
    assert statuses == {502, 429}
    for answer in answers:
        assert answer.headers["Content-Type"] == "application/json"
        assert answer.json()["error"]["code"] in ("upstream_unavailable", "too_many_requests")


def test_a_slow_upstream_is_a_json_504(web_stack):
    silent = socket.socket()  # accepts connections and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        with extra_nginx(web_stack, "nginx-slow", [f"127.0.0.1:{silent.getsockname()[1]}"], read_timeout=1) as url:
            answer = requests.get(f"{url}/api/v1/models", timeout=10)
    finally:
        silent.close()
    assert answer.status_code == 504 and answer.json()["error"]["code"] == "upstream_timeout"


def instance_healthy(stack: Stack, port: int) -> bool:
    try:
        return requests.get(f"{stack.instance_url(port)}/healthz", timeout=5).status_code == 200
    except requests.RequestException:
        return False


@pytest.mark.chaos
def test_killing_an_instance_under_load_fails_no_request_and_the_supervisor_restarts_it(web_stack, reliability):
    """kill -9 one gunicorn instance's whole process group (master and workers, requests in flight) while four
    clients send predictions through nginx: no request fails (nginx resends to the other instance), and the
    web-supervisor starts the instance again, as systemd does on EC2.

    One thing no proxy can resend: an answer whose head had already left the killed worker (gunicorn sends the head
    and the body in two writes, and nginx passes the head on at once). Such an answer arrives cut, at most one per
    worker of the killed instance; it was answered, so it is logged."""
    settings = web_stack.settings
    victim = settings.web.app_ports[0]
    with traffic(web_stack, clients=4) as seen:
        wait_for(lambda: len(seen["answered"]) > 40, 30, "traffic before the kill")
        running = processes.read_running(settings.run_dir, f"web-{victim}")
        answered_at_kill, killed_at = len(seen["answered"]), time.monotonic()
        os.killpg(running.pgid, signal.SIGKILL)  # killed outright, requests in flight and all
        wait_for(lambda: not processes.port_open(victim), 10, "the instance to die")
        wait_for(lambda: instance_healthy(web_stack, victim), 60, "the supervisor to bring the instance back")
        recovery_seconds = time.monotonic() - killed_at
        answered_while_down = len(seen["answered"]) - answered_at_kill
        wait_for(lambda: instance_predictions(web_stack, victim) > 0, 30, "traffic to reach the new instance")
        answered = len(seen["answered"])
    restarted = processes.read_running(settings.run_dir, f"web-{victim}")
    running_after = [port for port in settings.web.app_ports if instance_healthy(web_stack, port)]
    reliability("gunicorn_kill", f"""## kill -9 one gunicorn instance under load

`make chaos` (`pytest tests/web/test_stack.py -k killing_an_instance`): the real stack (nginx in front of two
gunicorn instances with two sync workers each); four clients send predictions through nginx in a loop while the test
sends SIGKILL to one instance's whole process group (master and workers, requests in flight). nginx resends a
request that meets a dead instance to the other one (`proxy_next_upstream ... non_idempotent`, `max_fails=1`), and
the local stack's `web-supervisor` starts the instance again, as `Restart=always` does on EC2.

{markdown_table(["figure", "expected", "measured"], [
    ["failed requests (any non-200, or a connection refused or reset before the answer's head)", 0,
     len(seen["failed"])],
    ["answers cut mid-body (the worker died between sending head and body)",
     f"<= {settings.web.workers}", len(seen["cut"])],
    ["predictions answered while the instance was down", "> 0", answered_while_down],
    ["predictions answered in the whole test", "", answered],
    ["seconds from the kill to the instance answering /healthz 200 again", "< 60", f"{recovery_seconds:.1f}"],
    ["instances running afterwards (answering /healthz 200)", 2, len(running_after)],
])}
""")
    assert seen["failed"] == []
    assert len(seen["cut"]) <= settings.web.workers  # only requests in flight on the killed instance
    assert answered_while_down > 0
    assert restarted is not None and restarted.pgid != running.pgid
    assert running_after == list(settings.web.app_ports)


@pytest.mark.chaos
def test_a_database_outage_under_load_loses_no_prediction(web_stack, reliability):
    """Two clients send predictions while the database link is cut (the port refuses, open connections are reset)
    and restored; afterwards every answered prediction is exactly one row: answered == logged, no duplicates."""
    settings = web_stack.settings
    # rows of earlier tests still in the spool would land during this one and count as its own
    wait_for(lambda: read_status(settings.spool_dir)["backlog_bytes"] == 0, 60, "the shipper to catch up first")
    before = set(logged_ids(web_stack.direct_db_url))
    with traffic(web_stack, clients=2) as seen:
        wait_for(lambda: len(seen["answered"]) > 50, 30, "traffic before the outage")
        web_stack.link.cut()
        cut_at, outage_started = len(seen["answered"]), time.monotonic()
        wait_for(lambda: len(seen["answered"]) > cut_at + 200 and time.monotonic() - outage_started > OUTAGE_SECONDS,
                 30, "predictions answered during the outage")
        wait_for(lambda: read_status(settings.spool_dir).get("database_up") is False, 30,
                 "the shipper to notice the outage")
        during = len(set(logged_ids(web_stack.direct_db_url)) - before)
        spooled = read_status(settings.spool_dir)["backlog_bytes"]
        web_stack.link.restore()
        restored_at, outage_seconds = len(seen["answered"]), time.monotonic() - outage_started
        wait_for(lambda: len(seen["answered"]) > restored_at + 50, 30, "traffic after the outage")
    answered = set(seen["answered"])
    stopped = time.monotonic()
    wait_for(lambda: len(set(logged_ids(web_stack.direct_db_url)) - before) >= len(answered), 60,
             "the shipper to replay the spool")
    replay_seconds = time.monotonic() - stopped
    rows = [i for i in logged_ids(web_stack.direct_db_url) if i not in before]
    reliability("database_outage", f"""## The prediction log's database goes away under load

`make chaos` (`pytest tests/web/test_stack.py -k database_outage`): the real stack logging to a real MariaDB through
a TCP link the test can cut; two clients send predictions through nginx while the link is cut for
{outage_seconds:.1f} s (new connections refused, open ones reset) and then restored. Each answer is spooled before
it leaves (the default `PRONOSTICO_SPOOL_SYNC=interval`: written to the page cache, flushed within 10 ms); the log
shipper retries with backoff and replays the spool, idempotently by prediction id.

{markdown_table(["figure", "expected", "measured"], [
    ["failed requests", 0, len(seen["failed"]) + len(seen["cut"])],
    ["predictions answered in all", "", len(answered)],
    ["... of them while the database was away", "> 0", restored_at - cut_at],
    ["rows logged while it was away (new rows only)", "< answered", during],
    ["spool backlog while it was away", "> 0 bytes", f"{spooled:,} bytes"],
    ["rows in prediction_log after the replay", len(answered), len(rows)],
    ["duplicate prediction ids", 0, len(rows) - len(set(rows))],
    ["answered predictions without a row", 0, len(answered - set(rows))],
    ["seconds for the log to catch up after the load stopped", "< 60", f"{replay_seconds:.1f}"],
])}
""")
    assert seen["failed"] == [] and seen["cut"] == []
    assert spooled > 0 and during < len(answered)  # rows really waited in the spool
    assert len(rows) == len(set(rows)) == len(answered)  # no duplicates, none lost
    assert set(rows) == answered


def test_workers_poll_and_swap_a_promoted_model_without_failing_a_request(web_stack):
    models_uri = web_stack.settings.models_uri
    old = registry.read_current(models_uri, "assets")["version"]
    new = f"{old}-hot"
    versions = web_stack.settings.home / "models" / "assets" / "versions"
    shutil.copytree(versions / old, versions / new)
    manifest = json.loads((versions / new / "manifest.json").read_text())
    (versions / new / "manifest.json").write_text(json.dumps({**manifest, "version": new}))
    with traffic(web_stack) as seen:
        wait_for(lambda: len(seen["answered"]) > 20, 30, "traffic before the promotion")
        registry.rollback(models_uri, "assets", new)
        promoted_at = len(seen["versions"])
        # every worker of both instances swaps within its poll interval (0.5 s here)
        wait_for(lambda: len(seen["versions"]) > promoted_at + 100 and all(
            v == new for uc, v in seen["versions"][-40:] if uc == "assets"), 30, "every worker to swap")
    assert seen["failed"] == [] and seen["cut"] == []
    versions_seen = [v for uc, v in seen["versions"] if uc == "assets"]
    assert versions_seen[0] == old and versions_seen[-1] == new
    for port in web_stack.settings.web.app_ports:
        health = requests.get(f"{web_stack.instance_url(port)}/healthz", timeout=5).json()
        assert health["models"]["assets"] == new
