"""The templates and scripts pass their linters and scanners: cfn-lint, checkov, shellcheck, systemd-analyze."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pronostico.core.config import PROJECT_ROOT

from .conftest import BOOTSTRAP_DIR, TEMPLATES_DIR, load_template, resources, tool

CHECKOV = PROJECT_ROOT / "tools" / "checkov" / ".venv" / "bin" / "checkov"
SKIP_COMMENT = re.compile(r"#\s*checkov:skip=([A-Z0-9_]+):(.*)")


def test_cfn_lint_reports_nothing_on_any_template() -> None:
    """0 errors and 0 warnings: anything cfn-lint would say is fixed, or suppressed inline with a reason."""
    templates = sorted(str(p) for p in TEMPLATES_DIR.glob("*.yaml"))
    done = subprocess.run([tool("cfn-lint"), "--format", "parseable", *templates],
                          capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == ""


@pytest.fixture(scope="module")
def checkov_results() -> dict[str, Any]:
    if not CHECKOV.exists():
        pytest.fail(f"{CHECKOV} is missing: run `make install` (it syncs tools/checkov)")
    done = subprocess.run([str(CHECKOV), "--directory", str(TEMPLATES_DIR), "--framework", "cloudformation",
                           "--output", "json", "--skip-download"],
                          capture_output=True, text=True, timeout=300, check=False, cwd=PROJECT_ROOT)
    report = json.loads(done.stdout)
    return report[0] if isinstance(report, list) else report


def test_checkov_finds_no_failed_check(checkov_results: dict[str, Any]) -> None:
    summary = checkov_results["summary"]
    failed = [(c["check_id"], c["file_path"], c["resource"]) for c in checkov_results["results"]["failed_checks"]]
    assert summary["parsing_errors"] == 0
    assert summary["passed"] > 100  # the scan really read the templates
    assert failed == []


def inline_skips() -> set[tuple[str, str]]:
    """(template file, check id) of every `# checkov:skip=ID:reason` comment; each must give a reason."""
    skips = set()
    for path in TEMPLATES_DIR.glob("*.yaml"):
        for match in SKIP_COMMENT.finditer(path.read_text()):
            check_id, reason = match.groups()
            assert len(reason.split()) >= 5, f"{path.name}: the skip of {check_id} needs a written reason"
            skips.add((path.name, check_id))
    return skips


def test_every_checkov_skip_is_inline_with_a_reason_and_still_needed(checkov_results: dict[str, Any]) -> None:
    skipped = {(Path(c["file_path"]).name, c["check_id"]) for c in checkov_results["results"]["skipped_checks"]}
    assert skipped == inline_skips()  # no skip from elsewhere (a config file), and no stale skip comment


def shell_scripts() -> list[Path]:
    return sorted(p for p in BOOTSTRAP_DIR.rglob("*.sh"))


def test_shellcheck_is_clean_on_every_bootstrap_script() -> None:
    scripts = [str(p.relative_to(PROJECT_ROOT)) for p in shell_scripts()]
    assert {"bootstrap/emr/bootstrap.sh", "bootstrap/aws/boot.sh", "bootstrap/local/ensure_uv.sh"} <= set(scripts)
    done = subprocess.run([tool("shellcheck"), "--external-sources", *scripts], capture_output=True, text=True,
                          timeout=120, check=False, cwd=PROJECT_ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


def test_scripts_that_are_run_are_executable_bash() -> None:
    for path in shell_scripts():
        if path.name == "common.sh":  # sourced, never run
            continue
        assert path.read_text().startswith("#!/usr/bin/env bash\n"), path
        assert path.stat().st_mode & 0o111, f"{path} is not executable"


def launch_template_user_data() -> dict[str, str]:
    """Each launch template's user data script, with CloudFormation's ${...} references filled in."""
    scripts = {}
    for path in TEMPLATES_DIR.glob("*.yaml"):
        for name, body in resources(load_template(path), "AWS::EC2::LaunchTemplate").items():
            sub = body["Properties"]["LaunchTemplateData"]["UserData"]["Fn::Base64"]["Fn::Sub"]
            text = sub[0] if isinstance(sub, list) else sub
            scripts[f"{path.stem}.{name}"] = re.sub(r"\$\{[A-Za-z0-9:.]+\}", "placeholder", text)
    return scripts


def test_shellcheck_is_clean_on_the_user_data_in_the_templates() -> None:
    scripts = launch_template_user_data()
    assert set(scripts) == {"orchestration.AirflowLaunchTemplate", "web.WebLaunchTemplate"}
    for name, script in scripts.items():
        done = subprocess.run([tool("shellcheck"), "-"], input=script, capture_output=True, text=True,
                              timeout=60, check=False)
        assert done.returncode == 0, f"{name}:\n{done.stdout}"


def test_systemd_units_verify(tmp_path: Path) -> None:
    """systemd-analyze verify in a scratch root holding the system's units and stand-ins for the venv's commands."""
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing: bootstrap/local/install_system_packages.sh systemd"
    root = tmp_path / "root"
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    units = root / "etc/systemd/system"
    units.mkdir(parents=True)
    for unit in (BOOTSTRAP_DIR / "systemd").glob("*.service"):
        shutil.copy(unit, units)
    (units / "postgresql.service").write_text("[Service]\nExecStart=/bin/true\n")  # a package's unit on AL2023
    venv_bin = root / "opt/pronostico/current/.venv/bin"
    venv_bin.mkdir(parents=True)
    for command in ("gunicorn", "python", "airflow"):
        (venv_bin / command).write_text("#!/bin/sh\n")
        (venv_bin / command).chmod(0o755)
    (root / "bin").mkdir()
    shutil.copy("/bin/true", root / "bin/true")
    names = ["pronostico-web.service", "pronostico-log-shipper.service",
             *(f"pronostico-airflow@{c}.service" for c in ("api-server", "scheduler", "dag-processor", "triggerer"))]
    done = subprocess.run([analyze, "verify", "--man=no", f"--root={root}", *names], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0 and done.stderr.strip() == "", done.stderr
