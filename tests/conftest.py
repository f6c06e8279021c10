"""Fixtures shared by every test level: settings on a private home, the shared data, Spark."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pronostico.core.config import Settings, load_settings

pytest_plugins = ["tests.fixtures.pipelines", "tests.fixtures.tiny_models", "tests.tiers"]


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings whose every bucket and file lives under this test's own PRONOSTICO_HOME."""
    monkeypatch.setenv("PRONOSTICO_HOME", str(tmp_path / "home"))
    return load_settings()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data; absent, the test skips, or fails where REQUIRE_SHARED_DATA=1 (CI)."""
    path = load_settings().shared_data
    if not (path / "matchups").is_dir():
        if os.environ.get("REQUIRE_SHARED_DATA") == "1":
            pytest.fail(f"REQUIRE_SHARED_DATA=1 but {path} is missing")
        pytest.skip(f"{path} is absent")
    return path


@pytest.fixture(scope="session")
def spark() -> Iterator[object]:
    """One local Spark session for the whole run (starting a JVM costs seconds)."""
    from pyspark import SparkContext

    from pronostico.pipeline.spark import spark_session

    os.environ.setdefault("PRONOSTICO_SHUFFLE_PARTITIONS", "4")
    session = spark_session("pronostico-tests")
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
    # stop() leaves py4j's gateway open, and py4j logs at INFO from the __del__ of each connection it still holds at
    # exit, after pytest has closed the captured streams that a test's logging setup (Airflow's) writes to: each
    # such log is a "Logging error" traceback after the summary. Close the gateway while the streams are open, and
    # keep py4j quiet about any connection object that is only collected at exit.
    SparkContext._gateway.shutdown()
    logging.getLogger("py4j").setLevel(logging.WARNING)


@pytest.fixture
def reliability() -> Callable[[str, str], None]:
    """Saves a fault test's figures as its section of docs/RELIABILITY.md: `reliability(name, markdown)`."""
    from benchmarks.report import save_section

    return lambda name, markdown: save_section("reliability", name, markdown)
