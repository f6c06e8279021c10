#!/usr/bin/env bash
# Make sure the pinned uv is at $HOME/.local/bin/uv and print that path on stdout: callers run that path,
# never whichever uv comes first on PATH. An existing uv of the pinned version is left alone.
# It installs with python3's standard library only (no pip, so PEP 668 and a Python without pip are no
# obstacle): the uv wheel for this platform from PyPI's JSON API, checked against the sha256 digest PyPI
# gives, and its uv and uvx binaries unzipped into $HOME/.local/bin.
#   UV_VERSION          the version to install (default below)
#   PYTHON              the Python to install with (default python3; any 3.9+ will do)
#   PYPI_JSON_URL       PyPI's JSON API (default https://pypi.org/pypi)
#   UV_WHEEL_CACHE_DIR  a directory that keeps downloaded wheels; a kept one is used when its digest matches
set -euo pipefail

UV_VERSION="${UV_VERSION:-0.13.8}"
bin_dir="$HOME/.local/bin"
uv="$bin_dir/uv"

installed_version() {
  "$uv" --version 2>/dev/null | cut -d ' ' -f 2
}

if [ -x "$uv" ] && [ "$(installed_version)" = "$UV_VERSION" ]; then
  echo "$uv"
  exit 0
fi

echo "installing uv $UV_VERSION from PyPI into $bin_dir" >&2
"${PYTHON:-python3}" "$(dirname "$0")/install_uv.py" "$UV_VERSION" "$bin_dir" >&2

if [ "$(installed_version)" != "$UV_VERSION" ]; then
  echo "$uv does not report version $UV_VERSION after installing it" >&2
  exit 1
fi
echo "$uv"
