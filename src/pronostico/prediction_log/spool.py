"""The prediction spool: append-only JSON-lines segments on local disk, shared by every worker process of a host.

A worker answers a prediction only after its log line is written here, so an answered prediction survives a crash
of the worker, of the shipper, or of the database; when the line must also be on disk first is the writer's `sync`
setting (flushed before the answer, or within an interval after it). The log shipper reads the segments
in order and records, in positions.json, how far each one reached the database.

Group commit across processes. A sync worker has one request in flight, so a spool per worker would need one
fdatasync per answer, and the flush is the main cost of a logged prediction over an unlogged one (BENCHMARKS.md). The
workers of a host therefore append to one current segment, and whoever finds its line not yet on disk flushes the
segment for everyone: one fdatasync covers every line appended before it started. Two flock'ed files coordinate
the processes: `.writers` (mmap'ed; its lock guards appending) holds the current segment, where its data ends and
how far it is known to be on disk, and `.sync` is taken to flush. With SYNC_EACH a line is answered only once the
flushed range covers it, the same guarantee as an fdatasync per line.

Every answered prediction is logged, and a refused one may be too: answered ⊆ logged. A line is in its segment
before it is flushed, so when the flush fails (SYNC_EACH) the prediction is refused (SpoolUnavailable, which the
app answers 503) while its line stays where the shipper reads it, and the shipper logs it like any other. Taking
it back would mean writing to the segment again, after a failed flush.

Segments are preallocated with real zeros when they are created, and lines overwrite the zeros in place: an
fdatasync then flushes data blocks only, where an append would also force a journal commit for the new file size
(about 0.4 ms against 3 ms on this machine's ext4 while other work writes to the disk). JSON never contains a NUL
byte, so a segment's data ends at its first NUL.

Writing and syncing those zeros takes tens of milliseconds, so it never happens under the append lock: the next
segment is prepared ahead, under its temporary name, by the writer whose line takes the current one past half full,
and `.writers` names it as the spare. Rotating is then cheap: flush the old segment, rename the spare into place,
sync the directory. One writer at a time prepares a spare, holding the flock of `.spare`; a writer that finds the
segment full and no spare ready prepares one (or waits for that lock) with the append lock released, so the host's
other writers carry on meanwhile.

Every writer holds a shared flock on the segment it appends to for as long as it may append, and a writer that
prepared the spare holds one on it. A segment whose exclusive lock can be taken therefore has no writer left
(rotated, or every process is gone), and once it is shipped to its end it can be deleted. A writer lets go of a
segment the host has rotated past on its next append, or, idle, within `idle_release_seconds` (its background
thread looks), so an idle worker does not keep a finished segment on disk. Segments are made under a
temporary name and locked before they are renamed into place, so the shipper never sees a live segment unlocked.
A writer that dies while changing the shared state (in the middle of a line, say) leaves it marked dirty, and the
next writer starts a new segment rather than write after it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import mmap
import os
import struct
import threading
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

log = logging.getLogger(__name__)

SEGMENT_SUFFIX = ".jsonl"
TEMPORARY_SUFFIX = ".tmp"  # a segment being created: preallocated, then renamed into place
ABANDONED_AFTER_SECONDS = 60.0
POSITIONS_FILE = "positions.json"
REJECTED_FILE = "rejected.log"  # not *.jsonl: never taken for a segment
WRITERS_FILE = ".writers"
SYNC_FILE = ".sync"
SPARE_FILE = ".spare"  # flock'ed by the writer preparing the next segment
DEFAULT_SEGMENT_BYTES = 16 << 20  # about 60,000 predictions per segment
SYNC_EACH, SYNC_INTERVAL = "each", "interval"
SYNC_MODES = (SYNC_EACH, SYNC_INTERVAL)
DEFAULT_SYNC_INTERVAL = 0.01  # seconds
IDLE_RELEASE_SECONDS = 1.0  # how soon an idle writer lets go of a segment the host has left
ZEROS = bytes(1 << 20)


class SpoolUnavailable(RuntimeError):
    """The spool could not durably record a prediction, so the prediction must not be answered."""


def fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class WritersState:
    """The host's shared writer state in `.writers`, mapped into every writer process.

    Fields change only under the flock of `.writers` (the append lock), except `synced_*` and `syncs`, which change
    only under the flock of `.sync`. The spare's name is empty while no next segment is ready.
    """

    SIZE = 4096
    VERSION = 1
    _FIELDS: ClassVar[dict[str, int]] = {"version": 0, "dirty": 8, "generation": 16, "end": 24,
                                         "synced_generation": 32, "synced_end": 40, "lines": 48, "syncs": 56}
    _NAME: ClassVar[slice] = slice(64, 128)
    _SPARE: ClassVar[slice] = slice(128, 192)  # zeros in a state file older than the spare: no spare

    def __init__(self, buffer: mmap.mmap | bytes) -> None:
        self._map = buffer  # bytes: a read-only copy (metrics)

    @classmethod
    def open(cls, fd: int) -> WritersState:
        """Map `.writers` for writing (the append lock held: no writer maps a short file)."""
        if os.fstat(fd).st_size < cls.SIZE:
            os.ftruncate(fd, cls.SIZE)
        state = cls(mmap.mmap(fd, cls.SIZE))
        if state.get("version") == 0:
            state.set("version", cls.VERSION)
        elif state.get("version") != cls.VERSION:
            raise OSError(f"{WRITERS_FILE} has layout version {state.get('version')}, this code writes {cls.VERSION}")
        return state

    def current(self) -> tuple[int, int]:
        """(generation, end) of the data appended so far."""
        return self.get("generation"), self.get("end")

    def synced(self) -> tuple[int, int]:
        """(generation, end) of the data known to be on disk."""
        return self.get("synced_generation"), self.get("synced_end")

    def covers(self, position: tuple[int, int]) -> bool:
        """Whether data up to `position` is on disk: flushed past it, or in a segment rotation has left (and
        flushed on leaving)."""
        return self.synced() >= position or self.get("generation") != position[0]

    def unflushed_bytes(self) -> int:
        generation, end = self.current()
        synced_generation, synced_end = self.synced()
        return max(0, end - (synced_end if synced_generation == generation else 0))

    def get(self, name: str) -> int:
        return int(struct.unpack_from("<Q", self._map, self._FIELDS[name])[0])

    def set(self, name: str, value: int) -> None:
        struct.pack_into("<Q", self._map, self._FIELDS[name], value)

    @property
    def segment_name(self) -> str:
        return self._name(self._NAME)

    @segment_name.setter
    def segment_name(self, name: str) -> None:
        self._set_name(self._NAME, name)

    @property
    def spare_name(self) -> str:
        """The next segment, made and synced under its temporary name ("" if none is ready)."""
        return self._name(self._SPARE)

    @spare_name.setter
    def spare_name(self, name: str) -> None:
        self._set_name(self._SPARE, name)

    def _name(self, field: slice) -> str:
        return self._map[field].rstrip(b"\0").decode("ascii")

    def _set_name(self, field: slice, name: str) -> None:
        self._map[field] = name.encode("ascii").ljust(field.stop - field.start, b"\0")

    def close(self) -> None:
        if isinstance(self._map, mmap.mmap):
            self._map.close()


@dataclass
class _Handles:
    """One process's descriptors: the two lock files, the shared state, the segment it appends to, and the spare it
    prepared until a rotation takes it."""

    writers_fd: int
    sync_fd: int
    state: WritersState
    segment_fd: int | None = None
    generation: int = 0
    spare_fd: int | None = None
    spare_name: str = ""

    def release_spare(self) -> None:
        if self.spare_fd is not None:
            os.close(self.spare_fd)
        self.spare_fd, self.spare_name = None, ""

    def close(self) -> None:
        self.state.close()
        for fd in (self.segment_fd, self.spare_fd, self.writers_fd, self.sync_fd):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)  # closing the segment releases its shared lock: the shipper may delete it


class SpoolWriter:
    """One process's appender. Safe across fork: a child opens descriptors of its own on its first append.

    `sync` says when an answer may leave: SYNC_EACH once its line is flushed to disk (it survives a power cut), or
    SYNC_INTERVAL once its line is written to the page cache (it survives a crash of any process and a database
    outage), a background thread flushing what the host's writers appended every `sync_interval` seconds. In
    either mode that thread also lets go of a segment the host has left while the process is idle.
    """

    def __init__(self, directory: Path, segment_bytes: int = DEFAULT_SEGMENT_BYTES, sync: str = SYNC_EACH,
                 sync_interval: float = DEFAULT_SYNC_INTERVAL) -> None:
        if sync not in SYNC_MODES:
            raise ValueError(f"spool sync must be one of {', '.join(SYNC_MODES)}, not {sync!r}")
        self.directory = Path(directory)
        self.segment_bytes = segment_bytes
        self.sync = sync
        self.sync_interval = sync_interval
        # gthread workers would append from several threads; flock does not exclude threads sharing a descriptor
        self._lock = threading.Lock()
        self._handles: _Handles | None = None
        self._pid = 0
        self._flusher: threading.Thread | None = None
        self._stop_flusher = threading.Event()
        self._appended = threading.Event()
        self._written = (0, 0)  # (generation, end) just past this process's last line
        self.segment: Path | None = None
        self.syncs = 0  # fdatasyncs this process ran on behalf of the host's writers
        self.idle_release_seconds = IDLE_RELEASE_SECONDS
        _WRITERS.add(self)

    def append(self, line: bytes) -> None:
        """Write one newline-terminated line and return once `sync` allows; raise SpoolUnavailable if it cannot."""
        if len(line) > self.segment_bytes or b"\0" in line or not line.endswith(b"\n"):
            raise ValueError("a spool line is one newline-terminated line without NUL bytes")
        with self._lock:
            try:
                handles = self._open()
                position, half_full = self._write(handles, line)
                if self.sync == SYNC_EACH:
                    self._make_durable(handles, position)
                else:
                    self._written = position
                    self._appended.set()
            except OSError as error:
                self._close()
                raise SpoolUnavailable(f"could not write the prediction spool in {self.directory}: {error}") from error
            if half_full:
                self._prepare_ahead(handles)

    def prepare(self) -> None:
        """Open the current segment now (a worker at start-up), so its first request does not wait for it."""
        with self._lock:
            handles = self._open()
            self._lock_segment(handles, 0)
            fcntl.flock(handles.writers_fd, fcntl.LOCK_UN)

    def flush(self, wait: bool = True) -> bool:
        """Flush what the host's writers appended to the current segment; False if there was nothing to flush, or
        (with wait=False) another process was flushing it already."""
        with self._lock:
            handles = self._handles
            if handles is None or self._pid != os.getpid() or handles.segment_fd is None:
                return False
            # duplicates: this process's requests may rotate or close its descriptors while the disk flushes
            sync_fd = os.dup(handles.sync_fd)
            if not _lock(sync_fd, wait):
                os.close(sync_fd)
                return False
            state = handles.state
            with _flocked(handles.writers_fd):
                generation, end = state.current()
            behind = not state.covers((generation, end))
            segment_fd = os.dup(handles.segment_fd) if behind and handles.generation == generation else None
        try:
            if segment_fd is None:
                return False  # nothing new, or the current segment is one this process has not written to
            os.fdatasync(segment_fd)  # outside the process lock: requests keep appending meanwhile
            with self._lock:
                if self._handles is handles:  # not closed meanwhile
                    self._record_flush(state, generation, end)
            return True
        finally:
            if segment_fd is not None:
                os.close(segment_fd)
            fcntl.flock(sync_fd, fcntl.LOCK_UN)
            os.close(sync_fd)

    def close(self) -> None:
        """Stop the flusher, flush what is left, and release the segment (a worker on its way out)."""
        self._stop_flusher.set()
        self._appended.set()
        if self._flusher is not None and self._flusher is not threading.current_thread():
            self._flusher.join()
        self._flusher = None
        with contextlib.suppress(OSError):
            self.flush()
        with self._lock:
            self._close()

    def _open(self) -> _Handles:
        if self._handles is not None and self._pid == os.getpid():
            return self._handles
        if self._handles is not None:  # a forked child: its parent's descriptors (and flocks) stay the parent's
            self._handles.close()
            self._handles = None
        self.directory.mkdir(parents=True, exist_ok=True)
        writers_fd = os.open(self.directory / WRITERS_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
        sync_fd = os.open(self.directory / SYNC_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
        try:
            with _flocked(writers_fd):
                state = WritersState.open(writers_fd)
        except BaseException:
            os.close(writers_fd)
            os.close(sync_fd)
            raise
        self._handles, self._pid = _Handles(writers_fd, sync_fd, state), os.getpid()
        self._start_flusher()
        return self._handles

    def _start_flusher(self) -> None:
        if self._flusher is not None and self._flusher.is_alive():
            return  # reopened after an error: the thread carries on (a forked child's parent thread is not alive)
        self._stop_flusher, self._appended = threading.Event(), threading.Event()
        self._flusher = threading.Thread(target=self._flush_every_interval, name="spool-flusher", daemon=True)
        self._flusher.start()

    def _flush_every_interval(self) -> None:
        """Flush an interval after each append (SYNC_INTERVAL: only then is `_appended` set), and while no append
        comes let go of the segments the host has left."""
        while not self._stop_flusher.is_set():
            if not self._appended.wait(self.idle_release_seconds):
                self._release_left_segments()
                continue
            if self._stop_flusher.wait(self.sync_interval):
                return
            self._appended.clear()
            try:
                self.flush(wait=False)
            except OSError as error:  # tried again next interval; appends report a spool that stays broken
                log.error("could not flush the prediction spool in %s: %s", self.directory, error)
            if not self._flushed_past(self._written):
                self._appended.set()  # another process was flushing (from before this one's line), or it failed

    def _release_left_segments(self) -> None:
        """Close this process's descriptors of a segment the host rotated past, and of a spare a rotation took: an
        idle writer's shared lock would keep the shipper from ever deleting them."""
        with self._lock:
            handles = self._handles
            if handles is None or self._pid != os.getpid():
                return
            try:
                with _flocked(handles.writers_fd):
                    generation, spare = handles.state.get("generation"), handles.state.spare_name
            except OSError as error:  # looked at again next time; appends report a spool that stays broken
                log.error("could not read the prediction spool's state in %s: %s", self.directory, error)
                return
            if handles.segment_fd is not None and handles.generation != generation:
                os.close(handles.segment_fd)  # the next append joins the current segment
                handles.segment_fd, handles.generation, self.segment = None, 0, None
            if handles.spare_name and handles.spare_name != spare:
                handles.release_spare()

    def _flushed_past(self, position: tuple[int, int]) -> bool:
        with self._lock:
            if self._handles is None or self._pid != os.getpid():
                return True  # closed: close() flushed
            return self._handles.state.covers(position)

    def _write(self, handles: _Handles, line: bytes) -> tuple[tuple[int, int], bool]:
        """Append under the host's append lock; return (generation, end) just past the line, and whether the line
        took the segment past half full (time to prepare the next one)."""
        state = handles.state
        fd = self._lock_segment(handles, len(line))
        try:
            start = state.get("end")
            state.set("dirty", 1)
            written = 0
            while written < len(line):
                written += os.pwrite(fd, line[written:], start + written)
            state.set("end", start + len(line))
            state.set("lines", state.get("lines") + 1)
            state.set("dirty", 0)
        finally:
            fcntl.flock(handles.writers_fd, fcntl.LOCK_UN)
        end = start + len(line)
        return (handles.generation, end), start * 2 < self.segment_bytes <= end * 2

    def _lock_segment(self, handles: _Handles, room: int) -> int:
        """Take the append lock and return the current segment's descriptor with `room` bytes free; the caller
        releases the lock. A segment to rotate to is prepared with the lock released, so that the host's other
        writers carry on meanwhile. (No context manager: this is every append's path.)"""
        while True:
            fcntl.flock(handles.writers_fd, fcntl.LOCK_EX)
            try:
                fd = self._current_segment(handles, room)
                generation = handles.state.get("generation")
            except BaseException:
                fcntl.flock(handles.writers_fd, fcntl.LOCK_UN)
                raise
            if fd is not None:
                return fd
            fcntl.flock(handles.writers_fd, fcntl.LOCK_UN)
            self._prepare_spare(handles, wait=True, rotating_from=generation)

    def _current_segment(self, handles: _Handles, room: int) -> int | None:
        """The descriptor of the current segment with `room` bytes free, rotating if need be; None if the rotation
        needs a spare first (append lock held)."""
        state = handles.state
        if state.get("dirty") or state.get("generation") == 0 or state.get("end") + room > self.segment_bytes:
            return self._rotate(handles)
        if handles.generation != state.get("generation"):
            if handles.spare_name and handles.spare_name != state.spare_name:
                handles.release_spare()  # a rotation took the spare this process prepared
            fd = _join(self.directory / state.segment_name)
            if fd is None:  # every writer was gone and the shipper finished the segment
                return self._rotate(handles)
            self._use(handles, fd, state.get("generation"), self.directory / state.segment_name)
        assert handles.segment_fd is not None
        return handles.segment_fd

    def _rotate(self, handles: _Handles) -> int | None:
        """Make the spare the new current segment; None if there is no spare. The old one is flushed first: a writer
        that sees the generation move on knows its line is on disk."""
        state = handles.state
        spare = self._take_spare(handles)
        if spare is None:
            return None
        fd, temporary = spare
        try:
            if state.get("dirty"):
                os.sync()  # a writer died mid-change, maybe mid-rotation: the state may not name the segment to flush
            state.set("dirty", 1)
            old = _join(self.directory / state.segment_name) if state.segment_name else None
            if old is not None:
                try:
                    os.fdatasync(old)
                finally:
                    os.close(old)
            path = self.directory / f"{_new_segment_stem()}{SEGMENT_SUFFIX}"  # named now: names sort as rotations
            os.rename(temporary, path)
            fsync_directory(self.directory)
        except BaseException:
            os.close(fd)
            raise
        state.segment_name = path.name
        state.set("generation", state.get("generation") + 1)
        state.set("end", 0)
        state.set("dirty", 0)
        self._use(handles, fd, state.get("generation"), path)
        return fd

    def _take_spare(self, handles: _Handles) -> tuple[int, Path] | None:
        """The spare, share-locked, and no longer named as the spare; None if there is none (append lock held)."""
        state = handles.state
        name = state.spare_name
        if not name:
            return None
        state.spare_name = ""
        fd = _join(self.directory / name)  # None: its maker died and the shipper removed it as abandoned
        if handles.spare_name == name:
            handles.release_spare()  # this process made it: the lock just taken is enough
        return None if fd is None else (fd, self.directory / name)

    def _prepare_ahead(self, handles: _Handles) -> None:
        """Prepare the next segment while the current one still has room, unless another writer is at it."""
        try:
            self._prepare_spare(handles, wait=False)
        except OSError as error:  # the rotation tries again, and refuses lines if it cannot either
            log.warning("could not prepare the next spool segment in %s: %s", self.directory, error)

    def _prepare_spare(self, handles: _Handles, wait: bool, rotating_from: int | None = None) -> None:
        """Make the next segment and name it as the spare (the append lock free meanwhile); nothing if a spare is
        there by this process's turn, or the segment of generation `rotating_from` has been rotated already.
        wait=False: nothing either if another writer is preparing one."""
        lock_fd = os.open(self.directory / SPARE_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
        try:
            if not _lock(lock_fd, wait):
                return
            state = handles.state
            with _flocked(handles.writers_fd):
                if state.spare_name or rotating_from not in (None, state.get("generation")):
                    return
            fd, path = self._create_spare()
            try:
                with _flocked(handles.writers_fd):
                    state.spare_name = path.name
            except BaseException:
                os.close(fd)
                path.unlink(missing_ok=True)
                raise
            handles.release_spare()
            handles.spare_fd, handles.spare_name = fd, path.name
        finally:
            os.close(lock_fd)  # and with it the lock

    def _use(self, handles: _Handles, fd: int, generation: int, path: Path) -> None:
        if handles.segment_fd is not None:
            os.close(handles.segment_fd)
        handles.segment_fd, handles.generation, self.segment = fd, generation, path

    def _create_spare(self) -> tuple[int, Path]:
        """A new segment under its temporary name: share-locked, preallocated with zeros, and on disk."""
        temporary = self.directory / f".{_new_segment_stem()}{TEMPORARY_SUFFIX}"
        fd = os.open(temporary, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            for start in range(0, self.segment_bytes, len(ZEROS)):
                os.pwrite(fd, ZEROS[:min(len(ZEROS), self.segment_bytes - start)], start)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            temporary.unlink(missing_ok=True)
            raise
        return fd, temporary

    def _make_durable(self, handles: _Handles, position: tuple[int, int]) -> None:
        """Return once the segment is flushed past `position`: by this process, or by another that got there first."""
        state = handles.state
        with _flocked(handles.sync_fd):
            if state.covers(position):
                return  # a flush that started after this line was written has finished, or a rotation
            with _flocked(handles.writers_fd):
                generation, end = state.current()
            if generation != position[0]:
                return  # rotated since the check above, and rotation flushes the segment it leaves
            assert handles.segment_fd is not None and handles.generation == generation
            os.fdatasync(handles.segment_fd)  # covers every line appended up to `end`, whoever wrote it
            self._record_flush(state, generation, end)

    def _record_flush(self, state: WritersState, generation: int, end: int) -> None:
        """Say how far the current segment is on disk (the sync lock held)."""
        state.set("synced_end", end)  # end first: a writer killed between the two leaves a range too short,
        state.set("synced_generation", generation)  # never one that claims more than was flushed
        state.set("syncs", state.get("syncs") + 1)
        self.syncs += 1

    def _close(self) -> None:
        if self._handles is not None and self._pid == os.getpid():
            self._handles.close()
        self._handles, self.segment = None, None


_WRITERS: weakref.WeakSet[SpoolWriter] = weakref.WeakSet()


def _reset_locks_in_a_forked_child() -> None:
    """A forked child runs only the thread that forked: a writer lock its background thread held at that moment
    would never be released."""
    for writer in list(_WRITERS):
        writer._lock = threading.Lock()


os.register_at_fork(after_in_child=_reset_locks_in_a_forked_child)


def writer_counters(directory: Path) -> dict[str, int]:
    """The host's lines appended and fdatasyncs run since the spool was created, and the bytes of the current
    segment not yet flushed (zeros when the spool does not exist)."""
    try:
        data = (Path(directory) / WRITERS_FILE).read_bytes()
    except FileNotFoundError:
        data = b""
    if len(data) < WritersState.SIZE:
        return {"lines": 0, "syncs": 0, "unflushed_bytes": 0}
    state = WritersState(data)
    return {"lines": state.get("lines"), "syncs": state.get("syncs"), "unflushed_bytes": state.unflushed_bytes()}


def _new_segment_stem() -> str:
    """Creation time first, so that names sort oldest first."""
    return f"{time.time_ns():020d}-{os.getpid()}"


@contextlib.contextmanager
def _flocked(fd: int) -> Iterator[None]:
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


def _lock(fd: int, wait: bool) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _join(path: Path) -> int | None:
    """A descriptor of an existing segment, share-locked as one of its writers; None if it is gone."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        if os.fstat(fd).st_nlink == 0:  # the shipper deleted it between our open and our lock
            os.close(fd)
            return None
    except BaseException:
        os.close(fd)
        raise
    return fd


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
        self._remove_abandoned_segments_in_creation()
        return removed

    def _remove_abandoned_segments_in_creation(self) -> None:
        """A writer killed while creating a segment leaves it under its temporary name, where nothing else looks."""
        for temporary in self.directory.glob(f".*{TEMPORARY_SUFFIX}"):
            with contextlib.suppress(FileNotFoundError):
                if time.time() - temporary.stat().st_mtime < ABANDONED_AFTER_SECONDS:
                    continue  # a writer may still be creating it (it locks the file only after opening it)
                with _unlocked(temporary) as fd:
                    if fd is not None:
                        temporary.unlink()
                        log.warning("removed %s, a segment its writer never finished creating", temporary.name)

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
