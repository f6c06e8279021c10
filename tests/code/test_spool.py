"""The spool's rotation: the next segment's 16 MiB of zeros are written while the host's writers keep appending."""

from __future__ import annotations

import fcntl
import json
import os
import stat
from pathlib import Path

import pytest

from pronostico.prediction_log import spool
from pronostico.prediction_log.spool import SpoolReader, SpoolWriter

SEGMENT_BYTES = 64 << 10


def line(writer: str, seq: int) -> bytes:
    return json.dumps({"writer": writer, "seq": seq, "padding": "x" * 200}).encode() + b"\n"


def append_lock_is_free(directory: Path) -> bool:
    """Whether another process could take the host's append lock right now."""
    fd = os.open(directory / spool.WRITERS_FILE, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # closing also drops the lock if it was taken
    return True


def watch_preparations(monkeypatch: pytest.MonkeyPatch, directory: Path, during=None) -> list[bool]:
    """For each fsync of a zero-filled segment (the end of its expensive preparation), whether the append lock was
    free at that moment; `during(free)` runs there too."""
    real_fsync = os.fsync
    free: list[bool] = []

    def fsync(fd: int) -> None:
        info = os.fstat(fd)
        if stat.S_ISREG(info.st_mode) and info.st_size == SEGMENT_BYTES:
            free.append(append_lock_is_free(directory))
            if during is not None:
                during(free[-1])
        real_fsync(fd)

    monkeypatch.setattr(spool.os, "fsync", fsync)
    return free


def test_other_writers_append_while_the_next_segment_is_prepared(tmp_path, monkeypatch):
    writer, other = SpoolWriter(tmp_path, SEGMENT_BYTES), SpoolWriter(tmp_path, SEGMENT_BYTES)
    writer.prepare()
    other.prepare()
    appended_meanwhile: list[bytes] = []

    def other_appends(free: bool) -> None:
        if free:  # with the lock held this append would wait for it, in this very thread, forever
            appended_meanwhile.append(line("other", len(appended_meanwhile)))
            other.append(appended_meanwhile[-1])

    preparations = watch_preparations(monkeypatch, tmp_path, other_appends)
    first, written = writer.segment, []
    rotations = 0
    while rotations < 3:
        written.append(line("writer", len(written)))
        before = writer.segment
        writer.append(written[-1])
        rotations += writer.segment != before
    assert writer.segment != first
    assert preparations and all(preparations)  # every preparation ran with the append lock free
    assert len(appended_meanwhile) == len(preparations)
    lines = SpoolReader(tmp_path).next_batch(10_000).lines
    assert sorted(lines) == sorted(b.rstrip(b"\n") for b in written + appended_meanwhile)
    assert [x for x in lines if b'"writer": "writer"' in x] == [b.rstrip(b"\n") for b in written]  # in order
    writer.close()
    other.close()


def test_a_fresh_spool_prepares_its_first_segment_outside_the_append_lock(tmp_path, monkeypatch):
    preparations = watch_preparations(monkeypatch, tmp_path)
    writer = SpoolWriter(tmp_path, SEGMENT_BYTES)
    for seq in range(1000):  # several segments
        writer.append(line("writer", seq))
    assert len(SpoolReader(tmp_path).segments()) > 2
    assert preparations and all(preparations)
    writer.close()
    assert len(SpoolReader(tmp_path).next_batch(10_000).lines) == 1000


def test_a_lost_spare_segment_is_prepared_again_when_the_segment_is_full(tmp_path, monkeypatch):
    writer = SpoolWriter(tmp_path, SEGMENT_BYTES)
    seq = 0
    while not list(tmp_path.glob(f".*{spool.TEMPORARY_SUFFIX}")) and seq < 1000:  # until the spare is ready
        writer.append(line("writer", seq))
        seq += 1
    assert len(SpoolReader(tmp_path).segments()) == 1  # prepared ahead, before the first segment filled
    for spare in tmp_path.glob(f".*{spool.TEMPORARY_SUFFIX}"):
        spare.unlink()  # as the shipper does with one left unlocked for a minute
    preparations = watch_preparations(monkeypatch, tmp_path)
    first = writer.segment
    while writer.segment == first:
        writer.append(line("writer", seq))
        seq += 1
    assert preparations and all(preparations)
    writer.close()
    assert len(SpoolReader(tmp_path).next_batch(10_000).lines) == seq
