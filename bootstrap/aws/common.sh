# Functions shared by web_instance.sh and airflow_instance.sh (sourced, not run).
# Every function is idempotent, so that an instance's setup can be run again.
# shellcheck shell=bash

RELEASE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck disable=SC2034  # used by the scripts that source this file
VENV="$RELEASE_DIR/.venv"
PYTHON311=/usr/bin/python3.11

load_boot_env() {
  set -a
  # shellcheck source=/dev/null
  . "${1:?boot.env path}"
  set +a
  export HOME="${HOME:-/root}" AWS_DEFAULT_REGION="$AWS_REGION"
}

install_packages() {
  dnf install -y -q "$@"
}

ensure_service_user() {  # name home
  id -u "$1" >/dev/null 2>&1 || useradd --system --home-dir "$2" --create-home --shell /sbin/nologin "$1"
  install -d -o "$1" -g "$1" -m 0750 "$2"
}

# The release's locked environment (uv.lock), with only the extra this host runs.
sync_venv() {  # extra
  local uv
  uv="$(PYTHON="$PYTHON311" "$RELEASE_DIR/bootstrap/local/ensure_uv.sh")"  # the pinned uv's path
  (cd "$RELEASE_DIR" && UV_PYTHON_DOWNLOADS=never UV_CACHE_DIR=/var/cache/uv \
    "$uv" sync --locked --no-dev --extra "$1" --python "$PYTHON311" --quiet)
}

secret_string() {  # secret ARN -> its JSON on stdout
  aws secretsmanager get-secret-value --region "$AWS_REGION" --secret-id "$1" --query SecretString --output text
}

json_field() {  # field -> the field of the JSON on stdin
  "$PYTHON311" -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"
}

write_private_file() {  # path (content on stdin): readable by root only
  install -d -m 0755 "$(dirname "$1")"
  (umask 077 && cat > "$1.tmp")
  mv "$1.tmp" "$1"
}

install_units() {  # unit file names in bootstrap/systemd/
  local unit
  for unit in "$@"; do
    install -m 0644 "$RELEASE_DIR/bootstrap/systemd/$unit" "/etc/systemd/system/$unit"
  done
  systemctl daemon-reload
}

wait_for_http() {  # url seconds
  local deadline=$((SECONDS + $2))
  until curl -fsS -o /dev/null --max-time 5 "$1"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "$1 did not answer within $2 s" >&2
      return 1
    fi
    sleep 3
  done
}
