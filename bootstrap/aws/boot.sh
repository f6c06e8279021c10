#!/usr/bin/env bash
# The first thing a pronostico EC2 instance runs: the launch template's user data writes boot.env and fetches
# this script from the release. It unpacks the release's source, runs the instance role's setup
# (web_instance.sh or airflow_instance.sh) and tells CloudFormation whether the instance came up.
#   usage: boot.sh /etc/pronostico/boot.env
# Safe to run again (for example by hand over an SSM session after fixing a failure).
set -Eeuo pipefail

env_file="${1:?usage: boot.sh ENV_FILE}"
set -a
# shellcheck source=/dev/null
. "$env_file"
set +a
export HOME="${HOME:-/root}"  # cloud-init runs user data without one

exec > >(tee -a /var/log/pronostico-boot.log) 2>&1
echo "=== $(date -u +%FT%TZ) boot $PRONOSTICO_ROLE, release $PRONOSTICO_RELEASE_VERSION"

dnf install -y -q aws-cfn-bootstrap
signal() {
  /opt/aws/bin/cfn-signal --exit-code "$1" --stack "$CFN_STACK" --resource "$CFN_RESOURCE" --region "$AWS_REGION" || true
}
trap 'echo "boot failed at line $LINENO" >&2; signal 1' ERR

release_dir="/opt/pronostico/releases/$PRONOSTICO_RELEASE_VERSION"
if [ ! -f "$release_dir/.unpacked" ]; then
  mkdir -p "$release_dir"
  aws s3 cp --only-show-errors --region "$AWS_REGION" \
    "s3://$PRONOSTICO_RELEASE_BUCKET/releases/$PRONOSTICO_RELEASE_VERSION/pronostico-src.tar.gz" - \
    | tar -xz -C "$release_dir"
  touch "$release_dir/.unpacked"
fi
ln -sfn "$release_dir" /opt/pronostico/current

"$release_dir/bootstrap/aws/${PRONOSTICO_ROLE}_instance.sh" "$env_file"
echo "=== $(date -u +%FT%TZ) $PRONOSTICO_ROLE ready"
signal 0
