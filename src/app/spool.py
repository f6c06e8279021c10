"""The prediction spool: append-only JSON-lines segments on local disk, one open segment per worker process.

A worker answers a prediction only after its log line is written and fdatasync'ed here, so an answered
prediction survives a crash of the worker, of the shipper, or of the database. The log shipper reads the segments
in order and records, in positions.json, how far each one reached the database.

Segments are preallocated with real zeros when they are created, and lines overwrite the zeros in place: an
fdatasync then flushes data blocks only, where an append would also force a journal commit for the new file size
(about 0.4 ms against 3 ms on this machine's ext4 while other work writes to the disk). JSON never contains a NUL
byte, so a segment's data ends at its first NUL.

A writer holds an exclusive flock on the segment it appends to for as long as it may append. A segment whose lock
can be taken therefore has no writer left (rotated, or its process is gone), and once it is shipped to its end it
can be deleted. Writers create a segment under a temporary name and lock it before renaming it into place, so the
shipper never sees a live segment unlocked.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

SEGMENT_SUFFIX = ".jsonl"
POSITIONS_FILE = "positions.json"
REJECTED_FILE = "rejected.log"  # not *.jsonl: never taken for a segment
DEFAULT_SEGMENT_BYTES = 16 << 20  # about 60,000 predictions per segment
ZEROS = bytes(1 << 20)


class SpoolUnavailable(RuntimeError):
    """The spool could not durably record a prediction, so the prediction must not be answered."""


def fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class SpoolWriter:
    """One process's appender. Safe across fork: a child opens a segment of its own on its first append."""

    def __init__(self, directory: Path, segment_bytes: int = DEFAULT_SEGMENT_BYTES) -> None:
        self.directory = Path(directory)
        self.segment_bytes = segment_bytes
        self._lock = threading.Lock()  # gthread workers would append from several threads
        self._fd: int | None = None
        self._pid = 0
        self._offset = 0
        self.segment: Path | None = None

    def append(self, line: bytes) -> None:
        """Write one newline-terminated line and flush it to disk; raise SpoolUnavailable if that fails."""
        if len(line) > self.segment_bytes or b"\0" in line or not line.endswith(b"\n"):
            raise ValueError("a spool line is one newline-terminated line without NUL bytes")
        with self._lock:
            try:
                if self._fd is None or self._pid != os.getpid() or self._offset + len(line) > self.segment_bytes:
                    self._open_segment()
                assert self._fd is not None
                written = 0
                while written < len(line):
                    written += os.pwrite(self._fd, line[written:], self._offset + written)
                os.fdatasync(self._fd)
                self._offset += len(line)
            except OSError as error:
                # a half-written line may be on disk: never write after it; the next line starts a new segment
                self._close()
                raise SpoolUnavailable(f"could not write the prediction spool in {self.directory}: {error}") from error

    def prepare(self) -> None:
        """Create this process's segment now (a worker at start-up), so its first request does not wait for it."""
        with self._lock:
            if self._fd is None or self._pid != os.getpid():
                self._open_segment()

    def close(self) -> None:
        with self._lock:
            self._close()

    def _open_segment(self) -> None:
        if self._pid != os.getpid():
            self._fd = None  # the parent's segment and lock stay the parent's; this process writes its own
        self._close()
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"{time.time_ns():020d}-{os.getpid()}"
        temporary = self.directory / f".{name}.tmp"
        fd = os.open(temporary, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            for start in range(0, self.segment_bytes, len(ZEROS)):
                os.pwrite(fd, ZEROS[:min(len(ZEROS), self.segment_bytes - start)], start)
            os.fsync(fd)
            final = self.directory / f"{name}{SEGMENT_SUFFIX}"
            os.rename(temporary, final)
            fsync_directory(self.directory)
        except BaseException:
            os.close(fd)
            temporary.unlink(missing_ok=True)
            raise
        self._fd, self._pid, self._offset, self.segment = fd, os.getpid(), 0, final

    def _close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)  # releases the flock: the shipper may now finish and delete the segment
        self._fd, self.segment = None, None


@dataclass(frozen=True)
class Batch:
    lines: list[bytes]
    positions: dict[str, int]  # segment name -> offset after the batch's last line in it


class SpoolReader:
    """The shipper's side: reads complete lines in order and remembers durably how far it has shipped."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.positions: dict[str, int] = self._load_positions()

    def segments(self) -> list[Path]:
        """Oldest first: segment names start with their creation time in nanoseconds."""
        return sorted(self.directory.glob(f"*{SEGMENT_SUFFIX}"), key=lambda p: p.name)

    def next_batch(self, max_lines: int, chunk_bytes: int = 1 << 20) -> Batch:
        lines: list[bytes] = []
        advanced: dict[str, int] = {}
        for segment in self.segments():
            offset = self.positions.get(segment.name, 0)
            for line, end in _complete_lines(segment, offset, max_lines - len(lines), chunk_bytes):
                lines.append(line)
                advanced[segment.name] = end
            if len(lines) >= max_lines:
                break
        return Batch(lines, advanced)

    def commit(self, batch: Batch) -> None:
        """Record a batch as shipped; called only after the database committed it."""
        if batch.positions:
            self.positions.update(batch.positions)
            self._save_positions()

    def reject(self, line: bytes, reason: str) -> None:
        """Keep a line the database can never take beside the spool, for a person to look at."""
        record = json.dumps({"reason": reason, "line": line.decode("utf-8", "replace")}) + "\n"
        with (self.directory / REJECTED_FILE).open("a", encoding="utf-8") as handle:
            handle.write(record)
            handle.flush()
            os.fsync(handle.fileno())
        log.error("rejected a spool line: %s", reason)

    def remove_finished(self) -> list[str]:
        """Delete segments that no writer holds and that are shipped to their end; return their names."""
        removed = []
        for segment in self.segments():
            with _unlocked(segment) as fd:
                if fd is None:
                    continue  # a writer still holds it
                shipped = self.positions.get(segment.name, 0)
                end = data_end(fd)
                if shipped < end:
                    tail = os.pread(fd, end - shipped, shipped)
                    if b"\n" in tail:
                        continue  # complete lines left to ship
                    # a line without its newline was being written when its worker died: it was never answered
                    self.reject(tail, "incomplete last line of a finished segment (never answered)")
                segment.unlink()
                removed.append(segment.name)
        if removed:
            for name in removed:
                self.positions.pop(name, None)
            self._save_positions()
            fsync_directory(self.directory)
        return removed

    def backlog_bytes(self) -> int:
        """Bytes written to the segments and not yet shipped."""
        total = 0
        for segment in self.segments():
            try:
                fd = os.open(segment, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            try:
                total += max(0, data_end(fd) - self.positions.get(segment.name, 0))
            finally:
                os.close(fd)
        return total

    def _load_positions(self) -> dict[str, int]:
        path = self.directory / POSITIONS_FILE
        if not path.exists():
            return {}
        positions = {str(k): int(v) for k, v in json.loads(path.read_text()).items()}
        return {k: v for k, v in positions.items() if (self.directory / k).exists()}

    def _save_positions(self) -> None:
        path = self.directory / POSITIONS_FILE
        temporary = path.with_name(f".{POSITIONS_FILE}.tmp")
        with temporary.open("w", encoding="utf-8") as handle:
            json.dump(self.positions, handle, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        fsync_directory(self.directory)


def backlog_bytes(directory: Path) -> int:
    """Bytes spooled but not yet shipped (0 when the spool does not exist yet)."""
    if not Path(directory).is_dir():
        return 0
    return SpoolReader(directory).backlog_bytes()


def data_end(fd: int) -> int:
    """Where a segment's data ends: the first NUL byte, found by bisection (data first, then only zeros)."""
    low, high = 0, os.fstat(fd).st_size
    while low < high:
        middle = (low + high) // 2
        if os.pread(fd, 1, middle) in (b"\0", b""):
            high = middle
        else:
            low = middle + 1
    return low


def _complete_lines(segment: Path, offset: int, max_lines: int, chunk_bytes: int) -> Iterator[tuple[bytes, int]]:
    """(line, offset after it) for each newline-terminated line from `offset`, at most `max_lines`."""
    if max_lines <= 0:
        return
    try:
        handle = segment.open("rb")
    except FileNotFoundError:
        return
    with handle:
        handle.seek(offset)
        pending = b""
        count = 0
        while count < max_lines:
            chunk = handle.read(chunk_bytes)
            nul = chunk.find(b"\0")
            if nul >= 0:
                chunk = chunk[:nul]
            if not chunk:
                return
            pending += chunk
            start = 0
            while count < max_lines:
                end = pending.find(b"\n", start)
                if end < 0:
                    break
                offset += end + 1 - start
                yield pending[start:end], offset
                count += 1
                start = end + 1
            pending = pending[start:]
            if nul >= 0:
                return


@contextlib.contextmanager
def _unlocked(segment: Path) -> Iterator[int | None]:
    """A descriptor of the segment while this process holds its lock, or None if a writer holds it."""
    try:
        fd = os.open(segment, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        yield None
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield None
            return
        yield fd
    finally:
        os.close(fd)
