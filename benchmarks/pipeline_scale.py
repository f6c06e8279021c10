"""Pipeline: the two Spark steps at growing sizes, as rows per second per stage, beside a pyarrow-only conversion.

The steps run exactly as the local backend runs them (spark-submit of emr_scripts/, local mode), on synthetic matches
scaled up. The anchor converts the same CSV to parquet with pyarrow alone: no JVM, no validation, one process.
Training uses one fixed, small configuration at every size so that sizes compare; the default grid's time on the
real file is in the freshness and pipeline figures of docs/BENCHMARKS.md.
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pronostico.core import storage
from pronostico.core.config import Settings, load_settings
from pronostico.local.synthetic import synthetic_matches
from pronostico.pipeline.steps import pipeline_steps, run_step_locally

BENCH_TRAIN = '{"num_trees": 30, "max_depth": [8], "min_instances_per_node": [20], "folds": 2}'
SIZES = (24_000, 1_000_000, 5_000_000)


@dataclass
class SizeResult:
    rows: int
    csv_mb: float
    pyarrow_seconds: list[float] = field(default_factory=list)
    convert_seconds: list[float] = field(default_factory=list)
    train_seconds: list[float] = field(default_factory=list)
    train_stages: list[dict[str, float]] = field(default_factory=list)


def synthetic_csv(rows: int, folder: Path) -> Path:
    """The synthetic matches file of this size, made once and kept under the bench folder."""
    path = folder / f"matches_{rows}.csv"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        start = "1993-01-01" if rows <= 50_000 else "1872-01-01"  # many more matches need many more days
        synthetic_matches(rows, seed=1, start=start).to_csv(path, index=False)
    return path


def pyarrow_convert(csv: Path, out: Path) -> float:
    """CSV to parquet partitioned by year with pyarrow alone: the single-machine anchor."""
    import pyarrow.compute as pc
    import pyarrow.csv as pv
    import pyarrow.dataset as ds

    started = time.perf_counter()
    table = pv.read_csv(csv)
    dates = pc.strptime(table["date"], format="%d/%m/%Y", unit="s")
    table = table.set_column(0, "date", pc.cast(dates, "date32")).append_column("year", pc.year(dates))
    ds.write_dataset(table, out, format="parquet", partitioning=["year"], existing_data_behavior="delete_matching")
    return time.perf_counter() - started


def run_steps(settings: Settings, csv: Path, run_id: str) -> tuple[float, float, dict[str, float]]:
    """(convert seconds, train seconds, train stage seconds) through spark-submit, as the local backend runs them."""
    convert, train = pipeline_steps(settings, "matchups", [storage.to_uri(csv)], run_id, BENCH_TRAIN)
    log_dir = settings.logs_dir / "bench" / run_id
    started = time.perf_counter()
    run_step_locally(convert, settings, log_dir)
    converted = time.perf_counter()
    result = run_step_locally(train, settings, log_dir)
    trained = time.perf_counter()
    manifest = storage.read_json(storage.join(result["uri"], "manifest.json"))
    return converted - started, trained - converted, manifest["stage_seconds"]


def measure(sizes: tuple[int, ...], repeats: int, home: Path) -> list[SizeResult]:
    settings = load_settings({**os.environ, "PRONOSTICO_HOME": str(home)})
    results = []
    for rows in sizes:
        csv = synthetic_csv(rows, home / "data")
        result = SizeResult(rows, csv.stat().st_size / 2**20)
        for attempt in range(repeats if rows <= 1_000_000 else 1):
            result.pyarrow_seconds.append(pyarrow_convert(csv, home / "pyarrow" / str(rows)))
            convert, train, stages = run_steps(settings, csv, f"bench-{rows}-{attempt}")
            result.convert_seconds.append(convert)
            result.train_seconds.append(train)
            result.train_stages.append(stages)
        results.append(result)
    return results


def median_stages(result: SizeResult) -> dict[str, float]:
    names = result.train_stages[0]
    return {name: statistics.median(s[name] for s in result.train_stages) for name in names}


def table(results: list[SizeResult]) -> str:
    from benchmarks.report import markdown_table

    rows = []
    for r in results:
        arrow, convert, train = (statistics.median(x) for x in (r.pyarrow_seconds, r.convert_seconds, r.train_seconds))
        stages = median_stages(r)
        rows.append([f"{r.rows:,}", f"{r.csv_mb:.0f}", f"{r.rows / arrow:,.0f} ({arrow:.1f} s)",
                     f"{r.rows / convert:,.0f} ({convert:.1f} s)", f"{convert / arrow:.0f}x", f"{train:.1f}",
                     f"{r.rows / stages['features']:,.0f}", f"{r.rows / stages['tune_and_fit']:,.0f}",
                     f"{stages['entity_snapshot']:.1f}", len(r.convert_seconds)])
    return markdown_table(["rows", "CSV MB", "pyarrow CSV→parquet (rows/s)", "Spark convert (rows/s)", "ratio",
                           "train total (s)", "features (rows/s)", "tune and fit (rows/s)", "snapshot (s)", "runs"],
                          rows)


def growth(results: list[SizeResult]) -> dict[str, Any]:
    """Seconds per extra million rows between the smallest and largest size: the marginal cost of each stage."""
    small, large = results[0], results[-1]
    extra = (large.rows - small.rows) / 1e6

    def slope(values: list[float], base: list[float]) -> float:
        return (statistics.median(values) - statistics.median(base)) / extra

    return {"convert_s_per_million": slope(large.convert_seconds, small.convert_seconds),
            "train_s_per_million": slope(large.train_seconds, small.train_seconds),
            "pyarrow_s_per_million": slope(large.pyarrow_seconds, small.pyarrow_seconds),
            "convert_fixed_s": statistics.median(small.convert_seconds)}


def section(repeats: int = 3) -> str:
    """24k and 1M rows `repeats` times, 5M once (a quarter of an hour a run); BENCH_PIPELINE_SIZES overrides."""
    from benchmarks.models import bench_settings

    sizes = tuple(int(n) for n in os.environ.get("BENCH_PIPELINE_SIZES", ",".join(map(str, SIZES))).split(","))
    results = measure(sizes, repeats, bench_settings("pipeline").home)
    slopes = growth(results)
    ratios = [statistics.median(r.convert_seconds) / statistics.median(r.pyarrow_seconds) for r in results]
    return f"""## Pipeline: the Spark steps from 24k to 5M rows

`make bench ONLY=pipeline` (`python -m benchmarks pipeline`). Synthetic matches (`pronostico.local.synthetic`, the demo
generator scaled up) in one CSV; each size runs the two steps exactly as the local backend does (`spark-submit` of
`emr_scripts/convert_csv_to_parquet.py` then `emr_scripts/train_model.py`, `local[2]`, driver memory 4g), with one
fixed small training configuration (`{BENCH_TRAIN}`) so that sizes compare. The anchor is pyarrow alone converting the
same CSV to parquet partitioned by year, in one process with no validation, measured in the same run before each
Spark conversion. Sizes up to 1M run {repeats} times (medians); 5M runs once. Rows per second per stage:

{table(results)}

How cost grows: past the fixed start-up cost (convert at {results[0].rows:,} rows: {slopes['convert_fixed_s']:.0f} s,
mostly the JVM and Spark's planning), conversion costs {slopes['convert_s_per_million']:.0f} s per extra million rows
against pyarrow's {slopes['pyarrow_s_per_million']:.1f} s, and training {slopes['train_s_per_million']:.0f} s per
extra million. Spark's conversion is {ratios[0]:.0f}x pyarrow's time at the smallest size and {ratios[-1]:.0f}x at the
largest: it validates every value, records reasons, deduplicates and quarantines, where the anchor only parses. The
feature stage replays each history in date order (Elo is sequential by nature), so it is the one stage that does not
spread over cores; on EMR it spreads over the use case's groups.

What this benchmark made us fix: the first 5M-row run converted in 327 s against 41 s at 1M, worse than linear.
A single file went through a merge window (a full sort of every row) that it cannot need, since validation already
makes a file's keys unique, and the merged rows were cached only to count them. Both are gone (commit `1618105`:
no merge for one file, counts read back from the written parquet), and the conversion is now below linear in the
rows. Those earlier figures come from a separate run, not side by side with these.
"""
