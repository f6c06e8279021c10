"""The storage layout: every key the buckets hold, in one place (the tables in docs/ARCHITECTURE.md).

Each function takes a bucket's root URI (`s3://<prefix>-models` on AWS, `file://…/var/s3/models` locally) and
returns a URI under it. Nothing else in the code spells a key; a test walks a run's buckets against this module.
"""

from __future__ import annotations

from pronostico.core.storage import join, safe_name

# the files of a model version (the artifact contract between training and serving)
MANIFEST = "manifest.json"  # written last: a version without it is incomplete
METRICS = "metrics.json"
FOREST = "forest.npz"
FEATURES = "features.json"
ENTITIES = "entities.json"
HOLDOUT = "holdout.parquet"
PROMOTION = "promotion.json"
BACKTEST = "backtest.json"  # use cases with a trading rule: the holdout backtest with its equity curves
SPARK_MODEL = "spark_model"
CURRENT = "current.json"

# the code staged for EMR
PACKAGE_ZIP = "pronostico.zip"
CODE_MARKER = "code.json"
EMR_SCRIPTS = "emr_scripts"
EMR_BOOTSTRAP = "bootstrap/emr/bootstrap.sh"


# --- raw bucket ---
def raw_prefix(raw_uri: str, use_case: str) -> str:
    """Where uploads of a use case land; a CSV here starts a run."""
    return join(raw_uri, use_case)


def raw_object(raw_uri: str, use_case: str, name: str) -> str:
    return join(raw_uri, use_case, name)


SYNTHETIC_FOLDER = "synthetic"  # raw/<use_case>/synthetic/: generated demo data, left out once real data is there


def is_synthetic(raw_uri: str, use_case: str, uri: str) -> bool:
    """Whether an object under raw/<use_case>/ is generated demo data rather than a user's own."""
    return uri.startswith(join(raw_uri, use_case, SYNTHETIC_FOLDER) + "/")


# --- processed bucket ---
def dataset_uri(processed_uri: str, use_case: str, dataset: str) -> str:
    return join(processed_uri, use_case, dataset)


def run_data_uri(dataset: str, run_id: str) -> str:
    """One run's partitioned parquet under its dataset."""
    return join(dataset, f"run={safe_name(run_id)}")


def run_report_uri(dataset: str, run_id: str) -> str:
    return join(dataset, "_reports", f"run={safe_name(run_id)}.json")


def quarantine_uri(processed_uri: str, use_case: str) -> str:
    return join(processed_uri, "quarantine", use_case)


def run_quarantine_uri(quarantine: str, run_id: str) -> str:
    """A run's quarantine: `files/` (whole files), `rows/` (bad rows with `_reason`) and `reasons.json`."""
    return join(quarantine, safe_name(run_id))


def rejected_marker(quarantine: str, etag: str) -> str:
    """Marks a rejected object version, so that the weekly run does not retry it."""
    return join(quarantine, "rejected", f"{safe_name(etag)}.json")


# --- models bucket ---
def versions_uri(models_uri: str, use_case: str) -> str:
    return join(models_uri, use_case, "versions")


def version_uri(models_uri: str, use_case: str, version: str) -> str:
    return join(versions_uri(models_uri, use_case), version)


def version_file(models_uri: str, use_case: str, version: str, name: str) -> str:
    return join(version_uri(models_uri, use_case, version), name)


def current_uri(models_uri: str, use_case: str) -> str:
    """The serving pointer: the model version and the version whose entity state it serves (registry.py)."""
    return join(models_uri, use_case, CURRENT)


def index_uri(models_uri: str, use_case: str) -> str:
    """The registry's index: a brief of every complete version and evaluation, a cache of their files that the
    models page reads instead of them (registry.update_index writes it, and can always rebuild it)."""
    return join(models_uri, use_case, "index.json")


def evaluations_uri(models_uri: str, use_case: str) -> str:
    return join(models_uri, use_case, "evaluations")


def evaluation_uri(models_uri: str, use_case: str, run_id: str) -> str:
    """One run's prospective evaluation of the serving champion, on rows newer than anything it saw."""
    return join(evaluations_uri(models_uri, use_case), f"{safe_name(run_id)}.json")


def observed_events_uri(models_uri: str, use_case: str) -> str:
    """The real events of the newest run's data, for the log shipper to load next to the prediction log."""
    return join(models_uri, use_case, "observed", "events.json")


# --- artifacts bucket ---
def code_uri(artifacts_uri: str, code_version: str) -> str:
    """Where one code version is staged for EMR: the package zip, emr_scripts/ and the bootstrap action."""
    return join(artifacts_uri, "code", code_version)


def emr_logs_uri(artifacts_uri: str) -> str:
    return join(artifacts_uri, "emr-logs")
