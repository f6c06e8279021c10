#!/usr/bin/env bash
# Set up the Airflow host (run by boot.sh): Airflow 3 from this release's locked environment (extra
# "airflow"), its metadata in a local PostgreSQL, the API user from Secrets Manager, and the api-server,
# scheduler, dag-processor and triggerer under systemd with the LocalExecutor. The DAG runs on EMR
# (PRONOSTICO_COMPUTE=emr). Returns once the API server reports healthy.
#   usage: airflow_instance.sh /etc/pronostico/boot.env
set -Eeuo pipefail
# shellcheck source=bootstrap/aws/common.sh
. "$(dirname "$0")/common.sh"
load_boot_env "${1:?usage: airflow_instance.sh BOOT_ENV}"

AIRFLOW_HOME=/var/lib/airflow
ENV_FILE=/etc/pronostico/airflow.env
KEYS_FILE=/etc/pronostico/airflow-keys.env
PASSWORDS_FILE="$AIRFLOW_HOME/passwords.json"
COMPONENTS=(api-server scheduler dag-processor triggerer)

install_packages python3.11 python3-pip postgresql16-server
ensure_service_user airflow "$AIRFLOW_HOME"
sync_venv airflow

# The metadata database: local PostgreSQL, reached over its socket with peer authentication (no password).
[ -f /var/lib/pgsql/data/PG_VERSION ] || postgresql-setup --initdb
systemctl enable --now postgresql
psql_admin() { runuser -u postgres -- psql -tAc "$1"; }
[ "$(psql_admin "SELECT 1 FROM pg_roles WHERE rolname = 'airflow'")" = 1 ] || runuser -u postgres -- createuser airflow
[ "$(psql_admin "SELECT 1 FROM pg_database WHERE datname = 'airflow'")" = 1 ] \
  || runuser -u postgres -- createdb --owner airflow airflow

# Keys the components must share; made once, so that a re-run keeps sessions and encrypted connections.
if [ ! -f "$KEYS_FILE" ]; then
  "$PYTHON311" -c '
import base64, os, secrets
print("AIRFLOW__CORE__FERNET_KEY=" + base64.urlsafe_b64encode(os.urandom(32)).decode())
print("AIRFLOW__API_AUTH__JWT_SECRET=" + secrets.token_urlsafe(48))
print("AIRFLOW__API__SECRET_KEY=" + secrets.token_urlsafe(48))
' | write_private_file "$KEYS_FILE"
fi

credentials="$(secret_string "$AIRFLOW_SECRET_ARN")"
api_user="$(json_field username <<<"$credentials")"
# The simple auth manager reads the API user's password from this file instead of generating one.
json_field password <<<"$credentials" | "$PYTHON311" -c 'import json, sys; print(json.dumps({sys.argv[1]: sys.stdin.read().strip()}))' "$api_user" \
  | write_private_file "$PASSWORDS_FILE"
chown airflow:airflow "$PASSWORDS_FILE"

{
  cat "$KEYS_FILE"
  cat <<ENV
AIRFLOW_HOME=$AIRFLOW_HOME
AIRFLOW__CORE__DAGS_FOLDER=/opt/pronostico/current/dags
AIRFLOW__CORE__EXECUTOR=LocalExecutor
AIRFLOW__CORE__PARALLELISM=8
AIRFLOW__CORE__LOAD_EXAMPLES=False
AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=False
AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=$api_user:admin
AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=$PASSWORDS_FILE
AIRFLOW__CORE__EXECUTION_API_SERVER_URL=http://127.0.0.1:$AIRFLOW_PORT/execution/
AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=postgresql+psycopg2://airflow@/airflow?host=/run/postgresql
AIRFLOW__API__HOST=0.0.0.0
AIRFLOW__API__PORT=$AIRFLOW_PORT
AIRFLOW_CONN_AWS_DEFAULT=aws://?region_name=$AWS_REGION
AWS_DEFAULT_REGION=$AWS_REGION
PRONOSTICO_HOME=$AIRFLOW_HOME/pronostico
PRONOSTICO_COMPUTE=emr
PRONOSTICO_STORAGE=s3
PRONOSTICO_BUCKET_PREFIX=$PRONOSTICO_BUCKET_PREFIX
PRONOSTICO_EMR_RELEASE=$PRONOSTICO_EMR_RELEASE
PRONOSTICO_EMR_SUBNET_IDS=$PRONOSTICO_EMR_SUBNET_IDS
PRONOSTICO_EMR_SERVICE_ROLE=$PRONOSTICO_EMR_SERVICE_ROLE
PRONOSTICO_EMR_INSTANCE_PROFILE=$PRONOSTICO_EMR_INSTANCE_PROFILE
PRONOSTICO_EMR_SECURITY_CONFIGURATION=$PRONOSTICO_EMR_SECURITY_CONFIGURATION
PRONOSTICO_EMR_PRIMARY_SECURITY_GROUP=$PRONOSTICO_EMR_PRIMARY_SECURITY_GROUP
PRONOSTICO_EMR_CORE_SECURITY_GROUP=$PRONOSTICO_EMR_CORE_SECURITY_GROUP
PRONOSTICO_EMR_SERVICE_ACCESS_SECURITY_GROUP=$PRONOSTICO_EMR_SERVICE_ACCESS_SECURITY_GROUP
PRONOSTICO_EMR_IDLE_TIMEOUT_SECONDS=$PRONOSTICO_EMR_IDLE_TIMEOUT_SECONDS
PRONOSTICO_EMR_POLL_SECONDS=$PRONOSTICO_EMR_POLL_SECONDS
PRONOSTICO_EMR_CORE_SPOT_UNITS=$PRONOSTICO_EMR_CORE_SPOT_UNITS
ENV
} | write_private_file "$ENV_FILE"

(
  set -a
  # shellcheck source=/dev/null
  . "$ENV_FILE"  # read as root (the file is 0600); runuser keeps the environment
  set +a
  cd "$AIRFLOW_HOME" && runuser -u airflow -- "$VENV/bin/airflow" db migrate
)

install_units pronostico-airflow@.service
for component in "${COMPONENTS[@]}"; do
  systemctl enable "pronostico-airflow@$component"
  systemctl restart "pronostico-airflow@$component"
done
wait_for_http "http://127.0.0.1:$AIRFLOW_PORT/api/v2/monitor/health" 300
