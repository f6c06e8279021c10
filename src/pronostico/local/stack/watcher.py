"""Local S3 events: a file that lands in the local raw bucket becomes an S3 notification for the trigger Lambda.

However the file got there (`pronostico upload`, a plain `cp`, an editor), once it is complete the watcher builds
the same event S3 would send (URL-encoded key, ETag = MD5 of the content) and calls the very handler the Lambda
runs, `lambda_trigger.handler.handler`, which triggers the local Airflow.

- Complete means: its size and mtime have not changed for PRONOSTICO_WATCH_SETTLE_SECONDS, and no process holds
  it open for writing. A half-written file does not fire.
- Each object version fires once: the (key, ETag) pairs already handed over are kept in
  $PRONOSTICO_HOME/watcher/delivered.json, across restarts.
- If Airflow cannot be reached, the handler raises after its retries; the watcher logs it loudly and re-drives
  the same event on a later poll, with backoff, like Lambda's retries.

Runs as the `watcher` service: `python -m pronostico.local.stack.watcher` (or `pronostico watch`).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

from pronostico.core import storage
from pronostico.core.config import Settings, load_settings
from pronostico.local.stack import processes

SERVICE = "watcher"
LOG = logging.getLogger("pronostico.watcher")
MAX_REDRIVE_SECONDS = 60.0
Deliver = Callable[[dict[str, Any], Any], Any]


@dataclass(frozen=True)
class Candidate:
    key: str
    path: Path
    size: int
    mtime_ns: int
    first_seen: float  # monotonic time this (size, mtime) was first seen


def state_file(settings: Settings) -> Path:
    return settings.home / "watcher" / "delivered.json"


class LocalBucketWatcher:
    def __init__(self, settings: Settings, deliver: Deliver | None = None) -> None:
        if storage.is_s3(settings.raw_uri):
            raise ValueError(f"the raw bucket is {settings.raw_uri}: on S3, the events come from S3 itself")
        self.settings = settings
        self.root = storage.local_path(settings.raw_uri)
        self.deliver = deliver or _lambda_handler()
        self.delivered: dict[str, str] = _load(state_file(settings))
        self.candidates: dict[str, Candidate] = {}
        self.known: dict[str, tuple[int, int, str]] = {}  # key -> (size, mtime_ns, etag) already hashed
        self.retry_at = 0.0
        self.failures = 0

    def poll(self) -> list[str]:
        """Look once; deliver every complete new object version in one event. Returns the keys delivered."""
        now = time.monotonic()
        if now < self.retry_at:
            return []
        ready = self._ready(now)
        if not ready:
            return []
        event = s3_event(self.root.name, ready)
        try:
            self.deliver(event, None)
        except Exception as error:  # the handler raises so that the event is re-driven, never dropped
            self.failures += 1
            delay = min(MAX_REDRIVE_SECONDS, self.settings.watcher.poll_seconds * 2 ** self.failures)
            self.retry_at = now + delay
            LOG.error("could not hand %d upload(s) to Airflow (%s); re-driving in %.0f s: %s",
                      len(ready), ", ".join(r["key"] for r in ready), delay, error)
            return []
        self.failures, self.retry_at = 0, 0.0
        for record in ready:
            self.delivered[record["key"]] = record["etag"]
        _save(state_file(self.settings), self.delivered)
        return [record["key"] for record in ready]

    def _ready(self, now: float) -> list[dict[str, Any]]:
        ready = []
        present = set()
        for path in sorted(self.root.rglob("*.csv")) if self.root.exists() else []:
            key = path.relative_to(self.root).as_posix()
            if not path.is_file() or path.name.startswith("."):
                continue
            present.add(key)
            record = self._settled(key, path, now)
            if record:
                ready.append(record)
        self.candidates = {k: c for k, c in self.candidates.items() if k in present}
        return ready

    def _settled(self, key: str, path: Path, now: float) -> dict[str, Any] | None:
        """The event fields of a complete object version not yet delivered, else None."""
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        cached = self.known.get(key)
        if cached and cached[:2] == (st.st_size, st.st_mtime_ns) and self.delivered.get(key) == cached[2]:
            return None  # this version went out already; nothing to hash or check again
        seen = self.candidates.get(key)
        if seen is None or (seen.size, seen.mtime_ns) != (st.st_size, st.st_mtime_ns):
            self.candidates[key] = Candidate(key, path, st.st_size, st.st_mtime_ns, now)
            return None
        if now - seen.first_seen < self.settings.watcher.settle_seconds or open_for_writing(path):
            return None
        etag = storage.file_md5(path)
        self.known[key] = (st.st_size, st.st_mtime_ns, etag)
        if self.delivered.get(key) == etag:
            return None  # touched or copied again with the same content: the same object version
        return {"key": key, "size": st.st_size, "etag": etag, "mtime_ns": st.st_mtime_ns}

    def run(self, should_stop: Callable[[], bool]) -> None:
        LOG.info("watching %s for new CSVs (settle %.1f s, poll %.1f s)", self.root,
                 self.settings.watcher.settle_seconds, self.settings.watcher.poll_seconds)
        while not should_stop():
            for key in self.poll():
                LOG.info("delivered s3:ObjectCreated for %s", key)
            time.sleep(self.settings.watcher.poll_seconds)


def s3_event(bucket: str, objects: list[dict[str, Any]]) -> dict[str, Any]:
    """An S3 event notification (version 2.1) with one ObjectCreated:Put record per object."""
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "local", "eventTime": now,
        "eventName": "ObjectCreated:Put",
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "pronostico-local-watcher",
               "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
               "object": {"key": quote_plus(obj["key"], safe="/"), "size": obj["size"], "eTag": obj["etag"],
                          "sequencer": f"{obj['mtime_ns']:016X}"}},
    } for obj in objects]}


def open_for_writing(path: Path) -> bool:
    """Whether some process holds the file open for writing (Linux /proc; elsewhere the settle time decides)."""
    target = str(path.resolve())
    proc = Path("/proc")
    for fd_dir in proc.glob("[0-9]*/fd"):
        try:
            for fd in os.listdir(fd_dir):
                if os.readlink(fd_dir / fd) == target and _writable(fd_dir.parent / "fdinfo" / fd):
                    return True
        except OSError:  # the process ended, or is not ours to inspect
            continue
    return False


def _writable(fdinfo: Path) -> bool:
    for line in fdinfo.read_text().splitlines():
        if line.startswith("flags:"):
            return int(line.split()[1], 8) & os.O_ACCMODE in (os.O_WRONLY, os.O_RDWR)
    return False


def _load(path: Path) -> dict[str, str]:
    return json.loads(path.read_text()) if path.exists() else {}


def _save(path: Path, delivered: dict[str, str]) -> None:
    storage.write_json(path.resolve().as_uri(), delivered)


def _lambda_handler() -> Deliver:
    from lambda_trigger.handler import handler

    return handler


def watcher_service(settings: Settings) -> processes.Service:
    command = [sys.executable, "-m", "pronostico.local.stack.watcher"]
    return processes.Service(SERVICE, command, env=settings.environment(), stop_timeout=15.0)


def start(settings: Settings) -> processes.Running:
    return processes.start(watcher_service(settings), settings.run_dir, settings.logs_dir)


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s", stream=sys.stdout)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(True))
    LocalBucketWatcher(load_settings()).run(lambda: bool(stopping))
    LOG.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
