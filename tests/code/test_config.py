"""The settings: declared once, read from the environment, written back for children, and documented from there."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from pronostico.core import config
from pronostico.core.config import (
    PROJECT_ROOT,
    AirflowSettings,
    EmrSettings,
    WatcherSettings,
    WebSettings,
    load_settings,
)
from pronostico.local.stack import airflow, watcher, web
from pronostico.pipeline.spark import session_config

# A value unlike the default for every variable: the round trip below covers each setting.
NON_DEFAULT = {
    "PRONOSTICO_HOME": "/tmp/pronostico-config-test/home",
    "PRONOSTICO_STORAGE": "s3",
    "PRONOSTICO_BUCKET_PREFIX": "acme",
    "PRONOSTICO_RAW_URI": "s3://acme-landing",
    "PRONOSTICO_PROCESSED_URI": "s3://acme-lake/processed",
    "PRONOSTICO_MODELS_URI": "s3://my-models",
    "PRONOSTICO_ARTIFACTS_URI": "s3://acme-artifacts/v2",
    "PRONOSTICO_COMPUTE": "emr",
    "PRONOSTICO_DB_URL": "mysql+pymysql://user:secret@db:3306/pronostico",
    "PRONOSTICO_SPOOL_DIR": "/tmp/pronostico-config-test/spool",
    "PRONOSTICO_SHARED_DATA": "/tmp/pronostico-config-test/data",
    "PRONOSTICO_MODEL_POLL_SECONDS": "0.5",
    "PRONOSTICO_REGISTRY_KEEP_VERSIONS": "20",
    "PRONOSTICO_LOG_RETENTION_DAYS": "400",
    "PRONOSTICO_SECRET_KEY": "s3cret",
    "PRONOSTICO_SPARK_MASTER": "local[1]",
    "PRONOSTICO_SPARK_DRIVER_MEMORY": "1g",
    "PRONOSTICO_SHUFFLE_PARTITIONS": "3",
    "PRONOSTICO_TRAIN_PARAMS": '{"num_trees": 20}',
    "PRONOSTICO_EXTRA_USE_CASES": "tests.usecases.duels",
    "PRONOSTICO_EMR_RELEASE": "emr-7.0.0",
    "PRONOSTICO_EMR_SUBNET_IDS": "subnet-a,subnet-b",
    "PRONOSTICO_EMR_SERVICE_ROLE": "ServiceRole",
    "PRONOSTICO_EMR_INSTANCE_PROFILE": "InstanceProfile",
    "PRONOSTICO_EMR_SECURITY_CONFIGURATION": "sec",
    "PRONOSTICO_EMR_LOG_URI": "s3://acme-logs/emr/",
    "PRONOSTICO_AWS_CONN_ID": "aws_acme",
    "PRONOSTICO_EMR_IDLE_TIMEOUT_SECONDS": "600",
    "PRONOSTICO_EMR_CORE_SPOT_UNITS": "4",
    "PRONOSTICO_EMR_PRIMARY_SECURITY_GROUP": "sg-primary",
    "PRONOSTICO_EMR_CORE_SECURITY_GROUP": "sg-core",
    "PRONOSTICO_EMR_SERVICE_ACCESS_SECURITY_GROUP": "sg-service",
    "PRONOSTICO_EMR_POLL_SECONDS": "15",
    "PRONOSTICO_AIRFLOW_URL": "http://airflow.internal:9090",
    "PRONOSTICO_AIRFLOW_USERNAME": "trigger",
    "PRONOSTICO_AIRFLOW_PASSWORD": "hunter2",
    "PRONOSTICO_AIRFLOW_SECRET_ARN": "arn:aws:secretsmanager:eu-west-1:1:secret:airflow",
    "PRONOSTICO_AIRFLOW_MODE": "mwaa",
    "PRONOSTICO_MWAA_ENVIRONMENT": "acme-mwaa",
    "PRONOSTICO_DAG_ID": "other",
    "PRONOSTICO_RETRAIN_SCHEDULE": "none",
    "PRONOSTICO_TRIGGER_ATTEMPTS": "2",
    "PRONOSTICO_TRIGGER_BACKOFF_SECONDS": "0.1",
    "PRONOSTICO_AIRFLOW_TIMEOUT_SECONDS": "2.5",
    "PRONOSTICO_WATCH_POLL_SECONDS": "0.2",
    "PRONOSTICO_WATCH_SETTLE_SECONDS": "0.7",
    "PRONOSTICO_WEB_PORT": "9000",
    "PRONOSTICO_APP_PORTS": "9001,9002,9003",
    "PRONOSTICO_BIND": "0.0.0.0:9001",
    "PRONOSTICO_WORKERS": "5",
    "PRONOSTICO_RATE_LIMIT": "7",
    "PRONOSTICO_SHIPPER_BATCH_ROWS": "50",
    "PRONOSTICO_SHIPPER_IDLE_SECONDS": "0.05",
    "PRONOSTICO_SPOOL_SYNC": "each",
    "PRONOSTICO_SPOOL_SYNC_MS": "3.5",
}
# Names the docs mention that are not settings: a line marker the Spark steps print, the benchmarks' report folder,
# a test switch, and the boot scripts' own variables.
NOT_SETTINGS = {"PRONOSTICO_RESULT", "PRONOSTICO_REPORTS_DIR", "PRONOSTICO_TEST_PRIVATE_MARIADB",
                "PRONOSTICO_RELEASE_BUCKET", "PRONOSTICO_RELEASE_VERSION", "PRONOSTICO_ROLE"}


def test_the_defaults_are_the_declared_ones(tmp_path: Path) -> None:
    settings = load_settings({"PRONOSTICO_HOME": str(tmp_path)})
    assert settings.web == WebSettings() and settings.watcher == WatcherSettings()
    assert settings.airflow == AirflowSettings()
    assert settings.emr == replace(EmrSettings(), log_uri=f"{settings.artifacts_uri}/emr-logs/")
    assert settings.web.workers == 2 and settings.web.app_ports == (8001, 8002)
    assert settings.airflow.dag_id == "pronostico_retrain" and settings.spark_shuffle_partitions == 8
    assert load_settings({}).home == PROJECT_ROOT / "var"


def test_computed_defaults_follow_home_storage_and_prefix(tmp_path: Path) -> None:
    local = load_settings({"PRONOSTICO_HOME": str(tmp_path), "PRONOSTICO_BUCKET_PREFIX": "acme"})
    assert local.models_uri == (tmp_path / "s3" / "acme-models").as_uri()
    assert local.db_url == f"sqlite:///{tmp_path / 'predictions.db'}" and local.spool_dir == tmp_path / "spool"
    assert local.emr.log_uri == (tmp_path / "s3" / "acme-artifacts").as_uri() + "/emr-logs/"
    s3 = load_settings({"PRONOSTICO_STORAGE": "s3", "PRONOSTICO_BUCKET_PREFIX": "acme",
                        "PRONOSTICO_RAW_URI": "s3://landing/"})
    assert s3.bucket_uris == {"raw": "s3://landing", "processed": "s3://acme-processed", "models": "s3://acme-models",
                              "artifacts": "s3://acme-artifacts"}
    assert s3.emr.log_uri == "s3://acme-artifacts/emr-logs/"


def test_an_unset_password_is_the_one_airflow_standalone_generated(tmp_path: Path) -> None:
    generated = tmp_path / "airflow" / "simple_auth_manager_passwords.json.generated"
    generated.parent.mkdir()
    generated.write_text(json.dumps({"admin": "generated"}))
    assert load_settings({"PRONOSTICO_HOME": str(tmp_path)}).airflow.password == "generated"
    assert load_settings({"PRONOSTICO_HOME": str(tmp_path), "PRONOSTICO_AIRFLOW_PASSWORD": ""}).airflow.password \
        == "generated"
    assert load_settings({"PRONOSTICO_HOME": str(tmp_path),
                          "PRONOSTICO_AIRFLOW_PASSWORD": "set"}).airflow.password == "set"


def test_a_bad_value_is_refused_with_its_variable_named() -> None:
    with pytest.raises(ValueError, match=r"PRONOSTICO_WORKERS='many' is not valid"):
        load_settings({"PRONOSTICO_WORKERS": "many"})
    with pytest.raises(ValueError, match=r"PRONOSTICO_STORAGE='gcs' is not valid: it must be 'local' or 's3'"):
        load_settings({"PRONOSTICO_STORAGE": "gcs"})
    with pytest.raises(ValueError, match=r"PRONOSTICO_REGISTRY_KEEP_VERSIONS='-1' is not valid: it must be 0 or more"):
        load_settings({"PRONOSTICO_REGISTRY_KEEP_VERSIONS": "-1"})


def test_the_round_trip_covers_every_declared_variable() -> None:
    assert set(NON_DEFAULT) == config.declared_variables()
    assert set(load_settings({}).environment()) == config.declared_variables()


def test_environment_round_trips_a_non_default_configuration() -> None:
    settings = load_settings(NON_DEFAULT)
    written, defaults = settings.environment(), load_settings({}).environment()
    assert [name for name in written if written[name] == defaults[name]] == []
    assert load_settings(written) == settings


def test_a_generated_password_stays_out_of_a_childs_environment(tmp_path: Path) -> None:
    generated = tmp_path / "airflow" / "simple_auth_manager_passwords.json.generated"
    generated.parent.mkdir()
    generated.write_text(json.dumps({"admin": "generated"}))
    settings = load_settings({"PRONOSTICO_HOME": str(tmp_path)})
    assert settings.airflow.password == "generated"
    assert settings.environment()["PRONOSTICO_AIRFLOW_PASSWORD"] == ""  # the child reads the same file
    assert load_settings(settings.environment()) == settings
    configured = load_settings({"PRONOSTICO_HOME": str(tmp_path), "PRONOSTICO_AIRFLOW_PASSWORD": "set"})
    assert configured.environment()["PRONOSTICO_AIRFLOW_PASSWORD"] == "set"


def test_every_local_service_loads_the_settings_of_the_process_that_starts_it(tmp_path: Path) -> None:
    settings = load_settings({**NON_DEFAULT, "PRONOSTICO_HOME": str(tmp_path), "PRONOSTICO_STORAGE": "local",
                              "PRONOSTICO_RAW_URI": (tmp_path / "raw").as_uri()})
    instance = web.gunicorn_service(settings, 9002)
    assert load_settings(instance.env) == replace(settings, web=replace(settings.web, bind="127.0.0.1:9002"))
    assert instance.env["PYTHONUNBUFFERED"] == "1"
    for service in (web.shipper_service(settings), web.supervisor_service(settings),
                    watcher.watcher_service(settings)):
        assert load_settings(service.env) == settings, service.name
    assert load_settings(airflow.airflow_env(settings)) == settings


def test_spark_takes_its_shuffle_partitions_from_the_settings() -> None:
    assert session_config(load_settings({"PRONOSTICO_SHUFFLE_PARTITIONS": "3"}))["spark.sql.shuffle.partitions"] == "3"
    assert session_config(load_settings({}))["spark.sql.shuffle.partitions"] == "8"


def test_every_setting_has_a_doc_line_and_a_unique_variable() -> None:
    declared = config.declarations()
    assert len({d.variable for d in declared}) == len(declared)
    assert all(d.doc.strip() and "\n" not in d.doc for d in declared)
    assert all(d.variable.startswith("PRONOSTICO_") for d in declared)


def test_docs_configuration_md_is_what_the_declarations_generate() -> None:
    written = (PROJECT_ROOT / "docs" / "CONFIGURATION.md").read_text()
    assert written == config.markdown(), "run: python -m pronostico.core.config --markdown > docs/CONFIGURATION.md"
    for declared in config.declarations():
        assert f"| `{declared.variable}` |" in written


def test_the_reference_command_prints_the_generated_markdown() -> None:
    done = subprocess.run([sys.executable, "-m", "pronostico.core.config", "--markdown"], capture_output=True,
                          text=True, check=True, timeout=60)
    assert done.stdout == config.markdown()


@pytest.mark.parametrize("document", ["README.md", *sorted(p.name for p in (PROJECT_ROOT / "docs").glob("*.md"))])
def test_every_variable_the_docs_mention_is_a_declared_setting(document: str) -> None:
    path = PROJECT_ROOT / document if document == "README.md" else PROJECT_ROOT / "docs" / document
    assert config.undeclared_variables(path.read_text(), ignore=NOT_SETTINGS) == set()


def test_the_docs_check_catches_an_undeclared_variable() -> None:
    text = "Set `PRONOSTICO_WORKERS` and `PRONOSTICO_WORKER_COUNT`; `PRONOSTICO_<BUCKET>_URI` is a family."
    assert config.undeclared_variables(text) == {"PRONOSTICO_WORKER_COUNT"}
