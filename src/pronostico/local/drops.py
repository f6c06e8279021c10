"""`make demo`'s drops: each use case's demo files cut by date into the history and the newest months.

Drop 1 holds every row dated before C, drop 2 the rows from C on, where C is the newest date in the use case's files
minus RECENT_MONTHS. Fed in order, they give the models page a champion evaluated on rows it never saw, and
predictions made between the drops to check against what happened; the second drop refits with the first one's tuned
hyperparameters. Lines are filtered as bytes, never parsed and written again, so numbers keep their text and a file
wholly before C comes out byte for byte (its etag is the original's).
"""

from __future__ import annotations

import calendar
import csv
import io
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from pronostico.core.config import Settings
from pronostico.core.layout import SYNTHETIC_FOLDER

RECENT_MONTHS = 3  # drop 2: the newest three months; drop 1: everything older
DROP_COUNT = 2
DATE_COLUMN = "date"
KINDS = ("real", "synthetic")
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
DAY_MONTH_YEAR = re.compile(r"\d{2}/\d{2}/\d{4}")  # dd/MM/yyyy, the Kaggle file's


class DropError(ValueError):
    """A demo file that cannot be cut into drops; the message says why, in one line."""


@dataclass(frozen=True)
class DropFile:
    path: Path  # under <home>/demo-data/drops/<n>/<use case>/
    key: str  # its key in the raw bucket
    rows: int  # data rows (blank lines not counted)


@dataclass(frozen=True)
class Drop:
    number: int
    description: str  # "history to 2025-12-24", "2025-12-25 to 2026-03-24", or one such range per use case
    files: Mapping[str, tuple[DropFile, ...]]  # use case -> its files here; a use case with none is absent
    ranges: Mapping[str, str] = field(default_factory=dict)  # use case -> the dates this drop covers for it

    @property
    def file_count(self) -> int:
        return sum(len(files) for files in self.files.values())


@dataclass(frozen=True)
class Cutoffs:
    recent: date  # C: drop 2 starts here
    newest: date

    @classmethod
    def from_newest(cls, newest: date) -> Cutoffs:
        return cls(months_before(newest, RECENT_MONTHS), newest)

    def drop_of(self, day: date | None) -> int:
        """1 or 2; an undated row stays with the history, where the convert step reports it."""
        return 1 if day is None or day < self.recent else 2

    def ranges(self) -> tuple[str, str]:
        return f"history to {self.recent - timedelta(days=1)}", f"{self.recent} to {self.newest}"


@dataclass(frozen=True)
class SourceFile:
    """One demo file split into records: its header's bytes, and each data record's date and bytes."""

    path: Path
    header: bytes
    records: tuple[tuple[date | None, bytes], ...]

    @property
    def newest(self) -> date | None:
        return max((day for day, _ in self.records if day is not None), default=None)


def months_before(day: date, months: int) -> date:
    """The same day `months` earlier, clamped to the month's end (2026-05-31 minus 3 months is 2026-02-28)."""
    index = day.year * 12 + day.month - 1 - months
    year, month = divmod(index, 12)
    month += 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def split_records(data: bytes) -> list[bytes]:
    """The file's records with their line ends; a quoted field's line breaks stay inside its record."""
    lines = [line + b"\n" for line in data.split(b"\n")]
    lines[-1] = lines[-1][:-1]  # the text after the last newline: empty, or a last line without one
    if not lines[-1]:
        lines.pop()
    records, pending = [], b""
    for line in lines:
        pending += line
        if pending.count(b'"') % 2 == 0:
            records.append(pending)
            pending = b""
    if pending:
        records.append(pending)  # an unclosed quote: left as it is, for the convert step to flag
    return records


def fields(record: bytes) -> list[str]:
    text = record.decode("utf-8", errors="replace").lstrip("\ufeff").rstrip("\r\n")
    return next(csv.reader(io.StringIO(text)), [])


def date_column(path: Path, header: bytes) -> int:
    names = [name.strip().lower() for name in fields(header)]
    if DATE_COLUMN not in names:
        raise DropError(f"{path.name}: no {DATE_COLUMN!r} column in the header ({', '.join(names)[:120]})")
    return names.index(DATE_COLUMN)


def date_parser(path: Path, first_value: str) -> Callable[[str], date | None]:
    """How this file writes dates, from its first data row: ISO YYYY-MM-DD or dd/MM/yyyy."""
    if ISO_DATE.fullmatch(first_value):
        return _parse_iso
    if DAY_MONTH_YEAR.fullmatch(first_value):
        return _parse_day_month_year
    raise DropError(f"{path.name}: the first row's date {first_value!r} is neither YYYY-MM-DD nor dd/MM/yyyy")


def _parse_iso(value: str) -> date | None:
    try:
        return date.fromisoformat(value) if ISO_DATE.fullmatch(value) else None
    except ValueError:
        return None


def _parse_day_month_year(value: str) -> date | None:
    if not DAY_MONTH_YEAR.fullmatch(value):
        return None
    try:
        return date(int(value[6:10]), int(value[3:5]), int(value[0:2]))
    except ValueError:
        return None


def read_source(path: Path) -> SourceFile:
    """The file's header and its data records, each with its date (None when it has none that parses)."""
    records = split_records(path.read_bytes())
    if not records:
        raise DropError(f"{path.name}: empty file")
    header, rows = records[0], records[1:]
    column = date_column(path, header)
    parse: Callable[[str], date | None] | None = None
    dated = []
    for record in rows:
        values = fields(record) if record.strip() else []
        value = values[column].strip() if len(values) > column else ""
        if parse is None and value:
            parse = date_parser(path, value)
        dated.append((parse(value) if parse and value else None, record))
    if parse is None:
        raise DropError(f"{path.name}: no data row with a date")
    return SourceFile(path, header, tuple(dated))


def dated_rows(path: Path) -> list[tuple[date, dict[str, str]]]:
    """The rows of a CSV as dicts, each with its parsed date; rows without one are left out."""
    source = read_source(path)
    header = [name.strip() for name in fields(source.header)]
    rows = []
    for day, record in source.records:
        if day is not None:
            rows.append((day, dict(zip(header, fields(record), strict=False))))
    return rows


def drop_name(path: Path, number: int) -> str:
    return path.name if number == 1 else f"{path.stem}.drop{number}.csv"


def raw_key(kind: str, use_case: str, name: str) -> str:
    """Real demo data under <use_case>/, generated data under <use_case>/synthetic/ (left out once real is there)."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind of demo data {kind!r}: choose one of {', '.join(KINDS)}")
    return f"{use_case}/{SYNTHETIC_FOLDER}/{name}" if kind == "synthetic" else f"{use_case}/{name}"


def drops_dir(settings: Settings) -> Path:
    return settings.home / "demo-data" / "drops"


def cut(source: SourceFile, cutoffs: Cutoffs) -> dict[int, tuple[bytes, int]]:
    """Drop number -> (the file's bytes in that drop, its data rows), for the drops it has rows in."""
    parts: dict[int, list[bytes]] = {n: [] for n in range(1, DROP_COUNT + 1)}
    counts = dict.fromkeys(parts, 0)
    for day, record in source.records:
        number = cutoffs.drop_of(day)
        parts[number].append(record)
        counts[number] += 1 if record.strip() else 0
    return {n: (source.header + b"".join(parts[n]), counts[n]) for n in parts if counts[n]}


def plan_drops(settings: Settings, kind: str, inputs: Mapping[str, Iterable[Path]]) -> list[Drop]:
    """Write each use case's drops under <home>/demo-data/drops/<n>/<use case>/ and describe them, drop 1 first."""
    files: dict[int, dict[str, list[DropFile]]] = {n: {} for n in range(1, DROP_COUNT + 1)}
    ranges: dict[int, dict[str, str]] = {n: {} for n in files}
    for use_case, paths in inputs.items():
        sources = [read_source(Path(p)) for p in paths]
        newest = max((s.newest for s in sources if s.newest is not None), default=None)
        if newest is None:
            raise DropError(f"{use_case}: no dated row in {', '.join(s.path.name for s in sources) or 'no file'}")
        cutoffs = Cutoffs.from_newest(newest)
        written = _write_use_case(settings, kind, use_case, sources, cutoffs)
        for number, range_text in enumerate(cutoffs.ranges(), start=1):
            ranges[number][use_case] = range_text
            if written[number]:
                files[number][use_case] = written[number]
    return [Drop(n, describe(ranges[n]), {uc: tuple(fs) for uc, fs in files[n].items()}, ranges[n])
            for n in sorted(files)]


def _write_use_case(settings: Settings, kind: str, use_case: str, sources: list[SourceFile],
                    cutoffs: Cutoffs) -> dict[int, list[DropFile]]:
    written: dict[int, list[DropFile]] = {n: [] for n in range(1, DROP_COUNT + 1)}
    for source in sources:
        for number, (content, rows) in cut(source, cutoffs).items():
            name = drop_name(source.path, number)
            target = drops_dir(settings) / str(number) / use_case / name
            write_if_changed(target, content)
            written[number].append(DropFile(target, raw_key(kind, use_case, name), rows))
    for number, kept in written.items():  # files an earlier plan wrote, for inputs that changed since
        folder = drops_dir(settings) / str(number) / use_case
        for stale in set(folder.glob("*.csv")) - {f.path for f in kept}:
            stale.unlink()
    return written


def describe(ranges: Mapping[str, str]) -> str:
    """One range when every use case's cutoffs agree, else each use case's own."""
    distinct = set(ranges.values())
    if len(distinct) == 1:
        return distinct.pop()
    return "; ".join(f"{use_case} {text}" for use_case, text in ranges.items())


def write_if_changed(path: Path, content: bytes) -> None:
    """Write atomically, and only when the bytes differ: a second plan leaves the files (and mtimes) alone."""
    if path.is_file() and path.read_bytes() == content:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(content)
    temporary.replace(path)
