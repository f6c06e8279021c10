#!/usr/bin/env bash
# Set up a web instance (run by boot.sh): the app from this release in its locked environment, the env file
# built from Secrets Manager, the database schema migrated, nginx rendered from the one template in front of
# gunicorn, and the log shipper; gunicorn and the shipper run under systemd. Returns once /healthz answers
# through nginx.
#   usage: web_instance.sh /etc/pronostico/boot.env
set -Eeuo pipefail
# shellcheck source=bootstrap/aws/common.sh
. "$(dirname "$0")/common.sh"
load_boot_env "${1:?usage: web_instance.sh BOOT_ENV}"

APP_BIND=127.0.0.1:8001
ENV_FILE=/etc/pronostico/env
RDS_CA=/etc/pronostico/rds-ca.pem

install_packages python3.11 python3-pip nginx
ensure_service_user pronostico /var/lib/pronostico
sync_venv web

# RDS certificates chain to Amazon's RDS roots, which are not in the system trust store. The URL is a boot
# setting so that a rehearsal, which cannot reach AWS's trust store, can serve its own database's CA.
curl -fsS --retry 5 -o "$RDS_CA.tmp" \
  "${RDS_CA_BUNDLE_URL:-https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem}"
mv "$RDS_CA.tmp" "$RDS_CA"
chmod 0644 "$RDS_CA"

db_url="$(secret_string "$DB_SECRET_ARN" | "$PYTHON311" "$RELEASE_DIR/bootstrap/aws/database_url.py" "$RDS_CA")"
write_private_file "$ENV_FILE" <<ENV
PRONOSTICO_HOME=/var/lib/pronostico
PRONOSTICO_STORAGE=s3
PRONOSTICO_BUCKET_PREFIX=$PRONOSTICO_BUCKET_PREFIX
PRONOSTICO_DB_URL="$db_url"
PRONOSTICO_SECRET_KEY=$(secret_string "$APP_SECRET_ARN" | json_field secret_key)
PRONOSTICO_BIND=$APP_BIND
PRONOSTICO_WORKERS=$(($(nproc) * 2))
PRONOSTICO_MODEL_POLL_SECONDS=$PRONOSTICO_MODEL_POLL_SECONDS
AWS_DEFAULT_REGION=$AWS_REGION
ENV

# Every instance runs the migrations at boot; a MySQL named lock lets one at a time do it.
(
  set -a
  # shellcheck source=/dev/null
  . "$ENV_FILE"
  set +a
  "$VENV/bin/python" "$RELEASE_DIR/bootstrap/aws/migrate_database.py"
)

"$VENV/bin/python" -m pronostico.hosting.nginx --listen-port "$WEB_PORT" --upstream "$APP_BIND" \
  --static-dir "$RELEASE_DIR/src/app/static" --out /etc/nginx/conf.d/pronostico.conf
nginx -t

install_units pronostico-web.service pronostico-log-shipper.service
systemctl enable nginx pronostico-web pronostico-log-shipper
systemctl restart pronostico-web pronostico-log-shipper
systemctl reload-or-restart nginx
wait_for_http "http://127.0.0.1:$WEB_PORT/healthz" 300
