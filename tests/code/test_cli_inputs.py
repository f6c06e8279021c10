"""`pronostico pipeline run --input` takes a file or a folder of CSVs, and names a bad path in one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pronostico.local.cli import input_uris


def test_a_folder_is_every_csv_in_it_sorted(tmp_path: Path) -> None:
    for name in ("b.csv", "a.csv", "notes.txt"):
        (tmp_path / name).write_text("x\n")
    assert input_uris(str(tmp_path)) == [(tmp_path / "a.csv").as_uri(), (tmp_path / "b.csv").as_uri()]
    assert input_uris(str(tmp_path / "b.csv")) == [(tmp_path / "b.csv").as_uri()]
    assert input_uris("s3://bucket/assets/x.csv") == ["s3://bucket/assets/x.csv"]


def run_pipeline(*inputs: str, home: Path) -> subprocess.CompletedProcess:
    arguments = [a for i in inputs for a in ("--input", i)]
    return subprocess.run([sys.executable, "-m", "pronostico.local.cli", "pipeline", "run", "--use-case", "assets",
                           *arguments], capture_output=True, text=True, timeout=120, check=False,
                          env={"PATH": "/usr/bin:/bin", "PRONOSTICO_HOME": str(home)})


def test_an_unusable_path_fails_in_one_line_before_spark_starts(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    for given, reason in ((tmp_path / "empty", "no *.csv files in the folder"),
                          (tmp_path / "missing.csv", "no such file or folder")):
        done = run_pipeline(str(given), home=tmp_path / "home")
        assert done.returncode == 1
        assert done.stderr.strip().splitlines() == [f"error: {reason}: {given}"]
