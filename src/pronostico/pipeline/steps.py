"""The pipeline's steps, defined once, and the local backend that runs them.

`pipeline_steps` is the single list of Spark steps for a run. The local backend runs them in
one `spark-submit` (the one pyspark ships, in local mode), whose launcher (`launcher.py`) calls
each step script's `main` in turn on one session; the EMR backend (dags/) turns the very same
steps into EMR steps with `emr_step`. Only the launcher differs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pronostico.core import layout, storage
from pronostico.core.config import Settings
from pronostico.core.usecases import get_use_case
from pronostico.pipeline import launcher
from pronostico.pipeline.launcher import STEP_PREFIX

RESULT_PREFIX = "PRONOSTICO_RESULT "
LAUNCHER = Path(launcher.__file__)


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
                   train_params: str = "", retune: bool = False) -> list[Step]:
    data = dataset_uri(settings, use_case)
    inputs = [arg for uri in input_uris for arg in ("--input", uri)]
    convert = Step("convert_csv_to_parquet", "convert_csv_to_parquet.py",
                   ("--use-case", use_case, *inputs, "--output", data,
                    "--quarantine", quarantine_uri(settings, use_case), "--run-id", run_id))
    train_args = ("--use-case", use_case, "--data", data, "--models", settings.models_uri, "--run-id", run_id)
    if train_params:
        train_args += ("--params", train_params)
    if retune:
        train_args += ("--tuning", "grid")
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


def spark_submit_command(steps: Sequence[Step], settings: Settings) -> list[str]:
    """One spark-submit for all `steps`: the launcher runs each script's `main` in turn on one session, so a run
    pays for one JVM and one SparkContext, not one per step."""
    spark_submit = Path(sys.executable).parent / "spark-submit"
    plan = json.dumps([[step.name, step.script, list(step.args)] for step in steps])
    return [str(spark_submit), "--master", settings.spark_master,
            "--driver-memory", settings.spark_driver_memory,
            "--conf", "spark.ui.enabled=false",
            "--conf", "spark.ui.showConsoleProgress=false",
            "--conf", f"spark.driver.extraJavaOptions=-Djava.io.tmpdir={settings.home / 'tmp'}",
            "--conf", f"spark.local.dir={settings.home / 'tmp' / 'spark'}",
            str(LAUNCHER), plan]


def run_step_locally(step: Step, settings: Settings, log_dir: Path) -> dict[str, Any]:
    """One step through spark-submit: its result line as a dict (see `run_steps_locally`)."""
    return run_steps_locally([step], settings, log_dir / f"{step.name}.log")[step.name]


def run_steps_locally(steps: Sequence[Step], settings: Settings, log_path: Path) -> dict[str, dict[str, Any]]:
    """Run `steps` in order in one spark-submit; their whole output goes to `log_path`.

    Returns each step's result line as a dict, by step name. Raises StepFailed for the first step that fails, with
    its own one-line reason (its last line on stderr); the steps after it do not run.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    (settings.home / "tmp" / "spark").mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    with log_path.open("w") as log:
        done = subprocess.run(spark_submit_command(steps, settings), stdout=subprocess.PIPE,
                              stderr=log, text=True, env=env, cwd=settings.home, check=False)
        log.write(done.stdout)
    results: dict[str, dict[str, Any]] = {}
    current = steps[0].name
    for line in done.stdout.splitlines():
        if line.startswith(STEP_PREFIX):
            current = line[len(STEP_PREFIX):].strip()
        elif line.startswith(RESULT_PREFIX):
            results[current] = json.loads(line[len(RESULT_PREFIX):])
    if done.returncode != 0:
        failed = next((step for step in steps if step.name == current), steps[0])
        raise StepFailed(failed, _failure_reason(log_path), log_path)
    return {step.name: results.get(step.name, {}) for step in steps}


def _failure_reason(log_path: Path) -> str:
    lines = [line.strip() for line in log_path.read_text(errors="replace").splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("REJECTED:"):
            return line
    errors = [line for line in lines if "Error" in line or "Exception" in line]
    return (errors or lines or ["no output"])[-1][:500]


def run_locally(settings: Settings, use_case: str, input_uris: Sequence[str], run_id: str,
                train_params: str = "", progress: Any = print, retune: bool = False) -> dict[str, Any]:
    """convert, then train (in one spark-submit), then promote; one progress line per stage."""
    from pronostico.core.registry import promote_candidate, version_for_run

    log_path = settings.logs_dir / "steps" / storage.safe_name(run_id) / f"{use_case}.log"
    steps = pipeline_steps(settings, use_case, input_uris, run_id, train_params, retune)
    started = time.monotonic()
    results = run_steps_locally(steps, settings, log_path)
    timings: dict[str, float] = {"spark_steps": time.monotonic() - started}
    for step in steps:
        progress(f"{step.name:<24} ok  {_describe(results[step.name])}")
    progress(f"{'(one spark-submit)':<24} {timings['spark_steps']:6.1f}s")
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
        line = (f"version {result['version']} ({result.get('tuning', 'grid')}): log loss {result['log_loss']:.4f} "
                f"(baselines: {baselines})")
        return line + _describe_prospective(result.get("prospective"))
    return ""
