"""Long-running local processes (Airflow, gunicorn, nginx, the event watcher), started and stopped as groups.

Each service runs in a session of its own (setsid), so that stopping it signals its whole process group:
Airflow standalone forks a scheduler, an API server and more, and gunicorn forks its workers. A pid file
under $PRONOSTICO_HOME/run/<name>.json records the group, so that `make down`, run from another process,
stops what `make demo` started. Starting a service whose group is still alive does nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path


class ServiceFailed(RuntimeError):
    """A service did not come up, or died while starting; the message names its log."""


@dataclass(frozen=True)
class Service:
    name: str
    command: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)  # added to this process's environment
    cwd: str = ""
    port: int | None = None  # the port it listens on, checked by `wait_until_ready`
    health_url: str = ""  # answered with a status below 500 once it is ready
    stop_signal: int = signal.SIGTERM  # Airflow standalone shuts down cleanly on SIGINT only
    stop_timeout: float = 30.0


@dataclass(frozen=True)
class Running:
    name: str
    pid: int
    pgid: int
    port: int | None
    stop_signal: int
    stop_timeout: float
    log: str
    started_at: str


def pid_file(run_dir: Path, name: str) -> Path:
    return run_dir / f"{name}.json"


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, but not ours
        return True
    return has_live_member(pgid)


def has_live_member(pgid: int) -> bool:
    """Whether a member of the group is more than a zombie. killpg succeeds while a killed service's leader waits
    for its parent to reap it, and that parent may be another process (`make demo`, a test), so a watcher that only
    asked killpg would take a service killed with SIGKILL for a running one."""
    proc = Path("/proc")
    if not proc.is_dir():
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            state, _ppid, group = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, ValueError):
            continue  # gone meanwhile
        if int(group) == pgid and state != "Z":
            return True
    return False


def read_running(run_dir: Path, name: str) -> Running | None:
    """The record of a started service whose process group is still alive, else None."""
    path = pid_file(run_dir, name)
    if not path.exists():
        return None
    running = Running(**json.loads(path.read_text()))
    _reap(running.pid)
    if not group_alive(running.pgid):
        path.unlink(missing_ok=True)
        return None
    return running


def start(service: Service, run_dir: Path, log_dir: Path) -> Running:
    """Start a service in its own session unless it already runs; its output goes to <log_dir>/<name>.log."""
    existing = read_running(run_dir, service.name)
    if existing is not None:
        return existing
    run_dir.mkdir(parents=True, exist_ok=True)
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{service.name}.log"
    with log_path.open("ab") as log:
        log.write(f"\n=== {datetime.now(UTC).isoformat(timespec='seconds')} start {' '.join(service.command)}\n"
                  .encode())
        log.flush()
        process = subprocess.Popen(list(service.command), stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, env={**os.environ, **service.env},
                                   cwd=service.cwd or None, start_new_session=True)
    running = Running(service.name, process.pid, process.pid, service.port, int(service.stop_signal),
                      service.stop_timeout, str(log_path), datetime.now(UTC).isoformat(timespec="seconds"))
    pid_file(run_dir, service.name).write_text(json.dumps(asdict(running)) + "\n")
    return running


def stop(run_dir: Path, name: str) -> bool:
    """Stop a service's whole process group: its own signal first, SIGKILL after its timeout.

    Returns whether anything was running.
    """
    running = read_running(run_dir, name)
    if running is None:
        return False
    _signal_group(running.pgid, running.stop_signal)
    deadline = time.monotonic() + running.stop_timeout
    while group_alive(running.pgid) and time.monotonic() < deadline:
        _reap(running.pid)
        time.sleep(0.2)
    if group_alive(running.pgid):
        _signal_group(running.pgid, signal.SIGKILL)
        while group_alive(running.pgid) and time.monotonic() < deadline + 10:
            _reap(running.pid)
            time.sleep(0.1)
    pid_file(run_dir, name).unlink(missing_ok=True)
    return True


def stop_all(run_dir: Path, order: Sequence[str] = ()) -> list[str]:
    """Stop the services named in `order` first, then every other one with a pid file."""
    names = list(order) + sorted(p.stem for p in run_dir.glob("*.json") if p.stem not in order)
    return [name for name in names if stop(run_dir, name)]


def wait_until_ready(service: Service, running: Running, timeout: float) -> None:
    """Wait for the service's port and health URL; fail with the tail of its log if it dies or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(running.pid)
        if not group_alive(running.pgid):
            raise ServiceFailed(f"{service.name} exited while starting; see {running.log}:\n{log_tail(running.log)}")
        if _ready(service):
            return
        time.sleep(0.5)
    raise ServiceFailed(f"{service.name} not ready after {timeout:.0f}s; see {running.log}:\n{log_tail(running.log)}")


def _ready(service: Service) -> bool:
    if service.port is not None and not port_open(service.port):
        return False
    return not service.health_url or http_status(service.health_url) in range(200, 500)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def free_port(host: str = "127.0.0.1") -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def http_status(url: str, timeout: float = 2.0) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except (OSError, ValueError):
        return None


def log_tail(path: str, lines: int = 20) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signum)


def _reap(pid: int) -> None:
    """Collect the exit status of a service this very process started, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
