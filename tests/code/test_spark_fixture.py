"""The test suite's Spark session ends cleanly: nothing of it is left to log once pytest has closed its streams."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pronostico.core.config import PROJECT_ROOT

pytestmark = [pytest.mark.spark, pytest.mark.slow]

TINY_SUITE = '''
import logging
import sys


def test_spark_answers(spark):
    assert spark.range(3).count() == 3


def test_a_library_configures_logging():
    # what importing Airflow in a test does: a root handler at INFO on the stdout that pytest captures
    logging.getLogger().addHandler(logging.StreamHandler(sys.stdout))
    logging.getLogger().setLevel(logging.INFO)
'''


def test_a_run_that_used_spark_ends_without_logging_errors(tmp_path: Path) -> None:
    suite = tmp_path / "test_tiny_spark.py"
    suite.write_text(TINY_SUITE)
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.conftest",
                           "--rootdir", str(tmp_path), str(suite)],
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout
    assert "Logging error" not in done.stderr + done.stdout, done.stderr
