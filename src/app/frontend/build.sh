#!/usr/bin/env bash
# Vendor the web app's front-end libraries from the npm registry into src/app/static/vendor/ (git-ignored),
# so that the pages load nothing from the internet. Run by `make install` and by bootstrap/aws/release.sh;
# needs python3 only (vendor.py checks each tarball against package-lock.json; node and npm are not used).
#   usage: build.sh [--force]   (without it, an up-to-date vendor/ is left alone)
set -euo pipefail
exec "${PYTHON:-python3}" "$(dirname "$0")/vendor.py" "$@"
