"""Every setting pronostico reads from the environment, each declared once.

A field of the dataclasses below is a `setting(...)`: its environment variable, its default, how its text is parsed,
and one line of doc. From those declarations `load_settings` reads the environment, `Settings.environment` writes it
back for a child process, and `markdown` renders docs/CONFIGURATION.md:

    python -m pronostico.core.config --markdown > docs/CONFIGURATION.md

Local defaults make `make demo` work with no configuration: all state lives under PRONOSTICO_HOME (default var/ in
the checkout), buckets are folders under $PRONOSTICO_HOME/s3. On AWS the same variables come from the launch
template, Secrets Manager and the Airflow host's env file. Standard library only: the trigger Lambda bundles this
file alone.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[3]
BUCKETS = ("raw", "processed", "models", "artifacts")
SETTING = "pronostico.setting"  # the dataclass field metadata key of a declaration
SECTION = "pronostico.section"  # ... and of a group of settings, `settings.web` and the like
VARIABLE = re.compile(r"\bPRONOSTICO_[A-Z0-9_]*[A-Z0-9]\b")  # a variable's name as prose spells it

Computed = Callable[[Mapping[str, Any]], Any]  # a default worked out from the top-level settings read before it


@dataclass(frozen=True)
class Setting:
    """How one field comes from the environment and goes back to it."""

    variable: str
    default: Any
    doc: str
    parse: Callable[[str], Any] = str
    render: Callable[[Any], str] = str  # the inverse of parse
    computed: Computed | None = None  # when set, the default is this function's answer, not `default`
    shown: str = ""  # the default as the reference shows it, where the value itself would be this machine's
    blank_is_default: bool = False  # an empty variable means the default too

    def default_value(self, context: Mapping[str, Any]) -> Any:
        return self.computed(context) if self.computed else self.default

    def read(self, env: Mapping[str, str], context: Mapping[str, Any]) -> Any:
        raw = env.get(self.variable)
        if raw is None or (raw == "" and self.blank_is_default):
            return self.default_value(context)
        try:
            return self.parse(raw)
        except ValueError as error:
            raise ValueError(f"{self.variable}={raw!r} is not valid: {error}") from None

    def write(self, value: Any, context: Mapping[str, Any]) -> str:
        if self.blank_is_default and value == self.default_value(context):
            return ""  # the child works it out the same way: a password read from a file stays out of the env
        return self.render(value)

    def shown_default(self) -> str:
        if self.shown:
            return self.shown
        text = self.render(self.default)
        return f"`{text}`" if text else "empty"


def setting(variable: str, default: Any, doc: str, *, parse: Callable[[str], Any] = str,
            render: Callable[[Any], str] = str, computed: Computed | None = None, shown: str = "",
            blank_is_default: bool = False) -> Any:
    """A dataclass field read from `variable`; `default` is also the field's default (MISSING: none)."""
    declared = Setting(variable, default, doc, parse, render, computed, shown, blank_is_default)
    return field(default=default, metadata={SETTING: declared})


# --- parsers, and their inverses where `str` is not one -------------------------------------------------------------
def _path(value: str) -> Path:
    return Path(value).expanduser().resolve()


def _url(value: str) -> str:
    return value.rstrip("/")


def _ints(value: str) -> tuple[int, ...]:
    return tuple(int(part) for part in value.split(",") if part.strip())


def _strings(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _joined(values: tuple[Any, ...]) -> str:
    return ",".join(map(str, values))


def _count(value: str) -> int:
    number = int(value)
    if number < 0:
        raise ValueError("it must be 0 or more")
    return number


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if value not in allowed:
            raise ValueError(f"it must be {' or '.join(map(repr, allowed))}")
        return value

    return parse


# --- computed defaults ----------------------------------------------------------------------------------------------
def _bucket_default(bucket: str) -> Computed:
    def default(context: Mapping[str, Any]) -> str:
        name = f"{context['bucket_prefix']}-{bucket}"
        return f"s3://{name}" if context["storage"] == "s3" else (context["home"] / "s3" / name).as_uri()

    return default


def _bucket_uri(variable: str, bucket: str, doc: str) -> Any:
    return setting(variable, MISSING, doc, parse=_url, computed=_bucket_default(bucket),
                   shown=f"`s3://<prefix>-{bucket}` (`s3`), `file://$PRONOSTICO_HOME/s3/<prefix>-{bucket}` (`local`)")


def standalone_password(home: Path) -> str:
    """The password `airflow standalone` generated for admin, if the local stack made one."""
    generated = home / "airflow" / "simple_auth_manager_passwords.json.generated"
    if not generated.exists():
        return ""
    return str(json.loads(generated.read_text()).get("admin", ""))


# --- the declarations -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EmrSettings:
    """EMR (`settings.emr`)

    The transient spot cluster the DAG's EMR backend (PRONOSTICO_COMPUTE=emr) creates for each run.
    """

    release_label: str = setting("PRONOSTICO_EMR_RELEASE", "emr-7.13.0", "the EMR release of the transient cluster")
    subnet_ids: tuple[str, ...] = setting(
        "PRONOSTICO_EMR_SUBNET_IDS", (), "comma-separated subnets for the cluster's instance fleets",
        parse=_strings, render=_joined)
    service_role: str = setting("PRONOSTICO_EMR_SERVICE_ROLE", "EMR_DefaultRole", "the cluster's service role")
    instance_profile: str = setting("PRONOSTICO_EMR_INSTANCE_PROFILE", "EMR_EC2_DefaultRole",
                                    "the instance profile of the cluster's EC2 instances")
    security_configuration: str = setting("PRONOSTICO_EMR_SECURITY_CONFIGURATION", "",
                                          "an EMR security configuration name")
    log_uri: str = setting("PRONOSTICO_EMR_LOG_URI", "", "where EMR writes its logs",
                           computed=lambda context: f"{context['artifacts_uri']}/emr-logs/",
                           shown="`$PRONOSTICO_ARTIFACTS_URI/emr-logs/`")
    aws_conn_id: str = setting("PRONOSTICO_AWS_CONN_ID", "aws_default", "the Airflow connection the EMR operators use")
    idle_timeout_seconds: int = setting("PRONOSTICO_EMR_IDLE_TIMEOUT_SECONDS", 1800,
                                        "auto-termination backstop if teardown never runs", parse=int)
    core_target_spot_units: int = setting("PRONOSTICO_EMR_CORE_SPOT_UNITS", 2,
                                          "target spot capacity of the core fleet", parse=int)
    primary_security_group: str = setting(
        "PRONOSTICO_EMR_PRIMARY_SECURITY_GROUP", "",
        "the EMR-managed security group of the primary node the AWS stack creates (empty: EMR makes its default)")
    core_security_group: str = setting(
        "PRONOSTICO_EMR_CORE_SECURITY_GROUP", "",
        "the EMR-managed security group of the core nodes the AWS stack creates (empty: EMR makes its default)")
    service_access_security_group: str = setting(
        "PRONOSTICO_EMR_SERVICE_ACCESS_SECURITY_GROUP", "",
        "the EMR-managed service access security group the AWS stack creates (empty: EMR makes its default)")
    poll_seconds: int = setting("PRONOSTICO_EMR_POLL_SECONDS", 60, "how often the DAG's step sensors ask EMR",
                                parse=int)


@dataclass(frozen=True)
class AirflowSettings:
    """Airflow and the trigger (`settings.airflow`)

    The DAG, and how the trigger Lambda (or the local watcher) reaches Airflow to start it.
    """

    url: str = setting("PRONOSTICO_AIRFLOW_URL", "http://127.0.0.1:8080",
                       "Airflow's API server (its port is also where the local standalone listens)", parse=_url)
    username: str = setting("PRONOSTICO_AIRFLOW_USERNAME", "admin", "the trigger's Airflow user locally")
    password: str = setting(
        "PRONOSTICO_AIRFLOW_PASSWORD", "",
        "the trigger's Airflow password locally; empty: the one `airflow standalone` generated",
        computed=lambda context: standalone_password(context["home"]), blank_is_default=True,
        shown="the standalone's generated one")
    secret_arn: str = setting("PRONOSTICO_AIRFLOW_SECRET_ARN", "",
                              "on AWS: the Secrets Manager secret with `username` and `password`")
    mode: str = setting("PRONOSTICO_AIRFLOW_MODE", "rest",
                        "`rest` (Airflow's REST API) or `mwaa` (MWAA's `invoke_rest_api`)")
    mwaa_environment: str = setting("PRONOSTICO_MWAA_ENVIRONMENT", "", "the MWAA environment the `mwaa` mode uses")
    dag_id: str = setting("PRONOSTICO_DAG_ID", "pronostico_retrain",
                          "the DAG's id: the DAG file declares it, the trigger and the local stack start it")
    schedule: str = setting("PRONOSTICO_RETRAIN_SCHEDULE", "@weekly",
                            "the DAG's schedule, a retrain of every use case; `none` turns it off")
    trigger_attempts: int = setting("PRONOSTICO_TRIGGER_ATTEMPTS", 5,
                                    "the trigger's tries against Airflow (on timeouts and 5xx) before it fails",
                                    parse=int)
    trigger_backoff_seconds: float = setting("PRONOSTICO_TRIGGER_BACKOFF_SECONDS", 1.0,
                                             "the trigger's first backoff, doubled after each failed try",
                                             parse=float)
    timeout_seconds: float = setting("PRONOSTICO_AIRFLOW_TIMEOUT_SECONDS", 10.0, "per HTTP request to Airflow",
                                     parse=float)


@dataclass(frozen=True)
class WatcherSettings:
    """The local watcher (`settings.watcher`)

    The local stand-in for S3 event notifications (pronostico.local.stack.watcher).
    """

    poll_seconds: float = setting("PRONOSTICO_WATCH_POLL_SECONDS", 1.0,
                                  "how often the watcher looks at the local raw bucket", parse=float)
    settle_seconds: float = setting("PRONOSTICO_WATCH_SETTLE_SECONDS", 2.0,
                                    "how long a file must keep its size and mtime before it counts as uploaded",
                                    parse=float)


@dataclass(frozen=True)
class WebSettings:
    """The web tier (`settings.web`)

    nginx (the local ALB), the gunicorn instances behind it, the prediction spool and the log shipper.
    """

    port: int = setting("PRONOSTICO_WEB_PORT", 8000, "nginx locally (the ALB stand-in)", parse=int)
    app_ports: tuple[int, ...] = setting("PRONOSTICO_APP_PORTS", (8001, 8002), "one local gunicorn instance per port",
                                         parse=_ints, render=_joined)
    bind: str = setting("PRONOSTICO_BIND", "127.0.0.1:8001",
                        "what one gunicorn instance binds (bootstrap/gunicorn.conf.py)")
    workers: int = setting("PRONOSTICO_WORKERS", 2, "gunicorn sync workers per instance", parse=int)
    rate_limit_per_second: int = setting(
        "PRONOSTICO_RATE_LIMIT", 20,
        "nginx requests per second per client address (burst twice that; loopback exempt)", parse=int)
    # the rollups cost a fixed few statements per batch: in batches of 2,000 they add about a tenth to a row's cost,
    # in batches of 500 a third (docs/BENCHMARKS.md, the prediction log at 10 million rows)
    shipper_batch_rows: int = setting("PRONOSTICO_SHIPPER_BATCH_ROWS", 2000,
                                      "the log shipper's spooled predictions per INSERT transaction", parse=int)
    shipper_idle_seconds: float = setting("PRONOSTICO_SHIPPER_IDLE_SECONDS", 0.25,
                                          "how long the log shipper sleeps when the spool has nothing new",
                                          parse=float)
    log_retention_days: int = setting(
        "PRONOSTICO_LOG_RETENTION_DAYS", 0,
        "days of raw prediction log rows to keep; older ones are deleted once counted in the rollups (empty or 0: "
        "keep every row); see docs/PREDICTION_LOG.md, \"Retention\"", parse=int, blank_is_default=True)
    spool_sync: str = setting(
        "PRONOSTICO_SPOOL_SYNC", "interval",
        "when an answer may leave: its log line in the page cache and flushed within PRONOSTICO_SPOOL_SYNC_MS by a "
        "background thread (`interval`), or flushed to disk first (`each`); "
        "see docs/PREDICTION_LOG.md, \"Nothing is lost\"")
    spool_sync_ms: float = setting("PRONOSTICO_SPOOL_SYNC_MS", 10.0,
                                   "the `interval` mode's flush period, in milliseconds", parse=float)


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Storage, compute and the app (`settings.<attribute>`)

    Where state lives, what runs the Spark steps, and what every web worker shares.
    """

    # the noqa: a Path is immutable, and `setting` returns a dataclasses.field (ruff sees the call only)
    home: Path = setting(  # noqa: RUF009
        "PRONOSTICO_HOME", PROJECT_ROOT / "var",
        "the root of all local state: buckets, logs, Airflow's home, the SQLite log",
        parse=_path, shown="`var` in the checkout")
    storage: str = setting("PRONOSTICO_STORAGE", "local", "`local` (folders under `$PRONOSTICO_HOME/s3`) or `s3`",
                           parse=_choice("local", "s3"))
    bucket_prefix: str = setting("PRONOSTICO_BUCKET_PREFIX", "pronostico-dev",
                                 "bucket names are `<prefix>-raw`, `-processed`, `-models`, `-artifacts`")
    raw_uri: str = _bucket_uri("PRONOSTICO_RAW_URI", "raw", "the raw bucket: uploads land here and start a run")
    processed_uri: str = _bucket_uri("PRONOSTICO_PROCESSED_URI", "processed",
                                     "the processed bucket: datasets, run reports and quarantined rows")
    models_uri: str = _bucket_uri("PRONOSTICO_MODELS_URI", "models",
                                  "the models bucket: model versions and each use case's `current.json`, "
                                  "e.g. `s3://my-models`")
    artifacts_uri: str = _bucket_uri("PRONOSTICO_ARTIFACTS_URI", "artifacts",
                                     "the artifacts bucket: the code staged for EMR, and EMR's logs")
    compute: str = setting("PRONOSTICO_COMPUTE", "local", "`local` (spark-submit in local mode) or `emr`")
    db_url: str = setting("PRONOSTICO_DB_URL", MISSING,
                          "the prediction log; `mysql+pymysql://user:password@host:3306/pronostico` for MySQL/MariaDB",
                          computed=lambda context: f"sqlite:///{context['home'] / 'predictions.db'}",
                          shown="`sqlite:///$PRONOSTICO_HOME/predictions.db`")
    spool_dir: Path = setting(  # noqa: RUF009
        "PRONOSTICO_SPOOL_DIR", MISSING,
        "the host's prediction spool, written by every worker, read by the log shipper",
        parse=_path, computed=lambda context: context["home"] / "spool", shown="`$PRONOSTICO_HOME/spool`")
    shared_data: Path = setting(  # noqa: RUF009
        "PRONOSTICO_SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data",
        "the real data `make demo` uploads (synthetic data when absent)",
        parse=_path, shown="`../shared/data` beside the checkout")
    # locally a check is a stat of a file, so it can be frequent; on AWS it is an S3 request per worker, and
    # cloudformation/web.yaml sets 15 s
    model_poll_seconds: float = setting("PRONOSTICO_MODEL_POLL_SECONDS", 1.0,
                                        "how often each worker checks `current.json` for a new model (0: never)",
                                        parse=float)
    registry_keep_versions: int = setting(
        "PRONOSTICO_REGISTRY_KEEP_VERSIONS", 0,
        "the model versions each use case keeps, newest first, after each promotion and for `pronostico models "
        "prune`; a version that ever served (as model or state) is kept whatever this says; 0 keeps them all",
        parse=_count)
    secret_key: str = setting("PRONOSTICO_SECRET_KEY", "",
                              "signs the form's session cookie (CSRF token); set it on AWS",
                              shown="a key made once in `$PRONOSTICO_HOME/secret_key`")
    spark_master: str = setting("PRONOSTICO_SPARK_MASTER", "local[2]", "the master for local spark-submit")
    spark_driver_memory: str = setting("PRONOSTICO_SPARK_DRIVER_MEMORY", "4g", "driver memory for local spark-submit")
    spark_shuffle_partitions: int = setting("PRONOSTICO_SHUFFLE_PARTITIONS", 8,
                                            "`spark.sql.shuffle.partitions` of every Spark step, locally and on EMR",
                                            parse=int)
    train_params: str = setting(
        "PRONOSTICO_TRAIN_PARAMS", "",
        "training overrides (JSON) for DAG runs whose conf sets none, e.g. `{\"num_trees\": 20}`")
    extra_use_cases: str = setting(
        "PRONOSTICO_EXTRA_USE_CASES", "",
        "more use-case modules, comma-separated, beside the built-in ones (e.g. `tests.usecases.duels`); "
        "every process that trains or serves them needs it, and the module on its path")
    emr: EmrSettings = field(default_factory=EmrSettings, metadata={SECTION: EmrSettings})
    airflow: AirflowSettings = field(default_factory=AirflowSettings, metadata={SECTION: AirflowSettings})
    watcher: WatcherSettings = field(default_factory=WatcherSettings, metadata={SECTION: WatcherSettings})
    web: WebSettings = field(default_factory=WebSettings, metadata={SECTION: WebSettings})

    @property
    def bucket_uris(self) -> dict[str, str]:
        return {bucket: getattr(self, f"{bucket}_uri") for bucket in BUCKETS}

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    def environment(self) -> dict[str, str]:
        """The variables that make a child process load these very settings, whatever environment it inherits."""
        context = _top_level(self)
        return {declared.variable: declared.write(value, context) for declared, value in _values(self)}


# --- reading, writing and documenting the declarations --------------------------------------------------------------
def _declared(cls: type) -> Iterator[tuple[str, Setting]]:
    """(field name, declaration) of each setting of `cls`, sections left out."""
    for item in fields(cls):
        if SETTING in item.metadata:
            yield item.name, item.metadata[SETTING]


def sections() -> list[tuple[str, type]]:
    """(attribute, class) of each group of settings, the top level first as ("", Settings)."""
    return [("", Settings)] + [(item.name, item.metadata[SECTION]) for item in fields(Settings)
                               if SECTION in item.metadata]


def declarations() -> list[Setting]:
    return [declared for _, cls in sections() for _, declared in _declared(cls)]


def declared_variables() -> set[str]:
    return {declared.variable for declared in declarations()}


def undeclared_variables(text: str, ignore: Collection[str] = ()) -> set[str]:
    """The PRONOSTICO_* names `text` mentions that no setting declares (and `ignore` does not list)."""
    return set(VARIABLE.findall(text)) - declared_variables() - set(ignore)


def _top_level(settings: Settings) -> dict[str, Any]:
    return {name: getattr(settings, name) for name, _ in _declared(Settings)}


def _values(settings: Settings) -> Iterator[tuple[Setting, Any]]:
    for attribute, cls in sections():
        group = getattr(settings, attribute) if attribute else settings
        for name, declared in _declared(cls):
            yield declared, getattr(group, name)


def _read(cls: type, env: Mapping[str, str], context: Mapping[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, declared in _declared(cls):
        values[name] = declared.read(env, {**context, **values})  # a computed default sees the fields above it
    return values


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    top = _read(Settings, env, {})
    groups = {attribute: cls(**_read(cls, env, top)) for attribute, cls in sections() if attribute}
    return Settings(**top, **groups)


def markdown() -> str:
    """docs/CONFIGURATION.md: every setting, by section, with its variable, attribute, default and doc."""
    lines = ["# Configuration", "",
             "Every setting is an environment variable, declared once in `src/pronostico/core/config.py`. This page is",
             "generated from those declarations (a test fails when it differs):", "",
             "    python -m pronostico.core.config --markdown > docs/CONFIGURATION.md", "",
             "The defaults make `make demo` work with no configuration. A process the local stack starts gets the",
             "settings of the process that started it (`Settings.environment()`).", ""]
    for attribute, cls in sections():
        title, _, intro = (cls.__doc__ or "").strip().partition("\n")
        lines += [f"## {title}", "", " ".join(intro.split()), "",
                  "| variable | attribute | default | what |", "|---|---|---|---|"]
        prefix = f"settings.{attribute}." if attribute else "settings."
        for name, declared in _declared(cls):
            cells = [f"`{declared.variable}`", f"`{prefix}{name}`", declared.shown_default(), declared.doc]
            lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pronostico.core.config", description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true", required=True,
                        help="print the configuration reference, docs/CONFIGURATION.md")
    parser.parse_args(argv)
    sys.stdout.write(markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
