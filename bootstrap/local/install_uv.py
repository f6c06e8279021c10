"""Install uv's binaries from its PyPI wheel with the standard library only (ensure_uv.sh runs this).

    python3 install_uv.py VERSION BIN_DIR

The wheel for this platform comes from PyPI's JSON API, must match the sha256 digest that API gives, and its
`uv` and `uvx` scripts are unzipped into BIN_DIR. No pip: Debian's Python refuses `pip install --user`
(PEP 668), and some Pythons have no pip. Runs on any Python 3.9+, so that a system's stock python3 will do.
PYPI_JSON_URL points at a mirror of the JSON API; UV_WHEEL_CACHE_DIR keeps the downloaded wheel for reuse.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from typing import Any
from urllib.parse import urljoin

Version = tuple[int, int]
# wheel platform prefix, architecture, the highest version of that platform this system runs
SystemTag = tuple[str, str, Version]
LEGACY = {"manylinux1": "manylinux_2_5", "manylinux2010": "manylinux_2_12", "manylinux2014": "manylinux_2_17"}


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=60) as answer:
        return json.load(answer)


def release_files(api: str, version: str) -> list[dict[str, Any]]:
    """The release's files as PyPI lists them, with absolute URLs."""
    url = f"{api}/uv/{version}/json"
    try:
        files = get_json(url)["urls"]
    except urllib.error.HTTPError as error:
        if error.code != 404:
            raise
        # some PyPI mirrors serve only the project's document, which lists every release
        url = f"{api}/uv/json"
        files = get_json(url)["releases"].get(version)
        if not files:
            sys.exit(f"uv {version} is not on {api}")
    return [dict(file, url=urljoin(url, file["url"])) for file in files]


def two_numbers(text: str) -> Version:
    parts = [*text.split("."), "0"]
    return int(parts[0]), int(parts[1])


def system_tags() -> list[SystemTag]:
    machine = platform.machine().lower()
    if sys.platform == "darwin":
        arch = "arm64" if machine in ("arm64", "aarch64") else machine
        macos = two_numbers(platform.mac_ver()[0])
        return [("macosx", arch, macos), ("macosx", "universal2", macos)]
    if sys.platform.startswith("linux"):
        arch = {"arm64": "aarch64", "amd64": "x86_64"}.get(machine, machine)
        libc, libc_version = platform.libc_ver()
        if libc == "glibc":
            return [("manylinux", arch, two_numbers(libc_version))]
        return [("musllinux", arch, (1, 99))]  # uv's musl builds need musl 1.1, older than any current musl
    sys.exit(f"no uv wheel is chosen for {sys.platform} here: install uv by hand")


def tag_fit(tag: str, tags: list[SystemTag]) -> Version | None:
    """The platform version a wheel tag requires, when this system runs it."""
    for legacy, modern in LEGACY.items():
        if tag.startswith(legacy + "_"):
            tag = modern + tag[len(legacy):]
    for prefix, arch, highest in tags:
        match = re.fullmatch(rf"{prefix}_(\d+)_(\d+)_{re.escape(arch)}", tag)
        if match and (int(match[1]), int(match[2])) <= highest:
            return int(match[1]), int(match[2])
    return None


def pick_wheel(files: list[dict[str, Any]], tags: list[SystemTag]) -> dict[str, Any]:
    """The wheel whose best tag needs the newest platform this system runs: the most specific, as pip chooses."""
    fits = []
    for file in files:
        if not file["filename"].endswith(".whl"):
            continue
        platforms = file["filename"][: -len(".whl")].split("-")[-1].split(".")
        found = [fit for fit in (tag_fit(tag, tags) for tag in platforms) if fit]
        if found:
            fits.append((max(found), file))
    if not fits:
        sys.exit(f"no uv wheel on PyPI fits {sys.platform} {platform.machine()}")
    return max(fits, key=lambda fit: fit[0])[1]


def sha256_of(path: str) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def fetch(file: dict[str, Any], keep: str) -> str:
    """The wheel's path in `keep`, downloaded unless a copy with PyPI's digest is there already."""
    expected = file["digests"]["sha256"]
    os.makedirs(keep, exist_ok=True)
    path = os.path.join(keep, file["filename"])
    if os.path.isfile(path) and sha256_of(path) == expected:
        return path
    partial = f"{path}.partial"
    with urllib.request.urlopen(file["url"], timeout=300) as answer, open(partial, "wb") as out:
        for block in iter(lambda: answer.read(1 << 20), b""):
            out.write(block)
    if sha256_of(partial) != expected:
        os.remove(partial)
        sys.exit(f"{file['url']}: its sha256 is not PyPI's {expected}")
    os.replace(partial, path)
    return path


def install(wheel: str, version: str, bin_dir: str) -> None:
    os.makedirs(bin_dir, exist_ok=True)
    with zipfile.ZipFile(wheel) as archive:
        for name in ("uv", "uvx"):
            target = os.path.join(bin_dir, name)
            partial = f"{target}.partial"  # then a rename: a uv that is running is never written over
            with archive.open(f"uv-{version}.data/scripts/{name}") as source, open(partial, "wb") as out:
                out.write(source.read())
            os.chmod(partial, 0o755)
            os.replace(partial, target)


def main(argv: list[str]) -> int:
    version, bin_dir = argv
    api = os.environ.get("PYPI_JSON_URL", "https://pypi.org/pypi").rstrip("/")
    wheel = pick_wheel(release_files(api, version), system_tags())
    print(f"uv wheel: {wheel['filename']}", file=sys.stderr)
    with tempfile.TemporaryDirectory() as work:
        install(fetch(wheel, os.environ.get("UV_WHEEL_CACHE_DIR") or work), version, bin_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
