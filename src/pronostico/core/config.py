"""Every setting pronostico reads from the environment, in one place.

Local defaults make `make demo` work with no configuration: all state lives under
PRONOSTICO_HOME (default ./var), buckets are folders under $PRONOSTICO_HOME/s3. On AWS the
same variables come from the launch template, Secrets Manager and the Airflow host's env file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[3]
BUCKETS = ("raw", "processed", "models", "artifacts")


def _path(value: str) -> Path:
    return Path(value).expanduser().resolve()


@dataclass(frozen=True)
class EmrSettings:
    release_label: str = "emr-7.13.0"
    subnet_ids: tuple[str, ...] = ()
    service_role: str = "EMR_DefaultRole"
    instance_profile: str = "EMR_EC2_DefaultRole"
    security_configuration: str = ""
    log_uri: str = ""
    aws_conn_id: str = "aws_default"
    idle_timeout_seconds: int = 1800
    core_target_spot_units: int = 2
    # The EMR-managed security groups (cloudformation/security.yaml); empty lets EMR create its defaults.
    primary_security_group: str = ""
    core_security_group: str = ""
    service_access_security_group: str = ""
    poll_seconds: int = 60  # how often the DAG's sensors ask EMR about a step


@dataclass(frozen=True)
class AirflowSettings:
    url: str = "http://127.0.0.1:8080"
    username: str = "admin"
    password: str = ""
    secret_arn: str = ""  # on AWS the username and password come from this secret
    mode: str = "rest"  # rest | mwaa
    mwaa_environment: str = ""
    dag_id: str = "pronostico_retrain"
    schedule: str = "@weekly"  # the scheduled retrain of every use case; "none" turns it off
    trigger_attempts: int = 5  # the trigger's tries against Airflow before it fails (timeouts and 5xx)
    trigger_backoff_seconds: float = 1.0  # doubled after each failed try
    timeout_seconds: float = 10.0  # per HTTP request to Airflow


@dataclass(frozen=True)
class WatcherSettings:
    """The local stand-in for S3 event notifications (pronostico.local.stack.watcher)."""

    poll_seconds: float = 1.0
    settle_seconds: float = 2.0  # a file must keep its size and mtime this long before it counts as uploaded


@dataclass(frozen=True)
class WebSettings:
    """The web tier: nginx (the local ALB), the gunicorn instances behind it, and the log shipper."""

    port: int = 8000  # nginx locally (the ALB stand-in)
    app_ports: tuple[int, ...] = (8001, 8002)  # one gunicorn instance per port locally
    bind: str = "127.0.0.1:8001"  # what one gunicorn instance binds (bootstrap/gunicorn.conf.py)
    workers: int = 2  # gunicorn sync workers per instance
    rate_limit_per_second: int = 20  # nginx limit_req per client address; loopback is exempt
    shipper_batch_rows: int = 500  # spooled predictions per INSERT transaction
    shipper_idle_seconds: float = 0.25  # how long the shipper sleeps when the spool has nothing new
    # when an answer may leave: "interval" once its log line is in the page cache, flushed within spool_sync_ms by a
    # background thread; "each" once it is flushed (pronostico/prediction_log/spool.py, README "Nothing is lost")
    spool_sync: str = "interval"
    spool_sync_ms: float = 10.0


@dataclass(frozen=True)
class Settings:
    home: Path
    bucket_prefix: str
    bucket_uris: Mapping[str, str]
    compute: str
    db_url: str
    spool_dir: Path
    shared_data: Path
    model_poll_seconds: float
    secret_key: str
    spark_master: str
    spark_driver_memory: str
    emr: EmrSettings = field(default_factory=EmrSettings)
    airflow: AirflowSettings = field(default_factory=AirflowSettings)
    watcher: WatcherSettings = field(default_factory=WatcherSettings)
    train_params: str = ""  # TrainConfig overrides (JSON) for DAG runs whose conf sets none
    web: WebSettings = field(default_factory=WebSettings)

    @property
    def raw_uri(self) -> str:
        return self.bucket_uris["raw"]

    @property
    def processed_uri(self) -> str:
        return self.bucket_uris["processed"]

    @property
    def models_uri(self) -> str:
        return self.bucket_uris["models"]

    @property
    def artifacts_uri(self) -> str:
        return self.bucket_uris["artifacts"]

    @property
    def local_s3_root(self) -> Path:
        return self.home / "s3"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def run_dir(self) -> Path:
        return self.home / "run"


def _bucket_uris(env: Mapping[str, str], home: Path, prefix: str) -> dict[str, str]:
    storage = env.get("PRONOSTICO_STORAGE", "local")
    if storage not in ("local", "s3"):
        raise ValueError(f"PRONOSTICO_STORAGE must be 'local' or 's3', not {storage!r}")
    uris = {}
    for bucket in BUCKETS:
        name = f"{prefix}-{bucket}"
        default = f"s3://{name}" if storage == "s3" else (home / "s3" / name).as_uri()
        uris[bucket] = env.get(f"PRONOSTICO_{bucket.upper()}_URI", default).rstrip("/")
    return uris


def _emr(env: Mapping[str, str], artifacts_uri: str) -> EmrSettings:
    subnets = tuple(s for s in env.get("PRONOSTICO_EMR_SUBNET_IDS", "").split(",") if s)
    return EmrSettings(
        release_label=env.get("PRONOSTICO_EMR_RELEASE", EmrSettings.release_label),
        subnet_ids=subnets,
        service_role=env.get("PRONOSTICO_EMR_SERVICE_ROLE", EmrSettings.service_role),
        instance_profile=env.get("PRONOSTICO_EMR_INSTANCE_PROFILE", EmrSettings.instance_profile),
        security_configuration=env.get("PRONOSTICO_EMR_SECURITY_CONFIGURATION", ""),
        log_uri=env.get("PRONOSTICO_EMR_LOG_URI", f"{artifacts_uri}/emr-logs/"),
        aws_conn_id=env.get("PRONOSTICO_AWS_CONN_ID", EmrSettings.aws_conn_id),
        idle_timeout_seconds=int(env.get("PRONOSTICO_EMR_IDLE_TIMEOUT_SECONDS", "1800")),
        core_target_spot_units=int(env.get("PRONOSTICO_EMR_CORE_SPOT_UNITS", "2")),
        primary_security_group=env.get("PRONOSTICO_EMR_PRIMARY_SECURITY_GROUP", ""),
        core_security_group=env.get("PRONOSTICO_EMR_CORE_SECURITY_GROUP", ""),
        service_access_security_group=env.get("PRONOSTICO_EMR_SERVICE_ACCESS_SECURITY_GROUP", ""),
        poll_seconds=int(env.get("PRONOSTICO_EMR_POLL_SECONDS", "60")),
    )


def _airflow(env: Mapping[str, str], home: Path) -> AirflowSettings:
    return AirflowSettings(
        url=env.get("PRONOSTICO_AIRFLOW_URL", AirflowSettings.url).rstrip("/"),
        username=env.get("PRONOSTICO_AIRFLOW_USERNAME", AirflowSettings.username),
        password=env.get("PRONOSTICO_AIRFLOW_PASSWORD", "") or standalone_password(home),
        secret_arn=env.get("PRONOSTICO_AIRFLOW_SECRET_ARN", ""),
        mode=env.get("PRONOSTICO_AIRFLOW_MODE", "rest"),
        mwaa_environment=env.get("PRONOSTICO_MWAA_ENVIRONMENT", ""),
        dag_id=env.get("PRONOSTICO_DAG_ID", AirflowSettings.dag_id),
        schedule=env.get("PRONOSTICO_RETRAIN_SCHEDULE", AirflowSettings.schedule),
        trigger_attempts=int(env.get("PRONOSTICO_TRIGGER_ATTEMPTS", "5")),
        trigger_backoff_seconds=float(env.get("PRONOSTICO_TRIGGER_BACKOFF_SECONDS", "1.0")),
        timeout_seconds=float(env.get("PRONOSTICO_AIRFLOW_TIMEOUT_SECONDS", "10")),
    )


def _watcher(env: Mapping[str, str]) -> WatcherSettings:
    return WatcherSettings(
        poll_seconds=float(env.get("PRONOSTICO_WATCH_POLL_SECONDS", "1.0")),
        settle_seconds=float(env.get("PRONOSTICO_WATCH_SETTLE_SECONDS", "2.0")),
    )


def _web(env: Mapping[str, str]) -> WebSettings:
    ports = env.get("PRONOSTICO_APP_PORTS", ",".join(map(str, WebSettings.app_ports)))
    return WebSettings(
        port=int(env.get("PRONOSTICO_WEB_PORT", str(WebSettings.port))),
        app_ports=tuple(int(p) for p in ports.split(",") if p.strip()),
        bind=env.get("PRONOSTICO_BIND", WebSettings.bind),
        workers=int(env.get("PRONOSTICO_WORKERS", str(WebSettings.workers))),
        rate_limit_per_second=int(env.get("PRONOSTICO_RATE_LIMIT", str(WebSettings.rate_limit_per_second))),
        shipper_batch_rows=int(env.get("PRONOSTICO_SHIPPER_BATCH_ROWS", str(WebSettings.shipper_batch_rows))),
        shipper_idle_seconds=float(env.get("PRONOSTICO_SHIPPER_IDLE_SECONDS",
                                           str(WebSettings.shipper_idle_seconds))),
        spool_sync=env.get("PRONOSTICO_SPOOL_SYNC", WebSettings.spool_sync),
        spool_sync_ms=float(env.get("PRONOSTICO_SPOOL_SYNC_MS", str(WebSettings.spool_sync_ms))),
    )


def standalone_password(home: Path) -> str:
    """The password `airflow standalone` generated for admin, if the local stack made one."""
    generated = home / "airflow" / "simple_auth_manager_passwords.json.generated"
    if not generated.exists():
        return ""
    import json

    return str(json.loads(generated.read_text()).get("admin", ""))


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    home = _path(env.get("PRONOSTICO_HOME", str(PROJECT_ROOT / "var")))
    prefix = env.get("PRONOSTICO_BUCKET_PREFIX", "pronostico-dev")
    uris = _bucket_uris(env, home, prefix)
    return Settings(
        home=home,
        bucket_prefix=prefix,
        bucket_uris=uris,
        compute=env.get("PRONOSTICO_COMPUTE", "local"),
        db_url=env.get("PRONOSTICO_DB_URL", f"sqlite:///{home / 'predictions.db'}"),
        spool_dir=_path(env.get("PRONOSTICO_SPOOL_DIR", str(home / "spool"))),
        shared_data=_path(env.get("PRONOSTICO_SHARED_DATA", str(PROJECT_ROOT.parent / "shared" / "data"))),
        model_poll_seconds=float(env.get("PRONOSTICO_MODEL_POLL_SECONDS", "5")),
        secret_key=env.get("PRONOSTICO_SECRET_KEY", ""),
        spark_master=env.get("PRONOSTICO_SPARK_MASTER", "local[2]"),
        spark_driver_memory=env.get("PRONOSTICO_SPARK_DRIVER_MEMORY", "4g"),
        emr=_emr(env, uris["artifacts"]),
        airflow=_airflow(env, home),
        watcher=_watcher(env),
        train_params=env.get("PRONOSTICO_TRAIN_PARAMS", ""),
        web=_web(env),
    )
