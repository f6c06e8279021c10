"""The Spark session the step scripts use, on EMR (YARN) and in local mode alike."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pronostico.core.config import Settings, load_settings


def session_config(settings: Settings) -> dict[str, str]:
    """The Spark SQL settings every step relies on.

    Time parsing is strict so that an unparseable date becomes null (and a quarantine reason) instead of an
    exception, and ANSI mode is off so that a bad cast is null rather than a failed job.
    """
    return {
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.legacy.timeParserPolicy": "CORRECTED",
        "spark.sql.ansi.enabled": "false",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.sources.partitionOverwriteMode": "static",
        "spark.sql.shuffle.partitions": str(settings.spark_shuffle_partitions),
    }


def spark_session(app_name: str, settings: Settings | None = None) -> Any:
    """A session with `session_config`; spark-submit decides the master (local[*] here, YARN on EMR)."""
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name)
    for key, value in session_config(settings or load_settings()).items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


@contextmanager
def step_session(app_name: str) -> Iterator[Any]:
    """A step script's session, stopped when the step ends, unless a launcher that runs several steps in one JVM
    (`pronostico.pipeline.launcher`) started it: then it is that launcher's, and lives on for the next step."""
    from pyspark.sql import SparkSession

    borrowed = SparkSession.getActiveSession() is not None
    spark = spark_session(app_name)
    try:
        yield spark
    finally:
        if not borrowed:
            spark.stop()
