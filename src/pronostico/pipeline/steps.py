"""The pipeline's steps, defined once, and the local backend that runs them.

`pipeline_steps` is the single list of Spark steps for a run. The local backend runs each
through the `spark-submit` that pyspark ships, in local mode; the EMR backend (dags/) turns
the very same steps into EMR steps with `emr_step`. Only the launcher differs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pronostico.core import layout, storage
from pronostico.core.config import PROJECT_ROOT, Settings
from pronostico.core.usecases import get_use_case

SCRIPTS_DIR = PROJECT_ROOT / "emr_scripts"
RESULT_PREFIX = "PRONOSTICO_RESULT "


@dataclass(frozen=True)
class Step:
    name: str
    script: str  # a file in emr_scripts/
    args: tuple[str, ...]


class StepFailed(RuntimeError):
    def __init__(self, step: Step, reason: str, log_path: Path | None = None) -> None:
        super().__init__(f"{step.name} failed: {reason}")
        self.step = step
        self.reason = reason
        self.log_path = log_path


def dataset_uri(settings: Settings, use_case: str) -> str:
    return layout.dataset_uri(settings.processed_uri, use_case, get_use_case(use_case).dataset)


def quarantine_uri(settings: Settings, use_case: str) -> str:
    return layout.quarantine_uri(settings.processed_uri, use_case)


def pipeline_steps(settings: Settings, use_case: str, input_uris: Sequence[str], run_id: str,
                   train_params: str = "") -> list[Step]:
    data = dataset_uri(settings, use_case)
    inputs = [arg for uri in input_uris for arg in ("--input", uri)]
    convert = Step("convert_csv_to_parquet", "convert_csv_to_parquet.py",
                   ("--use-case", use_case, *inputs, "--output", data,
                    "--quarantine", quarantine_uri(settings, use_case), "--run-id", run_id))
    train_args = ("--use-case", use_case, "--data", data, "--models", settings.models_uri, "--run-id", run_id)
    if train_params:
        train_args += ("--params", train_params)
    return [convert, Step("train_model", "train_model.py", train_args)]


def emr_step(step: Step, code_uri: str, use_case: str) -> dict[str, Any]:
    """The EMR form of a step: spark-submit in cluster mode with the package shipped as a zip."""
    return {
        "Name": f"{use_case}: {step.name}",
        "ActionOnFailure": "CANCEL_AND_WAIT",
        "HadoopJarStep": {
            "Jar": "command-runner.jar",
            "Args": ["spark-submit", "--deploy-mode", "cluster",
                     "--py-files", storage.join(code_uri, layout.PACKAGE_ZIP),
                     storage.join(code_uri, layout.EMR_SCRIPTS, step.script), *step.args],
        },
    }


def spark_submit_command(step: Step, settings: Settings) -> list[str]:
    spark_submit = Path(sys.executable).parent / "spark-submit"
    return [str(spark_submit), "--master", settings.spark_master,
            "--driver-memory", settings.spark_driver_memory,
            "--conf", "spark.ui.enabled=false",
            "--conf", "spark.ui.showConsoleProgress=false",
            "--conf", f"spark.driver.extraJavaOptions=-Djava.io.tmpdir={settings.home / 'tmp'}",
            "--conf", f"spark.local.dir={settings.home / 'tmp' / 'spark'}",
            str(SCRIPTS_DIR / step.script), *step.args]


def run_step_locally(step: Step, settings: Settings, log_dir: Path) -> dict[str, Any]:
    """Run one step through spark-submit; its whole output goes to a log file.

    Returns the step's result line as a dict. Raises StepFailed with the step's own one-line
    reason (its last line on stderr) when it exits non-zero.
    """
    import json

    log_dir.mkdir(parents=True, exist_ok=True)
    (settings.home / "tmp" / "spark").mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{step.name}.log"
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    with log_path.open("w") as log:
        done = subprocess.run(spark_submit_command(step, settings), stdout=subprocess.PIPE,
                              stderr=log, text=True, env=env, cwd=settings.home, check=False)
        log.write(done.stdout)
    if done.returncode != 0:
        raise StepFailed(step, _failure_reason(log_path), log_path)
    results = [line[len(RESULT_PREFIX):] for line in done.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    return json.loads(results[-1]) if results else {}


def _failure_reason(log_path: Path) -> str:
    lines = [line.strip() for line in log_path.read_text(errors="replace").splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("REJECTED:"):
            return line
    errors = [line for line in lines if "Error" in line or "Exception" in line]
    return (errors or lines or ["no output"])[-1][:500]


def run_locally(settings: Settings, use_case: str, input_uris: Sequence[str], run_id: str,
                train_params: str = "", progress: Any = print) -> dict[str, Any]:
    """convert, then train, then promote; one progress line per stage."""
    from pronostico.core.registry import promote_candidate, version_for_run

    log_dir = settings.logs_dir / "steps" / storage.safe_name(run_id)
    timings: dict[str, float] = {}
    results: dict[str, Any] = {}
    for step in pipeline_steps(settings, use_case, input_uris, run_id, train_params):
        started = time.monotonic()
        results[step.name] = run_step_locally(step, settings, log_dir)
        timings[step.name] = time.monotonic() - started
        progress(f"{step.name:<24} ok  {timings[step.name]:6.1f}s  {_describe(results[step.name])}")
    started = time.monotonic()
    decision = promote_candidate(settings.models_uri, use_case, version_for_run(settings.models_uri, use_case, run_id))
    timings["promote"] = time.monotonic() - started
    progress(f"{'promote':<24} {'ok' if decision.promoted else 'kept'}  {timings['promote']:6.1f}s  {decision.reason}")
    return {"timings": timings, "results": results, "decision": decision}


def _describe_prospective(prospective: dict[str, Any] | None) -> str:
    if not prospective:
        return ""
    if prospective["status"] != "scored":
        return f"; champion {prospective['model_version']}: {prospective['rows']} newer rows, not scored"
    return (f"; champion {prospective['model_version']} on {prospective['rows']} newer rows: "
            f"log loss {prospective['log_loss']:.4f}")


def _describe(result: dict[str, Any]) -> str:
    if "rows_read" in result:
        return f"{result['rows_kept']} rows kept of {result['rows_read']}, {result['rows_quarantined']} quarantined"
    if "version" in result:
        baselines = ", ".join(f"{k} {v:.4f}" for k, v in result["baselines"].items())
        line = f"version {result['version']}: log loss {result['log_loss']:.4f} (baselines: {baselines})"
        return line + _describe_prospective(result.get("prospective"))
    return ""
