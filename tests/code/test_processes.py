"""The local process supervisor: services start once, in their own group, and stop as a whole group."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import pytest

from pronostico.local.stack import processes
from pronostico.local.stack.processes import Service, ServiceFailed


def test_a_service_and_its_children_stop_together(tmp_path: Path) -> None:
    service = Service("sleeper", ["bash", "-c", "sleep 300 & sleep 300 & wait"])
    running = processes.start(service, tmp_path / "run", tmp_path / "logs")
    time.sleep(0.3)
    assert processes.group_alive(running.pgid)
    again = processes.start(service, tmp_path / "run", tmp_path / "logs")
    assert again.pid == running.pid, "starting a running service must not start a second copy"
    assert processes.stop(tmp_path / "run", "sleeper") is True
    assert not processes.group_alive(running.pgid)
    assert not processes.pid_file(tmp_path / "run", "sleeper").exists()
    assert processes.stop(tmp_path / "run", "sleeper") is False


def test_a_service_that_ignores_its_signal_is_killed_after_its_timeout(tmp_path: Path) -> None:
    service = Service("stubborn", ["bash", "-c", "trap '' INT; sleep 300"], stop_signal=signal.SIGINT,
                      stop_timeout=1.0)
    running = processes.start(service, tmp_path / "run", tmp_path / "logs")
    time.sleep(0.3)
    started = time.monotonic()
    processes.stop(tmp_path / "run", "stubborn")
    assert not processes.group_alive(running.pgid)
    assert time.monotonic() - started < 10


def test_ready_waits_for_the_port_and_health_url(tmp_path: Path) -> None:
    port = processes.free_port()
    service = Service("web", [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
                      cwd=str(tmp_path), port=port, health_url=f"http://127.0.0.1:{port}/")
    running = processes.start(service, tmp_path / "run", tmp_path / "logs")
    try:
        processes.wait_until_ready(service, running, timeout=20)
        assert processes.http_status(f"http://127.0.0.1:{port}/") == 200
    finally:
        processes.stop_all(tmp_path / "run")
    assert not processes.port_open(port)


def test_a_service_that_dies_while_starting_fails_with_its_log(tmp_path: Path) -> None:
    service = Service("broken", ["bash", "-c", "echo cannot bind >&2; exit 3"], port=processes.free_port())
    running = processes.start(service, tmp_path / "run", tmp_path / "logs")
    with pytest.raises(ServiceFailed, match="cannot bind"):
        processes.wait_until_ready(service, running, timeout=10)
