#!/usr/bin/env bash
# Install uv (pinned) for the current user when it is missing. uv itself comes from PyPI,
# the only registry this project may reach besides Debian's and npm's.
set -euo pipefail

UV_VERSION="${UV_VERSION:-0.13.8}"

if command -v uv >/dev/null 2>&1; then
  exit 0
fi
if [ -x "${HOME}/.local/bin/uv" ]; then
  exit 0
fi
echo "installing uv ${UV_VERSION} from PyPI" >&2
python3 -m pip install --quiet --user "uv==${UV_VERSION}"
