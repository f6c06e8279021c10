"""The tiers' markers tell the truth: tests/tiers.py fails a test that starts Spark, Airflow or a browser unmarked.

Each case runs a small suite of its own in a pytest subprocess (pytester) with the plugin loaded, as tests/conftest.py
loads it. The fake programs are shell scripts named like the real ones: the plugin judges what a test starts by the
process it creates, so a stand-in named `spark-submit` must be caught the same way pyspark's launcher is.
"""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from pronostico.core.config import PROJECT_ROOT

pytest_plugins = ["pytester"]


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    """Runs a test file's text in a pytest subprocess that loads tests/tiers.py, and returns the result."""
    monkeypatch.setenv("PYTHONPATH", str(PROJECT_ROOT))

    def run(text: str) -> pytest.RunResult:
        pytester.makepyfile(test_suite=text)
        return pytester.runpytest_subprocess("-p", "tests.tiers", "-p", "no:cacheprovider", "-rA")

    return run


def fake_program(folder: Path, name: str) -> str:
    path = folder / "bin" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


PROGRAMS = {"spark": "spark-submit", "airflow": "airflow", "browser": "chromium"}


def test_a_process_started_without_its_marker_fails_the_test(suite, pytester):
    fakes = {marker: fake_program(pytester.path, program) for marker, program in PROGRAMS.items()}
    cases = "".join(f"""

def test_{marker}_unmarked():
    subprocess.run([{fake!r}, "--version"], check=True)


@pytest.mark.{marker}
def test_{marker}_marked():
    subprocess.run([{fake!r}, "--version"], check=True)
""" for marker, fake in fakes.items())
    result = suite(f"""
import subprocess
import pytest


def test_other_processes_are_no_concern():
    subprocess.run(["true"], check=True)


@pytest.fixture(scope="session")
def scheduler():
    subprocess.run([{fakes["airflow"]!r}, "db", "migrate"], check=True)


def test_first_user_of_a_session_fixture(scheduler):
    pass


def test_second_user_of_a_session_fixture(scheduler):
    pass
{cases}""")
    # the session fixture starts Airflow once, in the first user's setup: that test fails (not errors)
    result.assert_outcomes(passed=5, failed=4)
    for marker, fake in fakes.items():
        result.stdout.fnmatch_lines([f"*test_{marker}_unmarked started {marker} without the marker*",
                                     f"*{marker}: {fake} --version*"])
    failed = sorted(line.split("::")[1].split()[0] for line in result.outlines if line.startswith("FAILED"))
    assert failed == ["test_airflow_unmarked", "test_browser_unmarked", "test_first_user_of_a_session_fixture",
                      "test_spark_unmarked"]


def test_the_known_session_fixtures_mark_their_users(pytester):
    pytester.makeconftest("""
import pytest

pytest_plugins = ["tests.tiers"]


@pytest.fixture(scope="session")
def trained_models():
    return "file:///nowhere"


@pytest.fixture
def app(trained_models):
    return trained_models
""")
    pytester.makepyfile(test_suite="def test_page(app):\n    pass\n\ndef test_unit():\n    pass\n")
    items, _ = pytester.inline_genitems()
    marked = {item.name: item.get_closest_marker("spark") is not None for item in items}
    assert marked == {"test_page": True, "test_unit": False}  # through app, a fixture of a fixture


@pytest.mark.spark
@pytest.mark.slow
def test_real_spark_started_unmarked_fails_and_marked_passes(suite):
    """pyspark's own launch (spark-submit, then its JVM) and a new SparkContext on a gateway already up are both
    caught; the marked test between them passes."""
    result = suite("""
import pytest

from pyspark.sql import SparkSession


def count_rows():
    # no UI: its port 4040 may be another session's
    spark = (SparkSession.builder.master("local[1]").appName("tiers-proof").config("spark.ui.enabled", "false")
             .getOrCreate())
    try:
        return spark.range(3).count()
    finally:
        spark.stop()


def test_a_unmarked_starts_the_jvm():
    assert count_rows() == 3


@pytest.mark.spark
def test_b_marked():
    assert count_rows() == 3


def test_c_unmarked_on_the_running_gateway():
    assert count_rows() == 3
""")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(["*test_a_unmarked_starts_the_jvm started spark without the marker*",
                                 "*spark: */pyspark/./bin/spark-submit --conf *"])
    result.stdout.fnmatch_lines(["*test_c_unmarked_on_the_running_gateway started spark without the marker*",
                                 "*spark: SparkContext.__init__*"])
    result.stdout.fnmatch_lines(["PASSED test_suite.py::test_b_marked*"])
