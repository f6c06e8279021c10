"""Fault test: a corpus of malformed uploads through the real convert step, with a model already serving.

Each corpus file is a real asset file (SPY.csv) broken one way. The convert step is the real
`emr_scripts/convert_csv_to_parquet.py` (its `main`, with its exit code and its `REJECTED:` line), run in this
process on the session's one Spark session so that the corpus stays well under two minutes. Each file must either
be rejected whole (exit 1, the file copied to quarantine with a reasons file and marked rejected) or have exactly
its bad rows dropped to quarantine with a reason each; the serving model's current.json must not change.
tests/data/test_broken_files.py checks the reasons themselves on hand-made rows; this is the upload-shaped corpus.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from pronostico.core import storage
from pronostico.core.config import Settings
from pronostico.core.layout import rejected_marker
from pronostico.core.registry import current_uri, promote_candidate, read_current
from pronostico.pipeline.launcher import SCRIPTS_DIR
from pronostico.pipeline.steps import pipeline_steps, quarantine_uri
from tests.code.test_registry import GOOD, make_version

pytestmark = [pytest.mark.spark, pytest.mark.chaos]
FORMULA = "=cmd|' /C calc'!A0"
GOOD_ROWS = 600  # the real rows each corpus file starts from


@dataclass(frozen=True)
class Broken:
    name: str
    content: bytes
    expect: str  # "rejected" or "rows dropped"
    reason: str  # the rejection's words, or the row reason every dropped row must carry
    bad_rows: int = 0


def corpus(spy: bytes) -> list[Broken]:
    header, *rows = spy.decode().splitlines()
    good = "\n".join(rows[:GOOD_ROWS])

    def with_rows(*extra: str) -> bytes:
        return "\n".join([header, good, *extra]).encode() + b"\n"

    last = rows[GOOD_ROWS - 1].split(",")
    return [
        Broken("wrong_header", ("day,ticker,o,h,l,c,v\n" + good).encode(), "rejected", "wrong header"),
        Broken("binary_garbage", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 64, "rejected",
               "binary content"),
        Broken("empty", b"", "rejected", "empty file"),
        Broken("header_only", (header + "\n").encode(), "rejected", "header only"),
        Broken("ten_mb_line", with_rows(f"2024-06-03,{'X' * 10_000_000},1,2,0.5,1.5,100"), "rows dropped",
               "too_long:symbol", 1),
        Broken("formula_injection", with_rows(f"2024-06-03,{FORMULA},1,2,0.5,1.5,100",
                                              "2024-06-04,@SUM(1+1)*cmd|' /C calc'!A0,1,2,0.5,1.5,100"),
               "rows dropped", "formula_injection:symbol", 2),
        # UTF-8 with one Latin-1 line and one Windows-1252 line (curly quotes), as a spreadsheet export can mix
        Broken("mixed_encodings", with_rows() + "2024-06-03,SPY\xe9,1,2,0.5,1.5,100\n".encode("latin-1")
               + "2024-06-04,\u201cSPY\u201d,1,2,0.5,1.5,100\n".encode("cp1252"),
               "rows dropped", "invalid_encoding:symbol", 2),
        Broken("future_dates", with_rows("2099-01-02,SPY,1,2,0.5,1.5,100", "2098-12-31,SPY,1,2,0.5,1.5,100"),
               "rows dropped", "future_date:date", 2),
        Broken("duplicate_rows", with_rows(",".join(last), ",".join(last), rows[10]), "rows dropped",
               "duplicate_row", 3),
    ]


class KeepOpen:
    """The shared Spark session as the script sees it: the script's final `stop()` must not end it for others."""

    def __init__(self, spark: Any) -> None:
        self._spark = spark

    def __getattr__(self, name: str) -> Any:
        return getattr(self._spark, name)

    def stop(self) -> None:
        pass


@pytest.fixture(scope="module")
def convert_script(spark: Any) -> Any:
    spec = importlib.util.spec_from_file_location("convert_csv_to_parquet", SCRIPTS_DIR / "convert_csv_to_parquet.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.spark_session = lambda name: KeepOpen(spark)
    return module


def serving(settings: Settings) -> str:
    """A promoted assets model, as the stack would be serving when the bad upload arrives."""
    version = make_version(settings, "20260101T000000Z-serving", GOOD)
    promote_candidate(settings.models_uri, "assets", version)
    return version


def convert_upload(script: Any, settings: Settings, item: Broken, capsys: pytest.CaptureFixture) -> dict[str, Any]:
    """Upload one corpus file to the raw bucket and run the DAG's convert step on it with its own run id."""
    uri = storage.join(settings.raw_uri, "assets", f"{item.name}.csv")
    storage.write_bytes(uri, item.content)
    run_id = f"chaos-{item.name}"
    convert = next(s for s in pipeline_steps(settings, "assets", [uri], run_id) if s.name == "convert_csv_to_parquet")
    capsys.readouterr()
    code = script.main(list(convert.args))
    output = capsys.readouterr()
    rejected = [line for line in output.err.splitlines() if line.startswith("REJECTED:")]
    result = [json.loads(line.split(" ", 1)[1]) for line in output.out.splitlines()
              if line.startswith("PRONOSTICO_RESULT ")]
    return {"uri": uri, "run_id": run_id, "code": code, "rejected": rejected[-1] if rejected else "",
            "result": result[-1] if result else {}}


def check(settings: Settings, item: Broken, outcome: dict[str, Any]) -> tuple[list[str], str, bool]:
    """(problems, reason shown, quarantined?) for one corpus file."""
    quarantine = storage.join(quarantine_uri(settings, "assets"), storage.safe_name(outcome["run_id"]))
    reasons_uri = storage.join(quarantine, "reasons.json")
    problems = []
    if item.expect == "rejected":
        copied = storage.join(quarantine, "files", f"{item.name}.csv")
        quarantined = (storage.exists(copied) and storage.read_bytes(copied) == item.content
                       and storage.exists(rejected_marker(quarantine_uri(settings, "assets"),
                                                          storage.file_md5(storage.local_path(outcome["uri"])))))
        if outcome["code"] != 1 or item.reason not in outcome["rejected"]:
            problems.append(f"expected exit 1 with {item.reason!r}, got {outcome['code']}: {outcome['rejected']}")
        return problems, outcome["rejected"].split(".csv: ", 1)[-1], quarantined
    rows = _quarantined_rows(quarantine)
    quarantined = storage.exists(reasons_uri) and len(rows) == item.bad_rows
    if outcome["code"] != 0 or outcome["result"].get("rows_quarantined") != item.bad_rows:
        problems.append(f"expected exit 0 with {item.bad_rows} rows dropped, got {outcome}")
    elif len(pd.read_parquet(storage.local_path(outcome["result"]["output"]))) != GOOD_ROWS:
        problems.append(f"the dataset the train step reads does not hold exactly the {GOOD_ROWS} good rows")
    if len(rows) != item.bad_rows or not all(rows["_reason"].str.contains(item.reason, regex=False)):
        problems.append(f"quarantined rows: {rows.to_dict('records') if len(rows) < 5 else len(rows)}")
    return problems, "; ".join(sorted(set(rows["_reason"]))) if len(rows) else "", quarantined


def _quarantined_rows(quarantine: str) -> pd.DataFrame:
    folder = Path(storage.local_path(quarantine)) / "rows"
    parts = sorted(folder.rglob("part-*.csv"))
    frames = [pd.read_csv(p, dtype=str, keep_default_na=False) for p in parts if p.stat().st_size]
    return pd.concat(frames) if frames else pd.DataFrame({"_reason": []})


def test_a_malformed_corpus_is_rejected_or_quarantined_and_the_model_stays(
        convert_script, settings, shared_data, capsys, reliability) -> None:
    version = serving(settings)
    current = Path(storage.local_path(current_uri(settings.models_uri, "assets")))
    before = current.read_bytes()
    table, problems = [], {}
    for item in corpus((shared_data / "assets" / "SPY.csv").read_bytes()):
        outcome = convert_upload(convert_script, settings, item, capsys)
        found, reason, quarantined = check(settings, item, outcome)
        unchanged = current.read_bytes() == before and read_current(settings.models_uri, "assets")["version"] == version
        if not unchanged:
            found.append("current.json changed")
        if found:
            problems[item.name] = found
        table.append([f"`{item.name}`", f"{len(item.content):,} B", item.expect,
                      "rejected (exit 1)" if outcome["code"] == 1 else
                      f"{outcome['result'].get('rows_quarantined')} row(s) dropped (exit 0)",
                      reason.replace("|", "\\|")[:90], "yes" if quarantined else "NO", "yes" if unchanged else "NO"])

    from benchmarks.report import markdown_table

    reliability("malformed_csv", "\n".join([
        "## Malformed CSV uploads",
        "",
        "`make chaos` (or `pytest tests/orchestration/test_malformed_csv.py`): nine broken versions of the real "
        "`SPY.csv` go into the raw bucket of a stack that already serves an assets model; the DAG's convert step "
        "(`emr_scripts/convert_csv_to_parquet.py`, its `main` on one Spark session) runs on each.",
        "",
        markdown_table(["corpus file", "size", "expected", "outcome", "reason", "quarantined?", "model unchanged?"],
                       table),
        "",
        "A file unusable as a whole stops the run before training (exit 1, one-line reason, the file and a "
        "`reasons.json` in quarantine, and a rejected marker so later runs skip it). Otherwise only the bad rows "
        "leave, each with its reason, and only the rest reaches the dataset the train step reads; `current.json` "
        "is byte-identical after every file and still names the serving version.",
    ]))
    assert problems == {}
