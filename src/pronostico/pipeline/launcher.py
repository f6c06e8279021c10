"""The local backend's spark-submit entry point: several step scripts in one JVM, on one Spark session.

    spark-submit launcher.py '[["convert_csv_to_parquet", "convert_csv_to_parquet.py", [args...]], ...]'

Each step is an `emr_scripts/` script, called through its own `main(argv)` exactly as spark-submit would call it,
after a `PRONOSTICO_STEP <name>` line on stdout that tells `steps.run_steps_locally` whose result line follows.
The first step that returns non-zero ends the run with its exit code. The scripts take their session from
`spark.step_session`, which leaves this launcher's session running between steps: a JVM and a SparkContext cost
seconds each, which is most of a small run.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from types import ModuleType

from pronostico.core.config import PROJECT_ROOT
from pronostico.pipeline.spark import spark_session

SCRIPTS_DIR = PROJECT_ROOT / "emr_scripts"
STEP_PREFIX = "PRONOSTICO_STEP "


def load_script(script: str) -> ModuleType:
    path = SCRIPTS_DIR / script
    spec = importlib.util.spec_from_file_location(path.stem, path)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"no step script {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str]) -> int:
    steps = json.loads(argv[0])
    spark = spark_session("pronostico-local-steps")
    try:
        for name, script, args in steps:
            print(f"{STEP_PREFIX}{name}", flush=True)
            print(f"{STEP_PREFIX}{name}", file=sys.stderr, flush=True)
            status = load_script(script).main(list(args))
            if status:
                return int(status)
            spark.catalog.clearCache()  # a step's cached frames are no use to the next
    finally:
        spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
