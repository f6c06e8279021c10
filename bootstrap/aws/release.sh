#!/usr/bin/env bash
# Build a release of pronostico for AWS and, with --bucket, upload it where the stack reads it.
#   usage: bootstrap/aws/release.sh [--bucket BUCKET] [--version VERSION] [--out DIR] [--lambda-zip ZIP] [--allow-dirty]
# dist/release/<version>/ (or --out DIR) receives, all from the commit at HEAD:
#   cloudformation/*.yaml   the parent and nested templates
#   boot.sh                 fetched by the EC2 user data (bootstrap/aws/boot.sh)
#   pronostico-src.tar.gz   the source, plus the web tier's vendored static files (git ignores them)
#   lambda_trigger.zip      the trigger Lambda's package (pronostico.orchestration.packaging, unless --lambda-zip is given)
# The version defaults to the commit's short hash. Needs python3 (PYTHON=...), git, tar and gzip, and the AWS CLI
# for --bucket: the static files are vendored here when missing or stale, and nothing needs `make install`.
set -euo pipefail
cd "$(dirname "$0")/../.."

bucket="" version="" out="" lambda_zip="" allow_dirty=""
while [ $# -gt 0 ]; do
  case "$1" in
    --bucket) bucket="${2:?--bucket needs a name}"; shift 2 ;;
    --version) version="${2:?--version needs a value}"; shift 2 ;;
    --out) out="${2:?--out needs a directory}"; shift 2 ;;
    --lambda-zip) lambda_zip="${2:?--lambda-zip needs a path}"; shift 2 ;;
    --allow-dirty) allow_dirty=1; shift ;;
    -h | --help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

if [ -z "$allow_dirty" ] && [ -n "$(git status --porcelain --untracked-files=no)" ]; then
  echo "uncommitted changes: a release is built from HEAD, so commit first (or pass --allow-dirty)" >&2
  exit 1
fi
version="${version:-$(git rev-parse --short=12 HEAD)}"
out="${out:-dist/release/$version}"
rm -rf "$out"
mkdir -p "$out"

python="${PYTHON:-python3}"
# packaging and vendor.py import the standard library only: no locked environment is needed
if [ -z "$lambda_zip" ]; then
  PYTHONPATH=src "$python" -m pronostico.orchestration.packaging lambda-zip "$out/lambda_trigger.zip"
else
  cp "$lambda_zip" "$out/lambda_trigger.zip"
fi
"$python" src/app/frontend/vendor.py

git archive --format=tar -o "$out/pronostico-src.tar" HEAD
tar -rf "$out/pronostico-src.tar" src/app/static/vendor
gzip -9 "$out/pronostico-src.tar"
git archive --format=tar HEAD cloudformation | tar -x -C "$out"
git show HEAD:bootstrap/aws/boot.sh > "$out/boot.sh"
echo "release $version built in $out"

if [ -n "$bucket" ]; then
  aws s3 sync --only-show-errors "$out" "s3://$bucket/releases/$version/"
  echo "uploaded to s3://$bucket/releases/$version/ (stack parameters: ReleaseBucket=$bucket ReleaseVersion=$version)"
fi
