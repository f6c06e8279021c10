"""The Spark session the step scripts use, on EMR (YARN) and in local mode alike."""

from __future__ import annotations

import os
import sys
from typing import Any


def spark_session(app_name: str) -> Any:
    """A session with the settings every step relies on.

    spark-submit decides the master (local[*] here, YARN on EMR). Time parsing is strict so
    that an unparseable date becomes null (and a quarantine reason) instead of an exception,
    and ANSI mode is off so that a bad cast is null rather than a failed job.
    """
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = (
        SparkSession.builder.appName(app_name)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.legacy.timeParserPolicy", "CORRECTED")
        .config("spark.sql.ansi.enabled", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.sources.partitionOverwriteMode", "static")
        .config("spark.sql.shuffle.partitions", os.environ.get("PRONOSTICO_SHUFFLE_PARTITIONS", "8"))
    )
    return builder.getOrCreate()
