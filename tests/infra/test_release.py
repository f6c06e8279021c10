"""A release builds from a clean clone with Python 3.11, uv, git, make, tar and gzip alone, and uv installs
without pip.

The release is built with a PATH that holds symlinks to those tools and to a few POSIX basics, and nothing else:
no java, node, npm or `.venv`. The uv wheel (about 20 MB) is kept in pytest's cache between runs; ensure_uv.sh
reuses it only when it matches the digest PyPI gives.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from pronostico.core.config import PROJECT_ROOT

from .conftest import BOOTSTRAP_DIR

ENSURE_UV = BOOTSTRAP_DIR / "local" / "ensure_uv.sh"
PINNED_UV = re.search(r'UV_VERSION="\$\{UV_VERSION:-([0-9.]+)\}"', ENSURE_UV.read_text())[1]  # type: ignore[index]
PYTHON311 = Path(sys.base_prefix) / "bin" / "python3.11"  # the interpreter itself, outside any environment
POSIX_BASICS = ("sh", "bash", "cat", "cp", "mkdir", "rm", "mv", "ls", "sed", "grep", "dirname", "basename", "env",
                "head", "tr", "date", "touch", "chmod", "find", "cut")
RELEASE_TOOLS = ("git", "make", "tar", "gzip")
VENDORED = {"chart.umd.min.js", "tom-select.complete.min.js", "tom-select.default.min.css", "LICENSE.chart.js",
            "LICENSE.tom-select", "versions.json"}


def symlink_dir(where: Path, tools: dict[str, str]) -> Path:
    """A directory of symlinks, name -> the tool's path, to be the whole PATH of a run."""
    where.mkdir(parents=True)
    for name, target in tools.items():
        (where / name).symlink_to(target)
    return where


def found(*names: str) -> dict[str, str]:
    tools = {}
    for name in names:
        path = shutil.which(name)
        if path is None:
            pytest.fail(f"{name} is not on PATH")
        tools[name] = os.path.realpath(path)
    return tools


def bare_env(home: Path, *path: Path, **extra: str) -> dict[str, str]:
    return {"HOME": str(home), "PATH": os.pathsep.join(map(str, path)), "LC_ALL": "C", **extra}


@pytest.fixture
def uv_wheels(request: pytest.FixtureRequest) -> str:
    return str(request.config.cache.mkdir("uv-wheels"))


@pytest.fixture
def pipless_python(tmp_path: Path) -> Path:
    """The bin directory of a Python 3.11 environment made without pip."""
    venv = tmp_path / "nopip"
    subprocess.run([str(PYTHON311), "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    assert subprocess.run([str(venv / "bin" / "python3"), "-c", "import pip"], capture_output=True,
                          timeout=60).returncode != 0
    return venv / "bin"


def fake_uv(where: Path, version: str) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    uv = where / "uv"
    uv.write_text(f'#!/bin/sh\necho "uv {version}"\n')
    uv.chmod(0o755)
    return uv


def run_ensure_uv(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(ENSURE_UV)], env=env, capture_output=True, text=True, timeout=600, check=True)


def uv_version(uv: Path) -> str:
    return subprocess.run([str(uv), "--version"], capture_output=True, text=True, timeout=60, check=True).stdout


def test_ensure_uv_installs_the_pinned_uv_with_a_python_that_has_no_pip(tmp_path: Path, pipless_python: Path,
                                                                      uv_wheels: str) -> None:
    home = tmp_path / "home"
    other_uv = fake_uv(tmp_path / "other", "0.0.1")  # an unrelated uv earlier on PATH must not count
    basics = symlink_dir(tmp_path / "basics", found("bash", "cut", "dirname"))
    env = bare_env(home, other_uv.parent, pipless_python, basics, UV_WHEEL_CACHE_DIR=uv_wheels)
    done = run_ensure_uv(env)
    installed = home / ".local" / "bin" / "uv"
    assert done.stdout == f"{installed}\n"
    assert uv_version(installed).startswith(f"uv {PINNED_UV} ")
    assert uv_version(home / ".local" / "bin" / "uvx").startswith(f"uvx {PINNED_UV}")


def test_ensure_uv_replaces_another_version_and_leaves_the_pinned_one_alone(tmp_path: Path, uv_wheels: str) -> None:
    home = tmp_path / "home"
    installed = fake_uv(home / ".local" / "bin", "0.1.0")
    basics = symlink_dir(tmp_path / "basics", {**found("bash", "cut", "dirname"), "python3": str(PYTHON311)})
    env = bare_env(home, basics, UV_WHEEL_CACHE_DIR=uv_wheels)
    assert run_ensure_uv(env).stdout == f"{installed}\n"
    assert uv_version(installed).startswith(f"uv {PINNED_UV} ")
    before = installed.stat()
    again = run_ensure_uv(env)
    assert again.stdout == f"{installed}\n"
    assert "installing" not in again.stderr
    assert (installed.stat().st_ino, installed.stat().st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean clone of HEAD: no vendored files, no environment, nothing git ignores."""
    where = tmp_path_factory.mktemp("clone") / "pronostico"
    subprocess.run(["git", "clone", "--quiet", str(PROJECT_ROOT), str(where)], check=True, timeout=300)
    assert not (where / "src" / "app" / "static" / "vendor").exists()
    return where


@pytest.fixture(scope="module")
def release_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PATH with the release's tools only (python3 is Python 3.11 itself, with no environment around it)."""
    tools = {**found(*RELEASE_TOOLS, *POSIX_BASICS), "python3": str(PYTHON311)}
    tools["uv"] = os.path.realpath(shutil.which("uv") or Path.home() / ".local" / "bin" / "uv")
    return symlink_dir(tmp_path_factory.mktemp("release-path") / "bin", tools)


@pytest.fixture(scope="module")
def made_release(clone: Path, release_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`make aws-release` in the clone, with nothing but the release's tools on PATH."""
    for absent in ("java", "node", "npm", "pip", "python"):
        assert shutil.which(absent, path=str(release_path)) is None
    env = bare_env(tmp_path_factory.mktemp("home"), release_path)
    subprocess.run(["make", "aws-release"], cwd=clone, env=env, check=True, timeout=600)
    version = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=clone, capture_output=True, text=True,
                             check=True, timeout=60).stdout.strip()
    return clone / "dist" / "release" / version


def tar_members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as archive:
        return {member.name: archive.extractfile(member).read()  # type: ignore[union-attr]
                for member in archive.getmembers() if member.isfile()}


def locked_versions(root: Path) -> dict[str, str]:
    packages = json.loads((root / "src" / "app" / "frontend" / "package-lock.json").read_text())["packages"]
    return {name: packages[f"node_modules/{name}"]["version"] for name in ("chart.js", "tom-select")}


def test_make_aws_release_in_a_clean_clone_carries_the_source_and_the_vendored_files(made_release: Path,
                                                                                     clone: Path) -> None:
    members = tar_members(made_release / "pronostico-src.tar.gz")
    vendored = {name.rsplit("/", 1)[-1] for name in members if name.startswith("src/app/static/vendor/")}
    assert vendored >= VENDORED
    assert json.loads(members["src/app/static/vendor/versions.json"]) == locked_versions(clone)
    for source in ("pyproject.toml", "uv.lock", "bootstrap/local/ensure_uv.sh", "bootstrap/local/install_uv.py",
                   "src/pronostico/core/config.py", "src/app/frontend/vendor.py"):
        assert members[source] == (clone / source).read_bytes(), source
    assert {path.name for path in (made_release / "cloudformation").glob("*.yaml")} >= {"main.yaml", "web.yaml"}
    assert (made_release / "boot.sh").read_bytes() == (clone / "bootstrap" / "aws" / "boot.sh").read_bytes()


def test_the_release_s_lambda_package_holds_the_handler_and_imports_with_the_standard_library(
        made_release: Path, clone: Path) -> None:
    package = made_release / "lambda_trigger.zip"
    with zipfile.ZipFile(package) as archive:
        names = set(archive.namelist())
        assert archive.read("lambda_trigger/handler.py") == (clone / "src/lambda_trigger/handler.py").read_bytes()
    assert {"lambda_trigger/__init__.py", "pronostico/__init__.py", "pronostico/core/config.py"} <= names
    imported = subprocess.run([str(PYTHON311), "-I", "-c", "import sys; sys.path.insert(0, sys.argv[1]); "
                               "from lambda_trigger.handler import handler; print(callable(handler))", str(package)],
                              capture_output=True, text=True, timeout=60, check=True)
    assert imported.stdout == "True\n"


def test_release_sh_keeps_its_options_and_vendors_again_when_the_files_are_stale(
        made_release: Path, clone: Path, release_path: Path, tmp_path: Path) -> None:
    stale = clone / "src" / "app" / "static" / "vendor" / "versions.json"
    stale.write_text("{}\n")
    package = tmp_path / "given.zip"
    with zipfile.ZipFile(package, "w") as archive:
        archive.writestr("lambda_trigger/handler.py", "def handler(event, context):\n    return event\n")
    (clone / "README.md").write_text("changed\n")  # a dirty tree, which only --allow-dirty may release
    out = tmp_path / "out"
    env = bare_env(tmp_path / "home", release_path)
    command = [str(clone / "bootstrap" / "aws" / "release.sh"), "--version", "v-test", "--out", str(out),
               "--lambda-zip", str(package)]
    refused = subprocess.run(command, cwd=clone, env=env, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1 and "uncommitted changes" in refused.stderr
    subprocess.run([*command, "--allow-dirty"], cwd=clone, env=env, check=True, timeout=300)
    assert (out / "lambda_trigger.zip").read_bytes() == package.read_bytes()
    members = tar_members(out / "pronostico-src.tar.gz")
    assert json.loads(members["src/app/static/vendor/versions.json"]) == locked_versions(clone)
    assert json.loads(stale.read_text()) == locked_versions(clone)
