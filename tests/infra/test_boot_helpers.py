"""The helpers the EC2 setup scripts share (bootstrap/aws/common.sh), run in bash with no AWS around."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

from .conftest import BOOTSTRAP_DIR


def run_with_common(script: str, tmp_path: Path) -> str:
    common = BOOTSTRAP_DIR / "aws" / "common.sh"
    done = subprocess.run(["bash", "-c", f'set -Eeuo pipefail; PYTHON311=python3; . "{common}"; {script}'],
                          capture_output=True, text=True, timeout=60, check=True, cwd=tmp_path)
    return done.stdout


def test_write_private_file_leaves_a_file_only_root_can_read(tmp_path: Path) -> None:
    target = tmp_path / "etc" / "env"
    run_with_common(f'echo "PRONOSTICO_SECRET_KEY=s3cret" | write_private_file "{target}"', tmp_path)
    assert target.read_text() == "PRONOSTICO_SECRET_KEY=s3cret\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert not (tmp_path / "etc" / "env.tmp").exists()  # written beside, then moved into place in one step


def test_json_field_reads_one_field_of_a_secret(tmp_path: Path) -> None:
    out = run_with_common("""echo '{"username": "admin", "password": "p4ss"}' | json_field password""", tmp_path)
    assert out == "p4ss\n"


def test_common_knows_the_release_it_belongs_to(tmp_path: Path) -> None:
    out = run_with_common('echo "$RELEASE_DIR|$VENV"', tmp_path)
    release = BOOTSTRAP_DIR.parent
    assert out.strip() == f"{release}|{release}/.venv"
