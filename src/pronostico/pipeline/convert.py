"""Stage 1, CSV -> validated parquet: read raw files with explicit schemas, quarantine bad rows.

A row is bad when it has at least one reason: a missing required value, a value that does not
parse as its type, a date in the future, text that looks like a spreadsheet formula or broken
encoding, a use-case rule (negative score, high below low), or a key seen earlier in the file.
A file is rejected as a whole when its header fits no schema, it holds no valid row, or too many
of its rows are bad; it is then copied to quarantine with its reasons, marked as rejected so that
later runs skip it, and the job fails with a one-line reason.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from pronostico.core import layout, storage
from pronostico.core.layout import rejected_marker, run_data_uri, run_quarantine_uri, run_report_uri
from pronostico.core.usecases.base import MAX_TEXT_LENGTH, ColumnSpec, RawSchema, UseCase

LOG = logging.getLogger(__name__)
HEADER_PROBE_BYTES = 64 * 1024
DEFAULT_MAX_BAD_FRACTION = 0.05
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


class FileRejected(Exception):
    """A raw file that cannot be used at all; the message is the one-line reason."""


@dataclass
class FileReport:
    uri: str
    etag: str
    size: int
    schema: str = ""
    rows_read: int = 0
    rows_kept: int = 0
    rows_quarantined: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    rejected: str = ""


@dataclass
class ConvertReport:
    run_id: str
    use_case: str
    output_uri: str
    quarantine_uri: str
    files: list[FileReport]
    rows_merged_duplicates: int = 0
    rows_kept: int = 0
    date_range: tuple[str, str] = ("", "")
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def rows_read(self) -> int:
        return sum(f.rows_read for f in self.files)

    @property
    def rows_quarantined(self) -> int:
        return sum(f.rows_quarantined for f in self.files)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(rows_read=self.rows_read, rows_quarantined=self.rows_quarantined)
        return data


def detect_schema(use_case: UseCase, uri: str) -> tuple[RawSchema, list[str]]:
    """The schema whose columns the file's header holds, or FileRejected with what is wrong."""
    head = storage.read_head(uri, HEADER_PROBE_BYTES)
    if not head.strip():
        raise FileRejected("empty file")
    if b"\n" not in head and len(head) == HEADER_PROBE_BYTES:
        raise FileRejected(f"no header line in the first {HEADER_PROBE_BYTES // 1024} KiB")
    if b"\x00" in head:
        raise FileRejected("binary content: not a CSV text file")
    line = head.split(b"\n", 1)[0].decode("utf-8", errors="replace").lstrip("\ufeff").rstrip("\r")
    header = [h.strip().strip('"') for h in line.split(",")]
    for schema in use_case.schemas:
        if schema.matches(header):
            return schema, header
    closest = min(use_case.schemas, key=lambda s: len(s.missing(header)))
    raise FileRejected(
        f"wrong header: no {use_case.name} schema fits; closest is {closest.name}, "
        f"missing {', '.join(closest.missing(header))}")


def raw_inputs(raw_uri: str, use_case: str) -> list[storage.ObjectInfo]:
    """Every CSV under raw/<use_case>/, sorted by key."""
    return storage.list_objects(layout.raw_prefix(raw_uri, use_case), suffix=".csv")


def is_rejected(quarantine_uri: str, etag: str) -> bool:
    return storage.exists(rejected_marker(quarantine_uri, etag))


def training_inputs(raw_uri: str, quarantine_uri: str, use_case: str) -> list[storage.ObjectInfo]:
    """The raw CSVs a run trains on: the use case's, except those an earlier run rejected.

    Generated demo data (under raw/<use_case>/synthetic/) counts only while it is all there is: once a user's own
    file is there, a model trained on it must not learn from made-up rows too.
    """
    objects = raw_inputs(raw_uri, use_case)
    synthetic = [info for info in objects if layout.is_synthetic(raw_uri, use_case, info.uri)]
    if synthetic and len(synthetic) < len(objects):
        LOG.info("%s: leaving out %d synthetic demo file(s) because real data is there: %s", use_case,
                 len(synthetic), ", ".join(info.key.rsplit("/", 1)[-1] for info in synthetic))
        objects = [info for info in objects if info not in synthetic]
    return [info for info in objects if not is_rejected(quarantine_uri, info.etag)]


def preflight(use_case: UseCase, uri: str, quarantine_uri: str, run_id: str) -> str:
    """The cheap checks, without Spark, before any compute starts: the file's header must fit a schema.

    Returns the schema's name. A file that fails is quarantined and marked rejected, like one the
    convert step rejects, and FileRejected says why in one line.
    """
    info = storage.stat(uri)
    try:
        return detect_schema(use_case, uri)[0].name
    except FileRejected as rejection:
        report = FileReport(uri, info.etag, info.size, rejected=str(rejection))
        run_quarantine = run_quarantine_uri(quarantine_uri, run_id)
        _quarantine_file(uri, report, run_quarantine, quarantine_uri, run_id)
        storage.write_json(storage.join(run_quarantine, "reasons.json"),
                           {"run_id": run_id, "use_case": use_case.name, "files": [asdict(report)]})
        raise FileRejected(f"{uri}: {rejection}") from None


def convert(spark: Any, use_case: UseCase, input_uris: list[str], output_uri: str, quarantine_uri: str,
            run_id: str, max_bad_fraction: float = DEFAULT_MAX_BAD_FRACTION) -> ConvertReport:
    data_uri, report_uri = run_data_uri(output_uri, run_id), run_report_uri(output_uri, run_id)
    run_quarantine = run_quarantine_uri(quarantine_uri, run_id)
    storage.delete_prefix(run_quarantine)  # a re-run starts from a clean quarantine
    report = ConvertReport(run_id, use_case.name, data_uri, run_quarantine, [])
    frames = []
    for uri in input_uris:
        info = storage.stat(uri)
        file_report = FileReport(uri, info.etag, info.size)
        report.files.append(file_report)
        try:
            frames.append(_validate_file(spark, use_case, uri, file_report, run_quarantine, max_bad_fraction))
        except FileRejected as rejection:
            file_report.rejected = str(rejection)
            _quarantine_file(uri, file_report, run_quarantine, quarantine_uri, run_id)
            _write_reasons(report, run_quarantine)
            raise FileRejected(f"{uri}: {rejection}") from None
    canonical = _merge_sources(use_case, frames, report)
    _write_dataset(canonical, use_case, data_uri, report)
    _write_reasons(report, run_quarantine)
    storage.write_json(report_uri, report.as_dict())
    return report


def _validate_file(spark: Any, use_case: UseCase, uri: str, file_report: FileReport,
                   run_quarantine: str, max_bad_fraction: float) -> Any:
    from pyspark.sql import functions as F

    schema, header = detect_schema(use_case, uri)
    file_report.schema = schema.name
    raw = _read_strings(spark, uri, header)
    checked = _with_reasons(use_case, schema, raw).cache()
    counts = _reason_counts(checked)
    file_report.rows_read = counts.pop("__rows__", 0)
    file_report.rows_quarantined = counts.pop("__bad__", 0)
    file_report.rows_kept = file_report.rows_read - file_report.rows_quarantined
    file_report.reasons = dict(counts.most_common())
    if file_report.rows_read == 0:
        raise FileRejected("no data rows: the file holds a header only")
    if file_report.rows_kept == 0:
        raise FileRejected(f"no valid row among {file_report.rows_read}; {_top_reasons(counts)}")
    bad_fraction = file_report.rows_quarantined / file_report.rows_read
    if bad_fraction > max_bad_fraction:
        raise FileRejected(
            f"{file_report.rows_quarantined} of {file_report.rows_read} rows are bad "
            f"({bad_fraction:.1%}, over the {max_bad_fraction:.0%} limit); {_top_reasons(counts)}")
    if file_report.rows_quarantined:
        bad_rows = checked.filter(F.col("_reason") != "").select(
            *[F.col(f"`{h}__raw`").alias(h) for h in header], "_row_id", "_reason")
        bad_rows.coalesce(1).write.mode("overwrite").option("header", True).csv(
            storage.join(run_quarantine, "rows", storage.safe_name(uri.rsplit("/", 1)[-1].removesuffix(".csv"))))
    good = checked.filter(F.col("_reason") == "")
    return _canonical(use_case, schema, good).withColumn("_priority", F.lit(schema.priority))


def _read_strings(spark: Any, uri: str, header: list[str]) -> Any:
    """Every column as text under `<name>__raw`, so that a bad value becomes a reason, not a null."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType, StructField, StructType

    fields = [StructField(f"{name}__raw", StringType()) for name in header]
    fields.append(StructField("_corrupt", StringType()))
    frame = spark.read.csv(uri, schema=StructType(fields), header=True, mode="PERMISSIVE",
                           columnNameOfCorruptRecord="_corrupt", enforceSchema=True, encoding="UTF-8")
    return frame.withColumn("_row_id", F.monotonically_increasing_id())


def _raw(name: str) -> Any:
    from pyspark.sql import functions as F

    return F.trim(F.col(f"`{name}__raw`"))


def _typed(spec: ColumnSpec) -> Any:
    from pyspark.sql import functions as F

    text = _raw(spec.name)
    if spec.kind == "date":
        return F.to_date(text, spec.date_format)
    if spec.kind == "bool":
        upper = F.upper(text)
        return (F.when(upper.isin("TRUE", "YES", "T", "Y", "1"), F.lit(True))
                .when(upper.isin("FALSE", "NO", "F", "N", "0"), F.lit(False)))
    if spec.kind == "string":
        return text
    return text.cast(spec.kind)


def _column_reasons(spec: ColumnSpec) -> list[tuple[str, Any]]:
    from pyspark.sql import functions as F

    raw, value = _raw(spec.name), F.col(f"`{spec.name}`")
    blank = raw.isNull() | (raw == "")
    reasons = [(f"bad_{spec.kind}:{spec.name}", ~blank & value.isNull())]
    if spec.required:
        reasons.append((f"missing:{spec.name}", blank))
    if spec.kind == "string":
        reasons += [
            (f"invalid_encoding:{spec.name}", F.instr(raw, "\ufffd") > 0),
            (f"formula_injection:{spec.name}", F.substring(raw, 1, 1).isin(*FORMULA_PREFIXES)),
            (f"too_long:{spec.name}", F.length(raw) > MAX_TEXT_LENGTH),
        ]
    if spec.kind == "date":
        reasons += [
            (f"future_date:{spec.name}", value > F.date_add(F.current_date(), 1)),
            (f"implausible_date:{spec.name}", value < F.lit("1850-01-01").cast("date")),
        ]
    return reasons


def _with_reasons(use_case: UseCase, schema: RawSchema, raw: Any) -> Any:
    """Typed columns under their own names, and `_reasons` / `_reason` for every bad row."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    typed = raw.select("*", *[_typed(spec).alias(spec.name) for spec in schema.columns])
    reasons = [("malformed_line", F.col("_corrupt").isNotNull())]
    for spec in schema.columns:
        reasons += _column_reasons(spec)
    reasons += [(name, F.coalesce(F.expr(rule), F.lit(False))) for name, rule in schema.checks]
    flagged = typed.withColumn(
        "_reasons", F.array_compact(F.array(*[F.when(cond, F.lit(name)) for name, cond in reasons])))
    # among clean rows, a key seen earlier in the file makes a duplicate
    canonical = dict(schema.canonical)
    key = [_canonical_column(use_case, column, canonical[column]) for column in use_case.key_columns]
    clean = F.size("_reasons") == 0
    earlier = Window.partitionBy(clean, *key).orderBy("_row_id")
    duplicate = clean & (F.row_number().over(earlier) > 1)
    flagged = flagged.withColumn(
        "_reasons", F.when(duplicate, F.array(F.lit("duplicate_row"))).otherwise(F.col("_reasons")))
    return flagged.withColumn("_reason", F.concat_ws(";", "_reasons"))


def _reason_counts(checked: Any) -> Counter:
    from pyspark.sql import functions as F

    totals = checked.agg(F.count(F.lit(1)).alias("rows"),
                         F.sum(F.when(F.col("_reason") != "", 1).otherwise(0)).alias("bad")).first()
    counts: Counter = Counter({"__rows__": int(totals["rows"]), "__bad__": int(totals["bad"] or 0)})
    exploded = checked.select(F.explode("_reasons").alias("reason")).groupBy("reason").count()
    for row in exploded.collect():
        counts[row["reason"]] = int(row["count"])
    return counts


def _top_reasons(counts: Counter) -> str:
    top = [(r, n) for r, n in counts.most_common() if not r.startswith("__")][:3]
    return "top reasons: " + ", ".join(f"{r} x{n}" for r, n in top) if top else "no reasons recorded"


def _canonical(use_case: UseCase, schema: RawSchema, good: Any) -> Any:
    """Select the canonical columns from typed values, with entity names normalised."""
    from pyspark.sql import functions as F

    columns = [_canonical_column(use_case, name, expression).alias(name) for name, expression in schema.canonical]
    canonical = good.select(*columns).withColumn("source", F.lit(schema.name))
    return canonical.withColumn(use_case.partition_column, F.expr(use_case.partition_expr))


def _canonical_column(use_case: UseCase, name: str, expression: str) -> Any:
    """A canonical column from the typed ones, entity names normalised (`USA` and `United States` are one key)."""
    from pyspark.sql import functions as F

    column = F.expr(expression).cast(use_case.canonical_types[name])
    if name in use_case.entity_columns and use_case.aliases:
        mapping = F.create_map(*[F.lit(x) for pair in use_case.aliases.items() for x in pair])
        column = F.coalesce(mapping[column], column)
    return column


def _merge_sources(use_case: UseCase, frames: list[Any], report: ConvertReport) -> Any:
    """One row per key across files: the richer schema wins, then the earlier file."""
    from functools import reduce

    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if len(frames) == 1:  # validation already made the file's keys unique: nothing to rank, no shuffle to pay
        return frames[0].drop("_priority")
    tagged = [frame.withColumn("_file", F.lit(i)) for i, frame in enumerate(frames)]
    union = reduce(lambda a, b: a.unionByName(b), tagged)
    rank = Window.partitionBy(*use_case.key_columns).orderBy(F.desc("_priority"), "_file")
    merged = union.withColumn("_rank", F.row_number().over(rank)).filter("_rank = 1").drop("_rank")
    if use_case.near_duplicate_days and use_case.near_duplicate_pair:
        merged = _drop_near_duplicates(merged, use_case.near_duplicate_pair, use_case.near_duplicate_days)
    return merged.drop("_priority", "_file")


def _drop_near_duplicates(frame: Any, columns: tuple[str, str], days: int) -> Any:
    """Drop a lower-priority row when a higher one has the same pair of names (either order) within `days`."""
    from pyspark.sql import functions as F

    pair = F.concat_ws("|", F.least(*columns), F.greatest(*columns))
    keyed = frame.withColumn("_pair", pair)
    better = keyed.select(F.col("_pair").alias("_p"), F.col("date").alias("_d"),
                          F.col("_priority").alias("_pr"))
    shadowed = keyed.join(
        better,
        (keyed["_pair"] == better["_p"]) & (better["_pr"] > keyed["_priority"])
        & (F.abs(F.datediff(keyed["date"], better["_d"])) <= days),
        "left_semi")
    return keyed.join(shadowed.select("_pair", "date", "_priority"),
                      ["_pair", "date", "_priority"], "left_anti").drop("_pair")


def _write_dataset(canonical: Any, use_case: UseCase, data_uri: str, report: ConvertReport) -> None:
    from pyspark.sql import functions as F

    (canonical.repartition(use_case.partition_column)
     .write.mode("overwrite").partitionBy(use_case.partition_column).parquet(data_uri))
    # counted on the written parquet (one column, no CSV parsing again) rather than caching every merged row
    written = canonical.sparkSession.read.parquet(data_uri)
    stats = written.agg(F.count(F.lit(1)).alias("rows"), F.min("date").alias("first"),
                        F.max("date").alias("last")).first()
    report.rows_kept = int(stats["rows"])
    report.rows_merged_duplicates = sum(f.rows_kept for f in report.files) - report.rows_kept
    report.date_range = (str(stats["first"]), str(stats["last"]))


def _quarantine_file(uri: str, file_report: FileReport, run_quarantine: str, quarantine_uri: str,
                     run_id: str) -> None:
    name = uri.rstrip("/").rsplit("/", 1)[-1]
    storage.copy(uri, storage.join(run_quarantine, "files", name))
    storage.write_json(rejected_marker(quarantine_uri, file_report.etag),
                       {"uri": uri, "etag": file_report.etag, "run_id": run_id,
                        "reason": file_report.rejected})


def _write_reasons(report: ConvertReport, run_quarantine: str) -> None:
    if any(f.rows_quarantined or f.rejected for f in report.files):
        storage.write_text(storage.join(run_quarantine, "reasons.json"),
                           json.dumps(report.as_dict(), indent=2, default=str) + "\n")
