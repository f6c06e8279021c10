#!/usr/bin/env bash
# EMR bootstrap action: Python 3.11 for PySpark (spark-env exports PYSPARK_PYTHON=/usr/bin/python3.11) with the
# packages the pronostico zip imports, pinned to the versions in uv.lock (tests/infra checks that they match).
# Runs on every node before Spark starts. Idempotent: a second run changes nothing.
set -euo pipefail

PYTHON=/usr/bin/python3.11
PINS=(
  numpy==1.26.4
  pandas==2.3.3
  pyarrow==18.1.0
  python-dateutil==2.9.0.post0
  pytz==2026.6
  tzdata==2026.6
  six==1.17.0
  boto3==1.44.5
  botocore==1.44.5
  s3transfer==0.19.3
  jmespath==1.1.0
  urllib3==2.8.0
)

if [ ! -x "$PYTHON" ] || ! "$PYTHON" -m pip --version >/dev/null 2>&1; then
  # Amazon Linux 2023, which EMR 7 runs on, packages 3.11 beside its default 3.9.
  sudo dnf install -y -q python3.11 python3.11-pip
fi

missing=()
for pin in "${PINS[@]}"; do
  name="${pin%%==*}"
  want="${pin##*==}"
  have="$("$PYTHON" -m pip show "$name" 2>/dev/null | sed -n 's/^Version: //p')"
  [ "$have" = "$want" ] || missing+=("$pin")
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "installing for $PYTHON: ${missing[*]}" >&2
  # System-wide, so that the YARN containers' users import the same packages; wheels only, no compiler here.
  sudo "$PYTHON" -m pip install --quiet --no-warn-script-location --only-binary=:all: "${missing[@]}"
fi
"$PYTHON" -c 'import numpy, pandas, pyarrow, boto3; print("python3.11 ready: numpy", numpy.__version__)'
